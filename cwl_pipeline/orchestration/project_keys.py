"""The names a stream's definitions use in the Dagster project that loads them.

A stream's assets, checks, sensors and jobs read AWS and BigQuery from the resources under the
keys :class:`ProjectKeys` names, through :meth:`ProjectKeys.aws_resource` and
:meth:`ProjectKeys.bigquery_resource`, and declare those keys as ``required_resource_keys``. A
pipeline file's definitions use the defaults ``aws`` and ``bigquery``; the Components join a
host project, whose own resources may use those keys, and take theirs from the settings
instance (``resource_keys``).
"""

from dataclasses import dataclass
from typing import Any, Protocol

from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse


class WithResources(Protocol):
    """A run's, check's or sensor evaluation's context: it holds the resources."""

    @property
    def resources(self) -> Any:
        """The resources, by key."""


@dataclass(frozen=True)
class ProjectKeys:
    """The resource keys of AWS and BigQuery."""

    aws: str = "aws"
    bigquery: str = "bigquery"

    def aws_resource(self, context: WithResources) -> AwsResource:
        """The AWS resource of ``context``."""
        return getattr(context.resources, self.aws)

    def bigquery_resource(self, context: WithResources) -> BigQueryWarehouse:
        """The BigQuery resource of ``context``."""
        return getattr(context.resources, self.bigquery)


DEFAULT_KEYS = ProjectKeys()
"""``aws`` and ``bigquery``: a pipeline file's definitions."""

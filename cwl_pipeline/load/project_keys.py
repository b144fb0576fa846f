"""The names a stream's definitions use in the Dagster project that loads them.

A stream's assets, checks, sensors and jobs read AWS and BigQuery from the resources under the
keys :class:`ProjectKeys` names, through :meth:`ProjectKeys.aws_resource` and
:meth:`ProjectKeys.bigquery_resource`, and declare those keys as ``required_resource_keys``. A
pipeline file's definitions use the defaults ``aws`` and ``bigquery``; the Components join a
host project, whose own resources may use those keys, and take theirs from the settings
instance (``resource_keys``).

Its tables' asset keys follow from the stream config
(:class:`~cwl_pipeline.load.tables.StreamTables`) unless ``renamed`` gives one another key: a
Component's translation does, and every definition of the stream (its sensors' selections and
run requests, its checks, its rollups' inputs) then uses the new key.

Names only: this module imports no Dagster (the keys are Dagster's ``AssetKey`` values, the
contexts Dagster's; both are handed in).
"""

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

Key = TypeVar("Key", bound=Hashable)


class WithResources(Protocol):
    """A run's, check's or sensor evaluation's context: it holds the resources."""

    @property
    def resources(self) -> Any:
        """The resources, by key."""


@dataclass(frozen=True)
class ProjectKeys:
    """The resource keys of AWS and BigQuery, and the table assets' keys that differ from the
    default (by default key)."""

    aws: str = "aws"
    bigquery: str = "bigquery"
    renamed: Mapping[Any, Any] = field(default_factory=dict, hash=False)

    def aws_resource(self, context: WithResources) -> Any:
        """The AWS resource (``AwsResource``) of ``context``."""
        return getattr(context.resources, self.aws)

    def bigquery_resource(self, context: WithResources) -> Any:
        """The BigQuery resource (``BigQueryWarehouse``) of ``context``."""
        return getattr(context.resources, self.bigquery)

    def asset_key(self, default: Key) -> Key:
        """The key of the table asset whose default key is ``default``."""
        return self.renamed.get(default, default)


DEFAULT_KEYS = ProjectKeys()
"""``aws`` and ``bigquery``, no table renamed: a pipeline file's definitions."""

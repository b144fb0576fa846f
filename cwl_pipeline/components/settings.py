"""``cwl_pipeline.CloudWatchLogsToBigQuerySettings``: a project's AWS and BigQuery settings, once.

The ``aws``, ``bigquery``, ``schemas`` and ``defaults`` sections of the pipeline config file,
with the same keys and rules, typed (:mod:`cwl_pipeline.components.settings_attributes`). The
instance contributes the AWS and BigQuery resources that every ``CloudWatchLogsToBigQuery``
stream uses, under its ``resource_keys``; a stream finds it by its type, or by the folder its
``settings`` names.

The resource keys default to ``cwl_aws`` and ``cwl_bigquery``, not to the pipeline file's
``aws`` and ``bigquery``: a host project often has resources of its own under those names
(dagster-aws's and dagster-gcp's usual keys), and Dagster refuses two resources under one key.
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from typing import Any, Self

import dagster as dg
from pydantic import Field, PrivateAttr, model_validator

from cwl_pipeline.components.attributes import Attributes
from cwl_pipeline.components.settings_attributes import AwsAttributes, BigQueryAttributes, SchemaAttributes
from cwl_pipeline.components.stream_attributes import StreamTuningAttributes
from cwl_pipeline.config import ConfigError, PipelineConfig, parse_config, parse_connection_settings
from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.streams import connection_resources

COMPONENT_KEYS = ProjectKeys(aws="cwl_aws", bigquery="cwl_bigquery")
"""The resource keys of a settings instance that names none."""

SETTINGS_TEMPLATE = """\
# AWS and BigQuery settings shared by every cwl_pipeline.CloudWatchLogsToBigQuery stream of this
# project: same keys as the `aws`, `bigquery`, `schemas` and `defaults` sections of a pipeline
# config file (docs/configuration.md). Values may read the environment: {{{{ env('NAME') }}}}.
type: {type_name}
attributes:
  aws:
    region: "{{{{ env('AWS_REGION', 'us-east-1') }}}}"
    # role_arn: arn:aws:iam::123456789012:role/cwl-pipeline-reader
    # external_id: ${{CWL_AWS_EXTERNAL_ID}}   # a reference, resolved at run time; never the value
  bigquery:
    project: "{{{{ env('CWL_BQ_PROJECT') }}}}"
    dataset: "{{{{ env('CWL_BQ_DATASET') }}}}"
    location: US
    # credentials: {{type: external_account, config_file: /etc/gcp/wif.json}}
  # Keys of the AWS and BigQuery resources in the project (default cwl_aws, cwl_bigquery).
  # resource_keys: {{aws: cwl_aws, bigquery: cwl_bigquery}}
  # Defaults of every stream (any stream key but name/source/table/schema/parser/history).
  defaults:
    window: 15m
    settle_lag: 2m
  # Named table schemas a stream's `schema` may refer to (built in: seed, lambda, vpc_flow, text).
  # schemas:
  #   my_schema: {{columns: [...]}}
"""


class SettingsScaffolder(dg.Scaffolder):
    """Writes a commented ``defs.yaml`` of the settings component."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """Write ``defs.yaml`` in the new folder."""
        (request.target_path / "defs.yaml").write_text(
            SETTINGS_TEMPLATE.format(type_name=request.type_name), encoding="utf-8"
        )


RESOURCE_KEY = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ResourceKeysAttributes(Attributes):
    """The keys of the AWS and BigQuery resources in the project; the streams read them so."""

    aws: str = Field(COMPONENT_KEYS.aws, pattern=RESOURCE_KEY, description="The AWS resource's key.")
    bigquery: str = Field(
        COMPONENT_KEYS.bigquery, pattern=RESOURCE_KEY, description="The BigQuery resource's key."
    )

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.aws == self.bigquery:
            raise ValueError(f"resource_keys: aws and bigquery are both {self.aws!r}")
        return self

    def project_keys(self) -> ProjectKeys:
        """These keys, as the stream definitions take them."""
        return ProjectKeys(aws=self.aws, bigquery=self.bigquery)


@dg.scaffold_with(SettingsScaffolder)
class CloudWatchLogsToBigQuerySettings(dg.Component, Attributes):
    """AWS and BigQuery settings of a project's CloudWatch Logs streams, and their resources.

    Same keys and rules as the sections of the pipeline config file of the same names.
    """

    aws: AwsAttributes = Field(default_factory=AwsAttributes, description="How to reach AWS.")
    bigquery: BigQueryAttributes = Field(description="Where tables live.")
    schemas: dict[str, SchemaAttributes] = Field(
        default_factory=dict, description="Named table schemas the streams may refer to."
    )
    defaults: StreamTuningAttributes = Field(
        default_factory=StreamTuningAttributes,
        description="Defaults of every stream's tuning keys (window, settle_lag, ...).",
    )
    resource_keys: ResourceKeysAttributes = Field(
        default_factory=ResourceKeysAttributes,
        description="Keys of the AWS and BigQuery resources in the project (default cwl_aws, cwl_bigquery).",
    )
    # Where the project declares this instance (a ComponentLoc), set as Dagster loads it.
    _component_loc: Any = PrivateAttr(None)

    @classmethod
    def load(cls, attributes: Any, context: dg.ComponentLoadContext) -> Self:
        """The instance a ``defs.yaml`` declares, knowing where: the streams that find it by its
        type load it from there."""
        settings = super().load(attributes, context)
        settings._component_loc = context.component_loc
        return settings

    @property
    def component_loc(self) -> Any:
        """Where the project declares this instance (a ``ComponentLoc``); None if built in Python."""
        return self._component_loc

    def document(self, streams: list[dict[str, Any]]) -> dict[str, Any]:
        """A pipeline config document of these settings and ``streams``."""
        return {
            "aws": self.aws.document(),
            "bigquery": self.bigquery.document(),
            "schemas": {name: schema.document() for name, schema in self.schemas.items()},
            "defaults": self.defaults.document(),
            "streams": streams,
        }

    def pipeline_config(self, streams: list[dict[str, Any]]) -> PipelineConfig:
        """These settings and ``streams`` validated by the pipeline config's own parser.

        Raises:
            ConfigError: any value is invalid.
        """
        return parse_config(self.document(streams))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The AWS and BigQuery resources of every stream, under ``resource_keys``."""
        try:
            aws, bigquery = parse_connection_settings(self.document([]))
        except ConfigError as exc:
            raise ConfigError(f"{context.path}: {exc}") from None
        config = PipelineConfig(aws=aws, bigquery=bigquery, streams=())
        return dg.Definitions(resources=connection_resources(config, self.resource_keys.project_keys()))


__all__ = [
    "COMPONENT_KEYS",
    "SETTINGS_TEMPLATE",
    "CloudWatchLogsToBigQuerySettings",
    "ResourceKeysAttributes",
    "SettingsScaffolder",
]

"""``cwl_pipeline.CloudWatchLogsPipeline``: every stream of a pipeline config file."""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from pathlib import Path

import dagster as dg
from pydantic import Field

from cwl_pipeline.components.attributes import Attributes
from cwl_pipeline.components.settings import ResourceKeysAttributes
from cwl_pipeline.config import load_config
from cwl_pipeline.load.project_keys import DEFAULT_KEYS
from cwl_pipeline.streams import build_definitions


class CloudWatchLogsPipeline(dg.Component, Attributes):
    """The streams, connection settings and resources of one pipeline config file."""

    config: str | None = Field(
        None,
        description="The pipeline config file (relative paths: from the project root); "
        "without it, the file CWL_PIPELINE_CONFIG names.",
    )
    resource_keys: ResourceKeysAttributes | None = Field(
        None, description="Keys of the AWS and BigQuery resources in the project (default aws, bigquery)."
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """What :func:`cwl_pipeline.streams.build_definitions` builds from the file."""
        path = None if self.config is None else context.project_root / Path(self.config)
        keys = DEFAULT_KEYS if self.resource_keys is None else self.resource_keys.project_keys()
        return build_definitions(load_config(path), keys)

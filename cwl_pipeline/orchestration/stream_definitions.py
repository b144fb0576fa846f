"""What one stream contributes to the Dagster definitions, whatever its source.

Each source package builds its streams through one function of the same signature
(:data:`StreamBuilder`): :func:`cwl_pipeline.polling.stream.build_polling_stream`,
:func:`cwl_pipeline.firehose.stream.build_firehose_stream` and
:func:`cwl_pipeline.exports.stream.build_export_stream`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.load.project_keys import ProjectKeys


@dataclass
class StreamDefinitions:
    """What one stream contributes: its source specs (log groups, buckets) apart from the rest,
    since two streams may read the same source."""

    sources: list[dg.AssetSpec]
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    jobs: list[dg.JobDefinition] = field(default_factory=list)


StreamBuilder = Callable[[StreamConfig, BigQuerySettings, ProjectKeys], StreamDefinitions]
"""Builds one stream's definitions from its config, the BigQuery settings and the keys of the
project they join."""

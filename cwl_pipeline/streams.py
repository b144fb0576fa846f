"""Each configured stream's Dagster definitions, and the pipeline's whole set.

Shared by the pipeline file (:func:`build_definitions`) and the per-stream Component
(``cwl_pipeline.CloudWatchLogsToBigQuery``): both wire a stream the same way, through the
builder of its source's kind (:data:`BUILDERS`), each in its source package.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from cwl_pipeline.config import BigQuerySettings, PipelineConfig, S3Source, StreamConfig
from cwl_pipeline.exports.stream import build_export_stream
from cwl_pipeline.firehose.stream import build_firehose_stream
from cwl_pipeline.load.project_keys import DEFAULT_KEYS, ProjectKeys
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.stream_definitions import StreamBuilder, StreamDefinitions
from cwl_pipeline.orchestration.tables import WRITER_POOL_PREFIX
from cwl_pipeline.polling.stream import build_polling_stream

BUILDERS: dict[str, StreamBuilder] = {
    "polling": build_polling_stream,
    "firehose": build_firehose_stream,
    "export": build_export_stream,
}
"""Each source kind's stream builder."""


def source_kind(stream: StreamConfig) -> str:
    """``polling`` for a CloudWatch source; an S3 source's layout (``firehose``, ``export``)."""
    return stream.source.layout if isinstance(stream.source, S3Source) else "polling"


def build_stream(
    stream: StreamConfig, bigquery: BigQuerySettings, project: ProjectKeys = DEFAULT_KEYS
) -> StreamDefinitions:
    """The assets, checks, sensors and jobs of one stream, by its source's kind, reading the
    resources under ``project``'s keys."""
    return BUILDERS[source_kind(stream)](stream, bigquery, project)


def automation_sensor(name: str, target: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    """A running automation sensor over ``target``.

    Rollups, the latest-window and the reconciliation checks run on automation conditions;
    Dagster's default automation sensor starts stopped, so this one is declared running.
    """
    return dg.AutomationConditionSensorDefinition(
        name,
        target=target,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )


def connection_resources(
    config: PipelineConfig, project: ProjectKeys = DEFAULT_KEYS
) -> dict[str, dg.ConfigurableResource]:
    """The AWS and BigQuery resources every stream's assets and sensors use, under ``project``'s keys."""
    return {
        project.aws: AwsResource.from_settings(config.aws),
        project.bigquery: BigQueryWarehouse.from_settings(config.bigquery, config.aws),
    }


def unique_sources(streams: Iterable[StreamDefinitions]) -> list[dg.AssetSpec]:
    """Each source spec once: two streams may read the same log group."""
    seen: dict[dg.AssetKey, dg.AssetSpec] = {}
    for built in streams:
        for spec in built.sources:
            seen.setdefault(spec.key, spec)
    return list(seen.values())


def build_definitions(config: PipelineConfig, project: ProjectKeys = DEFAULT_KEYS) -> dg.Definitions:
    """Compose assets, sensors and resources for every stream of ``config``, the resources under
    ``project``'s keys."""
    streams = [build_stream(stream, config.bigquery, project) for stream in config.streams]
    return dg.Definitions(
        assets=[*(a for s in streams for a in s.assets), *unique_sources(streams)],
        asset_checks=[c for s in streams for c in s.checks],
        sensors=[
            *(sensor for s in streams for sensor in s.sensors),
            automation_sensor("automation", dg.AssetSelection.all()),
        ],
        jobs=[j for s in streams for j in s.jobs],
        # Each run is one I/O-bound step: in-process execution saves seconds of process start-up
        # per micro-batch, which is most of a refresh's latency.
        executor=dg.in_process_executor,
        resources=connection_resources(config, project),
        metadata={
            "config_path": str(config.path),
            # One pool per written table; the instance's default pool limit must be 1.
            "writer_pools": f"{WRITER_POOL_PREFIX}<project>.<dataset>.<table>",
        },
    )

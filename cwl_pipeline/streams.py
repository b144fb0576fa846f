"""Each configured stream's Dagster definitions, and the pipeline's whole set.

Shared by the pipeline file (:func:`build_definitions`) and the per-stream Component
(``cwl_pipeline.CloudWatchLogsToBigQuery``): both wire a stream the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

from cwl_pipeline.config import BigQuerySettings, PipelineConfig, S3Source, StreamConfig
from cwl_pipeline.exports.assets import build_export_stream
from cwl_pipeline.firehose.assets import build_firehose_stream
from cwl_pipeline.orchestration.checks import build_latest_window_check
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.rollups import build_rollups
from cwl_pipeline.orchestration.tables import WRITER_POOL_PREFIX
from cwl_pipeline.polling.assets import build_stream_assets
from cwl_pipeline.polling.live_sensor import build_live_sensor, live_asset_spec
from cwl_pipeline.polling.reconcile import build_reconcile_sensor, build_reconciliation_check
from cwl_pipeline.polling.sensor import build_window_sensor


@dataclass
class StreamDefinitions:
    """What one stream contributes: its source specs (log groups, buckets) apart from the rest,
    since two streams may read the same source."""

    sources: list[dg.AssetSpec]
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    jobs: list[dg.JobDefinition] = field(default_factory=list)


def build_stream(stream: StreamConfig, bigquery: BigQuerySettings) -> StreamDefinitions:
    """The assets, checks, sensors and jobs of one stream, by its source's kind."""
    if isinstance(stream.source, S3Source) and stream.source.layout == "export":
        sources, loader, sensors, jobs = build_export_stream(stream, bigquery)
        return StreamDefinitions(list(sources), [loader], sensors=list(sensors), jobs=list(jobs))
    if isinstance(stream.source, S3Source):
        sources, loader, sensors, layout_check = build_firehose_stream(stream, bigquery)
        return StreamDefinitions(list(sources), [loader], checks=[layout_check], sensors=list(sensors))
    sources, loader, tables = build_stream_assets(stream, bigquery)
    built = StreamDefinitions(
        list(sources),
        [loader, *build_rollups(tables, bigquery)],
        checks=[build_latest_window_check(tables)],
        sensors=[build_window_sensor(tables)],
    )
    if stream.live.path == "sensor":
        built.assets.append(live_asset_spec(tables, bigquery))
        built.sensors.append(build_live_sensor(tables))
    if stream.reconcile.enabled:
        built.checks.append(build_reconciliation_check(tables))
        built.sensors.append(build_reconcile_sensor(tables))
    return built


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


def connection_resources(config: PipelineConfig) -> dict[str, dg.ConfigurableResource]:
    """The ``aws`` and ``bigquery`` resources every stream's assets and sensors use."""
    return {
        "aws": AwsResource.from_settings(config.aws),
        "bigquery": BigQueryWarehouse.from_settings(config.bigquery, config.aws),
    }


def unique_sources(streams: Iterable[StreamDefinitions]) -> list[dg.AssetSpec]:
    """Each source spec once: two streams may read the same log group."""
    seen: dict[dg.AssetKey, dg.AssetSpec] = {}
    for built in streams:
        for spec in built.sources:
            seen.setdefault(spec.key, spec)
    return list(seen.values())


def build_definitions(config: PipelineConfig) -> dg.Definitions:
    """Compose assets, sensors and resources for every stream of ``config``."""
    streams = [build_stream(stream, config.bigquery) for stream in config.streams]
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
        resources=connection_resources(config),
        metadata={
            "config_path": str(config.path),
            # One pool per written table; the instance's default pool limit must be 1.
            "writer_pools": f"{WRITER_POOL_PREFIX}<project>.<dataset>.<table>",
        },
    )

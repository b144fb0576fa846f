"""Dagster definitions: the assets, checks, sensors and jobs of every configured stream."""

from __future__ import annotations

import dagster as dg

from cwl_pipeline.config import PipelineConfig, S3Source, load_config
from cwl_pipeline.exports.assets import build_export_stream
from cwl_pipeline.firehose.assets import build_firehose_stream
from cwl_pipeline.orchestration.checks import build_latest_window_check
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.rollups import build_rollups
from cwl_pipeline.orchestration.tables import WRITER_POOL_PREFIX
from cwl_pipeline.polling.assets import build_stream_assets
from cwl_pipeline.polling.reconcile import build_reconcile_sensor, build_reconciliation_check
from cwl_pipeline.polling.sensor import build_window_sensor


def build_definitions(config: PipelineConfig) -> dg.Definitions:
    """Compose assets, sensors and resources for every stream of ``config``."""
    assets: list[dg.AssetSpec | dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    jobs: list[dg.JobDefinition] = []
    seen_sources: set[dg.AssetKey] = set()
    for stream in config.streams:
        if isinstance(stream.source, S3Source) and stream.source.layout == "export":
            sources, loader, stream_sensors, stream_jobs = build_export_stream(stream, config.bigquery)
            assets.append(loader)
            sensors.extend(stream_sensors)
            jobs.extend(stream_jobs)
        elif isinstance(stream.source, S3Source):
            sources, loader, stream_sensors, layout_check = build_firehose_stream(stream, config.bigquery)
            checks.append(layout_check)
            assets.append(loader)
            sensors.extend(stream_sensors)
        else:
            sources, loader, tables = build_stream_assets(stream, config.bigquery)
            assets.append(loader)
            assets.extend(build_rollups(tables, config.bigquery))
            checks.append(build_latest_window_check(tables))
            sensors.append(build_window_sensor(tables))
            if stream.reconcile.enabled:
                checks.append(build_reconciliation_check(tables))
                sensors.append(build_reconcile_sensor(tables))
        for spec in sources:
            if spec.key not in seen_sources:  # two streams may read the same log group
                seen_sources.add(spec.key)
                assets.append(spec)
    # Rollups, the latest-window and the reconciliation checks run on automation conditions; Dagster's default
    # automation sensor starts stopped, so this one is declared running.
    sensors.append(
        dg.AutomationConditionSensorDefinition(
            "automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
        )
    )
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        sensors=sensors,
        jobs=jobs,
        # Each run is one I/O-bound step: in-process execution saves seconds of process start-up
        # per micro-batch, which is most of a refresh's latency.
        executor=dg.in_process_executor,
        resources={
            "aws": AwsResource.from_settings(config.aws),
            "bigquery": BigQueryWarehouse.from_settings(config.bigquery, config.aws),
        },
        metadata={
            "config_path": str(config.path),
            # One pool per written table; the instance's default pool limit must be 1.
            "writer_pools": f"{WRITER_POOL_PREFIX}<project>.<dataset>.<table>",
        },
    )


defs = build_definitions(load_config())

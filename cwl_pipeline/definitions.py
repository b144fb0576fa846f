"""Dagster definitions: one set of assets and one sensor per configured stream."""

from __future__ import annotations

import dagster as dg

from cwl_pipeline.config import PipelineConfig, load_config
from cwl_pipeline.defs.cloudwatch_stream import CLOUDWATCH_POOL, build_stream_assets
from cwl_pipeline.defs.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.defs.rollups import build_rollups
from cwl_pipeline.defs.stream_checks import build_latest_window_check
from cwl_pipeline.defs.window_sensor import build_window_sensor


def build_definitions(config: PipelineConfig) -> dg.Definitions:
    """Compose assets, sensors and resources for every stream of ``config``."""
    assets: list[dg.AssetSpec | dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    seen_sources: set[dg.AssetKey] = set()
    for stream in config.streams:
        sources, loader, tables = build_stream_assets(stream, config.bigquery)
        for spec in sources:
            if spec.key not in seen_sources:  # two streams may read the same log group
                seen_sources.add(spec.key)
                assets.append(spec)
        assets.append(loader)
        assets.extend(build_rollups(tables, config.bigquery))
        checks.append(build_latest_window_check(tables))
        sensors.append(build_window_sensor(tables))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        sensors=sensors,
        resources={
            "aws": AwsResource.from_settings(config.aws),
            "bigquery": BigQueryWarehouse.from_settings(config.bigquery),
        },
        metadata={"config_path": str(config.path), "cloudwatch_pool": CLOUDWATCH_POOL},
    )


defs = build_definitions(load_config())

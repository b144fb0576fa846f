"""Everything one S3 stream contributes to the Dagster definitions."""

from __future__ import annotations

import dagster as dg

from cwl_pipeline.config import BigQuerySettings, S3Source, StreamConfig
from cwl_pipeline.defs.export_history import build_export_history_job
from cwl_pipeline.defs.export_sensor import build_export_sensor
from cwl_pipeline.defs.firehose_sensor import build_firehose_sensor
from cwl_pipeline.defs.s3_stream import build_s3_stream_assets, export_partitions


def build_s3_stream(
    stream: StreamConfig, bq: BigQuerySettings
) -> tuple[list[dg.AssetSpec], dg.AssetsDefinition, list[dg.SensorDefinition], list[dg.JobDefinition]]:
    """Source specs, the loading asset, its sensor, and (exports) the history backfill job."""
    assert isinstance(stream.source, S3Source)
    sources, loader, tables = build_s3_stream_assets(stream, bq)
    if stream.source.layout == "export":
        return (
            sources,
            loader,
            [build_export_sensor(tables, export_partitions(stream))],
            [build_export_history_job(stream)],
        )
    return sources, loader, [build_firehose_sensor(tables)], []

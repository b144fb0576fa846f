"""Dagster wiring of a Firehose stream: its S3 prefix, the loading multi-asset, its sensor.

Time-window partitions like a polling stream, but a window holds the objects *delivered* in it
(:mod:`cwl_pipeline.firehose.windows`); a range of windows loads in one run, in steps of
``windows_per_replace`` windows (one transaction each).
"""

from collections.abc import Iterator
from datetime import UTC

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.firehose.read import read_firehose_range
from cwl_pipeline.firehose.sensor import build_firehose_sensor
from cwl_pipeline.orchestration.checks import load_check_specs
from cwl_pipeline.orchestration.partitions import window_partitions
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.s3_assets import Result, load_and_check, s3_source_specs
from cwl_pipeline.orchestration.tables import STREAM_TAG, StreamTables, table_asset_specs, writer_pool


def build_firehose_stream(
    stream: StreamConfig, bq: BigQuerySettings
) -> tuple[list[dg.AssetSpec], dg.AssetsDefinition, list[dg.SensorDefinition]]:
    """The source specs, the loading asset and the sensor of a Firehose stream."""
    tables = StreamTables.of(stream)
    sources = s3_source_specs(stream)
    specs = table_asset_specs(tables, bq, [sources[-1].key])
    asset = firehose_asset(stream, tables, specs, writer_pool(bq, stream.table))
    return sources, asset, [build_firehose_sensor(tables)]


def firehose_asset(
    stream: StreamConfig, tables: StreamTables, specs: list[dg.AssetSpec], pool: str
) -> dg.AssetsDefinition:
    """The multi-asset that loads a Firehose stream's delivery windows (a range in one run)."""

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=specs,
        check_specs=load_check_specs(tables),
        partitions_def=window_partitions(stream),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=stream.backfill_windows_per_run),
        pool=pool,
        op_tags={STREAM_TAG: stream.name},
    )
    def load_delivery_windows(
        context: dg.AssetExecutionContext, aws: AwsResource, bigquery: BigQueryWarehouse
    ) -> Iterator[Result]:
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        reads = read_firehose_range(stream, S3ObjectStore(aws.client("s3")), start, end)
        yield from load_and_check(context, stream, tables, bigquery, reads)

    return load_delivery_windows

"""Assets of an S3 stream: Firehose deliveries or CreateExportTask files.

For each stream: an external ``AssetSpec`` for the S3 prefix (downstream of the CloudWatch
log group when the config names it) → one multi-asset that materializes the events table and
its rejects table together:

* ``layout: firehose`` — time-window partitions like a polling stream, but a window holds the
  objects *delivered* in it (:mod:`cwl_pipeline.core.firehose_windows`); a range of windows
  loads in one run.
* ``layout: export`` — one dynamic partition per export task folder.

Both replace exactly the rows of the objects they read (:mod:`cwl_pipeline.load.objects`) and
evaluate the same load checks as the polling streams.
"""

import re
from collections.abc import Iterator
from datetime import UTC

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.defs.cloudwatch_stream import log_group_spec, window_partitions, write_mode
from cwl_pipeline.defs.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.defs.stream_checks import evaluate_load_checks, load_check_specs
from cwl_pipeline.defs.stream_tables import (
    LOAD_KIND_TAG,
    STREAM_TAG,
    StreamTables,
    materializations,
    table_asset_specs,
    writer_pool,
)
from cwl_pipeline.load.objects import ObjectSetRead, read_export_folder, read_firehose_windows, s3_source
from cwl_pipeline.load.service import load

Result = dg.MaterializeResult | dg.AssetCheckResult


def s3_source_key(bucket: str, prefix: str) -> dg.AssetKey:
    """Asset key of an external S3 prefix."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{bucket}/{prefix}").strip("_")
    return dg.AssetKey(["s3", name or "root"])


def export_partitions(stream: StreamConfig) -> dg.DynamicPartitionsDefinition:
    """One partition per export task folder of ``stream`` (added by its sensor)."""
    return dg.DynamicPartitionsDefinition(name=f"{stream.name}_export_folders")


def s3_source_specs(stream: StreamConfig) -> list[dg.AssetSpec]:
    """The S3 prefix, and the log group it is delivered from when the config names it."""
    source = s3_source(stream)
    specs: list[dg.AssetSpec] = []
    if source.log_group:
        specs.append(log_group_spec(source.log_group))
    uri = f"s3://{source.bucket}/{source.prefix}"
    if source.layout == "firehose":
        what = f"Firehose deliveries ({source.record_format}) under {uri}"
    else:
        what = f"CreateExportTask files under {uri}"
    metadata: dict[str, object] = {"bucket": source.bucket, "prefix": source.prefix, "layout": source.layout}
    if source.layout == "firehose":
        metadata["record_format"] = source.record_format
    specs.append(
        dg.AssetSpec(
            s3_source_key(source.bucket, source.prefix),
            description=what + (f", from log group {source.log_group}" if source.log_group else ""),
            kinds={"aws", "s3"},
            group_name="sources",
            deps=[s.key for s in specs],
            metadata=metadata,
        )
    )
    return specs


def build_s3_stream_assets(
    stream: StreamConfig, bq: BigQuerySettings
) -> tuple[list[dg.AssetSpec], dg.AssetsDefinition, StreamTables]:
    """The source specs and the loading multi-asset of an S3 stream."""
    tables = StreamTables.of(stream)
    sources = s3_source_specs(stream)
    specs = table_asset_specs(tables, bq, [sources[-1].key])
    if s3_source(stream).layout == "export":
        return sources, _export_asset(stream, tables, specs, writer_pool(bq, stream.table)), tables
    return sources, _firehose_asset(stream, tables, specs, writer_pool(bq, stream.table)), tables


def _firehose_asset(
    stream: StreamConfig, tables: StreamTables, specs: list[dg.AssetSpec], pool: str
) -> dg.AssetsDefinition:
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
        read = read_firehose_windows(stream, S3ObjectStore(aws.client("s3")), start, end)
        yield from _load_and_check(context, stream, tables, bigquery, read)

    return load_delivery_windows


def _export_asset(
    stream: StreamConfig, tables: StreamTables, specs: list[dg.AssetSpec], pool: str
) -> dg.AssetsDefinition:
    # An export is a one-off backfill: no freshness expectation.
    specs = [s.replace_attributes(freshness_policy=None) for s in specs]

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=specs,
        check_specs=load_check_specs(tables),
        partitions_def=export_partitions(stream),
        pool=pool,
        op_tags={STREAM_TAG: stream.name},
    )
    def load_export_task(
        context: dg.AssetExecutionContext, aws: AwsResource, bigquery: BigQueryWarehouse
    ) -> Iterator[Result]:
        read = read_export_folder(stream, S3ObjectStore(aws.client("s3")), context.partition_key)
        yield from _load_and_check(context, stream, tables, bigquery, read)

    return load_export_task


def _load_and_check(
    context: dg.AssetExecutionContext,
    stream: StreamConfig,
    tables: StreamTables,
    bigquery: BigQueryWarehouse,
    read: ObjectSetRead,
) -> Iterator[Result]:
    """Load one object set, report it and evaluate the load checks on its scope."""
    kind = context.run.tags.get(LOAD_KIND_TAG, "manual")
    mode = write_mode(kind, live_available=False)
    outcome = load([read], tables.pair, bigquery.loader, context.log, stream.name, mode)
    yield from materializations(context, tables, outcome, kind, {"write_mode": mode.value})
    with bigquery.loader() as loader:
        yield from evaluate_load_checks(loader, tables, outcome.check_facts(read.scope))

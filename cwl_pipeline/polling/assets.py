"""The loading asset of one CloudWatch polling stream.

For each stream: an external ``AssetSpec`` per log group (or prefix) → one multi-asset that
materializes the events table and its rejects table together for a range of time windows:
read every group's window with FilterLogEvents, decode and normalize with the pure core,
replace the windows atomically in BigQuery (in steps of ``windows_per_replace`` windows), then
evaluate the load checks.

Reading is :mod:`cwl_pipeline.polling.read`, writing :func:`cwl_pipeline.load.service.load`.
A stream with a ``history`` section reads, in a run launched by hand or a backfill (REPLACE),
the windows older than ``history.after`` through export tasks
(:mod:`cwl_pipeline.polling.history`) and the younger ones through FilterLogEvents: each
window by one reader, named in its materialization's ``reader``.

The stream's other definitions (rollups, checks, sensors) are wired in
:mod:`cwl_pipeline.polling.stream`.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import chain

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.exports.tasks import ExportTasks
from cwl_pipeline.load.service import MANUAL, REFRESH, WriteMode, load, write_mode
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import evaluate_load_checks, load_check_specs
from cwl_pipeline.orchestration.partitions import window_partitions
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline.orchestration.source_assets import log_group_spec
from cwl_pipeline.orchestration.tables import (
    LOAD_KIND_TAG,
    STREAM_TAG,
    events_key,
    materializations,
    selected,
    table_asset_specs,
    writer_pool,
)
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, logs_reader
from cwl_pipeline.polling.history import history_boundary, read_windows_from_export, with_api_reader
from cwl_pipeline.polling.plan import compares_first, load_passes
from cwl_pipeline.polling.read import WindowRangeRead, read_windows, window_scope
from cwl_pipeline.polling.rederive import RAW, REDERIVE_TAG, read_windows_from_raw

# Rows ingested this long before the previous refresh's newest are appended again: CloudWatch
# may show an event to FilterLogEvents a little after its ingestion time (the view dedups).
LIVE_OVERLAP = timedelta(seconds=10)


def _ingested_until(context: dg.AssetExecutionContext, tables: StreamTables) -> datetime | None:
    """The newest ingestion time the previous refresh of this window appended, if any."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=events_key(tables), asset_partitions=[context.partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    if getattr(metadata.get("write_mode"), "value", None) != WriteMode.LIVE.value:
        return None
    if "ingested_until" not in metadata:
        return None
    return datetime.fromisoformat(str(metadata["ingested_until"].value))


def reads_by_reader(
    context: dg.AssetExecutionContext,
    stream: StreamConfig,
    aws: AwsResource,
    reader: CloudWatchLogsReader,
    start: datetime,
    end: datetime,
    mode: WriteMode,
) -> Iterator[WindowRangeRead]:
    """The reads of ``[start, end)``: through exports for the windows older than
    ``history.after`` when the run replaces its windows, through FilterLogEvents otherwise."""
    boundary = history_boundary(stream, datetime.now(UTC)) if mode is WriteMode.REPLACE else None
    if boundary is None:
        return read_windows(stream, reader, start, end)
    split = max(start, min(end, boundary))
    if split > start:
        context.log.info(
            f"{stream.name}: windows {start.isoformat()}..{split.isoformat()} are older than history.after "
            f"({stream.history.after if stream.history else ''}): read through CreateExportTask"
        )
    exported = (
        read_windows_from_export(
            stream,
            reader,
            ExportTasks(aws.client("logs", stream.source_account)),
            S3ObjectStore(aws.client("s3")),
            start,
            split,
            log=context.log.info,
        )
        if split > start
        else iter(())
    )
    polled = (
        (with_api_reader(r) for r in read_windows(stream, reader, split, end)) if split < end else iter(())
    )
    return chain(exported, polled)


def log_group_specs(stream: StreamConfig) -> list[dg.AssetSpec]:
    """External asset specs of the log groups and prefixes a polling stream reads."""
    account = stream.source_account
    where = {"account_id": account.account_id, "region": account.region} if account else {}
    return [
        *(log_group_spec(g, **where) for g in stream.source.log_groups),
        *(log_group_spec(p, is_prefix=True, **where) for p in stream.source.log_group_prefixes),
    ]


def build_window_asset(tables: StreamTables, bq: BigQuerySettings) -> dg.AssetsDefinition:
    """The multi-asset that loads a range of ``tables.stream``'s time windows."""
    stream = tables.stream
    sources = log_group_specs(stream)
    partitions_def = window_partitions(stream)
    final_sweep = load_passes(stream.settle_lag, stream.sweeps)[-1].name

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=table_asset_specs(tables, bq, [s.key for s in sources]),
        check_specs=load_check_specs(tables),
        partitions_def=partitions_def,
        # A backfill of a month is a handful of runs, each reading a range with one pass.
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=stream.backfill_windows_per_run),
        pool=writer_pool(bq, stream.table),
        op_tags={STREAM_TAG: stream.name},
        # A refresh of the open window evaluates no checks (they run when the window settles).
        can_subset=True,
        required_resource_keys={tables.project.aws, tables.project.bigquery},
    )
    def load_windows(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        aws, bigquery = tables.project.aws_resource(context), tables.project.bigquery_resource(context)
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        kind = context.run.tags.get(LOAD_KIND_TAG, "manual")
        appender = bigquery.appender() if kind == REFRESH else None
        mode = write_mode(kind, live_available=appender is not None)
        after = _ingested_until(context, tables) if mode is WriteMode.LIVE else None
        rederive = context.run.tags.get(REDERIVE_TAG)
        if rederive is not None and (rederive != RAW or kind != MANUAL):
            raise dg.Failure(f"run tag {REDERIVE_TAG}={rederive!r}: only '{RAW}', on runs launched by hand")
        with ExitStack() as opened:
            reads: Iterator[WindowRangeRead]
            if rederive == RAW:
                context.log.info(
                    f"{stream.name}: re-deriving {start.isoformat()}..{end.isoformat()} from raw rows"
                )
                reads = read_windows_from_raw(tables, opened.enter_context(bigquery.loader()), start, end)
            else:
                reads = reads_by_reader(
                    context, stream, aws, logs_reader(aws, stream.source_account), start, end, mode
                )
            outcome = load(
                reads,
                tables,
                bigquery.loader,
                context.log,
                stream.name,
                mode,
                appender=appender,
                ingested_after=after - LIVE_OVERLAP if after else None,
                compare_first=compares_first(kind),
            )
        run_range = {
            "run_range_start": start.isoformat(),
            "run_range_end": end.isoformat(),
            "write_mode": mode.value,
        }
        yield from selected(context, materializations(context, tables, outcome, kind, run_range))
        if mode is WriteMode.LIVE:
            return
        groups = outcome.facts.get("log_groups", [])
        assert isinstance(groups, list)
        # The reads of a window range are its windows' scopes (read_windows): the same scope.
        facts = outcome.check_facts(
            window_scope(stream, start, end, groups), final_sweep=kind == final_sweep, scope_of_reads=True
        )
        with bigquery.loader() as loader:
            yield from selected(context, evaluate_load_checks(loader, tables, facts))

    return load_windows

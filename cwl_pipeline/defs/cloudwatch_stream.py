"""Assets of one CloudWatch polling stream.

For each stream: an external ``AssetSpec`` per log group (or prefix) → one multi-asset that
materializes the events table and its rejects table together for a range of time windows:
read every group's window with FilterLogEvents, decode and normalize with the pure core,
replace the windows atomically in BigQuery, then evaluate the load checks.

A long range (a backfill run of a week) is loaded in steps of at most ``windows_per_replace``
windows, each read, normalized and replaced in its own transaction, so a run holds one step's
events in memory, not the whole range's.
"""

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.adapters.cloudwatch import WindowRead
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.normalize import NormalizedBatch, normalize
from cwl_pipeline.core.window_stats import WindowStats, per_window_stats
from cwl_pipeline.core.windows import PARTITION_FMT, load_passes, to_ms
from cwl_pipeline.defs.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.defs.stream_checks import LoadFacts, evaluate_load_checks, load_check_specs
from cwl_pipeline.defs.stream_tables import (
    LOAD_KIND_TAG,
    STREAM_TAG,
    LoadScope,
    StreamTables,
    ensure_stream_tables,
    materializations,
    range_label,
    replace_stream_rows,
    rows_in_scope,
    table_asset_specs,
)

CLOUDWATCH_POOL = "cloudwatch_filter_log_events"


def window_partitions(stream: StreamConfig) -> dg.TimeWindowPartitionsDefinition:
    """Time-window partitions of ``stream``, including the still-open window (end_offset=1)."""
    minutes = stream.window_minutes
    if minutes < 60:
        cron = f"*/{minutes} * * * *"
    elif minutes < 24 * 60:
        cron = f"0 */{minutes // 60} * * *"
    else:
        cron = "0 0 * * *"
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron,
        start=stream.start,
        fmt=PARTITION_FMT,
        timezone="UTC",
        end_offset=1,
    )


def source_key(name: str) -> dg.AssetKey:
    """Asset key of an external log group (or prefix) source."""
    return dg.AssetKey(["cloudwatch", re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "root"])


def log_group_spec(name: str, is_prefix: bool = False) -> dg.AssetSpec:
    """External asset spec of a CloudWatch log group, or of every group under a prefix."""
    return dg.AssetSpec(
        source_key(name),
        description=f"CloudWatch Logs log group {name}"
        + (" (every group under this prefix)" if is_prefix else ""),
        kinds={"aws", "cloudwatch"},
        group_name="sources",
        metadata={"log_group": name, "match": "prefix" if is_prefix else "name"},
    )


def log_group_specs(stream: StreamConfig) -> list[dg.AssetSpec]:
    """External asset specs of the log groups and prefixes a polling stream reads."""
    return [
        *(log_group_spec(g) for g in stream.source.log_groups),
        *(log_group_spec(p, is_prefix=True) for p in stream.source.log_group_prefixes),
    ]


def build_stream_assets(
    stream: StreamConfig, bq: BigQuerySettings
) -> tuple[list[dg.AssetSpec], dg.AssetsDefinition, StreamTables]:
    """The source specs and the window-loading multi-asset of ``stream``."""
    tables = StreamTables.of(stream)
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
        pool=CLOUDWATCH_POOL,
        op_tags={STREAM_TAG: stream.name},
    )
    def load_windows(
        context: dg.AssetExecutionContext, aws: AwsResource, bigquery: BigQueryWarehouse
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        kind = context.run.tags.get(LOAD_KIND_TAG, "manual")
        load = RangeLoad(start, end, scope=window_scope(stream, start, end))
        for step_start, step_end in replace_steps(start, end, stream.window, stream.windows_per_replace):
            load.add(
                load_stream_window(context.log, stream, tables, aws, bigquery, step_start, step_end), stream
            )
        yield from materializations(context, tables, load.stats, load.run_metadata(kind))
        with bigquery.loader() as loader:
            yield from evaluate_load_checks(loader, tables, load.facts(kind == final_sweep))

    return sources, load_windows, tables


def replace_steps(
    start: datetime, end: datetime, window: timedelta, windows_per_step: int
) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive ranges of at most ``windows_per_step`` windows."""
    step = window * windows_per_step
    cursor = start
    while cursor < end:
        yield cursor, min(cursor + step, end)
        cursor += step


def window_scope(stream: StreamConfig, start: datetime, end: datetime) -> LoadScope:
    """The rows of ``[start, end)`` in the events table (by event time) and the rejects table."""
    return LoadScope(time_scope(stream.schema.time_column, start, end), time_scope("timestamp", start, end))


@dataclass
class RangeLoad:
    """Totals of a range loaded in one or more steps (:func:`replace_steps`).

    Keeps each step's per-window figures and counters, not its rows, so memory stays bounded
    by one step.
    """

    start: datetime
    end: datetime
    scope: LoadScope
    stats: dict[datetime, WindowStats] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    api_calls: int = 0
    events_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_before: int = 0
    staged_bytes: int = 0
    job_ids: list[str] = field(default_factory=list)
    steps: int = 0

    def add(self, load: "WindowLoad", stream: StreamConfig) -> None:
        """Count one step in."""
        self.stats.update(load.window_stats(stream))
        self.groups = list(dict.fromkeys([*self.groups, *load.read.groups]))
        self.api_calls += load.read.api_calls
        self.events_read += load.batch.events_read
        self.rows_loaded += load.batch.rows_loaded
        self.rows_rejected += load.batch.rows_rejected
        self.rows_before += load.rows_before
        self.staged_bytes += load.staged_bytes
        self.job_ids += load.job_ids
        self.steps += 1

    def run_metadata(self, kind: str) -> dict[str, object]:
        """Facts of the run itself, shared by every window it loaded."""
        return {
            "load_kind": kind,
            "run_range_start": self.start.isoformat(),
            "run_range_end": self.end.isoformat(),
            "replace_steps": self.steps,
            "log_groups": ", ".join(self.groups),
            "filter_log_events_calls": self.api_calls,
            "bytes_staged": self.staged_bytes,
            "bigquery_job_ids": ", ".join(self.job_ids),
        }

    def facts(self, final_sweep: bool) -> LoadFacts:
        """What the checks need to know, for the whole range."""
        return LoadFacts(
            events_read=self.events_read,
            rows_loaded=self.rows_loaded,
            rows_rejected=self.rows_rejected,
            rows_before=self.rows_before,
            scope=self.scope,
            final_sweep=final_sweep,
        )


@dataclass
class WindowLoad:
    """Outcome of reading, normalizing and replacing one range of windows in one transaction."""

    start: datetime
    end: datetime
    batch: NormalizedBatch
    read: WindowRead
    bytes_by_window: Counter[datetime]
    rows_before: int
    job_ids: list[str]
    staged_bytes: int
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def window_stats(self, stream: StreamConfig) -> dict:
        """True figures per window of the range."""
        starts, cursor = [], self.start
        while cursor < self.end:
            starts.append(cursor)
            cursor += stream.window
        return per_window_stats(
            self.batch.rows,
            self.batch.rejects,
            time_column=stream.schema.time_column,
            window_starts=starts,
            size=stream.window,
            loaded_at=self.loaded_at,
            bytes_by_window=self.bytes_by_window,
        )


def load_stream_window(
    log: dg.DagsterLogManager,
    stream: StreamConfig,
    tables: StreamTables,
    aws: AwsResource,
    bigquery: BigQueryWarehouse,
    start: datetime,
    end: datetime,
) -> WindowLoad:
    """Read, decode, normalize and atomically replace ``[start, end)`` of ``stream``."""
    reader = aws.logs_reader()
    groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)
    _refuse_beyond_retention(groups, start)
    read = WindowRead()
    bytes_by_window_ms: Counter[int] = Counter()
    start_ms, end_ms = to_ms(start), to_ms(end)
    size_ms = int(stream.window.total_seconds() * 1000)

    def events() -> Iterator[LogEvent]:
        for group in groups:
            for event in events_from_api(reader.iter_events(group, start_ms, end_ms, read), log_group=group):
                bytes_by_window_ms[event.timestamp_ms - event.timestamp_ms % size_ms] += len(event.message)
                yield event

    batch = normalize(events(), stream.schema)
    bytes_by_window = Counter(
        {datetime.fromtimestamp(ms / 1000, UTC): size for ms, size in bytes_by_window_ms.items()}
    )
    scope = window_scope(stream, start, end)
    with bigquery.loader() as loader:
        ensure_stream_tables(loader, tables)
        rows_before = sum(rows_in_scope(loader, tables, scope))
        result = replace_stream_rows(
            loader, tables, scope, batch.rows_table, batch.rejects_table, range_label(start, end)
        )
    log.info(
        f"{stream.name} {start.isoformat()}..{end.isoformat()}: {batch.events_read} events read, "
        f"{batch.rows_loaded} loaded, {batch.rows_rejected} rejected ({rows_before} rows before)"
    )
    return WindowLoad(
        start, end, batch, read, bytes_by_window, rows_before, result.job_ids, result.staged_bytes
    )


def _refuse_beyond_retention(groups: dict[str, int | None], start: datetime) -> None:
    # Replacing a window CloudWatch no longer holds would delete rows that cannot be re-read.
    now = datetime.now(UTC)
    for group, days in groups.items():
        if days is not None and start < now - timedelta(days=days):
            raise SourceError(
                f"window starting {start.isoformat()} is older than the {days}-day retention of "
                f"log group {group!r}: reloading it would delete rows CloudWatch no longer holds"
            )

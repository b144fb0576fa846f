"""Re-deriving a polling stream's typed tables from its raw table, in BigQuery alone.

After a schema or parser change, a run launched by hand with the run tag
``cwl/rederive_from: raw`` (a backfill of the windows to redo) reads each step's raw rows from
BigQuery instead of CloudWatch: no FilterLogEvents call, no S3 read, and it works after
CloudWatch's retention has passed. The raw rows go through the stream's *current* rules
(filters, redaction) and schema/parser, and replace the step's rows, rejects and raw rows in
one transaction (REPLACE), like any manual load: a redaction rule added later thus reaches the
raw table too.

A window whose typed tables hold more events than its raw rows (loaded before the raw table
existed) is refused: re-deriving it would lose events; reload it from the source instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from cwl_pipeline.adapters.bigquery import BigQueryLoader
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.event_rules import RuleTally
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize, parse_warning_facts
from cwl_pipeline.core.raw_events import RAW_SCHEMA, RawCollector, events_from_raw
from cwl_pipeline.load.tables import TablePair, range_label, rows_in_scope
from cwl_pipeline.polling.read import WindowRangeRead, replace_steps, window_scope

REDERIVE_TAG = "cwl/rederive_from"
"""Run tag of a manual load that re-derives its windows from the raw table (value ``raw``)."""
RAW = "raw"


def read_windows_from_raw(
    stream: StreamConfig, tables: TablePair, loader: BigQueryLoader, start: datetime, end: datetime
) -> Iterator[WindowRangeRead]:
    """Re-derive ``[start, end)`` of ``stream`` from its raw table, step by step."""
    if tables.raw is None:
        raise SourceError(f"stream {stream.name} keeps no raw table (raw: true): nothing to re-derive from")
    for step_start, step_end in replace_steps(start, end, stream.window, stream.windows_per_replace):
        yield _read_step(stream, tables, loader, step_start, step_end)


def _read_step(
    stream: StreamConfig, tables: TablePair, loader: BigQueryLoader, start: datetime, end: datetime
) -> WindowRangeRead:
    assert tables.raw is not None
    rows = loader.select(tables.raw.table, RAW_SCHEMA.names, time_scope("timestamp", start, end))
    groups = sorted({str(row["log_group"]) for row in rows})
    scope = window_scope(stream, start, end, groups)
    if groups:
        stored = sum(rows_in_scope(loader, tables, scope))
        if stored > len(rows):
            raise SourceError(
                f"{stream.name} {range_label(start, end)}: the typed tables hold {stored} events, the raw "
                f"table {len(rows)}: its raw rows are incomplete (loaded before the raw table existed?); "
                "reload these windows from the source instead"
            )
    rows.sort(key=lambda row: (row["timestamp"], str(row["event_id"])))
    tally = RuleTally()
    collector = RawCollector()
    size_ms = int(stream.window.total_seconds() * 1000)
    bytes_by_window_ms: Counter[int] = Counter()

    def events() -> Iterator[LogEvent]:
        for event in stream.rules.apply(events_from_raw(rows), tally):
            bytes_by_window_ms[event.timestamp_ms - event.timestamp_ms % size_ms] += len(event.message)
            yield event

    batch = normalize(collector.tee(events()), stream.schema)
    return WindowRangeRead(
        scope=scope,
        label=range_label(start, end),
        events_at_source=len(rows),
        facts={
            "log_groups": groups,
            "rederived_from": [tables.raw.table],
            **parse_warning_facts(batch.parse_warnings),
            **tally.facts(),
        },
        start=start,
        end=end,
        window=stream.window,
        time_column=stream.schema.time_column,
        batch=batch,
        raw=collector.table(),
        bytes_by_window=Counter(
            {
                datetime.fromtimestamp(ms / 1000, tz=start.tzinfo): size
                for ms, size in bytes_by_window_ms.items()
            }
        ),
        reader="raw_table",
    )

"""Re-deriving a polling stream's typed tables from its raw table, in BigQuery alone.

After a schema or parser change, a run launched by hand with the run tag
``cwl/rederive_from: raw`` (a backfill of the windows to redo) reads each step's raw rows from
BigQuery instead of CloudWatch: no FilterLogEvents call, no S3 read, and it works after
CloudWatch's retention has passed. The raw rows are fetched page by page in event order and
normalized chunk by chunk as the load stages them, like a read of CloudWatch: memory does not
grow with the step. The raw rows go through the stream's *current* rules
(filters, redaction) and schema/parser, and replace the step's rows, rejects and raw rows in
one transaction (REPLACE), like any manual load: a redaction rule added later thus reaches the
raw table too.

A window whose typed tables hold more events than its raw rows (loaded before the raw table
existed) is refused: re-deriving it would lose events; reload it from the source instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.raw_events import RAW_SCHEMA, events_from_raw
from cwl_pipeline.load.tables import StreamTables, range_label, rows_in_scope
from cwl_pipeline.polling.read import WindowRangeRead, replace_steps, stream_read, window_scope

REDERIVE_TAG = "cwl/rederive_from"
"""Run tag of a manual load that re-derives its windows from the raw table (value ``raw``)."""
RAW = "raw"


def read_windows_from_raw(
    tables: StreamTables, loader: BigQueryLoader, start: datetime, end: datetime
) -> Iterator[WindowRangeRead]:
    """Re-derive ``[start, end)`` of the stream from its raw table, step by step."""
    stream = tables.stream
    if tables.raw is None:
        raise SourceError(f"stream {stream.name} keeps no raw table (raw: true): nothing to re-derive from")
    for step_start, step_end in replace_steps(start, end, stream.window, stream.windows_per_replace):
        yield _read_step(tables, loader, step_start, step_end)


def _read_step(
    tables: StreamTables, loader: BigQueryLoader, start: datetime, end: datetime
) -> WindowRangeRead:
    """One step read back from the raw table, page by page as the load stages it."""
    stream = tables.stream
    assert tables.raw is not None
    raw_table = tables.raw.table
    in_step = time_scope("timestamp", start, end)
    counts = _raw_counts(loader, raw_table, start, end)
    groups = sorted(counts)
    scope = window_scope(stream, start, end, groups)
    if groups:
        stored = sum(rows_in_scope(loader, tables, scope))
        if stored > sum(counts.values()):
            raise SourceError(
                f"{stream.name} {range_label(start, end)}: the typed tables hold {stored} events, the raw "
                f"table {sum(counts.values())}: its raw rows are incomplete (loaded before the raw table "
                "existed?); reload these windows from the source instead"
            )

    def events() -> Iterator[LogEvent]:
        rows = loader.iter_select(raw_table, RAW_SCHEMA.names, in_step, order_by=("timestamp", "event_id"))
        return events_from_raw(rows)

    return stream_read(
        stream, start, end, groups, events, range_label(start, end),
        facts={"log_groups": groups, "rederived_from": [raw_table]}, keep_raw=True, reader="raw_table",
    )  # fmt: skip


def _raw_counts(loader: BigQueryLoader, raw_table: str, start: datetime, end: datetime) -> dict[str, int]:
    """Raw rows of ``[start, end)`` per log group, counted in BigQuery."""
    where, params = time_scope("timestamp", start, end).with_parameters()
    table = loader.table_sql(raw_table)
    sql = f"SELECT log_group, COUNT(*) AS n FROM {table} WHERE {where} GROUP BY log_group"
    rows = loader.query_rows(sql, params)
    return {str(row["log_group"]): int(row["n"]) for row in rows}

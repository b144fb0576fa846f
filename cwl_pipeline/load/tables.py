"""A stream's BigQuery tables and the scope one load owns in them.

* events and rejects: partitioned by event time (DAY) and clustered on it first, so a
  statement bounded to a window reads about that window's blocks, not the whole day;
* ``<table>_live``: the still-open window's rows, appended by each refresh through the Storage
  Write API (at least once), kept :data:`LIVE_RETENTION`;
* the raw table (optional, ``raw: true``): every event kept, its message as a STRING, with the
  rejects table's metadata columns, so the rejects scope of a load is its raw scope too
  (:mod:`cwl_pipeline.core.raw_events`);
* ``<table>_recent`` (a view): the events table up to a cutoff a window behind the last window
  due to settle, the live table from it on, each event once: what to query for near-real-time
  data;
* ``<table>_counts``: per ingestion hour, event hour and log group, the rows each load
  transaction inserted into (or deleted from) the events and rejects tables, written in that
  same transaction: what BigQuery holds, counted without reading the tables (reconciliation,
  rollups).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from cwl_pipeline.adapters.bigquery_counts import PreparedReplace
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader, ReplaceResult
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.bigquery_staging import StagingTable
from cwl_pipeline.adapters.bigquery_transactions import COUNT_COLUMNS, Replacement, ScopeWrite
from cwl_pipeline.adapters.sql_scopes import Scope
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.raw_events import RAW_COLUMNS
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS, Column
from cwl_pipeline.core.sql_identifiers import quote_identifier
from cwl_pipeline.load.project_keys import DEFAULT_KEYS, ProjectKeys

LIVE_KEY = Column(
    "event_key",
    "INT64",
    description="60-bit hash of the event's id and time (core.key_digest): the _recent view's key",
)
"""The live table's own column: the ``_recent`` view deduplicates retried appends on it and the
time, reading 8 bytes a row where the 56-digit id would be 58."""

LIVE_RETENTION = timedelta(days=3)
"""Partition expiration of the live table: its windows are settled into the events table long before."""


@dataclass(frozen=True)
class StreamTables:
    """A stream's config and the specs of its tables: events, rejects, live, and (if it has
    them) raw and counts, with the name of its ``_recent`` view."""

    stream: StreamConfig
    events: TableSpec
    rejects: TableSpec
    live: TableSpec
    recent_view: str
    raw: TableSpec | None = None
    counts: TableSpec | None = None
    project: ProjectKeys = DEFAULT_KEYS  # the resource and asset keys its definitions use

    @classmethod
    def of(cls, stream: StreamConfig, project: ProjectKeys = DEFAULT_KEYS) -> StreamTables:
        """Derive every spec from the stream config; ``project`` names its resources and keys."""
        schema = stream.schema
        int_columns = [c.name for c in schema.columns if c.type == "INT64"]
        # Clustered on the event time first: window-bounded scans read about the window's blocks.
        clustering = tuple([schema.time_column, "log_group", *int_columns][:4])
        return cls(
            stream=stream,
            project=project,
            events=TableSpec(
                table=stream.table,
                columns=(*schema.columns, *METADATA_COLUMNS),
                partition_column=schema.time_column,
                clustering=clustering,
                description=stream.description or schema.description,
            ),
            live=TableSpec(
                table=f"{stream.table}_live",
                columns=(*schema.columns, *METADATA_COLUMNS, LIVE_KEY),
                partition_column=schema.time_column,
                clustering=(schema.time_column,),
                description=f"Rows of the still-open windows of stream {stream.name} (at least once).",
                partition_expiration=LIVE_RETENTION,
            ),
            recent_view=f"{stream.table}_recent",
            rejects=TableSpec(
                table=stream.rejects_table,
                columns=REJECT_COLUMNS,
                partition_column="timestamp",
                clustering=("timestamp", "log_group", "reason"),
                description=f"Events of stream {stream.name} that did not fit its schema, with the reason.",
            ),
            raw=raw_spec(stream),
            counts=TableSpec(
                table=f"{stream.table}_counts",
                columns=COUNT_COLUMNS,
                partition_column="ingestion_hour",
                clustering=("log_group", "table_name"),
                description=(
                    f"Rows stream {stream.name}'s loads wrote, per ingestion hour, event hour and log group."
                ),
            ),
        )


def raw_spec(stream: StreamConfig) -> TableSpec | None:
    """The stream's raw table, if it keeps one."""
    if stream.raw_table is None:
        return None
    return TableSpec(
        table=stream.raw_table,
        columns=RAW_COLUMNS,
        partition_column="timestamp",
        clustering=("timestamp", "log_group", "log_stream"),
        description=(
            f"Every event stream {stream.name} kept, as read (after filters and redaction): "
            f"its typed tables can be re-derived from it."
        ),
    )


@dataclass(frozen=True)
class LoadScope:
    """The rows one load owns: scopes on the events and on the rejects table."""

    events: Scope
    rejects: Scope


def ensure_tables(loader: BigQueryLoader, tables: StreamTables) -> None:
    """Create the dataset and the tables if missing (and reconcile their columns)."""
    loader.ensure_dataset()
    loader.ensure_table(tables.events)
    loader.ensure_table(tables.rejects)
    if tables.raw is not None:
        loader.ensure_table(tables.raw)
    if tables.counts is not None:
        loader.ensure_table(tables.counts)


def rows_in_scope(loader: BigQueryLoader, tables: StreamTables, scope: LoadScope) -> tuple[int, int]:
    """Rows of the events table and of the rejects table inside ``scope``."""
    return loader.count(tables.events.table, scope.events), loader.count(tables.rejects.table, scope.rejects)


def replace_rows(
    loader: BigQueryLoader,
    tables: StreamTables,
    scope: LoadScope,
    rows: pa.Table | StagingTable,
    rejects: pa.Table | StagingTable,
    label: str,
    *,
    write: ScopeWrite = ScopeWrite.REPLACE,
    stored: LoadScope | None = None,
    raw: pa.Table | StagingTable | None = None,
    decide: Callable[[PreparedReplace], Sequence[Replacement]] | None = None,
) -> ReplaceResult:
    """Write the scoped rows of the events and rejects tables together, in one transaction.

    With ``raw`` (and a raw table), the raw table's rows in the rejects scope are written in
    the same transaction (the raw table has the rejects table's metadata columns).

    By default the scoped rows are replaced. With ``write=ScopeWrite.INSERT_MISSING``, they are
    kept and only rows whose (event id, time) is not there yet are inserted. With ``stored``, a
    row with a copy anywhere in that wider scope (stored by another load) is not inserted
    either, whether the scope is replaced or kept. Rows and
    rejects already staged chunk by chunk (:class:`StagingTable`) are inserted once per key.
    ``decide``: see :meth:`BigQueryLoader.replace`.
    """

    def replacement(
        spec: TableSpec,
        data: pa.Table | StagingTable,
        own: Scope,
        wider: Scope | None,
        counts: TableSpec | None = None,
    ) -> Replacement:
        if isinstance(data, StagingTable):
            return Replacement(
                spec, _NO_ROWS, own, event_keys(spec), write=write, stored=wider, staged=data, counts=counts
            )
        keys = event_keys(spec) if write is ScopeWrite.INSERT_MISSING or wider is not None else ()
        return Replacement(spec, data, own, keys, write=write, stored=wider, counts=counts)

    replacements = [
        replacement(tables.events, rows, scope.events, stored.events if stored else None, tables.counts),
        replacement(
            tables.rejects, rejects, scope.rejects, stored.rejects if stored else None, tables.counts
        ),
    ]
    # The raw table holds the same events again: they are counted once, not in the raw table.
    if tables.raw is not None and raw is not None:
        replacements.append(replacement(tables.raw, raw, scope.rejects, stored.rejects if stored else None))
    return loader.replace(replacements, label=label, decide=decide)


_NO_ROWS = pa.table({})


def event_keys(spec: TableSpec) -> tuple[str, str]:
    """The columns identifying an event in a table: its id and its time (ids alone can repeat
    on the local stack, whose event ids restart at 0)."""
    return ("event_id", spec.partition_column)


def recent_cutoff_sql(tables: StreamTables) -> str:
    """SQL for the time from which the ``_recent`` view reads the live table, and before which
    it reads the events table: the start of the window ending one window length before
    ``CURRENT_TIMESTAMP() - settle_lag``. A window's settled load starts ``settle_lag`` after it
    ends; the view switches to the events table for that window one window length later, so the
    load has that long to finish (windows are aligned to the epoch)."""
    window = int(tables.stream.window.total_seconds())
    behind = int(tables.stream.settle_lag.total_seconds()) + window
    since = f"UNIX_SECONDS(CURRENT_TIMESTAMP()) - {behind}"
    # x - MOD(x, w) rather than DIV(x, w) * w: the same on BigQuery, and the emulator's DIV
    # of an expression is wrong.
    return f"TIMESTAMP_SECONDS({since} - MOD({since}, {window}))"


def recent_view_sql(loader: BigQueryLoader, tables: StreamTables) -> str:
    """The ``_recent`` view: the events table's rows before the cutoff (:func:`recent_cutoff_sql`),
    and the live table's rows from it on, each live event (its key hash and time) once.

    The two sides are disjoint in time, so an event is shown once without looking up the
    events table's ids: only the live side has a window, partitioned by the hash of the
    event's id and time that each append writes (:data:`LIVE_KEY`), and its time. A filter on
    the time column therefore bounds both scans: below the ``UNION ALL`` it is a filter on
    each table's partitioning column, and it keeps or drops whole window partitions, so it can
    run below the window (docs/cost.md, "Reading near-real-time data"). The window has no
    order: copies of one event in the live table (a retried append) differ only in
    ``loaded_at``, so any will do, and the window reads no column beyond the key and time.
    The column list is the events spec's: :func:`ensure_recent_view` replaces the view's query
    when the spec gains a column.
    """
    columns = ", ".join(quote_identifier("column", c.name) for c in tables.events.all_columns)
    key, time = (quote_identifier("column", k) for k in (LIVE_KEY.name, tables.live.partition_column))
    events, live = loader.table_sql(tables.events.table), loader.table_sql(tables.live.table)
    cutoff = recent_cutoff_sql(tables)
    return (
        f"SELECT {columns} FROM {events}\n"
        f"WHERE {time} < {cutoff}\n"
        f"UNION ALL\n"
        f"(SELECT {columns} FROM {live}\n"
        f" WHERE {time} >= {cutoff}\n"
        # Rows appended before the live table had a key hold NULL: each is shown.
        f" QUALIFY {key} IS NULL OR ROW_NUMBER() OVER (PARTITION BY {key}, {time}) = 1)"
    )


def ensure_recent_view(loader: BigQueryLoader, tables: StreamTables) -> None:
    """Create the ``_recent`` view, or replace its query if the events spec changed (run after
    the events and live tables were ensured, so both hold every column it lists)."""
    loader.ensure_view(
        tables.recent_view,
        recent_view_sql(loader, tables),
        f"{tables.events.table} for the windows settled a window ago, {tables.live.table} after them, "
        "each event once.",
    )


def range_label(start: datetime, end: datetime) -> str:
    """Short label of a time range, used in staging table names."""
    return f"{start.strftime('%Y%m%d%H%M')}_{end.strftime('%Y%m%d%H%M')}"

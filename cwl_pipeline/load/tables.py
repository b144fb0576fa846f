"""A stream's BigQuery tables and the scope one load owns in them.

* events and rejects: partitioned by event time (DAY) and clustered on it first, so a
  statement bounded to a window reads about that window's blocks, not the whole day;
* ``<table>_live``: the still-open window's rows, appended by each refresh through the Storage
  Write API (at least once), kept :data:`LIVE_RETENTION`;
* ``<table>_recent`` (a view): the events table plus the live rows it does not hold yet, each
  event once: what to query for near-real-time data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from cwl_pipeline.adapters.bigquery import (
    BigQueryLoader,
    PreparedReplace,
    Replacement,
    ReplaceResult,
    StagingTable,
    TableSpec,
)
from cwl_pipeline.adapters.sql_scopes import Scope
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS
from cwl_pipeline.core.sql_identifiers import quote_identifier

LIVE_RETENTION = timedelta(days=3)
"""Partition expiration of the live table: its windows are settled into the events table long before."""


@dataclass(frozen=True)
class TablePair:
    """Specs of a stream's events table and of its rejects table."""

    events: TableSpec
    rejects: TableSpec
    live: TableSpec
    recent_view: str

    @classmethod
    def of(cls, stream: StreamConfig) -> TablePair:
        """Derive both specs from the stream config."""
        schema = stream.schema
        int_columns = [c.name for c in schema.columns if c.type == "INT64"]
        # Clustered on the event time first: window-bounded scans read about the window's blocks.
        clustering = tuple([schema.time_column, "log_group", *int_columns][:4])
        return cls(
            events=TableSpec(
                table=stream.table,
                columns=(*schema.columns, *METADATA_COLUMNS),
                partition_column=schema.time_column,
                clustering=clustering,
                description=stream.description or schema.description,
            ),
            live=TableSpec(
                table=f"{stream.table}_live",
                columns=(*schema.columns, *METADATA_COLUMNS),
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
        )


@dataclass(frozen=True)
class LoadScope:
    """The rows one load owns: scopes on the events and on the rejects table."""

    events: Scope
    rejects: Scope


def ensure_tables(loader: BigQueryLoader, tables: TablePair) -> None:
    """Create the dataset and both tables if missing (and reconcile their columns)."""
    loader.ensure_dataset()
    loader.ensure_table(tables.events)
    loader.ensure_table(tables.rejects)


def rows_in_scope(loader: BigQueryLoader, tables: TablePair, scope: LoadScope) -> tuple[int, int]:
    """Rows of the events table and of the rejects table inside ``scope``."""
    return loader.count(tables.events.table, scope.events), loader.count(tables.rejects.table, scope.rejects)


def replace_rows(
    loader: BigQueryLoader,
    tables: TablePair,
    scope: LoadScope,
    rows: pa.Table | StagingTable,
    rejects: pa.Table | StagingTable,
    label: str,
    *,
    keep: bool = False,
    stored: LoadScope | None = None,
    decide: Callable[[PreparedReplace], Sequence[Replacement]] | None = None,
) -> ReplaceResult:
    """Replace the scoped rows of the events and rejects tables together, in one transaction.

    With ``keep``, the scoped rows are kept and only rows whose (event id, time) is not there
    yet are inserted. With ``stored``, a row with a copy anywhere in that wider scope (stored
    by another load) is not inserted either, whether the scope is replaced or kept. Rows and
    rejects already staged chunk by chunk (:class:`StagingTable`) are inserted once per key.
    ``decide``: see :meth:`BigQueryLoader.replace`.
    """

    def replacement(
        spec: TableSpec, data: pa.Table | StagingTable, own: Scope, wider: Scope | None
    ) -> Replacement:
        if isinstance(data, StagingTable):
            return Replacement(spec, _NO_ROWS, own, event_keys(spec), keep=keep, stored=wider, staged=data)
        keys = event_keys(spec) if keep or wider is not None else ()
        return Replacement(spec, data, own, keys, keep=keep, stored=wider)

    return loader.replace(
        [
            replacement(tables.events, rows, scope.events, stored.events if stored else None),
            replacement(tables.rejects, rejects, scope.rejects, stored.rejects if stored else None),
        ],
        label=label,
        decide=decide,
    )


_NO_ROWS = pa.table({})


def event_keys(spec: TableSpec) -> tuple[str, str]:
    """The columns identifying an event in a table: its id and its time (ids alone can repeat
    on the local stack, whose event ids restart at 0)."""
    return ("event_id", spec.partition_column)


def recent_view_sql(loader: BigQueryLoader, tables: TablePair) -> str:
    """The ``_recent`` view: every events-table row, plus each live row the events table does
    not hold yet, once."""
    columns = ", ".join(quote_identifier("column", c.name) for c in tables.events.all_columns)
    event_id, time = (quote_identifier("column", k) for k in event_keys(tables.events))
    events, live = loader.table_sql(tables.events.table), loader.table_sql(tables.live.table)
    return (
        f"SELECT {columns} FROM {events}\n"
        f"UNION ALL\n"
        f"SELECT {columns} FROM {live} AS live\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {events} AS settled WHERE settled.{event_id} = live.{event_id} "
        f"AND settled.{time} = live.{time} "
        # Live rows are at most LIVE_RETENTION old: the events table is read for those days only.
        f"AND settled.{time} >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {LIVE_RETENTION.days + 1} DAY))\n"
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY live.{event_id}, live.{time} ORDER BY live.`loaded_at`) = 1"
    )


def range_label(start: datetime, end: datetime) -> str:
    """Short label of a time range, used in staging table names."""
    return f"{start.strftime('%Y%m%d%H%M')}_{end.strftime('%Y%m%d%H%M')}"

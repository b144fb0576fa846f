"""The ``<table>_recent`` view against the emulator: the events table before the cutoff, the
live table from it on, each event once, a time filter applied to both tables, and columns
added to the events spec shown.

That a time filter prunes both tables' partitions on BigQuery cannot be seen here (the emulator
bills nothing); the view's shape that makes it possible is checked, and ``make smoke-bigquery``
compares the view's dry-run bytes with its tables' on a real project (docs/cost.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.config import parse_config
from cwl_pipeline.core.key_digest import key_hash
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.windows import floor_to_window
from cwl_pipeline.load.tables import LIVE_KEY, StreamTables, ensure_recent_view, recent_view_sql

TS = Column("timestamp", "TIMESTAMP", source="event_timestamp", required=True)
EVENT_ID = Column("event_id", "STRING", source="event_id", required=True)
N = Column("n", "INT64")
TENANT = Column("tenant", "STRING")
# The stream the tables belong to: the view is built from the specs alone.
STREAM = parse_config(
    {
        "bigquery": {"project": "cwl-local", "dataset": "x"},
        "streams": [
            {"name": "ev", "table": "ev", "source": {"log_groups": ["/ev"]}, "start": "2026-11-01T00:00:00Z"}
        ],
    }
).streams[0]


def tables_with(*columns: Column) -> StreamTables:
    """Events, live and rejects specs with ``columns``, and the view ``ev_recent``."""

    def spec(table: str, *more: Column) -> TableSpec:
        return TableSpec(
            table=table, columns=(*columns, *more), partition_column="timestamp", clustering=("timestamp",)
        )

    return StreamTables(
        stream=STREAM,
        events=spec("ev"),
        rejects=spec("ev_rejects"),
        live=spec("ev_live", LIVE_KEY),
        recent_view="ev_recent",
    )


def ensure(loader: BigQueryLoader, tables: StreamTables) -> None:
    """What a refresh ensures before it appends (``load.service``)."""
    loader.ensure_dataset()
    loader.ensure_table(tables.events)
    loader.ensure_table(tables.live)
    ensure_recent_view(loader, tables)


def insert(loader: BigQueryLoader, table: str, rows: list[dict]) -> None:
    """One INSERT per row (``loaded_at`` now), its values as query parameters; a live row gets
    its key hash, as an append writes it, unless it gives one."""
    target = loader.table_sql(table)
    for i, row in enumerate(rows):
        if table == "ev_live" and LIVE_KEY.name not in row:
            micros = int(row["timestamp"].timestamp()) * 1_000_000 + row["timestamp"].microsecond
            row = {**row, LIVE_KEY.name: key_hash(row["event_id"], micros)}
        names = ", ".join(f"`{k}`" for k in row)
        params = [
            bigquery.ScalarQueryParameter(
                f"p{i}_{k}",
                "TIMESTAMP"
                if isinstance(v, datetime)
                else "INT64"
                if isinstance(v, int) or k == LIVE_KEY.name
                else "STRING",
                v,
            )
            for k, v in row.items()
        ]
        values = ", ".join(f"@p{i}_{k}" for k in row)
        loader.query_rows(
            f"INSERT INTO {target} ({names}, `loaded_at`) VALUES ({values}, CURRENT_TIMESTAMP())",
            params,
        )


def view_rows(loader: BigQueryLoader, columns: str, where: str = "TRUE", params=()) -> list[tuple]:
    rows = loader.query_rows(
        f"SELECT {columns} FROM {loader.table_sql('ev_recent')} WHERE {where} ORDER BY `timestamp`, event_id",
        list(params),
    )
    return [tuple(r.values()) for r in rows]


@pytest.fixture
def loader(bq_client, unique_name) -> BigQueryLoader:
    return BigQueryLoader(bq_client, f"ds_recent_{unique_name}", location="US")


def steady_cutoff() -> datetime:
    """The view's cutoff (``recent_cutoff_sql``) computed here, once it will not move for a
    minute: the start of the window ending one window before now less the settle lag."""
    behind = STREAM.settle_lag + STREAM.window
    while True:
        now = datetime.now(UTC)
        cutoff = floor_to_window(now - behind, STREAM.window)
        if cutoff + STREAM.window - (now - behind) > timedelta(minutes=1):
            return cutoff
        time.sleep(5)


def test_each_event_once_events_before_the_cutoff_live_from_it_and_a_filter_bounds_both(loader):
    tables = tables_with(TS, EVENT_ID, N)
    ensure(loader, tables)
    cutoff = steady_cutoff()
    old, settled, open_ = (
        cutoff - timedelta(days=2),
        cutoff - timedelta(minutes=1),
        cutoff + timedelta(minutes=1),
    )
    insert(
        loader,
        "ev",
        [
            {"timestamp": old, "event_id": "c", "n": 3},
            {"timestamp": settled, "event_id": "a", "n": 1},
            # Loaded by hand into a window the view still reads from the live table.
            {"timestamp": open_, "event_id": "d", "n": 4},
        ],
    )
    # The live table holds at-least-once copies: "a" (settled since, with a stale value), "b"
    # twice, "d", and "e", a late event whose window is past the cutoff and not swept yet; and
    # "f", appended before the live table had a key.
    insert(
        loader,
        "ev_live",
        [
            {"timestamp": settled, "event_id": "a", "n": 100},
            {"timestamp": open_, "event_id": "b", "n": 2},
            {"timestamp": open_, "event_id": "b", "n": 2},
            {"timestamp": open_, "event_id": "d", "n": 40},
            {"timestamp": settled, "event_id": "e", "n": 5},
            {"timestamp": open_, "event_id": "f", "n": 6, LIVE_KEY.name: None},
        ],
    )
    assert view_rows(loader, "event_id, n") == [("c", 3), ("a", 1), ("b", 2), ("d", 40), ("f", 6)]
    since = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", cutoff - timedelta(hours=1))]
    assert view_rows(loader, "event_id, n", "`timestamp` >= @since", since) == [
        ("a", 1),
        ("b", 2),
        ("d", 40),
        ("f", 6),
    ]
    # An id seen at another time is another event (ids restart on the local stack).
    insert(loader, "ev_live", [{"timestamp": open_ + timedelta(seconds=1), "event_id": "b", "n": 7}])
    assert view_rows(loader, "event_id, n") == [("c", 3), ("a", 1), ("b", 2), ("d", 40), ("f", 6), ("b", 7)]


def test_the_view_has_one_window_on_the_live_side_keyed_on_id_and_time(loader):
    sql = recent_view_sql(loader, tables_with(TS, EVENT_ID, N))
    events_side, live_side = sql.split("UNION ALL")
    # One window, on the live table only, partitioned by the key hash and time: a filter on the
    # time column can run below it, and no event id is read.
    assert " OVER (" not in events_side and live_side.count(" OVER (") == 1
    assert "PARTITION BY `event_key`, `timestamp`) = 1" in live_side  # reads no other column
    assert "`event_id`" not in live_side.split("WHERE")[1]
    assert loader.table_sql("ev") in events_side and loader.table_sql("ev_live") in live_side
    assert "NOT EXISTS" not in sql and sql.count(loader.table_sql("ev")) == 1


def test_a_column_added_to_the_events_spec_appears_in_the_view(loader):
    v1 = tables_with(TS, EVENT_ID, N)
    ensure(loader, v1)
    cutoff = steady_cutoff()
    insert(loader, "ev", [{"timestamp": cutoff - timedelta(hours=1), "event_id": "a", "n": 1}])
    assert (
        view_rows(loader, "*")
        and "tenant" not in loader.query_rows(f"SELECT * FROM {loader.table_sql('ev_recent')}")[0]
    )

    v2 = tables_with(TS, EVENT_ID, N, TENANT)  # schema evolution: both tables gain the column
    ensure(loader, v2)
    insert(
        loader,
        "ev_live",
        [{"timestamp": cutoff + timedelta(minutes=1), "event_id": "b", "n": 2, "tenant": "acme"}],
    )
    assert view_rows(loader, "event_id, tenant") == [("a", None), ("b", "acme")]

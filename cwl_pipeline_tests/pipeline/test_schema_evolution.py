"""Schema evolution against the emulator: add, remove, relax and retype columns of a live table.

Each test loads rows with one declaration, changes the declaration, and loads again, the way a
config change reaches a running stream. The emulator does not enforce REQUIRED on inserts (see
NOTES), so where REQUIRED matters the tests check the table's modes, which real BigQuery
enforces, rather than an insert failure.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec, compare_schema
from cwl_pipeline.adapters.bigquery_transactions import Replacement
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.config import load_config
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.pipeline.polling import WINDOW, failure_text, materialize, put, window_start

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
TS = Column("ts", "TIMESTAMP", source="event_timestamp", required=True)
N = Column("n", "INT64")
LABEL = Column("label", "STRING", required=True)
ARROW = {"TIMESTAMP": pa.timestamp("us", tz="UTC"), "INT64": pa.int64(), "STRING": pa.string()}


def spec(*columns: Column) -> TableSpec:
    return TableSpec(table="evolving", columns=columns, partition_column="ts")


@pytest.fixture
def loader(bq_client, unique_name) -> BigQueryLoader:
    loader = BigQueryLoader(bq_client, f"ds_evolve_{unique_name}", location="US")
    loader.ensure_dataset()
    return loader


def load(loader: BigQueryLoader, table: TableSpec, start: datetime, rows: list[dict]) -> None:
    """Replace the hour from ``start`` with ``rows`` (each a dict of the declared columns)."""
    schema = pa.schema([(c.name, ARROW[c.type]) for c in table.columns])
    data = pa.Table.from_pylist(rows, schema=schema)
    loader.replace([Replacement(table, data, time_scope("ts", start, start + HOUR))])


def columns_of(loader: BigQueryLoader) -> dict[str, tuple[str, str]]:
    table = loader.client.get_table(loader.table_id("evolving"))
    return {f.name: (f.field_type, f.mode) for f in table.schema}


def stored(loader: BigQueryLoader, columns: str) -> list[tuple]:
    rows = loader.query_rows(f"SELECT {columns} FROM {loader.table_sql('evolving')} ORDER BY ts, n")
    return [tuple(r.values()) for r in rows]


def test_adding_a_required_column_adds_it_nullable_and_later_loads_work(loader, caplog):
    v1 = spec(TS, N)
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1}, {"ts": T0 + timedelta(minutes=5), "n": 2}])
    tenant = Column("tenant", "STRING", required=True, description="Owning tenant")
    v2 = spec(TS, N, tenant)
    # Before the change the new column is a real difference...
    assert loader.schema_differences(v2) == ["missing column tenant STRING REQUIRED"]
    with caplog.at_level(logging.WARNING, logger="cwl_pipeline.adapters.bigquery_client"):
        loader.ensure_table(v2)
    assert columns_of(loader)["tenant"] == ("STRING", "NULLABLE")
    description = loader.client.get_table(loader.table_id("evolving")).schema[-1].description
    assert description.startswith("Owning tenant (Added on ") and "Declared REQUIRED" in description
    assert "as NULLABLE although declared REQUIRED: BigQuery adds only NULLABLE columns" in caplog.text
    # ...after it, a NULLABLE table column declared REQUIRED is compatible: no difference left,
    # a note says why, and the next ensure_table changes nothing.
    comparison = loader.compare_schema(v2)
    assert comparison.differences() == []
    assert [c.name for c in comparison.relaxed] == ["tenant"]
    assert "BigQuery adds only NULLABLE columns" in comparison.notes()[0]
    assert not comparison.changes_needed
    before = loader.client.get_table(loader.table_id("evolving")).etag
    loader.ensure_table(v2)
    assert loader.client.get_table(loader.table_id("evolving")).etag == before
    # New rows carry the column; rows loaded before hold NULL.
    load(loader, v2, T0 + HOUR, [{"ts": T0 + HOUR, "n": 3, "tenant": "acme"}])
    assert stored(loader, "n, tenant") == [(1, None), (2, None), (3, "acme")]


def test_adding_a_nullable_column_in_the_middle_of_the_declaration(loader):
    v1 = spec(TS, N)
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1}])
    v2 = spec(TS, Column("note", "STRING"), N)
    loader.ensure_table(v2)
    assert list(columns_of(loader)) == ["ts", "n", "loaded_at", "note"]  # appended, never inserted
    comparison = loader.compare_schema(v2)
    assert comparison.differences() == [] and comparison.reordered
    assert comparison.notes() == [
        "the table's columns are in another order than declared (added columns come last): "
        "harmless, every INSERT names its columns"
    ]
    load(loader, v2, T0 + HOUR, [{"ts": T0 + HOUR, "note": "hi", "n": 2}])
    assert stored(loader, "n, note") == [(1, None), (2, "hi")]


def test_removing_a_column_keeps_it_relaxed_and_new_rows_hold_null(loader, caplog):
    v1 = spec(TS, N, LABEL)
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1, "label": "old"}])
    v2 = spec(TS, N)
    # Still REQUIRED on the table: an INSERT that leaves it NULL would fail on BigQuery.
    assert loader.schema_differences(v2) == [
        "undeclared column label is REQUIRED on the table (the loader leaves it NULL)"
    ]
    with caplog.at_level(logging.WARNING, logger="cwl_pipeline.adapters.bigquery_client"):
        loader.ensure_table(v2)
    assert columns_of(loader)["label"] == ("STRING", "NULLABLE")  # kept, relaxed
    assert "relaxed column label from REQUIRED to NULLABLE: no longer declared" in caplog.text
    comparison = loader.compare_schema(v2)
    assert comparison.differences() == []
    assert comparison.undeclared == (("label", "STRING", "NULLABLE"),)
    assert comparison.notes() == [
        "label STRING NULLABLE is no longer declared: the table keeps it and its data, "
        "new rows hold NULL there"
    ]
    load(loader, v2, T0 + HOUR, [{"ts": T0 + HOUR, "n": 2}])
    assert stored(loader, "n, label") == [(1, "old"), (2, None)]
    # A window loaded again after the change is rewritten: its rows hold NULL there too.
    load(loader, v2, T0, [{"ts": T0, "n": 1}])
    assert stored(loader, "n, label") == [(1, None), (2, None)]


def test_a_required_table_column_declared_nullable_is_relaxed(loader):
    v1 = spec(TS, N, LABEL)
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1, "label": "x"}])
    v2 = spec(TS, N, Column("label", "STRING"))
    assert loader.schema_differences(v2) == ["column label is REQUIRED on the table but declared NULLABLE"]
    loader.ensure_table(v2)
    assert columns_of(loader)["label"] == ("STRING", "NULLABLE")
    assert loader.schema_differences(v2) == [] and loader.compare_schema(v2).notes() == []
    load(loader, v2, T0 + HOUR, [{"ts": T0 + HOUR, "n": 2, "label": None}])
    assert stored(loader, "n, label") == [(1, "x"), (2, None)]


def test_a_nullable_column_declared_required_later_stays_nullable(loader):
    v1 = spec(TS, N, Column("label", "STRING"))
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1, "label": None}])
    v2 = spec(TS, N, LABEL)
    before = loader.client.get_table(loader.table_id("evolving")).etag
    loader.ensure_table(v2)  # BigQuery cannot tighten a column: nothing to do
    assert loader.client.get_table(loader.table_id("evolving")).etag == before
    comparison = loader.compare_schema(v2)
    assert comparison.differences() == [] and [c.name for c in comparison.relaxed] == ["label"]
    load(loader, v2, T0 + HOUR, [{"ts": T0 + HOUR, "n": 2, "label": "y"}])
    assert stored(loader, "n, label") == [(1, None), (2, "y")]


def test_retyping_a_column_is_refused_with_both_types_and_what_to_do(loader):
    v1 = spec(TS, N, LABEL)
    loader.ensure_table(v1)
    load(loader, v1, T0, [{"ts": T0, "n": 1, "label": "x"}])
    before = columns_of(loader)
    table_id = loader.table_id("evolving")
    # STRING -> INT64: no in-place change exists. The new column of the same declaration is
    # not added either: a refused schema leaves the table as it was.
    with pytest.raises(DestinationError) as refused:
        loader.ensure_table(spec(TS, N, Column("label", "INT64", required=True), Column("extra", "STRING")))
    message = str(refused.value)
    assert message.startswith(f"table {table_id}: Column label is STRING on the table but declared INT64.")
    assert "BigQuery cannot change STRING to INT64 in place" in message
    assert (
        "only widens INT64 to NUMERIC or BIGNUMERIC or FLOAT64; NUMERIC to BIGNUMERIC or FLOAT64" in message
    )
    assert "under a new column name" in message and "a new table" in message
    assert message.endswith("Until then its loads are refused; nothing was changed.")
    assert columns_of(loader) == before
    # INT64 -> FLOAT64: BigQuery can widen in place; the message gives the statement.
    with pytest.raises(DestinationError) as widen:
        loader.ensure_table(spec(TS, Column("n", "FLOAT64"), LABEL))
    assert "Column n is INT64 on the table but declared FLOAT64" in str(widen.value)
    assert f"ALTER TABLE `{table_id}` ALTER COLUMN `n` SET DATA TYPE FLOAT64" in str(widen.value)
    assert columns_of(loader) == before
    # The load path refuses too: ensure_table runs before every replacement.
    assert loader.schema_differences(spec(TS, Column("n", "FLOAT64"), LABEL)) == [
        "column n is INT64 on the table but declared FLOAT64"
    ]
    assert stored(loader, "n, label") == [(1, "x")]


def test_comparison_matches_names_case_insensitively_and_refuses_repeated():
    fields = [
        bigquery.SchemaField("TS", "TIMESTAMP", mode="REQUIRED"),
        bigquery.SchemaField("n", "INTEGER", mode="REPEATED"),
        bigquery.SchemaField("loaded_at", "TIMESTAMP"),
    ]
    comparison = compare_schema(fields, spec(TS, N))
    assert comparison.missing == () and [r.column.name for r in comparison.retyped] == ["n"]
    assert comparison.differences() == ["column n is ARRAY<INT64> on the table but declared INT64"]


def evolving_config(write_config, local_aws, local_bigquery, group: str, dataset: str, columns: str):
    path = write_config(
        f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}"}}
schemas:
  evolving:
    columns:
      - {{name: ts, type: TIMESTAMP, source: event_timestamp, required: true}}
{columns}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    table: app_events
    schema: evolving
    window: 15m
    max_reject_rate: 0.5
    start: "2026-01-01T00:00:00Z"
"""
    )
    return build_definitions(load_config(path))


def test_a_stream_keeps_loading_through_schema_changes(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    group, dataset = f"/test/evolve-{unique_name}", f"ds_evolve_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    first = window_start() - WINDOW
    second = first + WINDOW

    def config(columns: list[str]):
        lines = "\n".join(f"      - {{{c}}}" for c in columns)
        return evolving_config(write_config, local_aws, local_bigquery, group, dataset, lines)

    session = "name: session_id, type: INT64, required: true"
    put(logs_client, group, [(first + timedelta(minutes=1), {"session_id": 1, "action": "view"})])
    materialize(config([session, "name: action, type: STRING"]), partition_key(first))

    # v2: `action` removed, `tenant` added as REQUIRED (no default: an event without it is rejected).
    v2 = config([session, "name: tenant, type: STRING, required: true"])
    put(
        logs_client,
        group,
        [
            (second + timedelta(minutes=1), {"session_id": 2, "action": "click", "tenant": "acme"}),
            (second + timedelta(minutes=2), {"session_id": 3}),
        ],
    )
    result = materialize(v2, partition_key(second))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    schema = checks["schema_matches"]
    assert schema.passed, schema.metadata
    assert schema.metadata["differences"].value == "none"
    assert schema.metadata["declared_required_nullable_on_table"].value == "tenant"
    assert schema.metadata["undeclared_columns_kept"].value == "action"
    assert "BigQuery adds only NULLABLE columns" in schema.metadata["compatible_differences"].value
    assert "action STRING NULLABLE is no longer declared" in schema.metadata["compatible_differences"].value
    assert checks["completeness"].passed
    table = f"cwl-local.{dataset}.app_events"
    rows = [
        tuple(r.values())
        for r in bq_client.query(f"SELECT session_id, action, tenant FROM `{table}` ORDER BY ts").result()
    ]
    assert rows == [(1, "view", None), (2, None, "acme")]
    rejects = list(bq_client.query(f"SELECT reason FROM `{table}_rejects`").result())
    assert [r["reason"] for r in rejects] == ["missing_required:tenant"]  # the pipeline enforces it

    # v3: session_id retyped: the load is refused with a message that says what to do.
    v3 = config(["name: session_id, type: STRING, required: true", "name: tenant, type: STRING"])
    failed = materialize(v3, partition_key(second), raise_on_error=False)
    assert not failed.success
    text = failure_text(failed)
    assert "Column session_id is INT64 on the table but declared STRING" in text
    assert "BigQuery cannot change INT64 to STRING in place" in text
    after = [
        tuple(r.values()) for r in bq_client.query(f"SELECT session_id FROM `{table}` ORDER BY ts").result()
    ]
    assert after == [(1,), (2,)]

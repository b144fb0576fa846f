"""The Storage Write path against its documented contract, on the emulator's real gRPC server.

Appends go through :mod:`cwl_pipeline_tests.faults.storage_write_stand_in`, which forwards to
the emulator what real BigQuery accepts and refuses the rest (an undocumented Arrow type, a
column the table lacks, an oversized request), and records each connection's metadata and
request sizes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import grpc
import pyarrow as pa
import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport
from google.cloud.bigquery_storage_v1.writer import AppendRowsStream

from cwl_pipeline.adapters.bigquery_write import MAX_REQUEST_BYTES, SchemaNotYetAccepted, StreamAppender
from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline.local.processes import LOCAL_PROJECT
from cwl_pipeline_tests.pipeline.polling import WINDOW, failure_text, materialize, put

T = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
SCHEMA = [
    bigquery.SchemaField("ts", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("n", "INTEGER"),
    bigquery.SchemaField("x", "FLOAT"),
    bigquery.SchemaField("ok", "BOOLEAN"),
    bigquery.SchemaField("s", "STRING"),
    bigquery.SchemaField("j", "JSON"),
]


@pytest.fixture
def write_client(storage_write):
    channel = grpc.insecure_channel(
        storage_write.endpoint, options=[("grpc.max_send_message_length", 64 * 2**20)]
    )
    yield BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
    channel.close()


@pytest.fixture
def dataset(bq_client, unique_name) -> str:
    name = f"ds_write_{unique_name}"
    bq_client.create_dataset(name)
    return name


def make_table(bq_client, dataset: str, schema=SCHEMA, name: str = "t") -> str:
    bq_client.create_table(bigquery.Table(f"{LOCAL_PROJECT}.{dataset}.{name}", schema=schema))
    return name


def rows_of(bq_client, dataset: str, table: str, columns: str = "n, ts") -> list[tuple]:
    sql = f"SELECT {columns} FROM `{LOCAL_PROJECT}.{dataset}.{table}` ORDER BY n"
    return [tuple(r.values()) for r in bq_client.query(sql).result()]


def pipeline_rows(n: int = 2) -> pa.Table:
    """Rows as the pipeline holds them: millisecond timestamps, JSON as marked strings."""
    return pa.table(
        {
            "ts": pa.array([T.replace(microsecond=123000)] * n, pa.timestamp("ms", tz="UTC")),
            "n": pa.array(range(n), pa.int64()),
            "x": pa.array([0.5] * n, pa.float64()),
            "ok": pa.array([True] * n),
            "s": pa.array(["a"] * n),
            "j": pa.array(['{"k": 1}'] * n),
        }
    )


def test_appends_carry_the_routing_header_and_the_documented_types(
    bq_client, dataset, write_client, storage_write
):
    table = make_table(bq_client, dataset)
    appender = StreamAppender(write_client, LOCAL_PROJECT, dataset)
    assert appender.append(table, pipeline_rows()) == 1

    [call] = storage_write.calls
    # The library's writer names the stream in the header BigQuery routes the request by (the
    # generated client adds an empty one of its own for a streaming call).
    assert f"write_stream={appender.stream_name(table)}" in call.header("x-goog-request-params")
    assert call.schema is not None and call.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert not call.refusals
    stored = T.replace(microsecond=123000)
    assert rows_of(bq_client, dataset, table) == [(0, stored), (1, stored)]


def send(write_client, stream: str, data: pa.Table) -> types.AppendRowsResponse:
    """One append of ``data`` as is (no conversion) through the library's writer."""
    template = types.AppendRowsRequest(
        write_stream=stream,
        arrow_rows=types.AppendRowsRequest.ArrowData(
            writer_schema=types.ArrowSchema(serialized_schema=data.schema.serialize().to_pybytes())
        ),
    )
    writer = AppendRowsStream(write_client, template)
    try:
        request = types.AppendRowsRequest(write_stream=stream)
        request.arrow_rows.rows.serialized_record_batch = data.to_batches()[0].serialize().to_pybytes()
        return writer.send(request).result()
    finally:
        if writer.is_active:
            writer.close()


def test_the_stand_in_refuses_what_bigquery_refuses_and_accepts_what_it_accepts(
    bq_client, dataset, write_client, storage_write
):
    table = make_table(bq_client, dataset)
    stream = f"projects/{LOCAL_PROJECT}/datasets/{dataset}/tables/{table}/streams/_default"
    old = pipeline_rows(1)  # the shape the appender used to send: timestamp[ms, UTC]
    with pytest.raises(gexc.InvalidArgument, match=r"timestamp\[ms, tz=UTC\] of field ts"):
        send(write_client, stream, old)
    with pytest.raises(gexc.InvalidArgument, match="extra fields"):
        send(write_client, stream, old.append_column("unknown", pa.array([1])))
    assert rows_of(bq_client, dataset, table) == []

    def with_ts(kind: pa.DataType, n: int) -> pa.Table:
        data = pipeline_rows(1).set_column(0, "ts", pa.array([T], kind))
        return data.set_column(1, "n", pa.array([n], pa.int64()))

    send(write_client, stream, with_ts(pa.timestamp("us", tz="UTC"), 1))  # documented
    send(write_client, stream, with_ts(pa.timestamp("us"), 2))  # Google's own sample sends this
    send(write_client, stream, with_ts(pa.timestamp("us", tz="UTC"), 3).drop_columns(["x", "j"]))
    assert rows_of(bq_client, dataset, table) == [(1, T), (2, T), (3, T)]


def test_a_burst_of_large_events_is_appended_in_requests_under_the_limit(
    bq_client, dataset, write_client, storage_write
):
    schema = [bigquery.SchemaField("n", "INTEGER"), bigquery.SchemaField("message", "STRING")]
    table = make_table(bq_client, dataset, schema)
    messages = [f"m{i}" for i in range(20_000)] + [chr(65 + i % 26) * 400_000 for i in range(30)]
    data = pa.table({"n": pa.array(range(len(messages)), pa.int64()), "message": messages})

    requests = StreamAppender(write_client, LOCAL_PROJECT, dataset).append(table, data)

    sizes = [s for c in storage_write.calls for s in c.request_sizes]
    assert requests == len(sizes) >= 2 and max(sizes) <= MAX_REQUEST_BYTES
    sql = f"SELECT COUNT(*) AS n, SUM(LENGTH(message)) AS chars FROM `{LOCAL_PROJECT}.{dataset}.{table}`"
    [row] = bq_client.query(sql).result()
    assert (row["n"], row["chars"]) == (data.num_rows, sum(len(m) for m in messages))


def add_column(bq_client, dataset: str, table: str, name: str, kind: str = "STRING") -> None:
    # DDL then tables.update, as the pipeline's own schema evolution does: the emulator changes
    # its stored table on the first and its table metadata on the second.
    table_id = f"{LOCAL_PROJECT}.{dataset}.{table}"
    bq_client.query(f"ALTER TABLE `{table_id}` ADD COLUMN {name} {kind}").result()
    bq_table = bq_client.get_table(table_id)
    if name not in [f.name for f in bq_table.schema]:
        bq_table.schema = [*bq_table.schema, bigquery.SchemaField(name, kind)]
        bq_client.update_table(bq_table, ["schema"])


def test_an_append_refused_for_a_new_column_is_retried_until_the_backend_knows_it(
    bq_client, dataset, write_client, storage_write
):
    # The emulator accepts a new column at once; real BigQuery's Storage Write backend "detects
    # schema changes after a short time, on the order of minutes" (Storage Write API best
    # practices). The stand-in holds the schema it saw to produce that delay.
    table = make_table(bq_client, dataset)
    StreamAppender(write_client, LOCAL_PROJECT, dataset).append(table, pipeline_rows(1))
    storage_write.hold_schemas()
    add_column(bq_client, dataset, table, "tenant")
    waits: list[float] = []

    def backend_catches_up(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            storage_write.release_schemas()

    appender = StreamAppender(write_client, LOCAL_PROJECT, dataset, schema_wait=60, sleep=backend_catches_up)
    data = pipeline_rows(3).slice(1).append_column("tenant", pa.array(["acme", "beta"]))
    assert appender.append(table, data) == 1

    assert len(waits) == 2 and sum(waits) <= 60
    assert [len(c.refusals) for c in storage_write.calls] == [0, 1, 1, 0]
    assert rows_of(bq_client, dataset, table, "n, tenant") == [(0, None), (1, "acme"), (2, "beta")]


def test_an_append_still_refused_after_the_bound_fails_and_says_where_the_rows_go(
    bq_client, dataset, write_client, storage_write
):
    table = make_table(bq_client, dataset)
    StreamAppender(write_client, LOCAL_PROJECT, dataset).append(table, pipeline_rows(1))
    storage_write.hold_schemas()
    add_column(bq_client, dataset, table, "tenant")
    waits: list[float] = []
    appender = StreamAppender(write_client, LOCAL_PROJECT, dataset, schema_wait=20, sleep=waits.append)
    data = pipeline_rows(1).append_column("tenant", pa.array(["acme"]))
    with pytest.raises(SchemaNotYetAccepted, match="appended again by the next refresh"):
        appender.append(table, data)
    assert sum(waits) == 20  # bounded by schema_wait
    assert rows_of(bq_client, dataset, table) == [(0, T.replace(microsecond=123000))]


def live_config(write_config, local_aws, local_bigquery, storage_write, group, dataset, columns: list[str]):
    lines = "\n".join(f"      - {{{c}}}" for c in columns)
    path = write_config(
        f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}",
            storage_write_endpoint: "{storage_write.endpoint}", retry_timeout: 1s}}
schemas:
  evolving:
    columns:
      - {{name: ts, type: TIMESTAMP, source: event_timestamp, required: true}}
      - {{name: session_id, type: INT64, required: true}}
{lines}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    table: app_events
    schema: evolving
    window: 15m
    start: "2026-01-01T00:00:00Z"
"""
    )
    return build_definitions(load_config(path))


def test_a_refresh_after_a_schema_change_loses_no_row(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, storage_write
):
    group, dataset = f"/test/live-{unique_name}", f"ds_live_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    now = datetime.now(UTC)
    start = floor_to_window(now, WINDOW)
    if now - start < timedelta(seconds=20):  # room for events inside the open window
        start -= WINDOW
    key, instance = partition_key(start), dg.DagsterInstance.ephemeral()
    refresh = {"cwl/load": "refresh"}

    def defs(*columns: str):
        endpoints = (local_aws, local_bigquery, storage_write)
        return live_config(write_config, *endpoints, group, dataset, list(columns))

    def ids(table: str) -> list[tuple]:
        sql = f"SELECT DISTINCT session_id, tenant FROM `cwl-local.{dataset}.{table}` ORDER BY session_id"
        return [tuple(r.values()) for r in bq_client.query(sql).result()]

    put(logs_client, group, [(start + timedelta(seconds=1), {"session_id": 1, "tenant": "acme"})])
    materialize(defs(), key, instance=instance, tags=refresh)

    # The config gains a column: the refresh adds it to the live table, but the backend does
    # not accept it yet (the stand-in holds the schema it saw, as BigQuery does for minutes).
    storage_write.hold_schemas()
    v2 = defs("name: tenant, type: STRING")
    put(logs_client, group, [(start + timedelta(seconds=2), {"session_id": 2, "tenant": "beta"})])
    failed = materialize(v2, key, raise_on_error=False, instance=instance, tags=refresh)
    assert not failed.success and "appended again by the next refresh" in failure_text(failed)

    storage_write.release_schemas()
    materialize(v2, key, instance=instance, tags=refresh)
    live = ids("app_events_live")  # at least once: event 1 may be appended again (overlap)
    assert {sid for sid, _ in live} == {1, 2} and (2, "beta") in live

    settled = materialize(v2, key, instance=instance, tags={"cwl/load": "settled"})
    assert all(c.passed for c in settled.get_asset_check_evaluations())
    assert ids("app_events") == [(1, "acme"), (2, "beta")]

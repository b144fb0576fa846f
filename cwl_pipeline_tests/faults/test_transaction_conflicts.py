"""Concurrent BigQuery transactions on one table: those that mutate it conflict, appends do not.

Real BigQuery cancels a multi-statement transaction that mutates a table while another
transaction mutating that table is in flight ("Transaction is aborted due to concurrent update
against table …", reason ``invalidQuery``); the emulator simply runs them one after the other.
So these tests turn on the fault proxy's conflict emulation
(``FaultProxy.emulate_transaction_conflicts``): a transaction meeting one in flight on the
same table gets BigQuery's error and never reaches the emulator, while transactions that only
append are never cancelled and read the snapshot they started with. Everything else is real: the
google-cloud-bigquery client, the emulator, the loader, the rows read back.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from google.api_core.exceptions import BadRequest, Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.bigquery_transactions import Replacement, is_transaction_conflict
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.core.schema import Column
from cwl_pipeline.local.processes import LOCAL_PROJECT
from cwl_pipeline_tests.faults.fault_proxy import (
    CONCURRENT_UPDATE,
    FaultProxy,
    pinned_declarations,
    snapshot_reads,
    transaction_tables,
)
from cwl_pipeline_tests.faults.fault_stack import staging_tables

EVENTS = TableSpec(
    table="events",
    columns=(
        Column("timestamp", "TIMESTAMP", required=True),
        Column("event_id", "STRING", required=True),
        Column("writer", "INT64"),
    ),
    partition_column="timestamp",
)
REJECTS = TableSpec(
    table="events_rejects",
    columns=(Column("timestamp", "TIMESTAMP", required=True), Column("writer", "INT64")),
    partition_column="timestamp",
)
WINDOW_START = datetime(2026, 11, 20, 10, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(minutes=15)
EVENT_IDS = [f"e{i}" for i in range(5)]


def client_on(url: str) -> bigquery.Client:
    """A real client whose every call goes to ``url``."""
    return bigquery.Client(
        project=LOCAL_PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


@pytest.fixture
def dataset(bq_client, unique_name) -> str:
    """A fresh dataset holding the events and rejects tables, created straight on the emulator."""
    loader = BigQueryLoader(bq_client, f"ds_conflict_{unique_name}", location="US")
    loader.ensure_dataset()
    loader.ensure_table(EVENTS)
    loader.ensure_table(REJECTS)
    return loader.dataset


def table_rows(bq_client: bigquery.Client, dataset: str, table: str, columns: str) -> list[tuple]:
    """Every row of ``table``, read straight from the emulator (the truth)."""
    sql = f"SELECT {columns} FROM `{LOCAL_PROJECT}.{dataset}.{table}` ORDER BY {columns}"
    return [tuple(row.values()) for row in bq_client.query(sql).result()]


def writer_script(dataset: str, writer: int) -> str:
    """A transaction that replaces the window with the five events of ``writer``."""
    target = f"`{LOCAL_PROJECT}.{dataset}.events`"
    values = ", ".join(f"(TIMESTAMP '2026-11-20 10:05:00+00', '{e}', {writer})" for e in EVENT_IDS)
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {target} WHERE `timestamp` >= TIMESTAMP '2026-11-20 10:00:00+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-20 10:15:00+00';\n"
        f"INSERT INTO {target} (`timestamp`, event_id, writer) VALUES {values};\n"
        "COMMIT TRANSACTION;"
    )


# ---------------------------------------------------------------------------------------------
# What the proxy takes for a transaction, and what the loader takes for a conflict


def test_transaction_tables_are_the_mutated_ones():
    """The tables a transaction mutates: DELETE, UPDATE, TRUNCATE and a MERGE that updates or
    deletes. INSERT and a MERGE that only inserts append: they never conflict."""
    script = """
    -- DELETE FROM `p.d.commented_out`;
    BEGIN TRANSACTION;
    DELETE FROM `p.d.events` WHERE TRUE;
    INSERT INTO `p`.`d`.`rejects` (a) SELECT a FROM `p.d._stage_x`;
    MERGE d.totals AS t USING (SELECT 1 AS k) AS s ON t.k = s.k
      WHEN MATCHED THEN UPDATE SET n = 1
      WHEN NOT MATCHED THEN INSERT (k) VALUES (s.k)
      WHEN NOT MATCHED BY SOURCE THEN DELETE;
    MERGE `p.d.appended` AS t USING (SELECT 1 AS k) AS s ON t.k = s.k
      WHEN NOT MATCHED THEN INSERT (k) VALUES (s.k);
    UPDATE `p.d.ledger` SET a = 'x;y' WHERE TRUE;
    TRUNCATE TABLE `p.d.scratch`;
    UPDATE `p.d.events` SET a = 1 WHERE FALSE;
    COMMIT TRANSACTION;
    """
    assert transaction_tables(script, "proj") == {
        "p.d.events": (4, 5),
        "proj.d.totals": (6, 5),
        "p.d.ledger": (12, 5),
        "p.d.scratch": (13, 5),
    }
    appending = "BEGIN TRANSACTION;\nINSERT INTO `p.d.events` (a) SELECT a FROM `p.d.s`;\nCOMMIT TRANSACTION;"
    assert transaction_tables(appending, "proj") == {}
    assert transaction_tables("DELETE FROM `p.d.events` WHERE TRUE", "proj") is None
    assert transaction_tables("BEGIN\n  SELECT 1;\nEND;", "proj") is None


def test_a_scripts_current_timestamp_is_pinned_for_its_snapshot_reads():
    """A snapshot read computed at the transaction's start and the script itself see one value
    of a ``DECLARE … DEFAULT CURRENT_TIMESTAMP()`` (BigQuery evaluates it once, when the
    script starts); other declarations are left as written."""
    script = (
        "DECLARE _load_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP();\n"
        "DECLARE n INT64 DEFAULT 3;\nBEGIN TRANSACTION;\n"
        "INSERT INTO `p.d.t` (a, loaded_at) SELECT a, _load_time FROM `p.d.s`;\nCOMMIT TRANSACTION;"
    )
    pinned = pinned_declarations(script, datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    assert pinned == {
        "DECLARE _load_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP();": (
            "DECLARE _load_time TIMESTAMP DEFAULT TIMESTAMP '2026-12-06T12:00:00+00:00';"
        )
    }


def test_snapshot_reads_are_the_inserts_whose_sources_the_transaction_did_not_write():
    """An INSERT … SELECT reads the snapshot unless an earlier statement of the transaction wrote
    a table its query reads (then it must see that write, and runs at commit)."""
    script = (
        "BEGIN TRANSACTION;\n"
        "UPDATE `p.d.ledger` SET n = n + 1 WHERE TRUE;\n"
        "INSERT INTO `p.d.events` (`a`, `b`) SELECT `a`, `b` FROM `p.d._stage_1` AS staged "
        "WHERE NOT EXISTS (SELECT 1 FROM `p.d.events` WHERE `a` = staged.`a`);\n"
        "DELETE FROM `p.d.rejects` WHERE TRUE;\n"
        "INSERT INTO `p.d.rejects` (`a`) SELECT `a` FROM `p.d._stage_2` AS staged "
        "WHERE NOT EXISTS (SELECT 1 FROM `p.d.rejects` WHERE `a` = staged.`a`);\n"
        "INSERT INTO `p.d.raw` (`a`) VALUES (1);\n"
        "COMMIT TRANSACTION;"
    )
    [read] = snapshot_reads(script, "proj")
    assert script[read.start : read.end].strip().startswith("INSERT INTO `p.d.events`")
    assert read.snapshot.startswith("p.d._proxy_snapshot_")
    assert read.create == (
        f"CREATE TABLE `{read.snapshot}` AS SELECT `a`, `b` FROM `p.d._stage_1` AS staged "
        "WHERE NOT EXISTS (SELECT 1 FROM `p.d.events` WHERE `a` = staged.`a`)"
    )
    assert read.insert.strip() == f"INSERT INTO `p.d.events` (`a`, `b`) SELECT * FROM `{read.snapshot}`"


def test_only_concurrent_update_errors_count_as_conflicts():
    field_message = (
        "Query error: Transaction is aborted due to concurrent update against table p:d.t. "
        "Transaction ID: 61e30eea-0000-2dab-8e60-94eb2c1b1a92 at [3:1]"
    )
    assert is_transaction_conflict(BadRequest(field_message))
    assert is_transaction_conflict(
        BadRequest("x", errors=[{"reason": "invalidQuery", "message": field_message.upper()}])
    )
    serialize = "Could not serialize access to table p:d.t due to concurrent update"
    assert is_transaction_conflict(BadRequest(serialize))
    assert not is_transaction_conflict(BadRequest("Syntax error: Unexpected identifier at [1:1]"))
    assert not is_transaction_conflict(RuntimeError(field_message))


# ---------------------------------------------------------------------------------------------
# Through the proxy, against the emulator


@pytest.mark.parametrize("api", ["jobs.insert", "jobs.query"])
def test_second_overlapping_transaction_is_cancelled(api, bq_faults: FaultProxy, bq_client, dataset):
    """The first transaction is held in flight by the proxy; the second, on the same table, gets
    BigQuery's error (raised by the real client from the job's errorResult, or from jobs.query's
    400) and never reaches the emulator; the table shows the first one's effect only."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    table = f"{LOCAL_PROJECT}.{dataset}.events"
    first_client, second_client = client_on(bq_faults.url), client_on(bq_faults.url)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: first_client.query(writer_script(dataset, 1)).result())
        assert conflicts.wait_in_flight(table)

        with pytest.raises(BadRequest) as raised:
            if api == "jobs.insert":
                second_client.query(writer_script(dataset, 2)).result()
            else:
                second_client.query_and_wait(writer_script(dataset, 2))

        release.set()
        first.result(timeout=60)

    expected = f"{CONCURRENT_UPDATE} {LOCAL_PROJECT}:{dataset}.events. Transaction ID: "
    assert expected in raised.value.message
    assert raised.value.errors[0]["reason"] == "invalidQuery"
    assert is_transaction_conflict(raised.value)
    [cancelled] = conflicts.cancelled
    assert cancelled.table == table and cancelled.message.endswith("at [2:1]")  # the DELETE
    assert len(conflicts.served) == 1
    assert [s.status for s in bq_faults.requests() if s.action == "conflict"] == [
        200 if api == "jobs.insert" else 400
    ]
    if api == "jobs.insert":  # the cancelled job can be looked up, as in BigQuery
        job = second_client.get_job(cancelled.job_id)
        assert job.state == "DONE" and job.error_result["message"] == cancelled.message
    assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, 1) for e in EVENT_IDS]
    first_client.close()
    second_client.close()


def test_a_retried_insert_of_a_job_in_flight_is_a_duplicate_not_a_conflict(
    bq_faults: FaultProxy, bq_client, dataset
):
    """A client that sends the insert of a job again while that job is in flight (its first
    answer was slow) gets BigQuery's 409 duplicate for the job id; nothing is cancelled, and the
    job runs once."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    table = f"{LOCAL_PROJECT}.{dataset}.events"
    first_client, second_client = client_on(bq_faults.url), client_on(bq_faults.url)
    job_id = f"load_{dataset}_retried"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            lambda: first_client.query(writer_script(dataset, 1), job_id=job_id, job_retry=None).result()
        )
        assert conflicts.wait_in_flight(table)

        with pytest.raises(Conflict) as raised:
            second_client.query(writer_script(dataset, 1), job_id=job_id, job_retry=None)

        release.set()
        first.result(timeout=60)

    assert raised.value.errors[0]["reason"] == "duplicate"
    assert conflicts.cancelled == [] and conflicts.served == [job_id]
    assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, 1) for e in EVENT_IDS]
    first_client.close()
    second_client.close()


def test_plain_dml_is_not_cancelled(bq_faults: FaultProxy, bq_client, dataset):
    """BigQuery queues a mutating statement outside a transaction instead of cancelling it: the
    proxy forwards it even while a transaction on the table is in flight."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    client = client_on(bq_faults.url)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(lambda: client_on(bq_faults.url).query(writer_script(dataset, 1)).result())
        assert conflicts.wait_in_flight()
        client.query(
            f"INSERT INTO `{LOCAL_PROJECT}.{dataset}.events` (`timestamp`, event_id, writer) "
            "VALUES (TIMESTAMP '2026-11-21 00:00:00+00', 'plain', 0)"
        ).result()
        release.set()
        held.result(timeout=60)
    assert conflicts.cancelled == []
    assert ("plain", 0) in table_rows(bq_client, dataset, "events", "event_id, writer")
    client.close()


def appending_script(dataset: str, writer: int) -> str:
    """A transaction that only appends: the five events, those not stored yet (insert-missing)."""
    target = f"`{LOCAL_PROJECT}.{dataset}.events`"
    values = ", ".join(f"STRUCT(TIMESTAMP '2026-11-20 10:05:00+00' AS ts, '{e}' AS id)" for e in EVENT_IDS)
    return (
        "BEGIN TRANSACTION;\n"
        f"INSERT INTO {target} (`timestamp`, event_id, writer) SELECT staged.ts, staged.id, {writer} "
        f"FROM UNNEST([{values}]) AS staged "
        f"WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE event_id = staged.id);\n"
        "COMMIT TRANSACTION;"
    )


def test_appending_transactions_are_never_cancelled_and_read_their_snapshot(
    bq_faults: FaultProxy, bq_client, dataset
):
    """What BigQuery allows, the proxy allows: a transaction that only appends runs alongside
    any other one on the table. The first insert-missing transaction is held after its start;
    a second one, and a mutating one, run and commit meanwhile; the first then commits the rows
    its snapshot lacked: every event twice. This is the duplication the load ledger prevents."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release, hold_first=1)
    first_client, client = client_on(bq_faults.url), client_on(bq_faults.url)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: first_client.query(appending_script(dataset, 1)).result())
        assert conflicts.wait_received(1)
        client.query(appending_script(dataset, 2)).result()
        assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, 2) for e in EVENT_IDS]
        client.query(  # a mutating transaction: not cancelled either, the first one only appends
            "BEGIN TRANSACTION;\n"
            f"UPDATE `{LOCAL_PROJECT}.{dataset}.events` SET writer = 3 WHERE writer = 2;\n"
            "COMMIT TRANSACTION;"
        ).result()
        release.set()
        first.result(timeout=60)

    assert conflicts.cancelled == []
    assert len(conflicts.served) == 3 and len(conflicts.snapshots) == 2
    rows = table_rows(bq_client, dataset, "events", "event_id, writer")
    assert rows == sorted([(e, 1) for e in EVENT_IDS] + [(e, 3) for e in EVENT_IDS])
    tables = [t.table_id for t in bq_client.list_tables(f"{LOCAL_PROJECT}.{dataset}")]
    assert not [t for t in tables if t.startswith("_proxy_snapshot_")], "snapshots are dropped"
    first_client.close()
    client.close()


def test_transactions_mutating_the_same_table_conflict_whatever_else_they_do(
    bq_faults: FaultProxy, bq_client, dataset
):
    """Two transactions that each append to the events table and update one row of a small
    table: the update makes them conflict (the second one is cancelled), as the load ledger
    relies on."""
    bq_client.query(
        f"CREATE TABLE `{LOCAL_PROJECT}.{dataset}.ledger` AS SELECT 'events' AS target, 0 AS n"
    ).result()

    def guarded(writer: int) -> str:
        script = appending_script(dataset, writer)
        guard = f"UPDATE `{LOCAL_PROJECT}.{dataset}.ledger` SET n = n + 1 WHERE target = 'events';\n"
        return script.replace("BEGIN TRANSACTION;\n", "BEGIN TRANSACTION;\n" + guard, 1)

    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    first_client, client = client_on(bq_faults.url), client_on(bq_faults.url)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(lambda: first_client.query(guarded(1)).result())
        assert conflicts.wait_in_flight(f"{LOCAL_PROJECT}.{dataset}.ledger")
        with pytest.raises(BadRequest) as raised:
            client.query(guarded(2)).result()
        release.set()
        first.result(timeout=60)
    assert is_transaction_conflict(raised.value)
    assert f"{LOCAL_PROJECT}:{dataset}.ledger" in raised.value.message
    client.query(guarded(2)).result()  # run again: its snapshot now holds the first one's rows
    assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, 1) for e in EVENT_IDS]
    first_client.close()
    client.close()


def _replacement(writer: int) -> list[Replacement]:
    at = pa.array([WINDOW_START + timedelta(minutes=5)] * len(EVENT_IDS), pa.timestamp("us", tz="UTC"))
    events = pa.table(
        {"timestamp": at, "event_id": pa.array(EVENT_IDS), "writer": pa.array([writer] * 5, pa.int64())}
    )
    rejects = pa.table({"timestamp": at[:1], "writer": pa.array([writer], pa.int64())})
    scope = time_scope("timestamp", WINDOW_START, WINDOW_END)
    return [Replacement(EVENTS, events, scope), Replacement(REJECTS, rejects, scope)]


def test_every_load_transaction_updates_its_tables_ledger_rows(bq_faults: FaultProxy, bq_client, dataset):
    """The ledger is created with a row per written table by the first load of the process (one
    lookup, one insert of the missing rows); every load transaction then updates those rows."""
    loaders = [BigQueryLoader(client_on(bq_faults.url), dataset, location="US") for _ in range(2)]
    for writer, loader in enumerate(loaders):
        loader.replace(_replacement(writer), label=f"writer{writer}")
    loaders[0].replace(_replacement(5), label="again")

    ledger = f"{LOCAL_PROJECT}.{dataset}._cwl_load_ledger_events"
    rows = table_rows(bq_client, dataset, "_cwl_load_ledger_events", "target, transactions")
    assert rows == [
        (f"{LOCAL_PROJECT}.{dataset}.events", 3),
        (f"{LOCAL_PROJECT}.{dataset}.events_rejects", 3),
    ]
    assert len(bq_faults.requests(method="GET", path=f"/tables/{ledger.rsplit('.', 1)[1]}")) == 1
    inserts = [s for s in bq_faults.requests(method="POST", path="/queries") if b"UNNEST(@targets)" in s.body]
    jobs = [
        s for s in bq_faults.requests(method="POST", path=r"/jobs(\?|$)") if b"UNNEST(@targets)" in s.body
    ]
    assert len(inserts) + len(jobs) == 1
    for loader in loaders:
        loader.client.close()


def test_concurrent_replaces_of_one_window_all_succeed_once(bq_faults: FaultProxy, bq_client, dataset):
    """Six loaders replace the same window (events and rejects together) at once. The first
    transaction is held in flight until the others were cancelled five times; then every replace
    gets through on a later attempt, and the tables hold exactly one writer's rows, once: the
    writer whose transaction the emulator ran last."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    writers = range(6)

    def replace(writer: int):
        client = client_on(bq_faults.url)
        try:
            loader = BigQueryLoader(client, dataset, location="US", retry_timeout=60)
            return loader.replace(_replacement(writer), label=f"writer{writer}")
        finally:
            client.close()

    with ThreadPoolExecutor(len(writers)) as pool:
        futures = [pool.submit(replace, w) for w in writers]
        assert conflicts.wait_in_flight(f"{LOCAL_PROJECT}.{dataset}.events", timeout=60)
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(conflicts.cancelled) < 5 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        release.set()
        results = [f.result(timeout=120) for f in futures]

    assert len(conflicts.cancelled) >= 5
    assert {c.table for c in conflicts.cancelled} <= {
        f"{LOCAL_PROJECT}.{dataset}._cwl_load_ledger_events",
        f"{LOCAL_PROJECT}.{dataset}.events",
        f"{LOCAL_PROJECT}.{dataset}.events_rejects",
    }
    # Each replace committed exactly once: its last job is a transaction the emulator ran.
    committed = [r.job_ids[-1] for r in results]
    assert sorted(committed) == sorted(conflicts.served)
    assert all(r.rows_written == {"events": 5, "events_rejects": 1} for r in results)
    last = committed.index(conflicts.served[-1])
    assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, last) for e in EVENT_IDS]
    assert table_rows(bq_client, dataset, "events_rejects", "writer") == [(last,)]
    assert staging_tables(bq_client, dataset) == []


def test_conflicts_beyond_the_retry_timeout_fail_clearly(bq_faults: FaultProxy, bq_client, dataset):
    """A transaction stays in flight on the table longer than the loader's retry_timeout: every
    attempt of the replace is cancelled, it fails naming the table and the number of attempts,
    changes nothing, and drops its staging tables."""
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)
    table = f"{LOCAL_PROJECT}.{dataset}.events"
    client = client_on(bq_faults.url)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(lambda: client_on(bq_faults.url).query(writer_script(dataset, 1)).result())
        assert conflicts.wait_in_flight(table)
        loader = BigQueryLoader(client, dataset, location="US", retry_timeout=3)
        with pytest.raises(DestinationError) as raised:
            loader.replace(_replacement(7), label="late")
        in_flight = conflicts.in_flight()
        release.set()
        held.result(timeout=60)

    attempts = len(conflicts.cancelled)
    assert attempts >= 3  # backoff 0.25-0.5 s, 0.5-1 s, 1-2 s fits in 3 s
    message = str(raised.value)
    assert f"BigQuery replace transaction on {table}, {table}_rejects" in message
    assert f"cancelled by a concurrent update of the same table {attempts} times" in message
    last = conflicts.cancelled[-1]
    assert f"the last time: {last.message} (job {last.job_id})" in message
    assert in_flight == {table: conflicts.served[0]}  # still the first one's, to the end
    assert table_rows(bq_client, dataset, "events", "event_id, writer") == [(e, 1) for e in EVENT_IDS]
    assert table_rows(bq_client, dataset, "events_rejects", "writer") == []
    assert staging_tables(bq_client, dataset) == []
    client.close()

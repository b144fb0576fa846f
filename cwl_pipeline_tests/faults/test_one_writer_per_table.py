"""One writer per table: concurrent runs of one stream against BigQuery's transaction conflicts.

Real Dagster runs in child processes (each executes a run as the daemon's run worker would)
share a persistent instance whose pools have one slot (``pools.default_limit: 1``, as in the
local and the production ``dagster.yaml``), stored in PostgreSQL as in production. The slot is
not a strict semaphore: Dagster 1.13 checks for a free slot and then takes it in separate
autocommit statements (``SqlEventLogStorage.has_unassigned_slots``, ``add_pending_step`` and
``_claim_concurrency_slot``, whose ``SELECT … FOR UPDATE SKIP LOCKED`` holds its row lock only
for that one statement on PostgreSQL), so steps claiming at the same moment can both take the
last slot (seen: two or three cancelled ledger transactions in 2 of the 15 runs of this test
recorded, both while other tests loaded the machine). What keeps each event once is the load
ledger, not the pool. The BigQuery fault proxy cancels a transaction that mutates a table while
another one on it is in flight, as real BigQuery does, and holds every transaction in flight
for a while so that unserialized runs would collide. Every kind of load (refresh, settled,
sweep, backfill, UI click) goes through the same op, which claims the table's pool, whatever
its write mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef

from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.deploy.postgres_server import PostgresServer
from cwl_pipeline_tests.faults.fault_stack import WINDOW, cloudwatch_ids, polling_stack, put_events, table_ids
from cwl_pipeline_tests.pipeline.polling import window_start
from cwl_pipeline_tests.sensor_runs import tick

# One run, as the daemon's run worker executes it, on the instance in DAGSTER_HOME: a partition
# (or a partition range, in its tags) of the stream's load asset, with the run's tags.
CHILD = """
import json, os, sys
import dagster as dg
from cwl_pipeline.config import load_config
from cwl_pipeline.definitions import build_definitions

from cwl_pipeline_tests.pipeline.polling import materialize

key, tags = json.loads(sys.argv[1])
defs = build_definitions(load_config(os.environ["CWL_PIPELINE_CONFIG"]))
result = materialize(defs, key, raise_on_error=False, instance=dg.DagsterInstance.get(), tags=tags)
sys.exit(0 if result.success else 1)
"""


def run_concurrently(home: Path, config: Path, runs: list[tuple[str | None, dict]]) -> list[tuple[int, str]]:
    """Start one run per ``(partition key, tags)`` at once; wait for all; (exit code, log) each."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "CWL_PIPELINE_CONFIG": str(config)}
    processes = []
    for index, run in enumerate(runs):
        log = home / f"run-{index}.log"
        with open(log, "wb") as out:
            argv = [sys.executable, "-c", CHILD, json.dumps(run)]
            processes.append((subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT), log))
    return [(p.wait(300), log.read_text(errors="replace")) for p, log in processes]


def instance_home(tmp_path: Path, postgres: PostgresServer, config: Path, limit: int) -> Path:
    """A persistent instance with pools of ``limit`` slots, its storage a new PostgreSQL
    database, created before the runs start (so concurrent processes do not race to create its
    tables); the stream's window sensor ticked once on it, as the daemon does before any run of
    the stream is asked for (the tick gives the stream's pool its limit)."""
    home = tmp_path / f"home-{limit}"
    home.mkdir()
    settings = {
        "telemetry": {"enabled": False},
        "storage": {"postgres": {"postgres_db": postgres.create_database(f"dagster_{home.parent.name}")}},
        "concurrency": {"pools": {"default_limit": limit, "granularity": "op"}},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    defs = build_definitions(load_config(config))
    sensor = next(s for s in defs.sensors if s.name.endswith("_windows"))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        tick(sensor, defs, instance, None)
        pools = {pool.name: pool.limit for pool in instance.event_log_storage.get_pool_limits()}
    assert list(pools.values()) == [limit], pools  # the stream's one pool, before any run
    return home


def test_concurrent_runs_of_one_stream_under_the_pool_store_each_event_once(
    tmp_path,
    postgres,
    bq_faults,
    local_aws,
    local_bigquery,
    logs_client,
    bq_client,
    write_config,
    unique_name,
):
    """Every kind of run of one stream at once: a refresh (live table), a settled load and two
    sweeps (insert what is missing), a click in the UI and a three-window backfill range
    (replace). The pool lets one write at a time but for steps that claim its slot at the same
    moment (see the module's docstring): BigQuery then cancels one of their transactions on the
    ledger, and it runs again. Every run succeeds and every event is stored exactly once."""
    stack = polling_stack(
        write_config,
        logs_client,
        local_aws.url,
        bq_faults.url,
        unique_name,
        storage_write_endpoint=f"127.0.0.1:{local_bigquery.grpc_port}",
    )
    first = window_start() - WINDOW
    for i in range(3):
        put_events(logs_client, stack.group, first + i * WINDOW, 4, first_session=10 * i)
    middle = partition_key(first + WINDOW)
    backfill = {
        "dagster/asset_partition_range_start": partition_key(first),
        "dagster/asset_partition_range_end": partition_key(first + 2 * WINDOW),
    }
    runs = [
        (middle, {"cwl/load": "refresh"}),
        (middle, {"cwl/load": "settled"}),
        (partition_key(first), {"cwl/load": "sweep-15m"}),
        (middle, {"cwl/load": "sweep-6h"}),
        (middle, {}),
        (None, backfill),
    ]
    conflicts = bq_faults.emulate_transaction_conflicts(hold=1.0)

    results = run_concurrently(instance_home(tmp_path, postgres, stack.path, 1), stack.path, runs)

    assert all(code == 0 for code, _ in results), [log[-2000:] for code, log in results if code]
    # A cancellation here is two steps that took the one slot at once; each cancelled job was run
    # again (every run succeeded, and the table below is exact).
    assert len(conflicts.served) >= 2  # the replaces reached BigQuery (inserts of nothing are skipped)
    expected = cloudwatch_ids(logs_client, stack.group, first, first + 3 * WINDOW)
    assert len(expected) == 12
    assert sorted(table_ids(bq_client, stack.dataset)) == sorted(expected)
    assert sorted(table_ids(bq_client, stack.dataset, "app_events_recent")) == sorted(expected)


def test_without_the_pool_transactions_are_cancelled_and_retried(
    tmp_path, postgres, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """The same runs with room for all of them in the pool: BigQuery cancels overlapping
    transactions (the proxy shows it does), the replace runs a cancelled one again, and the
    table still ends exact. The pool is what keeps this rare in normal operation."""
    stack = polling_stack(
        write_config, logs_client, local_aws.url, bq_faults.url, unique_name, retry_timeout="60s"
    )
    start = window_start()
    put_events(logs_client, stack.group, start, 5)
    runs = [(partition_key(start), {})] * 3  # replaces (by hand): a transaction each
    conflicts = bq_faults.emulate_transaction_conflicts(hold=2.0)

    results = run_concurrently(instance_home(tmp_path, postgres, stack.path, 5), stack.path, runs)

    assert all(code == 0 for code, _ in results), [log[-2000:] for code, log in results if code]
    assert conflicts.cancelled, "the runs did not overlap: the test proves nothing"
    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert sorted(table_ids(bq_client, stack.dataset)) == sorted(expected)

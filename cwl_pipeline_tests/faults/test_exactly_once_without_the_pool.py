"""Each event stored once when loads of one window overlap, whatever Dagster's pool does.

BigQuery lets transactions that only append run side by side, each reading the snapshot it
started with; it cancels a transaction that mutates a table another one in flight mutates. The
fault proxy stands in for both rules in front of the emulator
(``FaultProxy.emulate_transaction_conflicts``). An insert-missing load alone only appends, so
two of them would both insert the events neither saw; the load ledger every load transaction
updates makes them conflict, and the cancelled one runs again on a snapshot that holds the
winner's rows. The runs are real Dagster runs in child processes on a persistent instance whose
pools leave room for every run (the pool does not serialize them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    cloudwatch_ids,
    fail_by_run_monitoring,
    polling_stack,
    put_events,
    table_ids,
)
from cwl_pipeline_tests.faults.test_one_writer_per_table import CHILD, instance_home, run_concurrently
from cwl_pipeline_tests.pipeline.polling import window_start

SETTLED = {"cwl/load": "settled"}  # the sensor's load of a closed window: inserts what is missing
# Pools with room for every run, and run monitoring that marks a run failed once it is over 1 s.
UNPOOLED_MONITORED = """
telemetry: {enabled: false}
concurrency:
  pools:
    default_limit: 5
run_monitoring:
  enabled: true
  max_runtime_seconds: 1
"""


def test_two_loads_of_one_window_at_once_store_each_event_once(
    tmp_path, postgres, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """Two settled loads of one window start together; the pool has room for both. The proxy
    holds transactions in flight until both loads have sent theirs, so they overlap as in
    BigQuery: the second one meets the first on the ledger and is cancelled, runs again once
    the first committed, and finds every event stored."""
    stack = polling_stack(
        write_config, logs_client, local_aws.url, bq_faults.url, unique_name, retry_timeout="120s"
    )
    start = window_start()
    put_events(logs_client, stack.group, start, 5)
    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release)

    def release_when_both_arrived() -> None:
        conflicts.wait_received(2, timeout=240)
        release.set()

    releaser = threading.Thread(target=release_when_both_arrived, daemon=True)
    releaser.start()
    home = instance_home(tmp_path, postgres, stack.path, 5)
    results = run_concurrently(home, stack.path, [(partition_key(start), SETTLED)] * 2)
    release.set()

    assert len(expected) == 5
    assert table_ids(bq_client, stack.dataset) == expected
    assert all(code == 0 for code, _ in results), [log[-2000:] for code, log in results if code]
    assert conflicts.cancelled, "the loads did not overlap: the test proves nothing"
    assert all(c.table.endswith("._cwl_load_ledger_app_events") for c in conflicts.cancelled)


def test_a_load_whose_job_outlives_its_failed_run_and_its_retry_store_each_event_once(
    tmp_path, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """A settled load's transaction reached BigQuery (the proxy holds it there) when its process
    died; run monitoring marks the run failed, and a retry loads the window while that job is
    still running. The retry's transaction meets it on the ledger and is cancelled until it
    committed, then finds every event stored: nothing is inserted twice."""
    stack = polling_stack(
        write_config, logs_client, local_aws.url, bq_faults.url, unique_name, retry_timeout="120s"
    )
    start = window_start()
    key = partition_key(start)
    put_events(logs_client, stack.group, start, 4)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(UNPOOLED_MONITORED)
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
    release = threading.Event()
    conflicts = bq_faults.emulate_transaction_conflicts(hold=release, hold_first=1)

    first = start_run(home, stack.path, key, home / "first.log")
    try:
        assert conflicts.wait_received(1, timeout=240), (home / "first.log").read_text(errors="replace")[
            -3000:
        ]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    [job] = conflicts.received
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    [record] = instance.get_run_records()
    fail_by_run_monitoring(instance, record)
    assert instance.get_run_by_id(record.dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE

    retry = start_run(home, stack.path, key, home / "retry.log")
    assert conflicts.wait_received(2, timeout=240), (home / "retry.log").read_text(errors="replace")[-3000:]
    release.set()  # the first job goes on, and commits
    code = retry.wait(240)
    waited = threading.Event()
    for _ in range(600):
        if job in conflicts.served:
            break
        waited.wait(0.1)
    assert job in conflicts.served, "the first run's job never reached the emulator"

    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert len(expected) == 4
    assert table_ids(bq_client, stack.dataset) == expected
    assert code == 0, (home / "retry.log").read_text(errors="replace")[-3000:]
    assert conflicts.cancelled, "the retry never met the running job: the test proves nothing"
    instance.dispose()


def start_run(home: Path, config: Path, key: str, log: Path) -> subprocess.Popen[bytes]:
    """A settled load of ``key`` in a child process (its own process group, so it can be killed)."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "CWL_PIPELINE_CONFIG": str(config)}
    out = open(log, "wb")  # noqa: SIM115 (closed by the child's exit)
    argv = [sys.executable, "-c", CHILD, json.dumps([key, SETTLED])]
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

"""The run process killed in the middle of a load.

The run is a real Dagster run in a child process: ``dagster asset materialize -m
cwl_pipeline.definitions`` with ``CWL_PIPELINE_CONFIG`` pointing at a test config and a
persistent instance in a temporary ``DAGSTER_HOME``. The fault proxy in front of the BigQuery
emulator holds the run's replace transaction (``bigquery_replace`` with ``Hold``), the test
SIGKILLs the process, then releases the request, which the proxy drops: the process died
before its request left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.faults.fault_proxy import Drop, Hold, bigquery_replace
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    assert_staging_expires,
    cloudwatch_ids,
    fail_by_run_monitoring,
    kill_when_held,
    polling_stack,
    put_events,
    table_ids,
)
from cwl_pipeline_tests.pipeline.polling import materialize, window_start

# Run monitoring as an operator would configure it; the runtime limit is what marks a run whose
# process died as failed when the run launcher cannot check the run worker's health.
DAGSTER_YAML = """
telemetry: {enabled: false}
run_monitoring:
  enabled: true
  max_runtime_seconds: 1
"""


def start_run(home: Path, config: Path, key: str) -> subprocess.Popen[bytes]:
    """``dagster asset materialize`` of the stream's tables for one partition, in a child process."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "CWL_PIPELINE_CONFIG": str(config)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    argv = [dagster, "asset", "materialize", "-m", "cwl_pipeline.definitions"]
    argv += ["--select", "app_events,app_events_rejects", "--partition", key]
    log = open(home / "run.log", "wb")  # noqa: SIM115 (closed by the child's exit)
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_run_killed_while_its_replace_is_in_flight(
    tmp_path, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """Held replace, SIGKILL, release (dropped: the request never reached BigQuery): the window
    holds its previous rows; the killed run stays STARTED until run monitoring marks it failed;
    the re-run loads the window exactly. (A request that had left before the kill commits the
    new rows once: see the lost-answer tests of test_bigquery_faults.)"""
    stack = polling_stack(write_config, logs_client, local_aws.url, bq_faults.url, unique_name)
    start = window_start()
    key = partition_key(start)
    put_events(logs_client, stack.group, start, 3)
    materialize(stack.defs, key)
    before = table_ids(bq_client, stack.dataset)
    put_events(logs_client, stack.group, start, 2, first_session=10)
    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert len(before) == 3 and len(expected) == 5

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    release = threading.Event()
    held = bq_faults.add(bigquery_replace(Hold(release, then=Drop())))
    kill_when_held(start_run(home, stack.path, key), held, home / "run.log")
    release.set()
    wait_until_answered(bq_faults, held)

    assert table_ids(bq_client, stack.dataset) == before
    # The killed run never dropped its staging table (the events': the window has no rejects,
    # and an empty chunk is not staged): it is left to expire.
    assert assert_staging_expires(bq_faults, bq_client, stack.dataset) >= 1

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    [record] = instance.get_run_records()
    run = record.dagster_run
    events = [e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.dagster_event]
    assert run.status == dg.DagsterRunStatus.STARTED
    assert "STEP_START" in events and "ASSET_MATERIALIZATION" not in events
    assert "STEP_FAILURE" not in events and "RUN_FAILURE" not in events

    fail_by_run_monitoring(instance, record)
    run = instance.get_run_by_id(run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any("exceeding maximum runtime of 1 seconds" in m for m in messages), messages[-5:]
    assert any("forcibly marked as failed" in m for m in messages), messages[-5:]

    assert materialize(stack.defs, key).success
    assert table_ids(bq_client, stack.dataset) == expected


def wait_until_answered(proxy, rule, timeout: float = 30.0) -> None:
    """Wait until the proxy finished acting on the held request (forwarded or dropped it)."""
    done = threading.Event()
    for _ in range(int(timeout * 10)):
        if any(s.action == "hold" for s in proxy.seen):
            return
        done.wait(0.1)
    raise AssertionError(f"the held request was never finished: {rule}")

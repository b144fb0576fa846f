"""A sensor's run killed mid-load is asked for again once run monitoring marks it failed.

The run is real and runs in a child process on a persistent instance in a temporary
``DAGSTER_HOME``, with the tags the daemon gives the window sensor's run (its request's tags
and run key). The fault proxy in front of local AWS holds the run's FilterLogEvents call; the
test SIGKILLs the process, and does what the daemon's run monitoring does once the run is over
its runtime limit (it marks the run FAILURE). The sensor's next tick asks for the windows again
as attempt 2; that run, executed in-process, loads them, and the tick after that owes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import RUN_KEY_TAG

from cwl_pipeline.config import load_config
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.owed_plan import RetryPolicy
from cwl_pipeline.polling.sensor import build_window_sensor
from cwl_pipeline_tests.faults.fault_proxy import Drop, Hold, filter_log_events
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    cloudwatch_ids,
    fail_by_run_monitoring,
    kill_when_held,
    polling_stack,
    put_events,
    table_ids,
)
from cwl_pipeline_tests.pipeline.polling import window_start
from cwl_pipeline_tests.sensor_runs import launch, tick

DAGSTER_YAML = """
telemetry: {enabled: false}
run_monitoring:
  enabled: true
  max_runtime_seconds: 1
"""
STREAM = "    settle_lag: 1m\n    initial_lookback: 2h\n    max_windows_per_run: 8\n    sweeps: [15m]\n"

# Executes one run request, as the daemon's run worker would, on the instance in DAGSTER_HOME.
CHILD = """
import json, os, sys
import dagster as dg
from cwl_pipeline.config import load_config
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.sensor_runs import launch

request = json.loads(sys.argv[1])
defs = build_definitions(load_config(os.environ["CWL_PIPELINE_CONFIG"]))
launch(defs, dg.DagsterInstance.get(), dg.RunRequest(**request), "load_app")
"""


def test_killed_settled_load_is_asked_for_again(
    tmp_path, aws_faults, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack = polling_stack(
        write_config, logs_client, aws_faults.url, local_bigquery.url, unique_name, extra=STREAM
    )
    start = window_start()
    put_events(logs_client, stack.group, start, 3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    defs = stack.defs
    # The window sensor, with no wait before a retry.
    sensor = build_window_sensor(
        StreamTables.of(load_config(stack.path).streams[0]), RetryPolicy(first_delay=timedelta(0))
    )

    first = tick(sensor, defs, instance, None)
    [settled] = [r for r in first.requests if r.tags["cwl/load"] == "settled"]

    release = threading.Event()
    held = aws_faults.add(filter_log_events(Hold(release, then=Drop())))
    request = {"run_key": settled.run_key, "partition_key": settled.partition_key, "tags": settled.tags}
    kill_when_held(start_child(home, stack.path, request), held, home / "run.log")
    release.set()

    [record] = instance.get_run_records(filters=dg.RunsFilter(tags={RUN_KEY_TAG: settled.run_key}))
    assert record.dagster_run.status == dg.DagsterRunStatus.STARTED  # nothing left to report
    # Still STARTED: not owed yet, nothing asked for again.
    assert tick(sensor, defs, instance, first.cursor).retries == []
    fail_by_run_monitoring(instance, record)
    killed = instance.get_run_by_id(record.dagster_run.run_id)
    assert killed is not None and killed.status == dg.DagsterRunStatus.FAILURE

    after = tick(sensor, defs, instance, first.cursor)
    [retry] = after.retries
    assert (retry.tags["cwl/attempt"], retry.tags["cwl/retry_of"]) == ("2", killed.run_id)
    assert retry.run_key == f"{settled.run_key}:attempt-2"
    assert any(f"after run {killed.run_id} ended FAILURE" in line for line in after.lines("INFO")), after.log

    assert launch(defs, instance, retry, "load_app").success
    assert table_ids(bq_client, stack.dataset) == cloudwatch_ids(
        logs_client, stack.group, start, start + WINDOW
    )
    assert json.loads(tick(sensor, defs, instance, after.cursor).cursor)["owed"]["loads"] == []


def start_child(home: Path, config: Path, request: dict) -> subprocess.Popen[bytes]:
    """Run ``request`` in a child Python process on the instance in ``home``."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CWL_PIPELINE_CONFIG": str(config),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    log = open(home / "run.log", "wb")  # noqa: SIM115 (closed by the child's exit)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(request)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

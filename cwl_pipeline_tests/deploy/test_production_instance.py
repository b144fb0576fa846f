"""The production Dagster instance (deploy/dagster/dagster.yaml) on a real PostgreSQL server.

PostgreSQL runs from the ``pgserver`` package's binaries (fixture ``postgres``). What runs is the
production file with only the settings of ``production_instance.SWAPPED`` changed (the default
run launcher instead of ECS, no TLS, monitoring in seconds), and what a deployment runs, each in
its own process: the code server, the daemon and the webserver. Compute logs go to local AWS's
S3, as in production. One polling stream reads local AWS and writes the BigQuery emulator
through fault proxies: the AWS proxy holds one run's read so the test can SIGKILL that run's
worker process mid-load; the BigQuery proxy cancels a transaction that overlaps another one on
the same table, as BigQuery does, and keeps each in flight for a second.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, PARTITION_NAME_TAG, SENSOR_NAME_TAG

from cwl_pipeline.core.windows import floor_to_window, partition_key, to_ms
from cwl_pipeline.local.processes import LOCAL_CREDENTIALS
from cwl_pipeline_tests.deploy.postgres_server import PostgresServer
from cwl_pipeline_tests.deploy.production_instance import (
    PRODUCTION_YAML,
    SWAPPED,
    differences,
    local_copy,
    start_deployment,
    wait_for,
)
from cwl_pipeline_tests.faults.fault_proxy import Drop, FaultProxy, Hold, filter_log_events
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    cloudwatch_ids,
    put_events,
    table_ids,
    write_fault_config,
)

STREAM = """    settle_lag: 1m
    refresh_interval: 5s
    initial_lookback: 1h
    max_windows_per_run: 1
    sweeps: []
    reconcile: {enabled: false}
"""
SENSOR = "app_windows"
LOAD_STEP = "load_app"
PID = re.compile(r"Started process for run \(pid: (\d+)\)")


def test_local_copy_changes_only_the_swapped_settings(tmp_path):
    """What the deployment test runs is the production file, but for the listed swaps."""
    production = yaml.safe_load(PRODUCTION_YAML.read_text())
    assert differences(production, local_copy(production, tmp_path)) == set(SWAPPED)


@pytest.fixture
def deployment_env(postgres: PostgresServer, local_aws, unique_name, monkeypatch) -> dict[str, str]:
    """The production environment variables, pointing at the local servers; also set here, so
    the test reads the same instance."""
    bucket = f"cwl-compute-logs-{unique_name}"
    boto3.client("s3", endpoint_url=local_aws.url, region_name="us-east-1").create_bucket(Bucket=bucket)
    env = {
        **postgres.env(),
        **LOCAL_CREDENTIALS,
        "AWS_REGION": "us-east-1",
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        # S3 only: the compute log manager's client (the pipeline's clients have their endpoints).
        "AWS_ENDPOINT_URL_S3": local_aws.url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_production_instance_on_postgres(
    tmp_path,
    deployment_env,
    postgres,
    aws_proxy: FaultProxy,
    bq_proxy: FaultProxy,
    local_aws,
    logs_client,
    bq_client,
    write_config,
    unique_name,
):
    """The sensor launches the stream's window runs through the run queue; the table's pool lets
    one run write at a time although two run at once (BigQuery cancels no transaction); the run
    whose worker is SIGKILLed mid-load is marked failed and retried, and the table ends exact;
    the instance keeps everything in PostgreSQL and only compute logs elsewhere (S3)."""
    group, dataset = f"/test/prod-{unique_name}", f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    config = write_fault_config(
        write_config, aws_proxy.url, bq_proxy.url, dataset, f'{{log_groups: ["{group}"]}}', extra=STREAM
    )
    last = floor_to_window(datetime.now(UTC) - timedelta(minutes=1), WINDOW) - WINDOW
    windows = [last - 2 * WINDOW, last - WINDOW, last]
    for i, start in enumerate(windows):
        put_events(logs_client, group, start, 3, first_session=10 * i)
    expected = cloudwatch_ids(logs_client, group, windows[0], last + WINDOW)
    assert len(expected) == 9

    # The oldest window's read is held until its worker is killed, then dropped.
    release = threading.Event()
    held = aws_proxy.add(filter_log_events(Hold(release, then=Drop()), times=1))
    held.body = f'"startTime": {to_ms(windows[0])}'
    conflicts = bq_proxy.emulate_transaction_conflicts(hold=1.0)

    home = tmp_path / "dagster_home"
    home.mkdir()
    production = yaml.safe_load(PRODUCTION_YAML.read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump(local_copy(production, tmp_path / "compute_logs")))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))  # creates the schema once
    env = {**deployment_env, "CWL_PIPELINE_CONFIG": str(config)}
    deployment = start_deployment(home, tmp_path / "logs", env)
    try:
        assert held.arrived.wait(150), deployment.logs()
        killed = wait_for(
            lambda: started_run(instance, partition_key(windows[0])), 30, "the held run", deployment
        )
        pid = wait_for(lambda: worker_pid(instance, killed), 30, "the run worker's pid", deployment)
        # The held run's step holds the table's one pool slot, in PostgreSQL.
        pool = wait_for(lambda: table_pool(instance, dataset), 30, "the table's pool", deployment)
        info = instance.event_log_storage.get_concurrency_info(pool)
        assert info.limit == 1
        assert [(c.run_id, c.step_key) for c in info.claimed_slots] == [(killed, LOAD_STEP)]
        # A click in the UI (a replace of the next window) waits in the queue meanwhile, as do the
        # sensor's other windows: the queue starts no run whose step's pool is full.
        clicked = deployment.materialize(["app_events", "app_events_rejects"], partition_key(windows[1]))
        time.sleep(12)  # two passes of the run queue, at its default 5 s interval
        waiting = {
            r.dagster_run.run_id: r.dagster_run.status
            for r in instance.get_run_records()
            if r.create_timestamp > instance.get_run_record_by_id(killed).create_timestamp
            and (r.dagster_run.tags.get("cwl/stream") == "app" or r.dagster_run.run_id == clicked)
        }
        # A run the sensor created a moment ago may not have reached the queue yet (NOT_STARTED);
        # what matters is that none of them started while the table's slot is held.
        not_running = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}
        assert len(waiting) >= 2 and set(waiting.values()) <= not_running, waiting
        assert dg.DagsterRunStatus.QUEUED in set(waiting.values()), waiting
        os.kill(pid, signal.SIGKILL)
        release.set()

        failed = wait_for(
            lambda: finished(instance, killed), 60, "the killed run to be marked failed", deployment
        )
        assert failed.status == dg.DagsterRunStatus.FAILURE
        retry = wait_for(lambda: retry_of(instance, killed), 120, "a successful retry", deployment, every=2)
        wait_for(lambda: table_ids(bq_client, dataset) == expected, 120, "the exact table", deployment, 2)
        wait_for(lambda: all_sensor_runs_done(instance), 60, "the sensor's runs to finish", deployment)
        wait_for(lambda: finished(instance, clicked), 60, "the UI's run to finish", deployment)
        ui_runs = deployment.graphql("{ runsOrError { ... on Runs { results { runId status } } } }")
    finally:
        release.set()
        deployment.stop()

    runs = [r.dagster_run for r in instance.get_run_records()]
    sensor_runs = [r for r in runs if r.tags.get(SENSOR_NAME_TAG) == SENSOR]
    # The sensor launched one run per due window (the killed one among them) through the queue.
    assert len(sensor_runs) >= 3 and killed in {r.run_id for r in sensor_runs}
    assert {r["runId"] for r in ui_runs["runsOrError"]["results"]} == {r.run_id for r in runs}

    messages = [e.message or "" for e in instance.all_logs(killed)]
    assert any("unexpectedly" in m or "signal" in m.lower() for m in messages), messages[-6:]
    assert retry.status == dg.DagsterRunStatus.SUCCESS

    # The clicked run wrote once the killed run's slot was freed; no two writes ever overlapped.
    assert instance.get_run_by_id(clicked).status == dg.DagsterRunStatus.SUCCESS
    [(clicked_start, _)] = step_spans(instance, [clicked])
    assert clicked_start > instance.get_run_record_by_id(killed).end_time
    stream_runs = [r for r in runs if r.tags.get("cwl/stream") == "app" or r.run_id == clicked]
    steps = sorted(step_spans(instance, stream_runs))
    assert len(steps) >= 5
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(steps)), steps
    assert conflicts.cancelled == []
    assert sorted(table_ids(bq_client, dataset)) == expected

    # Nothing but the two config files in DAGSTER_HOME: no SQLite databases, no storage folders.
    # (Each daemon thread's telemetry uploader creates `logs/` and `.logs_queue/` even with
    # telemetry disabled; they stay empty.)
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    assert written == [".logs_queue", "dagster.yaml", "logs", "workspace.yaml"], written
    s3 = boto3.client("s3", endpoint_url=local_aws.url, region_name="us-east-1")
    uploaded = s3.list_objects_v2(Bucket=deployment_env["DAGSTER_COMPUTE_LOGS_BUCKET"], Prefix="dagster/")
    assert uploaded.get("KeyCount", 0) > 0, "no compute logs reached S3"
    instance.dispose()


def started_run(instance: dg.DagsterInstance, key: str) -> str | None:
    """The id of the STARTED run of partition ``key``, if any."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={PARTITION_NAME_TAG: key}, statuses=[dg.DagsterRunStatus.STARTED])
    )
    return records[0].dagster_run.run_id if records else None


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker process, as the code server logged it."""
    for entry in instance.all_logs(run_id):
        found = PID.search(entry.message or "")
        if found:
            return int(found.group(1))
    return None


def table_pool(instance: dg.DagsterInstance, dataset: str) -> str | None:
    """The pool of the stream's events table, once a step used it."""
    keys = instance.event_log_storage.get_concurrency_keys()
    return next((k for k in keys if k.endswith(f".{dataset}.app_events")), None)


def finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    """The run, once it is finished."""
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def retry_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    """A successful run that retried ``run_id``: Dagster's run retry, or the sensor's."""
    for tags in ({PARENT_RUN_ID_TAG: run_id}, {"cwl/retry_of": run_id}):
        for record in instance.get_run_records(filters=dg.RunsFilter(tags=tags)):
            if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
                return record.dagster_run
    return None


def all_sensor_runs_done(instance: dg.DagsterInstance) -> bool:
    """Whether every run of the stream's sensor is finished."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"cwl/stream": "app"}))
    return all(r.dagster_run.is_finished for r in records)


def step_spans(instance: dg.DagsterInstance, runs: list[dg.DagsterRun | str]) -> list[tuple[float, float]]:
    """(start, end) of each run's writing step; a step whose run died ends with its run."""
    spans = []
    for run in runs:
        run_id = run if isinstance(run, str) else run.run_id
        start = end = None
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key != LOAD_STEP:
                continue
            if event.event_type_value == "STEP_START":
                start = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                end = entry.timestamp
        if start is not None:
            record = instance.get_run_record_by_id(run_id)
            spans.append((start, end or (record.end_time if record else None) or start))
    return spans

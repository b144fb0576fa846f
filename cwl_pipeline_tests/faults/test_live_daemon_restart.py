"""The Dagster daemon killed while the live sensor appends a busy stream, then restarted.

A real ``dagster-daemon`` (with its code server) on a temporary ``DAGSTER_HOME`` evaluates the
stream's live sensor as in production, while a producer calls PutLogEvents without pause. The
test SIGKILLs the daemon's process group mid-stream (an evaluation may be cut anywhere: after
its append, before its cursor is stored), keeps producing while it is down, restarts it on the
same ``DAGSTER_HOME``, and then checks every event put: in ``_recent`` exactly once, no loss;
the live table appended again only what the last stored cursor had not covered (no unbounded
replay); and, once the window's settled load ran, in the events table exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.ref import InstanceRef

from cwl_pipeline.cli.dev import DAGSTER_YAML, WORKSPACE_YAML
from cwl_pipeline.core.windows import floor_to_window, partition_key, to_ms
from cwl_pipeline.local.processes import LocalService
from cwl_pipeline.polling.live_plan import OVERLAP_MS, LiveState
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, materialize

RATE = 4  # events per second


class Producer(threading.Thread):
    """PutLogEvents of one event at a time, each with the next session id, until stopped."""

    def __init__(self, logs_client, group: str) -> None:
        super().__init__(daemon=True)
        self.client, self.group = logs_client, group
        self.put: dict[int, int] = {}  # session id -> the event's timestamp (ms)
        self.stopping = threading.Event()

    def run(self) -> None:
        session = 0
        while not self.stopping.is_set():
            stamp = to_ms(datetime.now(UTC))
            message = json.dumps({"session_id": session, "action": "view"})
            self.client.put_log_events(
                logGroupName=self.group,
                logStreamName="web-1",
                logEvents=[{"timestamp": stamp, "message": message}],
            )
            self.put[session] = stamp
            session += 1
            self.stopping.wait(1 / RATE)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def counts(bq_client, dataset: str, table: str) -> Counter[int]:
    try:
        result = bq_client.query(f"SELECT session_id FROM `cwl-local.{dataset}.{table}`").result()
    except Exception as exc:
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return Counter()
        raise
    return Counter(r["session_id"] for r in result)


def ingestion_times(logs_client, group: str) -> dict[int, int]:
    """Session id -> the ingestion time CloudWatch gave the event."""
    times, request = {}, {"logGroupName": group, "startTime": 0}
    while True:
        page = logs_client.filter_log_events(**request)
        for event in page["events"]:
            times[json.loads(event["message"])["session_id"]] = event["ingestionTime"]
        if not page.get("nextToken"):
            return times
        request["nextToken"] = page["nextToken"]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def daemon(home: Path, config: Path) -> LocalService:
    env = {"DAGSTER_HOME": str(home), "CWL_PIPELINE_CONFIG": str(config)}
    argv = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(home / "workspace.yaml")]
    return LocalService("Dagster daemon", argv, port=0, env=env, log_path=home / "daemon.log")


def stored_cursor(instance: dg.DagsterInstance, sensor: str) -> LiveState:
    """The cursor Dagster holds for ``sensor`` (what the last completed evaluation stored)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor and state.instigator_data is not None:
            cursor = state.instigator_data.cursor  # type: ignore[attr-defined]
            return LiveState.from_json(json.loads(cursor) if cursor else None)
    return LiveState()


def test_daemon_killed_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path, local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, storage_write
):
    grpc = f', storage_write_endpoint: "{storage_write.endpoint}"'
    stack = make_stack(
        local_aws,
        local_bigquery,
        logs_client,
        write_config,
        unique_name,
        "    settle_lag: 15s\n    initial_lookback: 15m",
        bigquery_extra=grpc,
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    (home / "workspace.yaml").write_text(WORKSPACE_YAML)
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))

    producer = Producer(logs_client, stack.group)
    first = daemon(home, stack.path).start()
    producer.start()
    try:
        # Mid-stream: the live sensor has appended for a while, and the daemon has stored a
        # cursor of it (rows appended by a tick it is still finishing do not count).
        wait_for(
            lambda: (
                len(counts(bq_client, stack.dataset, "app_events_recent")) >= 20
                and stored_cursor(instance, "app_live").appended > 0
            ),
            120,
            "live rows and a stored cursor",
        )
        os.killpg(first.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
        first.process.wait()  # type: ignore[union-attr]
        before_kill = stored_cursor(instance, "app_live")
        time.sleep(8)  # events keep coming while the daemon is down
        second = daemon(home, stack.path).start()
        try:
            time.sleep(8)
            producer.stop()
            wait_for(
                lambda: set(counts(bq_client, stack.dataset, "app_events_recent")) >= set(producer.put),
                120,
                "every event in _recent",
            )
        finally:
            second.stop()
    finally:
        if producer.is_alive():
            producer.stop()
        first.stop()

    put = set(producer.put)
    assert 0 < before_kill.appended < len(put)  # killed mid-stream
    recent = counts(bq_client, stack.dataset, "app_events_recent")
    assert set(recent) == put  # no loss
    assert max(recent.values()) == 1  # no duplicate

    # No unbounded replay: an event is in the live table twice only if the last cursor stored
    # before the kill had not covered it (ingested within the overlap before its newest, or
    # later), i.e. the killed evaluation's own appends.
    live = counts(bq_client, stack.dataset, "app_events_live")
    assert set(live) == put
    twice = {s for s, n in live.items() if n > 1}
    assert before_kill.ingested_ms is not None
    ingested = ingestion_times(logs_client, stack.group)
    uncovered = {n for n, at in ingested.items() if at >= before_kill.ingested_ms - OVERLAP_MS}
    assert twice <= uncovered, (sorted(twice - uncovered), before_kill)

    # The live path launched no run; the window sensor launched only settled loads.
    runs = instance.get_run_records(filters=dg.RunsFilter(tags={"cwl/stream": "app"}))
    assert "refresh" not in {r.dagster_run.tags.get("cwl/load") for r in runs}
    # Later, the settled load of the window: every event once in the events table.
    stamps = {floor_to_window(datetime.fromtimestamp(s / 1000, UTC), WINDOW) for s in producer.put.values()}
    for window in sorted(stamps):
        assert materialize(stack.defs, partition_key(window), tags={"cwl/load": "settled"}).success
    settled = counts(bq_client, stack.dataset, "app_events")
    assert set(settled) == put and max(settled.values()) == 1
    assert max(counts(bq_client, stack.dataset, "app_events_recent").values()) == 1

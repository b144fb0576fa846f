"""The near-real-time sensor, evaluated against local AWS on an ephemeral Dagster instance."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, partition_key, to_ms
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline.polling.plan import PlanState

WINDOW = timedelta(minutes=15)


def make_sensor(local_aws, write_config, group: str):
    path = write_config(
        f"""
aws: {{endpoint_url: "{local_aws.url}", max_attempts: 1}}
bigquery: {{project: cwl-local, dataset: unused}}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    window: 15m
    settle_lag: 1m
    refresh_interval: 30s
    live: {{path: runs}}
    max_windows_per_run: 8
    initial_lookback: 1h
    sweeps: [15m]
    start: "2026-01-01T00:00:00Z"
"""
    )
    defs = build_definitions(load_config(path))
    return defs.resolve_sensor_def("app_windows"), defs


@pytest.fixture(autouse=True)
def clear_of_window_boundaries():
    """Start away from a window boundary, so the test and the sensor agree on which is current.

    Windows turn over at :00/:15/:30/:45 and, with the 1-minute settle lag, settle a minute
    later; a test that straddled either would compare against the wrong window.
    """
    now = datetime.now(UTC)
    for boundary in (
        floor_to_window(now, WINDOW) + WINDOW,
        floor_to_window(now, WINDOW) + timedelta(minutes=1),
    ):
        if timedelta(0) <= boundary - now < timedelta(seconds=15):
            time.sleep((boundary - now).total_seconds() + 0.5)


def evaluate(sensor, defs, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    )
    return sensor.evaluate_tick(context)


def requested(result) -> list[tuple[str, str, str]]:
    out = []
    for r in result.run_requests:
        first = r.partition_key or r.tags[ASSET_PARTITION_RANGE_START_TAG]
        last = r.partition_key or r.tags[ASSET_PARTITION_RANGE_END_TAG]
        out.append((first, last, r.tags["cwl/load"]))
    return out


def test_first_tick_loads_the_lookback_and_refreshes_the_open_window(
    local_aws, logs_client, write_config, unique_name
):
    group = f"/test/sensor-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="s")
    sensor, defs = make_sensor(local_aws, write_config, group)
    instance = dg.DagsterInstance.ephemeral()

    now = datetime.now(UTC)
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": to_ms(now), "message": json.dumps({"session_id": 1})}],
    )
    result = evaluate(sensor, defs, instance)
    open_start = floor_to_window(now, WINDOW)
    settled_end = floor_to_window(now - timedelta(minutes=1), WINDOW)
    first = floor_to_window(now - timedelta(hours=1), WINDOW)
    # No sweep is due yet: the window that closed last reaches its 15-minute horizon later.
    assert requested(result) == [
        (partition_key(first), partition_key(settled_end - WINDOW), "settled"),
        (partition_key(open_start), partition_key(open_start), "refresh"),
    ]
    keys = [r.run_key for r in result.run_requests]
    assert len(set(keys)) == 2

    # The next tick right away: nothing new is settled, the open window was just refreshed.
    again = evaluate(sensor, defs, instance, cursor=result.cursor)
    assert requested(again) == []


def test_catches_up_after_downtime_in_bounded_ranges(local_aws, logs_client, write_config, unique_name):
    group = f"/test/sensor-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    sensor, defs = make_sensor(local_aws, write_config, group)
    instance = dg.DagsterInstance.ephemeral()
    now = datetime.now(UTC)
    # The sensor last settled windows 5 hours ago: 20 windows to catch up, 8 per run.
    down_since = floor_to_window(now - timedelta(hours=5), WINDOW)
    cursor = json.dumps(PlanState(done_until={"settled": down_since}).to_json())
    ranges = []
    for _ in range(5):
        result = evaluate(sensor, defs, instance, cursor=cursor)
        cursor = result.cursor
        ranges += [r for r in requested(result) if r[2] != "sweep-15m"]
    settled_end = floor_to_window(now - timedelta(minutes=1), WINDOW)
    expected_windows = int((settled_end - down_since) / WINDOW)
    assert len(ranges) == -(-expected_windows // 8)
    assert ranges[0][0] == partition_key(down_since)
    assert ranges[-1][1] == partition_key(settled_end - WINDOW)
    # No open-window refresh: no events arrived in it.
    assert {kind for *_, kind in ranges} == {"settled"}


def test_refresh_is_due_at_a_tick_slightly_early(local_aws, logs_client, write_config, unique_name):
    """The daemon ticks every refresh interval (30 s here), and a tick's clock can read a little
    less than 30 s after the previous refresh; that tick must still refresh the open window."""
    group = f"/test/sensor-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="s")
    sensor, defs = make_sensor(local_aws, write_config, group)
    instance = dg.DagsterInstance.ephemeral()
    now = datetime.now(UTC)
    open_start = floor_to_window(now, WINDOW)
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": to_ms(now), "message": json.dumps({"session_id": 1})}],
    )

    def refreshes(seconds_since_last: float) -> list[tuple[str, str, str]]:
        state = PlanState(
            done_until={"settled": open_start, "sweep-15m": open_start},
            refreshed_window=open_start,
            refreshed_at=now - timedelta(seconds=seconds_since_last),
            refresh_count=3,
        )
        result = evaluate(sensor, defs, instance, cursor=json.dumps(state.to_json()))
        return [r for r in requested(result) if r[2] == "refresh"]

    assert refreshes(29.6) == [(partition_key(open_start), partition_key(open_start), "refresh")]
    assert refreshes(5) == []

"""The Dagster daemon down for an hour, then restarted.

No proxy: the fault is time. The window sensor's cursor is set to what a daemon that was up to
date an hour ago left behind, events are put over that hour with PutLogEvents, and the sensor is
then evaluated tick after tick (``build_sensor_context`` on a real instance), running each
tick's requests, as the restarted daemon would.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from cwl_pipeline.core.windows import floor_to_window, parse_partition_key, partition_key
from cwl_pipeline.polling.plan import PlanState
from cwl_pipeline_tests.faults.fault_stack import WINDOW, cloudwatch_ids, table_ids
from cwl_pipeline_tests.pipeline.polling import make_stack, materialize, put

SETTLE_LAG = timedelta(minutes=1)
SWEEP = timedelta(minutes=15)
MAX_WINDOWS = 2


@pytest.fixture(autouse=True)
def clear_of_window_boundaries():
    """Start well away from a window boundary and from the settle time after it, so the test and
    the sensor agree on which windows are due during the whole test."""
    now = datetime.now(UTC)
    for boundary in (floor_to_window(now, WINDOW) + WINDOW, floor_to_window(now, WINDOW) + SETTLE_LAG):
        if timedelta(0) <= boundary - now < timedelta(seconds=30):
            # Past the boundary by more than the test looks back (its open-window events are 2 s old).
            time.sleep((boundary - now).total_seconds() + 5)


def windows_of(request: dg.RunRequest) -> list[datetime]:
    """Window starts a run request covers."""
    first = parse_partition_key(request.partition_key or request.tags[ASSET_PARTITION_RANGE_START_TAG])
    last = parse_partition_key(request.partition_key or request.tags[ASSET_PARTITION_RANGE_END_TAG])
    return [first + WINDOW * i for i in range(int((last - first) / WINDOW) + 1)]


def test_daemon_down_for_an_hour_catches_up_without_gap_or_overlap(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    """Cursor from an hour ago + an hour of events → the restarted sensor requests every window
    of the hour once per pass, in ranges of at most max_windows_per_run, contiguous; running
    them leaves every event in the table exactly once, with the right count per window."""
    stack = make_stack(
        local_aws,
        local_bigquery,
        logs_client,
        write_config,
        unique_name,
        "    settle_lag: 1m\n    refresh_interval: 30s\n    live: {path: runs}\n    sweeps: [15m]\n"
        f"    max_windows_per_run: {MAX_WINDOWS}",
    )
    group, dataset, defs = stack.group, stack.dataset, stack.defs
    sensor = defs.resolve_sensor_def("app_windows")

    now = datetime.now(UTC)
    down_at = now - timedelta(hours=1)
    # What the sensor's cursor held when the daemon last ticked: every pass up to date.
    state = PlanState(
        done_until={
            "settled": floor_to_window(down_at - SETTLE_LAG, WINDOW),
            "sweep-15m": floor_to_window(down_at - SWEEP, WINDOW),
        },
        refreshed_window=floor_to_window(down_at, WINDOW),
        refreshed_at=down_at,
        refresh_count=7,
    )
    settled_from = state.done_until["settled"]
    settled_to = floor_to_window(now - SETTLE_LAG, WINDOW)
    open_start = floor_to_window(now, WINDOW)
    due = [settled_from + WINDOW * i for i in range(int((settled_to - settled_from) / WINDOW))]
    sweep_from = state.done_until["sweep-15m"]
    sweep_due = [sweep_from + WINDOW * i for i in range(int((now - SWEEP - sweep_from) / WINDOW))]
    assert len(due) == len(sweep_due) == 4  # an hour of 15-minute windows, per pass

    # Events over the hour: 1, 2, 3 and 4 in the four windows, and 2 in the open window.
    put_per_window = {start: i + 1 for i, start in enumerate(due)}
    events = [
        (start + timedelta(minutes=1 + 2 * n), {"session_id": 100 * i + n, "action": "view"})
        for i, (start, count) in enumerate(put_per_window.items())
        for n in range(count)
    ]
    events += [(now - timedelta(seconds=s), {"session_id": 900 + s}) for s in (2, 1)]
    assert all(t >= open_start for t, _ in events[-2:])
    put(logs_client, group, events)

    instance = dg.DagsterInstance.ephemeral()
    cursor = json.dumps(state.to_json())
    requested: dict[str, list[list[datetime]]] = {}
    loaded: dict[datetime, int] = {}
    for _tick in range(6):
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
        )
        result = sensor.evaluate_tick(context)
        cursor = result.cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            requested.setdefault(request.tags["cwl/load"], []).append(windows_of(request))
            tags = {
                k: v for k, v in request.tags.items() if k.startswith(("cwl/", "dagster/asset_partition"))
            }
            run = materialize(defs, request.partition_key, instance=instance, tags=tags)
            for mat in run.asset_materializations_for_node("load_app"):
                if mat.asset_key == dg.AssetKey(["app_events"]):
                    loaded[parse_partition_key(mat.partition)] = mat.metadata["events_read"].value
    assert not result.run_requests, "the sensor never caught up"

    # Each pass: bounded ranges, in order, no gap, no overlap, exactly the hour's windows.
    for kind, expected_windows in (("settled", due), ("sweep-15m", sweep_due)):
        ranges = requested[kind]
        assert all(1 <= len(r) <= MAX_WINDOWS for r in ranges), ranges
        assert [w for r in ranges for w in r] == expected_windows, (kind, ranges)
        assert len(ranges) == -(-len(expected_windows) // MAX_WINDOWS)
    assert requested["refresh"] == [[open_start]]
    assert set(requested) == {"settled", "sweep-15m", "refresh"}
    # The run history: one successful run per request, tagged with its kind of load.
    runs = instance.get_run_records(filters=dg.RunsFilter(tags={"cwl/stream": "app"}))
    assert Counter(r.dagster_run.tags["cwl/load"] for r in runs) == {k: len(v) for k, v in requested.items()}
    assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}

    # Every event exactly once, and the right count per window.
    assert {w: loaded[w] for w in due} == put_per_window
    assert loaded[open_start] == 2
    expected = cloudwatch_ids(logs_client, group, settled_from, open_start + WINDOW)
    assert len(expected) == sum(put_per_window.values()) + 2
    assert table_ids(bq_client, dataset) == expected
    per_window = Counter(
        floor_to_window(r["timestamp"], WINDOW)
        for r in bq_client.query(f"SELECT timestamp FROM `cwl-local.{dataset}.app_events`").result()
    )
    assert dict(per_window) == {**put_per_window, open_start: 2}
    materialized = instance.get_materialized_partitions(dg.AssetKey("app_events"))
    assert {partition_key(w) for w in [*due, *sweep_due, open_start]} <= materialized

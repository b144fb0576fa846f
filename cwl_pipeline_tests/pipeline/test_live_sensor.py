"""The live sensor of a polling stream against the local stack, ticked as the daemon ticks it.

Each tick reads the newest events with FilterLogEvents (moto) and appends them to
``<table>_live`` through the emulator's Storage Write API (behind the stand-in that refuses what
BigQuery refuses); the ``_recent`` view shows each event once. No tick launches a run, and the
window sensor of a stream on this path requests no refresh.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.polling.filter_log_events import filter_log_events_budget
from cwl_pipeline.polling.live_sensor import build_live_sensor
from cwl_pipeline_tests.pipeline.polling import make_stack, materialize, put
from cwl_pipeline_tests.sensor_runs import tick
from cwl_pipeline_tests.stack import Stack


@pytest.fixture
def live(local_aws, local_bigquery, logs_client, write_config, unique_name, storage_write) -> Stack:
    grpc = f', storage_write_endpoint: "{storage_write.endpoint}"'
    return make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, bigquery_extra=grpc)


def sessions(bq_client, stack: Stack, table: str) -> Counter[int]:
    """How many rows of each session id ``table`` holds (nothing if it does not exist yet)."""
    try:
        result = bq_client.query(f"SELECT session_id FROM `cwl-local.{stack.dataset}.{table}`").result()
    except Exception as exc:
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return Counter()
        raise
    return Counter(r["session_id"] for r in result)


def put_now(logs_client, stack: Stack, ids: range, age: timedelta = timedelta(seconds=2)) -> None:
    now = datetime.now(UTC) - age
    events = [
        (now + timedelta(milliseconds=n), {"session_id": i, "action": "view"}) for n, i in enumerate(ids)
    ]
    put(logs_client, stack.group, events)


def test_each_tick_appends_the_new_events_and_launches_no_run(live, logs_client, bq_client):
    instance = dg.DagsterInstance.ephemeral()
    sensor = live.defs.resolve_sensor_def("app_live")
    put_now(logs_client, live, range(3))

    first = tick(sensor, live.defs, instance, None)
    assert first.requests == []
    assert sessions(bq_client, live, "app_events_recent") == Counter({0: 1, 1: 1, 2: 1})
    assert sessions(bq_client, live, "app_events") == Counter()  # the settled load writes it
    [event] = first.result.asset_events  # type: ignore[attr-defined]
    assert event.asset_key == dg.AssetKey("app_events_live")
    assert event.metadata["events_appended"].value == 3
    assert event.metadata["filter_log_events_calls"].value == 1

    put_now(logs_client, live, range(3, 5))
    second = tick(sensor, live.defs, instance, first.cursor)
    assert second.result.asset_events[0].metadata["events_appended"].value == 2  # type: ignore[attr-defined]
    assert sessions(bq_client, live, "app_events_recent") == Counter(dict.fromkeys(range(5), 1))

    # Nothing new: nothing appended again, the view unchanged.
    live_rows = sum(sessions(bq_client, live, "app_events_live").values())
    idle = tick(sensor, live.defs, instance, second.cursor)
    assert not idle.result.asset_events and "no new events" in idle.result.skip_message  # type: ignore[attr-defined]
    assert sum(sessions(bq_client, live, "app_events_live").values()) == live_rows
    # The UI's view of the live table: a materialization per tick that appended.
    latest = instance.get_latest_materialization_event(dg.AssetKey("app_events_live"))
    assert latest is not None and latest.asset_materialization.metadata["events_appended"].value == 2

    # The window sensor of this stream requests no refresh of the open window.
    window_tick = tick(live.defs.resolve_sensor_def("app_windows"), live.defs, instance, None)
    assert "refresh" not in {r.tags["cwl/load"] for r in window_tick.requests}

    # The settled load writes the events once; the view still shows each event once.
    open_window = floor_partition(datetime.now(UTC))
    assert materialize(live.defs, open_window, instance=instance, tags={"cwl/load": "settled"}).success
    assert sessions(bq_client, live, "app_events") == Counter(dict.fromkeys(range(5), 1))
    assert sessions(bq_client, live, "app_events_recent") == Counter(dict.fromkeys(range(5), 1))


def floor_partition(now: datetime) -> str:
    from cwl_pipeline.core.windows import floor_to_window, partition_key
    from cwl_pipeline_tests.pipeline.polling import WINDOW

    return partition_key(floor_to_window(now - timedelta(seconds=2), WINDOW))


def test_an_event_arriving_late_inside_the_lookback_is_appended(live, logs_client, bq_client):
    """An event stamped 90 s ago, put after newer events were appended (an agent's buffer): an
    ingestion-time cursor would skip it; the event-time re-read appends it."""
    instance = dg.DagsterInstance.ephemeral()
    sensor = live.defs.resolve_sensor_def("app_live")
    put_now(logs_client, live, range(2))
    first = tick(sensor, live.defs, instance, None)
    put_now(logs_client, live, range(10, 11), age=timedelta(seconds=90))
    tick(sensor, live.defs, instance, first.cursor)
    assert sessions(bq_client, live, "app_events_recent") == Counter({0: 1, 1: 1, 10: 1})


def test_a_busy_stream_spreads_over_ticks_within_its_request_bound(live, logs_client, bq_client):
    """Pages of 2 events, at most 2 requests a tick: 9 events take several ticks, each within
    the bound, and every event ends up in the view once."""
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_live_sensor(StreamTables.of(live.config.streams[0]), max_requests=2, page_events=2)
    defs = dg.Definitions(sensors=[sensor], resources=live.defs.resources)
    put_now(logs_client, live, range(9))
    cursor, calls, cut = None, [], []
    for _ in range(6):
        result = tick(sensor, defs, instance, cursor)
        cursor = result.cursor
        for event in result.result.asset_events:  # type: ignore[attr-defined]
            calls.append(event.metadata["filter_log_events_calls"].value)
            cut.append(event.metadata["cut_short"].value)
    assert calls and max(calls) <= 2
    assert cut[0] is True and len(calls) >= 3
    assert sessions(bq_client, live, "app_events_recent") == Counter(dict.fromkeys(range(9), 1))


def test_the_sensor_spends_the_process_filter_log_events_budget(live, logs_client):
    """The live sensor's requests come out of the process's FilterLogEvents budget, the one
    every run and sensor of the process shares for the account and Region."""
    aws = live.config.aws
    resource = live.defs.resources["aws"]
    budget = filter_log_events_budget(
        resource.caller_account(), aws.region, aws.endpoint_url or "", aws.filter_log_events_per_second
    )
    sensor = build_live_sensor(StreamTables.of(live.config.streams[0]), max_requests=4, page_events=1)
    defs = dg.Definitions(sensors=[sensor], resources=live.defs.resources)
    put_now(logs_client, live, range(6))
    tokens_before = budget._tokens
    taken_before = budget.waited_s
    result = tick(sensor, defs, dg.DagsterInstance.ephemeral(), None)
    [event] = result.result.asset_events  # type: ignore[attr-defined]
    assert event.metadata["filter_log_events_calls"].value == 4
    # Four requests against a budget of aws.filter_log_events_per_second (2/s, a burst of 2).
    assert budget.waited_s > taken_before or budget._tokens < tokens_before

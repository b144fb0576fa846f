"""A fresh start sweeps the window that closed just before it: late events still land, once.

Real time, real sensor ticks and real runs against the local AWS and BigQuery: one-minute
windows, a 5-second settle lag and a 30-second sweep, so the whole story takes under a minute.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.polling.sensor import build_window_sensor
from cwl_pipeline_tests.pipeline.polling import make_stack, put, rows
from cwl_pipeline_tests.sensor_runs import launch, tick

MINUTE = timedelta(minutes=1)
STREAM = """    settle_lag: 5s
    sweeps: [30s]
    initial_lookback: 5m
"""


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_late_events_of_the_window_closed_just_before_a_fresh_start_land_once(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, STREAM, window="1m")
    sensor = build_window_sensor(StreamTables.of(stack.config.streams[0]))
    defs = stack.defs
    # Start 8 seconds after a window closed: it has settled, its 30-second sweep is still to come.
    now = datetime.now(UTC)
    closed = floor_to_window(now, MINUTE) + MINUTE
    _sleep_until(closed + timedelta(seconds=8))
    window = closed - MINUTE
    put(
        logs_client,
        stack.group,
        [(window + timedelta(seconds=20), {"session_id": 1, "action": "on-time"})],
    )

    with dg.instance_for_test() as instance:
        first = tick(sensor, defs, instance, None)
        [settled] = [r for r in first.requests if r.tags["cwl/load"] == "settled"]
        assert launch(defs, instance, settled, "load_app").success
        # Events stamped inside that window arrive after it was loaded (CloudWatch accepts them).
        put(
            logs_client,
            stack.group,
            [(window + timedelta(seconds=40), {"session_id": 2, "action": "late"})],
        )

        cursor, swept = first.cursor, []
        deadline = closed + timedelta(seconds=50)
        while datetime.now(UTC) < deadline and not swept:
            time.sleep(2)
            later = tick(sensor, defs, instance, cursor)
            cursor = later.cursor
            swept = [r for r in later.requests if r.tags["cwl/load"] == "sweep-30s"]
        assert [r.partition_key for r in swept] == [partition_key(window)], "the window was never swept"
        assert launch(defs, instance, swept[0], "load_app").success

    stored = rows(bq_client, stack.dataset)
    assert sorted(r["action"] for r in stored) == ["late", "on-time"]
    assert max(Counter(r["event_id"] for r in stored).values()) == 1

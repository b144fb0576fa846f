"""Reconciliation with CloudWatch's IncomingLogEvents, through the local stack.

The local AWS (moto) does not compute ``IncomingLogEvents`` from the events it ingests: these
tests write the metric themselves with PutMetricData, as CloudWatch would have counted it.
Everything else is real: events go in with PutLogEvents (moto stamps their ``ingestionTime``
with the real time), loads and heal runs are real Dagster runs into the BigQuery emulator, the
sensor's ticks are evaluated on a persistent Dagster instance, and the check runs as a Dagster
run.

An hour can be judged only once every window its events can belong to had its final sweep,
hours after it ended; the events here are ingested now. So the check and the sensor are built
with a clock moved ahead to that moment (the only thing not real here). Heal runs still read
only windows that have closed by the wall clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest

from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG, events_key
from cwl_pipeline.polling.assets import build_window_asset
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents, count_ingested
from cwl_pipeline.polling.reconcile import (
    HEAL_ATTEMPT_TAG,
    HEAL_HOUR_TAG,
    RECONCILE_CHECK,
    build_reconcile_sensor,
    build_reconciliation_check,
)
from cwl_pipeline.polling.reconcile_counts import horizon_of
from cwl_pipeline.polling.reconcile_plan import floor_to_hour
from cwl_pipeline_tests.pipeline.polling import WINDOW, assets_def, make_stack, put
from cwl_pipeline_tests.sensor_runs import launch, tick
from cwl_pipeline_tests.stack import Stack

STREAM = """    settle_lag: 1m
    sweeps: [15m]
    initial_lookback: 1h
"""


@pytest.fixture(autouse=True)
def clear_of_hour_boundaries():
    """Start away from the turn of an hour and of a window: the events a test puts must all be
    ingested in one hour, and the windows it loads must have closed."""
    now = datetime.now(UTC)
    for boundary in (floor_to_hour(now) + timedelta(hours=1), floor_to_window(now, WINDOW) + WINDOW):
        if timedelta(0) <= boundary - now < timedelta(seconds=45):
            time.sleep((boundary - now).total_seconds() + 0.5)


@pytest.fixture
def instance():
    """A persistent temporary instance: runs, observations and check results are stored."""
    with dg.instance_for_test() as temp:
        yield temp


@pytest.fixture
def cloudwatch(local_aws):
    """A boto3 CloudWatch (metrics) client on the local AWS."""
    return boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")


def put_incoming_log_events(cloudwatch, group: str, hour: datetime, count: int) -> None:
    """Write CloudWatch's count of the events ``group`` accepted in ``hour``: moto does not
    compute IncomingLogEvents itself, so the test writes the metric CloudWatch would publish."""
    cloudwatch.put_metric_data(
        Namespace="AWS/Logs",
        MetricData=[
            {
                "MetricName": "IncomingLogEvents",
                "Dimensions": [{"Name": "LogGroupName", "Value": group}],
                "Timestamp": hour + timedelta(minutes=1),
                "Value": float(count),
                "Unit": "None",
            }
        ],
    )


def test_incoming_log_events_are_read_per_hour_and_group(local_aws, logs_client, cloudwatch, unique_name):
    a, b = f"/test/metric-a-{unique_name}", f"/test/metric-b-{unique_name}"
    hour = floor_to_hour(datetime.now(UTC)) - timedelta(hours=3)
    # Written as CloudWatch would count them (moto does not compute IncomingLogEvents):
    # two datapoints inside one hour add up, and the groups add up.
    put_incoming_log_events(cloudwatch, a, hour, 5)
    put_incoming_log_events(cloudwatch, a, hour + timedelta(minutes=30), 2)
    put_incoming_log_events(cloudwatch, b, hour, 1)
    put_incoming_log_events(cloudwatch, a, hour + timedelta(hours=2), 4)
    metrics = IncomingLogEvents(cloudwatch)
    counts = metrics.hourly_counts([a, b, f"/test/none-{unique_name}"], hour, hour + timedelta(hours=3))
    assert counts == {hour: 8, hour + timedelta(hours=1): 0, hour + timedelta(hours=2): 4}


def test_count_ingested_selects_by_event_time_and_ingestion_hour(local_aws, logs_client, unique_name):
    group = f"/test/ingested-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="s")
    now = datetime.now(UTC)
    put(logs_client, group, [(now - timedelta(hours=3), "old"), (now - timedelta(minutes=5), "new")], "s")
    reader = CloudWatchLogsReader(logs_client)
    hour = floor_to_hour(now)
    counted = count_ingested(
        reader,
        [group],
        event_start=now - timedelta(days=14),
        event_end=now - timedelta(hours=1),
        ingested_start=hour,
        ingested_end=hour + timedelta(hours=1),
    )
    assert counted == {group: 1}
    earlier = count_ingested(
        reader,
        [group],
        event_start=now - timedelta(days=14),
        event_end=now,
        ingested_start=hour - timedelta(hours=1),
        ingested_end=hour,
    )
    assert earlier == {}


def reconciliation(stack: Stack, ingested_hour: datetime):
    """The check and the sensor of the stack's stream, with a clock at which ``ingested_hour``
    is past its final sweep."""
    tables = StreamTables.of(stack.config.streams[0])
    due = horizon_of(tables.stream).due_at(ingested_hour) + timedelta(minutes=1)
    shift = due - datetime.now(UTC)

    def clock() -> datetime:
        return datetime.now(UTC) + shift

    return tables, build_reconciliation_check(tables, clock), build_reconcile_sensor(tables, clock)


def run_check(
    stack: Stack, check: dg.AssetChecksDefinition, tables: StreamTables, instance
) -> dg.AssetCheckEvaluation:
    """Execute the reconciliation check as a Dagster run; its evaluation."""
    load = build_window_asset(tables, stack.config.bigquery)
    result = dg.materialize(
        [load, check],
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(events_key(tables), RECONCILE_CHECK)),
        resources=stack.defs.resources,
        instance=instance,
    )
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def load_range(stack: Stack, first: datetime, last: datetime, instance) -> None:
    """Load windows ``first`` … ``last`` as a run launched by hand."""
    result = dg.materialize(
        [assets_def(stack.defs)],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": partition_key(first),
            "dagster/asset_partition_range_end": partition_key(last),
        },
    )
    assert result.success


def stored(bq_client, dataset: str) -> tuple[int, int]:
    """Rows and distinct event ids in the events table."""
    [row] = bq_client.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM `cwl-local.{dataset}.app_events`"
    ).result()
    return row["n"], row["ids"]


def test_a_very_late_event_is_found_by_the_reconciliation_and_healed(
    local_aws, local_bigquery, logs_client, cloudwatch, bq_client, write_config, unique_name, instance
):
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, STREAM)
    group, now = stack.group, datetime.now(UTC)
    hour = floor_to_hour(now)
    late_window = floor_to_window(now - timedelta(hours=2), WINDOW)
    on_time_window = floor_to_window(now - timedelta(hours=1), WINDOW)
    put(logs_client, group, [(on_time_window + timedelta(minutes=m), {"action": f"a{m}"}) for m in (1, 2, 3)])
    # Both windows are loaded and past their final sweep (15 minutes) ...
    load_range(stack, late_window, on_time_window, instance)
    # ... when an event stamped inside the older one arrives: nothing will read it again.
    put(logs_client, group, [(late_window + timedelta(minutes=4), {"action": "very late"})])
    put_incoming_log_events(cloudwatch, group, hour, 4)  # CloudWatch counted 4 ingested this hour
    assert stored(bq_client, stack.dataset) == (3, 3)

    tables, check, sensor = reconciliation(stack, hour)
    first = run_check(stack, check, tables, instance)
    assert not first.passed and first.severity == dg.AssetCheckSeverity.ERROR
    assert first.metadata["shortfall_past_final_sweep"].value == 1
    assert first.metadata["cloudwatch_events"].value == 4 and first.metadata["stored_events"].value == 3
    assert f"{hour:%Y-%m-%d %H:00} | 4 | 3 | -1 | short past the final sweep" in first.metadata["hours"].value

    healing = tick(sensor, stack.defs, instance, None)
    [heal] = healing.requests
    assert heal.tags[LOAD_KIND_TAG] == "heal"
    assert heal.tags[HEAL_HOUR_TAG] == hour.isoformat() and heal.tags[HEAL_ATTEMPT_TAG] == "1"
    assert heal.run_key.startswith(f"app:heal:{hour:%Y-%m-%dT%H}:attempt-1:")
    heal_first = datetime.strptime(heal.tags["dagster/asset_partition_range_start"], "%Y-%m-%d-%H:%M")
    assert heal_first.replace(tzinfo=UTC) <= late_window
    [said] = [line for line in healing.lines("WARNING") if "short by 1 past the final sweep" in line]
    assert "heal 1/3 reads windows" in said
    [observation] = healing.result.asset_events  # type: ignore[attr-defined]
    assert observation.metadata["reconcile_shortfall_past_final_sweep"].value == 1.0

    run = launch(stack.defs, instance, heal, "load_app")
    assert run.success
    assert stored(bq_client, stack.dataset) == (4, 4)  # the late event, once

    assert run_check(stack, check, tables, instance).passed
    healed = tick(sensor, stack.defs, instance, healing.cursor)
    assert healed.requests == []
    assert f"app {hour:%Y-%m-%d %H:00}: agrees with CloudWatch after 1 heal(s)" in healed.lines("INFO")
    [observation] = healed.result.asset_events  # type: ignore[attr-defined]
    assert observation.metadata["reconcile_difference"].value == 0.0
    assert stored(bq_client, stack.dataset) == (4, 4)


def test_a_shortfall_of_events_stamped_before_the_start_is_explained(
    local_aws, local_bigquery, logs_client, cloudwatch, bq_client, write_config, unique_name, instance
):
    now = datetime.now(UTC)
    start = floor_to_window(now - timedelta(minutes=90), WINDOW)
    stack = make_stack(
        local_aws,
        local_bigquery,
        logs_client,
        write_config,
        unique_name,
        STREAM + "    reconcile: {max_heal_attempts: 1}\n",
        start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    group, hour = stack.group, floor_to_hour(now)
    put(
        logs_client,
        group,
        [
            (start - timedelta(minutes=30), {"action": "before the start"}),
            (start + timedelta(minutes=1), {"action": "a"}),
            (start + timedelta(minutes=2), {"action": "b"}),
        ],
    )
    load_range(stack, start, floor_to_window(now, WINDOW) - WINDOW, instance)
    put_incoming_log_events(cloudwatch, group, hour, 3)  # CloudWatch counted all 3
    tables, check, sensor = reconciliation(stack, hour)

    healing = tick(sensor, stack.defs, instance, None)
    [heal] = healing.requests  # first, read the windows again
    assert launch(stack.defs, instance, heal, "load_app").success
    assert stored(bq_client, stack.dataset) == (2, 2)

    explained = tick(sensor, stack.defs, instance, healing.cursor)
    assert explained.requests == []
    [said] = [line for line in explained.lines("WARNING") if "explained" in line]
    assert "1 event(s) ingested then carry event times before the stream's start" in said

    result = run_check(stack, check, tables, instance)
    assert result.passed
    assert "before the stream's start" in (result.description or "")
    assert result.metadata["shortfall_explained"].value == 1
    assert "short, explained at the source" in result.metadata["hours"].value

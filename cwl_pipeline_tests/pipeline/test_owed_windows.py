"""Failed settled loads and final sweeps of a polling stream are asked for again.

Every failed run here is real: the sensor's request is executed in-process on a persistent
temporary Dagster instance, with the tags the daemon gives a sensor's run, by definitions whose
AWS endpoint is a closed local port; the run fails reading CloudWatch and Dagster records it
FAILURE. The sensor itself ticks with the working definitions (local AWS and BigQuery).
The sensor is built with a retry policy without waits, so the test does not sleep for minutes;
one test checks the default policy's first wait.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    RUN_KEY_TAG,
)

from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.local.processes import free_port
from cwl_pipeline.orchestration.owed_plan import RetryPolicy
from cwl_pipeline.polling.plan import PlanState
from cwl_pipeline.polling.sensor import build_window_sensor
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, put, rows
from cwl_pipeline_tests.sensor_runs import assert_retry_chain, launch, tick
from cwl_pipeline_tests.stack import Stack, stack_yaml

NO_WAIT = RetryPolicy(first_delay=timedelta(0))
STREAM = """    settle_lag: 1m
    live: {path: runs}
    initial_lookback: 1h
    max_windows_per_run: 8
    sweeps: [15m]
"""


@pytest.fixture(autouse=True)
def clear_of_window_boundaries():
    """Start away from the moments a window closes or settles (every 15 minutes, and 1 minute
    later), so the windows the test expects are the ones the sensor plans."""
    now = datetime.now(UTC)
    for boundary in (
        floor_to_window(now, WINDOW) + WINDOW,
        floor_to_window(now, WINDOW) + timedelta(minutes=1),
    ):
        if timedelta(0) <= boundary - now < timedelta(seconds=10):
            time.sleep((boundary - now).total_seconds() + 0.5)


@pytest.fixture
def instance():
    """A persistent temporary instance: runs, materializations and observations are stored."""
    with dg.instance_for_test() as temp:
        yield temp


@dataclass(frozen=True)
class FailingStack(Stack):
    """The stack, and its definitions with AWS and BigQuery on ports nothing listens on."""

    failing: dg.Definitions | None = None


def failing_definitions(write_config, stack: Stack) -> dg.Definitions:
    """The stream's definitions with its AWS endpoint on a port nothing listens on."""
    path = write_config(
        stack_yaml(
            aws_url=f"http://127.0.0.1:{free_port()}",
            bq_url="http://127.0.0.1:1",
            dataset=stack.dataset,
            source=f'{{log_groups: ["{stack.group}"]}}',
            extra=STREAM,
            aws_extra=", max_attempts: 1",
        )
    )
    return build_definitions(load_config(path))


def sensor_of(stack: Stack, retry: RetryPolicy = NO_WAIT) -> dg.SensorDefinition:
    return build_window_sensor(StreamTables.of(stack.config.streams[0]), retry)


@pytest.fixture
def polling(local_aws, local_bigquery, logs_client, write_config, unique_name) -> FailingStack:
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, STREAM)
    return FailingStack(**vars(stack), failing=failing_definitions(write_config, stack))


def test_failed_settled_load_is_asked_for_again_until_the_bound(polling, instance):
    sensor, defs = sensor_of(polling), polling.defs
    first_tick = tick(sensor, defs, instance, None)
    [settled] = [r for r in first_tick.requests if r.tags["cwl/load"] == "settled"]
    assert settled.tags[ASSET_PARTITION_RANGE_START_TAG] != settled.tags[ASSET_PARTITION_RANGE_END_TAG]

    gave_up = assert_retry_chain(
        sensor=sensor,
        defs=defs,
        failing_defs=polling.failing,
        instance=instance,
        first=settled,
        cursor=first_tick.cursor,
        node_name="load_app",
    )
    first, last = settled.tags[ASSET_PARTITION_RANGE_START_TAG], settled.tags[ASSET_PARTITION_RANGE_END_TAG]
    [error] = [line for line in gave_up.lines("ERROR") if line.startswith("giving up")]
    assert f"giving up on settled windows {first}..{last}: attempt 5/5" in error

    # Given up stays visible: in the cursor, in every later tick's log, and in the observation
    # of the events table; and it is never asked for again.
    later = tick(sensor, defs, instance, gave_up.cursor)
    assert later.retries == []
    assert any("GIVEN UP after 5/5" in line for line in later.lines("ERROR")), later.log
    [owed] = json.loads(later.cursor)["owed"]["loads"]
    assert (owed["kind"], owed["first"], owed["last"], owed["attempt"]) == ("settled", first, last, 5)
    observation = latest_observation(instance, defs)
    assert observation["owed_loads"] == 1 and observation["owed_given_up"] == 1

    # Loading the windows by hand (here: the same request once the endpoint is back) clears it.
    assert launch(defs, instance, settled, "load_app").success
    cleared = tick(sensor, defs, instance, later.cursor)
    assert json.loads(cleared.cursor)["owed"]["loads"] == []
    assert any("no longer owed" in line for line in cleared.lines("INFO")), cleared.log
    assert latest_observation(instance, defs)["owed_loads"] == 0


def test_retry_that_succeeds_loads_the_window_and_clears_the_debt(polling, instance, logs_client, bq_client):
    sensor, defs = sensor_of(polling), polling.defs
    now = datetime.now(UTC)
    window = floor_to_window(now - timedelta(minutes=1), WINDOW) - WINDOW
    put(logs_client, polling.group, [(window + timedelta(minutes=2), {"session_id": 7})])
    first_tick = tick(sensor, defs, instance, None)
    [settled] = [r for r in first_tick.requests if r.tags["cwl/load"] == "settled"]
    assert settled.tags[ASSET_PARTITION_RANGE_END_TAG] == partition_key(window)

    failed = launch(polling.failing, instance, settled, "load_app")
    assert not failed.success
    second = tick(sensor, defs, instance, first_tick.cursor)
    [retry] = second.retries
    assert retry.tags["cwl/attempt"] == "2"
    assert any("run " + failed.run_id in line and "attempt 1/5" in line for line in second.lines("WARNING"))

    assert launch(defs, instance, retry, "load_app").success
    assert [r["session_id"] for r in rows(bq_client, polling.dataset)] == [7]
    third = tick(sensor, defs, instance, second.cursor)
    assert third.retries == [] and json.loads(third.cursor)["owed"]["loads"] == []


def test_failed_final_sweep_is_asked_for_again_until_the_bound(polling, instance):
    sensor, defs = sensor_of(polling), polling.defs
    now = datetime.now(UTC)
    settled_end = floor_to_window(now - timedelta(minutes=1), WINDOW)
    sweep_end = floor_to_window(now - timedelta(minutes=15), WINDOW)
    # The settled pass is up to date; one window is due for its (final) 15-minute sweep.
    state = PlanState(done_until={"settled": settled_end, "sweep-15m": sweep_end - WINDOW})
    first_tick = tick(sensor, defs, instance, json.dumps(state.to_json()))
    [sweep] = [r for r in first_tick.requests if r.tags["cwl/load"] == "sweep-15m"]
    assert sweep.partition_key == partition_key(sweep_end - WINDOW)

    gave_up = assert_retry_chain(
        sensor=sensor,
        defs=defs,
        failing_defs=polling.failing,
        instance=instance,
        first=sweep,
        cursor=first_tick.cursor,
        node_name="load_app",
    )
    assert any(
        line.startswith(f"giving up on sweep-15m window {sweep.partition_key}: attempt 5/5")
        for line in gave_up.lines("ERROR")
    ), gave_up.log


def test_default_policy_waits_before_the_second_attempt(polling, instance):
    sensor, defs = sensor_of(polling, RetryPolicy()), polling.defs
    first_tick = tick(sensor, defs, instance, None)
    [settled] = [r for r in first_tick.requests if r.tags["cwl/load"] == "settled"]
    assert not launch(polling.failing, instance, settled, "load_app").success
    second = tick(sensor, defs, instance, first_tick.cursor)
    assert second.retries == []
    assert any("attempt 2 due at" in line for line in second.lines("WARNING")), second.log
    assert any("attempt 2/5 due at" in line for line in second.lines("WARNING")), second.log


def test_failed_refresh_is_not_asked_for_again(polling, instance, logs_client):
    """The settled load of the open window follows a refresh anyway."""
    sensor, defs = sensor_of(polling), polling.defs
    put(logs_client, polling.group, [(datetime.now(UTC), {"session_id": 1})])
    first_tick = tick(sensor, defs, instance, None)
    [refresh] = [r for r in first_tick.requests if r.tags["cwl/load"] == "refresh"]
    assert not launch(polling.failing, instance, refresh, "load_app").success
    assert tick(sensor, defs, instance, first_tick.cursor).retries == []


def test_run_cancelled_before_it_started_is_asked_for_again(polling, instance):
    """A run cancelled before it started (as an operator cancels a waiting run). The run record is
    created directly, by ``create_run_for_job`` with the request's tags, and cancelled with
    ``report_run_canceled``, the call Dagster makes for a run that never started; no process runs."""
    sensor, defs = sensor_of(polling), polling.defs
    first_tick = tick(sensor, defs, instance, None)
    [settled] = [r for r in first_tick.requests if r.tags["cwl/load"] == "settled"]
    job = defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey(["app_events"])])
    assert job is not None
    run = instance.create_run_for_job(
        job_def=job,
        tags={**settled.tags, RUN_KEY_TAG: settled.run_key},
    )
    instance.report_run_canceled(run)
    after = tick(sensor, defs, instance, first_tick.cursor)
    [retry] = after.retries
    assert (retry.tags["cwl/attempt"], retry.tags["cwl/retry_of"]) == ("2", run.run_id)
    assert any(f"after run {run.run_id} ended CANCELED" in line for line in after.lines("INFO")), after.log


def latest_observation(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict:
    """Metadata values of the latest observation of the events table."""
    [record] = instance.fetch_observations(dg.AssetKey(["app_events"]), limit=1).records
    observation = record.asset_observation
    assert observation is not None
    return {k: v.value for k, v in observation.metadata.items()}

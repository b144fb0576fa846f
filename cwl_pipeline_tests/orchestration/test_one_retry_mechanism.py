"""A failed run is retried by one mechanism: a sensor's run by its sensor, any other by Dagster.

The production instance enables Dagster's ``run_retries`` (deploy/dagster/dagster.yaml) for
backfills and runs launched from the UI. A sensor's runs carry ``dagster/max_retries: 0``, so
Dagster's retry daemon leaves them to the sensor's owed runs (or the reconciliation's heal).
The decision is Dagster's own function, asked on a real instance with run records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.events import RunFailureReason
from dagster._core.execution.retries import auto_reexecution_should_retry_run

from cwl_pipeline.core.windows import WindowRequest
from cwl_pipeline.exports.sensor import retry_folder_request
from cwl_pipeline.orchestration.owed_plan import FailedRun, OwedLoad, Retry
from cwl_pipeline.orchestration.run_requests import retry_window_request, run_request

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dg.op
def noop() -> None:
    """Nothing: the runs are records only."""


@dg.job
def load_job() -> None:
    noop()


def _failed_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = instance.create_run_for_job(job_def=load_job, tags=tags)
    instance.report_run_failed(run)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE
    return failed


def _retry() -> Retry:
    key = "2026-11-01-00:00"
    failed = FailedRun(
        run_id="0" * 36,
        work=key,
        kind="settled",
        first=key,
        last=key,
        attempt=1,
        status="FAILURE",
        started_at=T0,
        ended_at=T0,
    )
    return Retry(load=OwedLoad(failed=failed, due_at=T0), attempt=2, run_key="k:attempt-2")


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as instance:
        yield instance


def test_sensor_runs_are_left_to_their_sensor(instance: dg.DagsterInstance) -> None:
    window = WindowRequest(T0, T0 + timedelta(minutes=45), "settled", "app:settled:1")
    requests = [
        run_request("app", window),
        retry_window_request("app", _retry()),
        retry_folder_request("app", _retry()),
    ]
    for request in requests:
        run = _failed_run(instance, dict(request.tags))
        assert not auto_reexecution_should_retry_run(instance, run, RunFailureReason.STEP_FAILURE), (
            request.tags
        )


def test_other_runs_are_retried_by_dagster(instance: dg.DagsterInstance) -> None:
    run = _failed_run(instance, {"dagster/backfill": "abc"})
    assert auto_reexecution_should_retry_run(instance, run, RunFailureReason.STEP_FAILURE)

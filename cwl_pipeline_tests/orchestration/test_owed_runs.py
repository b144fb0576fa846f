"""Reading a sensor's failed runs from a real Dagster instance, page by page.

The failed runs are run records created directly in a temporary instance
(``create_run_for_job`` with a sensor's tags, then ``report_run_failure``): what matters here is
how the scan pages through many of them, not why they failed. The sensor tests make runs that
really fail.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.orchestration.owed_plan import OwedState, RetryPolicy
from cwl_pipeline.orchestration.owed_runs import OwedScope, plan_owed_loads
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG, STREAM_TAG

WINDOW = timedelta(minutes=15)


@dg.op
def noop() -> None:
    """Nothing: the runs are records only."""


@dg.job
def load_job() -> None:
    noop()


def fail_run(instance: dg.DagsterInstance, window: datetime, kind: str = "settled") -> str:
    key = partition_key(window)
    run = instance.create_run_for_job(
        job_def=load_job,
        tags={
            SENSOR_NAME_TAG: "app_windows",
            STREAM_TAG: "app",
            LOAD_KIND_TAG: kind,
            PARTITION_NAME_TAG: key,
            RUN_KEY_TAG: f"app:{kind}:{key}",
        },
    )
    instance.report_run_failed(run)
    return run.run_id


def test_many_failures_are_read_over_several_ticks_without_skipping_any():
    scope = OwedScope(
        sensor_name="app_windows",
        stream="app",
        events_key=dg.AssetKey(["app_events"]),
        kinds=None,
        excluded_kinds=frozenset({"refresh"}),
        size=WINDOW,
        policy=RetryPolicy(first_delay=timedelta(hours=1)),  # nothing is retried yet
        scan_limit=3,
    )
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        failed = [fail_run(instance, start + n * WINDOW) for n in range(8)]
        fail_run(instance, start, kind="refresh")  # never owed
        state, seen_per_tick = OwedState(), []
        for _ in range(5):
            plan = plan_owed_loads(instance, scope, state, datetime.now(UTC))
            seen_per_tick.append(len(plan.state.loads) - len(state.loads))
            state = plan.state
        assert sorted(load.failed.run_id for load in state.loads.values()) == sorted(failed)
        assert seen_per_tick[0] == 3 and sum(seen_per_tick) == 8  # a page per tick, none skipped
        assert all(load.requested_at is None for load in state.loads.values())
        # Another tick reads nothing new, and the runs read stay bounded by the overlap.
        again = plan_owed_loads(instance, scope, state, datetime.now(UTC))
        assert again.state.loads == state.loads and again.notes == []

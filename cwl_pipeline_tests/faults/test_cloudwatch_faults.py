"""FilterLogEvents throttling storms and 5xx against the polling load.

Faults are injected by the fault proxy in front of local AWS (``filter_log_events`` rule on the
``X-Amz-Target: Logs_20140328.FilterLogEvents`` header); everything else reaches moto as is.
The client retries with botocore's adaptive mode and ``aws.max_attempts: 3``.
"""

from __future__ import annotations

import dagster as dg
import pytest

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.faults.fault_proxy import aws_unavailable, filter_log_events, throttling
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    cloudwatch_ids,
    polling_stack,
    put_events,
    run_history,
    table_ids,
)
from cwl_pipeline_tests.pipeline.polling import materialize, window_start
from cwl_pipeline_tests.stack import Stack

FAULTS = {
    "throttling": (throttling, "ThrottlingException"),
    "5xx": (aws_unavailable, "ServiceUnavailableException"),
}
MAX_ATTEMPTS = 3


@pytest.fixture
def stack(aws_faults, local_bigquery, logs_client, write_config, unique_name) -> Stack:
    return polling_stack(
        write_config, logs_client, aws_faults.url, local_bigquery.url, unique_name, max_attempts=MAX_ATTEMPTS
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_storm_shorter_than_the_retry_budget_is_retried_through(
    fault, stack, aws_faults, logs_client, bq_client
):
    """The proxy answers the first two FilterLogEvents calls with the fault (a ThrottlingException
    400 or a ServiceUnavailableException 503); the third attempt reaches moto."""
    start = window_start()
    put_events(logs_client, stack.group, start, 5)
    storm = aws_faults.add(filter_log_events(FAULTS[fault][0](), times=MAX_ATTEMPTS - 1))

    instance = dg.DagsterInstance.ephemeral()
    result = materialize(stack.defs, partition_key(start), instance=instance)

    assert result.success and storm.fired == MAX_ATTEMPTS - 1
    calls = aws_faults.requests(target="Logs_20140328.FilterLogEvents")
    assert [c.status for c in calls] == [storm.action.status] * (MAX_ATTEMPTS - 1) + [200]
    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert len(expected) == 5 and table_ids(bq_client, stack.dataset) == expected
    history = run_history(instance, result.run_id)
    assert history.status == dg.DagsterRunStatus.SUCCESS
    assert history.materialized.count(partition_key(start)) == 2  # events and rejects tables


@pytest.mark.parametrize("fault", FAULTS)
def test_storm_longer_than_the_retry_budget_fails_the_run_and_keeps_the_table(
    fault, stack, aws_faults, logs_client, bq_client
):
    """The proxy answers every FilterLogEvents call with the fault until the rule is removed:
    the run fails naming it, the window keeps its earlier rows, and the re-run after the storm
    loads the window exactly."""
    start = window_start()
    key = partition_key(start)
    put_events(logs_client, stack.group, start, 3)
    materialize(stack.defs, key)
    before = table_ids(bq_client, stack.dataset)
    assert len(before) == 3

    put_events(logs_client, stack.group, start, 4, first_session=10)  # late events
    make_fault, code = FAULTS[fault]
    storm = aws_faults.add(filter_log_events(make_fault(), times=None))
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize(stack.defs, key, raise_on_error=False, instance=instance)

    assert not failed.success
    assert storm.fired == MAX_ATTEMPTS  # botocore's whole budget, then the error
    history = run_history(instance, failed.run_id)
    assert history.status == dg.DagsterRunStatus.FAILURE
    assert history.has("STEP_FAILURE") and history.materialized == []
    assert f"FilterLogEvents on '{stack.group}'" in history.failure and code in history.failure
    assert f"after {MAX_ATTEMPTS} attempts: {code}" in history.failure
    assert table_ids(bq_client, stack.dataset) == before

    aws_faults.clear()  # the storm is over
    assert materialize(stack.defs, key).success
    expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert len(expected) == 7 and table_ids(bq_client, stack.dataset) == expected

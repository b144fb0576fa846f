"""BigQuery errors on the staging load and on the replace transaction.

Faults are injected by the fault proxy in front of the BigQuery emulator: ``bigquery_upload``
matches the media upload of the staging load jobs (``/upload/bigquery/v2/projects/…/jobs``),
``bigquery_replace`` the ``jobs.insert`` whose body holds ``BEGIN TRANSACTION``. The proxy
answers with a Google error body (503 ``backendError``), or forwards the request and drops the
answer (the transaction committed, the client never heard). ``bigquery.retry_timeout: 2s``.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.faults.fault_proxy import (
    DropResponse,
    bigquery_replace,
    bigquery_upload,
    google_error,
)
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    assert_staging_expires,
    cloudwatch_ids,
    polling_stack,
    put_events,
    run_history,
    table_ids,
)
from cwl_pipeline_tests.pipeline.polling import materialize, window_start
from cwl_pipeline_tests.stack import Stack

STEPS = {
    "staging load": (bigquery_upload, "BigQuery load into cwl-local.{dataset}._stage_app_events"),
    "replace": (bigquery_replace, "BigQuery replace transaction failed"),
}


@pytest.fixture
def stack(bq_faults, local_aws, logs_client, write_config, unique_name) -> Stack:
    return polling_stack(
        write_config, logs_client, local_aws.url, bq_faults.url, unique_name, retry_timeout="2s"
    )


def loaded_window(stack: Stack, logs_client, bq_client) -> tuple[datetime, list[str]]:
    """A window loaded with 3 events, then 2 late events put: (window start, ids loaded)."""
    start = window_start()
    put_events(logs_client, stack.group, start, 3)
    materialize(stack.defs, partition_key(start))
    before = table_ids(bq_client, stack.dataset)
    assert len(before) == 3
    put_events(logs_client, stack.group, start, 2, first_session=10)
    return start, before


def expected_ids(stack: Stack, logs_client, start: datetime) -> list[str]:
    ids = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
    assert len(ids) == 5
    return ids


@pytest.mark.parametrize("step", STEPS)
def test_one_error_is_retried_through(step, stack, bq_faults, logs_client, bq_client):
    """The proxy answers the step's first request with a 503 backendError; the client's retry
    gets through and the window is exact."""
    start = window_start()
    put_events(logs_client, stack.group, start, 5)
    fault = bq_faults.add(STEPS[step][0](google_error(503), times=1))

    assert materialize(stack.defs, partition_key(start)).success
    assert fault.fired == 1
    assert table_ids(bq_client, stack.dataset) == expected_ids(stack, logs_client, start)
    assert assert_staging_expires(bq_faults, bq_client, stack.dataset) == 0


@pytest.mark.parametrize("step", STEPS)
def test_errors_beyond_the_retry_timeout_fail_the_run_and_keep_the_table(
    step, stack, bq_faults, logs_client, bq_client
):
    """The proxy answers every request of the step with a 503 backendError: the run fails
    naming the BigQuery step, the window keeps its rows, staging tables are dropped, and the
    re-run loads the window exactly."""
    start, before = loaded_window(stack, logs_client, bq_client)
    make_rule, message = STEPS[step]
    fault = bq_faults.add(make_rule(google_error(503), times=None))
    instance = dg.DagsterInstance.ephemeral()

    failed = materialize(stack.defs, partition_key(start), raise_on_error=False, instance=instance)

    assert not failed.success and fault.fired >= 2
    history = run_history(instance, failed.run_id)
    assert history.status == dg.DagsterRunStatus.FAILURE and history.materialized == []
    assert message.format(dataset=stack.dataset) in history.failure and "Backend error" in history.failure
    assert table_ids(bq_client, stack.dataset) == before
    assert assert_staging_expires(bq_faults, bq_client, stack.dataset) == 0

    bq_faults.clear()
    assert materialize(stack.defs, partition_key(start)).success
    assert table_ids(bq_client, stack.dataset) == expected_ids(stack, logs_client, start)


# A load by hand replaces its window; the sensors' settled loads insert what is missing: both
# must stay exact when the client never hears that its transaction committed.
KINDS = pytest.mark.parametrize("tags", [None, {"cwl/load": "settled"}], ids=["replace", "insert_missing"])


@KINDS
def test_transaction_committed_but_the_answer_lost(stack, bq_faults, logs_client, bq_client, tags):
    """The proxy forwards the replace transaction to the emulator, which commits it, and drops
    the answer; the client's retry must not duplicate rows."""
    start, _ = loaded_window(stack, logs_client, bq_client)
    lost = bq_faults.add(bigquery_replace(DropResponse(), times=1))
    instance = dg.DagsterInstance.ephemeral()

    result = materialize(stack.defs, partition_key(start), raise_on_error=False, instance=instance, tags=tags)

    assert lost.fired == 1
    expected = expected_ids(stack, logs_client, start)
    assert table_ids(bq_client, stack.dataset) == expected
    history = run_history(instance, result.run_id)
    assert history.status == dg.DagsterRunStatus.SUCCESS, history.failure


@KINDS
def test_every_answer_lost_after_commit(stack, bq_faults, logs_client, bq_client, tags):
    """The proxy forwards every replace transaction and drops every answer: the data is
    committed but the run cannot know, so it fails naming the transaction; the table holds the
    new window exactly once, and the re-run after the fault changes nothing."""
    start, _ = loaded_window(stack, logs_client, bq_client)
    lost = bq_faults.add(bigquery_replace(DropResponse(), times=None))
    instance = dg.DagsterInstance.ephemeral()

    failed = materialize(stack.defs, partition_key(start), raise_on_error=False, instance=instance, tags=tags)

    assert lost.fired >= 2
    history = run_history(instance, failed.run_id)
    assert history.status == dg.DagsterRunStatus.FAILURE
    assert "replace transaction" in history.failure
    expected = expected_ids(stack, logs_client, start)
    assert table_ids(bq_client, stack.dataset) == expected

    bq_faults.clear()
    assert materialize(stack.defs, partition_key(start), tags=tags).success
    assert table_ids(bq_client, stack.dataset) == expected
    assert assert_staging_expires(bq_faults, bq_client, stack.dataset) == 0

"""A sweep compares what it read with its window before it stages anything (docs/cost.md).

The count and key digest of the rows and rejects it read against the same of the window in
BigQuery: equal, the sweep is done, with no load job, no join and no transaction; different
(a late event, a row gone), it reads CloudWatch again and inserts what is missing. Against the
local stack.
"""

from __future__ import annotations

from datetime import timedelta

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.pipeline.polling import make_stack, materialize, put, window_start
from cwl_pipeline_tests.pipeline.test_write_modes import ids, metadata


def checks_of(result) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def settled_window(local_aws, local_bigquery, logs_client, write_config, unique_name):
    """A stream, the start of a window with three rows and one reject, and the metadata of the
    window's settled load."""
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name)
    start = window_start()
    put(logs_client, stack.group, [(start + timedelta(minutes=i + 1), {"session_id": i}) for i in range(3)])
    put(logs_client, stack.group, [(start + timedelta(minutes=5), "not json")])
    settled = metadata(materialize(stack.defs, partition_key(start), tags={"cwl/load": "settled"}))
    assert settled["rows_written"] == 4
    return stack, start, settled


def test_a_sweep_that_finds_its_window_complete_stages_nothing(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack, start, settled = settled_window(local_aws, local_bigquery, logs_client, write_config, unique_name)

    result = materialize(stack.defs, partition_key(start), tags={"cwl/load": "sweep-15m"})

    swept = metadata(result)
    assert swept["rows_written"] == 0
    assert swept["replace_transactions"] == 0
    assert swept["bigquery_job_ids"] == "none (nothing to replace)"  # not even a staging load job
    assert swept["filter_log_events_calls"] == settled["filter_log_events_calls"]  # read once
    checks = checks_of(result)
    completeness = checks["completeness"]
    assert completeness.passed
    assert completeness.metadata["counted"].value == "before the load, which then wrote nothing"
    assert completeness.metadata["rows_in_table"].value == 3
    assert completeness.metadata["rows_in_rejects_table"].value == 1


def test_a_sweep_that_finds_a_late_event_reads_again_and_inserts_only_it(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack, start, settled = settled_window(local_aws, local_bigquery, logs_client, write_config, unique_name)
    put(logs_client, stack.group, [(start + timedelta(minutes=7), {"session_id": 3})])  # late

    result = materialize(stack.defs, partition_key(start), tags={"cwl/load": "sweep-15m"})

    swept = metadata(result)
    assert swept["rows_written"] == 1
    assert swept["replace_transactions"] == 1
    assert swept["filter_log_events_calls"] > settled["filter_log_events_calls"]  # read twice
    assert ids(bq_client, stack.dataset, "app_events") == [0, 1, 2, 3]
    completeness = checks_of(result)["completeness"]
    assert completeness.passed
    assert completeness.metadata["rows_in_table"].value == 4
    assert completeness.metadata["rows_in_rejects_table"].value == 1

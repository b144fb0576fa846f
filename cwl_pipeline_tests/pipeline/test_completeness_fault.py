"""The completeness check fails when an event is lost between the read and BigQuery.

A real run reads real events from the local CloudWatch and writes to the local BigQuery. The
loss is injected in-process (a fault neither emulator can produce): the function that stages
the normalized rows for the BigQuery transaction drops one row on the way. The check compares
the count FilterLogEvents yielded with what BigQuery holds, so it must fail, and say by how much.
"""

from __future__ import annotations

from datetime import timedelta

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.pipeline.polling import materialize, put, rows, window_start


def test_completeness_fails_when_a_row_is_dropped_between_read_and_load(
    stack, logs_client, bq_client, monkeypatch
):
    start = window_start()
    put(logs_client, stack.group, [(start + timedelta(minutes=m), {"session_id": m}) for m in (1, 2, 3)])
    real_stage_chunk = BigQueryLoader.stage_chunk

    def drop_one_row(loader, staging, data):
        events = staging.spec.table == "app_events"
        return real_stage_chunk(loader, staging, data.slice(1) if events and data.num_rows else data)

    monkeypatch.setattr(BigQueryLoader, "stage_chunk", drop_one_row)
    result = materialize(stack.defs, partition_key(start), raise_on_error=False)

    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "completeness"]
    assert not check.passed
    assert check.metadata["events_at_source"].value == 3
    assert check.metadata["rows_in_table"].value == 2
    assert "1 events read are not in BigQuery" in check.description
    assert len(rows(bq_client, stack.dataset)) == 2

    # Without the fault the same window loads whole and the check passes.
    monkeypatch.setattr(BigQueryLoader, "stage_chunk", real_stage_chunk)
    again = materialize(stack.defs, partition_key(start))
    [check] = [c for c in again.get_asset_check_evaluations() if c.check_name == "completeness"]
    assert check.passed and check.metadata["rows_in_table"].value == 3

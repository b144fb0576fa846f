"""An event is stored once per stream, whichever S3 scope delivers it again.

Firehose retries can deliver a batch again an hour later, under another key hour, so into
another delivery window; two export tasks of overlapping ranges export the same events into
two folders. Each scope is loaded by a real run against the local AWS and BigQuery, by the
sensors' write mode (insert what is missing) and by hand (replace the scope), in both orders.
"""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance

from cwl_pipeline_tests.s3.s3_stack import (
    assert_blocking_checks_pass,
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    load_metadata,
    materialize,
    ms,
    rejects,
    rows,
    write_s3_config,
)

GROUP = "/test/once"
SENSOR = {"cwl/load": "objects"}


def _once(bq_client, dataset: str) -> list[str]:
    ids = [r["event_id"] for r in rows(bq_client, dataset)] + [
        r["raw_message"] for r in rejects(bq_client, dataset)
    ]
    assert max(Counter(ids).values()) == 1, Counter(ids)
    return sorted(ids)


@pytest.mark.parametrize("first_mode", ["sensor", "by hand"])
def test_a_batch_delivered_again_under_another_key_hour_is_stored_once(
    s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name, first_mode
):
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    t0 = hour + timedelta(minutes=10)
    batch = envelope(
        GROUP,
        "w",
        [("1", ms(t0), {"session_id": 1}), ("2", ms(t0) + 5, {"session_id": 2}), ("3", ms(t0), "text")],
    )
    # The delivery, and Firehose's retry of it an hour later: same records, next key hour.
    delivered, later_hour = firehose_key("fh/", hour), hour + timedelta(hours=1)
    s3.put_object(Bucket=bucket, Key=delivered, Body=gzip_envelopes(batch))
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", later_hour), Body=gzip_envelopes(batch))
    source = f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, log_group: {GROUP}}}"
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, dataset, source))
    first_window, retry_window = last_window_key(hour), last_window_key(later_hour)
    tags = SENSOR if first_mode == "sensor" else None

    first = materialize(defs, first_window, tags=tags)
    assert_blocking_checks_pass(first)
    second = materialize(defs, retry_window, tags=tags)
    assert_blocking_checks_pass(second)
    md = load_metadata(second)
    assert md["events_stored_elsewhere"] == 3 and md["rows_written"] == 0
    assert _once(bq_client, dataset) == ["1", "2", "text"]
    assert {r["source_object"] for r in rows(bq_client, dataset)} == {f"s3://{bucket}/{delivered}"}

    # Re-running either window, in any mode and order, keeps every event once: the copy
    # stored first (from the first delivery) stays.
    for window, run_tags in ((retry_window, None), (first_window, None), (retry_window, SENSOR)):
        result = materialize(defs, window, tags=run_tags)
        assert_blocking_checks_pass(result)
    assert _once(bq_client, dataset) == ["1", "2", "text"]
    assert {r["source_object"] for r in rows(bq_client, dataset)} == {f"s3://{bucket}/{delivered}"}


def test_the_same_range_exported_twice_is_stored_once(
    local_aws, local_bigquery, logs_client, s3, bucket, bq_client, write_config, unique_name
):
    group = f"/test/twice-{unique_name}"
    dataset = f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    # Two real task ids that DescribeExportTasks reports COMPLETED (the group has no stream, so
    # the tasks write nothing themselves); the files of the AWS layout are written under them.
    tasks = [
        logs_client.create_export_task(
            logGroupName=group, fromTime=0, to=1, destination=bucket, destinationPrefix="elsewhere"
        )["taskId"]
        for _ in range(2)
    ]
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)

    def line(minutes: int, message: str) -> str:
        return f"{(t0 + timedelta(minutes=minutes)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z {message}"

    first = [line(1, '{"session_id": 1}'), line(2, '{"session_id": 2}'), line(3, "not json")]
    # The second task's range overlaps the first: its file holds the same events, in another
    # order (AWS does not sort export files), plus one more.
    second = [first[2], line(4, '{"session_id": 4}'), first[0], first[1]]
    for task, lines in zip(tasks, (first, second), strict=True):
        body = gzip.compress("\n".join(lines).encode())
        s3.put_object(Bucket=bucket, Key=f"hist/{task}/web-1/000000.gz", Body=body)
    source = f"{{type: s3, bucket: {bucket}, prefix: hist, layout: export, log_group: {group}}}"
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, dataset, source))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("logs_export_folders", tasks)

    for task in tasks:
        assert_blocking_checks_pass(materialize(defs, task, instance, tags={"cwl/load": "export"}))
    stored = rows(bq_client, dataset)
    assert [r["session_id"] for r in stored] == [1, 2, 4]
    assert len(rejects(bq_client, dataset)) == 1
    assert len({r["event_id"] for r in stored}) == 3

    # Reloading the first folder by hand replaces its own rows, and still stores each event once.
    again = materialize(defs, tasks[0], instance)
    assert_blocking_checks_pass(again)
    assert [r["session_id"] for r in rows(bq_client, dataset)] == [1, 2, 4]
    assert len(rejects(bq_client, dataset)) == 1

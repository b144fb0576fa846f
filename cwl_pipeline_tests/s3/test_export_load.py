"""Export task folders in S3 → sensor → one run per folder → BigQuery, against local AWS."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline_tests.s3.s3_stack import (
    assert_blocking_checks_pass,
    assert_reconciles,
    definitions,
    load_metadata,
    materialize,
    rejects,
    rows,
    write_s3_config,
)

PARTITIONS = "logs_export_folders"


@pytest.fixture
def instance():
    """A temporary instance: sensors resolve dynamic partitions through its stored reference."""
    with dg.instance_for_test() as temp:
        yield temp


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("logs_export_tasks")
    result = sensor.evaluate_tick(
        dg.build_sensor_context(
            instance=instance,
            instance_ref=instance.get_ref(),
            cursor=cursor,
            definitions=defs,
            resources=defs.resources,
        )
    )
    # build_sensor_context does not apply dynamic-partition requests: do what the daemon does.
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def export_source(bucket: str, group: str) -> str:
    return f"{{type: s3, bucket: {bucket}, prefix: hist, layout: export, log_group: {group}}}"


def test_aws_layout_folder_loads_once_its_task_completed(
    local_aws, local_bigquery, logs_client, s3, bucket, bq_client, write_config, unique_name, instance
):
    group = f"/test/hist-{unique_name}"
    dataset = f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    # A real task id that DescribeExportTasks reports COMPLETED (the group has no streams, so
    # the task writes no file); the files of the AWS layout are then written under that id.
    task = logs_client.create_export_task(
        logGroupName=group, fromTime=0, to=1, destination=bucket, destinationPrefix="elsewhere"
    )["taskId"]
    t0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
    stamp = lambda delta: (t0 + delta).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # noqa: E731
    web = "\n".join(
        [  # not in time order, a multi-line message, a line that is not JSON
            f'{stamp(timedelta(minutes=5))} {{"session_id": 2, "action": "b"}}',
            f'{stamp(timedelta(minutes=1))} {{"session_id": 1,',
            ' "action": "a"}',
            f"{stamp(timedelta(minutes=3))} plain text",
        ]
    )
    s3.put_object(Bucket=bucket, Key=f"hist/{task}/web-1/000000.gz", Body=gzip.compress(web.encode()))
    jobs = f'{stamp(timedelta(hours=30))} {{"session_id": 3}}\n'
    s3.put_object(Bucket=bucket, Key=f"hist/{task}/jobs/2/000000.gz", Body=gzip.compress(jobs.encode()))
    broken = f"hist/{task}/jobs/2/000001.gz"
    s3.put_object(Bucket=bucket, Key=broken, Body=gzip.compress(b"x" * 100)[:-10])
    s3.put_object(Bucket=bucket, Key="hist/aws-logs-write-test", Body=b"Permission Check Successful")

    # A long settle lag: only the task API can confirm this folder.
    path = write_s3_config(
        write_config,
        local_aws,
        local_bigquery,
        dataset,
        export_source(bucket, group),
        "    settle_lag: 10m\n",
    )
    defs = definitions(path)
    first = tick(defs, instance, None)
    assert [r.partition_key for r in first.run_requests] == [task]
    assert instance.get_dynamic_partitions(PARTITIONS) == [task]
    assert tick(defs, instance, first.cursor).run_requests == []

    result = materialize(defs, task, instance)
    loaded = rows(bq_client, dataset)
    assert [(r["session_id"], r["action"], r["log_stream"]) for r in loaded] == [
        (1, "a", "web-1"),
        (2, "b", "web-1"),
        (3, None, "jobs/2"),
    ]
    assert loaded[0]["timestamp"] == t0 + timedelta(minutes=1)
    assert {r["log_group"] for r in loaded} == {group}
    bad = rejects(bq_client, dataset)
    assert [(r["reason"], r["source_object"]) for r in bad] == [
        ("invalid_json", f"s3://{bucket}/hist/{task}/web-1/000000.gz"),
        ("unreadable_object", f"s3://{bucket}/{broken}"),
    ]
    md = load_metadata(result)
    assert (md["objects_read"], md["rows_loaded"], md["rows_rejected"]) == (3, 3, 2)
    assert_reconciles(md)
    assert_blocking_checks_pass(result)

    # Re-running the folder replaces exactly its rows.
    materialize(defs, task, instance)
    assert rows(bq_client, dataset) == loaded and len(rejects(bq_client, dataset)) == 2


def test_local_layout_from_the_history_job_loads_once_stable(
    local_aws, local_bigquery, logs_client, bucket, bq_client, write_config, unique_name, tmp_path, instance
):
    group = f"/test/hist-job-{unique_name}"
    dataset = f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    day = floor_to_window(datetime.now(UTC) - timedelta(days=2), timedelta(days=1))
    for stream, session in (("api/1", 1), ("worker", 2)):
        logs_client.create_log_stream(logGroupName=group, logStreamName=stream)
        logs_client.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[
                {
                    "timestamp": to_ms(day + timedelta(hours=session)),
                    "message": json.dumps({"session_id": session}),
                }
            ],
        )
    path = write_s3_config(
        write_config, local_aws, local_bigquery, dataset, export_source(bucket, group), "    settle_lag: 0s\n"
    )
    defs = definitions(path)

    # The backfill job: CreateExportTask for the day; local AWS writes one folder per stream.
    run_config = {
        "ops": {
            "export_logs_history": {
                "config": {
                    "from": day.isoformat(),
                    "to": (day + timedelta(days=1)).isoformat(),
                    "poll_seconds": 0.05,
                }
            }
        }
    }
    job = defs.resolve_job_def("logs_export_history").execute_in_process(
        run_config=run_config, instance=instance
    )
    assert job.success
    observations = [
        e.event_specific_data.asset_observation
        for e in job.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert [o.metadata["export_status"].value for o in observations] == ["COMPLETED"]

    # Folders of this layout are not task ids: loaded once their listing stayed the same.
    first = tick(defs, instance, None)
    assert first.run_requests == [] and "listing not yet seen stable" in first.skip_message
    second = tick(defs, instance, first.cursor)
    folders = sorted(r.partition_key for r in second.run_requests)
    assert len(folders) == 2 and sorted(instance.get_dynamic_partitions(PARTITIONS)) == folders
    assert tick(defs, instance, second.cursor).run_requests == []

    for folder in folders:
        md = load_metadata(materialize(defs, folder, instance))
        assert (md["objects_read"], md["rows_loaded"], md["rows_rejected"]) == (1, 1, 0)
        assert_reconciles(md)
    loaded = rows(bq_client, dataset)
    # Local AWS writes "/" in stream names as "-".
    assert [(r["session_id"], r["log_stream"]) for r in loaded] == [(1, "api-1"), (2, "worker")]
    assert loaded[0]["timestamp"] == day + timedelta(hours=1)

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
        "    settle_lag: 10m\n    raw: true\n",
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

    raw_sql = f"SELECT event_id, message FROM `cwl-local.{dataset}.logs_raw` ORDER BY timestamp"
    raw = [tuple(r.values()) for r in bq_client.query(raw_sql).result()]
    assert [m for _, m in raw] == [  # every event read (the unreadable object is no event)
        '{"session_id": 1,\n "action": "a"}',
        "plain text",
        '{"session_id": 2, "action": "b"}',
        '{"session_id": 3}',
    ]

    # Re-running the folder replaces exactly its rows (raw rows too).
    materialize(defs, task, instance)
    assert rows(bq_client, dataset) == loaded and len(rejects(bq_client, dataset)) == 2
    assert [tuple(r.values()) for r in bq_client.query(raw_sql).result()] == raw


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


def test_history_job_on_a_fresh_instance_exports_nothing_twice(
    local_aws, local_bigquery, logs_client, s3, bucket, write_config, unique_name
):
    group = f"/test/hist-rerun-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web")
    day = floor_to_window(datetime.now(UTC) - timedelta(days=3), timedelta(days=1))
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="web",
        logEvents=[
            {"timestamp": to_ms(day + timedelta(hours=n * 12)), "message": json.dumps({"n": n})}
            for n in range(4)
        ],
    )
    path = write_s3_config(
        write_config, local_aws, local_bigquery, f"ds_{unique_name}", export_source(bucket, group)
    )
    defs = definitions(path)

    def run_job(days: int) -> dict:
        config = {
            "from": day.isoformat(),
            "to": (day + timedelta(days=days)).isoformat(),
            "poll_seconds": 0.05,
        }
        # A new instance each time: like a container per run, nothing survives but AWS.
        with dg.instance_for_test() as fresh:
            result = defs.resolve_job_def("logs_export_history").execute_in_process(
                run_config={"ops": {"export_logs_history": {"config": config}}}, instance=fresh
            )
        assert result.success
        return result.output_for_node("export_logs_history")

    def group_tasks() -> list[dict]:
        tasks = logs_client.describe_export_tasks()["exportTasks"]
        return sorted((t for t in tasks if t["logGroupName"] == group), key=lambda t: t["from"])

    first = run_job(1)
    assert first["chunks_completed"] == 1 and first["tasks_created"] != "none"
    assert len(group_tasks()) == 1
    second = run_job(2)
    assert (second["chunks_skipped_as_done"], second["chunks_completed"]) == (1, 2)
    assert [t["from"] for t in group_tasks()] == [to_ms(day), to_ms(day + timedelta(days=1))]
    again = run_job(2)
    assert (again["chunks_skipped_as_done"], again["tasks_created"]) == (2, "none")
    assert len(group_tasks()) == 2
    folders = {o["Key"].split("/")[1] for o in s3.list_objects_v2(Bucket=bucket, Prefix="hist/")["Contents"]}
    assert len(folders) == 2, "one folder per exported day, none twice"


def test_export_sensor_cursor_does_not_grow_with_loaded_folders(
    local_aws, local_bigquery, logs_client, s3, bucket, write_config, unique_name, instance
):
    group = f"/test/hist-cursor-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    failed = logs_client.create_export_task(  # stays active on local AWS (from > to) until cancelled
        logGroupName=group, fromTime=2, to=1, destination=bucket, destinationPrefix="elsewhere"
    )["taskId"]
    logs_client.cancel_export_task(taskId=failed)
    body = gzip.compress(b'2026-11-20T10:00:00.000Z {"session_id": 1}')
    s3.put_object(Bucket=bucket, Key=f"hist/{failed}/web/000000.gz", Body=body)
    path = write_s3_config(
        write_config,
        local_aws,
        local_bigquery,
        f"ds_{unique_name}",
        export_source(bucket, group),
        "    settle_lag: 0s\n",
    )
    defs = definitions(path)
    cursor, requested = None, []
    for batch in range(3):
        for n in range(4):
            s3.put_object(Bucket=bucket, Key=f"hist/folder-{batch}-{n}/web/000000.gz", Body=body)
        for _ in range(2):  # seen, then seen stable: loaded
            result = tick(defs, instance, cursor)
            cursor = result.cursor
            requested += [r.partition_key for r in result.run_requests]
        state = json.loads(cursor)
        assert "done" not in state and state["pending"] == {}
        assert list(state["skipped"]) == [failed], "only the folder of the cancelled task is remembered"
    assert sorted(requested) == sorted(f"folder-{b}-{n}" for b in range(3) for n in range(4))
    # Loaded folders are known from the dynamic partitions: never requested again.
    assert tick(defs, instance, cursor).run_requests == []
    # A skipped folder deleted from S3 leaves the cursor too.
    s3.delete_object(Bucket=bucket, Key=f"hist/{failed}/web/000000.gz")
    assert json.loads(tick(defs, instance, cursor).cursor)["skipped"] == {}

"""``cwl-pipeline export`` against local AWS: chunks, one active task at a time, resume from
what CloudWatch lists (no local state)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

from cwl_pipeline.cli.main import main
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.exports.plan import plan_chunks

D = timedelta(days=1)


def group_tasks(logs_client, group: str) -> list[dict]:
    tasks = logs_client.describe_export_tasks()["exportTasks"]
    return sorted((t for t in tasks if t["logGroupName"] == group), key=lambda t: t["from"])


def make_group(logs_client, group: str, start: datetime) -> None:
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web")
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName="web",
        logEvents=[
            {"timestamp": to_ms(start + n * D + timedelta(hours=1)), "message": json.dumps({"session_id": n})}
            for n in range(3)
        ],
    )


def argv(group, start, bucket, url, chunk="1d", days=3):
    return [
        "export",
        "--log-group", group,
        "--from", start.isoformat(),
        "--to", (start + days * D).isoformat(),
        "--bucket", bucket,
        "--prefix", "hist",
        "--chunk", chunk,
        "--endpoint-url", url,
        "--region", "us-east-1",
        "--poll-seconds", "0.05",
    ]  # fmt: skip


def test_export_chunks_resume_from_the_tasks_cloudwatch_lists(
    local_aws, logs_client, s3, bucket, tmp_path, unique_name, capsys, monkeypatch
):
    group = f"/test/export-{unique_name}"
    start = floor_to_window(datetime.now(UTC) - 4 * D, D)
    make_group(logs_client, group, start)
    monkeypatch.chdir(tmp_path)  # every run starts on an empty folder: nothing kept on disk

    assert main(argv(group, start, bucket, local_aws.url, days=2)) == 0
    tasks = group_tasks(logs_client, group)
    assert [(t["from"], t["to"]) for t in tasks] == [
        (to_ms(start + n * D), to_ms(start + (n + 1) * D) - 1) for n in range(2)
    ]
    assert {t["status"]["code"] for t in tasks} == {"COMPLETED"}
    assert list(tmp_path.iterdir()) == [], "no local state file"
    captured = capsys.readouterr()
    assert "2/2 chunks" in captured.err and "warning" not in captured.err

    # Run again with a wider range: only the missing day is exported.
    assert main(argv(group, start, bucket, local_aws.url)) == 0
    tasks = group_tasks(logs_client, group)
    assert [t["from"] for t in tasks] == [to_ms(start + n * D) for n in range(3)]
    assert "2 already done before, 1 tasks created" in capsys.readouterr().out
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="hist/")["Contents"]]
    assert len(keys) == 3 and all(k.endswith("/web/000000.gz") for k in keys)

    # And again: everything is done, no task is created.
    assert main(argv(group, start, bucket, local_aws.url)) == 0
    assert len(group_tasks(logs_client, group)) == 3
    assert "3 already done before, 0 tasks created" in capsys.readouterr().out


def test_export_waits_while_another_task_is_active(
    local_aws, logs_client, bucket, tmp_path, unique_name, capsys
):
    group = f"/test/export-wait-{unique_name}"
    start = floor_to_window(datetime.now(UTC) - 4 * D, D)
    make_group(logs_client, group, start)
    # Local AWS keeps a task with from > to active forever: someone else's running export.
    blocker = logs_client.create_export_task(
        logGroupName=group, fromTime=2, to=1, destination=bucket, destinationPrefix="other"
    )["taskId"]
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(main(argv(group, start, bucket, local_aws.url, "3d")))
    )
    try:
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive()
        assert [t["taskId"] for t in group_tasks(logs_client, group)] == [blocker], "no second active task"
        logs_client.cancel_export_task(taskId=blocker)
        worker.join(timeout=30)
    finally:
        if worker.is_alive() or not codes:
            logs_client.cancel_export_task(taskId=blocker)
            worker.join(timeout=30)
    assert codes == [0]
    expected = plan_chunks(start, start + 3 * D, 3 * D)
    assert [t["from"] for t in group_tasks(logs_client, group)] == [2] + [c.from_ms for c in expected]
    assert f"waiting for {blocker}" in capsys.readouterr().err


def test_bad_input_is_one_line_error(capsys, tmp_path):
    code = main(["export", "--from", "2026-11-02", "--to", "2026-11-01", "--log-group", "/g", "--bucket", "b",
                 "--prefix", "p"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("cwl-pipeline export: error: --to") and "Traceback" not in err

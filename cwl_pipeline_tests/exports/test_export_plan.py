"""The export chunk planner, the progress derived from export tasks, the sensor cursor (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cwl_pipeline.exports.folders import ExportCursor, decide_folder, folder_of
from cwl_pipeline.exports.plan import (
    Chunk,
    ExportTaskInfo,
    parse_time,
    plan_chunks,
    recent_data_warning,
    state_from_tasks,
)

D = timedelta(days=1)
T = datetime(2026, 11, 1, tzinfo=UTC)


def test_chunks_are_aligned_and_cover_the_range_exactly():
    chunks = plan_chunks(T + timedelta(hours=6), T + 3 * D, D)
    assert chunks == [
        Chunk(T + timedelta(hours=6), T + D),
        Chunk(T + D, T + 2 * D),
        Chunk(T + 2 * D, T + 3 * D),
    ]
    assert chunks[0].to_ms == int((T + D).timestamp() * 1000) - 1, "CreateExportTask's 'to' is inclusive"
    assert chunks[1].label() == "2026-11-02..2026-11-03"
    with pytest.raises(ValueError):
        plan_chunks(T, T, D)


def test_completed_chunks_are_subtracted_so_nothing_is_exported_twice():
    done = [Chunk(T, T + D), Chunk(T + timedelta(hours=36), T + 2 * D)]
    assert plan_chunks(T, T + 3 * D, D, done) == [
        Chunk(T + D, T + timedelta(hours=36)),
        Chunk(T + 2 * D, T + 3 * D),
    ]
    assert plan_chunks(T, T + D, D, [Chunk(T - D, T + 2 * D)]) == []


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def task(task_id: str, start: datetime, end: datetime, status: str, **other: str) -> ExportTaskInfo:
    fields = {"log_group": "/g", "bucket": "b", "prefix": "p", **other}
    return ExportTaskInfo(
        task_id, fields["log_group"], ms(start), ms(end) - 1, fields["bucket"], fields["prefix"], status
    )


def test_progress_is_derived_from_the_export_tasks_cloudwatch_lists():
    tasks = [
        task("t1", T, T + D, "COMPLETED"),
        task("t2", T + D, T + 2 * D, "RUNNING"),
        task("t3", T + 2 * D, T + 3 * D, "FAILED"),
        # The same range exported twice: one completed task is enough.
        task("t4", T + 3 * D, T + 4 * D, "FAILED"),
        task("t5", T + 3 * D, T + 4 * D, "COMPLETED"),
        # Other groups and destinations, and an inverted range, are not this backfill's.
        task("x1", T + 2 * D, T + 3 * D, "COMPLETED", log_group="/other"),
        task("x2", T + 2 * D, T + 3 * D, "COMPLETED", bucket="c"),
        task("x3", T + 2 * D, T + 3 * D, "COMPLETED", prefix="q"),
        ExportTaskInfo("x4", "/g", 2, 1, "b", "p", "RUNNING"),
    ]
    state = state_from_tasks("/g", "b", "p/", tasks)  # a trailing "/" names the same folders
    assert state.completed() == [Chunk(T, T + D), Chunk(T + 3 * D, T + 4 * D)]
    assert [r.task_id for r in state.in_flight()] == ["t2"]
    assert state.completed_within(T, T + 4 * D) == 2
    # Only the failed chunk is planned again (the running one is awaited, then counted).
    assert plan_chunks(T, T + 4 * D, D, [*state.completed(), Chunk(T + D, T + 2 * D)]) == [
        Chunk(T + 2 * D, T + 3 * D)
    ]
    # A later status keeps the task id.
    assert state.record(Chunk(T + D, T + 2 * D), "COMPLETED").task_id == "t2"


def test_recent_ranges_warn_and_times_parse():
    now = T + 10 * D
    assert recent_data_warning(now - timedelta(hours=13), now) is None
    assert "12 hours" in recent_data_warning(now - timedelta(hours=2), now)
    assert parse_time("2026-11-01") == T
    assert parse_time("2026-11-01T02:00:00+02:00") == T
    assert parse_time("now", now + timedelta(microseconds=5)) == now
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_export_folders_and_their_completion():
    assert folder_of("exp/t1/web/000000.gz", "exp") == "t1"
    assert folder_of("exp/t1/a/b/000001.gz", "exp/") == "t1"
    assert folder_of("exp/aws-logs-write-test", "exp") is None
    assert folder_of("other/t1/web/000000.gz", "exp") is None
    now = T
    wait = decide_folder(task_status=None, signature="s", pending=None, now=now, stable_after=D)
    assert wait.action == "wait"
    assert decide_folder(
        task_status=None, signature="s", pending=("s", now - D), now=now, stable_after=D
    ).action == ("load")
    assert decide_folder(
        task_status=None, signature="s2", pending=("s", now - D), now=now, stable_after=D
    ).action == ("wait")
    assert (
        decide_folder(task_status="COMPLETED", signature="s", pending=None, now=now, stable_after=D).action
        == "load"
    )
    assert (
        decide_folder(task_status="RUNNING", signature="s", pending=None, now=now, stable_after=D).action
        == "wait"
    )
    assert (
        decide_folder(task_status="FAILED", signature="s", pending=None, now=now, stable_after=D).action
        == "skip"
    )
    cursor = ExportCursor(skipped={"a": "export task FAILED"}, pending={"b": ("s", now)})
    assert ExportCursor.from_json(cursor.to_json()) == cursor


def test_export_cursor_keeps_only_folders_still_listed():
    now = T
    cursor = ExportCursor(
        skipped={"a": "failed", "gone": "failed"}, pending={"b": ("s", now), "c": ("s", now)}
    )
    assert cursor.for_folders(["a", "b", "loaded"]) == ExportCursor(
        skipped={"a": "failed"}, pending={"b": ("s", now)}
    )
    # A cursor of the earlier form drops its map of loaded folders, keeps the skipped ones.
    old = {"done": {"x": "sig", "y": "skipped: export task FAILED: its files may be partial"}, "pending": {}}
    assert ExportCursor.from_json(old) == ExportCursor(
        skipped={"y": "export task FAILED: its files may be partial"}
    )

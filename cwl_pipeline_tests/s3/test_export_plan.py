"""The export chunk planner and its resumable state (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cwl_pipeline.core.export_folders import ExportCursor, decide_folder, folder_of
from cwl_pipeline.core.export_plan import (
    Chunk,
    ExportState,
    parse_time,
    plan_chunks,
    recent_data_warning,
    state_file_name,
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


def test_state_round_trips_and_knows_what_to_resume():
    state = ExportState("/g", "b", "p")
    state.record(Chunk(T, T + D), "COMPLETED", "t1")
    state.record(Chunk(T + D, T + 2 * D), "RUNNING", "t2")
    state.record(Chunk(T + 2 * D, T + 3 * D), "FAILED", "t3", "denied")
    restored = ExportState.from_json(state.to_json())
    assert restored.completed() == [Chunk(T, T + D)]
    assert [r.task_id for r in restored.in_flight()] == ["t2"]
    assert restored.completed_within(T, T + 3 * D) == 1
    # A later status keeps the task id.
    assert restored.record(Chunk(T + D, T + 2 * D), "COMPLETED").task_id == "t2"
    with pytest.raises(ValueError, match="another state file"):
        restored.check_destination("/other", "b", "p")
    assert state_file_name("/g", "b", "p") != state_file_name("/g", "b", "q")


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
    cursor = ExportCursor(done={"a": "s"}, pending={"b": ("s", now)})
    assert ExportCursor.from_json(cursor.to_json()) == cursor

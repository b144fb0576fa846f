"""What a sensor still owes after failed runs, and when it asks again: pure planning."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cwl_pipeline.orchestration.owed_plan import (
    SCAN_OVERLAP,
    FailedRun,
    OwedState,
    RetryPolicy,
    describe_owed,
    partitions_of,
    plan_owed,
    retry_run_key,
    work_of,
)

M = timedelta(minutes=1)
W = 15 * M
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)
POLICY = RetryPolicy()  # 5 attempts; waits 1, 4, 16, 60 minutes


def failed(attempt=1, ended=T0, work="app:settled:2026-11-20-08:00..2026-11-20-08:30", run_id=None, **kw):
    return FailedRun(
        run_id=run_id or f"run-{attempt}-{ended:%H%M%S}",
        work=work,
        kind=kw.get("kind", "settled"),
        first=kw.get("first", "2026-11-20-08:00"),
        last=kw.get("last", "2026-11-20-08:30"),
        attempt=attempt,
        status=kw.get("status", "FAILURE"),
        started_at=ended - M,
        ended_at=ended,
    )


def plan(state=None, failures=(), now=T0, loaded=None, busy=frozenset(), size=W, policy=POLICY, **limits):
    return plan_owed(
        state=state or OwedState(),
        failures=list(failures),
        loaded=loaded or {},
        busy=busy,
        now=now,
        policy=policy,
        size=size,
        **limits,
    )


def test_backoff_grows_and_is_capped():
    assert [POLICY.delay_after(n) for n in range(1, 6)] == [M, 4 * M, 16 * M, 60 * M, 60 * M]


def test_run_keys_carry_the_attempt_and_the_work_stays_the_same():
    work = "app:settled:2026-11-20-08:00"
    assert retry_run_key(work, 1) == work
    assert retry_run_key(work, 3) == f"{work}:attempt-3"
    assert work_of(retry_run_key(work, 3)) == work_of(work) == work
    # A Firehose key ends with an object digest, not an attempt: it is kept.
    assert work_of("logs:objects:2026-11-20-08:00..2026-11-20-08:00:ab12") == (
        "logs:objects:2026-11-20-08:00..2026-11-20-08:00:ab12"
    )


def test_partitions_of_a_range_and_of_a_folder():
    assert partitions_of("2026-11-20-08:00", "2026-11-20-08:30", W) == [
        "2026-11-20-08:00",
        "2026-11-20-08:15",
        "2026-11-20-08:30",
    ]
    assert partitions_of("abc-123", "abc-123", None) == ["abc-123"]


def test_a_failure_waits_for_its_backoff_then_is_asked_for_once_as_attempt_2():
    first = plan(failures=[failed()])
    assert first.retries == [] and list(first.state.loads) == [failed().work]
    assert [n.level for n in first.notes] == ["warning"] and "attempt 2 due at" in first.notes[0].text

    early = plan(first.state, now=T0 + 30 * timedelta(seconds=1))
    assert early.retries == []

    due = plan(first.state, now=T0 + M)
    [retry] = due.retries
    assert (retry.attempt, retry.run_key) == (2, f"{failed().work}:attempt-2")
    assert (
        "re-requesting settled windows 2026-11-20-08:00..2026-11-20-08:30 (attempt 2/5)" in due.notes[0].text
    )
    assert "after run run-1-100000 ended FAILURE" in due.notes[0].text

    # Requested once: the next ticks wait for that run's outcome.
    assert plan(due.state, now=T0 + 2 * M).retries == []
    assert "attempt 2/5 requested" in describe_owed(due.state, POLICY, W, T0 + 2 * M)


def test_attempts_are_bounded_and_the_last_failure_is_given_up_and_kept():
    state, now = OwedState(), T0
    attempts = []
    for attempt in range(1, 6):
        result = plan(state, failures=[failed(attempt, ended=now)], now=now)
        now += POLICY.delay_after(attempt)
        result = plan(result.state, now=now)
        attempts += [r.attempt for r in result.retries]
        state = result.state
    assert attempts == [2, 3, 4, 5]
    errors = [n.text for n in plan(OwedState(), failures=[failed(5)]).notes if n.level == "error"]
    assert errors and "giving up on settled windows" in errors[0] and "attempt 5/5" in errors[0]
    # Given up: listed at every tick, never asked for again.
    for later in (now, now + timedelta(days=1)):
        again = plan(state, now=later)
        assert again.retries == [] and list(again.state.loads) == [failed().work]
    assert "GIVEN UP after 5/5" in describe_owed(state, POLICY, W, now)


def test_a_later_successful_load_of_every_window_clears_the_debt():
    state = plan(failures=[failed()]).state
    windows = partitions_of("2026-11-20-08:00", "2026-11-20-08:30", W)
    # Two windows loaded since, one loaded only before the failure: still owed.
    partly = {windows[0]: T0, windows[1]: T0, windows[2]: T0 - timedelta(hours=1)}
    assert list(plan(state, loaded=partly, now=T0 + M).state.loads) == [failed().work]
    done = plan(state, loaded=dict.fromkeys(windows, T0), now=T0 + M)
    assert done.retries == [] and done.state.loads == {}
    assert "no longer owed" in done.notes[0].text
    assert done.changed_from(state)


def test_a_failure_already_covered_when_seen_is_not_owed():
    windows = partitions_of("2026-11-20-08:00", "2026-11-20-08:30", W)
    result = plan(failures=[failed()], loaded=dict.fromkeys(windows, T0))
    assert result.state.loads == {} and result.retries == [] and "nothing owed" in result.notes[0].text


def test_a_retry_waits_while_a_run_loads_its_windows():
    state = plan(failures=[failed()]).state
    assert plan(state, now=T0 + M, busy={"2026-11-20-08:15"}).retries == []
    assert len(plan(state, now=T0 + M, busy={"2026-11-20-09:00"}).retries) == 1


def test_an_older_attempt_seen_again_changes_nothing():
    state = plan(failures=[failed(3)]).state
    again = plan(state, failures=[failed(2, ended=T0 - M)], now=T0 + M / 2)
    assert again.state == state and again.notes == []


def test_export_folders_and_cancelled_runs():
    folder = failed(work="logs:export:abc:sig", kind="export", first="abc", last="abc", status="CANCELED")
    result = plan(failures=[folder], size=None)
    assert "run run-1-100000 of export folder abc ended CANCELED" in result.notes[0].text
    due = plan(result.state, now=T0 + M, size=None)
    assert [r.run_key for r in due.retries] == ["logs:export:abc:sig:attempt-2"]
    assert plan(due.state, loaded={"abc": T0}, now=T0 + 2 * M, size=None).state.loads == {}


def test_the_owed_list_is_bounded_given_up_loads_go_first():
    gave_up = failed(5, ended=T0 + M, work="w-given-up")
    olds = [failed(1, ended=T0 + n * M, work=f"w-{n}") for n in range(2, 5)]
    result = plan(failures=[gave_up, *olds], now=T0, max_owed=3)
    assert sorted(result.state.loads) == ["w-2", "w-3", "w-4"]
    dropped = [n.text for n in result.notes if n.level == "error" and "owed list full" in n.text]
    assert len(dropped) == 1 and "no longer tracked" in dropped[0]


def test_retries_per_tick_are_bounded():
    state = plan(failures=[failed(1, work=f"w-{n}", run_id=f"r{n}") for n in range(5)]).state
    first = plan(state, now=T0 + M, max_retries=2)
    second = plan(first.state, now=T0 + M, max_retries=2)
    assert len(first.retries) == len(second.retries) == 2
    assert {r.load.failed.work for r in first.retries}.isdisjoint(r.load.failed.work for r in second.retries)


def test_scan_window_and_seen_runs_stay_bounded():
    state = OwedState()
    assert state.scan_since(T0) == T0 - timedelta(days=1)
    state = state.after_scan({"a": T0 - timedelta(hours=1), "b": T0 - M}, T0)
    assert state.scan_since(T0 + M) == T0 - SCAN_OVERLAP
    assert set(state.seen) == {"b"}  # older than the overlap: never listed again


@pytest.mark.parametrize("given_up", [False, True])
def test_state_round_trips_through_json(given_up):
    result = plan(failures=[failed(5 if given_up else 1)])
    state = result.state.after_scan({"x": T0}, T0)
    state = plan(state, now=T0 + M).state
    assert OwedState.from_json(json.loads(json.dumps(state.to_json()))) == state

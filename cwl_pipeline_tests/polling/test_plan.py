"""The near-real-time request plan, as a pure function of time and state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from cwl_pipeline.core.windows import floor_to_window
from cwl_pipeline.polling.plan import PlanState, load_passes, plan_windows
from cwl_pipeline.polling.read import replace_steps

M = timedelta(minutes=1)
START = datetime(2026, 11, 1, tzinfo=UTC)


def plan(now, state=None, arriving=False, max_windows=96, lookback=timedelta(hours=1), sweeps=()):
    return plan_windows(
        stream="s",
        now=now,
        state=state or PlanState(),
        size=15 * M,
        passes=load_passes(2 * M, sweeps),
        refresh_interval=M,
        partitions_start=START,
        max_windows=max_windows,
        initial_lookback=lookback,
        events_arriving=arriving,
    )


def test_floor_to_window():
    assert floor_to_window(datetime(2026, 11, 1, 10, 29, 59, tzinfo=UTC), 15 * M) == datetime(
        2026, 11, 1, 10, 15, tzinfo=UTC
    )


def test_first_tick_catches_up_the_lookback_as_one_range():
    now = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    requests, state = plan(now)
    assert [(r.first_key, r.last_key, r.kind) for r in requests] == [
        ("2026-11-02-09:00", "2026-11-02-09:45", "settled")
    ]
    assert state.done_until == {"settled": datetime(2026, 11, 2, 10, 0, tzinfo=UTC)}


def test_a_window_is_requested_only_after_the_settle_lag_and_only_once():
    state = PlanState(done_until={"settled": datetime(2026, 11, 2, 10, 0, tzinfo=UTC)})
    requests, state2 = plan(datetime(2026, 11, 2, 10, 16, 59, tzinfo=UTC), state)
    assert requests == [] and state2 == state
    requests, state3 = plan(datetime(2026, 11, 2, 10, 17, tzinfo=UTC), state)
    assert [(r.first_key, r.last_key) for r in requests] == [("2026-11-02-10:00", "2026-11-02-10:00")]
    assert requests[0].run_key == "s:settled:2026-11-02-10:00"
    again, _ = plan(datetime(2026, 11, 2, 10, 20, tzinfo=UTC), state3)
    assert again == []


def test_downtime_is_caught_up_in_bounded_ranges_without_gaps():
    state = PlanState(done_until={"settled": datetime(2026, 11, 2, 0, 0, tzinfo=UTC)})
    now = datetime(2026, 11, 3, 0, 3, tzinfo=UTC)  # a day later: 96 windows closed
    covered = []
    for _ in range(10):
        requests, state = plan(now, state, max_windows=40)
        covered += [(r.first_start, r.last_start) for r in requests if r.kind == "settled"]
    assert len(covered) == 3  # 40 + 40 + 16 windows
    assert covered[0][0] == datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
    for (_, last), (first, _) in itertools.pairwise(covered):
        assert first == last + 15 * M  # contiguous: no gap, no overlap
    assert covered[-1][1] == datetime(2026, 11, 2, 23, 45, tzinfo=UTC)


def test_open_window_refreshes_while_events_arrive_with_fresh_run_keys():
    state = PlanState(done_until={"settled": datetime(2026, 11, 2, 10, 0, tzinfo=UTC)})
    t = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    requests, state = plan(t, state, arriving=True)
    assert [(r.kind, r.first_key) for r in requests] == [("refresh", "2026-11-02-10:00")]
    first_key = requests[0].run_key
    # Not again before the refresh interval, nor without new events.
    assert plan(t + 30 * timedelta(seconds=1), state, arriving=True)[0] == []
    assert plan(t + 2 * M, state, arriving=False)[0] == []
    requests, _ = plan(t + 2 * M, state, arriving=True)
    assert requests[0].run_key != first_key


def test_nothing_before_partitions_start():
    requests, _ = plan(START + 5 * M, lookback=timedelta(days=3), arriving=True)
    assert [(r.kind, r.first_start) for r in requests] == [("refresh", START)]


def test_sweeps_reload_each_window_once_after_each_horizon():
    sweeps = (15 * M, 6 * 60 * M)
    assert [p.name for p in load_passes(2 * M, sweeps)] == ["settled", "sweep-15m", "sweep-6h"]
    w = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    state = PlanState(done_until={"settled": w, "sweep-15m": w, "sweep-6h": w})
    kinds = []
    t = w + 15 * M
    while t <= w + 6 * 60 * M + 15 * M:
        requests, state = plan(t, state, sweeps=sweeps)
        kinds += [(r.kind, r.first_key) for r in requests if r.first_key == "2026-11-02-10:00"]
        t += M
    assert kinds == [
        ("settled", "2026-11-02-10:00"),  # at 10:17
        ("sweep-15m", "2026-11-02-10:00"),  # at 10:30
        ("sweep-6h", "2026-11-02-10:00"),  # at 16:15
    ]


def test_cursor_round_trips():
    state = PlanState(
        done_until={"settled": datetime(2026, 11, 2, 10, 0, tzinfo=UTC)},
        refreshed_window=datetime(2026, 11, 2, 10, 15, tzinfo=UTC),
        refreshed_at=datetime(2026, 11, 2, 10, 20, 5, tzinfo=UTC),
        refresh_count=7,
    )
    assert PlanState.from_json(state.to_json()) == state


def test_a_new_sensor_sweeps_the_catch_up_windows_still_inside_a_horizon():
    now = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    sweeps = (15 * M, 6 * 60 * M)
    requests, state = plan(now, sweeps=sweeps)
    assert [(r.kind, r.first_key, r.last_key) for r in requests] == [
        ("settled", "2026-11-02-09:00", "2026-11-02-09:45")
    ]
    # 09:45-10:00 closed five minutes before the start: its 15-minute sweep is still to come.
    # Windows whose 15 minutes had passed were read after them by the catch-up; the 6-hour
    # sweep covers the whole lookback.
    assert state.done_until == {
        "settled": datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
        "sweep-15m": datetime(2026, 11, 2, 9, 45, tzinfo=UTC),
        "sweep-6h": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    }
    swept: dict[str, list[str]] = {}
    t = now
    while t <= now + 7 * 60 * M:
        requests, state = plan(t, state, sweeps=sweeps)
        for r in requests:
            if r.kind != "settled":
                swept.setdefault(r.kind, []).append(r.first_key)
        t += M
    assert swept["sweep-15m"][0] == "2026-11-02-09:45"
    assert swept["sweep-6h"][:4] == [
        "2026-11-02-09:00",
        "2026-11-02-09:15",
        "2026-11-02-09:30",
        "2026-11-02-09:45",
    ]


def test_a_cursor_reset_sweeps_like_a_new_sensor():
    now = datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    fresh = plan(now, sweeps=(15 * M,))
    reset = plan(now, PlanState.from_json({}), sweeps=(15 * M,))
    assert fresh == reset


def test_replace_steps_cut_a_range_into_bounded_consecutive_steps():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    window = timedelta(minutes=15)
    steps = list(replace_steps(start, start + 7 * window, window, 3))
    assert steps == [
        (start, start + 3 * window),
        (start + 3 * window, start + 6 * window),
        (start + 6 * window, start + 7 * window),
    ]
    assert list(replace_steps(start, start + window, window, 96)) == [(start, start + window)]

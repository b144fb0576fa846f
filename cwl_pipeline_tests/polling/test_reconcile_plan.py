"""The reconciliation core: verdicts per ingestion hour, heal ranges, heal plans, explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cwl_pipeline.polling.reconcile_plan import (
    HOUR,
    Explanation,
    HealRecord,
    Horizon,
    HourState,
    classify,
    explain,
    heal_ranges,
    hours_table,
    hours_to_compare,
    plan_heals,
    records_from_json,
    records_to_json,
    text_plot,
    totals,
)

WINDOW = timedelta(minutes=15)
HORIZON = Horizon(window=WINDOW, settle_lag=timedelta(minutes=2), final_sweep=timedelta(hours=6))
H = datetime(2026, 11, 20, 10, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
DUE = H + HOUR + timedelta(hours=2) + 2 * WINDOW + timedelta(hours=6)


def no_probe(hour: datetime) -> Explanation:
    raise AssertionError(f"the source must not be asked about {hour}")


def test_due_covers_the_latest_window_an_event_ingested_in_the_hour_can_land_in():
    # Ingested at 10:59:59 and stamped 2 h ahead: window 12:45-13:00, final sweep at 19:00.
    latest_window_end = H + HOUR + timedelta(hours=2)
    assert HORIZON.due_at(H) >= latest_window_end + HORIZON.final_sweep
    assert HORIZON.due_at(H) == DUE


@pytest.mark.parametrize(
    ("counted", "stored", "now", "state"),
    [
        (10, 10, DUE, HourState.AGREES),
        (10, 12, DUE, HourState.SURPLUS),
        (10, 9, DUE - timedelta(seconds=1), HourState.WITHIN_HORIZON),
        (10, 9, DUE, HourState.SHORT),
    ],
)
def test_classify(counted, stored, now, state):
    verdict = classify(H, counted, stored, now, HORIZON)
    assert verdict.state is state
    assert verdict.difference == stored - counted


def test_a_short_hour_is_explained_only_when_the_probe_accounts_for_all_of_it():
    record = HealRecord(attempts=2, probed=True, explained=1, reason="1 before start")
    assert classify(H, 10, 9, DUE, HORIZON, record).state is HourState.EXPLAINED
    assert classify(H, 10, 8, DUE, HORIZON, record).state is HourState.SHORT
    unprobed = HealRecord(attempts=1, explained=5)
    assert classify(H, 10, 9, DUE, HORIZON, unprobed).state is HourState.SHORT


def test_hours_to_compare_are_settled_within_the_lookback_and_not_before_start():
    now = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)
    hours = hours_to_compare(now, timedelta(hours=4), HORIZON, START)
    # 11:00 ends 12:00; its settled loads run by 12:17: not yet.
    assert hours == [datetime(2026, 11, 20, h, tzinfo=UTC) for h in (8, 9, 10)]
    assert hours_to_compare(now, timedelta(hours=4), HORIZON, datetime(2026, 11, 20, 9, 30, tzinfo=UTC)) == [
        datetime(2026, 11, 20, 9, tzinfo=UTC),
        datetime(2026, 11, 20, 10, tzinfo=UTC),
    ]


def test_heal_ranges_newest_day_first_bounded_by_14_days_and_start():
    end = H + HOUR - timedelta(hours=6)  # 05:00: windows ending by then were past their final sweep
    assert heal_ranges(H, horizon=HORIZON, start=START) == [
        (end - timedelta(days=1), end),
        (H - timedelta(days=14), end - timedelta(days=1)),
    ]
    recent_start = end - timedelta(hours=3)
    assert heal_ranges(H, horizon=HORIZON, start=recent_start) == [(recent_start, end)]
    assert heal_ranges(H, horizon=HORIZON, start=end) == []


def test_heal_ranges_stay_inside_the_retention():
    oldest = H - timedelta(days=3, minutes=7)
    ranges = heal_ranges(H, horizon=HORIZON, start=START, oldest_readable=oldest)
    assert ranges[-1][0] == H - timedelta(days=3)  # the next window start after the oldest readable
    assert all(b < e for b, e in ranges)


def test_plan_heals_newest_day_then_older_days_then_the_probe():
    counts = {H: (101, 100)}
    common = dict(counts=counts, now=DUE, horizon=HORIZON, start=START, max_attempts=3, oldest_readable=None)
    first = plan_heals(records={}, probe=no_probe, **common)
    [request] = first.requests
    ranges = heal_ranges(H, horizon=HORIZON, start=START)
    assert (request.attempt, request.start, request.end) == (1, *ranges[0])
    assert first.records[H].attempts == 1 and first.records[H].shortfall == 1
    assert any("heal 1/3 reads windows" in n.text for n in first.notes)

    second = plan_heals(records=first.records, probe=no_probe, **common)
    [request] = second.requests
    assert (request.attempt, request.start, request.end) == (2, *ranges[1])

    asked: list[datetime] = []

    def probe(hour: datetime) -> Explanation:
        asked.append(hour)
        return Explanation(before_start=0)

    third = plan_heals(records=second.records, probe=probe, **common)
    assert asked == [H]  # both ranges were read: the source is asked why, once
    [request] = third.requests  # not explained: the whole range once more, the last attempt
    assert (request.attempt, request.start, request.end) == (3, ranges[1][0], ranges[0][1])
    assert third.records[H].probed and "unexplained" in third.records[H].reason

    fourth = plan_heals(records=third.records, probe=no_probe, **common)
    assert fourth.requests == []
    assert fourth.verdicts[0].state is HourState.SHORT
    [error] = [n for n in fourth.notes if n.level == "error"]
    assert "unexplained after 3 heal(s)" in error.text


def test_plan_heals_reports_an_hour_healed_and_forgets_it():
    records = {H: HealRecord(attempts=1, shortfall=1)}
    plan = plan_heals(
        counts={H: (101, 101)},
        records=records,
        now=DUE,
        horizon=HORIZON,
        start=START,
        max_attempts=3,
        oldest_readable=None,
        probe=no_probe,
    )
    assert plan.requests == [] and plan.records == {}
    assert [n.text for n in plan.notes] == ["2026-11-20 10:00: agrees with CloudWatch after 1 heal(s)"]


def test_plan_heals_explains_events_stamped_before_the_start():
    start = H - timedelta(hours=2)
    plan = plan_heals(
        counts={H: (5, 3)},
        records={H: HealRecord(attempts=1, shortfall=2)},
        now=DUE,
        horizon=HORIZON,
        start=start,
        max_attempts=1,
        oldest_readable=None,
        probe=lambda hour: Explanation(before_start=2),
    )
    assert plan.requests == []
    [verdict] = plan.verdicts
    assert verdict.state is HourState.EXPLAINED
    assert "2 event(s) ingested then carry event times before the stream's start" in verdict.note
    assert plan.records[H].probed  # kept: the check reads it


def test_plan_heals_does_not_heal_within_the_horizon_nor_a_surplus():
    plan = plan_heals(
        counts={H: (10, 9), H + HOUR: (3, 4)},
        records={},
        now=DUE - timedelta(minutes=1),
        horizon=HORIZON,
        start=START,
        max_attempts=3,
        oldest_readable=None,
        probe=no_probe,
    )
    assert plan.requests == []
    assert [v.state for v in plan.verdicts] == [HourState.WITHIN_HORIZON, HourState.SURPLUS]
    sums = totals(plan.verdicts)
    assert (sums.cloudwatch, sums.stored, sums.shortfall_within_horizon, sums.surplus) == (13, 13, 1, 1)
    assert sums.difference == 0


def test_explain_names_retention_when_start_does_not_account_for_everything():
    accounted, reason = explain(3, Explanation(before_start=1, expired_groups=("/a",)), START)
    assert accounted == 3
    assert "1 event(s) ingested then carry event times before" in reason
    assert "2 event(s) are no longer at the source" in reason and "/a" in reason
    accounted, reason = explain(3, Explanation(before_start=1), START)
    assert accounted == 1 and "2 event(s) are unexplained" in reason


def test_records_round_trip_and_the_table_and_plot_show_every_hour():
    records = {H: HealRecord(attempts=2, shortfall=1, probed=True, explained=1, reason="r")}
    assert records_from_json(records_to_json(records)) == records
    verdicts = [classify(H, 4, 3, DUE, HORIZON), classify(H + HOUR, 2, 2, DUE, HORIZON)]
    table = hours_table(verdicts)
    assert "| 2026-11-20 10:00 | 4 | 3 | -1 | short past the final sweep |" in table
    plot = text_plot(verdicts)
    assert "11-20 10:00 ##############################.......... 3/4 -1" in plot

"""Rollups update as hours complete: after each hour's last settled load, unless a blocking check failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from cwl_pipeline.config import PipelineConfig, parse_config
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline.orchestration.rollups import ROLLUPS, daily_cron, hourly_cron

EVENTS = dg.AssetKey("app_events")
HOURLY = dg.AssetKey("app_events_hourly_actions")


def app_config() -> PipelineConfig:
    """One polling stream with the default settings."""
    return parse_config(
        {
            "bigquery": {"project": "cwl-local", "dataset": "x"},
            "streams": [
                {
                    "name": "app",
                    "table": "app_events",
                    "source": {"log_groups": ["/a"]},
                    "start": "2026-11-01T00:00:00Z",
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions(app_config())


def evaluate(defs, instance, at, cursor=None):
    return dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(HOURLY),
        evaluation_time=at,
        cursor=cursor,
    )


def load_windows(instance: dg.DagsterInstance, completeness_passed: bool) -> None:
    """Record what a load run of 10:00-10:45 leaves behind: materializations and check results."""
    for minute in (0, 15, 30):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(EVENTS, partition=f"2026-11-26-10:{minute:02d}")
        )
    for name in ("completeness", "no_duplicate_event_ids", "schema_matches"):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=EVENTS,
                check_name=name,
                passed=completeness_passed or name != "completeness",
                metadata={},
            )
        )


@pytest.mark.parametrize("checks_pass", [True, False])
def test_recent_hourly_rollups_refresh_after_each_settled_hour_unless_a_check_failed(defs, checks_pass):
    instance = dg.DagsterInstance.ephemeral()
    t0 = datetime(2026, 11, 26, 10, 50, tzinfo=UTC)
    result = evaluate(defs, instance, t0)
    load_windows(instance, completeness_passed=checks_pass)
    result = evaluate(defs, instance, t0 + timedelta(minutes=1), result.cursor)
    assert result.total_requested == 0  # not on every load: once per window
    # Window 10:45-11:00 settles at 11:02 (2 m settle lag); the rollups follow at 11:03.
    result = evaluate(defs, instance, t0 + timedelta(minutes=12), result.cursor)
    assert result.total_requested == 0
    result = evaluate(defs, instance, t0 + timedelta(minutes=13), result.cursor)
    requested = next(r.true_subset for r in result.results if r.key == HOURLY)
    if checks_pass:
        keys = sorted(ap.partition_key for ap in requested.expensively_compute_asset_partitions())
        # The hours the 6-hour sweep still changes (04:45 is swept at 11:00), up to the current hour.
        assert keys[0] == "2026-11-26-04:00" and keys[-1] == "2026-11-26-11:00"
        assert "2026-11-26-10:00" in keys
        result = evaluate(defs, instance, t0 + timedelta(minutes=14), result.cursor)
        assert result.total_requested == 0  # handled: not again before the next window
        # Window 11:00-11:15 settles at 11:17: the hour is not complete, no refresh at 11:18.
        result = evaluate(defs, instance, t0 + timedelta(minutes=28), result.cursor)
        assert result.total_requested == 0
    else:
        assert requested.size == 0  # a failed blocking check holds the rollup back


def test_the_daily_rollup_waits_for_the_final_sweep_of_the_day_before():
    stream = app_config().streams[0]
    # Defaults: 2 m settle lag, sweeps at 15 m and 6 h: the last window of a day is swept at 06:00.
    assert hourly_cron(stream) == "3 * * * *"
    assert daily_cron(stream) == "3 6 * * *"
    daily = next(r for r in ROLLUPS if r.suffix == "daily_sessions")
    # The stream's default fail window (15 m window + 2 m settle + 15 m) plus 23 h 45 m and 6 h.
    assert daily.freshness(stream).fail_window.to_timedelta() == timedelta(days=1, hours=6, minutes=17)

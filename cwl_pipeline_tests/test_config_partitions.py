"""Replacement sizes against BigQuery's limit of 4,000 partitions modified per job.

One replacement of N windows scoped on event time touches at most ceil(N * window / 1 day) + 1
DAY partitions (+1 when the span does not start at midnight). A Firehose run replaces its whole
range at once, scoped on objects whose events may be 14 days older than their arrival.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cwl_pipeline.config import (
    MAX_PARTITIONS_PER_JOB,
    ConfigError,
    parse_config,
    partitions_per_replace,
)

POLLING = {"log_groups": ["/app/web"]}
FIREHOSE = {"type": "s3", "bucket": "b-1", "layout": "firehose"}
EXPORT = {"type": "s3", "bucket": "b-1", "layout": "export", "log_group": "/g"}


def stream_config(source: dict, **keys) -> dict:
    stream = {"name": "app", "source": source, "start": "2026-01-01T00:00:00Z", **keys}
    return {"bigquery": {"project": "my-project", "dataset": "logs"}, "streams": [stream]}


def test_partition_bound_counts_a_span_that_starts_mid_day():
    assert partitions_per_replace(96, timedelta(minutes=15)) == 2  # one day, maybe across midnight
    assert partitions_per_replace(1, timedelta(minutes=15)) == 2
    assert partitions_per_replace(3, timedelta(hours=24)) == 4
    assert partitions_per_replace(1, timedelta(minutes=15), timedelta(days=15, hours=2)) == 17


def test_defaults_stay_far_below_the_limit():
    for source in (POLLING, FIREHOSE):
        for window in ("1m", "15m", "24h"):
            stream = parse_config(stream_config(source, window=window)).streams[0]
            assert stream.windows_per_replace == 96 and stream.backfill_windows_per_run == 672


@pytest.mark.parametrize(("window", "largest"), [("15m", 3999 * 96), ("24h", 3999), ("2h", 3999 * 12)])
def test_windows_per_replace_is_bounded_for_polling_streams(window, largest):
    ok = parse_config(stream_config(POLLING, window=window, windows_per_replace=largest))
    assert ok.streams[0].windows_per_replace == largest
    with pytest.raises(ConfigError) as err:
        parse_config(stream_config(POLLING, window=window, windows_per_replace=largest + 1))
    message = str(err.value)
    assert message.startswith("streams.app.windows_per_replace: ")
    assert "4,001 DAY partitions" in message
    assert f"BigQuery's limit of {MAX_PARTITIONS_PER_JOB:,} partitions modified per job" in message
    assert message.endswith(f"use at most {largest:,}")


def test_a_huge_value_is_refused_without_overflow():
    with pytest.raises(ConfigError, match=r"windows_per_replace: 1000000000000000 windows of 1m"):
        parse_config(stream_config(POLLING, window="1m", windows_per_replace=10**15))


def test_polling_backfill_runs_are_not_bounded_by_the_limit():
    # A polling run replaces its range in steps of windows_per_replace: a long run is fine.
    config = parse_config(stream_config(POLLING, window="24h", backfill_windows_per_run=10_000))
    assert config.streams[0].backfill_windows_per_run == 10_000


def test_firehose_replace_steps_are_bounded_with_the_event_time_spread():
    # 24h windows: 3,999 days of partitions minus 15 days 2 hours of possible event-time spread.
    largest = ((3999 * timedelta(days=1)) - timedelta(days=15, hours=2)) // timedelta(hours=24)
    assert largest == 3983
    parse_config(stream_config(FIREHOSE, window="24h", windows_per_replace=largest))
    with pytest.raises(ConfigError, match=r"^streams\.app\.windows_per_replace: 3984 windows of 24h"):
        parse_config(stream_config(FIREHOSE, window="24h", windows_per_replace=largest + 1))
    with pytest.raises(ConfigError, match=r"^streams\.app\.windows_per_replace: 4000 windows of 24h .*4,017"):
        parse_config(stream_config(FIREHOSE, window="24h", windows_per_replace=4000))
    # A run is several replace steps: its size is not bounded by the limit.
    config = parse_config(
        stream_config(FIREHOSE, window="24h", backfill_windows_per_run=4000, max_windows_per_run=4000)
    )
    assert config.streams[0].backfill_windows_per_run == 4000


def test_export_streams_are_not_bounded_by_window_counts():
    config = parse_config(stream_config(EXPORT, window="24h", backfill_windows_per_run=10**6))
    assert config.streams[0].backfill_windows_per_run == 10**6


def test_defaults_section_values_are_checked_per_stream():
    doc = stream_config(POLLING, window="24h")
    doc["defaults"] = {"windows_per_replace": 5000}
    with pytest.raises(ConfigError, match=r"^streams\.app\.windows_per_replace: 5000 windows of 24h"):
        parse_config(doc)

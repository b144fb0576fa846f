"""Listing a dynamic-partitioning layout by time, against local S3: the keys listed grow with
the partition values, not with the bucket's history."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.firehose.key_layout import KeyLayout
from cwl_pipeline.firehose.listing import concrete_layouts, list_layout, list_periods
from cwl_pipeline.firehose.windows import FirehoseCursor, listing_start_after

LAYOUT = KeyLayout.parse("fh/!{partitionKeyFromQuery:account}/!{timestamp:yyyy/MM/dd/HH}/")
ERRORS = KeyLayout.parse("fh-errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/")
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
HOURS = 48


def _fill(s3: Any, bucket: str, now: datetime) -> None:
    """Two days of hourly objects for three accounts, an error object, and two strays."""
    for back in range(HOURS):
        hour = now - timedelta(hours=back)
        for account in ACCOUNTS:
            s3.put_object(Bucket=bucket, Key=f"fh/{account}/{hour:%Y/%m/%d/%H}/delivery-{back}", Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"fh-errors/processing-failed/{now:%Y/%m/%d/%H}/failed", Body=b"x")
    s3.put_object(Bucket=bucket, Key="fh/manual-upload.json", Body=b"{}")  # beside the folders
    s3.put_object(Bucket=bucket, Key=f"fh/{ACCOUNTS[0]}/notes.txt", Body=b"x")  # in a folder


def _counting(s3: Any) -> tuple[S3ObjectStore, Counter[str]]:
    calls: Counter[str] = Counter()
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return S3ObjectStore(s3), calls


def test_values_are_found_with_one_delimiter_listing_per_level(s3, bucket):
    now = datetime.now(UTC)
    _fill(s3, bucket, now)
    store, calls = _counting(s3)
    layouts, strays = concrete_layouts(store, bucket, LAYOUT)
    assert [layout.static_head for layout in layouts] == [f"fh/{a}/" for a in ACCOUNTS]
    assert [o.key for o in strays] == ["fh/manual-upload.json"]
    errors, _ = concrete_layouts(store, bucket, ERRORS)
    assert [layout.static_head for layout in errors] == ["fh-errors/processing-failed/"]
    assert calls == Counter({"ListObjectsV2": 2})


def test_a_run_lists_its_periods_of_every_value_only(s3, bucket):
    now = datetime.now(UTC)
    _fill(s3, bucket, now)
    store, calls = _counting(s3)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    found = list_periods(store, bucket, LAYOUT, hour, hour + timedelta(minutes=15))
    assert sorted(o.key for o in found) == [f"fh/{a}/{hour:%Y/%m/%d/%H}/delivery-5" for a in ACCOUNTS]
    assert calls["ListObjectsV2"] == 1 + len(ACCOUNTS)  # the values, then one period each


def test_a_sensor_tick_lists_from_its_watermark_not_the_whole_history(s3, bucket):
    now = datetime.now(UTC)
    _fill(s3, bucket, now)
    store, _ = _counting(s3)
    cursor = FirehoseCursor(watermark=now - timedelta(minutes=1), deep_listed_at=now)

    def keys(deep: bool) -> list[str]:
        listed = list_layout(
            store, bucket, LAYOUT, lambda c: listing_start_after(c, cursor, now, now, deep=deep)
        )
        return [o.key for o in listed]

    quick, deep = keys(False), keys(True)
    every = len(ACCOUNTS) * HOURS + 2
    # Quick: the stray beside the folders, and from the key hour before the watermark's on (the
    # stray in a folder sorts after the hours, so it is listed too).
    assert "fh/manual-upload.json" in quick and f"fh/{ACCOUNTS[0]}/notes.txt" in quick
    assert len(quick) <= 1 + len(ACCOUNTS) * 3 + 1
    # Deep: a day and an hour of key hours more, still far from the two days stored.
    assert len(quick) < len(deep) < every
    assert all(not k.endswith(f"delivery-{HOURS - 1}") for k in deep)

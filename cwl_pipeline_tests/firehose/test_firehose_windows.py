"""Delivery windows of Firehose objects and the sensor's plan (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cwl_pipeline.firehose.key_layout import firehose_layout
from cwl_pipeline.firehose.windows import (
    RESCAN_OVERLAP,
    FirehoseCursor,
    delivery_window,
    listing_start_after,
    objects_by_window,
    plan_firehose_requests,
)
from cwl_pipeline.s3_objects.decode import delivery_stream_name
from cwl_pipeline.s3_objects.stored import StoredObject, object_set_version

W = timedelta(minutes=15)
H = datetime(2026, 11, 20, 10, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)


def obj(name: str, hour: datetime, modified: datetime, etag: str = "e") -> StoredObject:
    key = f"fh/{hour:%Y/%m/%d/%H}/s-1-{hour:%Y-%m-%d-%H}-00-00-{name:0>8}-0000-0000-0000-000000000000"
    return StoredObject(key, etag, 10, modified)


def plan(objects, cursor=None, now=H + timedelta(hours=3), busy=frozenset(), max_windows=96):
    return plan_firehose_requests(
        objects,
        prefix="fh/",
        cursor=cursor or FirehoseCursor(),
        now=now,
        size=W,
        begin=H - timedelta(days=1),
        partitions_start=START,
        max_windows=max_windows,
        busy_windows=busy,
    )


def test_delivery_time_is_last_modified_clamped_into_the_key_hour():
    assert delivery_window(obj("a", H, H + timedelta(minutes=20)), "fh/", W) == H + timedelta(minutes=15)
    # Written after its key hour ended (buffering across the hour): the hour's last window.
    assert delivery_window(obj("b", H, H + timedelta(minutes=63)), "fh/", W) == H + timedelta(minutes=45)
    assert delivery_window(obj("c", H, H - timedelta(minutes=1)), "fh/", W) == H
    assert delivery_window(StoredObject("fh/readme", "e", 1, H), "fh/", W) is None
    assert delivery_window(obj("d", H, H), "other/", W) is None
    assert delivery_stream_name(obj("a", H, H).key) == "s"


def test_hour_prefixes_and_objects_by_window_in_delivery_order():
    layout = firehose_layout("fh/")
    assert layout.listing_prefixes(H + timedelta(minutes=45), H + timedelta(hours=1)) == ["fh/2026/11/20/10/"]
    assert layout.listing_prefixes(H, H + timedelta(hours=2)) == ["fh/2026/11/20/10/", "fh/2026/11/20/11/"]
    late, early = obj("b", H, H + timedelta(minutes=50)), obj("a", H, H + timedelta(minutes=46))
    other = obj("c", H, H + timedelta(minutes=5))
    grouped = objects_by_window(
        [late, other, early], "fh/", W, H + timedelta(minutes=45), H + timedelta(hours=1)
    )
    assert grouped == {H + timedelta(minutes=45): [early, late]}


def test_first_tick_requests_contiguous_ranges_bounded_by_max_windows():
    objects = [obj(str(i), H, H + timedelta(minutes=15 * i + 1)) for i in range(4)]
    objects.append(obj("x", H + timedelta(hours=2), H + timedelta(hours=2, minutes=1)))
    result = plan(objects, max_windows=3)
    assert [(r.first, r.last, r.objects) for r in result.ranges] == [
        (H, H + timedelta(minutes=30), 3),
        (H + timedelta(minutes=45), H + timedelta(minutes=45), 1),
        (H + timedelta(hours=2), H + timedelta(hours=2), 1),
    ]
    assert result.ranges[0].version == object_set_version(objects[:3])
    assert result.cursor.watermark == H + timedelta(hours=2, minutes=1)


def test_seen_objects_are_not_requested_again_and_late_ones_are():
    a = obj("a", H, H + timedelta(minutes=46))
    first = plan([a])
    assert first.cursor.seen == {a.key: ("e", a.last_modified.timestamp())}
    assert plan([a], cursor=first.cursor).ranges == []
    # Same key, new content: requested again, with another version.
    rewritten = obj("a", H, H + timedelta(minutes=46), etag="f")
    again = plan([rewritten], cursor=first.cursor)
    assert [r.version for r in again.ranges] == [object_set_version([rewritten])]
    # A late object for the same window, dated just before the watermark (1 s resolution).
    b = obj("b", H, a.last_modified - timedelta(seconds=1))
    late = plan([a, b], cursor=first.cursor)
    assert [(r.first, r.objects) for r in late.ranges] == [(H + timedelta(minutes=45), 2)]
    # Older than the rescanned overlap: no longer new.
    old = obj("c", H, a.last_modified - RESCAN_OVERLAP - timedelta(seconds=1))
    assert plan([a, old], cursor=first.cursor).ranges == []


def test_busy_and_future_windows_are_deferred_without_losing_objects():
    a = obj("a", H, H + timedelta(minutes=46))
    busy = plan([a], busy={H + timedelta(minutes=45)})
    assert busy.ranges == [] and busy.deferred == 1 and a.key not in busy.cursor.seen
    assert [r.first for r in plan([a], cursor=busy.cursor).ranges] == [H + timedelta(minutes=45)]
    future = plan([obj("f", H, H + timedelta(minutes=10))], now=H - timedelta(hours=1))
    assert future.ranges == [] and future.deferred == 1


def test_listing_starts_a_day_of_key_hours_before_the_watermark():
    cursor = FirehoseCursor(watermark=H + timedelta(minutes=30))
    assert listing_start_after("fh/", cursor, H, H) == "fh/2026/11/19/09"
    assert FirehoseCursor.from_json(cursor.to_json()) == cursor


def test_notifications_decide_when_a_tick_lists():
    from cwl_pipeline.firehose.key_layout import KeyLayout
    from cwl_pipeline.firehose.notifications import ObjectEvent
    from cwl_pipeline.firehose.windows import Heard, heard_objects, listing_due

    layouts = [
        firehose_layout("fh/"),
        KeyLayout.parse("err/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"),
    ]
    now = H + timedelta(minutes=50)
    events = [
        ObjectEvent("b", "fh/2026/11/20/10/x", "ObjectCreated:Put", "2026-11-20T10:49:00Z"),
        ObjectEvent(
            "b", "err/processing-failed/2026/11/20/10/y", "ObjectCreated:Put", "2026-11-20T10:49:30Z"
        ),
        ObjectEvent("b", "fh/stray.json", "ObjectCreated:Put", ""),  # outside the layout: listed too
        ObjectEvent("other", "fh/2026/11/20/10/z", "ObjectCreated:Put", ""),
        ObjectEvent("b", "elsewhere/k", "ObjectCreated:Put", ""),
        ObjectEvent("b", "fh/2026/11/20/10/x", "ObjectRemoved:Delete", ""),
    ]
    heard = heard_objects(events, "b", layouts, now)
    assert heard == Heard(
        keys=["fh/2026/11/20/10/x", "err/processing-failed/2026/11/20/10/y", "fh/stray.json"],
        late=False,
        ignored=3,
    )
    # Written 30 minutes after its key hour ended (Firehose retrying): late, so a deep listing now.
    late = ObjectEvent("b", "fh/2026/11/20/09/w", "ObjectCreated:Put", "2026-11-20T10:30:00Z")
    assert heard_objects([late], "b", layouts, now).late

    safety = timedelta(minutes=5)
    listed = FirehoseCursor(
        watermark=now, deep_listed_at=now - timedelta(minutes=10), listed_at=now - timedelta(minutes=1)
    )
    quiet = Heard(keys=[], late=False, ignored=0)
    assert listing_due(listed, now, quiet, safety) == (False, False)  # nothing heard, listed a minute ago
    assert listing_due(listed, now, heard, safety) == (True, False)
    assert listing_due(listed, now, heard_objects([late], "b", layouts, now), safety) == (True, True)
    assert listing_due(listed, now + timedelta(minutes=4), quiet, safety) == (True, False)  # safety net
    assert listing_due(listed, now + timedelta(minutes=20), quiet, safety) == (True, True)  # deep, as always
    assert listing_due(listed, now, None, safety) == (True, False)  # no notifications: every tick lists
    assert listing_due(FirehoseCursor(), now, quiet, safety) == (True, True)  # first tick

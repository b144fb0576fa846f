"""Delivery windows of Firehose objects, and what the Firehose sensor requests at each tick.

Firehose writes ``<prefix>YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>``: the
hour path is the arrival time (UTC) of the object's oldest record, and S3's LastModified is
when the object was written, after up to 900 s of buffering. An object's **delivery time** is
its LastModified clamped into its key hour ``[HH:00, HH+1:00)``, and its **delivery window**
is the stream window holding that time. So:

* the mapping is deterministic: it uses only what a listing returns, so a run finds exactly
  the objects of its windows again, however often it runs;
* a window's objects are all under the hour path(s) the window overlaps, so a run lists one
  hour prefix (windows of up to an hour), never the whole bucket;
* an object written a few minutes after its key hour ends (buffering across the hour)
  belongs to the last window of that hour, which is then re-run as for any late object.

Rows land in the table partitioned by **event** time; the delivery window only decides which
run loads an object, and the run replaces rows by ``source_object``, so both kinds of time
stay consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cwl_pipeline.core.windows import floor_to_window
from cwl_pipeline.firehose.key_layout import KeyLayout, firehose_layout
from cwl_pipeline.firehose.notifications import ObjectEvent
from cwl_pipeline.s3_objects.stored import StoredObject, object_set_version

HOUR = timedelta(hours=1)
RESCAN_OVERLAP = timedelta(minutes=5)
"""Re-listed before the cursor's watermark: LastModified has a 1 s resolution, and an object
can become visible after a later one (a multipart upload is dated when it starts)."""
MAX_DELIVERY_DELAY = timedelta(hours=25)
"""How far before the watermark the sensor's *deep* listing reaches: Firehose retries a failing
S3 delivery for up to 24 h, so an object can be written that long after its key hour."""
LATE_AFTER = timedelta(minutes=20)
"""An object written more than this after its key period ended is *late* (Firehose buffers at
most 900 s): only the deep listing, every :data:`DEEP_LISTING_INTERVAL`, looks for those."""
DEEP_LISTING_INTERVAL = timedelta(minutes=30)
"""How often the sensor lists the key periods of the last :data:`MAX_DELIVERY_DELAY` (late
objects); other ticks list from the watermark's period only."""

Layout = KeyLayout | str
"""A stream's key layout, or (the default layout) its prefix."""


def as_layout(layout: Layout) -> KeyLayout:
    """``layout`` itself, or the default ``<prefix>YYYY/MM/dd/HH/`` layout of a prefix."""
    return layout if isinstance(layout, KeyLayout) else firehose_layout(layout)


def time_path(moment: datetime) -> str:
    """The ``YYYY/MM/DD/HH/`` path Firehose writes for ``moment`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y/%m/%d/%H/")


def key_hour(key: str, layout: Layout) -> datetime | None:
    """The period (hour, or day) the key's path names, or None if it is outside the layout."""
    match = as_layout(layout).match(key)
    return None if match is None else match.period


def delivery_time(obj: StoredObject, layout: Layout) -> datetime | None:
    """LastModified clamped into the key period; None for keys outside the layout."""
    parsed = as_layout(layout)
    period = key_hour(obj.key, parsed)
    if period is None:
        return None
    modified = obj.last_modified.astimezone(UTC)
    return min(max(modified, period), period + parsed.resolution - timedelta(milliseconds=1))


def is_late(obj: StoredObject, layout: Layout) -> bool:
    """Written more than :data:`LATE_AFTER` after its key period ended (see there)."""
    parsed = as_layout(layout)
    period = key_hour(obj.key, parsed)
    return period is not None and obj.last_modified > period + parsed.resolution + LATE_AFTER


def delivery_window(obj: StoredObject, layout: Layout, size: timedelta) -> datetime | None:
    """Start of the object's delivery window (see the module documentation)."""
    moment = delivery_time(obj, layout)
    return None if moment is None else floor_to_window(moment, size)


def objects_by_window(
    objects: Iterable[StoredObject], layout: Layout, size: timedelta, start: datetime, end: datetime
) -> dict[datetime, list[StoredObject]]:
    """Objects whose delivery window lies in ``[start, end)``, per window.

    Each list is in delivery order (LastModified, then key): the order in which duplicates
    are resolved, so that the first delivery of an event is the one kept.
    """
    parsed = as_layout(layout)
    windows: dict[datetime, list[StoredObject]] = {}
    for obj in objects:
        window = delivery_window(obj, parsed, size)
        if window is not None and start <= window < end:
            windows.setdefault(window, []).append(obj)
    for items in windows.values():
        items.sort(key=lambda o: (o.last_modified, o.key))
    return dict(sorted(windows.items()))


@dataclass(frozen=True)
class FirehoseCursor:
    """What the Firehose sensor remembers between ticks.

    ``watermark`` is the newest LastModified handled of objects written on time; ``seen``
    holds the key and ETag (and LastModified) of those within :data:`RESCAN_OVERLAP` of it,
    which are listed again and must not be requested twice. ``late_watermark`` and
    ``late_seen`` are the same for late objects (:func:`is_late`), which only the deep listing
    looks for; ``deep_listed_at`` is when it last ran, ``listed_at`` when any listing last ran
    (set by the sensor).
    """

    watermark: datetime | None = None
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)
    late_watermark: datetime | None = None
    late_seen: dict[str, tuple[str, float]] = field(default_factory=dict)
    deep_listed_at: datetime | None = None
    listed_at: datetime | None = None  # the last listing of any kind (notified streams list less)

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "watermark": _iso(self.watermark),
            "seen": {k: [etag, ts] for k, (etag, ts) in sorted(self.seen.items())},
            "late_watermark": _iso(self.late_watermark),
            "late_seen": {k: [etag, ts] for k, (etag, ts) in sorted(self.late_seen.items())},
            "deep_listed_at": _iso(self.deep_listed_at),
            "listed_at": _iso(self.listed_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FirehoseCursor:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()
        return cls(
            watermark=_from_iso(data.get("watermark")),
            seen={k: (str(v[0]), float(v[1])) for k, v in (data.get("seen") or {}).items()},
            late_watermark=_from_iso(data.get("late_watermark")),
            late_seen={k: (str(v[0]), float(v[1])) for k, v in (data.get("late_seen") or {}).items()},
            deep_listed_at=_from_iso(data.get("deep_listed_at")),
            listed_at=_from_iso(data.get("listed_at")),
        )

    def deep_due(self, now: datetime) -> bool:
        """Whether this tick lists the last :data:`MAX_DELIVERY_DELAY` of key periods."""
        return self.deep_listed_at is None or now - self.deep_listed_at >= DEEP_LISTING_INTERVAL


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _from_iso(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class WindowRange:
    """Load windows ``first`` … ``last`` (inclusive starts) in one run; ``version`` digests
    the objects of the range, so it changes when an object arrives or is rewritten."""

    first: datetime
    last: datetime
    version: str
    objects: int


@dataclass(frozen=True)
class FirehosePlan:
    """The outcome of one sensor tick (``outside_keys``: new keys outside the layout)."""

    ranges: list[WindowRange]
    cursor: FirehoseCursor
    new_objects: int = 0
    deferred: int = 0
    outside_layout: int = 0
    before_start: int = 0
    outside_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Heard:
    """What one tick's S3 event notifications say about a stream's bucket."""

    keys: list[str]  # objects written under the stream's layouts (or beside them)
    late: bool  # one of them is late (:func:`is_late`): a deep listing is due now
    ignored: int  # events of another bucket or prefix, or not about a new object


def heard_objects(
    events: Iterable[ObjectEvent], bucket: str, layouts: Sequence[KeyLayout], now: datetime
) -> Heard:
    """The new objects ``events`` name in ``bucket`` under the stream's ``layouts``."""
    keys: list[str] = []
    late = False
    ignored = 0
    heads = tuple(layout.static_head for layout in layouts)
    for event in events:
        if event.bucket != bucket or not event.created or not event.key.startswith(heads):
            ignored += 1
            continue
        keys.append(event.key)
        written = _event_time(event.event_time) or now
        for layout in layouts:
            match = layout.match(event.key)
            if match is not None:
                late |= written > match.period + layout.resolution + LATE_AFTER
                break
    return Heard(keys=keys, late=late, ignored=ignored)


def _event_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def listing_due(
    cursor: FirehoseCursor, now: datetime, heard: Heard | None, safety_listing: timedelta
) -> tuple[bool, bool]:
    """Whether this tick lists, and whether deeply. Without notifications (``heard`` None)
    every tick lists; with them, a tick lists when an object was notified, when the last
    listing is ``safety_listing`` old, and when the deep listing is due (every
    :data:`DEEP_LISTING_INTERVAL`, or at once for a notified late object)."""
    deep = cursor.deep_due(now) or (heard is not None and heard.late)
    if heard is None or deep or heard.keys or cursor.listed_at is None:
        return True, deep
    return now - cursor.listed_at >= safety_listing, False


def listing_start_after(
    layout: Layout, cursor: FirehoseCursor, now: datetime, begin: datetime, *, deep: bool = True
) -> str | None:
    """``StartAfter`` for the sensor's listing: key periods older than any object it can still
    need are skipped. A deep listing reaches :data:`MAX_DELIVERY_DELAY` back (late objects);
    another lists from the period an on-time object modified at the watermark can have.

    None when the layout puts a dynamic value before the time (the keys are not in time order).
    """
    parsed = as_layout(layout)
    if not parsed.time_before_dynamic():
        return None
    base = (cursor.watermark - RESCAN_OVERLAP) if cursor.watermark else min(begin, now)
    reach = MAX_DELIVERY_DELAY if deep or cursor.watermark is None else parsed.resolution + LATE_AFTER
    periods = parsed.periods(base - reach, base - reach + timedelta(microseconds=1))
    return parsed.period_prefix(periods[0]).rstrip("/") or None


def plan_firehose_requests(
    objects: Sequence[StoredObject],
    *,
    prefix: Layout,
    cursor: FirehoseCursor,
    now: datetime,
    size: timedelta,
    begin: datetime,
    partitions_start: datetime,
    max_windows: int,
    busy_windows: set[datetime] | frozenset[datetime] = frozenset(),
    deep: bool = True,
    error_layouts: Sequence[KeyLayout] = (),
) -> FirehosePlan:
    """Decide which delivery windows to (re)load, from one listing of the prefix.

    New objects are those modified at or after ``cursor.watermark - RESCAN_OVERLAP`` whose
    key and ETag were not seen before (on the first tick: those whose window starts at or
    after ``begin``); late objects (:func:`is_late`) are only looked for when the listing is
    ``deep``, against their own watermark. Each window holding a new object is requested,
    contiguous windows together as ranges of at most ``max_windows``. Windows in
    ``busy_windows`` (a run is loading them) and windows not open yet (clock skew) are
    deferred to a later tick. Objects of ``error_layouts`` (Firehose's error output) have
    delivery windows as deliveries do.
    """
    main = as_layout(prefix)

    def layout_of(obj: StoredObject) -> KeyLayout:
        return next((e for e in error_layouts if main.match(obj.key) is None and e.match(obj.key)), main)

    open_window = floor_to_window(now, size)
    floor = cursor.watermark - RESCAN_OVERLAP if cursor.watermark else None
    late_mark = cursor.late_watermark or cursor.watermark
    late_floor = late_mark - RESCAN_OVERLAP if late_mark else None
    by_window: dict[datetime, list[StoredObject]] = {}
    new: dict[datetime, int] = {}
    deferred: list[StoredObject] = []
    considered: list[StoredObject] = []
    outside_keys: list[str] = []
    before = 0
    for obj in objects:
        layout = layout_of(obj)
        window = delivery_window(obj, layout, size)
        late = window is not None and is_late(obj, layout)
        if window is not None:
            by_window.setdefault(window, []).append(obj)
        if late and not deep and floor is not None:
            continue  # the next deep listing looks for it
        if late and floor is not None:
            assert late_floor is not None
            mark, seen = late_floor, cursor.late_seen
        else:
            mark, seen = floor, cursor.seen
        if mark is None:
            if window is not None and window < begin:
                continue
        elif obj.last_modified < mark or seen.get(obj.key, ("",))[0] == obj.etag:
            continue
        considered.append(obj)
        if window is None:
            outside_keys.append(obj.key)
            continue
        if window < partitions_start:
            before += 1
            continue
        if window > open_window or window in busy_windows:
            deferred.append(obj)
            continue
        new[window] = new.get(window, 0) + 1

    ranges: list[WindowRange] = []
    for window in sorted(new):
        last = ranges[-1] if ranges else None
        if last and window - last.last == size and window - last.first < size * max_windows:
            ranges[-1] = WindowRange(last.first, window, "", 0)
        else:
            ranges.append(WindowRange(window, window, "", 0))
    ranges = [_versioned(r, by_window, size) for r in ranges]

    deferred_keys = {o.key for o in deferred}
    listed = [o for o in objects if o.key not in deferred_keys]
    on_time = [o for o in listed if not is_late(o, layout_of(o))]
    late_objects = [o for o in listed if is_late(o, layout_of(o))]
    first = cursor.watermark is None
    watermark, seen = _advance(cursor.watermark, cursor.seen, on_time if not first else listed, deferred)
    if first:
        late_watermark, late_seen = watermark, dict(seen)
    elif deep:
        late_watermark, late_seen = _advance(late_mark, cursor.late_seen, late_objects, deferred)
    else:
        late_watermark, late_seen = cursor.late_watermark, cursor.late_seen
    return FirehosePlan(
        ranges=ranges,
        cursor=FirehoseCursor(
            watermark=watermark,
            seen=seen,
            late_watermark=late_watermark,
            late_seen=late_seen,
            deep_listed_at=now if deep else cursor.deep_listed_at,
            listed_at=cursor.listed_at,
        ),
        new_objects=sum(new.values()),
        deferred=len(deferred),
        outside_layout=len(outside_keys),
        before_start=before,
        outside_keys=outside_keys,
    )


def _advance(
    watermark: datetime | None,
    seen: dict[str, tuple[str, float]],
    handled: Sequence[StoredObject],
    deferred: Sequence[StoredObject],
) -> tuple[datetime | None, dict[str, tuple[str, float]]]:
    """The watermark and seen keys after handling ``handled`` (deferred ones stay ahead)."""
    if handled:
        newest = max(o.last_modified for o in handled)
        if deferred:  # keep deferred objects inside the rescanned overlap
            newest = min(newest, min(o.last_modified for o in deferred))
        watermark = max(watermark, newest) if watermark else newest
    if not watermark:
        return None, {}
    keep_from = watermark - RESCAN_OVERLAP
    kept = {k: v for k, v in seen.items() if v[1] >= keep_from.timestamp()}
    kept.update(
        {o.key: (o.etag, o.last_modified.timestamp()) for o in handled if o.last_modified >= keep_from}
    )
    return watermark, kept


def _versioned(
    window_range: WindowRange, by_window: dict[datetime, list[StoredObject]], size: timedelta
) -> WindowRange:
    members = [
        o for w, objs in by_window.items() if window_range.first <= w <= window_range.last for o in objs
    ]
    return WindowRange(window_range.first, window_range.last, object_set_version(members), len(members))

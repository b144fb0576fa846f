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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cwl_pipeline.core.objects import StoredObject, object_set_version
from cwl_pipeline.core.windows import floor_to_window

HOUR = timedelta(hours=1)
RESCAN_OVERLAP = timedelta(minutes=5)
"""Re-listed before the cursor's watermark: LastModified has a 1 s resolution, and an object
can become visible after a later one (a multipart upload is dated when it starts)."""
MAX_DELIVERY_DELAY = timedelta(hours=25)
"""How far before the watermark the sensor lists key hours: Firehose retries a failing S3
delivery for up to 24 h, so an object can be written that long after its key hour."""

_TIME_PATH = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/")


def time_path(moment: datetime) -> str:
    """The ``YYYY/MM/DD/HH/`` path Firehose writes for ``moment`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y/%m/%d/%H/")


def key_hour(key: str, prefix: str) -> datetime | None:
    """The hour in the key's ``<prefix>YYYY/MM/DD/HH/`` path, or None if it has none."""
    if not key.startswith(prefix):
        return None
    match = _TIME_PATH.match(key, len(prefix))
    if match is None:
        return None
    try:
        return datetime(*(int(g) for g in match.groups()), tzinfo=UTC)  # type: ignore[misc]
    except ValueError:
        return None


def delivery_time(obj: StoredObject, prefix: str) -> datetime | None:
    """LastModified clamped into the key hour; None for keys outside the Firehose layout."""
    hour = key_hour(obj.key, prefix)
    if hour is None:
        return None
    modified = obj.last_modified.astimezone(UTC)
    return min(max(modified, hour), hour + HOUR - timedelta(milliseconds=1))


def delivery_window(obj: StoredObject, prefix: str, size: timedelta) -> datetime | None:
    """Start of the object's delivery window (see the module documentation)."""
    moment = delivery_time(obj, prefix)
    return None if moment is None else floor_to_window(moment, size)


def hour_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The key prefixes holding every object of the windows in ``[start, end)``."""
    hour = floor_to_window(start, HOUR)
    out = []
    while hour < end:
        out.append(prefix + time_path(hour))
        hour += HOUR
    return out


def objects_by_window(
    objects: Iterable[StoredObject], prefix: str, size: timedelta, start: datetime, end: datetime
) -> dict[datetime, list[StoredObject]]:
    """Objects whose delivery window lies in ``[start, end)``, per window.

    Each list is in delivery order (LastModified, then key): the order in which duplicates
    are resolved, so that the first delivery of an event is the one kept.
    """
    windows: dict[datetime, list[StoredObject]] = {}
    for obj in objects:
        window = delivery_window(obj, prefix, size)
        if window is not None and start <= window < end:
            windows.setdefault(window, []).append(obj)
    for items in windows.values():
        items.sort(key=lambda o: (o.last_modified, o.key))
    return dict(sorted(windows.items()))


@dataclass(frozen=True)
class FirehoseCursor:
    """What the Firehose sensor remembers between ticks.

    ``watermark`` is the newest LastModified handled; ``seen`` holds the key and ETag (and
    LastModified) of objects within :data:`RESCAN_OVERLAP` of it, which are listed again and
    must not be requested twice.
    """

    watermark: datetime | None = None
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "seen": {k: [etag, ts] for k, (etag, ts) in sorted(self.seen.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FirehoseCursor:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()
        watermark = data.get("watermark")
        return cls(
            watermark=datetime.fromisoformat(watermark) if watermark else None,
            seen={k: (str(v[0]), float(v[1])) for k, v in (data.get("seen") or {}).items()},
        )


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
    """The outcome of one sensor tick."""

    ranges: list[WindowRange]
    cursor: FirehoseCursor
    new_objects: int = 0
    deferred: int = 0
    outside_layout: int = 0
    before_start: int = 0


def listing_start_after(prefix: str, cursor: FirehoseCursor, now: datetime, begin: datetime) -> str:
    """``StartAfter`` for the sensor's listing: key hours older than any object it can still
    need are skipped, so a tick lists about a day of keys, not the whole bucket."""
    base = (cursor.watermark - RESCAN_OVERLAP) if cursor.watermark else min(begin, now)
    return prefix + time_path(base - MAX_DELIVERY_DELAY).rstrip("/")


def plan_firehose_requests(
    objects: Sequence[StoredObject],
    *,
    prefix: str,
    cursor: FirehoseCursor,
    now: datetime,
    size: timedelta,
    begin: datetime,
    partitions_start: datetime,
    max_windows: int,
    busy_windows: set[datetime] | frozenset[datetime] = frozenset(),
) -> FirehosePlan:
    """Decide which delivery windows to (re)load, from one listing of the prefix.

    New objects are those modified at or after ``cursor.watermark - RESCAN_OVERLAP`` whose
    key and ETag were not seen before (on the first tick: those whose window starts at or
    after ``begin``). Each window holding a new object is requested, contiguous windows
    together as ranges of at most ``max_windows``. Windows in ``busy_windows`` (a run is
    loading them) and windows not open yet (clock skew) are deferred to a later tick.
    """
    open_window = floor_to_window(now, size)
    floor = cursor.watermark - RESCAN_OVERLAP if cursor.watermark else None
    by_window: dict[datetime, list[StoredObject]] = {}
    new: dict[datetime, int] = {}
    deferred: list[StoredObject] = []
    outside = before = 0
    for obj in objects:
        window = delivery_window(obj, prefix, size)
        if window is None:
            outside += 1
            continue
        by_window.setdefault(window, []).append(obj)
        if floor is None:
            if window < begin:
                continue
        elif obj.last_modified < floor or cursor.seen.get(obj.key, ("",))[0] == obj.etag:
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
    handled = [o for objs in by_window.values() for o in objs if o.key not in deferred_keys]
    watermark = cursor.watermark
    if handled:
        newest = max(o.last_modified for o in handled)
        if deferred:  # keep deferred objects inside the rescanned overlap
            newest = min(newest, min(o.last_modified for o in deferred))
        watermark = max(watermark, newest) if watermark else newest
    seen = {}
    if watermark:
        keep_from = watermark - RESCAN_OVERLAP
        seen = {o.key: (o.etag, o.last_modified.timestamp()) for o in handled if o.last_modified >= keep_from}
    return FirehosePlan(
        ranges=ranges,
        cursor=FirehoseCursor(watermark=watermark, seen=seen),
        new_objects=sum(new.values()),
        deferred=len(deferred),
        outside_layout=outside,
        before_start=before,
    )


def _versioned(
    window_range: WindowRange, by_window: dict[datetime, list[StoredObject]], size: timedelta
) -> WindowRange:
    members = [
        o for w, objs in by_window.items() if window_range.first <= w <= window_range.last for o in objs
    ]
    return WindowRange(window_range.first, window_range.last, object_set_version(members), len(members))

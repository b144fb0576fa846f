"""What the two S3 sources share: a set of objects read, decoded and scoped for one load.

Firehose windows (:mod:`cwl_pipeline.firehose.read`) and export task folders
(:mod:`cwl_pipeline.exports.read`) are both an :class:`ObjectSetRead`.

A read replaces exactly the rows that came from the objects it read, whatever their event
times: the events table is partitioned by event time, and a Firehose object or an export
file holds events of any time. The scope is on ``source_object`` (the object's ``s3://`` URI):

* Firehose windows: ``source_object IN (<every object of the windows>)``. Re-reading a window
  after a late object replaces the window's earlier objects with the same rows and adds the
  late one; an object deleted from S3 since (lifecycle rules) keeps its rows.
* Export task folder: ``source_object`` starting with the folder's URI.

Both are also bounded by the event times of what was read (objects do not change, so the rows
stored from them earlier have the same times): BigQuery then reads the partitions (and, tables
being clustered on event time, about the blocks) of those times only, not the whole table.

An unreadable object's earlier rows (if it was ever readable) are kept rather than silently
removed: the events scope leaves it out, its ``unreadable_object`` reject is written, and
the load reports ``rows_kept_from_unreadable_objects``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from cwl_pipeline.adapters.s3 import ObjectGone, S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import (
    Scope,
    all_of,
    time_ranges_scope,
    time_scope,
)
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.event_rules import RuleTally
from cwl_pipeline.core.normalize import parse_warning_facts
from cwl_pipeline.core.object_batch import ObjectBatch, ObjectContent, concat_batches, concat_raw
from cwl_pipeline.core.objects import StoredObject, object_uri
from cwl_pipeline.load.reads import SourceRead
from cwl_pipeline.load.tables import LoadScope

_READ_AHEAD = 8  # objects fetched concurrently; bounds the bytes held in memory

Decoder = Callable[[StoredObject, bytes], ObjectContent]


@dataclass(kw_only=True)
class ObjectSetRead(SourceRead):
    """The objects of one or more groups (delivery windows, or one export folder), decoded.

    ``describe`` gives the fixed figures of a group (its delivery window's bounds, its folder).
    """

    batches: dict[Hashable, ObjectBatch] = field(default_factory=dict)
    versions: dict[Hashable, str] = field(default_factory=dict)
    groups: list[Hashable] = field(default_factory=list)
    describe: Callable[[Hashable], dict[str, object]] = lambda group: {}
    time_column: str = "timestamp"

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """Rows and rejects of every group."""
        if not self.batches:
            return _EMPTY, _EMPTY
        return concat_batches(list(self.batches.values()))

    def raw_rows(self) -> pa.Table | None:
        """Raw rows of every group (None when the stream keeps no raw table)."""
        return concat_raw(list(self.batches.values()))

    @property
    def rows_loaded(self) -> int:
        """Rows of every group."""
        return sum(b.rows_loaded for b in self.batches.values())

    @property
    def rows_rejected(self) -> int:
        """Rejects of every group (one per unreadable object included)."""
        return sum(b.rows_rejected for b in self.batches.values())

    @property
    def duplicates_dropped(self) -> int:
        """Events delivered twice (or kept from an unreadable object) and stored once."""
        return sum(b.duplicates_dropped for b in self.batches.values())

    @property
    def unreadable(self) -> list[str]:
        """Objects that could not be decoded."""
        return [uri for b in self.batches.values() for uri in b.unreadable]

    @property
    def nothing_read(self) -> bool:
        """No object at all: rows of objects gone from S3 stay."""
        return not any(b.objects for b in self.batches.values())

    def without_stored(self, kept: Mapping[str, set[str]]) -> None:
        """Rows stored earlier from objects unreadable now stay; the same events delivered again
        in other objects of their group are dropped as duplicates."""
        for group, batch in self.batches.items():
            ids = {event_id for uri in batch.unreadable for event_id in kept.get(uri, ())}
            self.batches[group] = batch.without_event_ids(ids)

    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """Per group: its fixed figures and those of its objects (zeros for a group without any)."""
        return {
            group: {
                **self.describe(group),
                **batch_figures(self.batches.get(group), self.versions.get(group, ""), self.time_column),
            }
            for group in self.groups
        }


_EMPTY = pa.table({})


def warning_facts(batches: Mapping[Hashable, ObjectBatch]) -> dict[str, int]:
    """Parse warnings, filtered and redacted events of every group, as run figures."""
    total: Counter[str] = Counter()
    tally = RuleTally()
    for batch in batches.values():
        total.update(batch.batch.parse_warnings)
        tally.events_filtered += batch.tally.events_filtered
        tally.events_redacted += batch.tally.events_redacted
    return {**parse_warning_facts(dict(total)), **tally.facts()}


def batch_figures(batch: ObjectBatch | None, version: str, time_column: str) -> dict[str, object]:
    """Figures of one group's batch, with the event-time bounds of its rows."""
    if batch is None:
        return {
            "objects_read": 0,
            "objects_unreadable": 0,
            "events_read": 0,
            "rows_loaded": 0,
            "rows_rejected": 0,
            "duplicates_dropped": 0,
            "bytes_read": 0,
        }
    figures = batch.metadata()
    figures["object_set_version"] = version
    if batch.rows_loaded:
        times = batch.batch.rows[time_column]
        figures["min_event_time"] = times.min().astimezone(UTC).isoformat()
        figures["max_event_time"] = times.max().astimezone(UTC).isoformat()
    return figures


def read_contents(
    store: S3ObjectStore, bucket: str, objects: Sequence[StoredObject], decode: Decoder, vanished: list[str]
) -> Iterator[ObjectContent]:
    """Read and decode ``objects`` in order, a few at a time; objects deleted since the
    listing are skipped and named in ``vanished``."""

    def fetch(obj: StoredObject) -> bytes | None:
        try:
            return store.read(bucket, obj.key)
        except ObjectGone:
            return None

    with ThreadPoolExecutor(max_workers=_READ_AHEAD) as pool:
        for i in range(0, len(objects), _READ_AHEAD):
            chunk = objects[i : i + _READ_AHEAD]
            for obj, data in zip(chunk, pool.map(fetch, chunk), strict=True):
                if data is None:
                    vanished.append(object_uri(bucket, obj.key))
                    continue
                yield decode(obj, data)


def event_time_bounds(
    batches: Mapping[Hashable, ObjectBatch], time_column: str
) -> tuple[datetime, datetime] | None:
    """``[earliest, latest + 1 ms)`` of the rows' and rejects' times, None without any."""
    times = [
        t
        for b in batches.values()
        for column in (b.batch.rows_table[time_column], b.batch.rejects_table["timestamp"])
        for t in (pc.min(column).as_py(), pc.max(column).as_py())
        if t is not None
    ]
    if not times:
        return None
    latest = max(times)
    # BigQuery's last timestamp (rejects are clamped into its range) has no successor.
    end = (
        latest + timedelta(milliseconds=1)
        if latest < BIGQUERY_LAST - timedelta(milliseconds=1)
        else BIGQUERY_LAST
    )
    return min(times), end


BIGQUERY_LAST = datetime.max.replace(tzinfo=UTC)


def bounded_scope(scope: Scope, column: str, bounds: tuple[datetime, datetime] | None) -> Scope:
    """``scope`` limited to the event times of the read (unchanged without any)."""
    return scope if bounds is None else all_of(time_scope(column, *bounds), scope)


def records_decoded(batches: Mapping[Hashable, ObjectBatch]) -> int:
    # Records the decoders yielded (an unreadable object counts as one), before duplicates of
    # redelivered records are dropped and before normalization: the source side of the checks.
    return sum(b.records_decoded for b in batches.values())


def stored_copies_scope(batches: Mapping[Hashable, ObjectBatch], time_column: str) -> LoadScope | None:
    """Where copies of a read's events may already be stored: the hours of their event times,
    in any window, object set or export folder of the stream (None without any event).

    Searching by event time, not by object, is what finds an event Firehose delivered again in
    another delivery window, or that two export tasks both exported; the hours keep the scan
    to the partitions and blocks of those times.
    """
    hours: set[int] = set()
    for batch in batches.values():
        for column in (batch.batch.rows_table[time_column], batch.batch.rejects_table["timestamp"]):
            if len(column):
                micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
                hours.update(pc.unique(_floor_hours(micros)).to_pylist())
    if not hours:
        return None
    ranges = [_hour_range(h) for h in sorted(hours)]
    return LoadScope(time_ranges_scope(time_column, ranges), time_ranges_scope("timestamp", ranges))


def _floor_hours(micros: pa.Array) -> pa.Array:
    """Hours since the epoch, rounded down (integer division truncates towards zero)."""
    truncated = pc.divide(micros, _HOUR_US)
    before_epoch = pc.subtract(pc.divide(pc.add(micros, 1), _HOUR_US), 1)
    return pc.if_else(pc.less(micros, 0), before_epoch, truncated)


def _hour_range(hour: int) -> tuple[datetime, datetime]:
    start = _EPOCH + timedelta(hours=hour)
    # The last hour BigQuery can hold ends at its last microsecond (a reject clamped there is
    # the only row that can have it).
    return start, start + timedelta(hours=1) if start < BIGQUERY_LAST - timedelta(hours=1) else BIGQUERY_LAST


_HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def s3_source(stream: StreamConfig) -> S3Source:
    """The stream's S3 source (a TypeError for another source type)."""
    if not isinstance(stream.source, S3Source):
        raise TypeError(f"stream {stream.name} does not read S3")
    return stream.source

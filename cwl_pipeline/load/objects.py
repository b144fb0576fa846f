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

from collections import Counter, deque
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
from cwl_pipeline.config import DEFAULT_CHUNK_EVENTS, S3Source, StreamConfig
from cwl_pipeline.core.event_rules import NO_RULES, EventRules, RuleTally
from cwl_pipeline.core.normalize import normalize, parse_warning_facts
from cwl_pipeline.core.parallel_decode import DecodeInput, decode_objects_parallel
from cwl_pipeline.core.schema import TableSchema
from cwl_pipeline.load.reads import SourceRead
from cwl_pipeline.load.tables import LoadScope
from cwl_pipeline.s3_objects.batch import (
    ObjectBatch,
    ObjectContent,
    build_object_batch,
    unreadable_rejects,
)
from cwl_pipeline.s3_objects.stored import StoredObject, object_set_version, object_uri

_READ_AHEAD = 8  # objects fetched concurrently; bounds the bytes held in memory

Decoder = Callable[[StoredObject, bytes], ObjectContent]


@dataclass
class GroupFigures:
    """Figures of one group (delivery window, export folder), added up chunk by chunk."""

    objects: list[StoredObject] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    records_decoded: int = 0
    rows: int = 0
    rejects: int = 0
    duplicates: int = 0
    bytes_read: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    parse_warnings: Counter[str] = field(default_factory=Counter)
    tally: RuleTally = field(default_factory=RuleTally)
    first: datetime | None = None
    last: datetime | None = None

    def add(self, batch: ObjectBatch, time_column: str) -> None:
        """Count one chunk's batch."""
        self.readable += batch.readable
        self.unreadable += batch.unreadable
        self.records_decoded += batch.records_decoded
        self.duplicates += batch.duplicates_dropped
        self.bytes_read += batch.bytes_read
        self.tally.events_filtered += batch.tally.events_filtered
        self.tally.events_redacted += batch.tally.events_redacted
        self.add_tables(batch.batch.rows_table, batch.batch.rejects_table, time_column)
        self.parse_warnings.update(batch.batch.parse_warnings)

    def add_tables(self, rows: pa.Table, rejects: pa.Table, time_column: str) -> None:
        """Count rows and rejects (their number, reasons and event times)."""
        self.rows += rows.num_rows
        self.rejects += rejects.num_rows
        if rejects.num_rows:
            counts = pc.value_counts(rejects["reason"])
            self.reject_reasons.update(
                dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
            )
        if rows.num_rows:
            times = rows[time_column]
            low, high = pc.min(times).as_py(), pc.max(times).as_py()
            self.first = low if self.first is None else min(self.first, low)
            self.last = high if self.last is None else max(self.last, high)

    def metadata(self, version: str) -> dict[str, object]:
        """Flat figures for run metadata (as :meth:`ObjectBatch.metadata` gives them)."""
        figures: dict[str, object] = {
            "objects_read": len(self.readable) + len(self.unreadable),
            "objects_unreadable": len(self.unreadable),
            "events_read": self.records_decoded,
            "rows_loaded": self.rows,
            "rows_rejected": self.rejects,
            "duplicates_dropped": self.duplicates,
            **self.tally.facts(),
            "bytes_read": self.bytes_read,
            "reject_reasons": dict(sorted(self.reject_reasons.items(), key=lambda i: (-i[1], i[0]))),
        }
        if self.parse_warnings:
            figures["parse_warnings"] = dict(self.parse_warnings)
        figures["object_set_version"] = version
        if self.first is not None and self.last is not None:
            figures["min_event_time"] = self.first.astimezone(UTC).isoformat()
            figures["max_event_time"] = self.last.astimezone(UTC).isoformat()
        return figures


ScopeOf = Callable[[list[str], list[str], "tuple[datetime, datetime] | None"], LoadScope]
"""The scope of a read from its readable and unreadable objects' URIs and its event-time bounds."""


@dataclass(kw_only=True)
class ObjectSetRead(SourceRead):
    """The objects of one or more groups (delivery windows, or one export folder), decoded
    chunk by chunk as the load stages them (:meth:`chunks`).

    Until :meth:`chunks` has run to its end, only the listing is known: ``scope``,
    ``stored_scope``, ``events_at_source``, ``facts`` and the figures are set as objects are
    read. ``describe`` gives the fixed figures of a group (its delivery window's bounds, its
    folder); ``scope_of`` makes the read's scope once every object is read.
    """

    objects: dict[Hashable, list[StoredObject]] = field(default_factory=dict)
    groups: list[Hashable] = field(default_factory=list)
    describe: Callable[[Hashable], dict[str, object]] = lambda group: {}
    time_column: str = "timestamp"
    read_objects: Callable[[Sequence[StoredObject], list[str]], Iterator[ObjectContent]] | None = None
    schema: TableSchema | None = None
    scope_of: ScopeOf | None = None
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    parallel: ParallelDecode | None = None
    rules: EventRules = NO_RULES
    raw: bool = False  # keep raw rows (the stream has a raw table)
    batches: dict[Hashable, ObjectBatch] | None = None  # decoded beforehand (see decoded_read)
    # How a chunk's contents become a batch (default: normalized to ``schema`` with ``rules``).
    build: Callable[[list[ObjectContent]], ObjectBatch] | None = None
    versions: dict[Hashable, str] = field(default_factory=dict)
    # The event times rows of objects written at these times can carry (None: unbounded).
    event_times_of: Callable[[Sequence[datetime]], tuple[datetime, datetime] | None] | None = None
    figures: dict[Hashable, GroupFigures] = field(default_factory=dict)
    bounds: tuple[datetime, datetime] | None = None  # of the event times read
    _bounds: list[datetime] = field(default_factory=list)
    _hours: set[int] = field(default_factory=set)
    _read: bool = False

    def chunks(self) -> Iterator[tuple[pa.Table, pa.Table, pa.Table | None]]:
        """Rows, rejects and raw rows, a chunk of at most about ``chunk_events`` events at a
        time, in delivery order; at the end, the read's scope and figures are set."""
        if self._read:
            raise RuntimeError(f"{self.label} was read already")
        self._read = True
        if self.batches is not None:
            for group, batch in self.batches.items():
                self.figures.setdefault(group, GroupFigures()).add(batch, self.time_column)
                yield batch.batch.rows_table, batch.batch.rejects_table, batch.raw
            return
        assert self.read_objects is not None and self.schema is not None and self.scope_of is not None
        for group, objects in self.objects.items():
            figures = self.figures.setdefault(group, GroupFigures())
            figures.objects = list(objects)
            if self.parallel is not None:
                yield from self._parallel_chunks(figures, objects, self.parallel)
                continue
            pending: list[ObjectContent] = []
            events = 0
            for content in self.read_objects(objects, self.vanished):
                pending.append(content)
                events += len(content.events) or 1
                if events >= self.chunk_events:
                    yield self.take(group, pending)
                    pending, events = [], 0
            if pending:
                yield self.take(group, pending)
        self.finish()

    def take(
        self, group: Hashable, contents: list[ObjectContent]
    ) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        """One chunk of ``group``: its objects' contents as rows, rejects and raw rows,
        counted in the group's figures (``contents`` is emptied). A read fed from outside
        (several reads sharing one pass over the objects) is given its chunks this way,
        then :meth:`finish`."""
        figures = self.figures.setdefault(group, GroupFigures())
        if not figures.objects:
            figures.objects = list(self.objects.get(group, []))
        return self._chunk(figures, contents)

    def take_batch(self, group: Hashable, batch: ObjectBatch) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        """One chunk of ``group`` already built (e.g. Firehose's error records as rejects)."""
        figures = self.figures.setdefault(group, GroupFigures())
        figures.add(batch, self.time_column)
        return (*self._note_times(batch.batch.rows_table, batch.batch.rejects_table), batch.raw)

    def finish(self) -> None:
        """Every chunk was taken: set the read's scope, stored-copies scope and figures."""
        self._read = True
        readable = [uri for f in self.figures.values() for uri in f.readable]
        unreadable = [uri for f in self.figures.values() for uri in f.unreadable]
        self.bounds = bounds = _bounds_of(self._bounds)
        self.scope = self.scope_of(readable, unreadable, bounds)
        self.stored_scope = _hours_scope(self._hours, self.time_column)
        self.events_at_source = sum(f.records_decoded for f in self.figures.values())
        warnings: Counter[str] = Counter()
        tally = RuleTally()
        for f in self.figures.values():
            warnings.update(f.parse_warnings)
            tally.events_filtered += f.tally.events_filtered
            tally.events_redacted += f.tally.events_redacted
        self.facts = {**self.facts, **parse_warning_facts(dict(warnings)), **tally.facts()}

    def _chunk(
        self, figures: GroupFigures, contents: list[ObjectContent]
    ) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        if self.build is not None:
            batch = self.build(contents)
        else:
            assert self.schema is not None
            batch = build_object_batch(contents, self.schema, rules=self.rules, raw=self.raw)
        contents.clear()
        figures.add(batch, self.time_column)
        return (*self._note_times(batch.batch.rows_table, batch.batch.rejects_table), batch.raw)

    def _parallel_chunks(
        self, figures: GroupFigures, objects: Sequence[StoredObject], parallel: ParallelDecode
    ) -> Iterator[tuple[pa.Table, pa.Table, pa.Table | None]]:
        """Objects decoded and normalized by :func:`decode_objects_parallel`, each on its own
        (duplicates are dropped by the load, in BigQuery), gathered into chunks. Only for a
        stream without rules or raw table (the workers apply neither)."""
        assert self.schema is not None
        fetched: deque[tuple[StoredObject, int]] = deque()

        def inputs() -> Iterator[DecodeInput]:
            for obj, data in parallel.fetch(objects, self.vanished):
                fetched.append((obj, len(data)))
                yield parallel.make_input(obj, data)

        rows: list[pa.Table] = []
        rejects: list[pa.Table] = []
        events = 0
        for decoded in decode_objects_parallel(
            inputs(), self.schema, workers=parallel.workers, start_method="forkserver"
        ):
            obj, size = fetched.popleft()
            figures.bytes_read += size
            if decoded.error is not None or decoded.batch is None:
                content = parallel.unreadable(obj, str(decoded.error))
                figures.unreadable.append(content.uri)
                figures.records_decoded += 1
                rejects.append(unreadable_rejects([content]))
                events += 1
            else:
                figures.readable.append(parallel.uri(obj))
                figures.records_decoded += decoded.events_read
                figures.parse_warnings.update(decoded.batch.parse_warnings)
                rows.append(decoded.batch.rows_table)
                rejects.append(decoded.batch.rejects_table)
                events += decoded.events_read
            if events >= self.chunk_events:
                yield self._gathered(figures, rows, rejects)
                rows, rejects, events = [], [], 0
        if rows or rejects:
            yield self._gathered(figures, rows, rejects)

    def _gathered(
        self, figures: GroupFigures, rows: list[pa.Table], rejects: list[pa.Table]
    ) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        row_table = pa.concat_tables(rows) if rows else _empty_like(self.schema, events=True)
        reject_table = pa.concat_tables(rejects) if rejects else _empty_like(self.schema, events=False)
        figures.add_tables(row_table, reject_table, self.time_column)
        return (*self._note_times(row_table, reject_table), None)

    def _note_times(self, rows: pa.Table, rejects: pa.Table) -> tuple[pa.Table, pa.Table]:
        for column in (rows[self.time_column], rejects["timestamp"]):
            if len(column):
                self._bounds += [pc.min(column).as_py(), pc.max(column).as_py()]
                micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
                self._hours.update(pc.unique(_floor_hours(micros)).to_pylist())
        return rows, rejects

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """Rows and rejects of every group, all in memory (for small reads and tests)."""
        parts = list(self.chunks())
        if not parts:
            return _EMPTY, _EMPTY
        return pa.concat_tables([p[0] for p in parts]), pa.concat_tables([p[1] for p in parts])

    @property
    def rows_loaded(self) -> int:
        """Rows of every group (before duplicates across chunks are dropped)."""
        return sum(f.rows for f in self.figures.values())

    @property
    def rows_rejected(self) -> int:
        """Rejects of every group (one per unreadable object included)."""
        return sum(f.rejects for f in self.figures.values())

    @property
    def duplicates_dropped(self) -> int:
        """Events delivered twice within a chunk, dropped before staging."""
        return sum(f.duplicates for f in self.figures.values())

    @property
    def unreadable(self) -> list[str]:
        """Objects that could not be decoded."""
        return [uri for f in self.figures.values() for uri in f.unreadable]

    @property
    def unreadable_event_times(self) -> tuple[datetime, datetime] | None:
        """Bounds of the event times of the unreadable objects' rows, from their S3 times."""
        if self.event_times_of is None:
            return None
        unreadable = [uri for f in self.figures.values() for uri in f.unreadable]
        # A URI is s3://bucket/key: its object is the listed one whose key ends it.
        delivered = [
            obj.last_modified
            for f in self.figures.values()
            for obj in f.objects
            if any(uri.endswith(f"/{obj.key}") for uri in unreadable)
        ]
        return self.event_times_of(delivered) if delivered else None

    @property
    def nothing_read(self) -> bool:
        """No object at all: rows of objects gone from S3 stay."""
        return not any(f.readable or f.unreadable for f in self.figures.values())

    def without_stored(self, kept: Mapping[str, set[str]]) -> None:
        """Events stored earlier from objects unreadable now are not stored again: the load
        finds their copies in ``stored_scope`` (they are outside the events scope)."""

    def count_staged_duplicates(
        self, rows: Mapping[str | None, int], rejects: Mapping[str | None, int]
    ) -> None:
        """Add the duplicates the load found across chunks (per object URI) to their groups."""
        by_uri: dict[str, Hashable] = {
            uri: group for group, f in self.figures.items() for uri in (*f.readable, *f.unreadable)
        }
        for counts, attr in ((rows, "rows"), (rejects, "rejects")):
            for uri, n in counts.items():
                group = by_uri.get(uri or "")
                if group is None:
                    continue
                figures = self.figures[group]
                setattr(figures, attr, getattr(figures, attr) - n)
                figures.duplicates += n

    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """Per group: its fixed figures and those of its objects (zeros for a group without any)."""
        return {
            group: {
                **self.describe(group),
                **(
                    self.figures[group].metadata(
                        self.versions.get(group) or object_set_version(self.objects.get(group, []))
                    )
                    if group in self.figures
                    else batch_figures(None, "", self.time_column)
                ),
            }
            for group in self.groups
        }


@dataclass(frozen=True)
class ParallelDecode:
    """Decoding objects with :func:`decode_objects_parallel` (``workers`` processes; one:
    in this process; 0: one per CPU): ``fetch`` reads objects (skipping and naming vanished ones),
    ``make_input`` makes an object's :class:`DecodeInput`, ``unreadable`` the content of an
    unreadable object's reject (from the error)."""

    fetch: Callable[[Sequence[StoredObject], list[str]], Iterator[tuple[StoredObject, bytes]]]
    make_input: Callable[[StoredObject, bytes], DecodeInput]
    unreadable: Callable[[StoredObject, str], ObjectContent]
    uri: Callable[[StoredObject], str]
    workers: int = 1


def _empty_like(schema: TableSchema | None, *, events: bool) -> pa.Table:
    assert schema is not None
    batch = normalize(iter(()), schema)
    return batch.rows_table if events else batch.rejects_table


def combined_scope(reads: Sequence[ObjectSetRead]) -> LoadScope | None:
    """The scope of several reads of one source taken together (None without any read)."""
    if not reads or reads[0].scope_of is None:
        return None
    readable = [uri for r in reads for f in r.figures.values() for uri in f.readable]
    unreadable = [uri for r in reads for f in r.figures.values() for uri in f.unreadable]
    bounds = _bounds_of([t for r in reads if r.bounds is not None for t in r.bounds])
    if bounds is not None:
        bounds = (bounds[0], max(r.bounds[1] for r in reads if r.bounds is not None))
    return reads[0].scope_of(readable, unreadable, bounds)


def _bounds_of(times: list[datetime]) -> tuple[datetime, datetime] | None:
    """``[earliest, latest + 1 ms)`` of ``times``, None without any."""
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


def _hours_scope(hours: set[int], time_column: str) -> LoadScope | None:
    if not hours:
        return None
    ranges = [_hour_range(h) for h in sorted(hours)]
    return LoadScope(time_ranges_scope(time_column, ranges), time_ranges_scope("timestamp", ranges))


_EMPTY = pa.table({})


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


def fetch_objects(
    store: S3ObjectStore, bucket: str, objects: Sequence[StoredObject], vanished: list[str]
) -> Iterator[tuple[StoredObject, bytes]]:
    """Read ``objects`` in order, a few at a time; objects deleted since the listing are
    skipped and named in ``vanished``."""

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
                yield obj, data


def read_contents(
    store: S3ObjectStore, bucket: str, objects: Sequence[StoredObject], decode: Decoder, vanished: list[str]
) -> Iterator[ObjectContent]:
    """Read and decode ``objects`` in order, a few at a time; objects deleted since the
    listing are skipped and named in ``vanished``."""
    for obj, data in fetch_objects(store, bucket, objects, vanished):
        yield decode(obj, data)


def warning_facts(batches: Mapping[Hashable, ObjectBatch]) -> dict[str, int]:
    """Parse warnings, filtered and redacted events of every group, as run figures."""
    total: Counter[str] = Counter()
    tally = RuleTally()
    for batch in batches.values():
        total.update(batch.batch.parse_warnings)
        tally.events_filtered += batch.tally.events_filtered
        tally.events_redacted += batch.tally.events_redacted
    return {**parse_warning_facts(dict(total)), **tally.facts()}


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
    return _bounds_of(times)


BIGQUERY_LAST = datetime.max.replace(tzinfo=UTC)


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


def bounded_scope(scope: Scope, column: str, bounds: tuple[datetime, datetime] | None) -> Scope:
    """``scope`` limited to the event times of the read (unchanged without any)."""
    return scope if bounds is None else all_of(time_scope(column, *bounds), scope)


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
BIGQUERY_LAST = datetime.max.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def s3_source(stream: StreamConfig) -> S3Source:
    """The stream's S3 source (a TypeError for another source type)."""
    if not isinstance(stream.source, S3Source):
        raise TypeError(f"stream {stream.name} does not read S3")
    return stream.source

"""Reading a Firehose stream's delivery windows: every object delivered in them, decoded.

A window holds the objects *delivered* in it (:mod:`cwl_pipeline.firehose.windows`), whatever
their events' times. The read owns ``source_object IN (<every object of the windows>)``: re-reading
a window after a late object replaces the window's earlier objects with the same rows and adds
the late one; an object deleted from S3 since (lifecycle rules) keeps its rows.

Every stream is read step by step: ``windows_per_replace`` windows per step (one transaction
per table), each decoded chunk by chunk as the load stages it, so a run's memory grows neither
with its range nor with its windows. A stream without routes or error records has one read per
step (:func:`read_firehose_range`). A stream with routes or an error-output prefix has one
:class:`RoutedStep` per step (:func:`read_routed_range`): each object is read and decoded once,
and its events go to the read of their route, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pyarrow as pa

from cwl_pipeline.adapters.s3 import ObjectGone, S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import in_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.event_rules import EventRules
from cwl_pipeline.core.parallel_decode import DecodeInput
from cwl_pipeline.core.schema import TableSchema
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.firehose.error_records import decode_error_object
from cwl_pipeline.firehose.key_layout import KeyLayout, firehose_layout
from cwl_pipeline.firehose.listing import list_periods
from cwl_pipeline.firehose.routes import (
    DEFAULT_ROUTE,
    Destination,
    Router,
    destinations,
    route_batch,
    with_rejects,
)
from cwl_pipeline.firehose.windows import objects_by_window
from cwl_pipeline.load.objects import (
    Decoder,
    ObjectSetRead,
    ParallelDecode,
    ScopeOf,
    bounded_scope,
    fetch_objects,
    read_contents,
    s3_source,
)
from cwl_pipeline.load.tables import LoadScope, range_label
from cwl_pipeline.s3_objects.batch import ObjectBatch, ObjectContent, build_object_batch
from cwl_pipeline.s3_objects.decode import decode_firehose_input, firehose_decode_input
from cwl_pipeline.s3_objects.stored import (
    StoredObject,
    object_set_version,
    object_uri,
    subscription_event_times,
)


def firehose_input(source: S3Source, obj: StoredObject, data: bytes) -> DecodeInput:
    """One object of a Firehose stream, as what the decoders take."""
    return firehose_decode_input(
        data,
        uri=object_uri(source.bucket, obj.key),
        key=obj.key,
        timestamp_ms=to_ms(obj.last_modified),
        record_format=source.record_format,
        log_group=source.log_group,
        log_stream=source.log_stream,
        max_decompressed_bytes=source.max_decompressed_bytes,
    )


def firehose_decoder(source: S3Source) -> Decoder:
    """Decodes one object of a Firehose stream."""

    def decode(obj: StoredObject, data: bytes) -> ObjectContent:
        return decode_firehose_input(firehose_input(source, obj, data))

    return decode


def firehose_parallel_decode(source: S3Source, store: S3ObjectStore, workers: int) -> ParallelDecode:
    """Decodes a Firehose stream's objects with the parallel decoder (as :func:`firehose_decoder`)."""

    def make_input(obj: StoredObject, data: bytes) -> DecodeInput:
        return firehose_input(source, obj, data)

    def unreadable(obj: StoredObject, error: str) -> ObjectContent:
        item = make_input(obj, b"")
        return ObjectContent(
            object_uri(source.bucket, obj.key),
            to_ms(obj.last_modified),
            error=error,
            log_group=item.log_group or "",
            log_stream=item.log_stream or "",
        )

    return ParallelDecode(
        fetch=lambda objects, vanished: fetch_objects(store, source.bucket, objects, vanished),
        make_input=make_input,
        unreadable=unreadable,
        uri=lambda obj: object_uri(source.bucket, obj.key),
        workers=workers,
    )


def read_firehose_windows(
    stream: StreamConfig, store: S3ObjectStore, start: datetime, end: datetime
) -> ObjectSetRead:
    """Read every object whose delivery window lies in ``[start, end)``, as one read (a
    stream without routes or error records)."""
    return next(read_firehose_range(stream, store, start, end, windows_per_read=None))


def is_routed(stream: StreamConfig) -> bool:
    """Whether the stream is read as :class:`RoutedStep` s (it has routes or error records)."""
    return bool(stream.routes) or s3_source(stream).error_template is not None


def read_firehose_range(
    stream: StreamConfig,
    store: S3ObjectStore,
    start: datetime,
    end: datetime,
    *,
    windows_per_read: int | None = -1,
) -> Iterator[ObjectSetRead]:
    """Read the delivery windows of ``[start, end)`` of a stream without routes or error
    records (:func:`read_routed_range` reads the others) in steps of ``windows_per_read``
    windows (default the stream's ``windows_per_replace``; None: one read), each one read and
    one transaction. The listing is made once; objects are decoded as the load stages them."""
    source = s3_source(stream)
    layout = firehose_layout(source.prefix, source.key_template)
    by_window = objects_by_window(
        list_periods(store, source.bucket, layout, start, end), layout, stream.window, start, end
    )
    decode = firehose_decoder(source)
    per_read = stream.windows_per_replace if windows_per_read == -1 else windows_per_read
    steps = _steps(start, end, stream.window, per_read)
    time_column = stream.schema.time_column
    raw = stream.raw_table is not None
    # The decoding workers apply no filter, redaction or raw layer: such streams decode here.
    parallel = (
        None if stream.rules.active or raw else firehose_parallel_decode(source, store, stream.decode_workers)
    )

    def read_objects(objects: Sequence[StoredObject], vanished: list[str]) -> Iterator[ObjectContent]:
        return read_contents(store, source.bucket, objects, decode, vanished)

    scope_of = objects_scope(time_column)

    for step_start, step_end in steps:
        yield ObjectSetRead(
            scope=scope_of([], [], None),
            label=range_label(step_start, step_end),
            events_at_source=0,
            objects={w: objs for w, objs in by_window.items() if step_start <= w < step_end},
            groups=list(_starts(step_start, step_end, stream.window)),
            describe=_delivery_window(stream.window),
            time_column=time_column,
            read_objects=read_objects,
            schema=stream.schema,
            scope_of=scope_of,
            chunk_events=stream.chunk_events,
            parallel=parallel,
            rules=stream.rules,
            raw=raw,
            event_times_of=subscription_event_times,
        )


def _starts(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    cursor = start
    while cursor < end:
        yield cursor
        cursor += step


RoutedChunk = tuple[str, pa.Table, pa.Table, pa.Table | None]
"""A route's name, and rows, rejects and raw rows (None: no raw table) for its tables."""


@dataclass
class RoutedStep:
    """One step of a routed stream (``windows_per_replace`` delivery windows): each object
    read and decoded once, its events split among the routes' reads as the load stages them.

    ``reads`` holds one :class:`ObjectSetRead` per route name ('' for the stream's own
    tables, which also get the rejects of Firehose's error records). They are fed by
    :meth:`chunks`, which yields ``(route, rows, rejects, raw)`` a chunk of at most about
    ``chunk_events`` events at a time; once it has run to its end, every read's scope and
    figures are set. Only the routes in ``only`` (default: every route) are decoded.
    """

    label: str
    reads: dict[str, ObjectSetRead]
    by_window: dict[datetime, list[StoredObject]]
    errors_by_window: dict[datetime, list[StoredObject]]
    read_objects: Callable[[Sequence[StoredObject], list[str]], Iterator[ObjectContent]]
    error_batch: Callable[[StoredObject, list[str]], ObjectBatch | None]
    router: Router
    chunk_events: int
    vanished: list[str] = field(default_factory=list)

    def chunks(self, only: Iterable[str] | None = None) -> Iterator[RoutedChunk]:
        """Each route's chunks, in delivery order within a route."""
        chosen = set(self.reads) if only is None else set(only)
        for window in sorted(set(self.by_window) | set(self.errors_by_window)):
            pending: dict[str, list[ObjectContent]] = {}
            events = 0
            for content in self.read_objects(self.by_window.get(window, []), self.vanished):
                for name, part in self.router.split(content).items():
                    if name in chosen:
                        pending.setdefault(name, []).append(part)
                events += len(content.events) or 1
                if events >= self.chunk_events:
                    yield from self._take(window, pending)
                    events = 0
            yield from self._take(window, pending)
            if DEFAULT_ROUTE in chosen:
                own = self.reads[DEFAULT_ROUTE]
                for obj in self.errors_by_window.get(window, []):
                    batch = self.error_batch(obj, self.vanished)
                    if batch is not None:
                        yield (DEFAULT_ROUTE, *own.take_batch(window, batch))
        for read in self.reads.values():
            read.vanished = self.vanished
            read.finish()

    def _take(self, window: datetime, pending: dict[str, list[ObjectContent]]) -> Iterator[RoutedChunk]:
        for name, contents in pending.items():
            if contents:
                yield (name, *self.reads[name].take(window, contents))
        pending.clear()


def read_routed_range(
    stream: StreamConfig,
    store: S3ObjectStore,
    start: datetime,
    end: datetime,
    *,
    windows_per_read: int | None = -1,
) -> Iterator[RoutedStep]:
    """Read the delivery windows of ``[start, end)`` of a stream with routes or an
    error-output prefix in steps of ``windows_per_read`` windows (default the stream's
    ``windows_per_replace``; None: one step), each a :class:`RoutedStep` (one transaction per
    route). The listings are made once; each object is read once, chunk by chunk."""
    source = s3_source(stream)
    layout = firehose_layout(source.prefix, source.key_template)
    by_window = objects_by_window(
        list_periods(store, source.bucket, layout, start, end), layout, stream.window, start, end
    )
    errors_by_window: dict[datetime, list[StoredObject]] = {}
    error_layout = layout
    if source.error_template is not None:
        error_layout = KeyLayout.parse(source.error_template)
        errors = list_periods(store, source.bucket, error_layout, start, end)
        errors_by_window = objects_by_window(errors, error_layout, stream.window, start, end)
    targets = destinations(stream)
    router = Router(stream.routes)
    decode = firehose_decoder(source)
    raw = stream.raw_table is not None
    per_read = stream.windows_per_replace if windows_per_read == -1 else windows_per_read
    size = stream.chunk_events

    def read_objects(objects: Sequence[StoredObject], vanished: list[str]) -> Iterator[ObjectContent]:
        return read_contents(store, source.bucket, objects, decode, vanished)

    def error_batch(obj: StoredObject, vanished: list[str]) -> ObjectBatch | None:
        return _error_batch(store, source.bucket, error_layout, obj, vanished, stream.schema)

    for step_start, step_end in _steps(start, end, stream.window, per_read):
        windows = list(_starts(step_start, step_end, stream.window))
        step_objects = {w: by_window[w] for w in windows if w in by_window}
        step_errors = {w: errors_by_window[w] for w in windows if w in errors_by_window}
        versions = {
            w: object_set_version(step_objects.get(w, []) + step_errors.get(w, []))
            for w in set(step_objects) | set(step_errors)
        }
        reads = {
            target.name: _route_read(
                target.stream(stream), target, windows, step_objects, versions, stream.rules, raw, size
            )
            for target in targets
        }
        yield RoutedStep(
            label=range_label(step_start, step_end),
            reads=reads,
            by_window=step_objects,
            errors_by_window=step_errors,
            read_objects=read_objects,
            error_batch=error_batch,
            router=router,
            chunk_events=size,
        )


def _steps(
    start: datetime, end: datetime, window: timedelta, per_read: int | None
) -> list[tuple[datetime, datetime]]:
    if per_read is None:
        return [(start, end)]
    return [(s, min(s + window * per_read, end)) for s in _starts(start, end, window * per_read)]


def _route_read(
    stream: StreamConfig,
    target: Destination,
    windows: list[datetime],
    objects: dict[datetime, list[StoredObject]],
    versions: dict[datetime, str],
    rules: EventRules,
    raw: bool,
    size: int,
) -> ObjectSetRead:
    """One route's read of a step, fed by :meth:`RoutedStep.chunks`."""
    time_column = stream.schema.time_column

    scope_of = objects_scope(time_column)

    def build(contents: list[ObjectContent]) -> ObjectBatch:
        return route_batch(contents, target, rules=rules, raw=raw)

    return ObjectSetRead(
        scope=scope_of([], [], None),
        label=range_label(windows[0], windows[-1] + stream.window),
        events_at_source=0,
        objects=objects,
        groups=windows,
        describe=_delivery_window(stream.window),
        time_column=time_column,
        schema=stream.schema,
        scope_of=scope_of,
        chunk_events=size,
        build=build,
        versions=versions,
        event_times_of=subscription_event_times,
    )


def _error_batch(
    store: S3ObjectStore,
    bucket: str,
    layout: KeyLayout,
    obj: StoredObject,
    vanished: list[str],
    schema: TableSchema,
) -> ObjectBatch | None:
    """The rejects of Firehose's error records in one error object (None: it is gone)."""
    uri = object_uri(bucket, obj.key)
    try:
        data = store.read(bucket, obj.key)
    except ObjectGone:
        vanished.append(uri)
        return None
    match = layout.match(obj.key)
    kind = match.values.get("error-output-type") if match else None
    records = decode_error_object(data, uri=uri, timestamp_ms=to_ms(obj.last_modified), error_type=kind)
    empty = replace(build_object_batch([], schema), objects=1, readable=[uri], bytes_read=len(data))
    return with_rejects(empty, records.rejects, records.records)


def objects_scope(time_column: str) -> ScopeOf:
    """The scope of a read of Firehose objects: the rows from its readable objects (the rejects:
    from every object it read), within the event times it read."""

    def scope_of(
        readable: list[str], unreadable: list[str], bounds: tuple[datetime, datetime] | None
    ) -> LoadScope:
        return LoadScope(
            bounded_scope(in_scope("source_object", readable), time_column, bounds),
            bounded_scope(in_scope("source_object", readable + unreadable), "timestamp", bounds),
        )

    return scope_of


def _delivery_window(size: timedelta) -> Callable[[Hashable], dict[str, object]]:
    def describe(start: Hashable) -> dict[str, object]:
        assert isinstance(start, datetime)
        return {"delivery_window_start": start.isoformat(), "delivery_window_end": (start + size).isoformat()}

    return describe

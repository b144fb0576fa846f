"""Reading a Firehose stream's delivery windows: every object delivered in them, decoded.

A window holds the objects *delivered* in it (:mod:`cwl_pipeline.firehose.windows`), whatever
their events' times. The read owns ``source_object IN (<every object of the windows>)``: re-reading
a window after a late object replaces the window's earlier objects with the same rows and adds
the late one; an object deleted from S3 since (lifecycle rules) keeps its rows.

A stream without routes or error records is read step by step (:func:`read_firehose_range`):
``windows_per_replace`` windows per read, each decoded chunk by chunk as the load stages it, so
a run's memory does not grow with its range. A stream with routes or an error-output prefix
reads its range at once (:func:`read_routed_windows`), each object once for every route.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime, timedelta

from cwl_pipeline.adapters.s3 import ObjectGone, S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import in_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.key_layout import KeyLayout, firehose_layout
from cwl_pipeline.core.object_batch import ObjectBatch, ObjectContent
from cwl_pipeline.core.objects import StoredObject, object_set_version, object_uri
from cwl_pipeline.core.parallel_decode import DecodeInput
from cwl_pipeline.core.s3_records import decode_firehose_input, firehose_decode_input
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.firehose.error_records import decode_error_object
from cwl_pipeline.firehose.routes import (
    DEFAULT_ROUTE,
    Router,
    destinations,
    route_batch,
    split_contents,
    with_rejects,
)
from cwl_pipeline.firehose.windows import hour_prefixes, objects_by_window
from cwl_pipeline.load.objects import (
    Decoder,
    ObjectSetRead,
    ParallelDecode,
    bounded_scope,
    chunk_events,
    decode_workers,
    event_time_bounds,
    fetch_objects,
    read_contents,
    records_decoded,
    s3_source,
    stored_copies_scope,
    warning_facts,
)
from cwl_pipeline.load.tables import LoadScope, range_label


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
    """Read every object whose delivery window lies in ``[start, end)``, as one read."""
    if reads_in_steps(stream):
        return next(read_firehose_range(stream, store, start, end, windows_per_read=None))
    return read_routed_windows(stream, store, start, end)[DEFAULT_ROUTE]


def reads_in_steps(stream: StreamConfig) -> bool:
    """Whether the stream is read step by step, chunk by chunk (no routes, no error records)."""
    return not stream.routes and s3_source(stream).error_template is None


def read_firehose_range(
    stream: StreamConfig,
    store: S3ObjectStore,
    start: datetime,
    end: datetime,
    *,
    windows_per_read: int | None = -1,
) -> Iterator[ObjectSetRead]:
    """Read the delivery windows of ``[start, end)`` of a stream without routes or error
    records in steps of ``windows_per_read`` windows (default the stream's
    ``windows_per_replace``; None: one read), each one read and one transaction. The listing is
    made once; objects are decoded as the load stages them."""
    source = s3_source(stream)
    layout = firehose_layout(source.prefix, source.key_template)
    by_window = objects_by_window(
        _listed(store, source.bucket, layout, start, end), layout, stream.window, start, end
    )
    decode = firehose_decoder(source)
    per_read = stream.windows_per_replace if windows_per_read == -1 else windows_per_read
    steps = (
        [(start, end)]
        if per_read is None
        else [
            (s, min(s + stream.window * per_read, end)) for s in _starts(start, end, stream.window * per_read)
        ]
    )
    time_column = stream.schema.time_column
    raw = stream.raw_table is not None
    # The decoding workers apply no filter, redaction or raw layer: such streams decode here.
    parallel = (
        None if stream.rules.active or raw else firehose_parallel_decode(source, store, decode_workers())
    )

    def read_objects(objects: Sequence[StoredObject], vanished: list[str]) -> Iterator[ObjectContent]:
        return read_contents(store, source.bucket, objects, decode, vanished)

    def scope_of(
        readable: list[str], unreadable: list[str], bounds: tuple[datetime, datetime] | None
    ) -> LoadScope:
        return LoadScope(
            bounded_scope(in_scope("source_object", readable), time_column, bounds),
            bounded_scope(in_scope("source_object", readable + unreadable), "timestamp", bounds),
        )

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
            chunk_events=chunk_events(),
            parallel=parallel,
            rules=stream.rules,
            raw=raw,
        )


def _starts(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    cursor = start
    while cursor < end:
        yield cursor
        cursor += step


def read_routed_windows(
    stream: StreamConfig, store: S3ObjectStore, start: datetime, end: datetime
) -> dict[str, ObjectSetRead]:
    """Read every object whose delivery window lies in ``[start, end)`` once, and split its
    events by route (:mod:`cwl_pipeline.firehose.routes`): one read per route name ('' for
    the stream's own tables, which also get the rejects of Firehose's error records)."""
    source = s3_source(stream)
    layout = firehose_layout(source.prefix, source.key_template)
    by_window = objects_by_window(
        _listed(store, source.bucket, layout, start, end), layout, stream.window, start, end
    )
    errors_by_window: dict[datetime, list[StoredObject]] = {}
    error_layout = layout
    if source.error_template is not None:
        error_layout = KeyLayout.parse(source.error_template)
        errors = _listed(store, source.bucket, error_layout, start, end)
        errors_by_window = objects_by_window(errors, error_layout, stream.window, start, end)
    targets = destinations(stream)
    router = Router(stream.routes)
    decode = firehose_decoder(source)
    vanished: list[str] = []
    batches: dict[str, dict[Hashable, ObjectBatch]] = {d.name: {} for d in targets}
    for window in sorted(set(by_window) | set(errors_by_window)):
        contents = read_contents(store, source.bucket, by_window.get(window, []), decode, vanished)
        parts = split_contents(contents, router, batches)
        for target in targets:
            if parts[target.name] or (target.name == DEFAULT_ROUTE and window in errors_by_window):
                batches[target.name][window] = route_batch(
                    parts[target.name], target, rules=stream.rules, raw=stream.raw_table is not None
                )
        if window in errors_by_window:
            batches[DEFAULT_ROUTE][window] = _with_error_records(
                store,
                source.bucket,
                error_layout,
                errors_by_window[window],
                batches[DEFAULT_ROUTE][window],
                vanished,
            )
    versions = {
        w: object_set_version(by_window.get(w, []) + errors_by_window.get(w, []))
        for w in set(by_window) | set(errors_by_window)
    }
    return {
        target.name: _object_set_read(
            target.stream(stream), batches[target.name], versions, start, end, vanished
        )
        for target in targets
    }


def _listed(
    store: S3ObjectStore, bucket: str, layout: KeyLayout, start: datetime, end: datetime
) -> list[StoredObject]:
    """Every object under the key prefixes of the periods overlapping ``[start, end)``."""
    return [obj for prefix in hour_prefixes(layout, start, end) for obj in store.list_objects(bucket, prefix)]


def _with_error_records(
    store: S3ObjectStore,
    bucket: str,
    layout: KeyLayout,
    objects: list[StoredObject],
    batch: ObjectBatch,
    vanished: list[str],
) -> ObjectBatch:
    """``batch`` with the rejects of Firehose's error records in ``objects``."""
    for obj in objects:
        uri = object_uri(bucket, obj.key)
        try:
            data = store.read(bucket, obj.key)
        except ObjectGone:
            vanished.append(uri)
            continue
        match = layout.match(obj.key)
        kind = match.values.get("error-output-type") if match else None
        records = decode_error_object(data, uri=uri, timestamp_ms=to_ms(obj.last_modified), error_type=kind)
        batch = with_rejects(batch, records.rejects, records.records)
        batch.objects += 1
        batch.readable.append(uri)
        batch.bytes_read += len(data)
    return batch


def _object_set_read(
    stream: StreamConfig,
    batches: dict[Hashable, ObjectBatch],
    versions: dict[datetime, str],
    start: datetime,
    end: datetime,
    vanished: list[str],
) -> ObjectSetRead:
    """One route's read of the windows ``[start, end)``."""
    readable = [uri for b in batches.values() for uri in b.readable]
    every = readable + [uri for b in batches.values() for uri in b.unreadable]
    bounds = event_time_bounds(batches, stream.schema.time_column)
    windows: list[Hashable] = []
    cursor = start
    while cursor < end:
        windows.append(cursor)
        cursor += stream.window
    return ObjectSetRead(
        scope=LoadScope(
            bounded_scope(in_scope("source_object", readable), stream.schema.time_column, bounds),
            bounded_scope(in_scope("source_object", every), "timestamp", bounds),
        ),
        label=range_label(start, end),
        stored_scope=stored_copies_scope(batches, stream.schema.time_column),
        events_at_source=records_decoded(batches),
        vanished=vanished,
        batches=batches,
        versions={w: v for w, v in versions.items() if w in batches},
        groups=windows,
        describe=_delivery_window(stream.window),
        time_column=stream.schema.time_column,
        facts=warning_facts(batches),
    )


def _delivery_window(size: timedelta) -> Callable[[Hashable], dict[str, object]]:
    def describe(start: Hashable) -> dict[str, object]:
        assert isinstance(start, datetime)
        return {"delivery_window_start": start.isoformat(), "delivery_window_end": (start + size).isoformat()}

    return describe

"""Reading a Firehose stream's delivery windows: every object delivered in them, decoded.

A window holds the objects *delivered* in it (:mod:`cwl_pipeline.firehose.windows`), whatever
their events' times. The read owns ``source_object IN (<every object of the windows>)``: re-reading
a window after a late object replaces the window's earlier objects with the same rows and adds
the late one; an object deleted from S3 since (lifecycle rules) keeps its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime, timedelta

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import in_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.object_batch import ObjectContent
from cwl_pipeline.core.objects import StoredObject, object_uri
from cwl_pipeline.core.parallel_decode import DecodeInput
from cwl_pipeline.core.s3_records import decode_firehose_object, firehose_decode_input
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.firehose.windows import hour_prefixes, objects_by_window
from cwl_pipeline.load.objects import (
    Decoder,
    ObjectSetRead,
    ParallelDecode,
    bounded_scope,
    chunk_events,
    decode_workers,
    fetch_objects,
    read_contents,
    s3_source,
)
from cwl_pipeline.load.tables import LoadScope, range_label


def firehose_decoder(source: S3Source) -> Decoder:
    """Decodes one object of a Firehose stream."""

    def decode(obj: StoredObject, data: bytes) -> ObjectContent:
        return decode_firehose_object(
            data,
            uri=object_uri(source.bucket, obj.key),
            key=obj.key,
            timestamp_ms=to_ms(obj.last_modified),
            record_format=source.record_format,
            log_group=source.log_group,
            log_stream=source.log_stream,
            max_decompressed_bytes=source.max_decompressed_bytes,
        )

    return decode


def firehose_parallel_decode(source: S3Source, store: S3ObjectStore, workers: int) -> ParallelDecode:
    """Decodes a Firehose stream's objects with the parallel decoder (as :func:`firehose_decoder`)."""

    def make_input(obj: StoredObject, data: bytes) -> DecodeInput:
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
    return next(read_firehose_range(stream, store, start, end, windows_per_read=None))


def read_firehose_range(
    stream: StreamConfig,
    store: S3ObjectStore,
    start: datetime,
    end: datetime,
    *,
    windows_per_read: int | None = -1,
) -> Iterator[ObjectSetRead]:
    """Read the delivery windows of ``[start, end)`` in steps of ``windows_per_read`` windows
    (default the stream's ``windows_per_replace``; None: one read), each one read and one
    transaction. The listing is made once; objects are decoded as the load stages them."""
    source = s3_source(stream)
    listed = [
        obj
        for prefix in hour_prefixes(source.prefix, start, end)
        for obj in store.list_objects(source.bucket, prefix)
    ]
    by_window = objects_by_window(listed, source.prefix, stream.window, start, end)
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
    parallel = firehose_parallel_decode(source, store, decode_workers())

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
        windows: list[Hashable] = []
        cursor = step_start
        while cursor < step_end:
            windows.append(cursor)
            cursor += stream.window
        objects = {w: objs for w, objs in by_window.items() if step_start <= w < step_end}
        yield ObjectSetRead(
            scope=scope_of([], [], None),
            label=range_label(step_start, step_end),
            events_at_source=0,
            objects=objects,
            groups=windows,
            describe=_delivery_window(stream.window),
            time_column=time_column,
            read_objects=read_objects,
            schema=stream.schema,
            scope_of=scope_of,
            chunk_events=chunk_events(),
            parallel=parallel,
        )


def _starts(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    cursor = start
    while cursor < end:
        yield cursor
        cursor += step


def _delivery_window(size: timedelta) -> Callable[[Hashable], dict[str, object]]:
    def describe(start: Hashable) -> dict[str, object]:
        assert isinstance(start, datetime)
        return {"delivery_window_start": start.isoformat(), "delivery_window_end": (start + size).isoformat()}

    return describe

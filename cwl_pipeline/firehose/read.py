"""Reading a Firehose stream's delivery windows: every object delivered in them, decoded.

A window holds the objects *delivered* in it (:mod:`cwl_pipeline.firehose.windows`), whatever
their events' times. The read owns ``source_object IN (<every object of the windows>)``: re-reading
a window after a late object replaces the window's earlier objects with the same rows and adds
the late one; an object deleted from S3 since (lifecycle rules) keeps its rows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime, timedelta

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import in_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.object_batch import ObjectBatch, ObjectContent, build_object_batch
from cwl_pipeline.core.objects import StoredObject, object_set_version, object_uri
from cwl_pipeline.core.s3_records import decode_firehose_object
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.firehose.windows import hour_prefixes, objects_by_window
from cwl_pipeline.load.objects import (
    Decoder,
    ObjectSetRead,
    bounded_scope,
    event_time_bounds,
    read_contents,
    records_decoded,
    s3_source,
    stored_copies_scope,
    warning_facts,
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


def read_firehose_windows(
    stream: StreamConfig, store: S3ObjectStore, start: datetime, end: datetime
) -> ObjectSetRead:
    """Read every object whose delivery window lies in ``[start, end)``."""
    source = s3_source(stream)
    listed = [
        obj
        for prefix in hour_prefixes(source.prefix, start, end)
        for obj in store.list_objects(source.bucket, prefix)
    ]
    by_window = objects_by_window(listed, source.prefix, stream.window, start, end)
    decode = firehose_decoder(source)
    vanished: list[str] = []
    batches: dict[Hashable, ObjectBatch] = {
        window: build_object_batch(
            read_contents(store, source.bucket, objs, decode, vanished),
            stream.schema,
            rules=stream.rules,
            raw=stream.raw_table is not None,
        )
        for window, objs in by_window.items()
    }
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
        versions={w: object_set_version(objs) for w, objs in by_window.items()},
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

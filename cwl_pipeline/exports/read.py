"""Reading one CreateExportTask folder: every export file of the task, decoded.

The read owns the rows whose ``source_object`` starts with the folder's URI; export lines carry
no event id, so ids are derived (:mod:`cwl_pipeline.core.identity`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import prefix_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.exports.folders import folder_prefix, is_export_file, is_write_test
from cwl_pipeline.load.objects import (
    Decoder,
    ObjectSetRead,
    bounded_scope,
    read_contents,
    s3_source,
)
from cwl_pipeline.load.tables import LoadScope
from cwl_pipeline.s3_objects.batch import ObjectContent
from cwl_pipeline.s3_objects.decode import decode_export_object
from cwl_pipeline.s3_objects.stored import StoredObject, object_uri


def export_decoder(source: S3Source) -> Decoder:
    """Decodes one export file of an export stream."""
    assert source.log_group is not None  # the config requires it for exports

    def decode(obj: StoredObject, data: bytes) -> ObjectContent:
        return decode_export_object(
            data,
            uri=object_uri(source.bucket, obj.key),
            key=obj.key,
            prefix=source.prefix,
            timestamp_ms=to_ms(obj.last_modified),
            log_group=source.log_group or "",
            max_decompressed_bytes=source.max_decompressed_bytes,
        )

    return decode


def read_export_folder(stream: StreamConfig, store: S3ObjectStore, folder: str) -> ObjectSetRead:
    """Read every file of one export task folder."""
    source = s3_source(stream)
    base = folder_prefix(source.prefix, folder)
    listed = list(store.list_objects(source.bucket, base))
    objects = sorted((o for o in listed if is_export_file(o.key)), key=lambda o: o.key)
    # CreateExportTask's access check object holds no events: skipped, and said so.
    write_tests = [object_uri(source.bucket, o.key) for o in listed if is_write_test(o.key)]
    folder_uri = object_uri(source.bucket, base)
    time_column = stream.schema.time_column
    decode = export_decoder(source)

    def read_objects(items: Sequence[StoredObject], vanished: list[str]) -> Iterator[ObjectContent]:
        return read_contents(store, source.bucket, items, decode, vanished)

    def scope_of(
        readable: list[str], unreadable: list[str], bounds: tuple[datetime, datetime] | None
    ) -> LoadScope:
        return LoadScope(
            bounded_scope(
                prefix_scope("source_object", folder_uri, excluding=unreadable), time_column, bounds
            ),
            bounded_scope(prefix_scope("source_object", folder_uri), "timestamp", bounds),
        )

    return ObjectSetRead(
        scope=scope_of([], [], None),
        label=f"export_{folder}",
        events_at_source=0,
        objects={folder: objects},
        groups=[folder],
        describe=lambda group: {"export_folder": group},
        facts={"write_test_objects_skipped": write_tests} if write_tests else {},
        read_objects=read_objects,
        schema=stream.schema,
        scope_of=scope_of,
        chunk_events=stream.chunk_events,
        rules=stream.rules,
        raw=stream.raw_table is not None,
        time_column=stream.schema.time_column,
    )

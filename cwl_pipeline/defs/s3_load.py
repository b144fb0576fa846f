"""Loading S3 objects into a stream's tables: read, decode, deduplicate, replace by object.

A load replaces exactly the rows that came from the objects it read, whatever their event
times: the events table is partitioned by event time, and a Firehose object or an export
file holds events of any time. The replacement scopes on ``source_object`` (the object's
``s3://`` URI):

* Firehose window: ``source_object IN (<every object of the window>)``. Re-running a window
  after a late object replaces the window's earlier objects with the same rows and adds the
  late one; an object deleted from S3 since (lifecycle rules) keeps its rows.
* Export task folder: ``source_object`` starting with the folder's URI.

An unreadable object's earlier rows (if it was ever readable) are kept rather than silently
removed: the events scope leaves it out, its ``unreadable_object`` reject is written, and
the run reports ``rows_kept_from_unreadable_objects``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from cwl_pipeline.adapters.bigquery import BigQueryLoader
from cwl_pipeline.adapters.s3 import ObjectGone, S3ObjectStore
from cwl_pipeline.adapters.sql_scopes import in_scope, prefix_scope
from cwl_pipeline.config import S3Source, StreamConfig
from cwl_pipeline.core.export_folders import folder_prefix, is_export_file
from cwl_pipeline.core.firehose_windows import hour_prefixes, objects_by_window
from cwl_pipeline.core.object_batch import ObjectBatch, ObjectContent, build_object_batch, concat_batches
from cwl_pipeline.core.objects import StoredObject, object_set_version, object_uri
from cwl_pipeline.core.s3_records import decode_export_object, decode_firehose_object
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.defs.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.defs.stream_checks import LoadFacts
from cwl_pipeline.defs.stream_tables import (
    LoadScope,
    StreamTables,
    ensure_stream_tables,
    range_label,
    replace_stream_rows,
    rows_in_scope,
)

_READ_AHEAD = 8  # objects fetched concurrently; bounds the bytes held in memory

Decoder = Callable[[StoredObject, bytes], ObjectContent]


@dataclass
class ObjectsLoad:
    """Outcome of one load: a batch per group (a delivery window, or the task folder)."""

    batches: dict[Any, ObjectBatch]
    versions: dict[Any, str]
    scope: LoadScope
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0
    rows_before: int = 0
    rows_kept_from_unreadable: int = 0
    vanished: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        """Objects read."""
        return sum(b.objects for b in self.batches.values())

    def totals(self) -> dict[str, int]:
        """Figures summed over every group."""
        keys = ("events_read", "rows_loaded", "rows_rejected", "duplicates_dropped", "bytes_read")
        out = {k: sum(getattr(b, k) for b in self.batches.values()) for k in keys}
        out["objects_read"] = self.objects
        out["objects_unreadable"] = sum(len(b.unreadable) for b in self.batches.values())
        return out

    def run_metadata(self) -> dict[str, object]:
        """Facts of the run shared by every group it loaded."""
        return {
            "bytes_staged": self.staged_bytes,
            "bigquery_job_ids": ", ".join(self.job_ids) or "none (no objects)",
            "objects_vanished": len(self.vanished),
            "rows_kept_from_unreadable_objects": self.rows_kept_from_unreadable,
        }

    def facts(self) -> LoadFacts:
        """What the load checks need (dropped duplicates are not stored, so not counted)."""
        totals = self.totals()
        return LoadFacts(
            events_read=totals["rows_loaded"] + totals["rows_rejected"],
            rows_loaded=totals["rows_loaded"],
            rows_rejected=totals["rows_rejected"],
            rows_before=self.rows_before,
            scope=self.scope,
            final_sweep=False,
        )


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


def load_firehose_windows(
    log: dg.DagsterLogManager,
    stream: StreamConfig,
    tables: StreamTables,
    aws: AwsResource,
    bigquery: BigQueryWarehouse,
    start: datetime,
    end: datetime,
) -> ObjectsLoad:
    """Load every object whose delivery window lies in ``[start, end)``."""
    source = _s3(stream)
    store = S3ObjectStore(aws.client("s3"))
    listed = [
        obj
        for prefix in hour_prefixes(source.prefix, start, end)
        for obj in store.list_objects(source.bucket, prefix)
    ]
    by_window = objects_by_window(listed, source.prefix, stream.window, start, end)
    decode = firehose_decoder(source)
    vanished: list[str] = []
    batches = {
        window: build_object_batch(read_contents(store, source.bucket, objs, decode, vanished), stream.schema)
        for window, objs in by_window.items()
    }
    readable = [uri for b in batches.values() for uri in b.readable]
    every = readable + [uri for b in batches.values() for uri in b.unreadable]
    load = ObjectsLoad(
        batches=batches,
        versions={w: object_set_version(objs) for w, objs in by_window.items()},
        scope=LoadScope(in_scope("source_object", readable), in_scope("source_object", every)),
        vanished=vanished,
    )
    _replace(log, stream, tables, bigquery, load, range_label(start, end))
    return load


def load_export_folder(
    log: dg.DagsterLogManager,
    stream: StreamConfig,
    tables: StreamTables,
    aws: AwsResource,
    bigquery: BigQueryWarehouse,
    folder: str,
) -> ObjectsLoad:
    """Load every file of one export task folder."""
    source = _s3(stream)
    store = S3ObjectStore(aws.client("s3"))
    base = folder_prefix(source.prefix, folder)
    objects = sorted(
        (o for o in store.list_objects(source.bucket, base) if is_export_file(o.key)), key=lambda o: o.key
    )
    vanished: list[str] = []
    batch = build_object_batch(
        read_contents(store, source.bucket, objects, export_decoder(source), vanished), stream.schema
    )
    folder_uri = object_uri(source.bucket, base)
    load = ObjectsLoad(
        batches={folder: batch} if objects else {},
        versions={folder: object_set_version(objects)},
        scope=LoadScope(
            prefix_scope("source_object", folder_uri, excluding=batch.unreadable),
            prefix_scope("source_object", folder_uri),
        ),
        vanished=vanished,
    )
    _replace(log, stream, tables, bigquery, load, f"export_{folder}")
    return load


def _replace(
    log: dg.DagsterLogManager,
    stream: StreamConfig,
    tables: StreamTables,
    bigquery: BigQueryWarehouse,
    load: ObjectsLoad,
    label: str,
) -> None:
    unreadable = [uri for b in load.batches.values() for uri in b.unreadable]
    for batch in load.batches.values():
        for content_uri in batch.unreadable:
            log.warning(f"{stream.name}: unreadable object {content_uri} (one reject recorded)")
    for uri in load.vanished:
        log.warning(f"{stream.name}: {uri} was deleted after it was listed; its rows are kept")
    with bigquery.loader() as loader:
        ensure_stream_tables(loader, tables)
        if not load.objects:
            # Nothing to read, nothing to replace: rows of objects gone from S3 stay.
            log.info(f"{stream.name}: no objects to load")
            return
        load.rows_before = sum(rows_in_scope(loader, tables, load.scope))
        if unreadable:
            _keep_rows_of_unreadable(log, stream, tables, loader, load, unreadable)
        rows, rejects = concat_batches(list(load.batches.values()))
        result = replace_stream_rows(loader, tables, load.scope, rows, rejects, label)
    load.job_ids, load.staged_bytes = result.job_ids, result.staged_bytes
    totals = load.totals()
    log.info(
        f"{stream.name}: {totals['objects_read']} objects, {totals['events_read']} events read, "
        f"{totals['rows_loaded']} loaded, {totals['rows_rejected']} rejected, "
        f"{totals['duplicates_dropped']} duplicates dropped"
    )


def _keep_rows_of_unreadable(
    log: dg.DagsterLogManager,
    stream: StreamConfig,
    tables: StreamTables,
    loader: BigQueryLoader,
    load: ObjectsLoad,
    unreadable: list[str],
) -> None:
    """Rows stored earlier from objects unreadable now stay; the same events delivered again in
    other objects of their group are then dropped as duplicates."""
    kept = loader.select(
        tables.events_spec.table, ["source_object", "event_id"], in_scope("source_object", unreadable)
    )
    load.rows_kept_from_unreadable = len(kept)
    if not kept:
        return
    log.warning(
        f"{stream.name}: {len(kept)} rows loaded earlier from objects that are unreadable now are kept"
    )
    for group, batch in load.batches.items():
        mine = set(batch.unreadable)
        load.batches[group] = batch.without_event_ids(
            {r["event_id"] for r in kept if r["source_object"] in mine}
        )


def window_figures(
    load: ObjectsLoad, windows: Iterable[datetime], size: timedelta, time_column: str
) -> Mapping[datetime, dict[str, object]]:
    """Per delivery window: the figures of its objects (zeros for a window without any)."""
    out: dict[datetime, dict[str, object]] = {}
    for start in windows:
        batch = load.batches.get(start)
        figures: dict[str, object] = {
            "delivery_window_start": start.isoformat(),
            "delivery_window_end": (start + size).isoformat(),
        }
        figures.update(batch_figures(batch, load.versions.get(start, ""), time_column))
        out[start] = figures
    return out


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


def _s3(stream: StreamConfig) -> S3Source:
    if not isinstance(stream.source, S3Source):
        raise TypeError(f"stream {stream.name} does not read S3")
    return stream.source

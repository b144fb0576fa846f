"""One load's batch built from S3 objects: duplicates dropped, unreadable objects kept as rejects.

The objects of one window (or one export task folder) are decoded one by one. Then:

* events are deduplicated by ``event_id``, keeping the first in delivery order: Firehose
  may deliver the same records twice (its retries), and the same object may be listed twice;
* every other event is normalized to the schema (a row or a reject, see
  :mod:`cwl_pipeline.core.normalize`);
* an object that cannot be decoded at all (truncated gzip, not the expected format) becomes
  one reject with reason ``unreadable_object``, its URI in ``source_object`` and the decoding
  error in ``detail``; the other objects still load.

The stream's rules (:mod:`cwl_pipeline.core.event_rules`) then drop filtered events and redact
the others, before normalization; with ``raw``, every event that remains is also kept as a raw
row (:mod:`cwl_pipeline.core.raw_events`).

Counts reconcile: ``records_decoded = rows_loaded + rows_rejected + duplicates_dropped +
events_filtered``, where an unreadable object counts as one record read and rejected.
``records_decoded`` is counted as the decoders yield events, before anything is dropped or
normalized: the load checks compare it with what BigQuery holds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from cwl_pipeline.core.columns import table_from_columns
from cwl_pipeline.core.event_rules import NO_RULES, EventRules, RuleTally
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.identity import derived_event_id
from cwl_pipeline.core.normalize import REJECTS_SCHEMA, NormalizedBatch, normalize
from cwl_pipeline.core.raw_events import RawCollector
from cwl_pipeline.core.schema import TableSchema

UNREADABLE_OBJECT = "unreadable_object"


@dataclass(frozen=True)
class ObjectContent:
    """The decoding outcome of one object: its events, or the reason it is unreadable.

    ``timestamp_ms`` (the delivery time) dates the reject of an unreadable object;
    ``log_group`` and ``log_stream`` are what the object is known to hold ("" if unknown).
    """

    uri: str
    timestamp_ms: int
    events: Sequence[LogEvent] = ()
    error: str | None = None
    log_group: str = ""
    log_stream: str = ""
    size: int = 0


@dataclass
class ObjectBatch:
    """Rows and rejects of a set of objects, with the figures of the load."""

    batch: NormalizedBatch
    objects: int
    readable: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    duplicates_dropped: int = 0
    bytes_read: int = 0
    records_decoded: int = 0
    tally: RuleTally = field(default_factory=RuleTally)
    raw: pa.Table | None = None  # raw rows of the events kept, when the stream has a raw table

    @property
    def rows_loaded(self) -> int:
        """Rows for the events table."""
        return self.batch.rows_loaded

    @property
    def rows_rejected(self) -> int:
        """Rejects, including one per unreadable object."""
        return self.batch.rows_rejected

    def without_event_ids(self, event_ids: set[str]) -> ObjectBatch:
        """This batch without the events of ``event_ids``, counted as duplicates dropped.

        For events already stored from an earlier delivery that is kept (an object that was
        readable then and is not now): loading them again would store them twice.
        """
        if not event_ids:
            return self
        value_set = pa.array(sorted(event_ids), type=pa.string())
        rows = self.batch.rows_table
        rejects = self.batch.rejects_table
        kept_rows = rows.filter(pc.invert(pc.is_in(rows["event_id"], value_set=value_set)))
        kept_rejects = rejects.filter(pc.invert(pc.is_in(rejects["event_id"], value_set=value_set)))
        raw = self.raw
        if raw is not None:
            raw = raw.filter(pc.invert(pc.is_in(raw["event_id"], value_set=value_set)))
        dropped = rows.num_rows - kept_rows.num_rows + rejects.num_rows - kept_rejects.num_rows
        return replace(
            self,
            batch=NormalizedBatch(
                rows_table=kept_rows,
                rejects_table=kept_rejects,
                parse_warnings=self.batch.parse_warnings,
            ),
            duplicates_dropped=self.duplicates_dropped + dropped,
            raw=raw,
        )

    def metadata(self) -> dict[str, object]:
        """Flat figures for run metadata."""
        return {
            "objects_read": self.objects,
            "objects_unreadable": len(self.unreadable),
            "events_read": self.records_decoded,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "duplicates_dropped": self.duplicates_dropped,
            **self.tally.facts(),
            "bytes_read": self.bytes_read,
            "reject_reasons": self.batch.reject_reasons,
            **({"parse_warnings": self.batch.parse_warnings} if self.batch.parse_warnings else {}),
        }


def build_object_batch(
    contents: Iterable[ObjectContent],
    schema: TableSchema,
    *,
    rules: EventRules = NO_RULES,
    raw: bool = False,
    normalizer: Callable[[Iterable[LogEvent]], NormalizedBatch] | None = None,
) -> ObjectBatch:
    """Deduplicate, apply ``rules``, normalize and add unreadable-object rejects (see the
    module docs); with ``raw``, keep the raw rows of the events normalized. ``normalizer``
    replaces :func:`normalize` to ``schema`` (e.g. every event a reject of some reason).

    ``contents`` must be in delivery order: the first occurrence of an event id is kept. It
    is consumed once, lazily, so objects can be read and decoded one at a time.
    """
    seen: set[str] = set()
    readable: list[str] = []
    unreadable: list[ObjectContent] = []
    dropped = size = decoded = 0

    def unique_events() -> Iterator[LogEvent]:
        nonlocal dropped, size, decoded
        for content in contents:
            size += content.size
            if content.error is not None:
                unreadable.append(content)
                decoded += 1
                continue
            readable.append(content.uri)
            for event in content.events:
                decoded += 1
                if event.event_id in seen:
                    dropped += 1
                    continue
                seen.add(event.event_id)
                yield event

    tally = RuleTally()
    collector = RawCollector() if raw else None
    events = rules.apply(unique_events(), tally)
    events = collector.tee(events) if collector else events
    batch = normalizer(events) if normalizer is not None else normalize(events, schema)
    if unreadable:
        batch = add_rejects(batch, unreadable_rejects(unreadable))
    return ObjectBatch(
        batch=batch,
        objects=len(readable) + len(unreadable),
        readable=readable,
        unreadable=[c.uri for c in unreadable],
        duplicates_dropped=dropped,
        bytes_read=size,
        records_decoded=decoded,
        tally=tally,
        raw=collector.table() if collector else None,
    )


def concat_raw(batches: Sequence[ObjectBatch]) -> pa.Table | None:
    """The raw rows of several batches (None when they keep none)."""
    raws = [b.raw for b in batches if b.raw is not None]
    return pa.concat_tables(raws) if raws else None


def concat_batches(batches: Sequence[ObjectBatch]) -> tuple[pa.Table, pa.Table]:
    """The rows and the rejects of several batches, as two Arrow tables for one load."""
    if not batches:
        raise ValueError("no batches to concatenate")
    rows = pa.concat_tables([b.batch.rows_table for b in batches])
    rejects = pa.concat_tables([b.batch.rejects_table for b in batches])
    return rows, rejects


def unreadable_rejects(contents: Sequence[ObjectContent]) -> pa.Table:
    """One ``unreadable_object`` reject per content (its URI, delivery time and error)."""
    columns: dict[str, list[object]] = {name: [] for name in REJECTS_SCHEMA.names}
    for content in contents:
        columns["event_id"].append(
            derived_event_id(
                content.log_group,
                content.log_stream,
                content.timestamp_ms,
                f"{UNREADABLE_OBJECT} {content.uri}",
            )
        )
        columns["timestamp"].append(content.timestamp_ms)
        columns["log_group"].append(content.log_group)
        columns["log_stream"].append(content.log_stream)
        columns["ingestion_time"].append(None)
        columns["source_object"].append(content.uri)
        columns["reason"].append(UNREADABLE_OBJECT)
        columns["detail"].append(content.error)
        columns["raw_message"].append(None)
    return table_from_columns(columns, REJECTS_SCHEMA)


def add_rejects(batch: NormalizedBatch, extra: pa.Table) -> NormalizedBatch:
    """``batch`` with the rejects ``extra`` after its own."""
    return NormalizedBatch(
        rows_table=batch.rows_table,
        rejects_table=pa.concat_tables([batch.rejects_table, extra]),
        parse_warnings=batch.parse_warnings,
    )

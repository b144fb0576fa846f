"""Routing a Firehose stream's events to tables by log group (no I/O; reads the config's routes).

One delivery stream often carries many log groups (an account-level subscription filter
policy sends every group of the account to it). Each object is read and decoded once; its
events are then split by log group among the stream's routes (:class:`~cwl_pipeline.config.Route`,
first match wins), each with its own tables, schema and parser. Events of no route go to the
stream's own tables: as rows with ``unrouted: load``, or with ``unrouted: reject`` (the
default) as rejects with reason ``unrouted``.

An object that cannot be decoded, or a Firehose error record, names no log group that can be
trusted: it stays with the stream's own tables (the default route).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import pyarrow as pa

from cwl_pipeline.config import Route, StreamConfig
from cwl_pipeline.core.event_rules import NO_RULES, EventRules
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import REJECTS_SCHEMA, NormalizedBatch, normalize
from cwl_pipeline.core.schema import TableSchema
from cwl_pipeline.firehose.error_records import rejects_table
from cwl_pipeline.s3_objects.batch import ObjectBatch, ObjectContent, add_rejects, build_object_batch

DEFAULT_ROUTE = ""
"""Name of the stream's own tables among its routes."""
UNROUTED = "unrouted"
"""Reject reason of an event no route takes (``unrouted: reject``)."""


@dataclass(frozen=True)
class Destination:
    """Where a route's events land: its name ('' for the stream's own), table and schema."""

    name: str
    table: str
    schema: TableSchema
    rejects_all: bool = False  # the default route with ``unrouted: reject``

    def stream(self, stream: StreamConfig) -> StreamConfig:
        """``stream`` as seen by this route's tables (same windows and tuning, its table and schema)."""
        if not self.name:
            return stream
        return stream.model_copy(
            update={
                "table": self.table,
                "schema_": self.schema,
                "routes": (),
                "description": "",
                "raw_table": None,
            }
        )


def destinations(stream: StreamConfig) -> list[Destination]:
    """Every route of ``stream``, then its own tables (the default route)."""
    own = Destination(DEFAULT_ROUTE, stream.table, stream.schema, rejects_all=stream.unrouted == "reject")
    if not stream.routes:
        return [Destination(DEFAULT_ROUTE, stream.table, stream.schema)]
    return [Destination(r.name, r.table, r.schema) for r in stream.routes] + [own]


class Router:
    """Finds the route of a log group (memoized: hundreds of groups, millions of events)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        """``routes`` in priority order."""
        self._routes = tuple(routes)
        self._patterns = [re.compile(r.pattern) if r.pattern is not None else None for r in routes]
        self.route_of = lru_cache(maxsize=65536)(self._route_of)

    def _route_of(self, log_group: str) -> str:
        for route, pattern in zip(self._routes, self._patterns, strict=True):
            if (
                log_group in route.log_groups
                or log_group.startswith(route.log_group_prefixes)
                or (pattern is not None and pattern.fullmatch(log_group))
            ):
                return route.name
        return DEFAULT_ROUTE

    def split(self, content: ObjectContent) -> dict[str, ObjectContent]:
        """The object's events per route name; an unreadable object stays with the default."""
        if content.error is not None or not self._routes:
            return {DEFAULT_ROUTE: content}
        parts: dict[str, list[LogEvent]] = {}
        for event in content.events:
            parts.setdefault(self.route_of(event.log_group or content.log_group), []).append(event)
        split = {name: replace(content, events=events, size=0) for name, events in parts.items()}
        # The object's bytes are counted once, by the route holding its first event.
        first = next(iter(split), DEFAULT_ROUTE)
        split[first] = replace(split.get(first, content), size=content.size)
        return split


def split_contents(
    contents: Iterable[ObjectContent], router: Router, names: Iterable[str]
) -> dict[str, list[ObjectContent]]:
    """Contents per route, each in delivery order; every route in ``names`` gets a list
    (an object with none of a route's events is simply absent from it)."""
    out: dict[str, list[ObjectContent]] = {name: [] for name in names}
    for content in contents:
        for name, part in router.split(content).items():
            out.setdefault(name, []).append(part)
    return out


def unrouted_rejects(events: Iterator[LogEvent] | Iterable[LogEvent]) -> pa.Table:
    """One ``unrouted`` reject per event, with its message as received."""
    columns: dict[str, list[object]] = {name: [] for name in REJECTS_SCHEMA.names}
    for event in events:
        message = event.message
        columns["event_id"].append(event.event_id)
        columns["timestamp"].append(event.timestamp_ms)
        columns["log_group"].append(event.log_group)
        columns["log_stream"].append(event.log_stream)
        columns["ingestion_time"].append(event.ingestion_time_ms)
        columns["source_object"].append(event.source_object)
        columns["reason"].append(UNROUTED)
        columns["detail"].append(f"no route of the stream takes log group {event.log_group}")
        columns["raw_message"].append(
            message if isinstance(message, str) else message.decode("utf-8", "backslashreplace")
        )
    return rejects_table(columns)


def route_batch(
    contents: Sequence[ObjectContent],
    destination: Destination,
    *,
    rules: EventRules = NO_RULES,
    raw: bool = False,
) -> ObjectBatch:
    """The batch of one route: normalized to its schema, or (the default route with
    ``unrouted: reject``) every event an ``unrouted`` reject. Duplicates are dropped and the
    stream's ``rules`` (filters, redaction) applied alike; ``raw`` keeps raw rows of the
    stream's own tables (routes keep none)."""
    if not destination.rejects_all:
        return build_object_batch(contents, destination.schema, rules=rules, raw=raw and not destination.name)
    empty = normalize((), destination.schema)

    def unrouted(events: Iterable[LogEvent]) -> NormalizedBatch:
        return NormalizedBatch(rows_table=empty.rows_table, rejects_table=unrouted_rejects(events))

    return build_object_batch(contents, destination.schema, rules=rules, normalizer=unrouted)


def with_rejects(batch: ObjectBatch, rejects: pa.Table, records: int, dropped: int = 0) -> ObjectBatch:
    """``batch`` with ``rejects`` added (``records`` read, ``dropped`` of them duplicates)."""
    if not records:
        return batch
    return replace(
        batch,
        batch=add_rejects(batch.batch, rejects),
        records_decoded=batch.records_decoded + records,
        duplicates_dropped=batch.duplicates_dropped + dropped,
    )

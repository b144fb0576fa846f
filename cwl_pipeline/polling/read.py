"""The polling source: FilterLogEvents over a range of time windows, read step by step.

A long range (a backfill run of a week) is read in steps of at most ``windows_per_replace``
windows; each step is one :class:`WindowRangeRead` and one transaction, so a run holds one
step's events in memory, not the whole range's.

A step owns the rows of its time range *and* of the log groups it read: rows of a log group
that left the config (or was deleted) are never replaced by an empty read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import pyarrow as pa

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.sql_scopes import all_of, literal_in_scope, time_scope
from cwl_pipeline.config import DEFAULT_CHUNK_EVENTS, StreamConfig
from cwl_pipeline.core.event_rules import NO_RULES, EventRules, RuleTally
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.normalize import NormalizedBatch, normalize, parse_warning_facts
from cwl_pipeline.core.raw_events import RawCollector
from cwl_pipeline.core.schema import TableSchema
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.load.reads import SourceRead
from cwl_pipeline.load.tables import LoadScope, range_label
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, WindowRead
from cwl_pipeline.polling.window_stats import WindowStatsAccumulator


def replace_steps(
    start: datetime, end: datetime, window: timedelta, windows_per_step: int
) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive ranges of at most ``windows_per_step`` windows."""
    step = window * windows_per_step
    cursor = start
    while cursor < end:
        yield cursor, min(cursor + step, end)
        cursor += step


def window_scope(stream: StreamConfig, start: datetime, end: datetime, groups: Iterable[str]) -> LoadScope:
    """Rows of ``[start, end)`` from ``groups``, in the events table (by event time) and the rejects."""
    names = sorted(groups)
    return LoadScope(
        all_of(time_scope(stream.schema.time_column, start, end), literal_in_scope("log_group", names)),
        all_of(time_scope("timestamp", start, end), literal_in_scope("log_group", names)),
    )


@dataclass(kw_only=True)
class WindowRangeRead(SourceRead):
    """One step: every event of the stream's log groups in ``[start, end)``, normalized.

    Either ``batch`` holds the step's rows (read beforehand), or ``source`` reads them when
    the load stages them: ``chunk_events`` events normalized at a time, the figures added up
    chunk by chunk. At the end ``events_at_source`` is the events ``source`` yielded and
    ``bytes_by_window`` their message bytes per window; ``on_read`` then adds the reader's own
    facts (and may count ``events_at_source`` its own way).
    """

    start: datetime
    end: datetime
    window: timedelta
    time_column: str
    bytes_by_window: Counter[datetime]
    batch: NormalizedBatch | None = None
    raw: pa.Table | None = None  # raw rows, when the stream keeps a raw table
    reader: str | None = None  # named in each window's figures when a stream has two readers
    source: Callable[[], Iterator[LogEvent]] | None = None
    schema: TableSchema | None = None
    rules: EventRules = NO_RULES  # applied to ``source``'s events (filters, redaction)
    keep_raw: bool = False  # keep raw rows of ``source``'s events
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    on_read: Callable[[WindowRangeRead], None] | None = None
    _stats: WindowStatsAccumulator | None = None
    _counts: tuple[int, int] = (0, 0)
    _warnings: Counter[str] = field(default_factory=Counter)

    def chunks(self) -> Iterator[tuple[pa.Table, pa.Table, pa.Table | None]]:
        """The step's rows, rejects and raw rows, a chunk at a time when read from ``source``."""
        if self.batch is not None or self.source is None:
            yield (*self.tables(), self.raw)
            return
        if self._stats is not None:
            raise RuntimeError(f"{self.label} was read already")
        assert self.schema is not None
        self._stats = WindowStatsAccumulator(self.time_column, self.window)
        tally = RuleTally()
        bytes_by_window_ms = Counter[int]()
        yielded = [0]
        size_ms = int(self.window.total_seconds() * 1000)

        def counted(events: Iterator[LogEvent]) -> Iterator[LogEvent]:
            # Before the rules: what the source holds, filtered or not.
            for event in events:
                bytes_by_window_ms[event.timestamp_ms - event.timestamp_ms % size_ms] += len(event.message)
                yielded[0] += 1
                yield event

        events = self.rules.apply(counted(self.source()), tally)
        while True:
            chunk = list(islice(events, self.chunk_events))
            if not chunk:
                break
            collector = RawCollector() if self.keep_raw else None
            batch = normalize(collector.tee(chunk) if collector else chunk, self.schema)
            del chunk
            self._stats.add(batch.rows_table, batch.rejects_table)
            rows, rejects = self._counts
            self._counts = (rows + batch.rows_loaded, rejects + batch.rows_rejected)
            self._warnings.update(batch.parse_warnings)
            yield batch.rows_table, batch.rejects_table, collector.table() if collector else None
        self.facts = {**self.facts, **parse_warning_facts(dict(self._warnings)), **tally.facts()}
        self.events_at_source = yielded[0]
        self.bytes_by_window.update(
            {datetime.fromtimestamp(ms / 1000, UTC): size for ms, size in bytes_by_window_ms.items()}
        )
        if self.on_read is not None:
            self.on_read(self)

    def rereadable(self) -> bool:
        """Read from ``source`` chunk by chunk (not held in memory): it can be read again."""
        return self.source is not None and self.batch is None

    def reread(self) -> None:
        """Forget the figures of the pass made: the next :meth:`chunks` reads ``source`` again
        and counts afresh."""
        if not self.rereadable():
            raise RuntimeError(f"{self.label} is held in memory: there is nothing to read again")
        self._stats = None
        self._counts = (0, 0)
        self._warnings = Counter()
        self.bytes_by_window.clear()
        self.events_at_source = 0

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The normalized rows and rejects, all in memory (read now if need be)."""
        if self.batch is None:
            parts = list(self.chunks())
            if self.batch is None:
                empty = normalize([], self.schema) if self.schema is not None else None
                self.batch = NormalizedBatch(
                    rows_table=pa.concat_tables([p[0] for p in parts]) if parts else empty.rows_table,  # type: ignore[union-attr]
                    rejects_table=pa.concat_tables([p[1] for p in parts]) if parts else empty.rejects_table,  # type: ignore[union-attr]
                    parse_warnings=dict(self._warnings),
                )
                raws = [p[2] for p in parts if p[2] is not None]
                self.raw = pa.concat_tables(raws) if raws else None
                self._stats = None
        return self.batch.rows_table, self.batch.rejects_table

    def raw_rows(self) -> pa.Table | None:
        """The raw rows of the events kept (None without a raw table), all in memory."""
        self.tables()
        return self.raw

    @property
    def rows_loaded(self) -> int:
        """Rows for the events table."""
        return self._counts[0] if self._stats is not None else self.tables()[0].num_rows

    @property
    def rows_rejected(self) -> int:
        """Rows for the rejects table."""
        return self._counts[1] if self._stats is not None else self.tables()[1].num_rows

    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """True figures of every window of the step (zeros for a window without events)."""
        starts, cursor = [], self.start
        while cursor < self.end:
            starts.append(cursor)
            cursor += self.window
        accumulated = self._stats
        if accumulated is None:  # read whole: its figures are those of one chunk
            assert self.batch is not None
            accumulated = WindowStatsAccumulator(self.time_column, self.window)
            accumulated.add(self.batch.rows_table, self.batch.rejects_table)
        stats = accumulated.stats(starts, loaded_at, self.bytes_by_window)
        figures = {start: s.as_metadata() for start, s in stats.items()}
        if self.reader:
            for part in figures.values():
                part["reader"] = self.reader
        return figures


def read_windows(
    stream: StreamConfig, reader: CloudWatchLogsReader, start: datetime, end: datetime
) -> Iterator[WindowRangeRead]:
    """Read ``[start, end)`` of ``stream`` in steps of ``windows_per_replace`` windows."""
    groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)
    refuse_beyond_retention(groups, start)
    for step_start, step_end in replace_steps(start, end, stream.window, stream.windows_per_replace):
        yield read_window_range(stream, reader, list(groups), step_start, step_end)


def read_window_range(
    stream: StreamConfig, reader: CloudWatchLogsReader, groups: list[str], start: datetime, end: datetime
) -> WindowRangeRead:
    """Every event of ``groups`` in ``[start, end)``, read, filtered, redacted and normalized
    chunk by chunk as the load stages them (:meth:`WindowRangeRead.chunks`; ``tables()`` reads
    all at once).

    The stream's filter pattern is passed to FilterLogEvents and applied again in-process
    (:mod:`cwl_pipeline.core.event_rules`): what is stored does not depend on what the server
    applied. Events the server filtered are never seen; those filtered here are counted.
    """
    read = WindowRead()
    start_ms, end_ms = to_ms(start), to_ms(end)
    pattern = stream.rules.filter.pattern.strip() or None

    def events() -> Iterator[LogEvent]:
        # A pass counts its own events and groups (a read may pass twice); calls add up.
        read.events, read.bytes, read.groups = 0, 0, []
        for group in groups:
            pages = reader.iter_events(group, start_ms, end_ms, read, filter_pattern=pattern)
            yield from events_from_api(pages, log_group=group)

    def on_read(step: WindowRangeRead) -> None:
        # The events FilterLogEvents returned, counted by the reader: independent of decoding.
        step.events_at_source = read.events
        step.facts = {
            **step.facts,
            "log_groups": list(read.groups),
            "filter_log_events_calls": read.api_calls,
        }

    return stream_read(
        stream, start, end, groups, events, range_label(start, end),
        keep_raw=stream.raw_table is not None, on_read=on_read,
    )  # fmt: skip


def stream_read(
    stream: StreamConfig,
    start: datetime,
    end: datetime,
    groups: Iterable[str],
    source: Callable[[], Iterator[LogEvent]],
    label: str,
    **options: Any,
) -> WindowRangeRead:
    """A read of ``stream``'s ``groups`` in ``[start, end)`` whose events ``source`` yields,
    decoded, ruled and normalized by the stream's schema as the load stages them."""
    return WindowRangeRead(
        scope=window_scope(stream, start, end, groups),
        label=label,
        events_at_source=0,
        start=start,
        end=end,
        window=stream.window,
        time_column=stream.schema.time_column,
        bytes_by_window=Counter(),
        source=source,
        schema=stream.schema,
        rules=stream.rules,
        chunk_events=stream.chunk_events,
        **options,
    )


def refuse_beyond_retention(groups: dict[str, int | None], start: datetime) -> None:
    """Refuse a range older than a group's retention: replacing it would delete rows CloudWatch
    no longer holds."""
    now = datetime.now(UTC)
    for group, days in groups.items():
        if days is not None and start < now - timedelta(days=days):
            raise SourceError(
                f"window starting {start.isoformat()} is older than the {days}-day retention of "
                f"log group {group!r}: reloading it would delete rows CloudWatch no longer holds"
            )

"""The polling source: FilterLogEvents over a range of time windows, read step by step.

A long range (a backfill run of a week) is read in steps of at most ``windows_per_replace``
windows; each step is one :class:`WindowRangeRead` and one transaction, so a run holds one
step's events in memory, not the whole range's.

A step owns the rows of its time range *and* of the log groups it read: rows of a log group
that left the config (or was deleted) are never replaced by an empty read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.sql_scopes import all_of, literal_in_scope, time_scope
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.event_rules import RuleTally
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.normalize import NormalizedBatch, normalize, parse_warning_facts
from cwl_pipeline.core.raw_events import RawCollector
from cwl_pipeline.core.window_stats import per_window_stats
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline.load.reads import SourceRead
from cwl_pipeline.load.tables import LoadScope, range_label
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, WindowRead


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
    """One step: every event of the stream's log groups in ``[start, end)``, normalized."""

    start: datetime
    end: datetime
    window: timedelta
    time_column: str
    batch: NormalizedBatch
    bytes_by_window: Counter[datetime]
    raw: pa.Table | None = None  # raw rows, when the stream keeps a raw table
    reader: str | None = None  # named in each window's figures when a stream has two readers

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The normalized rows and rejects."""
        return self.batch.rows_table, self.batch.rejects_table

    def raw_rows(self) -> pa.Table | None:
        """The raw rows of the events kept (None without a raw table)."""
        return self.raw

    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """True figures of every window of the step (zeros for a window without events)."""
        starts, cursor = [], self.start
        while cursor < self.end:
            starts.append(cursor)
            cursor += self.window
        stats = per_window_stats(
            self.batch.rows,
            self.batch.rejects,
            time_column=self.time_column,
            window_starts=starts,
            size=self.window,
            loaded_at=loaded_at,
            bytes_by_window=self.bytes_by_window,
        )
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
    """Read, filter, redact and normalize every event of ``groups`` in ``[start, end)``.

    The stream's filter pattern is passed to FilterLogEvents and applied again in-process
    (:mod:`cwl_pipeline.core.event_rules`): what is stored does not depend on what the server
    applied. Events the server filtered are never seen; those filtered here are counted.
    """
    read = WindowRead()
    bytes_by_window_ms: Counter[int] = Counter()
    start_ms, end_ms = to_ms(start), to_ms(end)
    size_ms = int(stream.window.total_seconds() * 1000)
    pattern = stream.rules.filter.pattern.strip() or None

    def events() -> Iterator[LogEvent]:
        for group in groups:
            pages = reader.iter_events(group, start_ms, end_ms, read, filter_pattern=pattern)
            for event in events_from_api(pages, log_group=group):
                bytes_by_window_ms[event.timestamp_ms - event.timestamp_ms % size_ms] += len(event.message)
                yield event

    tally = RuleTally()
    collector = RawCollector() if stream.raw_table is not None else None
    kept = stream.rules.apply(events(), tally)
    batch = normalize(collector.tee(kept) if collector else kept, stream.schema)
    return WindowRangeRead(
        scope=window_scope(stream, start, end, groups),
        label=range_label(start, end),
        events_at_source=read.events,
        facts={
            "log_groups": list(read.groups),
            "filter_log_events_calls": read.api_calls,
            **parse_warning_facts(batch.parse_warnings),
            **tally.facts(),
        },
        start=start,
        end=end,
        window=stream.window,
        time_column=stream.schema.time_column,
        batch=batch,
        raw=collector.table() if collector else None,
        bytes_by_window=Counter(
            {datetime.fromtimestamp(ms / 1000, UTC): size for ms, size in bytes_by_window_ms.items()}
        ),
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

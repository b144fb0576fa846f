"""One step of the live path: a polling stream's newest events appended to ``<table>_live``.

Called by the stream's live sensor at each tick (:mod:`cwl_pipeline.polling.live_sensor`);
what to read and append is :mod:`cwl_pipeline.polling.live_plan`. Rows go through the same
decode, rules (filters, redaction) and normalization as the settled load, and are appended
with the Storage Write API (:func:`cwl_pipeline.load.service.load` in ``LIVE`` mode). The work
of one step is bounded: at most ``max_requests`` FilterLogEvents requests (at least one per log
group), each taken from the process's FilterLogEvents budget; a step cut short leaves the rest
to the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.load.service import LoaderFactory, WriteMode, load
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader
from cwl_pipeline.polling.live_plan import LiveState, after_read, event_key, is_new, read_start
from cwl_pipeline.polling.read import WindowRangeRead, stream_read

MAX_REQUESTS_PER_STEP = 10
"""FilterLogEvents requests one step may send (pages of up to 10,000 events or 1 MB each)."""


@dataclass(frozen=True)
class LiveStep:
    """What one step read and appended, and the cursor after it."""

    state: LiveState
    start_ms: int
    events_read: int
    events_new: int
    rows_appended: int
    requests: int
    cut_short: bool
    newest_event_ms: int | None
    newest_ingestion_ms: int | None


def live_floor(stream: StreamConfig, now: datetime) -> datetime:
    """The oldest event time the live path still reads: the window before the one that has not
    settled yet. Older windows had their settled load requested; the live path never replays them."""
    return floor_to_window(now - stream.settle_lag, stream.window) - stream.window


def live_step(
    tables: StreamTables,
    reader: CloudWatchLogsReader,
    loaders: LoaderFactory,
    appender: StreamAppender,
    state: LiveState,
    now: datetime,
    log: logging.Logger,
    *,
    max_requests: int = MAX_REQUESTS_PER_STEP,
    page_events: int | None = None,
    groups: list[str] | None = None,
) -> LiveStep:
    """Read the stream's events from where ``state`` says, append the new ones, return the step.

    ``groups``: the stream's log groups, if the caller resolved them already.

    Raises:
        SourceError: CloudWatch could not be read (nothing was appended).
        DestinationError: the append failed; the caller keeps ``state``, so the next step
            reads and appends the same events again.
    """
    stream = tables.stream
    if groups is None:
        groups = list(reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes))
    now_ms = to_ms(now)
    start_ms = read_start(
        state,
        now_ms,
        lookback_ms=int(stream.live.lookback.total_seconds() * 1000),
        floor_ms=to_ms(live_floor(stream, now)),
        open_start_ms=to_ms(floor_to_window(now, stream.window)),
    )
    pattern = stream.rules.filter.pattern.strip() or None
    read: dict[str, list[dict]] = {}
    requests, stopped_at = 0, None
    for index, group in enumerate(groups):
        share = max(1, (max_requests - requests) // (len(groups) - index))
        events, sent, cut = reader.read_since(
            group, start_ms, max_requests=share, filter_pattern=pattern, page_events=page_events
        )
        requests += sent
        read[group] = events
        if cut:
            last = events[-1]["timestamp"] if events else start_ms
            stopped_at = last if stopped_at is None else min(stopped_at, last)
    every = [e for events in read.values() for e in events]
    new = {
        group: [e for e in events if is_new(state, e["timestamp"], e.get("ingestionTime", now_ms), _key(e))]
        for group, events in read.items()
    }
    new_count = sum(len(v) for v in new.values())
    appended = 0
    if new_count:
        outcome = load(
            [_live_read(stream, groups, new, start_ms, now)],
            tables,
            loaders,
            log,
            stream.name,
            WriteMode.LIVE,
            appender=appender,
        )
        appended = outcome.rows_written
    ingestions = [e["ingestionTime"] for e in every if "ingestionTime" in e]
    return LiveStep(
        state=after_read(
            state,
            start_ms=start_ms,
            read_ms=now_ms,
            stopped_at_ms=stopped_at,
            newest_ingestion_ms=max(ingestions, default=None),
            appended=new_count,
            read=[(_key(e), e.get("ingestionTime", now_ms)) for e in every],
        ),
        start_ms=start_ms,
        events_read=len(every),
        events_new=new_count,
        rows_appended=appended,
        requests=requests,
        cut_short=stopped_at is not None,
        newest_event_ms=max((e["timestamp"] for e in every), default=None),
        newest_ingestion_ms=max(ingestions, default=None),
    )


def _key(event: dict) -> str:
    return event_key(str(event.get("eventId", "")), event["timestamp"])


def _live_read(
    stream: StreamConfig, groups: list[str], events: dict[str, list[dict]], start_ms: int, now: datetime
) -> WindowRangeRead:
    """The new events as one read of the load path (decoded, ruled and normalized as it stages)."""
    start = floor_to_window(datetime.fromtimestamp(start_ms / 1000, UTC), stream.window)
    end = floor_to_window(now, stream.window) + stream.window
    newest = max((e["timestamp"] for v in events.values() for e in v), default=0)
    end = max(end, floor_to_window(datetime.fromtimestamp(newest / 1000, UTC), stream.window) + stream.window)

    def source() -> Iterator[LogEvent]:
        for group, group_events in events.items():
            yield from events_from_api(group_events, log_group=group)

    return stream_read(stream, start, end, groups, source, "live")

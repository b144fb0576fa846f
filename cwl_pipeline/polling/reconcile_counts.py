"""The counts a reconciliation compares, read from CloudWatch and BigQuery (no Dagster).

For each ingestion hour: CloudWatch's ``IncomingLogEvents`` sum over the stream's log groups
(named, and resolved from its prefixes), and the rows the pipeline stored for those groups with
an ``ingestion_time`` in the hour, events table plus rejects table. The verdicts and the heal
plan are :mod:`cwl_pipeline.polling.reconcile_plan`'s.

The stored side is read from the stream's counts table, which every load transaction writes
with its rows (so it says what BigQuery holds) and which holds a few rows an hour: reading it
costs BigQuery's 10 MiB minimum, where counting the events table by ingestion hour reads about
16 days of its partitions (an event's time may be 14 days before its ingestion). Hours before
the counts table existed (the first day after it is added) are counted in the tables
themselves, that once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cwl_pipeline.config import StreamConfig
from cwl_pipeline.load.service import LoaderFactory
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents, count_ingested
from cwl_pipeline.polling.plan import load_passes
from cwl_pipeline.polling.reconcile_plan import (
    HOUR,
    MAX_EVENT_AGE,
    MAX_EVENT_AHEAD,
    Explanation,
    Horizon,
    ceil_to_window,
    hours_to_compare,
)

RETENTION_MARGIN = timedelta(hours=1)
"""Heals stay this far inside a group's retention: the load refuses ranges beyond it."""


def horizon_of(stream: StreamConfig) -> Horizon:
    """The stream's window, settle lag and final sweep horizon."""
    final = load_passes(stream.settle_lag, stream.sweeps)[-1].lag
    return Horizon(window=stream.window, settle_lag=stream.settle_lag, final_sweep=final)


@dataclass(frozen=True)
class Comparison:
    """Counts per ingestion hour: hour → (CloudWatch's, stored)."""

    groups: dict[str, int | None]  # log group → retention in days (None: never expires)
    counts: dict[datetime, tuple[int, int]]


def compare_counts(
    tables: StreamTables,
    reader: CloudWatchLogsReader,
    metrics: IncomingLogEvents,
    loaders: LoaderFactory,
    now: datetime,
    *,
    counted_since: datetime | None = None,
) -> Comparison:
    """CloudWatch's and the stored counts of the hours of the stream's reconciliation lookback
    whose settled loads ran (:func:`cwl_pipeline.polling.reconcile_plan.hours_to_compare`).

    ``counted_since``: from when the counts table records every load (default: its creation
    time, read from BigQuery)."""
    stream = tables.stream
    groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)
    hours = hours_to_compare(now, stream.reconcile.lookback, horizon_of(stream), stream.start)
    if not hours or not groups:
        return Comparison(groups, {})
    start, end = hours[0], hours[-1] + HOUR
    counted = metrics.hourly_counts(groups, start, end)
    stored: dict[datetime, int] = dict.fromkeys(hours, 0)
    with loaders() as loader:
        split = end  # hours from ``split`` on are read from the counts table
        since = counted_since
        if tables.counts is not None and since is None:
            since = loader.created_at(tables.counts.table)
        if tables.counts is not None and since is not None:
            # An hour is wholly in the counts table if it began after the table existed: every
            # row ingested then was loaded later, by a transaction that counted it.
            split = min(max(start, ceil_to_window(since, HOUR)), end)
            recorded = loader.recorded_counts_by_hour(
                tables.counts.table, [tables.events.table, tables.rejects.table], list(groups), split, end
            )
            for hour, count in recorded.items():
                if hour in stored:
                    stored[hour] += count
        for spec in (tables.events, tables.rejects) if split > start else ():
            # Events are partitioned by event time: the event time is bounded by CloudWatch's
            # PutLogEvents limits (14 days back, 2 hours ahead of ingestion) so BigQuery prunes.
            found = loader.counts_by_ingestion_hour(
                spec.table,
                spec.partition_column,
                list(groups),
                start,
                split,
                event_time_before=MAX_EVENT_AGE,
                event_time_after=MAX_EVENT_AHEAD,
            )
            for hour, count in found.items():
                if hour in stored:
                    stored[hour] += count
    return Comparison(groups, {hour: (counted.get(hour, 0), stored[hour]) for hour in hours})


def oldest_readable(groups: dict[str, int | None], now: datetime) -> datetime | None:
    """The oldest event time every group still holds (the shortest retention), with a margin."""
    days = [d for d in groups.values() if d is not None]
    return now - timedelta(days=min(days)) + RETENTION_MARGIN if days else None


def source_probe(
    stream: StreamConfig, reader: CloudWatchLogsReader, groups: dict[str, int | None], now: datetime
) -> Callable[[datetime], Explanation]:
    """What the source holds for an hour beyond the stream's windows: events ingested then with
    event times before the stream's ``start`` (counted with FilterLogEvents), and the groups
    whose retention may have expired events ingested then."""

    def probe(hour: datetime) -> Explanation:
        oldest = hour - MAX_EVENT_AGE
        before_start = count_ingested(
            reader,
            groups,
            event_start=oldest,
            event_end=stream.start,
            ingested_start=hour,
            ingested_end=hour + HOUR,
        )
        expired = tuple(
            sorted(
                group
                for group, days in groups.items()
                if days is not None and now - timedelta(days=days) > oldest
            )
        )
        return Explanation(before_start=sum(before_start.values()), expired_groups=expired)

    return probe

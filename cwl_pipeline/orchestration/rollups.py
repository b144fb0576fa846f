"""Rollups computed inside BigQuery from an events table with the seed columns.

* ``<table>_hourly_actions``: events and distinct sessions per hour, log group and action.
* ``<table>_daily_sessions``: per day and session: first/last seen, events, distinct actions.

Both are time-partitioned (hourly / daily); Dagster's time-window partition mapping ties each
hour or day to the micro-batch windows it covers. Each partition is replaced atomically
(DELETE + INSERT … SELECT in one transaction). An ``AutomationCondition`` asks for the recent
partitions once their period is settled: the hourly rollup just after each hour's last window
settled, the daily one once a day, after the final late-data sweep of the day before; unless a
blocking check of the events table failed. (Not "all passed": the open window is refreshed
every few seconds, so the latest check run is often still in progress when the condition is
evaluated.)

Only what changed is read again: a run launched by the automation first asks the stream's
counts table (a few rows per load transaction, written in that transaction) which of its
partitions received rows since they were last computed (each partition keeps, in
``inputs_version``, how many counts rows its events had when it was computed, read in the same
transaction as the events), and recomputes those only. A partition whose rows
did not change costs one small query, not a read of its hour or day of events. A run launched
by hand recomputes every partition it covers.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.schema import Column
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.tables import STREAM_TAG, events_key, table_metadata, writer_pool

AUTOMATION_CONDITION_TAG = "dagster/from_automation_condition"
"""Tag Dagster's automation puts on the runs it launches."""


def hourly_cron(stream: StreamConfig) -> str:
    """Just after the settled load of each hour's last window (the hour + settle lag + 1 min)."""
    offset = int(stream.settle_lag.total_seconds() // 60) + 1
    return f"{offset % 60} * * * *"


def daily_cron(stream: StreamConfig) -> str:
    """Once a day, just after the final late-data sweep of the day before's last window."""
    offset = int((_last_reload(stream) + stream.settle_lag).total_seconds() // 60) + 1
    return f"{offset % 60} {(offset // 60) % 24} * * *"


def rollup_condition(cron: str, lookback: timedelta) -> dg.AutomationCondition:
    """Refresh the recent partitions once per cron tick, unless a blocking input check failed.

    Every recent partition is refreshed, not only those whose windows changed: Dagster
    evaluates a ``since`` condition only for the partitions still candidates at that point of
    an AND, so "inputs updated since" combined with a rate limit misses updates. Refreshing a
    few recent partitions per window is cheap (one query each, computed inside BigQuery).
    """
    return (
        dg.AutomationCondition.in_latest_time_window(lookback_delta=lookback)
        & dg.AutomationCondition.cron_tick_passed(cron).since_last_handled()
        & ~dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
        ).with_label("no blocking check of the inputs failed")
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"after each settled window ({cron}), the last {lookback}, unless a check failed")


@dataclass(frozen=True)
class Rollup:
    """One rollup table: its columns and the query that computes a time range of it."""

    suffix: str
    description: str
    columns: tuple[Column, ...]
    partitions: Callable[[StreamConfig], dg.TimeWindowPartitionsDefinition]
    lookback: Callable[[StreamConfig], timedelta]  # how far back partitions are refreshed
    select: Callable[[str, str], str]  # (quoted events table id, scope predicate) -> SELECT
    period: timedelta  # one partition
    cron: Callable[[StreamConfig], str]  # when the automation asks for the recent partitions

    def freshness(self, stream: StreamConfig) -> dg.FreshnessPolicy:
        """The stream's freshness windows, plus how much later than a window a partition of
        this rollup is refreshed (the rest of its period; for a day, its final sweep too)."""
        later = self.period - stream.window
        if self.period >= timedelta(days=1):
            later += _last_reload(stream)
        return dg.FreshnessPolicy.time_window(
            fail_window=stream.freshness_fail + later, warn_window=stream.freshness_warn + later
        )


def _last_reload(stream: StreamConfig) -> timedelta:
    return max((stream.settle_lag, *stream.sweeps))


def _hourly_select(events: str, scope: str) -> str:
    return (
        "SELECT TIMESTAMP_TRUNC(`timestamp`, HOUR) AS hour, `log_group`, `action`, "
        "COUNT(*) AS events, COUNT(DISTINCT `session_id`) AS sessions "
        f"FROM {events} WHERE {scope} GROUP BY hour, `log_group`, `action`"
    )


def _daily_select(events: str, scope: str) -> str:
    return (
        "SELECT TIMESTAMP_TRUNC(`timestamp`, DAY) AS day, `session_id`, "
        "MIN(`timestamp`) AS first_seen, MAX(`timestamp`) AS last_seen, COUNT(*) AS events, "
        "COUNT(DISTINCT `action`) AS distinct_actions "
        f"FROM {events} WHERE {scope} GROUP BY day, `session_id`"
    )


ROLLUPS = (
    Rollup(
        suffix="hourly_actions",
        description="Events and distinct sessions per hour, log group and action.",
        columns=(
            Column("hour", "TIMESTAMP", required=True, description="Start of the hour (UTC)"),
            Column("log_group", "STRING", required=True, description="Source log group"),
            Column("action", "STRING", description="message.action"),
            Column("events", "INT64", required=True, description="Events in the hour"),
            Column("sessions", "INT64", required=True, description="Distinct session_id values"),
        ),
        partitions=lambda s: dg.HourlyPartitionsDefinition(
            start_date=s.start.strftime("%Y-%m-%d-%H:%M"), timezone="UTC", end_offset=1
        ),
        # The hours the last late-data sweep still changes (e.g. 04:45 is swept at 11:00).
        lookback=lambda s: _last_reload(s) + timedelta(hours=2),
        select=_hourly_select,
        period=timedelta(hours=1),
        cron=hourly_cron,
    ),
    Rollup(
        suffix="daily_sessions",
        description="Per day and session: first and last seen, events, distinct actions.",
        columns=(
            Column("day", "TIMESTAMP", required=True, description="Start of the day (UTC)"),
            Column("session_id", "INT64", required=True, description="Session id"),
            Column("first_seen", "TIMESTAMP", required=True, description="First event of the day"),
            Column("last_seen", "TIMESTAMP", required=True, description="Last event of the day"),
            Column("events", "INT64", required=True, description="Events of the session that day"),
            Column("distinct_actions", "INT64", required=True, description="Distinct actions"),
        ),
        partitions=lambda s: dg.DailyPartitionsDefinition(
            start_date=s.start.strftime("%Y-%m-%d"), timezone="UTC", end_offset=1
        ),
        lookback=lambda s: _last_reload(s) + timedelta(days=1),
        select=_daily_select,
        period=timedelta(days=1),
        cron=daily_cron,
    ),
)


def has_seed_columns(stream: StreamConfig) -> bool:
    """Rollups need ``timestamp``, ``session_id`` and ``action`` columns as in the seed schema."""
    names = {c.name: c.type for c in stream.schema.columns}
    return (
        stream.schema.time_column == "timestamp"
        and names.get("session_id") == "INT64"
        and names.get("action") == "STRING"
    )


def build_rollups(tables: StreamTables, bq: BigQuerySettings) -> list[dg.AssetsDefinition]:
    """The rollup assets of a stream (none if its schema lacks the seed columns)."""
    if not has_seed_columns(tables.stream):
        return []
    return [_build_rollup(tables, bq, rollup) for rollup in ROLLUPS]


INPUTS_VERSION = Column(
    "inputs_version",
    "INT64",
    description="Rows the counts table held for the partition's events when it was computed",
)


def rollup_spec(stream: StreamConfig, rollup: Rollup) -> TableSpec:
    """The table of ``rollup`` for ``stream``."""
    return TableSpec(
        table=f"{stream.table}_{rollup.suffix}",
        columns=(*rollup.columns, INPUTS_VERSION),
        partition_column=rollup.columns[0].name,
        clustering=tuple(c.name for c in rollup.columns[1:3]),
        description=rollup.description,
    )


@dataclass
class RollupRefresh:
    """What a refresh of a range of rollup partitions did."""

    job_ids: list[str]
    recomputed: list[datetime]  # starts of the partitions recomputed
    unchanged: int  # partitions left as they were: no row of theirs changed since
    rows: int  # rows the range holds afterwards


def refresh_rollup(
    loader: BigQueryLoader,
    stream: StreamConfig,
    rollup: Rollup,
    start: datetime,
    end: datetime,
    *,
    only_changed: bool = True,
) -> RollupRefresh:
    """Recompute the partitions of ``rollup`` in ``[start, end)`` from the events table; with
    ``only_changed``, only those whose events changed since they were computed (as the
    stream's counts table tells)."""
    spec = rollup_spec(stream, rollup)
    loader.ensure_dataset()
    loader.ensure_table(spec)
    partitions = []
    cursor = start
    while cursor < end:
        partitions.append(cursor)
        cursor += rollup.period
    counts = StreamTables.of(stream).counts
    if only_changed and counts is not None:
        changed = set(
            loader.changed_since_computed(
                counts.table, stream.table, spec.table, spec.partition_column, rollup.period, start, end
            )
        )
        todo = [p for p in partitions if p in changed]
    else:
        todo = partitions
    # Script SQL: the bounds are typed TIMESTAMP literals, the table id is validated.
    source = loader.table_sql(stream.table)
    job_ids = []
    for first in todo:
        last = first + rollup.period
        select = rollup.select(source, time_scope("timestamp", first, last).in_script())
        # The version of the inputs, read in the same transaction as the events themselves.
        version = (
            loader.counts_version_sql(counts.table, stream.table, first, last)
            if counts is not None
            else "CAST(NULL AS INT64)"
        )
        result = loader.replace_from_query(
            spec,
            f"SELECT *, {version} AS inputs_version FROM ({select})",
            time_scope(spec.partition_column, first, last),
        )
        job_ids += result.job_ids
    rows = loader.count(spec.table, time_scope(spec.partition_column, start, end))
    return RollupRefresh(job_ids, todo, len(partitions) - len(todo), rows)


def _build_rollup(tables: StreamTables, bq: BigQuerySettings, rollup: Rollup) -> dg.AssetsDefinition:
    stream = tables.stream
    spec = rollup_spec(stream, rollup)
    table = spec.table

    @dg.asset(
        key=tables.project.asset_key(dg.AssetKey([*tables.stream.asset_key_prefix, table])),
        deps=[
            dg.AssetDep(
                events_key(tables),
                # The current hour/day maps onto windows that do not exist yet.
                partition_mapping=dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True),
            )
        ],
        partitions_def=rollup.partitions(stream),
        description=f"{rollup.description} From {stream.table}.",
        group_name=stream.name,
        kinds={"bigquery"},
        owners=list(stream.owners) or None,
        tags={STREAM_TAG: stream.name},
        metadata=table_metadata(bq, spec),
        automation_condition=rollup_condition(rollup.cron(stream), rollup.lookback(stream)),
        freshness_policy=rollup.freshness(stream),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=writer_pool(bq, table),
        required_resource_keys={tables.project.bigquery},
    )
    def compute(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        bigquery = tables.project.bigquery_resource(context)
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        # A run the automation launched recomputes what changed; one launched by hand, all.
        automated = context.run.tags.get(AUTOMATION_CONDITION_TAG) == "true"
        with bigquery.loader() as loader:
            refreshed = refresh_rollup(loader, stream, rollup, start, end, only_changed=automated)
        # One result covers every partition of a range run: report the row count under a
        # name that says it is the range's, so no partition shows another's figure.
        count_key = "dagster/row_count" if len(context.partition_keys) == 1 else "range_row_count"
        return dg.MaterializeResult(
            metadata={
                "range_start": start.isoformat(),
                "range_end": end.isoformat(),
                count_key: refreshed.rows,
                "partitions_recomputed": len(refreshed.recomputed),
                "partitions_unchanged": refreshed.unchanged,
                "bigquery_job_ids": ", ".join(refreshed.job_ids) or "none (nothing changed)",
            }
        )

    return compute

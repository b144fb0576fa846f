"""Rollups computed inside BigQuery from an events table with the seed columns.

* ``<table>_hourly_actions``: events and distinct sessions per hour, log group and action.
* ``<table>_daily_sessions``: per day and session: first/last seen, events, distinct actions.

Both are time-partitioned (hourly / daily); Dagster's time-window partition mapping ties each
hour or day to the micro-batch windows it covers. Each partition is replaced atomically
(DELETE + INSERT … SELECT in one transaction). An ``AutomationCondition`` refreshes the recent
partitions just after each window's settled load, unless a blocking check of the events table
failed. (Not "all passed": the open window is refreshed every few seconds, so the latest check
run is often still in progress when the condition is evaluated.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.adapters.bigquery import BigQueryLoader, ReplaceResult, TableSpec
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.schema import Column
from cwl_pipeline.orchestration.resources import BigQueryWarehouse
from cwl_pipeline.orchestration.tables import (
    STREAM_TAG,
    StreamTables,
    freshness_policy,
    table_metadata,
    writer_pool,
)


def rollup_cron(stream: StreamConfig) -> str:
    """A cron that ticks just after each window's settled load (window end + settle lag + 1 min)."""
    offset = int(stream.settle_lag.total_seconds() // 60) + 1
    minutes = stream.window_minutes
    if minutes < 60:
        return f"{offset % minutes}-59/{minutes} * * * *"
    return f"{offset % 60} * * * *"


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


def rollup_spec(stream: StreamConfig, rollup: Rollup) -> TableSpec:
    """The table of ``rollup`` for ``stream``."""
    return TableSpec(
        table=f"{stream.table}_{rollup.suffix}",
        columns=rollup.columns,
        partition_column=rollup.columns[0].name,
        clustering=tuple(c.name for c in rollup.columns[1:3]),
        description=rollup.description,
    )


def refresh_rollup(
    loader: BigQueryLoader, stream: StreamConfig, rollup: Rollup, start: datetime, end: datetime
) -> tuple[ReplaceResult, int]:
    """Recompute the partitions ``[start, end)`` of ``rollup`` from the events table; the
    replacement and the rows the range holds afterwards."""
    spec = rollup_spec(stream, rollup)
    loader.ensure_dataset()
    loader.ensure_table(spec)
    # Script SQL: the bounds are typed TIMESTAMP literals, the table id is validated.
    source = loader.table_sql(stream.table)
    scope = time_scope(spec.partition_column, start, end)
    result = loader.replace_from_query(
        spec, rollup.select(source, time_scope("timestamp", start, end).in_script()), scope
    )
    return result, loader.count(spec.table, scope)


def _build_rollup(tables: StreamTables, bq: BigQuerySettings, rollup: Rollup) -> dg.AssetsDefinition:
    stream = tables.stream
    spec = rollup_spec(stream, rollup)
    table = spec.table

    @dg.asset(
        key=[table],
        deps=[
            dg.AssetDep(
                tables.events_key,
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
        automation_condition=rollup_condition(rollup_cron(stream), rollup.lookback(stream)),
        freshness_policy=freshness_policy(stream),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=writer_pool(bq, table),
    )
    def compute(context: dg.AssetExecutionContext, bigquery: BigQueryWarehouse) -> dg.MaterializeResult:
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        with bigquery.loader() as loader:
            result, rows = refresh_rollup(loader, stream, rollup, start, end)
        # One result covers every partition of a range run: report the row count under a
        # name that says it is the range's, so no partition shows another's figure.
        count_key = "dagster/row_count" if len(context.partition_keys) == 1 else "range_row_count"
        return dg.MaterializeResult(
            metadata={
                "range_start": start.isoformat(),
                "range_end": end.isoformat(),
                count_key: rows,
                "bigquery_job_ids": ", ".join(result.job_ids),
            }
        )

    return compute

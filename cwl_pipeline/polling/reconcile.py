"""Reconciliation of a polling stream with CloudWatch's own count, in Dagster.

* ``matches_cloudwatch_counts``, an asset check on the events table evaluated every
  ``reconcile.interval`` (cron automation condition): per ingestion hour of the last
  ``reconcile.lookback``, CloudWatch's ``IncomingLogEvents`` against the rows and rejects stored.
  It fails on a shortfall past the final sweep that the source does not explain, warns on a
  shortfall still within the sweep horizon and on a surplus. Metadata: totals, a table per
  hour and a text plot.
* ``<stream>_reconcile``, a sensor ticking every ``reconcile.interval``: the same comparison,
  reported as an observation of the events table (its numeric metadata is plotted over time in
  the UI), and heal runs for the hours short past the final sweep. A heal run is a run of the
  stream's own load (same op, same writer pool) over the windows the missing events can belong
  to, tagged ``cwl/load=heal``: it inserts only what is missing. The sensor keeps each hour's
  heal attempts in its cursor and, once every readable window was read again, asks the source
  why the hour is still short (:mod:`cwl_pipeline.polling.reconcile_plan`). It spends FilterLogEvents
  requests only on that question, never on the comparison itself (one GetMetricData request).

The check reads what the heals found out from the sensor's latest observation.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import dagster as dg

from cwl_pipeline.adapters.errors import DestinationError, SourceError
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.windows import WindowRequest, floor_to_window, partition_key
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.run_requests import run_request
from cwl_pipeline.orchestration.tables import (
    ACTIVE_RUN_STATUSES,
    LOAD_KIND_TAG,
    STREAM_TAG,
    ensure_writer_pools,
    events_key,
    written_keys,
)
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents
from cwl_pipeline.polling.reconcile_counts import (
    compare_counts,
    horizon_of,
    oldest_readable,
    source_probe,
)
from cwl_pipeline.polling.reconcile_plan import (
    HealPlan,
    HealRecord,
    HealRequest,
    HourState,
    HourVerdict,
    classify,
    hours_table,
    plan_heals,
    records_from_json,
    records_to_json,
    text_plot,
    totals,
)

RECONCILE_CHECK = "matches_cloudwatch_counts"
HEAL = "heal"
HEAL_HOUR_TAG = "cwl/heal_hour"
HEAL_ATTEMPT_TAG = "cwl/heal_attempt"
STATE_KEY = "reconciliation_heals"
"""Observation metadata holding the heal records (JSON), read back by the check."""

Clock = Callable[[], datetime]

_OBSERVATIONS_SCANNED = 50


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def reconcile_cron(stream: StreamConfig) -> str:
    """Cron of the stream's reconciliation interval (hourly ones a few minutes past the hour,
    when CloudWatch's count of the hour before is in)."""
    minutes = int(stream.reconcile.interval.total_seconds() // 60)
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return "5 0 * * *" if hours >= 24 else f"5 */{hours} * * *"


def build_reconciliation_check(tables: StreamTables, clock: Clock = utc_now) -> dg.AssetChecksDefinition:
    """The ``matches_cloudwatch_counts`` check of a polling stream's events table.

    ``clock`` tells the check what time it is (tests move it ahead: the local AWS stamps
    ingestion with the real time, and an hour can be judged only hours after it ended).
    """
    stream = tables.stream
    horizon = horizon_of(stream)

    @dg.asset_check(
        asset=events_key(tables),
        name=RECONCILE_CHECK,
        description=(
            f"Per ingestion hour of the last {stream.reconcile.lookback}: CloudWatch's IncomingLogEvents "
            f"for the stream's log groups = rows + rejects stored. Fails on a shortfall past the final "
            f"sweep ({horizon.final_sweep}) the source does not explain; warns within the horizon."
        ),
        automation_condition=dg.AutomationCondition.cron_tick_passed(reconcile_cron(stream)),
        required_resource_keys={tables.project.aws, tables.project.bigquery},
    )
    def matches_cloudwatch_counts(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        aws, bigquery = tables.project.aws_resource(context), tables.project.bigquery_resource(context)
        now = clock()
        comparison = compare_counts(
            tables,
            logs_reader(aws, stream.source_account),
            IncomingLogEvents(aws.client("cloudwatch", stream.source_account)),
            bigquery.loader,
            now,
        )
        records = latest_heal_records(context.instance, events_key(tables))
        verdicts = [
            classify(hour, counted, stored, now, horizon, records.get(hour))
            for hour, (counted, stored) in sorted(comparison.counts.items())
        ]
        return check_result(tables, verdicts, sorted(comparison.groups), records)

    return matches_cloudwatch_counts


def check_result(
    tables: StreamTables,
    verdicts: Sequence[HourVerdict],
    groups: Sequence[str],
    records: dict[datetime, HealRecord],
) -> dg.AssetCheckResult:
    """The check's verdict over the compared hours."""
    sums = totals(verdicts)
    metadata: dict[str, object] = {
        "hours_compared": len(verdicts),
        "log_groups": ", ".join(groups) or "none",
        "cloudwatch_events": sums.cloudwatch,
        "stored_events": sums.stored,
        "difference": sums.difference,
        "shortfall_past_final_sweep": sums.shortfall_past_final_sweep,
        "shortfall_within_horizon": sums.shortfall_within_horizon,
        "shortfall_explained": sums.shortfall_explained,
        "surplus": sums.surplus,
        "hours": dg.MetadataValue.md(hours_table(verdicts) if verdicts else "no hour to compare yet"),
        "plot": dg.MetadataValue.md(text_plot(verdicts)),
    }

    def hours(state: HourState) -> str:
        return ", ".join(f"{v.hour:%Y-%m-%d %H:00}" for v in verdicts if v.state is state)

    short = [v for v in verdicts if v.state is HourState.SHORT]
    if short:
        healing = [v for v in short if (r := records.get(v.hour)) is not None and not r.probed]
        return dg.AssetCheckResult(
            asset_key=events_key(tables),
            check_name=RECONCILE_CHECK,
            passed=False,
            metadata=metadata,
            description=(
                f"{sums.shortfall_past_final_sweep} event(s) CloudWatch accepted are not stored, past the "
                f"final sweep, in {hours(HourState.SHORT)}"
                + (f" ({len(healing)} hour(s) being healed)" if healing else "")
            ),
        )
    warnings = []
    if sums.shortfall_within_horizon:
        warnings.append(
            f"{sums.shortfall_within_horizon} event(s) not stored yet in {hours(HourState.WITHIN_HORIZON)}, "
            "within the sweep horizon"
        )
    if sums.surplus:
        surplus_hours = hours(HourState.SURPLUS)
        warnings.append(f"{sums.surplus} more row(s) stored than CloudWatch counted in {surplus_hours}")
    explained = "; ".join(
        f"{v.hour:%Y-%m-%d %H:00}: {v.note}" for v in verdicts if v.state is HourState.EXPLAINED
    )
    if warnings:
        return dg.AssetCheckResult(
            asset_key=events_key(tables),
            check_name=RECONCILE_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description="; ".join(warnings + ([f"explained: {explained}"] if explained else [])),
        )
    return dg.AssetCheckResult(
        asset_key=events_key(tables),
        check_name=RECONCILE_CHECK,
        passed=True,
        metadata=metadata,
        description=f"explained: {explained}" if explained else None,
    )


def latest_heal_records(instance: dg.DagsterInstance, events_key: dg.AssetKey) -> dict[datetime, HealRecord]:
    """The heal records of the reconciliation sensor's latest observation of ``events_key``."""
    result = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=events_key), limit=_OBSERVATIONS_SCANNED
    )
    for record in result.records:
        observation = record.asset_observation
        if observation is not None and STATE_KEY in observation.metadata:
            return records_from_json(json.loads(str(observation.metadata[STATE_KEY].value)))
    return {}


def heal_run_requests(
    stream: StreamConfig, heal: HealRequest, wall_clock: datetime | None = None
) -> Iterator[dg.RunRequest]:
    """Runs of the stream's load over the heal's windows, at most ``backfill_windows_per_run``
    windows each, tagged ``cwl/load=heal`` (insert what is missing) with the hour and attempt.

    Windows that have not closed by ``wall_clock`` (default: now) are left out: their partitions
    do not exist yet, and their own loads are still to come.
    """
    closed = floor_to_window(wall_clock or utc_now(), stream.window)
    end = min(heal.end, closed)
    step = stream.window * stream.backfill_windows_per_run
    cursor = heal.start
    while cursor < end:
        last = min(cursor + step, end) - stream.window
        key = f"{stream.name}:{HEAL}:{heal.hour:%Y-%m-%dT%H}:attempt-{heal.attempt}:{partition_key(cursor)}"
        yield run_request(
            stream.name,
            WindowRequest(cursor, last, HEAL, key),
            {HEAL_HOUR_TAG: heal.hour.isoformat(), HEAL_ATTEMPT_TAG: str(heal.attempt)},
        )
        cursor = last + stream.window


def reconciliation_observation(tables: StreamTables, plan: HealPlan, now: datetime) -> dg.AssetObservation:
    """The comparison as an observation of the events table: numbers the UI plots over time,
    the table per hour, and the heal records (read back by the check)."""
    sums = totals(plan.verdicts)
    return dg.AssetObservation(
        asset_key=events_key(tables),
        description=f"reconciliation with CloudWatch's IncomingLogEvents at {now:%Y-%m-%d %H:%M} UTC",
        metadata={
            "reconcile_cloudwatch_events": float(sums.cloudwatch),
            "reconcile_stored_events": float(sums.stored),
            "reconcile_difference": float(sums.difference),
            "reconcile_shortfall_past_final_sweep": float(sums.shortfall_past_final_sweep),
            "reconcile_shortfall_within_horizon": float(sums.shortfall_within_horizon),
            "reconcile_surplus": float(sums.surplus),
            "reconcile_hours": dg.MetadataValue.md(
                hours_table(plan.verdicts) if plan.verdicts else "no hour to compare yet"
            ),
            STATE_KEY: dg.MetadataValue.text(json.dumps(records_to_json(plan.records))),
        },
    )


def build_reconcile_sensor(tables: StreamTables, clock: Clock = utc_now) -> dg.SensorDefinition:
    """The sensor that reconciles ``tables.stream`` with CloudWatch and heals short hours.

    ``clock`` as for :func:`build_reconciliation_check`.
    """
    stream = tables.stream
    settings = stream.reconcile
    horizon = horizon_of(stream)
    name = f"{stream.name}_reconcile"

    @dg.sensor(
        name=name,
        description=(
            f"Every {settings.interval}: compares {stream.name}'s stored events per ingestion hour of the "
            f"last {settings.lookback} with CloudWatch's IncomingLogEvents, records the difference as an "
            f"observation of {events_key(tables).to_user_string()}, and re-reads (inserting what is "
            f"missing) the windows of an hour still short after the final sweep, at most "
            f"{settings.max_heal_attempts} times; the tick log says what it healed and why."
        ),
        asset_selection=dg.AssetSelection.assets(*written_keys(tables)),
        minimum_interval_seconds=int(settings.interval.total_seconds()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={tables.project.aws, tables.project.bigquery},
    )
    def reconcile_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        aws, bigquery = tables.project.aws_resource(context), tables.project.bigquery_resource(context)
        now = clock()
        ensure_writer_pools(context, written_keys(tables))
        records = records_from_json(json.loads(context.cursor).get("hours") if context.cursor else None)
        if _heal_running(context.instance, stream.name):
            return dg.SensorResult(
                cursor=context.cursor, skip_reason="a heal run of this stream is queued or running"
            )
        try:
            reader = logs_reader(aws, stream.source_account)
            comparison = compare_counts(
                tables,
                reader,
                IncomingLogEvents(aws.client("cloudwatch", stream.source_account)),
                bigquery.loader,
                now,
            )
            plan = plan_heals(
                counts=comparison.counts,
                records=records,
                now=now,
                horizon=horizon,
                start=stream.start,
                max_attempts=settings.max_heal_attempts,
                oldest_readable=oldest_readable(comparison.groups, now),
                probe=source_probe(stream, reader, comparison.groups, now),
            )
        except (SourceError, DestinationError) as exc:
            context.log.warning(f"{stream.name}: cannot reconcile with CloudWatch now: {exc}")
            return dg.SensorResult(cursor=context.cursor, skip_reason=f"cannot reconcile: {exc}")
        for note in plan.notes:
            getattr(context.log, note.level)(f"{stream.name} {note.text}")
        requests = [request for heal in plan.requests for request in heal_run_requests(stream, heal)]
        sums = totals(plan.verdicts)
        summary = (
            f"{len(plan.verdicts)} hour(s) compared: CloudWatch {sums.cloudwatch}, stored {sums.stored}, "
            f"short past the final sweep {sums.shortfall_past_final_sweep}, within the horizon "
            f"{sums.shortfall_within_horizon}, explained {sums.shortfall_explained}, surplus {sums.surplus}"
        )
        context.log.info(f"{stream.name}: {summary}")
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps({"hours": records_to_json(plan.records)}),
            skip_reason=None if requests else summary,
            asset_events=[reconciliation_observation(tables, plan, now)],
        )

    return reconcile_sensor


def _heal_running(instance: dg.DagsterInstance, stream: str) -> bool:
    return bool(
        instance.get_run_records(
            filters=dg.RunsFilter(
                tags={STREAM_TAG: stream, LOAD_KIND_TAG: HEAL}, statuses=ACTIVE_RUN_STATUSES
            ),
            limit=1,
        )
    )

"""The near-real-time sensor of a CloudWatch polling stream.

Each tick asks :func:`cwl_pipeline.polling.plan.plan_windows` what to load: closed windows
once they settled (as bounded ranges, so an outage is caught up in a few runs without gaps),
and the still-open window again while events arrive (only for a stream with ``live.path:
runs``: with ``live.path: sensor``, the default, the live sensor appends the open window's
events itself and this sensor requests no refresh). Run keys carry the kind of load and a
counter, so an intended re-run is never mistaken for a duplicate request.

A settled load or sweep whose run failed or was cancelled is asked for again
(:mod:`cwl_pipeline.orchestration.owed_runs`): its run key is spent and the plan has moved past it. A
failed refresh is not: the settled load of the same window follows it anyway.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

# The run tags Dagster reads a single-run partition range from (no public constant exists).
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.owed_plan import DEFAULT_RETRY, OwedState, RetryPolicy, partitions_of
from cwl_pipeline.orchestration.owed_runs import (
    OWED_CURSOR_KEY,
    OwedScope,
    owed_observation,
    plan_owed_loads,
    report,
)
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline.orchestration.run_requests import retry_window_request, run_request
from cwl_pipeline.orchestration.tables import (
    ACTIVE_RUN_STATUSES,
    LOAD_KIND_TAG,
    STREAM_TAG,
    ensure_writer_pools,
    events_key,
    written_keys,
)
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.plan import PlanState, load_passes, plan_windows


def build_window_sensor(tables: StreamTables, retry: RetryPolicy = DEFAULT_RETRY) -> dg.SensorDefinition:
    """The sensor that keeps ``tables.stream`` loaded in near real time.

    ``retry`` bounds and spaces the attempts of a failed load (tests shorten its waits).
    """
    stream = tables.stream
    name = f"{stream.name}_windows"
    owed_scope = OwedScope(
        sensor_name=name,
        stream=stream.name,
        events_key=events_key(tables),
        kinds=None,
        excluded_kinds=frozenset({"refresh"}),
        size=stream.window,
        policy=retry,
    )
    refreshes = stream.live.path == "runs"
    interval = max(5, min(30, int(stream.refresh_interval.total_seconds())))
    # Consecutive evaluations can start a fraction of a second less than `interval` apart; without
    # slack the refresh would not be due yet at every other tick, doubling the refresh interval.
    refresh_due_after = max(timedelta(0), stream.refresh_interval - timedelta(seconds=interval / 2))

    @dg.sensor(
        name=name,
        description=(
            f"Loads each {stream.window} window of {stream.name} once it closed plus "
            f"{stream.settle_lag}, sweeps it again for late events after "
            f"{', '.join(str(h) for h in stream.sweeps) or 'no horizon'}"
            + (
                f", and refreshes the open window every {stream.refresh_interval} while events arrive"
                if refreshes
                else f" (the open window is appended by sensor {stream.name}_live)"
            )
            + f". A failed load is asked for "
            f"again, up to {retry.max_attempts} attempts; the tick log lists what is still owed."
        ),
        asset_selection=dg.AssetSelection.assets(*written_keys(tables)),
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={tables.project.aws},
    )
    def window_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        aws = tables.project.aws_resource(context)
        now = datetime.now(UTC)
        ensure_writer_pools(context, written_keys(tables))
        raw = json.loads(context.cursor) if context.cursor else {}
        state = PlanState.from_json(raw)
        owed_before = OwedState.from_json(raw.get(OWED_CURSOR_KEY))
        arriving = refreshes and _events_arriving(context, aws, tables, state, now)
        requests, new_state = plan_windows(
            stream=stream.name,
            now=now,
            state=state,
            size=stream.window,
            passes=load_passes(stream.settle_lag, stream.sweeps),
            refresh_interval=refresh_due_after,
            partitions_start=stream.start,
            max_windows=stream.max_windows_per_run,
            initial_lookback=stream.initial_lookback,
            events_arriving=arriving,
        )
        planned = {p for r in requests for p in partitions_of(r.first_key, r.last_key, stream.window)}
        owed = plan_owed_loads(context.instance, owed_scope, owed_before, now, planned)
        owed_line = report(context.log, owed, owed_scope, now)
        run_requests = [run_request(stream.name, r) for r in requests]
        run_requests += [retry_window_request(stream.name, r) for r in owed.retries]
        idle = "no window due, and no new events in the open window (or its refresh is running)"
        return dg.SensorResult(
            run_requests=run_requests,
            cursor=json.dumps({**new_state.to_json(), OWED_CURSOR_KEY: owed.state.to_json()}),
            skip_reason=None if run_requests else f"{idle}; {owed_line}" if owed_line else idle,
            asset_events=owed_observation(owed, owed_before, owed_scope, now),
        )

    return window_sensor


def _events_arriving(
    context: dg.SensorEvaluationContext,
    aws: AwsResource,
    tables: StreamTables,
    state: PlanState,
    now: datetime,
) -> bool:
    """Whether the open window got events since its last refresh, and no refresh is running."""
    stream = tables.stream
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(
            tags={STREAM_TAG: stream.name, LOAD_KIND_TAG: "refresh"}, statuses=ACTIVE_RUN_STATUSES
        ),
        limit=1,
    )
    if active:
        return False  # the running refresh will pick the new events up, or the next one will
    open_start = floor_to_window(now, stream.window)
    since = state.refreshed_at if state.refreshed_window == open_start else open_start
    since = max(since or open_start, open_start) - timedelta(seconds=0)
    try:
        reader = logs_reader(aws, stream.source_account)
        groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)
        return reader.has_events_since(groups, to_ms(since))
    except SourceError as exc:
        context.log.warning(f"{stream.name}: cannot probe the open window: {exc}")
        return False

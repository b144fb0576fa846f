"""The live sensor of a polling stream (``<stream>_live``): the open window in seconds, with no run.

Every ``live.interval`` (5 s by default; the daemon evaluates a sensor at most about every
5 s) the sensor itself reads the stream's newest events with FilterLogEvents and appends them
to ``<table>_live`` through the Storage Write API (:func:`cwl_pipeline.polling.live_tail.live_step`),
then reports the live table's asset as materialized, with the events appended and the lag.
It launches no run: the cost in Dagster runs of a stream does not depend on how often its
open window is refreshed. The window sensor keeps launching the settled loads, sweeps and
catch-ups, which write the events table exactly once; the ``_recent`` view shows each event
once: the events table's for settled windows, the live table's after them.

The cursor (:class:`cwl_pipeline.polling.live_plan.LiveState`) is stored by Dagster after each
evaluation, so a restarted daemon goes on where the last stored one stopped: events appended by
an evaluation whose cursor was never stored are appended again (the view deduplicates), and
nothing older than the window before the unsettled one is read again.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import dagster as dg

from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.adapters.errors import DestinationError, SourceError
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.source_assets import log_group_spec
from cwl_pipeline.orchestration.tables import STREAM_TAG, asset_key, table_metadata
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, logs_reader
from cwl_pipeline.polling.live_plan import LiveState
from cwl_pipeline.polling.live_tail import MAX_REQUESTS_PER_STEP, live_step

APPEND_ANSWER_SECONDS = 20.0
_APPENDERS: dict[str, StreamAppender | None] = {}
_APPENDERS_LOCK = threading.Lock()
# A stream's log groups are listed (DescribeLogGroups) at most this often, not at every tick:
# a group created under a prefix shows within a minute.
GROUPS_TTL_SECONDS = 60.0
_GROUPS: dict[tuple[object, ...], tuple[float, list[str]]] = {}


def _log_groups(stream: StreamConfig, aws: AwsResource, reader: CloudWatchLogsReader) -> list[str]:
    """The stream's log groups, listed again once :data:`GROUPS_TTL_SECONDS` passed."""
    names, prefixes = stream.source.log_groups, stream.source.log_group_prefixes
    key = (aws.region_name, aws.endpoint_url, aws.role_arn, tuple(names), tuple(prefixes))
    cached = _GROUPS.get(key)
    if cached is not None and time.monotonic() - cached[0] < GROUPS_TTL_SECONDS:
        return cached[1]
    groups = list(reader.resolve_log_groups(names, prefixes))
    _GROUPS[key] = (time.monotonic(), groups)
    return groups


def _appender(bigquery: BigQueryWarehouse) -> StreamAppender | None:
    """The process's appender for ``bigquery`` (one gRPC channel, reused by every tick)."""
    key = bigquery.model_dump_json()
    with _APPENDERS_LOCK:
        if key not in _APPENDERS:
            appender = bigquery.appender()
            if appender is not None:
                # Within the sensor's 60 s: no schema wait (the next tick appends again) and
                # no answer awaited longer than APPEND_ANSWER_SECONDS.
                appender.schema_wait = 0.0
                appender.answer_timeout = APPEND_ANSWER_SECONDS
            _APPENDERS[key] = appender
        return _APPENDERS[key]


def live_asset_spec(tables: StreamTables, bq: BigQuerySettings) -> dg.AssetSpec:
    """The live table as an asset the live sensor reports (no run materializes it)."""
    stream = tables.stream
    return dg.AssetSpec(
        asset_key(tables, tables.live),
        deps=[
            *(log_group_spec(g).key for g in stream.source.log_groups),
            *(log_group_spec(p, is_prefix=True).key for p in stream.source.log_group_prefixes),
        ],
        description=(
            f"{tables.live.description} Appended by sensor {stream.name}_live every "
            f"{stream.live.interval}; query {tables.recent_view} for each event once."
        ),
        metadata={**table_metadata(bq, tables.live), "live_interval": str(stream.live.interval)},
        group_name=stream.name,
        owners=list(stream.owners) or None,
        tags={STREAM_TAG: stream.name},
        kinds={"bigquery"},
    )


def build_live_sensor(
    tables: StreamTables, *, max_requests: int = MAX_REQUESTS_PER_STEP, page_events: int | None = None
) -> dg.SensorDefinition:
    """The sensor appending ``tables.stream``'s newest events to its live table.

    ``max_requests`` bounds the FilterLogEvents requests of one evaluation; ``page_events`` is
    their page size (tests use small pages to cut a step short).
    """
    stream: StreamConfig = tables.stream
    live_key = asset_key(tables, tables.live)
    interval = int(stream.live.interval.total_seconds())
    # The daemon's sensor loop starts every 5 s and evaluates a sensor whose minimum interval has
    # passed since its previous tick began. With exactly `interval`, a loop that starts a
    # fraction of a second early skips the tick, doubling the gap; one second of slack keeps
    # the cadence (ticks are still never closer than the 5 s loop).
    min_interval = max(1, interval - 1)

    @dg.sensor(
        name=f"{stream.name}_live",
        description=(
            f"Every {stream.live.interval}, appends {stream.name}'s new events to "
            f"{tables.live.table} (re-reading {stream.live.lookback} of event time for late "
            f"ones) and reports them on the live table's asset. Launches no run."
        ),
        minimum_interval_seconds=min_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={tables.project.aws, tables.project.bigquery},
    )
    def live_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        aws, bigquery = tables.project.aws_resource(context), tables.project.bigquery_resource(context)
        began, cpu = time.monotonic(), time.thread_time()
        now = datetime.now(UTC)
        state = LiveState.from_json(json.loads(context.cursor) if context.cursor else None)
        appender = _appender(bigquery)
        if appender is None:
            return dg.SensorResult(
                skip_reason="no Storage Write API endpoint (bigquery.storage_write_endpoint): none appended"
            )
        try:
            reader = logs_reader(aws, stream.source_account)
            step = live_step(
                tables,
                reader,
                bigquery.loader,
                appender,
                state,
                now,
                context.log,
                max_requests=max_requests,
                page_events=page_events,
                groups=_log_groups(stream, aws, reader),
            )
        except (SourceError, DestinationError) as exc:
            # The cursor stays: the next evaluation reads and appends the same events again.
            context.log.warning(f"{stream.name}: live append failed, retried next tick: {exc}")
            return dg.SensorResult(skip_reason=f"live append failed: {exc}")
        now_ms = int(now.timestamp() * 1000)
        metadata: dict[str, object] = {
            "events_appended": step.rows_appended,
            "events_read": step.events_read,
            "filter_log_events_calls": step.requests,
            "read_from": datetime.fromtimestamp(step.start_ms / 1000, UTC).isoformat(),
            "cut_short": step.cut_short,
            "evaluation_seconds": round(time.monotonic() - began, 3),
            "cpu_seconds": round(time.thread_time() - cpu, 3),
        }
        if step.newest_ingestion_ms is not None:
            # How far behind CloudWatch the live table is: now minus the newest event read.
            metadata["lag_seconds"] = round(max(0, now_ms - step.newest_ingestion_ms) / 1000, 1)
            newest = (step.newest_event_ms or 0) / 1000
            metadata["newest_event"] = datetime.fromtimestamp(newest, UTC).isoformat()
        events = []
        if step.rows_appended:
            events.append(dg.AssetMaterialization(asset_key=live_key, metadata=metadata))
        skip = None
        if not events:
            skip = (
                f"no new events since {metadata['read_from']} "
                f"({step.events_read} read, {step.requests} FilterLogEvents calls)"
            )
        return dg.SensorResult(cursor=json.dumps(step.state.to_json()), asset_events=events, skip_reason=skip)

    return live_sensor

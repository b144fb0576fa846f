"""The sensor of a Firehose stream: new objects in S3 → runs of their delivery windows.

Each tick lists the key periods from near its watermark (every 30 minutes: from a day of key
periods before it), never the whole bucket (:mod:`cwl_pipeline.firehose.listing`, whatever the
key layout), finds objects it has not seen (key and ETag), and requests their delivery
windows (:mod:`cwl_pipeline.firehose.windows`). The run key holds a digest of every
object of the requested windows: an object arriving late for a loaded window, or rewritten,
yields a new key and so a re-run; the same objects never yield a second run.

With ``notifications`` (S3 event notifications in an SQS queue), a tick lists only when one
names a new object (deeply for a late one) and at least every ``safety_listing``
(:func:`~cwl_pipeline.firehose.windows.listing_due`); the listing stays the source of truth.

The objects of a window whose run failed or was cancelled are already behind the cursor, so
that window is asked for again (:mod:`cwl_pipeline.orchestration.owed_runs`) until a run loads it.
"""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.adapters.sqs import NotificationQueue, QueueMessage
from cwl_pipeline.config import S3Source
from cwl_pipeline.core.windows import WindowRequest, floor_to_window, parse_partition_key, partition_key
from cwl_pipeline.firehose.key_layout import KeyLayout
from cwl_pipeline.firehose.layout_check import layout_evaluation, outside_layout, stream_layouts
from cwl_pipeline.firehose.listing import list_layout
from cwl_pipeline.firehose.notifications import NotificationError, parse_notification
from cwl_pipeline.firehose.windows import (
    FirehoseCursor,
    Heard,
    heard_objects,
    listing_due,
    listing_start_after,
    plan_firehose_requests,
)
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
    STREAM_TAG,
    ensure_writer_pools,
    events_key,
    written_keys,
)

LOAD_KIND = "objects"


def build_firehose_sensor(
    tables: StreamTables, retry: RetryPolicy = DEFAULT_RETRY, routes: list[StreamTables] | None = None
) -> dg.SensorDefinition:
    """The sensor that loads ``tables.stream``'s Firehose deliveries as they arrive.

    ``retry`` bounds and spaces the attempts of a failed load (tests shorten its waits);
    ``routes`` are the tables of every route of the stream (its own included), all loaded by
    each run it requests.
    """
    stream = tables.stream
    source = stream.source
    assert isinstance(source, S3Source)
    layouts = stream_layouts(source)
    every = routes or [tables]
    keys = [key for t in every for key in written_keys(t)]
    interval = max(5, min(30, int(stream.refresh_interval.total_seconds())))
    name = f"{stream.name}_objects"
    owed_scope = OwedScope(
        sensor_name=name,
        stream=stream.name,
        events_key=events_key(tables),
        kinds=frozenset({LOAD_KIND}),
        size=stream.window,
        policy=retry,
    )

    @dg.sensor(
        name=name,
        description=(
            f"Loads the {stream.window} delivery window of every new object under "
            f"s3://{source.bucket}/{source.prefix}, and re-loads a window when an object arrives late. "
            f"A failed load is asked for again, up to {retry.max_attempts} attempts; the tick log lists "
            "what is still owed."
            + (
                f" Lists when S3 notifications in {source.notifications.queue_url} name new objects, and at "
                f"least every {source.notifications.safety_listing}."
                if source.notifications
                else ""
            )
        ),
        asset_selection=dg.AssetSelection.assets(*keys),
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={tables.project.aws},
    )
    def objects_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        aws = tables.project.aws_resource(context)
        now = datetime.now(UTC)
        ensure_writer_pools(context, keys)
        raw = json.loads(context.cursor) if context.cursor else {}
        cursor = FirehoseCursor.from_json(raw)
        owed_before = OwedState.from_json(raw.get(OWED_CURSOR_KEY))
        begin = max(stream.start, floor_to_window(now - stream.initial_lookback, stream.window))
        queue, messages, heard = _notifications(context, aws, source, layouts, now)
        safety = source.notifications.safety_listing if source.notifications else timedelta(0)
        listing, deep = listing_due(cursor, now, heard, safety)
        store = S3ObjectStore(aws.client("s3"))
        try:
            listed = [
                list(
                    list_layout(
                        store,
                        source.bucket,
                        layout,
                        lambda concrete: listing_start_after(concrete, cursor, now, begin, deep=deep),
                    )
                )
                if listing
                else []
                for layout in layouts
            ]
        except SourceError as exc:
            # The cursor stays as it was; owed loads wait for the next tick that can list. The
            # messages stay in the queue and come back.
            return dg.SensorResult(skip_reason=f"cannot list s3://{source.bucket}/{source.prefix}: {exc}")
        # Error objects are planned like deliveries (their windows are re-run); a key is outside
        # the layout only if neither template matches it.
        error_objects = [o for batch in listed[1:] for o in batch if layouts[0].match(o.key) is None]
        objects = list({o.key: o for o in [*listed[0], *error_objects]}.values())
        plan = plan_firehose_requests(
            objects,
            prefix=layouts[0],
            error_layouts=layouts[1:],
            deep=deep,
            cursor=cursor,
            now=now,
            size=stream.window,
            begin=begin,
            partitions_start=stream.start,
            max_windows=stream.max_windows_per_run,
            busy_windows=busy_windows(context.instance, stream.name, stream.window),
        )
        outside = outside_layout(plan.outside_keys, layouts)
        events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
        if outside:
            context.log.error(
                f"{len(outside)} object(s) are outside the stream's key layout and are not loaded: "
                + ", ".join(outside[:10])
            )
            events.append(layout_evaluation(tables, outside))
        if plan.deferred:
            context.log.info(f"{plan.deferred} new object(s) wait for a running load of their window")
        requests = [
            run_request(
                stream.name,
                WindowRequest(
                    r.first,
                    r.last,
                    LOAD_KIND,
                    f"{stream.name}:{LOAD_KIND}:{partition_key(r.first)}..{partition_key(r.last)}:{r.version}",
                ),
            )
            for r in plan.ranges
        ]
        planned = {
            p
            for r in plan.ranges
            for p in partitions_of(partition_key(r.first), partition_key(r.last), stream.window)
        }
        owed = plan_owed_loads(context.instance, owed_scope, owed_before, now, planned)
        owed_line = report(context.log, owed, owed_scope, now)
        requests += [retry_window_request(stream.name, r) for r in owed.retries]
        new_cursor = replace(plan.cursor, listed_at=now) if listing else plan.cursor
        if queue is not None and messages:
            # The listing (or the next one, at most safety_listing away) covers what they named.
            _delete(context, queue, messages)
        quiet = "no new objects" if listing else "no notification, no listing due"
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps({**new_cursor.to_json(), OWED_CURSOR_KEY: owed.state.to_json()}),
            skip_reason=None if requests else f"{quiet}; {owed_line}" if owed_line else quiet,
            asset_events=[*owed_observation(owed, owed_before, owed_scope, now), *events],
        )

    return objects_sensor


def _notifications(
    context: dg.SensorEvaluationContext,
    aws: AwsResource,
    source: S3Source,
    layouts: list[KeyLayout],
    now: datetime,
) -> tuple[NotificationQueue | None, list[QueueMessage], Heard | None]:
    """This tick's S3 event notifications (no queue: None, and every tick lists)."""
    if source.notifications is None:
        return None, [], None
    queue = NotificationQueue(aws.client("sqs"), source.notifications.queue_url)
    try:
        messages = queue.receive()
    except SourceError as exc:
        context.log.warning(f"cannot receive S3 notifications, listing instead: {exc}")
        return None, [], None
    events = []
    for message in messages:
        try:
            events += parse_notification(message.body)
        except NotificationError as exc:
            context.log.warning(
                f"SQS message {message.message_id} on {queue.queue_url} is no S3 event notification "
                f"({exc}); deleted"
            )
    heard = heard_objects(events, source.bucket, layouts, now)
    if heard.keys:
        late = " (a late one: deep listing)" if heard.late else ""
        context.log.info(f"{len(heard.keys)} new object(s) notified{late}: " + ", ".join(heard.keys[:5]))
    if heard.ignored:
        context.log.info(f"{heard.ignored} notification(s) about other buckets, prefixes or events ignored")
    return queue, messages, heard


def _delete(
    context: dg.SensorEvaluationContext, queue: NotificationQueue, messages: list[QueueMessage]
) -> None:
    try:
        failed = queue.delete(messages)
    except SourceError as exc:
        context.log.warning(f"could not delete {len(messages)} notification(s); they come back: {exc}")
        return
    if failed:
        context.log.warning(f"{failed} notification(s) not deleted; they come back (harmless)")


def busy_windows(instance: dg.DagsterInstance, stream: str, size: timedelta) -> set[datetime]:
    """Windows that a queued or running load of ``stream`` covers."""
    busy: set[datetime] = set()
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={STREAM_TAG: stream}, statuses=ACTIVE_RUN_STATUSES)
    )
    for record in records:
        tags = record.dagster_run.tags
        first = tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get(PARTITION_NAME_TAG)
        last = tags.get(ASSET_PARTITION_RANGE_END_TAG) or first
        if not first or not last:
            continue
        try:
            window, end = parse_partition_key(first), parse_partition_key(last)
        except ValueError:
            continue
        while window <= end:
            busy.add(window)
            window += size
    return busy

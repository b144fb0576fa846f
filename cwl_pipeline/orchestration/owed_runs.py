"""What a sensor still owes: its failed or cancelled runs, read from the Dagster instance.

The Dagster side of :mod:`cwl_pipeline.orchestration.owed_plan`: each tick lists the runs the
sensor launched that ended FAILURE or CANCELED since its last scan, reads which of their
partitions a later successful run materialized and which partitions a queued or running run is
loading, and lets :func:`cwl_pipeline.orchestration.owed_plan.plan_owed` decide. The sensor then
adds the retries to its run requests, writes the notes to its tick log, keeps the owed list in
its cursor, and reports a change of the list as an observation of the stream's events table (its
Events tab in the UI).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

# The run tags Dagster itself sets on partition and sensor runs (no public constants exist).
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    MAX_RETRIES_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)

from cwl_pipeline.orchestration.owed_plan import (
    DEFAULT_RETRY,
    FailedRun,
    OwedPlan,
    OwedState,
    Retry,
    RetryPolicy,
    describe_owed,
    partitions_of,
    plan_owed,
    work_of,
)
from cwl_pipeline.orchestration.tables import ACTIVE_RUN_STATUSES, LOAD_KIND_TAG, STREAM_TAG

ATTEMPT_TAG = "cwl/attempt"
RETRY_OF_TAG = "cwl/retry_of"
OWED_CURSOR_KEY = "owed"

_ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_SCAN_LIMIT = 200  # new failed runs read per tick; a longer list is read over the next ticks
_MATERIALIZATIONS_LIMIT = 2000


@dataclass(frozen=True)
class OwedScope:
    """Which runs of a sensor can be owed, and how their partitions are read."""

    sensor_name: str
    stream: str
    events_key: dg.AssetKey
    kinds: frozenset[str] | None  # load kinds retried; None: every kind
    excluded_kinds: frozenset[str] = frozenset()
    size: timedelta | None = None  # window length; None for one partition per load
    policy: RetryPolicy = DEFAULT_RETRY
    scan_limit: int = _SCAN_LIMIT  # new failed runs read per tick


def plan_owed_loads(
    instance: dg.DagsterInstance,
    scope: OwedScope,
    state: OwedState,
    now: datetime,
    requested: Iterable[str] = (),
) -> OwedPlan:
    """Scan new failed runs of the sensor and plan what to request again.

    ``requested`` holds the partitions this tick requests anyway: a retry of them waits, as it
    does for a queued or running run of them.
    """
    # The overlap lists the runs in `seen` again: they must not use up the page.
    limit = scope.scan_limit + len(state.seen)
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            tags={SENSOR_NAME_TAG: scope.sensor_name, STREAM_TAG: scope.stream},
            statuses=_ENDED_BADLY,
            updated_after=state.scan_since(now),
        ),
        limit=limit,
        order_by="update_timestamp",
        ascending=True,
    )
    fresh = [r for r in records if r.dagster_run.run_id not in state.seen]
    failures = [f for f in (_failed_run(r, scope) for r in fresh) if f is not None]
    # A full page: resume from its last update time, so nothing beyond it is skipped.
    until = _utc(records[-1].update_timestamp) if len(records) >= limit else now
    scanned = state.after_scan({r.dagster_run.run_id: _utc(r.update_timestamp) for r in records}, until)

    candidates = [load.failed for load in scanned.loads.values()] + failures
    partitions = {p for f in candidates for p in partitions_of(f.first, f.last, scope.size)}
    after = min((f.started_at for f in candidates), default=now)
    loaded = _loaded_since(instance, scope.events_key, partitions, after)
    busy = _busy_partitions(instance, scope.stream, scope.size) | set(requested) if candidates else set()
    return plan_owed(
        state=scanned,
        failures=failures,
        loaded=loaded,
        busy=busy,
        now=now,
        policy=scope.policy,
        size=scope.size,
    )


SENSOR_RETRIES_ONLY = {MAX_RETRIES_TAG: "0"}
"""Tags of every run a sensor requests: the sensor retries it (its owed runs, or a heal), so
Dagster's ``run_retries`` (the instance's default for other runs: backfills, the UI) does not
retry it too. Dagster reads ``dagster/max_retries`` per run ("configure retries using tags",
docs.dagster.io/deployment/run-retries)."""


def retry_tags(retry: Retry) -> dict[str, str]:
    """Tags a retry adds to its run request: the attempt and the run it repeats."""
    return {ATTEMPT_TAG: str(retry.attempt), RETRY_OF_TAG: retry.load.failed.run_id}


def report(log: logging.Logger, plan: OwedPlan, scope: OwedScope, now: datetime) -> str:
    """Write the plan's notes and the owed list to the tick log; returns the owed line."""
    for note in plan.notes:
        getattr(log, note.level)(note.text)
    line = describe_owed(plan.state, scope.policy, scope.size, now)
    if line:
        given_up = any(load.given_up(scope.policy) for load in plan.state.loads.values())
        (log.error if given_up else log.warning)(line)
    return line


def owed_observation(
    plan: OwedPlan, before: OwedState, scope: OwedScope, now: datetime
) -> list[dg.AssetObservation]:
    """An observation of the events table listing what is owed, when the list changed."""
    if not plan.changed_from(before):
        return []
    loads = sorted(plan.state.loads.values(), key=lambda load: load.failed.ended_at)
    rows = [
        f"| {load.failed.kind} | {load.failed.first} | {load.failed.last} | "
        f"{load.failed.attempt}/{scope.policy.max_attempts} | "
        f"{'given up' if load.given_up(scope.policy) else 'requested' if load.requested_at else 'waiting'} | "
        f"{load.failed.run_id} |"
        for load in loads
    ]
    table = "\n".join(
        [
            "| load | first | last | failed attempt | state | last failed run |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    return [
        dg.AssetObservation(
            asset_key=scope.events_key,
            description=describe_owed(plan.state, scope.policy, scope.size, now) or "nothing owed",
            metadata={
                "owed_loads": len(loads),
                "owed_given_up": sum(1 for load in loads if load.given_up(scope.policy)),
                "owed": dg.MetadataValue.md(table if rows else "nothing owed"),
                "owed_by_sensor": scope.sensor_name,
            },
        )
    ]


def _failed_run(record: dg.RunRecord, scope: OwedScope) -> FailedRun | None:
    tags = record.dagster_run.tags
    kind = tags.get(LOAD_KIND_TAG)
    run_key = tags.get(RUN_KEY_TAG)
    first = tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get(PARTITION_NAME_TAG)
    last = tags.get(ASSET_PARTITION_RANGE_END_TAG) or first
    if not kind or not run_key or not first or not last:
        return None  # not a load request of this sensor
    if (scope.kinds is not None and kind not in scope.kinds) or kind in scope.excluded_kinds:
        return None
    try:
        attempt = max(1, int(tags.get(ATTEMPT_TAG, "1")))
    except ValueError:
        attempt = 1
    created = _utc(record.create_timestamp)
    started = datetime.fromtimestamp(record.start_time, UTC) if record.start_time else created
    ended = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else _utc(record.update_timestamp)
    return FailedRun(
        run_id=record.dagster_run.run_id,
        work=work_of(run_key),
        kind=kind,
        first=first,
        last=last,
        attempt=attempt,
        status=record.dagster_run.status.value,
        started_at=started,
        ended_at=ended,
    )


def _loaded_since(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions: Iterable[str], after: datetime
) -> dict[str, datetime]:
    """Partition → start of the latest successful run that materialized it after ``after``."""
    partitions = sorted(partitions)
    if not partitions:
        return {}
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions, after_timestamp=after.timestamp()),
        limit=_MATERIALIZATIONS_LIMIT,
    )
    by_run: dict[str, set[str]] = {}
    for record in result.records:
        if record.partition_key and record.run_id:
            by_run.setdefault(record.run_id, set()).add(record.partition_key)
    if not by_run:
        return {}
    runs = instance.get_run_records(
        filters=dg.RunsFilter(run_ids=list(by_run), statuses=[dg.DagsterRunStatus.SUCCESS])
    )
    loaded: dict[str, datetime] = {}
    for run in runs:
        start = run.start_time or run.create_timestamp.timestamp()
        started = datetime.fromtimestamp(start, UTC)
        for partition in by_run[run.dagster_run.run_id]:
            loaded[partition] = max(loaded.get(partition, started), started)
    return loaded


def _busy_partitions(instance: dg.DagsterInstance, stream: str, size: timedelta | None) -> set[str]:
    """Partitions a queued or running run of ``stream`` is loading."""
    busy: set[str] = set()
    for record in instance.get_run_records(
        filters=dg.RunsFilter(tags={STREAM_TAG: stream}, statuses=ACTIVE_RUN_STATUSES)
    ):
        tags = record.dagster_run.tags
        first = tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get(PARTITION_NAME_TAG)
        last = tags.get(ASSET_PARTITION_RANGE_END_TAG) or first
        if first and last:
            try:
                busy.update(partitions_of(first, last, size))
            except ValueError:
                busy.add(first)
    return busy


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

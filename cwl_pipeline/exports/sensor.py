"""The sensor of an export stream: completed export task folders → one run per folder.

Each tick lists the task folders under the prefix (one delimiter listing), and for every folder
not loaded yet decides whether it is complete (:func:`cwl_pipeline.exports.folders.decide_folder`):
DescribeExportTasks reports its task COMPLETED, or — when no task has the folder's name — its
listing stayed the same for the stream's ``settle_lag`` across two ticks. A complete folder
becomes a dynamic partition and a run.

A folder is done once it is a dynamic partition (added with its run request); if that run
fails or is cancelled, the folder is asked for again (:mod:`cwl_pipeline.orchestration.owed_runs`) until
a run loads it. The cursor keeps only folders still listed that wait for confirmation or were
skipped (failed tasks), so it stays bounded however many folders were loaded.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import S3Source
from cwl_pipeline.exports.folders import (
    ExportCursor,
    decide_folder,
    folder_base,
    folder_prefix,
    is_export_file,
)
from cwl_pipeline.exports.tasks import ExportTasks
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.owed_plan import DEFAULT_RETRY, OwedState, Retry, RetryPolicy
from cwl_pipeline.orchestration.owed_runs import (
    OWED_CURSOR_KEY,
    SENSOR_RETRIES_ONLY,
    OwedScope,
    owed_observation,
    plan_owed_loads,
    report,
    retry_tags,
)
from cwl_pipeline.orchestration.tables import (
    LOAD_KIND_TAG,
    STREAM_TAG,
    ensure_writer_pools,
    events_key,
    written_keys,
)
from cwl_pipeline.s3_objects.stored import object_set_version

LOAD_KIND = "export"
_FOLDERS_PER_TICK = 50  # bounds the listings and DescribeExportTasks calls of one tick


def retry_folder_request(stream: str, retry: Retry) -> dg.RunRequest:
    """The run request of a retry of an export folder's load."""
    return dg.RunRequest(
        run_key=retry.run_key,
        partition_key=retry.load.failed.first,
        tags={STREAM_TAG: stream, LOAD_KIND_TAG: LOAD_KIND, **SENSOR_RETRIES_ONLY, **retry_tags(retry)},
    )


def build_export_sensor(
    tables: StreamTables, partitions_def: dg.DynamicPartitionsDefinition, retry: RetryPolicy = DEFAULT_RETRY
) -> dg.SensorDefinition:
    """The sensor that loads each completed export task folder of ``tables.stream`` once.

    ``retry`` bounds and spaces the attempts of a failed load (tests shorten its waits).
    """
    stream = tables.stream
    source = stream.source
    assert isinstance(source, S3Source)
    name = f"{stream.name}_export_tasks"
    owed_scope = OwedScope(
        sensor_name=name,
        stream=stream.name,
        events_key=events_key(tables),
        kinds=frozenset({LOAD_KIND}),
        size=None,
        policy=retry,
    )

    @dg.sensor(
        name=name,
        description=(
            f"Loads each export task folder under s3://{source.bucket}/{folder_base(source.prefix)} once "
            f"its task is COMPLETED (or its files stayed unchanged for {stream.settle_lag}). A failed "
            f"load is asked for again, up to {retry.max_attempts} attempts; the tick log lists what is "
            "still owed."
        ),
        asset_selection=dg.AssetSelection.assets(*written_keys(tables)),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={tables.project.aws},
    )
    def export_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        aws = tables.project.aws_resource(context)
        now = datetime.now(UTC)
        ensure_writer_pools(context, written_keys(tables))
        raw = json.loads(context.cursor) if context.cursor else {}
        cursor = ExportCursor.from_json(raw)
        owed_before = OwedState.from_json(raw.get(OWED_CURSOR_KEY))
        store = S3ObjectStore(aws.client("s3"))
        tasks = ExportTasks(aws.client("logs"))
        try:
            folders = store.list_folders(source.bucket, folder_base(source.prefix))
        except SourceError as exc:
            return dg.SensorResult(skip_reason=f"cannot list export folders: {exc}")
        cursor = cursor.for_folders(folders)
        loaded = set(context.instance.get_dynamic_partitions(partitions_def.name))
        skipped, pending = dict(cursor.skipped), dict(cursor.pending)
        done = loaded | set(skipped)
        ready: list[tuple[str, str]] = []
        waiting: list[str] = []
        for folder in sorted(f for f in folders if f not in done)[:_FOLDERS_PER_TICK]:
            try:
                objects = [
                    o
                    for o in store.list_objects(source.bucket, folder_prefix(source.prefix, folder))
                    if is_export_file(o.key)
                ]
            except SourceError as exc:
                return dg.SensorResult(skip_reason=f"cannot list export folder {folder}: {exc}")
            if not objects:
                continue
            signature = object_set_version(objects)
            try:
                status = tasks.status(folder)
            except SourceError as exc:
                context.log.warning(
                    f"cannot ask for export task {folder}; relying on a stable listing: {exc}"
                )
                status = None
            decision = decide_folder(
                task_status=status.code if status else None,
                signature=signature,
                pending=pending.get(folder),
                now=now,
                stable_after=stream.settle_lag,
            )
            if decision.action == "load":
                ready.append((folder, signature))
                pending.pop(folder, None)
                context.log.info(f"export folder {folder}: {decision.reason}")
            elif decision.action == "skip":
                skipped[folder] = decision.reason
                pending.pop(folder, None)
                context.log.warning(f"export folder {folder} is not loaded: {decision.reason}")
            else:
                waiting.append(f"{folder} ({decision.reason})")
                if folder not in pending or pending[folder][0] != signature:
                    pending[folder] = (signature, now)
        requests = [
            dg.RunRequest(
                run_key=f"{stream.name}:{LOAD_KIND}:{folder}:{signature}",
                partition_key=folder,
                tags={STREAM_TAG: stream.name, LOAD_KIND_TAG: LOAD_KIND, **SENSOR_RETRIES_ONLY},
            )
            for folder, signature in ready
        ]
        owed = plan_owed_loads(context.instance, owed_scope, owed_before, now, [f for f, _ in ready])
        owed_line = report(context.log, owed, owed_scope, now)
        requests += [retry_folder_request(stream.name, r) for r in owed.retries]
        idle = "waiting: " + ", ".join(waiting) if waiting else "no new folder"
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[partitions_def.build_add_request([f for f, _ in ready])]
            if ready
            else [],
            cursor=json.dumps(
                {
                    **ExportCursor(skipped=skipped, pending=pending).to_json(),
                    OWED_CURSOR_KEY: owed.state.to_json(),
                }
            ),
            skip_reason=None if requests else f"{idle}; {owed_line}" if owed_line else idle,
            asset_events=owed_observation(owed, owed_before, owed_scope, now),
        )

    return export_sensor

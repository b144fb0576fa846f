"""The history reader of a polling stream: old windows read through CreateExportTask.

FilterLogEvents reads a long range slowly (5 requests per second per account and Region).
For a run launched by hand or a backfill, a polling stream with a ``history`` section reads
the windows that ended more than ``history.after`` ago through export tasks instead, in the
same steps of ``windows_per_replace`` windows and with the same scope as
:func:`cwl_pipeline.polling.read.read_windows` (event time range + log groups), so the rows
replace the windows exactly as polled rows would:

* one export task per log group and step, into a destination prefix of its own
  (``<history prefix>/<group slug>-<hash>/<step range>/<nonce>``), so the task's files are
  exactly the objects under that prefix whatever the folder layout under it;
* one active task per account: it waits for a free slot and for ``LimitExceededException``
  (:mod:`cwl_pipeline.exports.tasks`), then for the task's end; a task that does
  not complete fails the run (nothing of the step is replaced);
* the files are decoded like an export stream's (lines in any order, ids derived from the
  event's fields, :mod:`cwl_pipeline.core.identity`), and only the events of the step's time
  range are kept. An unreadable file fails the run too: replacing windows with part of their
  events would lose rows.

Export lines carry no event id and no ingestion time: rows written from an export have a
derived id (``d-…``), ``ingestion_time`` NULL and ``source_object`` the export file's URI;
every other column is what FilterLogEvents would give.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import HistorySource, StreamConfig
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.exports.folders import is_export_file
from cwl_pipeline.exports.plan import Chunk
from cwl_pipeline.exports.tasks import (
    ExportTasks,
    await_task,
    create_when_allowed,
    wait_for_free_slot,
)
from cwl_pipeline.load.objects import read_contents
from cwl_pipeline.load.tables import range_label
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader
from cwl_pipeline.polling.read import WindowRangeRead, refuse_beyond_retention, replace_steps, window_scope
from cwl_pipeline.s3_objects.batch import ObjectContent
from cwl_pipeline.s3_objects.decode import decode_export_object
from cwl_pipeline.s3_objects.stored import StoredObject, object_uri

EXPORT_READER = "export"
API_READER = "filter_log_events"


def history_boundary(stream: StreamConfig, now: datetime) -> datetime | None:
    """Start of the first window too young for the export reader (None: no history reader).

    Windows ending at or before it are read through exports in a run launched by hand.
    """
    if stream.history is None:
        return None
    return floor_to_window(now - stream.history.after, stream.window)


@dataclass(kw_only=True)
class ExportWindowRead(WindowRangeRead):
    """One step of windows read from export files: same scope and rows as a polled step."""

    task_ids: tuple[str, ...] = ()

    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """Per window: the polled figures, plus the reader and its export tasks."""
        figures = super().part_figures(loaded_at)
        for part in figures.values():
            part["export_task_ids"] = ", ".join(self.task_ids)
        return figures


def read_windows_from_export(
    stream: StreamConfig,
    reader: CloudWatchLogsReader,
    tasks: ExportTasks,
    store: S3ObjectStore,
    start: datetime,
    end: datetime,
    *,
    log: Callable[[str], None] = lambda _line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[ExportWindowRead]:
    """Read ``[start, end)`` of ``stream`` through export tasks, step by step (see the module docs).

    Raises:
        SourceError: the range reaches into the last ``history.after`` (data may not be
            exportable yet), a task did not complete, or an export file is unreadable.
    """
    history = stream.history
    if history is None:
        raise ValueError(f"stream {stream.name} has no history section")
    boundary = history_boundary(stream, datetime.now(UTC))
    assert boundary is not None
    if end > boundary:
        raise SourceError(
            f"{stream.name}: windows up to {end.isoformat()} are younger than history.after "
            f"({history.after}); their data may not be exportable yet (AWS: up to 12 hours), "
            "read them with FilterLogEvents"
        )
    groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)  # type: ignore[union-attr]
    refuse_beyond_retention(groups, start)
    for step_start, step_end in replace_steps(start, end, stream.window, stream.windows_per_replace):
        yield _read_step(stream, history, tasks, store, sorted(groups), step_start, step_end, log, sleep)


def _read_step(
    stream: StreamConfig,
    history: HistorySource,
    tasks: ExportTasks,
    store: S3ObjectStore,
    groups: list[str],
    start: datetime,
    end: datetime,
    log: Callable[[str], None],
    sleep: Callable[[float], None],
) -> ExportWindowRead:
    chunk = Chunk(start, end)
    poll = history.poll_interval.total_seconds()
    start_ms, end_ms = to_ms(start), to_ms(end)
    files: list[tuple[str, str, str, list[StoredObject]]] = []
    task_ids: list[str] = []
    for group in groups:
        prefix = task_prefix(history.prefix, group, chunk)
        wait_for_free_slot(tasks, poll, sleep, log)
        task_id = create_when_allowed(
            tasks,
            log_group=group,
            chunk=chunk,
            bucket=history.bucket,
            prefix=prefix,
            poll_interval=poll,
            sleep=sleep,
            on_wait=log,
        )
        log(
            f"{stream.name}: export task {task_id} for {group} {chunk.label()} into s3://{history.bucket}/{prefix}"
        )
        status = await_task(tasks, task_id, poll, sleep, lambda s: log(f"export task {s.task_id}: {s.code}"))
        if status.code != "COMPLETED":
            raise SourceError(
                f"export task {task_id} for {group} {chunk.label()} ended {status.code} "
                f"({status.message or 'no message'}); nothing of {range_label(start, end)} was replaced"
            )
        task_ids.append(task_id)
        objects = sorted(
            (o for o in store.list_objects(history.bucket, prefix + "/") if is_export_file(o.key)),
            key=lambda o: o.key,
        )
        files.append((group, prefix, task_id, objects))
    decoded = Counter[str]()

    def events() -> Iterator[LogEvent]:
        # Read when the load stages the step: an error raised here fails it before anything
        # is replaced.
        for group, prefix, task_id, objects in files:
            vanished: list[str] = []

            def decode(
                obj: StoredObject, data: bytes, group: str = group, prefix: str = prefix
            ) -> ObjectContent:
                return decode_export_object(
                    data,
                    uri=object_uri(history.bucket, obj.key),
                    key=obj.key,
                    prefix=prefix,
                    timestamp_ms=to_ms(obj.last_modified),
                    log_group=group,
                )

            for content in read_contents(store, history.bucket, objects, decode, vanished):
                if content.error is not None:
                    raise SourceError(
                        f"export file {content.uri} of task {task_id} is unreadable ({content.error}); "
                        f"nothing of {range_label(start, end)} was replaced"
                    )
                decoded["files"] += 1
                yield from (e for e in content.events if start_ms <= e.timestamp_ms < end_ms)
            if vanished:
                raise SourceError(
                    f"export files of task {task_id} vanished while read: {', '.join(vanished)}"
                )

    def on_read(step: WindowRangeRead) -> None:
        step.facts = {**step.facts, "export_files_read": decoded["files"]}

    return ExportWindowRead(
        scope=window_scope(stream, start, end, groups),
        label=range_label(start, end),
        events_at_source=0,
        facts={
            "log_groups": list(groups),
            "export_task_ids": task_ids,
            "windows_read_by_export": [range_label(start, end)],
        },
        start=start,
        end=end,
        window=stream.window,
        time_column=stream.schema.time_column,
        bytes_by_window=Counter(),
        reader=EXPORT_READER,
        task_ids=tuple(task_ids),
        source=events,
        schema=stream.schema,
        rules=stream.rules,
        keep_raw=stream.raw_table is not None,
        chunk_events=stream.chunk_events,
        on_read=on_read,
    )


def task_prefix(base: str, group: str, chunk: Chunk) -> str:
    """The destination prefix of one task: its own, so its files are all that lie under it."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", group).strip("-")[:60] or "group"
    digest = blake2b(group.encode(), digest_size=4).hexdigest()
    span = f"{chunk.start:%Y%m%dT%H%MZ}-{chunk.end:%Y%m%dT%H%MZ}"
    return f"{base.strip('/')}/{slug}-{digest}/{span}/{secrets.token_hex(4)}"


def with_api_reader(read: WindowRangeRead) -> WindowRangeRead:
    """A FilterLogEvents read of a stream that has two readers, named as such."""
    read.reader = API_READER
    read.facts["windows_read_by_filter_log_events"] = [read.label]
    return read

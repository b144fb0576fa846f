"""CreateExportTask backfills: a queue of chunks, one active export task per account at a time.

:class:`ExportTasks` wraps the API calls; :class:`ExportRunner` works through the plan of
:mod:`cwl_pipeline.exports.plan`. Its progress is not kept on local disk: it is derived
from CloudWatch itself at every start (DescribeExportTasks lists each task with its log group,
range, destination and status), so a run on an empty disk (a container per run) resumes
without exporting a completed range twice. Before creating a task it waits until the account
has no active export task (someone else's included), and it treats CreateExportTask's
``LimitExceededException`` the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.exports.plan import (
    Chunk,
    ChunkRecord,
    ExportState,
    ExportTaskInfo,
    is_active,
    plan_chunks,
    state_from_tasks,
)


class ExportLimitExceeded(SourceError):
    """CreateExportTask refused a task because another one is active in the account."""


@dataclass(frozen=True)
class TaskStatus:
    """An export task's id and status code (PENDING, RUNNING, COMPLETED, FAILED, ...)."""

    task_id: str
    code: str
    message: str = ""


class ExportTasks:
    """CreateExportTask and DescribeExportTasks on one CloudWatch Logs client."""

    def __init__(self, client: Any) -> None:
        """``client`` is a boto3 ``logs`` client."""
        self._client = client

    def status(self, task_id: str) -> TaskStatus | None:
        """The task's status; None when no task has this id (AWS answers with no task, some
        emulators with ResourceNotFoundException)."""
        try:
            tasks = self._call("DescribeExportTasks", taskId=task_id).get("exportTasks", [])
        except ClientError as exc:
            if exc.response["Error"].get("Code") in (
                "ResourceNotFoundException",
                "InvalidParameterException",
            ):
                return None
            raise _source_error(exc, f"DescribeExportTasks for task {task_id}") from None
        for task in tasks:
            if task.get("taskId") == task_id:
                return _status(task)
        return None

    def active(self) -> list[TaskStatus]:
        """Export tasks of the account and Region that are pending or running."""
        found: dict[str, TaskStatus] = {}
        for code in ("PENDING", "RUNNING", "PENDING_CANCEL"):
            request: dict[str, Any] = {"statusCode": code}
            while True:
                try:
                    page = self._call("DescribeExportTasks", **request)
                except ClientError as exc:
                    raise _source_error(exc, "DescribeExportTasks") from None
                for task in page.get("exportTasks", []):
                    status = _status(task)
                    if is_active(status.code):  # filter again: not every endpoint does
                        found[status.task_id] = status
                token = page.get("nextToken")
                if not token:
                    break
                request["nextToken"] = token
        return sorted(found.values(), key=lambda s: s.task_id)

    def every(self) -> list[ExportTaskInfo]:
        """Every export task CloudWatch still lists for the account and Region, any status."""
        found: list[ExportTaskInfo] = []
        request: dict[str, Any] = {}
        while True:
            try:
                page = self._call("DescribeExportTasks", **request)
            except ClientError as exc:
                raise _source_error(exc, "DescribeExportTasks") from None
            found += [_info(task) for task in page.get("exportTasks", []) if task.get("taskId")]
            token = page.get("nextToken")
            if not token:
                return found
            request["nextToken"] = token

    def create(self, *, log_group: str, chunk: Chunk, bucket: str, prefix: str) -> str:
        """Start exporting ``chunk`` of ``log_group``; returns the task id.

        Raises:
            ExportLimitExceeded: another export task is active in the account.
            SourceError: any other refusal (missing group or bucket, bucket policy, ...).
        """
        try:
            response = self._call(
                "CreateExportTask",
                taskName=f"cwl-pipeline {chunk.label()}",
                logGroupName=log_group,
                fromTime=chunk.from_ms,
                to=chunk.to_ms,
                destination=bucket,
                destinationPrefix=prefix,
            )
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "LimitExceededException":
                raise ExportLimitExceeded("another export task is active in this account") from None
            raise _source_error(exc, f"CreateExportTask for {log_group!r} {chunk.label()}") from None
        return str(response["taskId"])

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = {
            "DescribeExportTasks": self._client.describe_export_tasks,
            "CreateExportTask": self._client.create_export_task,
        }[operation]
        try:
            return method(**kwargs)
        except EndpointConnectionError as exc:
            raise SourceError(f"CloudWatch Logs endpoint unreachable: {exc}") from None
        except BotoCoreError as exc:
            raise SourceError(f"{operation} failed: {exc}") from None


def _status(task: dict[str, Any]) -> TaskStatus:
    status = task.get("status") or {}
    return TaskStatus(str(task.get("taskId")), str(status.get("code", "")), str(status.get("message", "")))


def _info(task: dict[str, Any]) -> ExportTaskInfo:
    status = task.get("status") or {}
    return ExportTaskInfo(
        task_id=str(task.get("taskId")),
        log_group=str(task.get("logGroupName", "")),
        from_ms=int(task.get("from", 0)),
        to_ms=int(task.get("to", -1)),
        bucket=str(task.get("destination", "")),
        prefix=str(task.get("destinationPrefix", "")),
        status=str(status.get("code", "")),
        message=str(status.get("message", "")),
    )


def _source_error(exc: ClientError, what: str) -> SourceError:
    error = exc.response["Error"]
    return SourceError(f"{what} failed: {error.get('Code')}: {error.get('Message')}")


@dataclass(frozen=True)
class ExportProgress:
    """One step of a backfill, for progress display: ``kind`` is ``plan``, ``waiting``,
    ``created``, ``status`` or ``finished``."""

    kind: str
    done: int
    total: int
    record: ChunkRecord | None = None
    detail: str = ""

    def describe(self) -> str:
        """One line: counts, the chunk concerned, its status and the detail."""
        parts = [f"{self.done}/{self.total} chunks"]
        if self.record is not None:
            parts.append(f"{self.record.chunk.label()} {self.record.status}")
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts)


@dataclass
class ExportSummary:
    """What a backfill run did."""

    total: int
    completed: int
    created: list[str] = field(default_factory=list)
    failed: list[ChunkRecord] = field(default_factory=list)
    skipped: int = 0


class ExportRunner:
    """Works through a backfill plan, one export task at a time (see the module docs)."""

    def __init__(
        self,
        tasks: ExportTasks,
        state: ExportState,
        *,
        poll_interval: float = 10.0,
        on_progress: Callable[[ExportProgress], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``state`` is what CloudWatch already holds for this destination
        (:func:`~cwl_pipeline.exports.plan.state_from_tasks`)."""
        self.tasks = tasks
        self.state = state
        self.poll_interval = poll_interval
        self.on_progress = on_progress or (lambda _progress: None)
        self.sleep = sleep
        self._done = 0
        self._total = 0

    def run(self, start: datetime, end: datetime, chunk_size: timedelta) -> ExportSummary:
        """Export ``[start, end)`` in chunks of ``chunk_size``; chunks completed by an earlier
        run are skipped, tasks it left running are awaited first."""
        for record in self.state.in_flight():
            self._await(record)
        remaining = plan_chunks(start, end, chunk_size, self.state.completed())
        skipped = self.state.completed_within(start, end)
        self._total, self._done = skipped + len(remaining), skipped
        summary = ExportSummary(total=self._total, completed=skipped, skipped=skipped)
        self._emit("plan", detail=f"{len(remaining)} chunk(s) to export, {skipped} already exported")
        for chunk in remaining:
            self._wait_for_free_slot()
            task_id = self._create(chunk)
            summary.created.append(task_id)
            record = self.state.record(chunk, "PENDING", task_id)
            self._emit("created", record, f"task {task_id}")
            record = self._await(record)
            if record.status == "COMPLETED":
                self._done += 1
                summary.completed += 1
            else:
                summary.failed.append(record)
            self._emit("finished", record, record.message)
        return summary

    def _wait_for_free_slot(self) -> None:
        wait_for_free_slot(
            self.tasks, self.poll_interval, self.sleep, lambda detail: self._emit("waiting", detail=detail)
        )

    def _create(self, chunk: Chunk) -> str:
        return create_when_allowed(
            self.tasks,
            log_group=self.state.log_group,
            chunk=chunk,
            bucket=self.state.bucket,
            prefix=self.state.prefix,
            poll_interval=self.poll_interval,
            sleep=self.sleep,
            on_wait=lambda detail: self._emit("waiting", detail=detail),
        )

    def _await(self, record: ChunkRecord) -> ChunkRecord:
        assert record.task_id is not None
        last = record.status
        while True:
            status = self.tasks.status(record.task_id)
            if status is None:
                record = self.state.record(record.chunk, "FAILED", message="the export task no longer exists")
            else:
                record = self.state.record(record.chunk, status.code, message=status.message)
            if record.status != last:
                self._emit("status", record, record.message)
                last = record.status
            if not is_active(record.status):
                return record
            self.sleep(self.poll_interval)

    def _emit(self, kind: str, record: ChunkRecord | None = None, detail: str = "") -> None:
        self.on_progress(ExportProgress(kind, self._done, self._total, record, detail))


def wait_for_free_slot(
    tasks: ExportTasks, poll_interval: float, sleep: Callable[[float], None], on_wait: Callable[[str], None]
) -> None:
    """Return once the account has no active export task (CloudWatch runs one at a time)."""
    while True:
        active = tasks.active()
        if not active:
            return
        ids = ", ".join(f"{t.task_id} ({t.code})" for t in active)
        on_wait(f"one export task at a time: waiting for {ids}")
        sleep(poll_interval)


def create_when_allowed(
    tasks: ExportTasks,
    *,
    log_group: str,
    chunk: Chunk,
    bucket: str,
    prefix: str,
    poll_interval: float,
    sleep: Callable[[float], None],
    on_wait: Callable[[str], None],
) -> str:
    """CreateExportTask, waiting and retrying while another task holds the account's slot."""
    while True:
        try:
            return tasks.create(log_group=log_group, chunk=chunk, bucket=bucket, prefix=prefix)
        except ExportLimitExceeded as exc:
            on_wait(str(exc))
            sleep(poll_interval)


def await_task(
    tasks: ExportTasks,
    task_id: str,
    poll_interval: float,
    sleep: Callable[[float], None],
    on_status: Callable[[TaskStatus], None] = lambda _status: None,
) -> TaskStatus:
    """The task's final status (COMPLETED, FAILED, CANCELLED); a task that vanished is FAILED."""
    last = ""
    while True:
        status = tasks.status(task_id) or TaskStatus(task_id, "FAILED", "the export task no longer exists")
        if status.code != last:
            on_status(status)
            last = status.code
        if not is_active(status.code):
            return status
        sleep(poll_interval)


def run_export_backfill(
    logs_client: Any,
    *,
    log_group: str,
    bucket: str,
    prefix: str,
    start: datetime,
    end: datetime,
    chunk_size: timedelta,
    poll_interval: float = 10.0,
    on_progress: Callable[[ExportProgress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExportSummary:
    """Export ``[start, end)`` of ``log_group`` to ``s3://bucket/prefix``, skipping the ranges
    CloudWatch lists as exported there already and awaiting the tasks still running.

    Raises:
        SourceError: an API call failed for another reason than the one-task limit.
    """
    tasks = ExportTasks(logs_client)
    state = state_from_tasks(log_group, bucket, prefix, tasks.every())
    runner = ExportRunner(tasks, state, poll_interval=poll_interval, on_progress=on_progress, sleep=sleep)
    return runner.run(start, end, chunk_size)

"""Planning a history backfill through CreateExportTask: chunks, and what is already done.

An account runs one export task at a time, so a long range is exported as a queue of chunks
(for example one day each). What is done is not kept on local disk but derived from the
export tasks CloudWatch lists (:func:`state_from_tasks`: log group, range, destination,
status), so a backfill interrupted at any point, on any machine, resumes where it stopped:
completed ranges are never exported again, a task still running is awaited rather than
created twice, and a failed chunk is retried.

Chunks are half-open ``[start, end)`` intervals aligned to multiples of the chunk size (UTC
midnight for ``1d``); CreateExportTask's ``to`` is inclusive, hence ``end - 1 ms``. What is
already completed is subtracted from a new plan, so re-running with a wider range exports
only the part not yet exported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cwl_pipeline.core.windows import floor_to_window, to_ms

FAILED_STATUSES = ("FAILED", "CANCELLED")
TERMINAL_STATUSES = ("COMPLETED", *FAILED_STATUSES)
"""Every other status code (PENDING, RUNNING, PENDING_CANCEL, or one this code does not know)
counts as an active task: the safe side of the one-active-task rule."""
RECENT_DATA_DELAY = timedelta(hours=12)
"""AWS: log data can take up to 12 hours to become available for export."""


def is_active(status: str) -> bool:
    """Whether an export task with this status code may still be running."""
    return status not in TERMINAL_STATUSES and status != "PLANNED"


@dataclass(frozen=True, order=True)
class Chunk:
    """One export interval ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """Identity of the chunk in the state document."""
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def from_ms(self) -> int:
        """CreateExportTask ``from`` (inclusive)."""
        return to_ms(self.start)

    @property
    def to_ms(self) -> int:
        """CreateExportTask ``to`` (inclusive): the last millisecond of the chunk."""
        return to_ms(self.end) - 1

    def label(self) -> str:
        """Short human-readable form."""
        fmt = "%Y-%m-%d" if _is_midnight(self.start) and _is_midnight(self.end) else "%Y-%m-%dT%H:%MZ"
        return f"{self.start.strftime(fmt)}..{self.end.strftime(fmt)}"


def _is_midnight(moment: datetime) -> bool:
    return moment.hour == moment.minute == moment.second == moment.microsecond == 0


def plan_chunks(start: datetime, end: datetime, size: timedelta, done: Iterable[Chunk] = ()) -> list[Chunk]:
    """The chunks still to export for ``[start, end)``: the range minus ``done``, cut at
    multiples of ``size``.

    Raises:
        ValueError: ``end`` is not after ``start``, or ``size`` is not positive.
    """
    if size <= timedelta(0):
        raise ValueError("the chunk size must be positive")
    if end <= start:
        raise ValueError(f"the range end {end.isoformat()} is not after its start {start.isoformat()}")
    pieces = [(start, end)]
    for chunk in sorted(done):
        pieces = [p for a, b in pieces for p in _subtract(a, b, chunk.start, chunk.end)]
    chunks = []
    for a, b in pieces:
        cursor = a
        while cursor < b:
            boundary = floor_to_window(cursor, size) + size
            chunks.append(Chunk(cursor, min(boundary, b)))
            cursor = min(boundary, b)
    return chunks


def _subtract(a: datetime, b: datetime, c: datetime, d: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    if c > a:
        out.append((a, min(b, c)))
    if d < b:
        out.append((max(a, d), b))
    return [(x, y) for x, y in out if x < y]


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk and what happened to it: ``PLANNED``, then the export task's status code."""

    chunk: Chunk
    status: str = "PLANNED"
    task_id: str | None = None
    message: str = ""

    @property
    def in_flight(self) -> bool:
        """A task was created and has not finished."""
        return self.task_id is not None and is_active(self.status)


@dataclass
class ExportState:
    """Every chunk ever planned for one log group and destination."""

    log_group: str
    bucket: str
    prefix: str
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)

    def record(self, chunk: Chunk, status: str, task_id: str | None = None, message: str = "") -> ChunkRecord:
        """Set the status of ``chunk`` (keeping its task id unless a new one is given)."""
        previous = self.chunks.get(chunk.key)
        if previous is not None and task_id is None:
            task_id = previous.task_id
        entry = ChunkRecord(chunk, status, task_id, message)
        self.chunks[chunk.key] = entry
        return entry

    def completed(self) -> list[Chunk]:
        """Chunks whose export task completed."""
        return sorted(r.chunk for r in self.chunks.values() if r.status == "COMPLETED")

    def in_flight(self) -> list[ChunkRecord]:
        """Chunks with a created task that has not finished (after a restart: to await)."""
        return sorted((r for r in self.chunks.values() if r.in_flight), key=lambda r: r.chunk)

    def completed_within(self, start: datetime, end: datetime) -> int:
        """Completed chunks inside ``[start, end)`` (for progress)."""
        return sum(1 for c in self.completed() if c.start >= start and c.end <= end)


@dataclass(frozen=True)
class ExportTaskInfo:
    """One export task as DescribeExportTasks lists it (``to_ms`` inclusive)."""

    task_id: str
    log_group: str
    from_ms: int
    to_ms: int
    bucket: str
    prefix: str
    status: str
    message: str = ""

    @property
    def chunk(self) -> Chunk | None:
        """The half-open range the task exports; None for an empty or inverted range."""
        if self.to_ms < self.from_ms:
            return None
        return Chunk(_from_ms(self.from_ms), _from_ms(self.to_ms + 1))


def _from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


# When several tasks exported the same range, the best outcome stands for it.
_RANK = {"COMPLETED": 3, "FAILED": 0, "CANCELLED": 0}


def state_from_tasks(
    log_group: str, bucket: str, prefix: str, tasks: Iterable[ExportTaskInfo]
) -> ExportState:
    """What CloudWatch's export tasks say is done for ``log_group`` into ``s3://bucket/prefix``.

    A range with a COMPLETED task is done; one with only a running task is in flight (to be
    awaited); one whose tasks all failed is to export again. Prefixes compare without their
    trailing ``/`` (the folder layout is the same).
    """
    state = ExportState(log_group, bucket, prefix)
    best: dict[Chunk, ExportTaskInfo] = {}
    for task in tasks:
        chunk = task.chunk
        if (
            chunk is None
            or task.log_group != log_group
            or task.bucket != bucket
            or task.prefix.rstrip("/") != prefix.rstrip("/")
        ):
            continue
        current = best.get(chunk)
        if current is None or _RANK.get(task.status, 2) > _RANK.get(current.status, 2):
            best[chunk] = task
    for chunk, task in sorted(best.items()):
        state.record(chunk, task.status, task.task_id, task.message)
    return state


def recent_data_warning(end: datetime, now: datetime) -> str | None:
    """A warning when the range reaches into the last 12 hours, whose export may be partial."""
    if end <= now - RECENT_DATA_DELAY:
        return None
    return (
        f"the range ends {end.isoformat()}, within {RECENT_DATA_DELAY} of now: AWS says log data "
        "can take up to 12 hours to become available for export, so these hours may be "
        "incomplete; load recent hours through the polling or Firehose stream, or export them later"
    )


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``now``, an ISO 8601 date (UTC midnight) or date-time (UTC unless an offset is given).

    Raises:
        ValueError: the text is none of these.
    """
    text = text.strip()
    if text.lower() == "now":
        return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or time (or 'now')") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

"""Planning a history backfill through CreateExportTask: chunks, and the resumable state.

An account runs one export task at a time, so a long range is exported as a queue of chunks
(for example one day each). The state of every chunk (its task id and status) is kept in a
small JSON document, so that a backfill interrupted at any point resumes where it stopped:
completed chunks are never exported again, a task still running is awaited rather than
created twice, and a failed chunk is retried.

Chunks are half-open ``[start, end)`` intervals aligned to multiples of the chunk size (UTC
midnight for ``1d``); CreateExportTask's ``to`` is inclusive, hence ``end - 1 ms``. What is
already completed is subtracted from a new plan, so re-running with a wider range exports
only the part not yet exported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

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

    def check_destination(self, log_group: str, bucket: str, prefix: str) -> None:
        """Refuse to mix two backfills in one state document.

        Raises:
            ValueError: the state belongs to another log group or destination.
        """
        if (self.log_group, self.bucket, self.prefix) != (log_group, bucket, prefix):
            raise ValueError(
                f"the state belongs to the export of {self.log_group!r} to s3://{self.bucket}/{self.prefix}, "
                f"not of {log_group!r} to s3://{bucket}/{prefix}; use another state file"
            )

    def to_json(self) -> dict[str, Any]:
        """Serializable form (the state file)."""
        return {
            "version": 1,
            "log_group": self.log_group,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "chunks": [
                {
                    "from": r.chunk.start.isoformat(),
                    "to": r.chunk.end.isoformat(),
                    "status": r.status,
                    "task_id": r.task_id,
                    "message": r.message,
                }
                for r in sorted(self.chunks.values(), key=lambda r: r.chunk)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportState:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: the document is not an export state.
        """
        try:
            state = cls(str(data["log_group"]), str(data["bucket"]), str(data["prefix"]))
            for item in data.get("chunks", []):
                chunk = Chunk(datetime.fromisoformat(item["from"]), datetime.fromisoformat(item["to"]))
                state.chunks[chunk.key] = ChunkRecord(
                    chunk, str(item["status"]), item.get("task_id"), str(item.get("message") or "")
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an export state document ({exc})") from None
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


def state_file_name(log_group: str, bucket: str, prefix: str) -> str:
    """A file name for the state of one backfill, readable and unique per destination."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", log_group).strip("-")[:60] or "group"
    digest = blake2b(f"{log_group}\n{bucket}\n{prefix}".encode(), digest_size=4).hexdigest()
    return f"cwl-export-{slug}-{digest}.json"

"""Micro-batch window arithmetic shared by every source.

Windows are half-open ``[start, start + size)`` intervals aligned to the epoch in UTC; each is
one Dagster time-window partition, keyed by its start (:func:`partition_key`). What a polling
stream's sensor requests at each tick is :mod:`cwl_pipeline.polling.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PARTITION_FMT = "%Y-%m-%d-%H:%M"


def floor_to_window(moment: datetime, size: timedelta) -> datetime:
    """Start of the window that contains ``moment``."""
    seconds = int(size.total_seconds())
    epoch = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def partition_key(window_start: datetime) -> str:
    """Dagster partition key of the window starting at ``window_start``."""
    return window_start.astimezone(UTC).strftime(PARTITION_FMT)


def parse_partition_key(key: str) -> datetime:
    """Inverse of :func:`partition_key`."""
    return datetime.strptime(key, PARTITION_FMT).replace(tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.astimezone(UTC).timestamp() * 1000)


@dataclass(frozen=True)
class WindowRequest:
    """Load windows ``first_start`` … ``last_start`` (inclusive) in one run."""

    first_start: datetime
    last_start: datetime
    kind: str  # a pass name ("settled", "sweep-15m", ...) or "refresh" (the open window)
    run_key: str

    @property
    def first_key(self) -> str:
        """Partition key of the first window."""
        return partition_key(self.first_start)

    @property
    def last_key(self) -> str:
        """Partition key of the last window."""
        return partition_key(self.last_start)

"""The in-memory shape of a CloudWatch Logs event, shared by every source format."""

from __future__ import annotations

from typing import NamedTuple


class LogEvent(NamedTuple):
    """One CloudWatch Logs event as read from any delivery format.

    ``message`` is text when the source delivered text and ``bytes`` when the raw bytes could
    not be decoded as UTF-8 (normalization then rejects the event with reason
    ``invalid_utf8`` instead of dropping it).
    """

    event_id: str
    timestamp_ms: int
    message: str | bytes
    log_group: str
    log_stream: str
    ingestion_time_ms: int | None = None
    source_object: str | None = None

"""The raw layer: every event a stream keeps, as read, one row each (after filters and redaction).

A stream with a raw table stores each event's identity, CloudWatch metadata and its message as
a STRING, whatever its schema and parser make of it. Its typed tables can then be re-derived
from BigQuery alone (:mod:`cwl_pipeline.polling.rederive`) after a schema or parser change, even
once CloudWatch's retention has passed.

The raw table's columns carry the rejects table's names (``event_id``, ``timestamp``,
``log_group``, ``log_stream``, ``ingestion_time``, ``source_object``), so the scope a load owns
in the rejects table is the scope it owns in the raw table too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from cwl_pipeline.core.columns import table_from_columns
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.timestamps import BIGQUERY_MAX_MS, BIGQUERY_MIN_MS
from cwl_pipeline.core.normalize import arrow_field
from cwl_pipeline.core.schema import EVENT_COLUMNS, Column

RAW_COLUMNS: tuple[Column, ...] = (
    *EVENT_COLUMNS,
    Column(
        "message",
        "STRING",
        required=True,
        description="The message as read (after redaction); invalid UTF-8 escaped with backslashes",
    ),
    Column("invalid_utf8", "BOOL", required=True, description="The message was not valid UTF-8 as read"),
)

RAW_SCHEMA = pa.schema([arrow_field(c) for c in RAW_COLUMNS])
"""Arrow schema of the raw table's rows."""


class RawCollector:
    """Collects the raw rows of the events passing through :meth:`tee`."""

    def __init__(self) -> None:
        self._columns: dict[str, list[object]] = {name: [] for name in RAW_SCHEMA.names}

    def tee(self, events: Iterable[LogEvent]) -> Iterator[LogEvent]:
        """Yield ``events`` unchanged, recording each one's raw row."""
        columns = self._columns
        for event in events:
            message = event.message
            invalid = isinstance(message, bytes)
            columns["event_id"].append(event.event_id)
            # Clamped into BigQuery's range like the rejects' (an out_of_range event is a reject).
            columns["timestamp"].append(_clamp(event.timestamp_ms))
            columns["log_group"].append(event.log_group)
            columns["log_stream"].append(event.log_stream)
            ingested = event.ingestion_time_ms
            columns["ingestion_time"].append(
                ingested if ingested is None or BIGQUERY_MIN_MS <= ingested <= BIGQUERY_MAX_MS else None
            )
            columns["source_object"].append(event.source_object)
            columns["message"].append(message.decode("utf-8", "backslashreplace") if invalid else message)
            columns["invalid_utf8"].append(invalid)
            yield event

    def table(self) -> pa.Table:
        """The raw rows recorded so far."""
        return raw_table(self._columns)


def _clamp(timestamp_ms: int) -> int:
    return min(max(timestamp_ms, BIGQUERY_MIN_MS), BIGQUERY_MAX_MS)


def raw_table(columns: dict[str, list[object]]) -> pa.Table:
    """Raw rows from per-column lists (times as ms since the epoch)."""
    return table_from_columns(columns, RAW_SCHEMA)


def events_from_raw(rows: Iterable[dict[str, object]]) -> Iterator[LogEvent]:
    """Events rebuilt from raw rows (as BigQuery returns them: times as datetimes), in order.

    A message stored as invalid UTF-8 comes back as bytes, its ``\\xNN`` escapes turned back
    into the bytes they stand for, so normalization rejects it as ``invalid_utf8`` again.
    """
    for row in rows:
        message = row["message"]
        assert isinstance(message, str)
        restored: str | bytes = _unescape(message) if row.get("invalid_utf8") else message
        yield LogEvent(
            event_id=str(row["event_id"]),
            timestamp_ms=_ms(row["timestamp"]),
            message=restored,
            log_group=str(row["log_group"]),
            log_stream=str(row["log_stream"]),
            ingestion_time_ms=_ms(row["ingestion_time"]) if row.get("ingestion_time") is not None else None,
            source_object=row.get("source_object"),  # type: ignore[arg-type]
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def _unescape(message: str) -> bytes:
    return _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), message.encode("utf-8"))


def _ms(value: object) -> int:
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    assert isinstance(value, int)
    return value

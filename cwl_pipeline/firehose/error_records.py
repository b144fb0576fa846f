"""Records Firehose could not process, written under its error output prefix (pure).

When a record fails (a transformation Lambda failed or returned ``ProcessingFailed``, format
conversion failed, ...), Firehose writes it under the delivery stream's *error output
prefix*, whose ``!{firehose:error-output-type}`` expression evaluates to the kind of failure
(``processing-failed``, ``format-conversion-failed``, ...; see
https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html). Each failed record is one
JSON document (https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html,
and https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html for
``processing-failed``)::

    {"attemptsMade": long, "arrivalTimestamp": long, "errorCode": string,
     "errorMessage": string, "attemptEndingTimestamp": long, "rawData": string (base64), ...}

(format conversion spells ``ErrorCode`` / ``ErrorMessage``). Each record becomes one reject
with reason ``firehose_<error-output-type>`` (``firehose_processing_failed``), the error code
and message in ``detail``, and the raw record as text in ``raw_message``: a CloudWatch Logs
subscription record is a gzip-compressed envelope, which is decompressed for reading and
whose log group and stream are kept.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from dataclasses import dataclass

import pyarrow as pa

from cwl_pipeline.core.columns import table_from_columns
from cwl_pipeline.core.identity import derived_event_id
from cwl_pipeline.core.normalize import REJECTS_SCHEMA

UNKNOWN_ERROR_TYPE = "error"
_MAX_RAW_CHARS = 1_000_000  # a reject keeps at most this much of the raw record


@dataclass(frozen=True)
class ErrorRecords:
    """The rejects of one error object, and how many records it held."""

    rejects: pa.Table
    records: int


def error_reason(error_type: str | None) -> str:
    """The reject reason of a failure kind: ``processing-failed`` → ``firehose_processing_failed``."""
    return "firehose_" + (error_type or UNKNOWN_ERROR_TYPE).replace("-", "_")


def decode_error_object(data: bytes, *, uri: str, timestamp_ms: int, error_type: str | None) -> ErrorRecords:
    """Rejects of the failed records in one error-output object (gzip or not); never raises.

    A line that is not an error record becomes a reject too (``detail`` says so), so every
    line of the object is accounted for.
    """
    try:
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8", "replace")
    except (OSError, EOFError, zlib.error) as exc:
        lines: list[str] = []
        bad = f"unreadable error object: {exc}"
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        bad = ""
    columns: dict[str, list[object]] = {name: [] for name in REJECTS_SCHEMA.names}
    reason = error_reason(error_type)

    def add(at_ms: int, group: str, stream: str, detail: str, raw: str, occurrence: int) -> None:
        columns["event_id"].append(
            derived_event_id(group, stream, at_ms, f"{reason} {uri} {raw}", occurrence)
        )
        columns["timestamp"].append(at_ms)
        columns["log_group"].append(group)
        columns["log_stream"].append(stream)
        columns["ingestion_time"].append(None)
        columns["source_object"].append(uri)
        columns["reason"].append(reason)
        columns["detail"].append(detail)
        columns["raw_message"].append(raw[:_MAX_RAW_CHARS])

    if bad:
        add(timestamp_ms, "", "", bad, "", 0)
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            add(timestamp_ms, "", "", "not a Firehose error record", line, index)
            continue
        arrival = record.get("arrivalTimestamp")
        at_ms = arrival if isinstance(arrival, int) and not isinstance(arrival, bool) else timestamp_ms
        code = record.get("errorCode") or record.get("ErrorCode") or ""
        message = record.get("errorMessage") or record.get("ErrorMessage") or ""
        attempts = record.get("attemptsMade")
        detail = f"{code}: {message}".strip(": ") + (
            f" (attempts: {attempts})" if attempts is not None else ""
        )
        group, stream, raw = _raw_record(record.get("rawData"))
        add(at_ms, group, stream, detail or "failed record", raw, index)
    return ErrorRecords(rejects=rejects_table(columns), records=len(columns["event_id"]))


def rejects_table(columns: dict[str, list[object]]) -> pa.Table:
    """An Arrow rejects table from column lists (times in ms since the epoch)."""
    return table_from_columns(columns, REJECTS_SCHEMA)


def _raw_record(raw: object) -> tuple[str, str, str]:
    """Log group, stream and readable text of a failed record's ``rawData``."""
    if not isinstance(raw, str):
        return "", "", ""
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return "", "", raw
    try:
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error):
        return "", "", raw
    text = data.decode("utf-8", "backslashreplace")
    try:
        envelope = json.loads(text)
    except ValueError:
        return "", "", text
    if isinstance(envelope, dict):
        return str(envelope.get("logGroup") or ""), str(envelope.get("logStream") or ""), text
    return "", "", text

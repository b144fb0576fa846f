"""The ``subscription`` and ``firehose`` formats: CloudWatch Logs subscription envelopes.

A subscription filter delivers batches as an envelope::

    {"messageType": "DATA_MESSAGE", "owner": "...", "logGroup": "...", "logStream": "...",
     "subscriptionFilters": [...], "logEvents": [{"id": ..., "timestamp": ..., "message": ...}]}

gzip-compressed. Lambda receives it base64-encoded as ``{"awslogs": {"data": "..."}}``;
Firehose writes the compressed envelopes to S3 back to back (one gzip member each), or, with
decompression enabled, as plain JSON, newline-delimited or concatenated. All of these decode
the same way. ``CONTROL_MESSAGE`` envelopes (sent when a subscription is created) carry no
events and yield nothing. Real AWS event ids are 56-digit strings; some local emulators
send integers, which are carried as strings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from typing import Any

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.errors import DecodeError
from cwl_pipeline.core.formats.gzip_members import gunzip_members, is_gzip
from cwl_pipeline.core.formats.json_documents import iter_json_documents

_new_event = tuple.__new__  # builds a LogEvent without NamedTuple's keyword handling


def iter_envelope_documents(
    members: Iterable[bytes], *, gzipped: bool
) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, document)`` for every JSON document of the payload members."""
    for number, member in enumerate(members, start=1):
        what = f"gzip member {number}" if gzipped else "input"
        for doc in iter_json_documents(member, what):
            yield what, doc


def decode_envelope_documents(
    docs: Iterable[tuple[str, Any]], *, source_object: str | None
) -> Iterator[LogEvent]:
    """Decode envelopes (and Lambda ``awslogs`` events wrapping them) into events."""
    for number, (what, doc) in enumerate(docs, start=1):
        where = f"{what}, document {number}"
        if type(doc) is dict and "awslogs" in doc:
            for inner in _unwrap_lambda_event(doc, where):
                yield from _envelope_events(inner, where, source_object)
        else:
            yield from _envelope_events(doc, where, source_object)


def _unwrap_lambda_event(doc: dict[str, Any], where: str) -> Iterator[Any]:
    awslogs = doc["awslogs"]
    data = awslogs.get("data") if type(awslogs) is dict else None
    if type(data) is not str:
        raise DecodeError(f"{where}: 'awslogs' has no string 'data'")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where}: 'awslogs.data' is not valid base64") from None
    members = gunzip_members(raw) if is_gzip(raw) else [raw]
    for member in members:
        yield from iter_json_documents(member, f"{where} (awslogs.data)")


def _envelope_events(doc: Any, where: str, source_object: str | None) -> Iterator[LogEvent]:
    if type(doc) is not dict or "messageType" not in doc:
        raise DecodeError(f"{where}: not a CloudWatch Logs subscription envelope")
    message_type = doc["messageType"]
    if message_type == "CONTROL_MESSAGE":
        return
    if message_type != "DATA_MESSAGE":
        raise DecodeError(f"{where}: unknown messageType {message_type!r}")
    group = doc.get("logGroup")
    stream = doc.get("logStream")
    log_events = doc.get("logEvents")
    if type(group) is not str or not group or type(stream) is not str or not stream:
        raise DecodeError(f"{where}: envelope has no logGroup/logStream")
    if type(log_events) is not list:
        raise DecodeError(f"{where}: envelope has no 'logEvents' list")
    for index, event in enumerate(log_events):
        try:
            event_id = event["id"]
            timestamp = event["timestamp"]
            message = event["message"]
        except (KeyError, TypeError):
            raise DecodeError(
                f"{where}: logEvents[{index}] lacks 'id', 'timestamp' or 'message'"
            ) from None
        if type(event_id) is not str:
            if type(event_id) is not int:
                raise DecodeError(f"{where}: logEvents[{index}] has an invalid 'id'")
            event_id = str(event_id)
        if type(timestamp) is not int or type(message) is not str:
            raise DecodeError(
                f"{where}: logEvents[{index}] needs an integer 'timestamp' and a string "
                "'message'"
            )
        yield _new_event(
            LogEvent, (event_id, timestamp, message, group, stream, None, source_object)
        )

"""The ``subscription`` and ``firehose`` formats: CloudWatch Logs subscription envelopes.

A subscription filter delivers batches as an envelope::

    {"messageType": "DATA_MESSAGE", "owner": "...", "logGroup": "...", "logStream": "...",
     "subscriptionFilters": [...], "logEvents": [{"id": ..., "timestamp": ..., "message": ...}]}

gzip-compressed. Lambda receives it base64-encoded as ``{"awslogs": {"data": "..."}}``; a
subscription to a Kinesis data stream puts each gzip envelope in a Kinesis record, which a
Lambda consumer receives as ``{"Records": [{"kinesis": {"data": "<base64>"}}, ...]}``;
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
from itertools import chain
from typing import Any

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.errors import DecodeError
from cwl_pipeline.core.formats.gzip_members import DecompressionBudget, gunzip_members, is_gzip
from cwl_pipeline.core.formats.json_documents import iter_json_documents


def iter_envelope_documents(members: Iterable[bytes], *, gzipped: bool) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, document)`` for every JSON document of the payload members."""
    for number, member in enumerate(members, start=1):
        what = f"gzip member {number}" if gzipped else "input"
        for doc in iter_json_documents(member, what):
            yield what, doc


def decode_envelope_documents(
    docs: Iterable[tuple[str, Any]],
    *,
    source_object: str | None,
    budget: DecompressionBudget | None = None,
) -> Iterator[LogEvent]:
    """Decode envelopes (and Lambda ``awslogs`` events wrapping them) into events.

    ``budget`` bounds the decompression of ``awslogs.data`` (shared with the payload's own).
    """
    # Events come as one list per envelope, chained at C level: the per-event iteration does
    # not go through a Python generator.
    return chain.from_iterable(_event_lists(docs, source_object, budget or DecompressionBudget()))


def _event_lists(
    docs: Iterable[tuple[str, Any]], source_object: str | None, budget: DecompressionBudget
) -> Iterator[list[LogEvent]]:
    for number, (what, doc) in enumerate(docs, start=1):
        where = f"{what}, document {number}"
        if type(doc) is dict and "awslogs" in doc:
            for inner in _unwrap_lambda_event(doc, where, budget):
                yield _envelope_events(inner, where, source_object)
        elif type(doc) is dict and "Records" in doc:
            for record_where, inner in _unwrap_kinesis_event(doc, where, budget):
                yield _envelope_events(inner, record_where, source_object)
        else:
            yield _envelope_events(doc, where, source_object)


def _unwrap_lambda_event(doc: dict[str, Any], where: str, budget: DecompressionBudget) -> Iterator[Any]:
    awslogs = doc["awslogs"]
    data = awslogs.get("data") if type(awslogs) is dict else None
    if type(data) is not str:
        raise DecodeError(f"{where}: 'awslogs' has no string 'data'")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where}: 'awslogs.data' is not valid base64") from None
    if not raw:
        raise DecodeError(f"{where}: 'awslogs.data' is empty")
    yield from _compressed_documents(raw, f"{where} (awslogs.data)", budget)


def _unwrap_kinesis_event(
    doc: dict[str, Any], where: str, budget: DecompressionBudget
) -> Iterator[tuple[str, Any]]:
    """The envelopes of a Kinesis Data Streams consumer event, with where each comes from."""
    records = doc["Records"]
    if type(records) is not list:
        raise DecodeError(f"{where}: 'Records' is not a list")
    for index, record in enumerate(records):
        at = f"{where}, Records[{index}]"
        kinesis = record.get("kinesis") if type(record) is dict else None
        if type(kinesis) is not dict:
            source = record.get("eventSource") if type(record) is dict else None
            raise DecodeError(
                f"{at}: not a Kinesis record (no 'kinesis' object"
                + (f"; eventSource {source!r})" if source else ")")
            )
        data = kinesis.get("data")
        if type(data) is not str:
            raise DecodeError(f"{at}: 'kinesis' has no string 'data'")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError(f"{at}: 'kinesis.data' is not valid base64") from None
        if not raw:
            raise DecodeError(f"{at}: 'kinesis.data' is empty")
        for inner in _compressed_documents(raw, f"{at} (kinesis.data)", budget):
            yield at, inner


def _compressed_documents(raw: bytes, what: str, budget: DecompressionBudget) -> Iterator[Any]:
    """The JSON documents of a (normally gzip) payload; zlib is named, not misread."""
    if is_gzip(raw):
        members = gunzip_members(raw, budget=budget)
    elif is_zlib(raw):
        raise DecodeError(
            f"{what}: is zlib-compressed (a zlib stream, first bytes {raw[:2].hex()}), not gzip: "
            "CloudWatch Logs delivers subscription data gzip-compressed, so something re-compressed "
            "it; decompress it with zlib and decode the envelope JSON"
        )
    else:
        members = [raw]
    for member in members:
        yield from iter_json_documents(member, what)


def is_zlib(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib header (RFC 1950: deflate, and a valid check sum)."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def _envelope_events(doc: Any, where: str, source: str | None) -> list[LogEvent]:
    if type(doc) is not dict or "messageType" not in doc:
        raise DecodeError(f"{where}: not a CloudWatch Logs subscription envelope")
    message_type = doc["messageType"]
    if message_type == "CONTROL_MESSAGE":
        return []
    if message_type != "DATA_MESSAGE":
        raise DecodeError(f"{where}: unknown messageType {message_type!r}")
    group = doc.get("logGroup")
    stream = doc.get("logStream")
    log_events = doc.get("logEvents")
    if type(group) is not str or not group or type(stream) is not str or not stream:
        raise DecodeError(f"{where}: envelope has no logGroup/logStream")
    if type(log_events) is not list:
        raise DecodeError(f"{where}: envelope has no 'logEvents' list")
    events: list[LogEvent] = []
    add = events.append
    try:
        for event in log_events:
            event_id = event["id"]
            timestamp = event["timestamp"]
            message = event["message"]
            if type(event_id) is not str:
                if type(event_id) is not int:
                    raise TypeError("id")
                event_id = str(event_id)  # integer ids from local emulators
            if type(timestamp) is not int or type(message) is not str:
                raise TypeError("timestamp or message")
            add(_new_event(LogEvent, (event_id, timestamp, message, group, stream, None, source)))
    except (KeyError, TypeError):
        raise _bad_event(log_events, where) from None
    return events


_new_event = tuple.__new__  # builds a LogEvent without NamedTuple's keyword handling
_STR_OR_INT = {str, int}


def _well_formed(event: Any) -> bool:
    return (
        type(event) is dict
        and type(event.get("id")) in _STR_OR_INT
        and type(event.get("timestamp")) is int
        and type(event.get("message")) is str
    )


def _bad_event(log_events: list[Any], where: str) -> DecodeError:
    """The error naming the first malformed event of an envelope."""
    index = next((i for i, event in enumerate(log_events) if not _well_formed(event)), 0)
    return DecodeError(
        f"{where}: logEvents[{index}] needs a string or integer 'id', an integer "
        "'timestamp' and a string 'message'"
    )

"""Decoding one S3 object of a Firehose or export layout into events, never raising.

An object whose content cannot be decoded yields an :class:`ObjectContent` with the error
(it becomes an ``unreadable_object`` reject), so one bad object never stops a load.
"""

from __future__ import annotations

import re

from cwl_pipeline.core.formats import DecodeError, decode_bytes, stream_from_export_key
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.parallel_decode import DecodeInput, iter_decode_input
from cwl_pipeline.s3_objects.batch import ObjectContent

# Firehose record formats → decoder format. Gzip or not is recognised from the bytes, so the
# two envelope variants decode alike; "messages" carries no event context of its own.
_FIREHOSE_FORMATS = {"envelopes_gzip": "firehose", "envelopes_json": "firehose", "messages": "messages"}


# Firehose names an object <stream>-<n>-<YYYY-MM-DD-HH-MM-SS>-<uuid>.
_OBJECT_NAME = re.compile(r"^(.+)-\d+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9A-Fa-f-]{36}")


def delivery_stream_name(key: str) -> str | None:
    """The delivery stream named in a Firehose object name, if the name has that form."""
    match = _OBJECT_NAME.match(key.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def firehose_decode_input(
    data: bytes,
    *,
    uri: str,
    key: str,
    timestamp_ms: int,
    record_format: str,
    log_group: str | None,
    log_stream: str | None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> DecodeInput:
    """One Firehose object as a :class:`DecodeInput`: its format, group, stream (for
    ``messages``) and default timestamp, for :func:`decode_firehose_input` or the parallel decoder."""
    stream = (log_stream or delivery_stream_name(key) or "firehose") if record_format == "messages" else ""
    return DecodeInput(
        data,
        source_object=uri,
        format=_FIREHOSE_FORMATS[record_format],
        log_group=log_group,
        log_stream=stream or None,
        default_timestamp_ms=timestamp_ms,
        max_decompressed_bytes=max_decompressed_bytes,
    )


def decode_firehose_input(item: DecodeInput) -> ObjectContent:
    """Events of one Firehose object (its :func:`firehose_decode_input`), or why it is unreadable.

    With ``messages`` the lines carry no timestamp, group or stream: the timestamp is the
    object's LastModified, the stream the configured one or else the delivery stream named in
    the object key. An object that decompresses to more than ``max_decompressed_bytes`` is
    unreadable.
    """
    uri, timestamp_ms = item.source_object or "", item.default_timestamp_ms or 0
    group, stream = item.log_group or "", item.log_stream or ""
    try:
        events = list(iter_decode_input(item))
    except DecodeError as exc:
        return ObjectContent(
            uri, timestamp_ms, error=str(exc), log_group=group, log_stream=stream, size=len(item.data)
        )
    return ObjectContent(uri, timestamp_ms, events, log_group=group, log_stream=stream, size=len(item.data))


def decode_export_object(
    data: bytes,
    *,
    uri: str,
    key: str,
    prefix: str,
    timestamp_ms: int,
    log_group: str,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> ObjectContent:
    """Events of one CreateExportTask file; the stream comes from the key (lines in any order)."""
    try:
        stream = stream_from_export_key(key, prefix=prefix.rstrip("/"))
    except DecodeError as exc:
        return ObjectContent(uri, timestamp_ms, error=str(exc), log_group=log_group, size=len(data))
    try:
        events = decode_bytes(
            data,
            format="export",
            log_group=log_group,
            log_stream=stream,
            source_object=uri,
            max_decompressed_bytes=max_decompressed_bytes,
        )
    except DecodeError as exc:
        return ObjectContent(
            uri, timestamp_ms, error=str(exc), log_group=log_group, log_stream=stream, size=len(data)
        )
    return ObjectContent(uri, timestamp_ms, events, log_group=log_group, log_stream=stream, size=len(data))

"""One entry point for every delivery format: :func:`decode_bytes`."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.api_events import decode_api_documents
from cwl_pipeline.core.formats.detect import detect_and_parse
from cwl_pipeline.core.formats.envelopes import (
    decode_envelope_documents,
    iter_envelope_documents,
)
from cwl_pipeline.core.formats.errors import DecodeError, MissingArgumentError
from cwl_pipeline.core.formats.export import decode_export, stream_from_export_key
from cwl_pipeline.core.formats.gzip_members import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DecompressionBudget,
    is_gzip,
    iter_gzip_members,
)
from cwl_pipeline.core.formats.json_documents import iter_json_documents
from cwl_pipeline.core.formats.messages import decode_messages

_UTF8_BOM = b"\xef\xbb\xbf"

FORMATS: tuple[str, ...] = ("events", "subscription", "kinesis", "firehose", "export", "messages")
"""Format names accepted by :func:`decode_bytes` (besides ``auto``)."""


def decode_bytes(
    data: bytes,
    *,
    format: str = "auto",
    log_group: str | None = None,
    log_stream: str | None = None,
    source_object: str | None = None,
    default_timestamp_ms: int | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> list[LogEvent]:
    """Decode one delivered payload (an S3 object, a file, a Lambda event) into events.

    Any format may be gzip-compressed (single or multi-member). An empty payload yields no
    events.

    Args:
        data: the payload bytes.
        format: ``auto`` (see :func:`detect_format`) or one of :data:`FORMATS`.
        log_group: the log group, for formats that do not carry it (``events``, ``export``,
            ``messages``); ignored by the envelope formats, which carry their own.
        log_stream: the stream, for ``messages`` and GetLogEvents responses; for ``export``
            it overrides the stream derived from ``source_object``.
        source_object: the S3 key or file path, recorded on every event; for ``export`` the
            stream is derived from it (:func:`stream_from_export_key`).
        default_timestamp_ms: the timestamp of ``messages`` events, which carry none (for
            instance the S3 object's LastModified, in ms since the epoch).
        max_decompressed_bytes: the most bytes the payload may hold once decompressed (its
            own size when it is not compressed), over every gzip member and any gzip nested
            in a Lambda event; decompression stops as soon as the limit is passed.

    Raises:
        DecodeError: unknown format name, corrupt or truncated gzip, a payload larger than
            ``max_decompressed_bytes``, content that is not the format, or
            (:class:`MissingArgumentError`) context the format needs but lacks.
    """
    return list(
        iter_decode(
            data,
            format=format,
            log_group=log_group,
            log_stream=log_stream,
            source_object=source_object,
            default_timestamp_ms=default_timestamp_ms,
            max_decompressed_bytes=max_decompressed_bytes,
        )
    )


def iter_decode(
    data: bytes,
    *,
    format: str = "auto",
    log_group: str | None = None,
    log_stream: str | None = None,
    source_object: str | None = None,
    default_timestamp_ms: int | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> Iterator[LogEvent]:
    """Like :func:`decode_bytes`, yielding events lazily.

    Errors may then surface part-way through the iteration.
    """
    if format != "auto" and format not in FORMATS:
        raise DecodeError(f"unknown format {format!r}; expected auto or one of {', '.join(FORMATS)}")
    try:
        budget = DecompressionBudget(max_decompressed_bytes)
    except ValueError as exc:
        raise DecodeError(str(exc)) from None
    gzipped = is_gzip(data)
    if not gzipped:
        budget.charge(len(data))
    members: Iterator[bytes] = iter_gzip_members(data, budget=budget) if gzipped else iter((data,))
    head = _head(members)
    if not head:
        return iter(())  # empty input, or only empty members
    sample = next(m for m in head if not _blank(m))
    members = chain(head, members)

    parsed: tuple[Any] | None = None
    if format == "auto":
        format, parsed = detect_and_parse(
            sample, gzip_members=len(head) if gzipped else 0, name=source_object
        )
        if len(head) > 1:
            parsed = None  # the document of one member only

    if format in ("subscription", "kinesis", "firehose"):
        if parsed is not None:
            docs = iter([("input", parsed[0])])
        else:
            docs = iter_envelope_documents(members, gzipped=gzipped)
        return decode_envelope_documents(docs, source_object=source_object, budget=budget)
    payload = b"".join(members)
    if format == "events":
        api_docs = parsed if parsed is not None else iter_json_documents(payload)
        return decode_api_documents(
            api_docs, log_group=log_group, log_stream=log_stream, source_object=source_object
        )
    group = _require(log_group, "log_group", f"format {format!r} needs a log group")
    if format == "export":
        stream = log_stream
        if not stream:
            if source_object is None:
                raise MissingArgumentError(
                    "log_stream", "format 'export' needs the object key or a log stream"
                )
            stream = stream_from_export_key(source_object)
        return decode_export(payload, log_group=group, log_stream=stream, source_object=source_object)
    stream = _require(log_stream, "log_stream", "format 'messages' needs a log stream")
    if default_timestamp_ms is None:
        raise MissingArgumentError(
            "default_timestamp_ms",
            "format 'messages' carries no timestamps; a default timestamp is needed",
        )
    return decode_messages(
        payload,
        log_group=group,
        log_stream=stream,
        timestamp_ms=default_timestamp_ms,
        source_object=source_object,
    )


def independent_members(
    data: bytes,
    *,
    format: str = "auto",
    source_object: str | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> bool:
    """True when ``data`` is several gzip members of subscription envelopes.

    Such members decode independently of each other (and in any order): the events of the
    payload are the events of each member, in member order. Only the first members are
    decompressed to find out. False for anything else, including input that does not decode
    (:func:`iter_decode` then raises the error).
    """
    if not is_gzip(data) or (format != "auto" and format not in ("subscription", "firehose")):
        return False
    try:
        head = _head(iter_gzip_members(data, budget=DecompressionBudget(max_decompressed_bytes)))
        if len(head) < 2:
            return False
        if format != "auto":
            return True
        sample = next(m for m in head if not _blank(m))
        detected, _ = detect_and_parse(sample, gzip_members=len(head), name=source_object)
    except (DecodeError, ValueError):
        return False
    return detected in ("subscription", "firehose")


def _head(members: Iterator[bytes]) -> list[bytes]:
    """The members up to the first non-empty one, and one more; empty when all are blank.

    Enough to detect the format and to tell one member from several: the rest is
    decompressed as it is consumed.
    """
    head: list[bytes] = []
    for member in members:
        head.append(member)
        if not _blank(member):
            head.extend(islice(members, 1))
            return head
    return []


def _blank(member: bytes) -> bool:
    """Nothing but whitespace and byte order marks."""
    return not member.replace(_UTF8_BOM, b"").strip()


def _require(value: str | None, argument: str, message: str) -> str:
    if not value:
        raise MissingArgumentError(argument, message)
    return value

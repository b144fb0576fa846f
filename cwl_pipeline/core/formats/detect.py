"""Recognising the delivery format of a payload from its content."""

from __future__ import annotations

import re
from typing import Any

from cwl_pipeline.core.formats.errors import DecodeError
from cwl_pipeline.core.formats.gzip_members import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    gunzip_members,
    is_gzip,
)
from cwl_pipeline.core.formats.json_documents import first_document
from cwl_pipeline.core.formats.timestamps import match_rfc3339_prefix

# Firehose names S3 objects <stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random uuid>.
_FIREHOSE_OBJECT = re.compile(
    r"-\d+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"(\.gz)?$"
)
_UTF8_BOM = b"\xef\xbb\xbf"
_UNDETECTED = "cannot detect format; pass --format"
_WRITE_TEST_TEXT = "Permission Check Successful"


def detect_format(
    data: bytes, name: str | None = None, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> str:
    """The format of ``data``: ``events``, ``subscription``, ``kinesis``, ``firehose`` or ``export``.

    ``messages`` is never detected (any text would match); it must be asked for. ``name``,
    the object key or file name, only tells Firehose objects holding a single envelope apart
    from a subscription payload; both decode identically.

    Raises:
        DecodeError: the input is empty, corrupt, decompresses to more than
            ``max_decompressed_bytes``, or is in no known format.
    """
    if is_gzip(data):
        members = gunzip_members(data, max_decompressed_bytes)
        sample = next((m for m in members if m.strip()), b"")
        return detect_payload(sample, gzip_members=len(members), name=name)
    return detect_payload(data, gzip_members=0, name=name)


def detect_payload(payload: bytes, *, gzip_members: int, name: str | None) -> str:
    """Detect the format of an already decompressed payload (see :func:`detect_format`)."""
    return detect_and_parse(payload, gzip_members=gzip_members, name=name)[0]


def detect_and_parse(payload: bytes, *, gzip_members: int, name: str | None) -> tuple[str, tuple[Any] | None]:
    """Detect the format; also return the payload's JSON document when it is the only one.

    Decoding reuses that document rather than parsing the payload twice.
    """
    head = payload.lstrip()
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :].lstrip()
    if not head:
        raise DecodeError("input is empty")
    if head[:1] in (b"{", b"["):
        try:
            doc, single = first_document(head)
        except DecodeError as exc:
            raise DecodeError(f"{_UNDETECTED} (input looks like JSON but: {exc})") from None
        fmt = _json_format(doc, single=single, gzip_members=gzip_members, name=name)
        return fmt, ((doc,) if single else None)
    line = head[:200].decode("utf-8", "replace")
    if match_rfc3339_prefix(line) is not None:
        return "export", None
    if line.startswith(_WRITE_TEST_TEXT):
        raise DecodeError(
            "this is the aws-logs-write-test object CreateExportTask writes to check its access to "
            "the bucket; it holds no log events"
        )
    raise DecodeError(_UNDETECTED)


def _json_format(doc: Any, *, single: bool, gzip_members: int, name: str | None) -> str:
    if isinstance(doc, dict):
        if "awslogs" in doc:
            return "subscription"
        records = doc.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            if "kinesis" in records[0]:
                return "kinesis"
            source = records[0].get("eventSource")
            raise DecodeError(
                f"{_UNDETECTED} (an event of {source or 'another AWS service'} whose records are not "
                "Kinesis records)"
            )
        if "messageType" in doc:
            several = gzip_members > 1 or not single
            if several or (name is not None and _FIREHOSE_OBJECT.search(name)):
                return "firehose"
            return "subscription"
        if isinstance(doc.get("events"), list):
            return "events"
    elif isinstance(doc, list) and all(
        isinstance(e, dict) and "timestamp" in e and "message" in e for e in doc
    ):
        return "events"
    raise DecodeError(f"{_UNDETECTED} (JSON that is not a known CloudWatch Logs format)")

"""The ``export`` format: files written to S3 by CloudWatch Logs CreateExportTask.

Each file is gzip text holding the events of one log stream, one event per line::

    2026-11-20T10:00:00.123Z {"session_id":1}

A line that does not start with a timestamp continues the previous event's message
(multi-line messages such as stack traces), joined with ``\\n``. AWS does not guarantee the
lines are in time order; events are yielded in file order. The files carry neither the log
group (the caller knows which group it exported) nor the stream, which is in the object key:
``<prefix>/<exportTaskId>/<logStreamName>/000000.gz``. Export lines carry no event id, so one
is derived (:mod:`cwl_pipeline.core.identity`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.errors import DecodeError, MissingArgumentError
from cwl_pipeline.core.formats.timestamps import match_rfc3339_prefix
from cwl_pipeline.core.identity import DerivedEventIds

_new_event = tuple.__new__  # builds a LogEvent without NamedTuple's keyword handling

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def stream_from_export_key(key: str, *, prefix: str | None = None) -> str:
    """The log stream name of an export file, from its S3 key (or a local copy's path).

    Keys are ``<prefix>/<exportTaskId>/<logStreamName>/<NNNNNN>.gz``; stream names may
    contain ``/`` and then span several key segments. The task-id segment is found by:

    * ``prefix``, when given (the ``destinationPrefix`` of the export task): the segment
      right after it;
    * otherwise the first segment that is a UUID, as export task ids are;
    * otherwise, for keys without a UUID segment, the stream is the parent folder name.

    Raises:
        MissingArgumentError: the key has no stream segment (``argument`` is
            ``log_stream``: pass the stream explicitly).
    """
    segments = [s for s in key.replace("\\", "/").split("/") if s and s != "."]
    if prefix is not None:
        prefix_segments = [s for s in prefix.split("/") if s]
        if segments[: len(prefix_segments)] != prefix_segments:
            raise MissingArgumentError("log_stream", f"export key {key!r} is not under prefix {prefix!r}")
        task_index = len(prefix_segments)
    else:
        task_index = next((i for i, s in enumerate(segments) if _UUID.fullmatch(s)), -1)
        if task_index < 0:
            task_index = len(segments) - 3
    stream_segments = segments[task_index + 1 : -1]
    if task_index < -1 or not stream_segments:
        raise MissingArgumentError(
            "log_stream",
            f"cannot find the log stream in export key {key!r} "
            "(expected <prefix>/<exportTaskId>/<logStreamName>/000000.gz)",
        )
    return "/".join(stream_segments)


def decode_export(
    text: bytes,
    *,
    log_group: str,
    log_stream: str,
    source_object: str | None,
) -> Iterator[LogEvent]:
    """Decode the (already decompressed) text of one export file.

    Raises:
        DecodeError: the text does not start with a timestamped line.
    """
    lines, dirty = _split_lines(text)
    ids = DerivedEventIds()
    timestamp = 0
    parts: list[str] = []

    def finish() -> LogEvent:
        message: str | bytes = parts[0] if len(parts) == 1 else "\n".join(parts)
        if dirty:
            message = _restore_bytes(message)
        event_id = ids(log_group, log_stream, timestamp, message)
        return _new_event(
            LogEvent,
            (event_id, timestamp, message, log_group, log_stream, None, source_object),
        )

    for number, line in enumerate(lines, start=1):
        parsed = match_rfc3339_prefix(line)
        if parsed is None:
            if not parts:
                raise DecodeError(f"export line {number} does not start with a timestamp")
            parts.append(line)
            continue
        if parts:
            yield finish()
        timestamp, end = parsed
        # One space separates the timestamp from the message.
        parts = [line[end + 1 :] if line[end : end + 1] == " " else line[end:]]
    if parts:
        yield finish()


def _split_lines(text: bytes) -> tuple[list[str], bool]:
    """Lines of ``text`` and whether some bytes were not UTF-8.

    Invalid bytes are kept as surrogate escapes so they survive the line handling and are
    restored as raw bytes in the message (normalization rejects such messages as
    ``invalid_utf8``).
    """
    try:
        decoded = text.decode("utf-8")
        dirty = False
    except UnicodeDecodeError:
        decoded = text.decode("utf-8", "surrogateescape")
        dirty = True
    if decoded.endswith("\n"):
        decoded = decoded[:-1]
    return decoded.removeprefix("\ufeff").split("\n"), dirty


def _restore_bytes(message: str) -> str | bytes:
    raw = message.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw

"""The ``messages`` format: one raw message per line.

This is what Firehose writes with message extraction enabled, and any plain log file. The
lines carry no log group, stream, timestamp or id: group and stream come from the caller,
the timestamp is one value for the whole source (for example the S3 object's LastModified),
and ids are derived (:mod:`cwl_pipeline.core.identity`). Empty lines are skipped, as
CloudWatch events cannot be empty. Lines that are not UTF-8 are kept as ``bytes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.identity import DerivedEventIds

_new_event = tuple.__new__  # builds a LogEvent without NamedTuple's keyword handling


def decode_messages(
    text: bytes,
    *,
    log_group: str,
    log_stream: str,
    timestamp_ms: int,
    source_object: str | None,
) -> Iterator[LogEvent]:
    """Decode newline-delimited raw messages (already decompressed)."""
    ids = DerivedEventIds()
    try:
        lines: list[str] | list[bytes] = text.decode("utf-8").removeprefix("\ufeff").split("\n")
    except UnicodeDecodeError:
        lines = text.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    for line in lines:
        if not line:
            continue
        message: str | bytes = line
        if isinstance(line, bytes):
            # Only the lines that are not UTF-8 stay bytes.
            with suppress(UnicodeDecodeError):
                message = line.decode("utf-8")
        event_id = ids(log_group, log_stream, timestamp_ms, message)
        yield _new_event(
            LogEvent,
            (event_id, timestamp_ms, message, log_group, log_stream, None, source_object),
        )

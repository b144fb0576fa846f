"""Deterministic event ids for events whose delivery format carries none.

CloudWatch assigns every event an id, and the subscription, Firehose and FilterLogEvents
formats carry it; the pipeline keeps it. Export files, extracted messages and GetLogEvents
responses carry no id, so one is derived::

    "d-" + blake2b(version, log_group, log_stream, timestamp_ms, message, occurrence)[:40 hex]

``occurrence`` is the position of the event among the events of the same source (one S3
object, or one API response) that have the same log group, stream, timestamp and message:
0 for the first, 1 for the next identical one, and so on. Hence:

* reading the same source again gives the same ids, whatever the order of its lines (AWS
  does not guarantee the order of export lines), so reloads deduplicate;
* two distinct events of a source never share an id, even identical duplicate lines;
* the same event exported twice (two export tasks covering it) gets the same id.

Fields are length-prefixed before hashing, so no choice of names or message can make two
different field tuples hash the same input. The ``d-`` prefix cannot clash with CloudWatch's
own ids, which are digits only.
"""

from __future__ import annotations

from hashlib import blake2b

DERIVED_ID_PREFIX = "d-"
_VERSION = b"cwl-event-id/1"


def _field(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return b"%d:%s" % (len(raw), raw)


def derived_event_id(
    log_group: str,
    log_stream: str,
    timestamp_ms: int,
    message: str | bytes,
    occurrence: int = 0,
) -> str:
    """The derived id of an event (see the module documentation for the rule)."""
    digest = blake2b(digest_size=20)
    digest.update(_VERSION)
    digest.update(_field(log_group))
    digest.update(_field(log_stream))
    digest.update(b"%d;%d;" % (timestamp_ms, occurrence))
    digest.update(_field(message))
    return DERIVED_ID_PREFIX + digest.hexdigest()


def is_derived(event_id: str) -> bool:
    """Whether ``event_id`` was derived here rather than assigned by CloudWatch."""
    return event_id.startswith(DERIVED_ID_PREFIX)


class DerivedEventIds:
    """Assigns derived ids to the events of one source, numbering identical events.

    Use one instance per source object (or per API response, or share it across the pages of
    one poll so duplicates spanning a page boundary stay distinct).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, int, str | bytes], int] = {}

    def __call__(self, log_group: str, log_stream: str, timestamp_ms: int, message: str | bytes) -> str:
        """The id of the next event with these fields."""
        key = (log_group, log_stream, timestamp_ms, message)
        occurrence = self._seen.get(key, 0)
        self._seen[key] = occurrence + 1
        return derived_event_id(log_group, log_stream, timestamp_ms, message, occurrence)

"""The ``events`` format: event lists from the FilterLogEvents and GetLogEvents APIs.

Events are dicts as boto3 returns them: ``eventId``, ``timestamp``, ``message``,
``ingestionTime`` and, for FilterLogEvents, ``logStreamName``. GetLogEvents events have
neither a stream name (it is the one the caller asked for) nor an ``eventId``; their id is
derived (:mod:`cwl_pipeline.core.identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.errors import DecodeError, MissingArgumentError
from cwl_pipeline.core.identity import DerivedEventIds


def events_from_api(
    raw_events: Iterable[dict[str, Any]],
    log_group: str,
    log_stream: str | None = None,
    *,
    source_object: str | None = None,
    ids: DerivedEventIds | None = None,
) -> Iterator[LogEvent]:
    """Turn API event dicts into :class:`LogEvent` objects.

    Args:
        raw_events: the ``events`` list of a FilterLogEvents or GetLogEvents response.
        log_group: the log group that was queried (an event's own ``logGroupName``, when
            present, takes precedence).
        log_stream: the stream for events without ``logStreamName`` (GetLogEvents).
        source_object: recorded on every event.
        ids: numbering of derived ids; pass one instance across the pages of a poll so
            identical events on different pages keep distinct ids.

    Raises:
        DecodeError: an event lacks a field or has one of the wrong type.
        MissingArgumentError: an event has no stream and ``log_stream`` is None, or no log
            group is known.
    """
    derive = ids if ids is not None else DerivedEventIds()
    for index, raw in enumerate(raw_events):
        where = f"event #{index + 1}"
        if type(raw) is not dict:
            raise DecodeError(f"{where} is not an object")
        timestamp = raw.get("timestamp")
        message = raw.get("message")
        if type(timestamp) is not int:
            raise DecodeError(f"{where} has no integer 'timestamp'")
        if type(message) is not str:
            raise DecodeError(f"{where} has no string 'message'")
        group = raw.get("logGroupName", log_group)
        stream = raw.get("logStreamName", log_stream)
        if not group or type(group) is not str:
            raise MissingArgumentError("log_group", "events carry no log group and none was given")
        if not stream or type(stream) is not str:
            raise MissingArgumentError(
                "log_stream",
                f"{where} has no logStreamName (GetLogEvents) and no log stream was given",
            )
        ingestion = raw.get("ingestionTime")
        if ingestion is not None and type(ingestion) is not int:
            raise DecodeError(f"{where} has a non-integer 'ingestionTime'")
        event_id = raw.get("eventId")
        if event_id is None:
            event_id = derive(group, stream, timestamp, message)
        elif type(event_id) is int:
            event_id = str(event_id)
        elif type(event_id) is not str or not event_id:
            raise DecodeError(f"{where} has an invalid 'eventId'")
        yield LogEvent(event_id, timestamp, message, group, stream, ingestion, source_object)


def decode_api_documents(
    docs: Iterable[Any],
    *,
    log_group: str | None,
    log_stream: str | None,
    source_object: str | None,
) -> Iterator[LogEvent]:
    """Decode API responses: ``{"events": [...]}`` objects or bare lists of event dicts."""
    ids = DerivedEventIds()
    for number, doc in enumerate(docs, start=1):
        if type(doc) is dict and type(doc.get("events")) is list:
            raw_events = doc["events"]
        elif type(doc) is list:
            raw_events = doc
        else:
            raise DecodeError(
                f"document {number} is neither an API response with an 'events' list nor a list of events"
            )
        yield from events_from_api(
            raw_events, log_group or "", log_stream, source_object=source_object, ids=ids
        )

"""S3 event notifications of new objects, as SQS delivers them (no I/O).

A bucket's event notification configuration can send ``s3:ObjectCreated:*`` events to an SQS
queue directly, through an SNS topic, or through EventBridge; the message body differs:

* S3 to SQS: ``{"Records": [{"eventName": "ObjectCreated:Put", "eventTime": ...,
  "s3": {"bucket": {"name": ...}, "object": {"key": ..., "size": ..., "eTag": ...}}}]}``, the
  key URL-encoded as in a form (``+`` for a space); the first message of a new configuration
  is ``{"Event": "s3:TestEvent", ...}``
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html);
* through SNS (raw message delivery off): ``{"Type": "Notification", "Message": "<that JSON>"}``;
* EventBridge: ``{"detail-type": "Object Created", "detail": {"bucket": {"name": ...},
  "object": {"key": ...}}}``, the key not encoded.

:func:`parse_notification` reads any of them into :class:`ObjectEvent` s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class NotificationError(ValueError):
    """A message that is no S3 event notification (its text says why)."""


@dataclass(frozen=True)
class ObjectEvent:
    """One object an S3 event notification names."""

    bucket: str
    key: str
    event_name: str  # e.g. "ObjectCreated:Put", "ObjectRemoved:Delete", "Object Created"
    event_time: str = ""

    @property
    def created(self) -> bool:
        """Whether the event says the object was written (not deleted, restored, ...)."""
        return self.event_name.replace(" ", "").startswith("ObjectCreated")


def parse_notification(body: str) -> list[ObjectEvent]:
    """The objects one SQS message names (none for S3's test event).

    Raises:
        NotificationError: the body is not JSON, or not a notification of a known shape.
    """
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise NotificationError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise NotificationError("not a JSON object")
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return parse_notification(document["Message"])  # through SNS
    if document.get("Event") == "s3:TestEvent":
        return []
    if "detail-type" in document and isinstance(document.get("detail"), dict):
        return [_eventbridge(document)]
    records = document.get("Records")
    if not isinstance(records, list):
        raise NotificationError("no Records, Event, detail or SNS Message in it")
    return [_record(record) for record in records]


def _record(record: Any) -> ObjectEvent:
    s3 = record.get("s3") if isinstance(record, dict) else None
    bucket = _dig(s3, "bucket", "name")
    key = _dig(s3, "object", "key")
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise NotificationError("a record without s3.bucket.name and s3.object.key")
    return ObjectEvent(
        bucket=bucket,
        key=unquote_plus(key),
        event_name=str(record.get("eventName", "")),
        event_time=str(record.get("eventTime", "")),
    )


def _eventbridge(document: dict[str, Any]) -> ObjectEvent:
    detail = document["detail"]
    bucket = _dig(detail, "bucket", "name")
    key = _dig(detail, "object", "key")
    if not isinstance(bucket, str) or not isinstance(key, str):
        raise NotificationError("an EventBridge event without detail.bucket.name and detail.object.key")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        event_name=str(document["detail-type"]),
        event_time=str(document.get("time", "")),
    )


def _dig(value: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value

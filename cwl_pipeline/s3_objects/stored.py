"""S3 objects as the pure decoding sees them: key, version tag, size and modification time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import blake2b


@dataclass(frozen=True)
class StoredObject:
    """One listed S3 object. ``etag`` changes whenever the content does."""

    key: str
    etag: str
    size: int
    last_modified: datetime


PUT_LOG_EVENTS_MAX_AGE = timedelta(days=14)
"""PutLogEvents refuses events more than 14 days older than their ingestion."""
PUT_LOG_EVENTS_MAX_AHEAD = timedelta(hours=2)
"""PutLogEvents refuses events more than 2 hours ahead of their ingestion."""
SUBSCRIPTION_DELIVERY_RETRY = timedelta(hours=24)
"""CloudWatch retries a subscription filter's delivery for up to 24 hours."""
FIREHOSE_MAX_BUFFER = timedelta(seconds=900)
"""Firehose buffers at most 900 s before it writes an object to S3."""


def subscription_event_times(delivered: Sequence[datetime]) -> tuple[datetime, datetime] | None:
    """``[earliest, latest)`` event time the CloudWatch events of Firehose objects written at
    ``delivered`` (their S3 LastModified) can carry: an event reaches S3 at most the
    subscription's retry time plus Firehose's buffer after its ingestion, never before it, and
    its time is at most 14 days before its ingestion and 2 hours after it. None for no object."""
    if not delivered:
        return None
    earliest = min(delivered) - SUBSCRIPTION_DELIVERY_RETRY - FIREHOSE_MAX_BUFFER - PUT_LOG_EVENTS_MAX_AGE
    return earliest, max(delivered) + PUT_LOG_EVENTS_MAX_AHEAD + timedelta(milliseconds=1)


def object_uri(bucket: str, key: str) -> str:
    """The ``s3://bucket/key`` form recorded in the ``source_object`` column."""
    return f"s3://{bucket}/{key}"


def object_set_version(objects: Iterable[StoredObject]) -> str:
    """A short digest of a set of objects (keys and ETags), independent of their order.

    Used in run keys: the same set of objects gives the same key (a duplicate request is
    skipped), a new or rewritten object gives a new one (the re-run is launched).
    """
    digest = blake2b(digest_size=8)
    for key, etag in sorted({(o.key, o.etag) for o in objects}):
        digest.update(f"{len(key)}:{key}{len(etag)}:{etag}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()

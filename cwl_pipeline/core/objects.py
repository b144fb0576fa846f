"""S3 objects as the pure core sees them: key, version tag, size and modification time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b


@dataclass(frozen=True)
class StoredObject:
    """One listed S3 object. ``etag`` changes whenever the content does."""

    key: str
    etag: str
    size: int
    last_modified: datetime


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

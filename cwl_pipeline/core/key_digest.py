"""A digest of a set of events that BigQuery computes the same way: their count, and the XOR of
a 60-bit hash of each event's key (its id and its time in microseconds).

A sweep compares the digest of what it read with the digest of what its window holds; equal
digests mean the window holds every event the sweep read (and no other), so there is nothing
to stage. The hash is the first 15 hex digits of the MD5 of ``<event id>|<micros>``: MD5,
``TO_HEX`` and a hex ``CAST`` to INT64 are all GoogleSQL has for it
(:func:`cwl_pipeline.adapters.bigquery_client.key_hash_sql` spells the same in SQL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

HASH_HEX_DIGITS = 15


def key_hash(event_id: str, micros: int) -> int:
    """The 60-bit hash of one event's key: its id and its time in microseconds since the epoch."""
    text = f"{event_id}|{micros}".encode()
    return int(hashlib.md5(text, usedforsecurity=False).hexdigest()[:HASH_HEX_DIGITS], 16)


def key_hashes(ids: Iterable[str | None], micros: Iterable[int | None]) -> list[int | None]:
    """The key hash of each event (``None`` for one without an id or a time)."""
    return [
        None if event_id is None or time is None else key_hash(event_id, time)
        for event_id, time in zip(ids, micros, strict=True)
    ]


@dataclass
class KeyDigest:
    """Count and XOR of the key hashes of a set of events (rows without an id or a time are
    counted, not hashed, as BigQuery's ``BIT_XOR`` skips NULL)."""

    count: int = 0
    xor: int = 0

    def add(self, ids: Iterable[str | None], micros: Iterable[int | None]) -> None:
        """Add the events whose keys are the pairs of ``ids`` and times ``micros``."""
        for hashed in key_hashes(ids, micros):
            self.count += 1
            if hashed is not None:
                self.xor ^= hashed

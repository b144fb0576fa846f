"""The key digest a sweep compares with its window: count and XOR of 60-bit key hashes."""

from __future__ import annotations

import hashlib

from cwl_pipeline.core.key_digest import KeyDigest, key_hash


def digest(pairs: list[tuple[str | None, int | None]]) -> KeyDigest:
    result = KeyDigest()
    result.add([i for i, _ in pairs], [t for _, t in pairs])
    return result


def test_the_hash_is_the_first_15_hex_digits_of_the_md5_of_id_and_micros() -> None:
    expected = int(hashlib.md5(b"3701|1764979200123456").hexdigest()[:15], 16)
    assert key_hash("3701", 1_764_979_200_123_456) == expected
    assert 0 <= key_hash("3701", 0) < 2**60


def test_the_digest_does_not_depend_on_order_or_chunks() -> None:
    pairs = [(f"{i:056d}", 1_764_979_200_000_000 + i) for i in range(50)]
    chunked = KeyDigest()
    chunked.add([i for i, _ in pairs[:20]], [t for _, t in pairs[:20]])
    chunked.add([i for i, _ in pairs[20:]], [t for _, t in pairs[20:]])
    assert digest(list(reversed(pairs))) == digest(pairs) == chunked


def test_a_different_event_or_time_changes_the_digest() -> None:
    pairs = [("1", 10), ("2", 20), ("3", 30)]
    assert digest(pairs) != digest([("1", 10), ("2", 20), ("4", 30)])  # one event swapped
    assert digest(pairs) != digest([("1", 10), ("2", 20), ("3", 31)])  # same id, other time
    assert digest(pairs) != digest(pairs[:2])  # one missing


def test_rows_without_a_key_are_counted_not_hashed() -> None:
    assert digest([("1", 10), (None, 20), ("2", None)]) == KeyDigest(3, key_hash("1", 10))

"""Multi-member gzip decompression, including members that span input chunks."""

from __future__ import annotations

import gzip
import random

import pytest

from cwl_pipeline.core.formats import DecodeError
from cwl_pipeline.core.formats.gzip_members import (
    DecompressionBudget,
    gunzip_members,
    is_gzip,
    iter_gzip_members,
)


def test_members_of_every_size_round_trip():
    rng = random.Random(3)
    # Incompressible members larger than the 256 KiB feed chunk, small ones, and empty ones,
    # so member boundaries fall at many offsets within a chunk.
    originals = [
        rng.randbytes(300_000),
        b"",
        b"small",
        rng.randbytes(1),
        b"x" * 1_000_000,
        rng.randbytes(262_144),
        b"",
    ]
    data = b"".join(gzip.compress(o) for o in originals)
    assert gunzip_members(data) == originals
    assert list(iter_gzip_members(data)) == originals


def test_is_gzip():
    assert is_gzip(gzip.compress(b"a"))
    assert not is_gzip(b"{}")
    assert not is_gzip(b"")


@pytest.mark.parametrize("cut", [1, 5, 11, 20])
def test_truncation_anywhere_is_reported(cut):
    data = gzip.compress(b"a" * 1000) * 2
    with pytest.raises(DecodeError, match="member 2"):
        gunzip_members(data[:-cut])


def test_bad_checksum_is_corrupt():
    data = bytearray(gzip.compress(b"payload"))
    data[-8] ^= 0xFF  # CRC32 trailer
    with pytest.raises(DecodeError, match="corrupt gzip data in member 1"):
        gunzip_members(bytes(data))


def test_lazy_iteration_reports_a_late_error_late():
    data = gzip.compress(b"first") + b"junk"
    members = iter_gzip_members(data)
    assert next(members) == b"first"
    with pytest.raises(DecodeError, match="non-gzip bytes after gzip member 1"):
        next(members)


def test_decompressed_size_at_the_limit_passes_and_one_byte_more_fails():
    data = gzip.compress(b"a" * 600) + gzip.compress(b"b" * 400)
    assert gunzip_members(data, 1000) == [b"a" * 600, b"b" * 400]
    with pytest.raises(DecodeError, match="decompressed size exceeds 999 bytes"):
        gunzip_members(data, 999)


def test_limit_is_shared_with_a_budget():
    budget = DecompressionBudget(1500)
    assert gunzip_members(gzip.compress(b"x" * 1000), budget=budget) == [b"x" * 1000]
    with pytest.raises(DecodeError, match="exceeds 1500 bytes"):
        gunzip_members(gzip.compress(b"y" * 501), budget=budget)


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="positive integer"):
        DecompressionBudget(0)

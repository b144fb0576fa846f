"""Multi-member gzip: several gzip members back to back, as Firehose writes them to S3.

Decompression is bounded: a payload may produce at most a set number of decompressed bytes
(:data:`DEFAULT_MAX_DECOMPRESSED_BYTES` unless the caller says otherwise). zlib is asked for
no more than the bytes still allowed, so a gzip bomb (gigabytes of zeros compressed a
thousandfold) raises :class:`DecodeError` as soon as it passes the limit, having produced
only the limit plus one byte.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from cwl_pipeline.core.formats.errors import DecodeError

GZIP_MAGIC = b"\x1f\x8b"

DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30
"""Default limit on the decompressed size of one payload (1 GiB)."""

# Input is fed to zlib in bounded chunks so that ``unused_data`` (the bytes after a member's
# end, copied by zlib) stays small; feeding the whole remainder would copy it once per
# member, quadratic in the number of members.
_CHUNK = 256 * 1024


class DecompressionBudget:
    """The decompressed bytes one payload may still produce.

    One budget is shared by every decompression of a payload: its gzip members, and the gzip
    inside each Lambda event's ``awslogs.data``, so nesting cannot multiply the limit.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"the decompressed size limit must be a positive integer, not {limit!r}")
        self.limit = limit
        self.used = 0

    def error(self) -> DecodeError:
        """The error raised when a payload passes the limit."""
        return DecodeError(
            f"decompressed size exceeds {self.limit} bytes (max_decompressed_bytes); "
            "refusing the input as a possible decompression bomb"
        )

    def charge(self, size: int) -> None:
        """Count ``size`` bytes of payload that were not decompressed (plain input).

        Raises:
            DecodeError: the payload passes the limit.
        """
        self.used += size
        if self.used > self.limit:
            raise self.error()


def is_gzip(data: bytes) -> bool:
    """True when ``data`` starts with the gzip magic bytes."""
    return data[:2] == GZIP_MAGIC


def gunzip_members(
    data: bytes,
    max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    *,
    budget: DecompressionBudget | None = None,
) -> list[bytes]:
    """Decompress every gzip member of ``data``; one bytes object per member, in order.

    Zero bytes after the last member (padding some writers add) are ignored.

    Args:
        data: the gzip payload.
        max_bytes: the most decompressed bytes allowed, over all members.
        budget: a budget shared with other decompressions of the same payload; replaces
            ``max_bytes``.

    Raises:
        DecodeError: a member is corrupt or truncated, non-gzip bytes follow a member, or the
            decompressed size passes the limit.
    """
    return list(iter_gzip_members(data, max_bytes, budget=budget))


def iter_gzip_members(
    data: bytes,
    max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    *,
    budget: DecompressionBudget | None = None,
) -> Iterator[bytes]:
    """Like :func:`gunzip_members`, decompressing one member at a time.

    Errors in a member surface when the iteration reaches it.
    """
    if budget is None:
        budget = DecompressionBudget(max_bytes)
    view = memoryview(data)
    size = len(data)
    pos = 0
    number = 0
    while pos < size:
        number += 1
        if view[pos : pos + 2] != GZIP_MAGIC:
            if not view[pos:].tobytes().strip(b"\x00"):
                return
            raise DecodeError(f"unexpected non-gzip bytes after gzip member {number - 1}")
        try:
            member, pos, ended = inflate_member(view, pos, budget)
        except zlib.error as exc:
            raise DecodeError(f"corrupt gzip data in member {number}: {exc}") from None
        if not ended:
            raise DecodeError(f"truncated gzip data: member {number} ends early")
        yield member


def inflate_member(view: memoryview, pos: int, budget: DecompressionBudget) -> tuple[bytes, int, bool]:
    """Inflate the gzip member that starts at ``pos`` of ``view``.

    Returns its bytes, the position just after it, and whether it ended (False: ``view`` ran
    out first). Raises ``zlib.error`` on corrupt data, and the budget's error past its limit.
    """
    size = len(view)
    inflater = zlib.decompressobj(wbits=31)
    parts: list[bytes] = []
    while not inflater.eof and pos < size:
        chunk = view[pos : pos + _CHUNK]
        pos += len(chunk)
        # One byte more than allowed tells "exactly at the limit" from "past it".
        part = inflater.decompress(chunk, budget.limit - budget.used + 1)
        budget.used += len(part)
        if budget.used > budget.limit:
            raise budget.error()
        parts.append(part)
    if inflater.eof:
        pos -= len(inflater.unused_data)
    member = parts[0] if len(parts) == 1 else b"".join(parts)
    return member, pos, inflater.eof

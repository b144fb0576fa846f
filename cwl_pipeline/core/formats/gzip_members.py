"""Multi-member gzip: several gzip members back to back, as Firehose writes them to S3."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from cwl_pipeline.core.formats.errors import DecodeError

GZIP_MAGIC = b"\x1f\x8b"

# Input is fed to zlib in bounded chunks so that ``unused_data`` (the bytes after a member's
# end, copied by zlib) stays small; feeding the whole remainder would copy it once per
# member, quadratic in the number of members.
_CHUNK = 256 * 1024


def is_gzip(data: bytes) -> bool:
    """True when ``data`` starts with the gzip magic bytes."""
    return data[:2] == GZIP_MAGIC


def gunzip_members(data: bytes) -> list[bytes]:
    """Decompress every gzip member of ``data``; one bytes object per member, in order.

    Zero bytes after the last member (padding some writers add) are ignored.

    Raises:
        DecodeError: a member is corrupt or truncated, or non-gzip bytes follow a member.
    """
    return list(iter_gzip_members(data))


def iter_gzip_members(data: bytes) -> Iterator[bytes]:
    """Like :func:`gunzip_members`, decompressing one member at a time.

    Errors in a member surface when the iteration reaches it.
    """
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
        inflater = zlib.decompressobj(wbits=31)
        parts: list[bytes] = []
        try:
            while not inflater.eof and pos < size:
                chunk = view[pos : pos + _CHUNK]
                pos += len(chunk)
                parts.append(inflater.decompress(chunk))
        except zlib.error as exc:
            raise DecodeError(f"corrupt gzip data in member {number}: {exc}") from None
        if not inflater.eof:
            raise DecodeError(f"truncated gzip data: member {number} ends early")
        pos -= len(inflater.unused_data)
        yield parts[0] if len(parts) == 1 else b"".join(parts)

"""Column-level timestamp formats: how a TIMESTAMP column reads a field's value.

A column may declare ``format``: one format or a list tried in order. Each is one of:

``rfc3339``
    An RFC 3339 string (``2021-05-03T11:47:12.494Z``, any fraction, ``Z`` or an offset).
``epoch_s`` / ``epoch_ms`` / ``epoch_us`` / ``epoch_ns``
    A number of seconds / milliseconds / microseconds / nanoseconds since the epoch, as a
    JSON number or a decimal string (fractions allowed; truncated to the millisecond).
a strftime-style pattern (anything with a ``%`` directive)
    Parsed by :meth:`datetime.strptime`, e.g. AWS Lambda Powertools'
    ``%Y-%m-%d %H:%M:%S,%f%z`` for ``2021-05-03 11:47:12,494+0000``. Without ``%z`` the
    time is taken as UTC.

Values are read as milliseconds since the epoch, like every timestamp in the pipeline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cwl_pipeline.core.formats.timestamps import parse_rfc3339_ms

EPOCH_FORMATS: dict[str, int] = {"epoch_s": 1000, "epoch_ms": 1, "epoch_us": -1000, "epoch_ns": -1_000_000}
"""Epoch formats and their factor to milliseconds (negative: a divisor)."""
NAMED_FORMATS: tuple[str, ...] = ("rfc3339", *EPOCH_FORMATS)

_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_MAX_DIGITS = 40  # far beyond any timestamp; bounds int() on hostile input
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_PROBE = datetime(2021, 5, 3, 11, 47, 12, 494000, tzinfo=UTC)

TimestampReader = Callable[[Any], int | None]
"""Reads a value as ms since the epoch; None when it is not in the format."""


class TimestampFormatError(ValueError):
    """A declared timestamp format is not usable."""


def check_format(fmt: Any) -> str:
    """Validate one format; returns it.

    Raises:
        TimestampFormatError: not a named format nor a strftime pattern that round-trips.
    """
    if not isinstance(fmt, str) or not fmt:
        raise TimestampFormatError(f"format {fmt!r} must be a string")
    if fmt in NAMED_FORMATS:
        return fmt
    if "%" not in fmt:
        raise TimestampFormatError(
            f"format {fmt!r} is neither one of {', '.join(NAMED_FORMATS)} nor a strftime pattern "
            "(e.g. '%Y-%m-%d %H:%M:%S,%f%z')"
        )
    try:
        datetime.strptime(_PROBE.strftime(fmt), fmt)
    except ValueError as exc:
        raise TimestampFormatError(f"format {fmt!r} is not a usable strftime pattern: {exc}") from None
    return fmt


def timestamp_reader(formats: Sequence[str]) -> TimestampReader:
    """A reader trying ``formats`` in order (each already validated by :func:`check_format`)."""
    readers = [_reader(f) for f in formats]
    if len(readers) == 1:
        return readers[0]

    def read(value: Any) -> int | None:
        for reader in readers:
            ms = reader(value)
            if ms is not None:
                return ms
        return None

    return read


def _reader(fmt: str) -> TimestampReader:
    if fmt == "rfc3339":
        return lambda value: parse_rfc3339_ms(value) if type(value) is str else None
    if fmt in EPOCH_FORMATS:
        return _epoch_reader(EPOCH_FORMATS[fmt])
    return _strptime_reader(fmt)


def _epoch_reader(factor: int) -> TimestampReader:
    def read(value: Any) -> int | None:
        kind = type(value)
        if kind is str:
            if len(value) > _MAX_DIGITS or not _DECIMAL.fullmatch(value):
                return None
            number: int | float = int(value) if "." not in value else float(value)
        elif kind is int or kind is float:
            number = value
        else:
            return None
        if type(number) is int:
            return number * factor if factor > 0 else number // -factor
        if not math.isfinite(number):
            return None
        return math.floor(number * factor if factor > 0 else number / -factor)

    return read


def _strptime_reader(fmt: str) -> TimestampReader:
    strptime = datetime.strptime

    def read(value: Any) -> int | None:
        if type(value) is not str:
            return None
        try:
            parsed = strptime(value, fmt)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return (parsed - _EPOCH) // _ONE_MS

    return read

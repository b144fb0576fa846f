"""RFC 3339 timestamps as integer milliseconds since the epoch.

Decoding and normalization handle timestamps as ``int`` milliseconds throughout, so no
per-event ``datetime`` objects are built; only the calendar day goes through
:mod:`datetime`, and that conversion is cached.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

# BigQuery's TIMESTAMP range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z.
BIGQUERY_MIN_MS = -62_135_596_800_000
BIGQUERY_MAX_MS = 253_402_300_799_999

_MS_PER_DAY = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Date, time, optional fraction of any precision, then ``Z`` or a numeric offset. RFC 3339
# allows a space instead of ``T`` and lower-case ``t``/``z``.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


@lru_cache(maxsize=4096)
def _day_ms(year: int, month: int, day: int) -> int | None:
    """Milliseconds from the epoch to the start of a calendar day; None for invalid dates."""
    try:
        return (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * _MS_PER_DAY
    except ValueError:
        return None


def _from_match(m: re.Match[str]) -> int | None:
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    day_ms = _day_ms(int(year), int(month), int(day))
    h, mi, s = int(hour), int(minute), int(second)
    if day_ms is None or h > 23 or mi > 59 or s > 59:
        return None
    ms = day_ms + h * 3_600_000 + mi * 60_000 + s * 1000
    if fraction:
        # Millisecond precision: finer digits are truncated.
        ms += int(fraction[:3].ljust(3, "0"))
    if offset not in ("Z", "z"):
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return None
        shift = (off_h * 60 + off_m) * 60_000
        ms = ms - shift if offset[0] == "+" else ms + shift
    return ms


def parse_rfc3339_ms(text: str) -> int | None:
    """Parse a complete RFC 3339 timestamp into ms since the epoch; None if it is not one.

    Any fractional precision is accepted (truncated to milliseconds), and the zone is
    ``Z`` or a ``+HH:MM``/``-HH:MM`` offset. Leap seconds (``:60``) are not accepted.
    """
    m = _RFC3339.fullmatch(text)
    return _from_match(m) if m else None


def match_rfc3339_prefix(line: str) -> tuple[int, int] | None:
    """Parse an RFC 3339 timestamp at the start of ``line``.

    Returns ``(ms, end)`` where ``end`` is the index just after the timestamp, or None when
    the line does not start with a valid timestamp.
    """
    m = _RFC3339.match(line)
    if m is None:
        return None
    ms = _from_match(m)
    return None if ms is None else (ms, m.end())


def format_rfc3339_ms(ms: int) -> str:
    """Format ms since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC).

    Raises:
        ValueError: ``ms`` lies outside years 1..9999.
    """
    days, rem = divmod(ms, _MS_PER_DAY)
    day = date.fromordinal(days + _EPOCH_ORDINAL)
    hour, rem = divmod(rem, 3_600_000)
    minute, rem = divmod(rem, 60_000)
    second, milli = divmod(rem, 1000)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"

"""GoogleSQL literals from typed values: the only place values are written into SQL text.

Values normally travel as query parameters. A multi-statement transaction script cannot carry
parameters on every BigQuery-compatible endpoint (the local emulator rejects them), so the few
values a script must hold (time bounds, which keep partition pruning) are written here, from
typed values only: a ``datetime`` becomes a ``TIMESTAMP`` literal, a ``str`` always becomes an
escaped ``STRING`` literal, never SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Escapes GoogleSQL documents for quoted strings; every other character (the double quote too,
# inside single quotes) is written as is: a quoted string may hold any character but a raw
# newline, its own quote and a lone backslash. Hex, octal, \u and \" escapes are avoided:
# the local emulator does not decode them (the round-trip test runs against it).
_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
}
_TRANSLATION = str.maketrans(_ESCAPES)


def timestamp_literal(value: datetime) -> str:
    """``TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff+00'`` for a timezone-aware datetime (UTC)."""
    if not isinstance(value, datetime):
        raise TypeError(f"a TIMESTAMP literal needs a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a TIMESTAMP literal needs a timezone-aware datetime")
    utc = value.astimezone(UTC)
    return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def string_literal(value: str) -> str:
    """A quoted ``STRING`` literal holding exactly ``value`` (NUL and lone surrogates refused)."""
    if not isinstance(value, str):
        raise TypeError(f"a STRING literal needs a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError("a STRING literal cannot hold NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a STRING literal must be valid Unicode (no lone surrogates)") from None
    return "'" + value.translate(_TRANSLATION) + "'"


def int_literal(value: int) -> str:
    """An ``INT64`` literal."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an INT64 literal needs an int, got {type(value).__name__}")
    if not -(2**63) <= value < 2**63:
        raise ValueError("out of INT64 range")
    return str(value)

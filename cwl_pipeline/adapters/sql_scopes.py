"""SQL predicates that scope a replacement to the rows of given S3 objects.

Values are written as escaped string literals (like :func:`~cwl_pipeline.adapters.bigquery.time_scope`
writes timestamps): multi-statement scripts with query parameters are not portable to every
BigQuery-compatible endpoint. Object keys may hold any character, so every one that is not
plainly printable is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def sql_string(value: str) -> str:
    """A GoogleSQL string literal holding exactly ``value``."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def in_scope(column: str, values: Iterable[str]) -> str:
    """``column IN (...)``; ``FALSE`` for no values (a scope that matches nothing)."""
    literals = sorted({sql_string(v) for v in values})
    if not literals:
        return "FALSE"
    return f"`{column}` IN ({', '.join(literals)})"


def prefix_scope(column: str, prefix: str, excluding: Iterable[str] = ()) -> str:
    """Rows whose ``column`` starts with ``prefix``, except those equal to one of ``excluding``."""
    scope = f"STARTS_WITH(`{column}`, {sql_string(prefix)})"
    excluded = sorted(set(excluding))
    if excluded:
        scope += f" AND NOT ({in_scope(column, excluded)})"
    return scope

"""The one validator for every BigQuery identifier that reaches SQL text.

Project, dataset, table and column names are written into SQL (quoted with backticks), so
each must be a plain name from a small ASCII alphabet: no backtick, dot, quote, semicolon,
whitespace, control or non-ASCII character (no look-alike letters either). The config
validates names with it when it loads, and the BigQuery loader validates them again right
before it builds a statement, so a name that bypassed the config still cannot change a query.
"""

from __future__ import annotations

import re
from typing import Literal

IdentifierKind = Literal["project", "dataset", "table", "column"]

# Stricter than BigQuery where BigQuery allows more (tables may hold some Unicode and dashes;
# columns too with flexible names): the pipeline never needs those, and plain names are
# unambiguous in SQL, asset keys and logs alike.
_PATTERNS: dict[str, re.Pattern[str]] = {
    # Google Cloud project ids: 6-30 lower-case letters, digits and hyphens.
    "project": re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]"),
    "dataset": re.compile(r"[A-Za-z0-9_]{1,1024}"),
    "table": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,1023}"),
    "column": re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}"),
}
_RULES = {
    "project": "6-30 lower-case letters, digits and hyphens, starting with a letter",
    "dataset": "1-1024 letters, digits and underscores",
    "table": "1-1024 letters, digits and underscores, not starting with a digit",
    "column": "1-300 letters, digits and underscores, not starting with a digit",
}
# Column name prefixes BigQuery reserves (case-insensitive).
_RESERVED_COLUMN_PREFIXES = (
    "_table_",
    "_file_",
    "_partition",
    "_row_timestamp",
    "__root__",
    "_colidentifier",
)


class IdentifierError(ValueError):
    """A name is not safe to use as a BigQuery identifier."""


def check_identifier(kind: IdentifierKind, value: object) -> str:
    """Return ``value`` if it is a valid ``kind`` identifier, else raise :class:`IdentifierError`.

    The whole string must match (``re.fullmatch``: a trailing newline is not tolerated).
    """
    pattern = _PATTERNS[kind]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise IdentifierError(f"{_shown(value)} is not a valid BigQuery {kind} name ({_RULES[kind]})")
    if kind == "column" and value.lower().startswith(_RESERVED_COLUMN_PREFIXES):
        raise IdentifierError(f"{_shown(value)} is not a valid BigQuery column name (reserved prefix)")
    return value


def quote_identifier(kind: IdentifierKind, value: object) -> str:
    """The validated identifier in backticks, ready for SQL text."""
    return f"`{check_identifier(kind, value)}`"


def table_path(project: str, dataset: str, table: str) -> str:
    """``project.dataset.table`` with every part validated (unquoted)."""
    return ".".join(
        (
            check_identifier("project", project),
            check_identifier("dataset", dataset),
            check_identifier("table", table),
        )
    )


def quoted_table_path(project: str, dataset: str, table: str) -> str:
    """The validated ``project.dataset.table`` in backticks, ready for SQL text."""
    return f"`{table_path(project, dataset, table)}`"


def _shown(value: object) -> str:
    # Bounded: a hostile name may be megabytes long.
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} chars)"

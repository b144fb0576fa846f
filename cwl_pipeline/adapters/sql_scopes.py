"""Which rows a replacement owns: a time range, a set of S3 objects, or an object prefix.

A scope renders itself two ways, and neither puts a user-controlled value into SQL text:

* :meth:`Scope.with_parameters`: a predicate plus query parameters, for single statements
  (counts, duplicate checks, reads);
* :meth:`Scope.in_script`: a predicate for a multi-statement transaction script, where
  parameters are not portable. Object keys and prefixes are then read from a scope table the
  loader stages beside the data (``value`` column, one row per key); time bounds are written
  as ``TIMESTAMP`` literals by :mod:`cwl_pipeline.adapters.sql_literals`, which keeps partition
  pruning.

Column names are validated identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from google.cloud import bigquery

from cwl_pipeline.adapters.sql_literals import int_literal, string_literal, timestamp_literal
from cwl_pipeline.core.sql_identifiers import quote_identifier

QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter

# Rows of a staged scope table: (scope index, kind, value).
KEY, PREFIX, EXCLUDE = "key", "prefix", "exclude"
SCOPE_TABLE_SCHEMA = (
    bigquery.SchemaField("scope", "INT64", mode="REQUIRED"),
    bigquery.SchemaField("kind", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("value", "STRING", mode="REQUIRED"),
)


class Scope(Protocol):
    """A predicate selecting the rows one load owns."""

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """The predicate for a single statement and the query parameters it uses."""
        ...

    def in_script(self, scope_table: str | None, index: int) -> str:
        """The predicate for a transaction script; ``scope_table`` (quoted, validated) holds
        :meth:`scope_rows` under ``scope = index``."""
        ...

    def scope_rows(self) -> list[tuple[str, str]]:
        """``(kind, value)`` rows the script form reads from the scope table (maybe none)."""
        ...


@dataclass(frozen=True)
class TimeScope:
    """``start <= column < end``."""

    column: str
    start: datetime
    end: datetime

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """Bounds as TIMESTAMP parameters."""
        col = quote_identifier("column", self.column)
        return f"{col} >= @scope_start AND {col} < @scope_end", [
            bigquery.ScalarQueryParameter("scope_start", "TIMESTAMP", self.start),
            bigquery.ScalarQueryParameter("scope_end", "TIMESTAMP", self.end),
        ]

    def in_script(self, scope_table: str | None = None, index: int = 0) -> str:
        """Bounds as TIMESTAMP literals (typed, for partition pruning)."""
        col = quote_identifier("column", self.column)
        return f"{col} >= {timestamp_literal(self.start)} AND {col} < {timestamp_literal(self.end)}"

    def scope_rows(self) -> list[tuple[str, str]]:
        """None: the bounds are literals."""
        return []


@dataclass(frozen=True)
class TimeRangesScope:
    """``column`` in any of several ``[start, end)`` ranges (no range: matches nothing).

    For the event times of an S3 read, which cluster in a few hours but may reach days back:
    BigQuery prunes to the partitions (and, the tables being clustered on time, the blocks)
    of those ranges only, not of everything between the earliest and the latest.
    """

    column: str
    ranges: tuple[tuple[datetime, datetime], ...]

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """Bounds as TIMESTAMP parameters ``@scope_range_<i>_start`` / ``_end``."""
        if not self.ranges:
            return "FALSE", []
        col = quote_identifier("column", self.column)
        sqls, params = [], []
        for i, (start, end) in enumerate(self.ranges):
            sqls.append(f"({col} >= @scope_range_{i}_start AND {col} < @scope_range_{i}_end)")
            params += [
                bigquery.ScalarQueryParameter(f"scope_range_{i}_start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter(f"scope_range_{i}_end", "TIMESTAMP", end),
            ]
        return f"({' OR '.join(sqls)})", params

    def in_script(self, scope_table: str | None = None, index: int = 0) -> str:
        """Bounds as TIMESTAMP literals (typed, for partition pruning)."""
        if not self.ranges:
            return "FALSE"
        col = quote_identifier("column", self.column)
        parts = [
            f"({col} >= {timestamp_literal(start)} AND {col} < {timestamp_literal(end)})"
            for start, end in self.ranges
        ]
        return f"({' OR '.join(parts)})"

    def scope_rows(self) -> list[tuple[str, str]]:
        """None: the bounds are literals."""
        return []


@dataclass(frozen=True)
class KeyScope:
    """``column`` equals one of ``keys`` (no keys: matches nothing)."""

    column: str
    keys: tuple[str, ...]
    parameter: ClassVar[str] = "scope_keys"

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """Keys as one ARRAY<STRING> parameter."""
        if not self.keys:
            return "FALSE", []
        col = quote_identifier("column", self.column)
        return f"{col} IN UNNEST(@{self.parameter})", [
            bigquery.ArrayQueryParameter(self.parameter, "STRING", list(self.keys))
        ]

    def in_script(self, scope_table: str | None, index: int) -> str:
        """Keys read from the staged scope table."""
        if not self.keys:
            return "FALSE"
        col = quote_identifier("column", self.column)
        return f"{col} IN ({_scope_values(scope_table, index, KEY)})"

    def scope_rows(self) -> list[tuple[str, str]]:
        """One ``key`` row per key."""
        return [(KEY, k) for k in self.keys]


@dataclass(frozen=True)
class PrefixScope:
    """``column`` starts with ``prefix`` and equals none of ``excluding``."""

    column: str
    prefix: str
    excluding: tuple[str, ...] = ()

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """Prefix as a STRING parameter, exclusions as an ARRAY<STRING> parameter."""
        col = quote_identifier("column", self.column)
        sql = f"STARTS_WITH({col}, @scope_prefix)"
        params: list[QueryParameter] = [bigquery.ScalarQueryParameter("scope_prefix", "STRING", self.prefix)]
        if self.excluding:
            sql += f" AND {col} NOT IN UNNEST(@scope_excluding)"
            params.append(bigquery.ArrayQueryParameter("scope_excluding", "STRING", list(self.excluding)))
        return sql, params

    def in_script(self, scope_table: str | None, index: int) -> str:
        """Prefix and exclusions read from the staged scope table."""
        col = quote_identifier("column", self.column)
        sql = f"STARTS_WITH({col}, ({_scope_values(scope_table, index, PREFIX)}))"
        if self.excluding:
            sql += f" AND {col} NOT IN ({_scope_values(scope_table, index, EXCLUDE)})"
        return sql

    def scope_rows(self) -> list[tuple[str, str]]:
        """The ``prefix`` row and one ``exclude`` row per excluded key."""
        return [(PREFIX, self.prefix), *((EXCLUDE, k) for k in self.excluding)]


@dataclass(frozen=True)
class LiteralKeyScope(KeyScope):
    """``column`` equals one of a few ``keys`` written as STRING literals (no keys: nothing).

    For short lists of names the config or AWS validated (log group names): no scope table,
    so no extra load job per replacement.
    """

    parameter: ClassVar[str] = "scope_names"

    def in_script(self, scope_table: str | None = None, index: int = 0) -> str:
        """Keys as escaped STRING literals."""
        if not self.keys:
            return "FALSE"
        col = quote_identifier("column", self.column)
        return f"{col} IN ({', '.join(string_literal(k) for k in self.keys)})"

    def scope_rows(self) -> list[tuple[str, str]]:
        """None: the keys are literals."""
        return []


@dataclass(frozen=True)
class AllOf:
    """Rows matched by every one of ``parts`` (at most one of them may use a scope table)."""

    parts: tuple[Scope, ...]

    def with_parameters(self) -> tuple[str, list[QueryParameter]]:
        """The parts' predicates joined with AND; their parameters must have distinct names."""
        sqls, params = [], []
        for part in self.parts:
            sql, part_params = part.with_parameters()
            sqls.append(f"({sql})")
            params.extend(part_params)
        names = [p.name for p in params]
        if len(names) != len(set(names)):
            raise ValueError(f"scopes combined with AND reuse a parameter name: {names}")
        return " AND ".join(sqls), params

    def in_script(self, scope_table: str | None, index: int) -> str:
        """The parts' script predicates joined with AND."""
        return " AND ".join(f"({part.in_script(scope_table, index)})" for part in self.parts)

    def scope_rows(self) -> list[tuple[str, str]]:
        """The rows of the one part that reads a scope table, if any."""
        staged = [part.scope_rows() for part in self.parts if part.scope_rows()]
        if len(staged) > 1:
            raise ValueError("at most one part of a combined scope may read a scope table")
        return staged[0] if staged else []


def _scope_values(scope_table: str | None, index: int, kind: str) -> str:
    if scope_table is None:
        raise ValueError("this scope reads its values from a staged scope table")
    return (
        f"SELECT `value` FROM {scope_table} "
        f"WHERE `scope` = {int_literal(index)} AND `kind` = {string_literal(kind)}"
    )


def time_scope(column: str, start: datetime, end: datetime) -> TimeScope:
    """Rows with ``start <= column < end``."""
    return TimeScope(column, start, end)


def time_ranges_scope(column: str, ranges: Iterable[tuple[datetime, datetime]]) -> TimeRangesScope:
    """Rows with ``column`` in any of ``ranges`` (overlapping or touching ranges are merged)."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return TimeRangesScope(column, tuple(merged))


def in_scope(column: str, values: Iterable[str]) -> KeyScope:
    """Rows whose ``column`` is one of ``values``; none for no values."""
    return KeyScope(column, tuple(sorted(set(values))))


def literal_in_scope(column: str, values: Iterable[str]) -> LiteralKeyScope:
    """Rows whose ``column`` is one of a few validated names, written as literals."""
    return LiteralKeyScope(column, tuple(sorted(set(values))))


def all_of(*parts: Scope) -> AllOf:
    """Rows matched by every scope of ``parts``."""
    return AllOf(tuple(parts))


def prefix_scope(column: str, prefix: str, excluding: Iterable[str] = ()) -> PrefixScope:
    """Rows whose ``column`` starts with ``prefix``, except those equal to one of ``excluding``."""
    return PrefixScope(column, prefix, tuple(sorted(set(excluding))))

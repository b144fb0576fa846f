"""Staged rows counted against their target table in BigQuery, before the write.

:meth:`BigQueryLoader.replace <cwl_pipeline.adapters.bigquery_loader.BigQueryLoader.replace>`
hands a :class:`PreparedReplace` to its ``decide`` callback: the rows are staged, nothing is
written yet, and :meth:`PreparedReplace.counts` tells, per table, how many staged rows are
copies of others and how many are stored already, in the scope or outside it
(:class:`StagedCounts`), so the caller can choose the write mode, or write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cwl_pipeline.adapters.bigquery_client import BigQueryClient
from cwl_pipeline.adapters.bigquery_staging import SEQ_COLUMN
from cwl_pipeline.adapters.bigquery_transactions import Replacement
from cwl_pipeline.adapters.sql_literals import string_literal
from cwl_pipeline.core.sql_identifiers import quote_identifier

__all__ = ["PreparedReplace", "StagedCounts"]


@dataclass(frozen=True)
class StagedCounts:
    """What a staging table holds against its target, counted in BigQuery before the write.

    ``duplicates``: staged copies of an event id beyond its first. Of the first copies:
    ``own``, stored in the replacement's scope (and not outside it); ``elsewhere``, stored
    outside the scope but in its ``stored`` scope (and not inside); ``stored_outside``, stored
    outside the scope (whether inside too or not); ``derived`` / ``native``, first copies
    whose id has / lacks ``derived_prefix``. ``duplicates_by_object``: duplicates per
    ``source_object``. ``before``: rows in scope; ``before_derived`` / ``before_native``:
    their ids by family.
    """

    duplicates: int = 0
    own: int = 0
    elsewhere: int = 0
    stored_outside: int = 0
    derived: int = 0
    native: int = 0
    before: int = 0
    before_derived: int = 0
    before_native: int = 0
    duplicates_by_object: dict[str | None, int] = field(default_factory=dict)


class PreparedReplace:
    """A replacement staged and not written yet: what :meth:`BigQueryLoader.replace` hands
    to its ``decide`` callback."""

    def __init__(
        self, loader: BigQueryClient, staged: Sequence[tuple[Replacement, str]], scope_table: str | None
    ) -> None:
        self.loader = loader
        self.staged = list(staged)
        self.scope_table = scope_table

    @property
    def replacements(self) -> list[Replacement]:
        """The replacements, in order."""
        return [r for r, _ in self.staged]

    def counts(self, index: int, derived_prefix: str, *, lookup: bool = True) -> StagedCounts:
        """Count replacement ``index``'s staged rows against its target (see :class:`StagedCounts`).

        The staged rows are joined with the stored keys of the ``stored`` scope (or of the
        scope; without ``lookup``, no stored key is looked up: ``own`` and ``elsewhere`` stay
        0). The rows stored in the scope, by id family, are counted in the same query when the
        join reads the scope itself (one scan of the target's keys, not two); else, and when
        nothing is staged, by a query of their own.
        """
        replacement, staging_id = self.staged[index]
        loader = self.loader
        target = loader.table_sql(replacement.spec.table)
        scope_sql = f"`{self.scope_table}`" if self.scope_table else None
        own = replacement.scope.in_script(scope_sql, index)
        event_id = quote_identifier("column", replacement.keys[0] if replacement.keys else "event_id")
        prefix = string_literal(derived_prefix)
        derived = f"STARTS_WITH({event_id}, {prefix})"
        fused = bool(replacement.rows) and lookup and replacement.stored is None
        counts: dict[str, Any] = {}
        if not fused:
            before = loader.query_rows(
                f"SELECT COUNT(*) AS n, COUNTIF({derived}) AS d, COUNTIF(NOT {derived}) AS c "
                f"FROM {target} WHERE {own}"
            )[0]
            counts = {
                "before": int(before["n"] or 0),
                "before_derived": int(before["d"] or 0),
                "before_native": int(before["c"] or 0),
            }
        if not replacement.rows:
            return StagedCounts(**counts)
        keys = replacement.keys or ("event_id", replacement.spec.partition_column)
        key_list = ", ".join(quote_identifier("column", k) for k in keys)
        wider = (
            own
            if replacement.stored is None
            else replacement.stored.in_script(scope_sql, len(self.staged) + index)
        )
        same = " AND ".join(
            f"staged.{quote_identifier('column', k)} = stored.{quote_identifier('column', k)}" for k in keys
        )
        source = quote_identifier("column", "source_object")
        has_source = any(c.name == "source_object" for c in replacement.spec.columns)
        staged_sql = (
            f"SELECT {key_list}, {source if has_source else 'CAST(NULL AS STRING)'} AS source_object, "
            f"ROW_NUMBER() OVER (PARTITION BY {quote_identifier('column', keys[0])} "
            f"ORDER BY `{SEQ_COLUMN}`) AS copy "
            f"FROM `{staging_id}`"
            if replacement.staged is not None
            else f"SELECT {key_list}, CAST(NULL AS STRING) AS source_object, 1 AS copy FROM `{staging_id}`"
        )
        stored_sql = (
            f"SELECT {key_list}, LOGICAL_OR(own) AS own, LOGICAL_OR(NOT own) AS other, "
            "COUNTIF(own) AS own_rows FROM "
            f"(SELECT {key_list}, COALESCE(({own}), FALSE) AS own FROM {target} WHERE {wider}) "
            f"GROUP BY {key_list}"
            if lookup
            else f"SELECT {key_list}, FALSE AS own, FALSE AS other, 0 AS own_rows "
            f"FROM `{staging_id}` WHERE FALSE"
        )
        staged_id = f"staged.{event_id}"
        counted = [
            "COUNTIF(copy > 1) AS duplicates",
            "COUNTIF(copy = 1 AND COALESCE(stored.own, FALSE)) AS own",
            "COUNTIF(copy = 1 AND COALESCE(stored.other AND NOT stored.own, FALSE)) AS elsewhere",
            "COUNTIF(copy = 1 AND COALESCE(stored.other, FALSE)) AS stored_outside",
            f"COUNTIF(copy = 1 AND STARTS_WITH({staged_id}, {prefix})) AS derived",
            f"COUNTIF(copy = 1 AND NOT STARTS_WITH({staged_id}, {prefix})) AS native",
        ]
        join = "LEFT JOIN"
        if fused:
            # Every stored key once: unmatched, or beside the first staged copy of its key.
            once = "COALESCE(copy, 1) = 1"
            stored_derived = f"STARTS_WITH(stored.{event_id}, {prefix})"
            counted += [
                f"SUM(IF({once}, stored.own_rows, 0)) AS before",
                f"SUM(IF({once} AND {stored_derived}, stored.own_rows, 0)) AS before_derived",
                f"SUM(IF({once} AND NOT {stored_derived}, stored.own_rows, 0)) AS before_native",
            ]
            join = "FULL OUTER JOIN"
        row = loader.query_rows(
            f"WITH staged AS ({staged_sql}), stored AS ({stored_sql}) "
            f"SELECT {', '.join(counted)} FROM staged {join} stored ON {same}"
        )[0]
        counts.update({name: int(value or 0) for name, value in row.items()})
        if counts["duplicates"] and has_source:
            by_object = loader.query_rows(
                f"SELECT source_object, COUNT(*) AS n FROM ({staged_sql}) WHERE copy > 1 "
                "GROUP BY source_object"
            )
            counts["duplicates_by_object"] = {r["source_object"]: int(r["n"]) for r in by_object}
        return StagedCounts(**counts)

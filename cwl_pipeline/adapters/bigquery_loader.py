"""Load batches into BigQuery atomically and idempotently: replace a scope, or insert what is
missing.

A write stages each new batch in its own staging table with a load job (free, and not a
legacy streaming insert; :mod:`cwl_pipeline.adapters.bigquery_staging`), then runs one
multi-statement transaction (:mod:`cwl_pipeline.adapters.bigquery_transactions`). It first
updates the tables' rows in their load ledger (so BigQuery never lets two loads of one table
commit side by side), then writes every target table in its :class:`ScopeWrite` mode:

* replace a scope (``REPLACE``): delete the rows in scope (for example one stream's time
  window) and insert the staged rows;
* insert what is missing (``INSERT_MISSING``): keep the rows in scope and insert only the
  staged rows whose key is not stored yet, with no DELETE.

Either way, rows staged chunk by chunk are inserted once per key (the first copy), and a row
with a copy in the write's ``stored`` scope is not inserted. The events table and its rejects
table change together or not at all: if any step fails, the previous content stays intact,
and running the same write again any number of times leaves the same table.

SQL safety: every identifier is validated (:mod:`cwl_pipeline.core.sql_identifiers`) right
before it is written into a statement; single statements take their values as query
parameters; transaction scripts read S3 keys from a staged scope table and hold only typed
literals (:mod:`cwl_pipeline.adapters.sql_literals`) for time bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from cwl_pipeline.adapters.bigquery_client import BigQueryClient
from cwl_pipeline.adapters.bigquery_counts import PreparedReplace
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.bigquery_staging import (
    StagingTable,
    drop_staging,
    drop_staging_table,
    open_staging,
    stage_chunk,
    stage_rows,
    stage_scope,
)
from cwl_pipeline.adapters.bigquery_transactions import (
    Replacement,
    ScopeWrite,
    ensure_ledger,
    query_replace_script,
    replace_script,
    run_transaction,
)
from cwl_pipeline.adapters.sql_scopes import Scope

__all__ = ["BigQueryLoader", "ReplaceResult"]


@dataclass
class ReplaceResult:
    """What a replacement did, for run metadata."""

    rows_written: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0
    transactions: int = 0


class BigQueryLoader(BigQueryClient):
    """A :class:`BigQueryClient` (datasets, tables, views, reads) that also writes scoped table
    content atomically: each target table's scope is either replaced by the staged rows, or
    kept, with the staged rows it is missing inserted (see :class:`ScopeWrite`)."""

    def replace(
        self,
        replacements: Sequence[Replacement],
        label: str = "",
        *,
        decide: Callable[[PreparedReplace], Sequence[Replacement]] | None = None,
    ) -> ReplaceResult:
        """Atomically write the scoped rows of every table in ``replacements``.

        Each in-memory batch is staged with a load job (a :class:`StagingTable` already
        filled chunk by chunk is used as it is); one transaction then writes every target
        table in its replacement's ``write`` mode: it deletes the scoped rows and inserts the
        staged ones, or keeps them and inserts the staged rows not stored yet; the first staged
        copy of each key only. If BigQuery cancels the transaction for a concurrent one on a
        target table, it runs again (see :func:`run_transaction`). Staging tables are dropped
        afterwards (and expire on their own if the process dies first).

        ``decide``, if given, sees the staged data before the transaction (it may count it,
        :meth:`PreparedReplace.counts`) and returns the replacements to write (the same ones,
        or with other ``write`` modes), or none: then nothing is written and no transaction runs.
        """
        result = ReplaceResult()
        # Inserting nothing into a table whose rows are kept is no change: skip it entirely.
        for skipped in [r for r in replacements if not r.rows and r.write is ScopeWrite.INSERT_MISSING]:
            self.drop_staging(skipped.staged)
        replacements = [r for r in replacements if r.rows or r.write is ScopeWrite.REPLACE]
        if not replacements:
            return result
        staged: list[tuple[Replacement, str]] = []
        scope_table: str | None = None
        try:
            for replacement in replacements:
                if replacement.staged is not None:
                    staged.append((replacement, replacement.staged.table_id))
                    result.job_ids += replacement.staged.job_ids
                    result.staged_bytes += replacement.staged.staged_bytes
                    continue
                staging_id, job_id, size = stage_rows(self, replacement.spec, replacement.data, label)
                staged.append((replacement, staging_id))
                result.job_ids.append(job_id)
                result.staged_bytes += size
            scope_rows = [
                (index, kind, value)
                for index, replacement in enumerate(replacements)
                for kind, value in replacement.scope.scope_rows()
            ] + [
                (len(replacements) + index, kind, value)
                for index, replacement in enumerate(replacements)
                if replacement.stored is not None
                for kind, value in replacement.stored.scope_rows()
            ]
            if scope_rows:
                scope_table, job_id = stage_scope(self, scope_rows, label)
                result.job_ids.append(job_id)
            if decide is not None:
                chosen = list(decide(PreparedReplace(self, staged, scope_table)))
                if not chosen:
                    return result
                staged = [(r, staging_id) for r, (_, staging_id) in zip(chosen, staged, strict=True)]
            ledger = ensure_ledger(self, [r.spec.table for r, _ in staged])
            script = replace_script(self, staged, scope_table, ledger)
            # The staging tables stay while the transaction is retried: they are dropped below.
            targets = [self.table_id(r.spec.table) for r, _ in staged]
            job = run_transaction(self, "replace transaction", script, targets)
            result.job_ids.append(job.job_id)
            result.transactions += 1
        finally:
            for staging_id in [s for _, s in staged] + ([scope_table] if scope_table else []):
                drop_staging_table(self, staging_id)
        for replacement, _ in staged:
            result.rows_written[replacement.spec.table] = replacement.rows
        return result

    def replace_from_query(self, spec: TableSpec, select_sql: str, scope: Scope) -> ReplaceResult:
        """Atomically replace the ``scope`` rows of ``spec.table`` with a query's result.

        ``select_sql`` must return ``spec.columns`` in order; ``loaded_at`` is added. Used for
        rollups computed inside BigQuery: ``select_sql`` may hold only identifiers from
        :meth:`table_sql` and literals from :mod:`cwl_pipeline.adapters.sql_literals`.
        ``scope`` must not need a scope table (a time scope).
        """
        script = query_replace_script(self, spec, select_sql, scope)
        job = run_transaction(self, "rollup transaction", script, [self.table_id(spec.table)])
        return ReplaceResult(job_ids=[job.job_id])

    def open_staging(self, spec: TableSpec, label: str) -> StagingTable:
        """A staging table for ``spec``'s rows, created by the first :meth:`stage_chunk`."""
        return open_staging(self, spec, label)

    def stage_chunk(self, staging: StagingTable, data: pa.Table) -> None:
        """Append ``data`` (``spec.columns``, more ignored) to ``staging`` with one load job."""
        stage_chunk(self, staging, data)

    def drop_staging(self, staging: StagingTable | None) -> None:
        """Drop ``staging`` (best effort; it expires on its own anyway)."""
        drop_staging(self, staging)

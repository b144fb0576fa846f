"""Load batches into BigQuery with atomic, idempotent replacement.

A replacement writes each new batch to its own staging table with a load job (free, and not a
legacy streaming insert), then runs one multi-statement transaction that, for every target
table, deletes the rows in scope (for example one stream's time window) and inserts the
staged rows. The events table and its rejects table change together or not at all: if any
step fails, the previous content stays intact, and re-running the same replacement any number
of times leaves the same table.

SQL safety: every identifier is validated (:mod:`cwl_pipeline.core.sql_identifiers`) right
before it is written into a statement; single statements take their values as query
parameters; transaction scripts read S3 keys from a staged scope table and hold only typed
literals (:mod:`cwl_pipeline.adapters.sql_literals`) for time bounds.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_scopes import SCOPE_TABLE_SCHEMA, QueryParameter, Scope, time_scope
from cwl_pipeline.core.redaction import redact_secrets
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.sql_identifiers import check_identifier, quote_identifier, table_path

__all__ = [
    "BigQueryLoader",
    "ReplaceResult",
    "Replacement",
    "TableSpec",
    "is_transaction_conflict",
    "time_scope",
]

LOADED_AT = Column("loaded_at", "TIMESTAMP", description="When the pipeline loaded the row")
STAGING_TTL = timedelta(hours=6)
# Backoff between attempts of a transaction cancelled by a concurrent one: 0.5 s, 1 s, 2 s, ...
# up to 8 s, each drawn from [half, full] of that so that contenders spread out.
CONFLICT_BACKOFF_FIRST = 0.5
CONFLICT_BACKOFF_MAX = 8.0

# BigQuery cancels a transaction that mutates a table another transaction in flight mutates
# ("Transaction is aborted due to concurrent update against table …"); conflicting mutating DML
# can also fail with "Could not serialize access to table … due to concurrent update". Both
# come as reason ``invalidQuery`` (HTTP 400), which syntax errors share, so the text decides.
_CONFLICT_MESSAGE = re.compile(
    r"transaction\s+is\s+aborted\s+due\s+to\s+concurrent\s+update"
    r"|could\s+not\s+serialize\s+access\s+to\s+table\s+\S+\s+due\s+to\s+concurrent\s+update",
    re.I,
)


def is_transaction_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is BigQuery cancelling a transaction (or mutating DML) because another
    one changed the same table concurrently: safe to run again, unlike other bad requests."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    if not isinstance(exc, gexc.GoogleAPICallError):
        return False
    texts = [str(exc.message)] + [
        str(error.get("message", "")) for error in (exc.errors or []) if isinstance(error, dict)
    ]
    return any(_CONFLICT_MESSAGE.search(text) for text in texts)


@dataclass(frozen=True)
class TableSpec:
    """A destination table: columns in order, partition column, clustering."""

    table: str
    columns: tuple[Column, ...]
    partition_column: str
    clustering: tuple[str, ...] = ()
    description: str = ""

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Declared columns plus the ``loaded_at`` column the loader fills."""
        return (*self.columns, LOADED_AT)


@dataclass(frozen=True)
class Replacement:
    """New content for the rows of ``spec.table`` matched by ``scope``."""

    spec: TableSpec
    data: pa.Table
    scope: Scope


@dataclass
class ReplaceResult:
    """What a replacement did, for run metadata."""

    rows_written: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0


class BigQueryLoader:
    """Creates datasets and tables, and replaces scoped table content atomically."""

    def __init__(
        self,
        client: bigquery.Client,
        dataset: str,
        *,
        location: str | None = None,
        staging_dataset: str | None = None,
        retry_timeout: float = 120.0,
    ) -> None:
        """``retry_timeout`` bounds how long API calls are retried (unreachable endpoint,
        transient errors) before failing with a :class:`DestinationError`."""
        self.client = client
        self.retry_timeout = retry_timeout
        self.retry = bigquery.DEFAULT_RETRY.with_timeout(retry_timeout)
        # Every call takes these bounds: the client's defaults retry for 10 minutes and more.
        self.job_retry = DEFAULT_JOB_RETRY.with_timeout(retry_timeout)
        self.upload_retries = max(1, int(math.log2(retry_timeout + 1)))  # backoff 1 s, 2 s, 4 s, ...
        self.drop_retry = bigquery.DEFAULT_RETRY.with_timeout(min(retry_timeout, 10.0))
        self.project = check_identifier("project", client.project)
        self.dataset = check_identifier("dataset", dataset)
        self.location = location
        self.staging_dataset = check_identifier("dataset", staging_dataset or dataset)

    def table_id(self, table: str) -> str:
        """Fully-qualified ``project.dataset.table`` (every part validated)."""
        return table_path(self.project, self.dataset, table)

    def table_sql(self, table: str) -> str:
        """The validated table id in backticks, for SQL text."""
        return f"`{self.table_id(table)}`"

    def ensure_dataset(self) -> None:
        """Create the dataset (and the staging dataset) if missing."""
        for name in {self.dataset, self.staging_dataset}:
            dataset = bigquery.Dataset(f"{self.project}.{name}")
            dataset.location = self.location
            self._call(
                f"dataset {self.project}.{name}",
                self.client.create_dataset,
                dataset,
                exists_ok=True,
                retry=self.retry,
            )

    def ensure_table(self, spec: TableSpec) -> bigquery.Table:
        """Create ``spec.table`` (DAY-partitioned, clustered) if missing; add missing columns.

        Raises:
            DestinationError: the table exists with a column of another type or mode.
        """
        table_id = self.table_id(spec.table)
        try:
            existing = self.client.get_table(table_id, retry=self.retry)
        except gexc.NotFound:
            table = bigquery.Table(table_id, schema=[_field(c) for c in spec.all_columns])
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=spec.partition_column
            )
            if spec.clustering:
                table.clustering_fields = list(spec.clustering)
            table.description = spec.description or None
            return self._call(
                f"table {table_id}", self.client.create_table, table, exists_ok=True, retry=self.retry
            )
        except Exception as exc:
            raise self._wrap(f"table {table_id}", exc) from None
        return self._reconcile_schema(existing, spec)

    def _reconcile_schema(self, existing: bigquery.Table, spec: TableSpec) -> bigquery.Table:
        have = {f.name: f for f in existing.schema}
        mismatched = [
            f"{c.name} ({have[c.name].field_type}/{have[c.name].mode} != {c.type}/{c.mode})"
            for c in spec.all_columns
            if c.name in have and not _same_field(have[c.name], c)
        ]
        if mismatched:
            raise DestinationError(
                f"table {existing.full_table_id} does not match the declared schema: " + ", ".join(mismatched)
            )
        missing = [c for c in spec.all_columns if c.name not in have]
        if not missing:
            return existing
        # New columns can only be added as NULLABLE to an existing table.
        existing.schema = [*existing.schema, *(_field(c, force_nullable=True) for c in missing)]
        return self._call(f"table {existing.full_table_id}", self.client.update_table, existing, ["schema"])

    def replace(self, replacements: Sequence[Replacement], label: str = "") -> ReplaceResult:
        """Atomically replace the scoped rows of every table in ``replacements``.

        Each batch is staged with a load job; one transaction then deletes the scoped rows and
        inserts the staged ones in every target table. If BigQuery cancels the transaction for a
        concurrent one on a target table, it runs again (see :meth:`_run_transaction`). Staging
        tables are dropped afterwards (and expire on their own if the process dies first).
        """
        result = ReplaceResult()
        staged: list[tuple[Replacement, str]] = []
        scope_table: str | None = None
        try:
            for replacement in replacements:
                staging_id, job_id, size = self._stage(replacement, label)
                staged.append((replacement, staging_id))
                result.job_ids.append(job_id)
                result.staged_bytes += size
            scope_rows = [
                (index, kind, value)
                for index, replacement in enumerate(replacements)
                for kind, value in replacement.scope.scope_rows()
            ]
            if scope_rows:
                scope_table, job_id = self._stage_scope(scope_rows, label)
                result.job_ids.append(job_id)
            script = self._replace_script(staged, scope_table)
            # The staging tables stay while the transaction is retried: they are dropped below.
            targets = [self.table_id(r.spec.table) for r in replacements]
            job = self._run_transaction("replace transaction", script, targets)
            result.job_ids.append(job.job_id)
        finally:
            for staging_id in [s for _, s in staged] + ([scope_table] if scope_table else []):
                self._drop_staging(staging_id)
        for replacement in replacements:
            result.rows_written[replacement.spec.table] = replacement.data.num_rows
        return result

    def _staging_id(self, kind: str, table: str, label: str) -> str:
        suffix = uuid.uuid4().hex[:12]
        label = re.sub(r"[^A-Za-z0-9_]", "_", label)[:100]
        return table_path(self.project, self.staging_dataset, f"_{kind}_{table}_{label}_{suffix}")

    def _stage(self, replacement: Replacement, label: str) -> tuple[str, str, int]:
        spec = replacement.spec
        staging_id = self._staging_id("stage", check_identifier("table", spec.table), label)
        data = replacement.data.select([c.name for c in spec.columns])
        size, job_id = self._load_staging(staging_id, [_staging_field(c) for c in spec.columns], data)
        return staging_id, job_id, size

    def _stage_scope(self, rows: Sequence[tuple[int, str, str]], label: str) -> tuple[str, str]:
        """Stage the keys a transaction script scopes on, so they never enter the SQL text."""
        staging_id = self._staging_id("scope", "keys", label)
        index, kind, value = zip(*rows, strict=True)
        data = pa.table(
            {"scope": pa.array(index, pa.int64()), "kind": pa.array(kind), "value": pa.array(value)}
        )
        _, job_id = self._load_staging(staging_id, list(SCOPE_TABLE_SCHEMA), data)
        return staging_id, job_id

    def _load_staging(
        self, staging_id: str, schema: list[bigquery.SchemaField], data: pa.Table
    ) -> tuple[int, str]:
        table = bigquery.Table(staging_id, schema=schema)
        table.expires = datetime.now(UTC) + STAGING_TTL
        # Created through the API first: a load job into a missing table is not portable.
        self._call(f"staging table {staging_id}", self.client.create_table, table, retry=self.retry)
        buffer = io.BytesIO()
        pq.write_table(data, buffer, compression="zstd")
        size = buffer.tell()
        buffer.seek(0)
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        try:
            job = self._call(
                f"load into {staging_id}",
                self.client.load_table_from_file,
                buffer,
                staging_id,
                job_config=job_config,
                location=self.location,
                num_retries=self.upload_retries,
            )
            self._call(f"load into {staging_id}", job.result, retry=self.retry)
        except Exception:
            self._drop_staging(staging_id)  # the caller only drops the tables that staged
            raise
        return size, job.job_id

    def _drop_staging(self, staging_id: str) -> None:
        # Best effort and briefly retried: a failed drop must not hide or delay the original
        # error, and staging tables expire on their own after STAGING_TTL.
        with contextlib.suppress(Exception):
            self.client.delete_table(staging_id, not_found_ok=True, retry=self.drop_retry)

    def _replace_script(self, staged: Sequence[tuple[Replacement, str]], scope_table: str | None) -> str:
        statements = ["BEGIN TRANSACTION;"]
        scope_sql = f"`{scope_table}`" if scope_table else None
        for index, (replacement, staging_id) in enumerate(staged):
            spec = replacement.spec
            target = self.table_sql(spec.table)
            select = ", ".join(
                f"PARSE_JSON({quote_identifier('column', c.name)})"
                if c.type == "JSON"
                else quote_identifier("column", c.name)
                for c in spec.columns
            )
            statements.append(f"DELETE FROM {target} WHERE {replacement.scope.in_script(scope_sql, index)};")
            if replacement.data.num_rows:
                columns = ", ".join(quote_identifier("column", c.name) for c in spec.all_columns)
                statements.append(
                    f"INSERT INTO {target} ({columns}) "
                    f"SELECT {select}, CURRENT_TIMESTAMP() FROM `{staging_id}`;"
                )
        statements.append("COMMIT TRANSACTION;")
        return "\n".join(statements)

    def replace_from_query(self, spec: TableSpec, select_sql: str, scope: Scope) -> ReplaceResult:
        """Atomically replace the ``scope`` rows of ``spec.table`` with a query's result.

        ``select_sql`` must return ``spec.columns`` in order; ``loaded_at`` is added. Used for
        rollups computed inside BigQuery: ``select_sql`` may hold only identifiers from
        :meth:`table_sql` and literals from :mod:`cwl_pipeline.adapters.sql_literals`.
        ``scope`` must not need a scope table (a time scope).
        """
        if scope.scope_rows():
            raise ValueError("replace_from_query takes a scope without staged keys (a time scope)")
        target = self.table_sql(spec.table)
        columns = ", ".join(quote_identifier("column", c.name) for c in spec.all_columns)
        script = (
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM {target} WHERE {scope.in_script(None, 0)};\n"
            f"INSERT INTO {target} ({columns}) SELECT *, CURRENT_TIMESTAMP() FROM ({select_sql});\n"
            "COMMIT TRANSACTION;"
        )
        job = self._run_transaction("rollup transaction", script, [self.table_id(spec.table)])
        return ReplaceResult(job_ids=[job.job_id])

    def _run_transaction(self, what: str, script: str, tables: Sequence[str]) -> bigquery.QueryJob:
        """Run a transaction script; run it again, with exponential backoff and jitter within
        ``retry_timeout``, while BigQuery cancels it for a concurrent transaction on one of its
        tables. Safe because the script replaces a scope: a cancelled attempt changed nothing.

        Raises:
            DestinationError: another error, or still cancelled when ``retry_timeout`` ran out.
        """
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                job = self.client.query(script, **self._query_retries())
                job.result(retry=self.retry, job_retry=self.job_retry)
                return job
            except Exception as exc:
                if not is_transaction_conflict(exc):
                    raise self._wrap(what, exc) from exc
                ceiling = min(CONFLICT_BACKOFF_MAX, CONFLICT_BACKOFF_FIRST * 2 ** (attempt - 1))
                delay = random.uniform(ceiling / 2, ceiling)
                elapsed = time.monotonic() - start
                if elapsed + delay > self.retry_timeout:
                    raise DestinationError(
                        redact_secrets(
                            f"BigQuery {what} on {', '.join(tables)} was cancelled by a concurrent "
                            f"update of the same table {attempt} times in {elapsed:.1f}s "
                            f"(retry_timeout {self.retry_timeout:g}s); the last time: {_conflict_detail(exc)}"
                        )
                    ) from exc
                time.sleep(delay)

    def count(self, table: str, scope: Scope) -> int:
        """Rows of ``table`` in ``scope`` (0 if the table does not exist)."""
        try:
            self.client.get_table(self.table_id(table), retry=self.retry)
        except gexc.NotFound:
            return 0
        where, params = scope.with_parameters()
        rows = self.query_rows(f"SELECT COUNT(*) AS n FROM {self.table_sql(table)} WHERE {where}", params)
        return int(rows[0]["n"])

    def duplicate_ids(self, table: str, scope: Scope, id_column: str = "event_id") -> int:
        """Rows in scope beyond the first of each ``id_column`` value."""
        where, params = scope.with_parameters()
        rows = self.query_rows(
            f"SELECT COUNT(*) - COUNT(DISTINCT {quote_identifier('column', id_column)}) AS n "
            f"FROM {self.table_sql(table)} WHERE {where}",
            params,
        )
        return int(rows[0]["n"] or 0)

    def select(self, table: str, columns: Sequence[str], scope: Scope) -> list[dict[str, Any]]:
        """``columns`` of the rows of ``table`` in ``scope``."""
        names = ", ".join(quote_identifier("column", c) for c in columns)
        where, params = scope.with_parameters()
        return self.query_rows(f"SELECT {names} FROM {self.table_sql(table)} WHERE {where}", params)

    def schema_differences(self, spec: TableSpec) -> list[str]:
        """How the live table's columns differ from ``spec`` (name, type, mode, order)."""
        live = [
            (f.name, _canonical_type(f.field_type), f.mode or "NULLABLE")
            for f in self.client.get_table(self.table_id(spec.table), retry=self.retry).schema
        ]
        declared = [(c.name, c.type, c.mode) for c in spec.all_columns]
        differences = [f"missing column {d[0]} {d[1]} {d[2]}" for d in declared if d not in live]
        differences += [f"undeclared column {x[0]} {x[1]} {x[2]}" for x in live if x not in declared]
        if not differences and live != declared:
            differences.append("columns are in another order")
        return differences

    def query_rows(self, sql: str, params: Sequence[QueryParameter] = ()) -> list[dict[str, Any]]:
        """Run one statement with its values as query parameters; return its rows as dicts."""
        job_config = bigquery.QueryJobConfig(query_parameters=list(params))
        job = self._call("query", self.client.query, sql, job_config=job_config, **self._query_retries())
        rows = self._call("query", job.result, retry=self.retry, job_retry=self.job_retry)
        return [dict(row.items()) for row in rows]

    def _query_retries(self) -> dict[str, Any]:
        # job_retry=None here: the client would otherwise wrap jobs.insert in its own 10-minute
        # retry; a failed job is still re-issued, within retry_timeout, by result(job_retry=...).
        return {"location": self.location, "retry": self.retry, "job_retry": None}

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._wrap(what, exc) from exc

    def _wrap(self, what: str, exc: Exception) -> Exception:
        if isinstance(exc, gexc.RetryError) and exc.cause is not None:
            exc = exc.cause
        if isinstance(exc, gexc.Forbidden):
            return DestinationError(redact_secrets(f"BigQuery denied access to {what}: {exc.message}"))
        if isinstance(exc, gexc.NotFound):
            return DestinationError(redact_secrets(f"BigQuery {what}: not found: {exc.message}"))
        if isinstance(exc, gexc.GoogleAPICallError):
            return DestinationError(redact_secrets(f"BigQuery {what} failed: {exc.message}"))
        if isinstance(exc, OSError | ConnectionError) or "Connection" in type(exc).__name__:
            endpoint = getattr(self.client._connection, "API_BASE_URL", "BigQuery")
            return DestinationError(
                redact_secrets(f"BigQuery endpoint {endpoint} unreachable while accessing {what}: {exc}")
            )
        return exc


def _conflict_detail(exc: BaseException) -> str:
    """The server's message of a conflict error, and the job it cancelled."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    detail = str(first.get("message") or getattr(exc, "message", None) or exc)
    job = getattr(exc, "query_job", None)
    return f"{detail} (job {job.job_id})" if job is not None else detail


def _field(column: Column, force_nullable: bool = False) -> bigquery.SchemaField:
    mode = "NULLABLE" if force_nullable else column.mode
    return bigquery.SchemaField(column.name, column.type, mode=mode, description=column.description or None)


def _staging_field(column: Column) -> bigquery.SchemaField:
    # JSON is staged as its text and parsed in the transaction.
    return bigquery.SchemaField(column.name, "STRING" if column.type == "JSON" else column.type)


def _canonical_type(field_type: str) -> str:
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(field_type, field_type)


def _same_field(field_: bigquery.SchemaField, column: Column) -> bool:
    return _canonical_type(field_.field_type) == column.type and (field_.mode or "NULLABLE") == column.mode

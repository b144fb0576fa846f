"""Load batches into BigQuery with atomic, idempotent replacement.

A replacement writes each new batch to its own staging table with a load job (free, and not a
legacy streaming insert), then runs one multi-statement transaction that, for every target
table, deletes the rows in scope (for example one stream's time window) and inserts the
staged rows. The events table and its rejects table change together or not at all: if any
step fails, the previous content stays intact, and re-running the same replacement any number
of times leaves the same table.
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.core.schema import Column

LOADED_AT = Column("loaded_at", "TIMESTAMP", description="When the pipeline loaded the row")
STAGING_TTL = timedelta(hours=6)


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
    """New content for the rows of ``spec.table`` matched by ``scope_sql``."""

    spec: TableSpec
    data: pa.Table
    scope_sql: str


@dataclass
class ReplaceResult:
    """What a replacement did, for run metadata."""

    rows_written: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0


def time_scope(column: str, start: datetime, end: datetime) -> str:
    """SQL predicate ``start <= column < end`` with literal UTC timestamps.

    Literals rather than query parameters: the timestamps come from partition bounds, never
    from user input, and multi-statement scripts with parameters are not portable to every
    BigQuery-compatible endpoint.
    """
    return f"`{column}` >= {_ts_literal(start)} AND `{column}` < {_ts_literal(end)}"


def _ts_literal(value: datetime) -> str:
    value = value.astimezone(UTC)
    return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


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
        self.retry = bigquery.DEFAULT_RETRY.with_timeout(retry_timeout)
        self.project = client.project
        self.dataset = dataset
        self.location = location
        self.staging_dataset = staging_dataset or dataset

    def table_id(self, table: str) -> str:
        """Fully-qualified ``project.dataset.table``."""
        return f"{self.project}.{self.dataset}.{table}"

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
        inserts the staged ones in every target table. Staging tables are dropped afterwards
        (and expire on their own if the process dies first).
        """
        result = ReplaceResult()
        staged: list[tuple[Replacement, str]] = []
        try:
            for replacement in replacements:
                staging_id, job_id, size = self._stage(replacement, label)
                staged.append((replacement, staging_id))
                result.job_ids.append(job_id)
                result.staged_bytes += size
            script = self._replace_script(staged)
            job = self._call("replace transaction", self.client.query, script, location=self.location)
            self._call("replace transaction", job.result)
            result.job_ids.append(job.job_id)
        finally:
            for _, staging_id in staged:
                # Best effort: a failed drop must not hide the original error, and staging
                # tables expire on their own after STAGING_TTL.
                with contextlib.suppress(Exception):
                    self.client.delete_table(staging_id, not_found_ok=True)
        for replacement in replacements:
            result.rows_written[replacement.spec.table] = replacement.data.num_rows
        return result

    def _stage(self, replacement: Replacement, label: str) -> tuple[str, str, int]:
        spec = replacement.spec
        suffix = uuid.uuid4().hex[:12]
        label = re.sub(r"[^A-Za-z0-9_]", "_", label)[:100]
        staging_id = f"{self.project}.{self.staging_dataset}._stage_{spec.table}_{label}_{suffix}"
        table = bigquery.Table(staging_id, schema=[_staging_field(c) for c in spec.columns])
        table.expires = datetime.now(UTC) + STAGING_TTL
        # Created through the API first: a load job into a missing table is not portable.
        self._call(f"staging table {staging_id}", self.client.create_table, table)
        data = replacement.data.select([c.name for c in spec.columns])
        buffer = io.BytesIO()
        pq.write_table(data, buffer, compression="zstd")
        size = buffer.tell()
        buffer.seek(0)
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        )
        job = self._call(
            f"load into {staging_id}",
            self.client.load_table_from_file,
            buffer,
            staging_id,
            job_config=job_config,
            location=self.location,
        )
        self._call(f"load into {staging_id}", job.result)
        return staging_id, job.job_id, size

    def _replace_script(self, staged: Sequence[tuple[Replacement, str]]) -> str:
        statements = ["BEGIN TRANSACTION;"]
        for replacement, staging_id in staged:
            spec = replacement.spec
            target = f"`{self.table_id(spec.table)}`"
            names = [c.name for c in spec.columns]
            select = ", ".join(
                f"PARSE_JSON(`{c.name}`)" if c.type == "JSON" else f"`{c.name}`" for c in spec.columns
            )
            statements.append(f"DELETE FROM {target} WHERE {replacement.scope_sql};")
            if replacement.data.num_rows:
                columns = ", ".join(f"`{n}`" for n in [*names, LOADED_AT.name])
                statements.append(
                    f"INSERT INTO {target} ({columns}) "
                    f"SELECT {select}, CURRENT_TIMESTAMP() FROM `{staging_id}`;"
                )
        statements.append("COMMIT TRANSACTION;")
        return "\n".join(statements)

    def replace_from_query(self, spec: TableSpec, select_sql: str, scope_sql: str) -> ReplaceResult:
        """Atomically replace the ``scope_sql`` rows of ``spec.table`` with a query's result.

        ``select_sql`` must return ``spec.columns`` in order; ``loaded_at`` is added. Used for
        rollups computed inside BigQuery.
        """
        target = f"`{self.table_id(spec.table)}`"
        columns = ", ".join(f"`{c.name}`" for c in spec.all_columns)
        script = (
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM {target} WHERE {scope_sql};\n"
            f"INSERT INTO {target} ({columns}) SELECT *, CURRENT_TIMESTAMP() FROM ({select_sql});\n"
            "COMMIT TRANSACTION;"
        )
        job = self._call("rollup transaction", self.client.query, script, location=self.location)
        self._call("rollup transaction", job.result)
        return ReplaceResult(job_ids=[job.job_id])

    def count(self, table: str, scope_sql: str) -> int:
        """Rows of ``table`` matching ``scope_sql`` (0 if the table does not exist)."""
        try:
            self.client.get_table(self.table_id(table), retry=self.retry)
        except gexc.NotFound:
            return 0
        rows = self.query_rows(f"SELECT COUNT(*) AS n FROM `{self.table_id(table)}` WHERE {scope_sql}")
        return int(rows[0]["n"])

    def duplicate_ids(self, table: str, scope_sql: str, id_column: str = "event_id") -> int:
        """Rows in scope beyond the first of each ``id_column`` value."""
        rows = self.query_rows(
            f"SELECT COUNT(*) - COUNT(DISTINCT `{id_column}`) AS n "
            f"FROM `{self.table_id(table)}` WHERE {scope_sql}"
        )
        return int(rows[0]["n"] or 0)

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

    def query_rows(self, sql: str) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts (for checks and tests)."""
        job = self._call("query", self.client.query, sql, location=self.location)
        return [dict(row.items()) for row in self._call("query", job.result)]

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._wrap(what, exc) from exc

    def _wrap(self, what: str, exc: Exception) -> Exception:
        if isinstance(exc, gexc.RetryError) and exc.cause is not None:
            exc = exc.cause
        if isinstance(exc, gexc.Forbidden):
            return DestinationError(f"BigQuery denied access to {what}: {exc.message}")
        if isinstance(exc, gexc.NotFound):
            return DestinationError(f"BigQuery {what}: not found: {exc.message}")
        if isinstance(exc, gexc.GoogleAPICallError):
            return DestinationError(f"BigQuery {what} failed: {exc.message}")
        if isinstance(exc, OSError | ConnectionError) or "Connection" in type(exc).__name__:
            endpoint = getattr(self.client._connection, "API_BASE_URL", "BigQuery")
            return DestinationError(f"BigQuery endpoint {endpoint} unreachable while accessing {what}: {exc}")
        return exc


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

"""Load batches into BigQuery with atomic, idempotent replacement.

A replacement writes each new batch to its own staging table with a load job (free, and not a
legacy streaming insert), then runs one multi-statement transaction that, for every target
table, deletes the rows in scope (for example one stream's time window) and inserts the
staged rows, after updating the tables' rows in their load ledger (so BigQuery never lets two
loads of one table commit side by side: see ``LEDGER_PREFIX``). The events table and its
rejects table change together or not at all: if any step fails, the previous content stays
intact, and re-running the same replacement any number of times leaves the same table.

SQL safety: every identifier is validated (:mod:`cwl_pipeline.core.sql_identifiers`) right
before it is written into a statement; single statements take their values as query
parameters; transaction scripts read S3 keys from a staged scope table and hold only typed
literals (:mod:`cwl_pipeline.adapters.sql_literals`) for time bounds.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from cwl_pipeline.adapters.bigquery_metadata import METADATA
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_literals import string_literal, timestamp_literal
from cwl_pipeline.adapters.sql_scopes import SCOPE_TABLE_SCHEMA, QueryParameter, Scope, time_scope
from cwl_pipeline.config import BigQuerySettings, default_of
from cwl_pipeline.core.schema import COLUMN_TYPES, Column
from cwl_pipeline.core.scrub import scrub_secrets
from cwl_pipeline.core.sql_identifiers import check_identifier, quote_identifier, table_path

__all__ = [
    "BigQueryLoader",
    "PreparedReplace",
    "ReplaceResult",
    "Replacement",
    "StagedCounts",
    "StagingTable",
    "TableSpec",
    "is_transaction_conflict",
    "ledger_table_name",
    "time_scope",
]

LOADED_AT = Column("loaded_at", "TIMESTAMP", description="When the pipeline loaded the row")
LOAD_TIME = "_load_time"
"""Script variable: the ``loaded_at`` of every row a replace transaction inserts."""
COUNT_COLUMNS = (
    Column("ingestion_hour", "TIMESTAMP", description="Hour CloudWatch ingested the rows (if known)"),
    Column("event_hour", "TIMESTAMP", required=True, description="Hour of the rows' event time"),
    Column("log_group", "STRING", required=True, description="Source log group"),
    Column("table_name", "STRING", required=True, description="Table the rows were written to"),
    Column("row_count", "INT64", required=True, description="Rows inserted (negative: deleted)"),
)
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


_log = logging.getLogger(__name__)

# The load ledger: one small table per written table family (the events table of a load, with
# its rejects and raw tables), one row per table. Every load transaction updates the rows of the
# tables it writes, so two load transactions of one family always mutate the same table and
# BigQuery lets only one of them commit ("If a transaction mutates (update or deletes) rows in
# a table, then other transactions or DML statements that mutate rows in the same table cannot
# run concurrently. Conflicting transactions are cancelled."). Without it an insert-missing
# load only appends, and appending transactions never conflict ("If a transaction only reads a
# table or appends new rows to it, any operation can be performed concurrently on that table"):
# two of them would both insert the keys neither saw. See docs/bigquery-behaviour.md, 4h.
LEDGER_PREFIX = "_cwl_load_ledger_"
LEDGER_SCHEMA = (
    bigquery.SchemaField("target", "STRING", mode="REQUIRED", description="A table loads write"),
    bigquery.SchemaField(
        "transactions", "INT64", mode="REQUIRED", description="Load transactions committed on it"
    ),
    bigquery.SchemaField("updated_at", "TIMESTAMP", description="When the last one committed"),
)
_LEDGER_ROWS_READY: set[tuple[str, tuple[str, ...]]] = set()  # (ledger id, targets), this process
_LEDGER_LOCK = threading.Lock()


def ledger_table_name(table: str) -> str:
    """The ledger of the table family whose first (events) table is ``table``."""
    return check_identifier("table", LEDGER_PREFIX + table)


@dataclass(frozen=True)
class TableSpec:
    """A destination table: columns in order, partition column, clustering."""

    table: str
    columns: tuple[Column, ...]
    partition_column: str
    clustering: tuple[str, ...] = ()
    description: str = ""
    partition_expiration: timedelta | None = None  # partitions dropped this long after their day

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Declared columns plus the ``loaded_at`` column the loader fills."""
        return (*self.columns, LOADED_AT)


@dataclass(frozen=True)
class Replacement:
    """New content for the rows of ``spec.table`` matched by ``scope``.

    ``keys`` are the columns identifying a row (e.g. the event id and its time). With them:

    * ``keep``: the rows in scope are kept, and only staged rows whose key is not stored yet
      are inserted: no DELETE, so BigQuery bills the scan only, not the partitions modified;
      running it twice inserts nothing the second time;
    * ``stored``: where a stored copy is looked for (default: ``scope``); a staged row with a
      copy there is not inserted, kept or not. A wider scope than ``scope`` (the hours of the
      rows' times, say) finds copies another load stored;
    * ``counts``: a counts table (columns :data:`COUNT_COLUMNS`) where the transaction records,
      per ingestion hour, event hour and log group, the rows it deleted (negative) and inserted.
    """

    spec: TableSpec
    data: pa.Table
    scope: Scope
    keys: tuple[str, ...] = ()
    keep: bool = False
    stored: Scope | None = None
    staged: StagingTable | None = None
    counts: TableSpec | None = None

    def __post_init__(self) -> None:
        if (self.keep or self.stored is not None) and not self.keys:
            raise ValueError("keeping rows or looking for stored copies needs the key columns")

    @property
    def rows(self) -> int:
        """Rows to insert (before any is found stored): the staged ones, or ``data``'s."""
        return self.staged.rows if self.staged is not None else self.data.num_rows


@dataclass
class StagingTable:
    """A staging table filled chunk by chunk, one load job per chunk (see
    :meth:`BigQueryLoader.stage_chunk`): a load holds one chunk in memory, not its whole read.

    Its rows carry ``_seq``, their order of arrival: where an event id is staged more than once
    (an event delivered twice), the transaction inserts the first copy only.
    """

    spec: TableSpec
    table_id: str
    rows: int = 0
    staged_bytes: int = 0
    job_ids: list[str] = field(default_factory=list)
    created: bool = False


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


@dataclass
class ReplaceResult:
    """What a replacement did, for run metadata."""

    rows_written: dict[str, int] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0
    transactions: int = 0


class BigQueryLoader:
    """Creates datasets and tables, and replaces scoped table content atomically."""

    def __init__(
        self,
        client: bigquery.Client,
        dataset: str,
        *,
        location: str | None = None,
        staging_dataset: str | None = None,
        retry_timeout: float = default_of(BigQuerySettings, "retry_timeout").total_seconds(),
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

    def place(self) -> tuple[str, str]:
        """The endpoint and project this loader writes to (the key of :data:`METADATA`)."""
        connection = getattr(self.client, "_connection", None)
        return str(getattr(connection, "API_BASE_URL", "")), self.project

    def ensure_dataset(self) -> None:
        """Create the dataset (and the staging dataset) if missing.

        Read first, created only if not found, and remembered for the process
        (:mod:`cwl_pipeline.adapters.bigquery_metadata`): ``datasets.insert`` is rate-limited.
        """
        place = self.place()
        for name in sorted({self.dataset, self.staging_dataset}):
            if METADATA.has_dataset(place, name):
                continue
            dataset_id = f"{self.project}.{name}"
            try:
                self.client.get_dataset(dataset_id, retry=self.retry)
            except gexc.NotFound:
                dataset = bigquery.Dataset(dataset_id)
                dataset.location = self.location
                self._call(
                    f"dataset {dataset_id}",
                    self.client.create_dataset,
                    dataset,
                    exists_ok=True,
                    retry=self.retry,
                )
            except Exception as exc:
                raise self._wrap(f"dataset {dataset_id}", exc) from None
            METADATA.add_dataset(place, name)

    def ensure_table(self, spec: TableSpec) -> None:
        """Create ``spec.table`` (DAY-partitioned, clustered) if missing, else evolve its schema.

        An existing table is evolved to ``spec`` (see :class:`SchemaComparison`): declared
        columns it lacks are added as NULLABLE, REQUIRED columns the pipeline may leave NULL
        are relaxed to NULLABLE, and columns no longer declared are kept. Nothing is dropped.
        A table this process already created or evolved to ``spec`` is not read again
        (:mod:`cwl_pipeline.adapters.bigquery_metadata`).

        Raises:
            DestinationError: a declared column has another type than the table's column
                (the message names both types and what to do); the table is left unchanged.
        """
        place = self.place()
        if METADATA.table_spec(place, self.dataset, spec.table) == spec:
            return
        table_id = self.table_id(spec.table)
        try:
            existing = self.client.get_table(table_id, retry=self.retry)
        except gexc.NotFound:
            table = bigquery.Table(table_id, schema=[_field(c) for c in spec.all_columns])
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY,
                field=spec.partition_column,
                expiration_ms=int(spec.partition_expiration.total_seconds() * 1000)
                if spec.partition_expiration
                else None,
            )
            if spec.clustering:
                table.clustering_fields = list(spec.clustering)
            table.description = spec.description or None
            self._call(f"table {table_id}", self.client.create_table, table, exists_ok=True, retry=self.retry)
        except Exception as exc:
            raise self._wrap(f"table {table_id}", exc) from None
        else:
            self._evolve_schema(existing, spec)
        METADATA.set_table(place, self.dataset, spec.table, spec)

    def _evolve_schema(self, existing: bigquery.Table, spec: TableSpec) -> bigquery.Table:
        table_id = self.table_id(spec.table)
        comparison = compare_schema(existing.schema, spec)
        if comparison.retyped:
            raise DestinationError(
                f"table {table_id}: " + " ".join(_retype_message(table_id, r) for r in comparison.retyped)
            )
        if not comparison.changes_needed:
            return existing
        target = self.table_sql(spec.table)
        # DDL makes the change (ADD COLUMN adds a NULLABLE column; DROP NOT NULL is BigQuery's
        # documented REQUIRED -> NULLABLE relaxation); one ALTER per statement, in one script.
        statements = [
            f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS "
            f"{quote_identifier('column', c.name)} {_ddl_type(c.type)};"
            for c in comparison.missing
        ] + [
            f"ALTER TABLE {target} ALTER COLUMN {quote_identifier('column', name)} DROP NOT NULL;"
            for name in comparison.to_relax
        ]
        job = self._call(
            f"schema change of {table_id}", self.client.query, "\n".join(statements), **self._query_retries()
        )
        self._call(f"schema change of {table_id}", job.result, retry=self.retry, job_retry=self.job_retry)
        # Then the table's metadata is patched with the new columns' descriptions. BigQuery has
        # already applied the DDL to it; bqemulator applies DDL to its storage only, and this
        # patch to its metadata only, so both are needed for the two to agree there.
        current = self._call(f"table {table_id}", self.client.get_table, table_id, retry=self.retry)
        current.schema = _evolved_schema(current.schema, comparison, datetime.now(UTC))
        updated = self._call(
            f"table {table_id}", self.client.update_table, current, ["schema"], retry=self.retry
        )
        for change in comparison.change_notes():
            _log.warning("table %s: %s", table_id, change)
        return updated

    def replace(
        self,
        replacements: Sequence[Replacement],
        label: str = "",
        *,
        decide: Callable[[PreparedReplace], Sequence[Replacement]] | None = None,
    ) -> ReplaceResult:
        """Atomically replace the scoped rows of every table in ``replacements``.

        Each in-memory batch is staged with a load job (a :class:`StagingTable` already
        filled chunk by chunk is used as it is); one transaction then deletes the scoped rows
        and inserts the staged ones in every target table, the first staged copy of each key
        only. If BigQuery cancels the transaction for a concurrent one on a target table, it
        runs again (see :meth:`_run_transaction`). Staging tables are dropped afterwards (and
        expire on their own if the process dies first).

        ``decide``, if given, sees the staged data before the transaction (it may count it,
        :meth:`PreparedReplace.counts`) and returns the replacements to write (the same ones,
        or with other ``keep`` flags), or none: then nothing is written and no transaction runs.
        """
        result = ReplaceResult()
        # Inserting nothing into a table whose rows are kept is no change: skip it entirely.
        for skipped in [r for r in replacements if not (r.rows or not r.keep)]:
            self.drop_staging(skipped.staged)
        replacements = [r for r in replacements if r.rows or not r.keep]
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
                staging_id, job_id, size = self._stage(replacement, label)
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
                scope_table, job_id = self._stage_scope(scope_rows, label)
                result.job_ids.append(job_id)
            if decide is not None:
                chosen = list(decide(PreparedReplace(self, staged, scope_table)))
                if not chosen:
                    return result
                staged = [(r, staging_id) for r, (_, staging_id) in zip(chosen, staged, strict=True)]
            ledger = self.ensure_ledger([r.spec.table for r, _ in staged])
            script = self._replace_script(staged, scope_table, ledger)
            # The staging tables stay while the transaction is retried: they are dropped below.
            targets = [self.table_id(r.spec.table) for r, _ in staged]
            job = self._run_transaction("replace transaction", script, targets)
            result.job_ids.append(job.job_id)
            result.transactions += 1
        finally:
            for staging_id in [s for _, s in staged] + ([scope_table] if scope_table else []):
                self._drop_staging(staging_id)
        for replacement, _ in staged:
            result.rows_written[replacement.spec.table] = replacement.rows
        return result

    def open_staging(self, spec: TableSpec, label: str) -> StagingTable:
        """A staging table for ``spec``'s rows, created by the first :meth:`stage_chunk`."""
        staging_id = self._staging_id("stage", check_identifier("table", spec.table), label)
        return StagingTable(spec=spec, table_id=staging_id)

    def stage_chunk(self, staging: StagingTable, data: pa.Table) -> None:
        """Append ``data`` (``spec.columns``, more ignored) to ``staging`` with one load job."""
        if not data.num_rows:
            return
        spec = staging.spec
        chunk = data.select([c.name for c in spec.columns]).append_column(
            SEQ_COLUMN, pa.array(range(staging.rows, staging.rows + data.num_rows), pa.int64())
        )
        schema = [*(_staging_field(c) for c in spec.columns), bigquery.SchemaField(SEQ_COLUMN, "INT64")]
        size, job_id = self._load_staging(
            staging.table_id, schema, chunk, create=not staging.created, append=staging.created
        )
        staging.created = True
        staging.rows += data.num_rows
        staging.staged_bytes += size
        staging.job_ids.append(job_id)

    def drop_staging(self, staging: StagingTable | None) -> None:
        """Drop ``staging`` (best effort; it expires on its own anyway)."""
        if staging is not None and staging.created:
            self._drop_staging(staging.table_id)

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
        self,
        staging_id: str,
        schema: list[bigquery.SchemaField],
        data: pa.Table,
        *,
        create: bool = True,
        append: bool = False,
    ) -> tuple[int, str]:
        if create:
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
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND
            if append
            else bigquery.WriteDisposition.WRITE_TRUNCATE,
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
        finally:
            buffer.close()
        return size, job.job_id

    def _drop_staging(self, staging_id: str) -> None:
        # Best effort and briefly retried: a failed drop must not hide or delay the original
        # error, and staging tables expire on their own after STAGING_TTL.
        with contextlib.suppress(Exception):
            self.client.delete_table(staging_id, not_found_ok=True, retry=self.drop_retry)

    def ensure_ledger(self, tables: Sequence[str]) -> str:
        """The ledger of the family of ``tables`` (the first is its events table), created with
        a row for each of them if missing; once per process. Returns the ledger's table id.

        The rows are inserted outside any transaction, before the first load transaction needs
        them: the guard is an UPDATE, and an UPDATE of a row that is not there changes nothing.
        Two processes inserting the same missing row at once store it twice; harmless, the
        UPDATE then changes both.
        """
        ledger_id = self.table_id(ledger_table_name(tables[0]))
        targets = tuple(sorted({self.table_id(t) for t in tables}))
        with _LEDGER_LOCK:
            if (ledger_id, targets) in _LEDGER_ROWS_READY:
                return ledger_id
        try:
            self.client.get_table(ledger_id, retry=self.retry)
        except gexc.NotFound:
            table = bigquery.Table(ledger_id, schema=list(LEDGER_SCHEMA))
            table.description = "One row per table the pipeline loads; each load transaction updates it"
            self._call(
                f"table {ledger_id}", self.client.create_table, table, exists_ok=True, retry=self.retry
            )
        except Exception as exc:
            raise self._wrap(f"table {ledger_id}", exc) from None
        job_config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("targets", "STRING", list(targets))]
        )
        sql = (
            f"INSERT INTO `{ledger_id}` (`target`, `transactions`, `updated_at`) "
            "SELECT `target`, 0, CURRENT_TIMESTAMP() FROM UNNEST(@targets) AS `target` "
            f"WHERE `target` NOT IN (SELECT `target` FROM `{ledger_id}`)"
        )
        job = self._call(
            f"rows of {ledger_id}", self.client.query, sql, job_config=job_config, **self._query_retries()
        )
        self._call(f"rows of {ledger_id}", job.result, retry=self.retry, job_retry=self.job_retry)
        with _LEDGER_LOCK:
            _LEDGER_ROWS_READY.add((ledger_id, targets))
        return ledger_id

    def _replace_script(
        self, staged: Sequence[tuple[Replacement, str]], scope_table: str | None, ledger: str
    ) -> str:
        targets = ", ".join(sorted({string_literal(self.table_id(r.spec.table)) for r, _ in staged}))
        statements = [
            # One load time for the whole transaction: the counts find the rows it inserted by it.
            f"DECLARE {LOAD_TIME} TIMESTAMP DEFAULT CURRENT_TIMESTAMP();",
            "BEGIN TRANSACTION;",
            # The guard (see LEDGER_PREFIX): a mutation that makes concurrent loads of these
            # tables conflict, so one commits and the others run again on a newer snapshot.
            f"UPDATE `{ledger}` SET `transactions` = `transactions` + 1, "
            f"`updated_at` = CURRENT_TIMESTAMP() WHERE `target` IN ({targets});",
        ]
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
            scope = replacement.scope.in_script(scope_sql, index)
            if not replacement.keep:
                if replacement.counts is not None:
                    statements.append(self._count_rows(replacement, f"WHERE {scope}", -1))
                statements.append(f"DELETE FROM {target} WHERE {scope};")
            if replacement.rows:
                columns = ", ".join(quote_identifier("column", c.name) for c in spec.all_columns)
                insert = (
                    f"INSERT INTO {target} ({columns}) "
                    f"SELECT {select}, {LOAD_TIME} FROM {_first_copies(replacement, staging_id)}"
                )
                if replacement.keys and (replacement.keep or replacement.stored is not None):
                    # Unqualified columns in the subquery are the target's: the scope bounds
                    # its scan (partitions, clustering) to where copies can be.
                    stored = (
                        scope
                        if replacement.stored is None
                        else replacement.stored.in_script(scope_sql, len(staged) + index)
                    )
                    same = " AND ".join(
                        f"{quote_identifier('column', k)} = staged.{quote_identifier('column', k)}"
                        for k in replacement.keys
                    )
                    insert += (
                        f" AS staged WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {stored} AND {same})"
                    )
                elif replacement.staged is not None:
                    insert += " AS staged"
                statements.append(insert + ";")
                if replacement.counts is not None:
                    loaded = quote_identifier("column", LOADED_AT.name)
                    statements.append(
                        self._count_rows(replacement, f"WHERE {scope} AND {loaded} = {LOAD_TIME}", 1)
                    )
        statements.append("COMMIT TRANSACTION;")
        return "\n".join(statements)

    def _count_rows(self, replacement: Replacement, where: str, sign: int) -> str:
        """A statement of the transaction script recording in ``replacement.counts`` the rows
        of its target matched by ``where``, per ingestion hour (NULL for rows without an
        ingestion time), event hour and log group, counted ``sign`` times."""
        assert replacement.counts is not None
        spec = replacement.spec
        counts = self.table_sql(replacement.counts.table)
        time = quote_identifier("column", spec.partition_column)
        columns = ", ".join(quote_identifier("column", c.name) for c in replacement.counts.all_columns)
        return (
            f"INSERT INTO {counts} ({columns}) "
            f"SELECT TIMESTAMP_TRUNC(`ingestion_time`, HOUR) AS ingestion_hour, "
            f"TIMESTAMP_TRUNC({time}, HOUR) AS event_hour, `log_group`, "
            f"{string_literal(spec.table)} AS table_name, {sign} * COUNT(*) AS row_count, {LOAD_TIME} "
            f"FROM {self.table_sql(spec.table)} {where} "
            "GROUP BY ingestion_hour, event_hour, `log_group`;"
        )

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
        tables. Safe because a cancelled attempt changed nothing, and the attempt run again
        reads a newer snapshot: it replaces its scope again, or inserts only what the
        transaction that won still left missing.

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
                        scrub_secrets(
                            f"BigQuery {what} on {', '.join(tables)} was cancelled by a concurrent "
                            f"update of the same table {attempt} times in {elapsed:.1f}s "
                            f"(retry_timeout {self.retry_timeout:g}s); the last time: {_conflict_detail(exc)}"
                        )
                    ) from exc
                time.sleep(delay)

    def ensure_view(self, view: str, select_sql: str, description: str = "") -> None:
        """Create the view ``view`` over ``select_sql``, or replace the query of an existing
        one that differs (so a view listing a table's columns follows a schema change).

        Read first, and remembered for the process with its query
        (:mod:`cwl_pipeline.adapters.bigquery_metadata`): the same query is not checked again.
        (The emulator returns no query for a view: there it is replaced once per process.)
        ``select_sql`` may hold only identifiers from :meth:`table_sql` and literals.
        """
        place = self.place()
        if METADATA.view_query(place, self.dataset, view) == select_sql:
            return
        view_id = self.table_id(view)
        try:
            existing: bigquery.Table | None = self.client.get_table(view_id, retry=self.retry)
        except gexc.NotFound:
            existing = None
        except Exception as exc:
            raise self._wrap(f"view {view_id}", exc) from None
        if existing is None:
            table = bigquery.Table(view_id)
            table.view_query = select_sql
            table.description = description or None
            self._call(f"view {view_id}", self.client.create_table, table, exists_ok=True, retry=self.retry)
        elif existing.view_query != select_sql or existing.description != (description or None):
            # tables.patch of the view's query: its users never see it missing (a drop and
            # create would), and the etag makes a concurrent change fail rather than be lost.
            existing.view_query = select_sql
            existing.description = description or None
            self._call(
                f"view {view_id}",
                self.client.update_table,
                existing,
                ["view_query", "description"],
                retry=self.retry,
            )
        METADATA.set_view(place, self.dataset, view, select_sql)

    def count(self, table: str, scope: Scope) -> int:
        """Rows of ``table`` in ``scope`` (0 if the table does not exist)."""
        try:
            self.client.get_table(self.table_id(table), retry=self.retry)
        except gexc.NotFound:
            return 0
        where, params = scope.with_parameters()
        rows = self.query_rows(f"SELECT COUNT(*) AS n FROM {self.table_sql(table)} WHERE {where}", params)
        return int(rows[0]["n"])

    def counts_by_ingestion_hour(
        self,
        table: str,
        time_column: str,
        log_groups: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        event_time_before: timedelta,
        event_time_after: timedelta,
    ) -> dict[datetime, int]:
        """Rows of ``log_groups`` in ``table`` per UTC hour of ``ingestion_time`` in
        ``[start, end)`` (hours without rows are absent; 0 rows if the table does not exist).

        The table is partitioned on ``time_column`` (the event time), not on the ingestion time:
        the statement also bounds the event time to ``[start - event_time_before, end +
        event_time_after)`` so BigQuery prunes the partitions outside it. The caller passes the
        bounds CloudWatch puts on an event's time at ingestion (PutLogEvents accepts events up
        to 14 days old and 2 hours ahead), so no row in the hours is left out.
        """
        try:
            self.client.get_table(self.table_id(table), retry=self.retry)
        except gexc.NotFound:
            return {}
        if not log_groups:
            return {}
        time_col = quote_identifier("column", time_column)
        rows = self.query_rows(
            f"SELECT TIMESTAMP_TRUNC(`ingestion_time`, HOUR) AS hour, COUNT(*) AS n "
            f"FROM {self.table_sql(table)} "
            f"WHERE {time_col} >= @event_start AND {time_col} < @event_end "
            f"AND `ingestion_time` >= @ingested_start AND `ingestion_time` < @ingested_end "
            f"AND `log_group` IN UNNEST(@log_groups) "
            f"GROUP BY hour",
            [
                bigquery.ScalarQueryParameter("event_start", "TIMESTAMP", start - event_time_before),
                bigquery.ScalarQueryParameter("event_end", "TIMESTAMP", end + event_time_after),
                bigquery.ScalarQueryParameter("ingested_start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("ingested_end", "TIMESTAMP", end),
                bigquery.ArrayQueryParameter("log_groups", "STRING", sorted(set(log_groups))),
            ],
        )
        return {_utc(row["hour"]): int(row["n"]) for row in rows if row["hour"] is not None}

    def recorded_counts_by_hour(
        self,
        counts_table: str,
        tables: Sequence[str],
        log_groups: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> dict[datetime, int]:
        """Rows of ``log_groups`` stored in ``tables`` per UTC hour of ingestion in
        ``[start, end)``, as the load transactions recorded them in ``counts_table`` (hours
        without rows are absent; none if the counts table does not exist). Reads the counts
        table only: a few rows an hour, not the tables themselves."""
        try:
            self.client.get_table(self.table_id(counts_table), retry=self.retry)
        except gexc.NotFound:
            return {}
        if not log_groups or not tables:
            return {}
        rows = self.query_rows(
            f"SELECT `ingestion_hour` AS hour, SUM(`row_count`) AS n FROM {self.table_sql(counts_table)} "
            "WHERE `ingestion_hour` >= @start AND `ingestion_hour` < @end "
            f"AND `log_group` IN UNNEST(@log_groups) AND `table_name` IN UNNEST(@tables) "
            f"GROUP BY hour",
            [
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", end),
                bigquery.ArrayQueryParameter("log_groups", "STRING", sorted(set(log_groups))),
                bigquery.ArrayQueryParameter("tables", "STRING", sorted(set(tables))),
            ],
        )
        return {_utc(row["hour"]): int(row["n"] or 0) for row in rows if row["hour"] is not None}

    def counts_version_sql(self, counts_table: str, source_table: str, start: datetime, end: datetime) -> str:
        """A scalar subquery: how many rows ``counts_table`` holds for ``source_table``'s
        event hours in ``[start, end)``. The counts table only grows, by a row per hour and
        log group a load transaction changed: a larger number later means a change since."""
        return (
            f"(SELECT COUNT(*) FROM {self.table_sql(counts_table)} "
            f"WHERE `event_hour` >= {timestamp_literal(start)} AND `event_hour` < {timestamp_literal(end)} "
            f"AND `table_name` = {string_literal(source_table)})"
        )

    def changed_since_computed(
        self,
        counts_table: str,
        source_table: str,
        derived_table: str,
        derived_column: str,
        period: timedelta,
        start: datetime,
        end: datetime,
    ) -> list[datetime]:
        """Starts of the ``period``-long partitions of ``derived_table`` (on ``derived_column``)
        in ``[start, end)`` whose rows of ``source_table`` changed since the partition was
        computed: the counts table holds more rows for it than the partition's
        ``inputs_version`` (:meth:`counts_version_sql` as the computing transaction saw it),
        or the partition has none. One query over two small tables."""
        try:
            self.client.get_table(self.table_id(counts_table), retry=self.retry)
        except gexc.NotFound:
            return []
        unit = "DAY" if period >= timedelta(days=1) else "HOUR"
        column = quote_identifier("column", derived_column)
        rows = self.query_rows(
            f"WITH changed AS (SELECT TIMESTAMP_TRUNC(`event_hour`, {unit}) AS part, COUNT(*) AS n "
            f"FROM {self.table_sql(counts_table)} "
            "WHERE `event_hour` >= @start AND `event_hour` < @end AND `table_name` = @source "
            "GROUP BY part), "
            f"computed AS (SELECT {column} AS part, MAX(`inputs_version`) AS n "
            f"FROM {self.table_sql(derived_table)} WHERE {column} >= @start AND {column} < @end "
            "GROUP BY part) "
            "SELECT changed.part AS part FROM changed LEFT JOIN computed ON changed.part = computed.part "
            "WHERE computed.n IS NULL OR changed.n > computed.n",
            [
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", end),
                bigquery.ScalarQueryParameter("source", "STRING", source_table),
            ],
        )
        return sorted(_utc(row["part"]) for row in rows)

    def created_at(self, table: str) -> datetime | None:
        """When ``table`` was created (None if it does not exist)."""
        try:
            found = self.client.get_table(self.table_id(table), retry=self.retry)
        except gexc.NotFound:
            return None
        return _utc(found.created) if found.created is not None else None

    def duplicate_ids(self, table: str, scope: Scope, id_column: str = "event_id") -> int:
        """Rows in scope beyond the first of each ``id_column`` value."""
        where, params = scope.with_parameters()
        rows = self.query_rows(
            f"SELECT COUNT(*) - COUNT(DISTINCT {quote_identifier('column', id_column)}) AS n "
            f"FROM {self.table_sql(table)} WHERE {where}",
            params,
        )
        return int(rows[0]["n"] or 0)

    def select(
        self, table: str, columns: Sequence[str], scope: Scope, *, marking: Scope | None = None
    ) -> list[dict[str, Any]]:
        """``columns`` of the rows of ``table`` in ``scope``; with ``marking``, a BOOL column
        ``marked`` tells which of them it matches too."""
        names = ", ".join(quote_identifier("column", c) for c in columns)
        where, params = scope.with_parameters()
        if marking is not None:
            mark, mark_params = marking.with_parameters()
            if {p.name for p in mark_params} & {p.name for p in params}:
                raise ValueError("the marking scope reuses a parameter name of the selecting scope")
            names += f", COALESCE(({mark}), FALSE) AS marked"
            params = [*params, *mark_params]
        return self.query_rows(f"SELECT {names} FROM {self.table_sql(table)} WHERE {where}", params)

    def compare_schema(self, spec: TableSpec) -> SchemaComparison:
        """How the live table's columns compare with ``spec`` (see :class:`SchemaComparison`)."""
        table_id = self.table_id(spec.table)
        table = self._call(f"table {table_id}", self.client.get_table, table_id, retry=self.retry)
        return compare_schema(table.schema, spec)

    def schema_differences(self, spec: TableSpec) -> list[str]:
        """Differences between the live table and ``spec`` that would break or falsify a load.

        Empty when every declared column is on the table with its type and a compatible mode.
        Columns the table keeps but ``spec`` no longer declares, a NULLABLE table column
        declared REQUIRED and another column order are compatible: see
        :meth:`SchemaComparison.notes`.
        """
        return self.compare_schema(spec).differences()

    def iter_select(
        self,
        table: str,
        columns: Sequence[str],
        scope: Scope,
        *,
        order_by: Sequence[str] = (),
        page_size: int = 10_000,
    ) -> Iterator[dict[str, Any]]:
        """``columns`` of the rows of ``table`` in ``scope`` (in ``order_by`` order), fetched a
        page at a time as they are consumed: memory holds one page, not the result."""
        names = ", ".join(quote_identifier("column", c) for c in columns)
        where, params = scope.with_parameters()
        order = ", ".join(quote_identifier("column", c) for c in order_by)
        sql = f"SELECT {names} FROM {self.table_sql(table)} WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        job_config = bigquery.QueryJobConfig(query_parameters=list(params))
        job = self._call("query", self.client.query, sql, job_config=job_config, **self._query_retries())
        rows = self._call(
            "query", job.result, page_size=page_size, retry=self.retry, job_retry=self.job_retry
        )
        pages = iter(rows.pages)
        while True:
            page = self._call("query results", next, pages, None)
            if page is None:
                return
            for row in page:
                yield dict(row.items())

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
            return DestinationError(scrub_secrets(f"BigQuery denied access to {what}: {exc.message}"))
        if isinstance(exc, gexc.NotFound):
            # Deleted behind this process's back, maybe: the next ensure reads and creates again.
            METADATA.forget(self.place())
            return DestinationError(scrub_secrets(f"BigQuery {what}: not found: {exc.message}"))
        if isinstance(exc, gexc.GoogleAPICallError):
            return DestinationError(scrub_secrets(f"BigQuery {what} failed: {exc.message}"))
        if isinstance(exc, OSError | ConnectionError) or "Connection" in type(exc).__name__:
            endpoint = getattr(self.client._connection, "API_BASE_URL", "BigQuery")
            return DestinationError(
                scrub_secrets(f"BigQuery endpoint {endpoint} unreachable while accessing {what}: {exc}")
            )
        return exc


SEQ_COLUMN = "_seq"
"""Order of arrival of a staged row (staging tables only)."""


def _first_copies(replacement: Replacement, staging_id: str) -> str:
    """The staged rows to insert, as a FROM item: with chunked staging and keys, the first
    staged copy of each event id (``ROW_NUMBER`` over the arrival order). Within one read an
    id is one event (the event-id check counts ids); stored copies are matched on every key,
    since ids can repeat across reads (the local stack's ids restart at 0)."""
    if replacement.staged is None or not replacement.keys:
        return f"`{staging_id}`"
    first_key = quote_identifier("column", replacement.keys[0])
    return (
        f"(SELECT * FROM `{staging_id}` WHERE TRUE "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {first_key} ORDER BY `{SEQ_COLUMN}`) = 1)"
    )


class PreparedReplace:
    """A replacement staged and not written yet: what :meth:`BigQueryLoader.replace` hands
    to its ``decide`` callback."""

    def __init__(
        self, loader: BigQueryLoader, staged: Sequence[tuple[Replacement, str]], scope_table: str | None
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _conflict_detail(exc: BaseException) -> str:
    """The server's message of a conflict error, and the job it cancelled."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    detail = str(first.get("message") or getattr(exc, "message", None) or exc)
    job = getattr(exc, "query_job", None)
    return f"{detail} (job {job.job_id})" if job is not None else detail


def _field(column: Column) -> bigquery.SchemaField:
    return bigquery.SchemaField(
        column.name, column.type, mode=column.mode, description=column.description or None
    )


def _staging_field(column: Column) -> bigquery.SchemaField:
    # JSON is staged as its text and parsed in the transaction.
    return bigquery.SchemaField(column.name, "STRING" if column.type == "JSON" else column.type)


def _canonical_type(field_type: str) -> str:
    # The API reports legacy names; the schema declares GoogleSQL names.
    legacy = {
        "INTEGER": "INT64",
        "FLOAT": "FLOAT64",
        "BOOLEAN": "BOOL",
        "DECIMAL": "NUMERIC",
        "BIGDECIMAL": "BIGNUMERIC",
        "RECORD": "STRUCT",
    }
    return legacy.get(field_type.upper(), field_type.upper())


# Schema evolution -----------------------------------------------------------------------------

# In-place type changes BigQuery allows (ALTER COLUMN ... SET DATA TYPE to a less restrictive
# type: the "coerce to" column of GoogleSQL's conversion rules for these types).
COERCIBLE_TYPES: dict[str, tuple[str, ...]] = {
    "INT64": ("NUMERIC", "BIGNUMERIC", "FLOAT64"),
    "NUMERIC": ("BIGNUMERIC", "FLOAT64"),
    "BIGNUMERIC": ("FLOAT64",),
}
_COERCIONS_TEXT = "; ".join(f"{k} to {' or '.join(v)}" for k, v in COERCIBLE_TYPES.items())
_DESCRIPTION_MAX = 1024  # BigQuery's limit for a column description


@dataclass(frozen=True)
class Retype:
    """A declared column whose table column has another type (or is REPEATED)."""

    column: Column
    table_type: str
    repeated: bool = False

    @property
    def table_type_text(self) -> str:
        """The table column's type as GoogleSQL writes it."""
        return f"ARRAY<{self.table_type}>" if self.repeated else self.table_type

    @property
    def coercible(self) -> bool:
        """BigQuery can change the table column to the declared type in place."""
        return not self.repeated and self.column.type in COERCIBLE_TYPES.get(self.table_type, ())


@dataclass(frozen=True)
class SchemaComparison:
    """How a table's columns compare with a :class:`TableSpec` (names match case-insensitively).

    * ``missing``: declared, not on the table. Added as NULLABLE: BigQuery adds only NULLABLE
      columns to an existing table; the pipeline enforces REQUIRED itself when it normalizes.
    * ``retyped``: declared with another type. Refused; never changed by the pipeline.
    * ``relaxed``: declared REQUIRED, NULLABLE on the table (added after the table was made,
      or declared REQUIRED later). Compatible: a NULLABLE column accepts every row a REQUIRED
      one would.
    * ``to_relax``: REQUIRED on the table but declared NULLABLE or no longer declared: an
      INSERT leaving it NULL would fail, so it is relaxed to NULLABLE.
    * ``undeclared``: on the table, no longer declared, ``(name, type, mode)``. Kept with its
      data; new rows hold NULL there (every INSERT of the loader names its columns).
    * ``reordered``: the table's columns are in another order than declared. Harmless.
    """

    missing: tuple[Column, ...] = ()
    retyped: tuple[Retype, ...] = ()
    relaxed: tuple[Column, ...] = ()
    to_relax: tuple[str, ...] = ()
    undeclared: tuple[tuple[str, str, str], ...] = ()
    reordered: bool = False
    declared: frozenset[str] = frozenset()

    @property
    def changes_needed(self) -> bool:
        """The table needs columns added or relaxed before the pipeline can load it."""
        return bool(self.missing or self.to_relax)

    def differences(self) -> list[str]:
        """What would make a load fail or leave the table unlike the declaration."""
        out = [f"missing column {c.name} {c.type} {c.mode}" for c in self.missing]
        out += [
            f"column {r.column.name} is {r.table_type_text} on the table but declared {r.column.type}"
            for r in self.retyped
        ]
        out += [
            f"column {name} is REQUIRED on the table but declared NULLABLE"
            if name.lower() in self.declared
            else f"undeclared column {name} is REQUIRED on the table (the loader leaves it NULL)"
            for name in self.to_relax
        ]
        return out

    def notes(self) -> list[str]:
        """Compatible differences, each with why it is compatible."""
        out = [
            f"{c.name} is declared REQUIRED but NULLABLE on the table (BigQuery adds only NULLABLE "
            "columns to an existing table, and cannot make a column REQUIRED later): the pipeline "
            "still gives every new row a value (its default, or the event is rejected); rows loaded "
            "before it was declared REQUIRED may hold NULL"
            for c in self.relaxed
        ]
        out += [
            f"{name} {type_} {mode} is no longer declared: the table keeps it and its data, "
            "new rows hold NULL there"
            for name, type_, mode in self.undeclared
        ]
        if self.reordered:
            out.append(
                "the table's columns are in another order than declared (added columns come last): "
                "harmless, every INSERT names its columns"
            )
        return out

    def change_notes(self) -> list[str]:
        """What :meth:`BigQueryLoader.ensure_table` changes on the table, and why."""
        out = [
            f"added column {c.name} {c.type} as NULLABLE"
            + (
                " although declared REQUIRED: BigQuery adds only NULLABLE columns to an existing "
                "table; the pipeline enforces REQUIRED on every new row, rows loaded before hold NULL"
                if c.required
                else "; rows loaded before hold NULL"
            )
            for c in self.missing
        ]
        out += [
            f"relaxed column {name} from REQUIRED to NULLABLE: "
            + (
                "declared NULLABLE"
                if name.lower() in self.declared
                else "no longer declared, so new rows hold NULL there; the column and its data are kept"
            )
            for name in self.to_relax
        ]
        return out


def compare_schema(fields: Sequence[bigquery.SchemaField], spec: TableSpec) -> SchemaComparison:
    """Compare a table's ``fields`` with ``spec.all_columns``."""
    have = {f.name.lower(): f for f in fields}
    declared = {c.name.lower(): c for c in spec.all_columns}
    missing, retyped, relaxed, to_relax = [], [], [], []
    for key, column in declared.items():
        field_ = have.get(key)
        if field_ is None:
            missing.append(column)
            continue
        table_type, mode = _canonical_type(field_.field_type), field_.mode or "NULLABLE"
        if table_type != column.type or mode == "REPEATED":
            retyped.append(Retype(column, table_type, repeated=mode == "REPEATED"))
        elif mode == "NULLABLE" and column.required:
            relaxed.append(column)
        elif mode == "REQUIRED" and not column.required:
            to_relax.append(field_.name)
    undeclared = [
        (f.name, _canonical_type(f.field_type), f.mode or "NULLABLE")
        for f in fields
        if f.name.lower() not in declared
    ]
    to_relax += [name for name, _, mode in undeclared if mode == "REQUIRED"]
    present = [f.name.lower() for f in fields if f.name.lower() in declared]
    return SchemaComparison(
        missing=tuple(missing),
        retyped=tuple(retyped),
        relaxed=tuple(relaxed),
        to_relax=tuple(to_relax),
        undeclared=tuple(u for u in undeclared if u[2] != "REQUIRED"),
        reordered=present != [k for k in declared if k in have],
        declared=frozenset(declared),
    )


def _retype_message(table_id: str, retype: Retype) -> str:
    name, declared, have = retype.column.name, retype.column.type, retype.table_type_text
    head = f"Column {name} is {have} on the table but declared {declared}."
    if retype.coercible:
        return (
            f"{head} BigQuery can widen {have} to {declared} in place: check the queries that read "
            f"the column, run ALTER TABLE `{table_id}` ALTER COLUMN `{name}` SET DATA TYPE {declared}, "
            "then re-run the load (the pipeline never changes a column's type itself). Until then its "
            "loads are refused; nothing was changed."
        )
    return (
        f"{head} BigQuery cannot change {have} to {declared} in place (ALTER COLUMN ... SET DATA "
        f"TYPE only widens {_COERCIONS_TEXT}). Declare the new type under a new column name (the "
        "table keeps the old column, NULL in new rows), or give the stream a new table, or rewrite "
        "this table with a query that CASTs the column. Until then its loads are refused; nothing "
        "was changed."
    )


def _ddl_type(column_type: str) -> str:
    # The type is written into DDL text: only the declared schema types are accepted.
    if column_type not in COLUMN_TYPES:
        raise ValueError(f"{column_type!r} is not one of {COLUMN_TYPES}")
    return column_type


def _evolved_schema(
    fields: Sequence[bigquery.SchemaField], comparison: SchemaComparison, now: datetime
) -> list[bigquery.SchemaField]:
    """``fields`` with the added columns (and their descriptions) and relaxed modes applied."""
    added = {c.name.lower(): c for c in comparison.missing}
    relax = {name.lower() for name in comparison.to_relax}
    out = []
    for field_ in fields:
        key = field_.name.lower()
        if key in added:
            out.append(_added_field(added.pop(key), now))
        elif key in relax and field_.mode == "REQUIRED":
            out.append(bigquery.SchemaField.from_api_repr({**field_.to_api_repr(), "mode": "NULLABLE"}))
        else:
            out.append(field_)
    return out + [_added_field(c, now) for c in added.values()]


def _added_field(column: Column, now: datetime) -> bigquery.SchemaField:
    note = f"(Added on {now:%Y-%m-%d} as NULLABLE: rows loaded before hold NULL."
    note += " Declared REQUIRED: the pipeline gives every new row a value.)" if column.required else ")"
    room = _DESCRIPTION_MAX - len(note) - 1
    description = f"{column.description[:room]} {note}" if column.description else note
    return bigquery.SchemaField(column.name, column.type, mode="NULLABLE", description=description)

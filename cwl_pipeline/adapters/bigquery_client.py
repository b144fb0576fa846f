"""A BigQuery client for the pipeline: bounded retries, errors as :class:`DestinationError`,
datasets, tables and views created (or evolved) when missing, and the queries that read tables.

Every API call is retried within ``retry_timeout`` and a failure becomes a
:class:`~cwl_pipeline.adapters.errors.DestinationError` naming what was accessed, its text
scrubbed of secrets (:meth:`BigQueryClient.call`). Datasets, tables and views are read before
they are created, and remembered for the process (:mod:`cwl_pipeline.adapters.bigquery_metadata`).
Reads take their values as query parameters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from cwl_pipeline.adapters.bigquery_metadata import METADATA
from cwl_pipeline.adapters.bigquery_schema import (
    SchemaComparison,
    TableSpec,
    compare_schema,
    evolved_schema,
    retype_message,
    schema_change_script,
    table_field,
)
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_literals import string_literal, timestamp_literal
from cwl_pipeline.adapters.sql_scopes import QueryParameter, Scope
from cwl_pipeline.config import BigQuerySettings, default_of
from cwl_pipeline.core.key_digest import HASH_HEX_DIGITS, KeyDigest
from cwl_pipeline.core.scrub import scrub_secrets
from cwl_pipeline.core.sql_identifiers import check_identifier, quote_identifier, table_path

__all__ = ["BigQueryClient"]

_log = logging.getLogger(__name__)


def key_hash_sql(id_column: str, time_column: str) -> str:
    """:func:`cwl_pipeline.core.key_digest.key_hash` in GoogleSQL."""
    event_id, time = quote_identifier("column", id_column), quote_identifier("column", time_column)
    text = f"CONCAT({event_id}, '|', CAST(UNIX_MICROS({time}) AS STRING))"
    return f"CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5({text})), 1, {HASH_HEX_DIGITS})) AS INT64)"


class BigQueryClient:
    """A ``bigquery.Client`` bound to one dataset (and a staging dataset), with the calls,
    retries and error mapping every BigQuery adapter shares."""

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
        """The endpoint and project this client writes to (the key of :data:`METADATA`)."""
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
                self.call(
                    f"dataset {dataset_id}",
                    self.client.create_dataset,
                    dataset,
                    exists_ok=True,
                    retry=self.retry,
                )
            except Exception as exc:
                raise self.wrap(f"dataset {dataset_id}", exc) from None
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
            table = bigquery.Table(table_id, schema=[table_field(c) for c in spec.all_columns])
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
            self.call(f"table {table_id}", self.client.create_table, table, exists_ok=True, retry=self.retry)
        except Exception as exc:
            raise self.wrap(f"table {table_id}", exc) from None
        else:
            self._evolve_schema(existing, spec)
        METADATA.set_table(place, self.dataset, spec.table, spec)

    def _evolve_schema(self, existing: bigquery.Table, spec: TableSpec) -> bigquery.Table:
        table_id = self.table_id(spec.table)
        comparison = compare_schema(existing.schema, spec)
        if comparison.retyped:
            raise DestinationError(
                f"table {table_id}: " + " ".join(retype_message(table_id, r) for r in comparison.retyped)
            )
        if not comparison.changes_needed:
            return existing
        script = schema_change_script(self.table_sql(spec.table), comparison)
        job = self.call(f"schema change of {table_id}", self.client.query, script, **self.query_retries())
        self.call(f"schema change of {table_id}", job.result, retry=self.retry, job_retry=self.job_retry)
        # Then the table's metadata is patched with the new columns' descriptions. BigQuery has
        # already applied the DDL to it; bqemulator applies DDL to its storage only, and this
        # patch to its metadata only, so both are needed for the two to agree there.
        current = self.call(f"table {table_id}", self.client.get_table, table_id, retry=self.retry)
        current.schema = evolved_schema(current.schema, comparison, datetime.now(UTC))
        updated = self.call(
            f"table {table_id}", self.client.update_table, current, ["schema"], retry=self.retry
        )
        for change in comparison.change_notes():
            _log.warning("table %s: %s", table_id, change)
        return updated

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
            raise self.wrap(f"view {view_id}", exc) from None
        if existing is None:
            table = bigquery.Table(view_id)
            table.view_query = select_sql
            table.description = description or None
            self.call(f"view {view_id}", self.client.create_table, table, exists_ok=True, retry=self.retry)
        elif existing.view_query != select_sql or existing.description != (description or None):
            # tables.patch of the view's query: its users never see it missing (a drop and
            # create would), and the etag makes a concurrent change fail rather than be lost.
            existing.view_query = select_sql
            existing.description = description or None
            self.call(
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
        table = self.call(f"table {table_id}", self.client.get_table, table_id, retry=self.retry)
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
        job = self.call("query", self.client.query, sql, job_config=job_config, **self.query_retries())
        rows = self.call("query", job.result, page_size=page_size, retry=self.retry, job_retry=self.job_retry)
        pages = iter(rows.pages)
        while True:
            page = self.call("query results", next, pages, None)
            if page is None:
                return
            for row in page:
                yield dict(row.items())

    def key_digest(self, table: str, scope: Scope, id_column: str, time_column: str) -> KeyDigest:
        """The digest of the events of ``table`` in ``scope`` (:mod:`cwl_pipeline.core.key_digest`):
        one query reading their ids and times."""
        where, params = scope.with_parameters()
        key = key_hash_sql(id_column, time_column)
        row = self.query_rows(
            f"SELECT COUNT(*) AS n, BIT_XOR({key}) AS x FROM {self.table_sql(table)} WHERE {where}", params
        )[0]
        return KeyDigest(int(row["n"] or 0), int(row["x"] or 0))

    def query_rows(self, sql: str, params: Sequence[QueryParameter] = ()) -> list[dict[str, Any]]:
        """Run one statement with its values as query parameters; return its rows as dicts."""
        job_config = bigquery.QueryJobConfig(query_parameters=list(params))
        job = self.call("query", self.client.query, sql, job_config=job_config, **self.query_retries())
        rows = self.call("query", job.result, retry=self.retry, job_retry=self.job_retry)
        return [dict(row.items()) for row in rows]

    def query_retries(self) -> dict[str, Any]:
        """The location and retries of every ``client.query`` call."""
        # job_retry=None here: the client would otherwise wrap jobs.insert in its own 10-minute
        # retry; a failed job is still re-issued, within retry_timeout, by result(job_retry=...).
        return {"location": self.location, "retry": self.retry, "job_retry": None}

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its error turned by :meth:`wrap` into one naming ``what``."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self.wrap(what, exc) from exc

    def wrap(self, what: str, exc: Exception) -> Exception:
        """The :class:`DestinationError` a call's ``exc`` stands for (access denied, not found,
        refused, endpoint unreachable), or ``exc`` itself if it is none of these."""
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


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

"""The write transactions: their scripts, the load ledger that orders them, and their retry
when BigQuery cancels one for a concurrent update.

A load's script (:func:`replace_script`) first updates its tables' rows in their load ledger
(see ``LEDGER_PREFIX``), then writes each :class:`Replacement` in its :class:`ScopeWrite` mode:
replace the rows in scope, or insert the staged rows whose key is missing. A rollup's script
(:func:`query_replace_script`) replaces a time scope with a query's result.
:func:`run_transaction` runs a script, and runs it again while BigQuery cancels it for a
concurrent transaction on one of its tables (:func:`is_transaction_conflict`).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_client import BigQueryClient
from cwl_pipeline.adapters.bigquery_schema import LOADED_AT, TableSpec
from cwl_pipeline.adapters.bigquery_staging import SEQ_COLUMN, StagingTable
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.adapters.sql_literals import string_literal
from cwl_pipeline.adapters.sql_scopes import Scope
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.scrub import scrub_secrets
from cwl_pipeline.core.sql_identifiers import check_identifier, quote_identifier

__all__ = [
    "COUNT_COLUMNS",
    "LEDGER_PREFIX",
    "LEDGER_SCHEMA",
    "Replacement",
    "ScopeWrite",
    "ensure_ledger",
    "is_transaction_conflict",
    "ledger_table_name",
    "query_replace_script",
    "replace_script",
    "run_transaction",
]

LOAD_TIME = "_load_time"
"""Script variable: the ``loaded_at`` of every row a replace transaction inserts."""
COUNT_COLUMNS = (
    Column("ingestion_hour", "TIMESTAMP", description="Hour CloudWatch ingested the rows (if known)"),
    Column("event_hour", "TIMESTAMP", required=True, description="Hour of the rows' event time"),
    Column("log_group", "STRING", required=True, description="Source log group"),
    Column("table_name", "STRING", required=True, description="Table the rows were written to"),
    Column("row_count", "INT64", required=True, description="Rows inserted (negative: deleted)"),
)
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


class ScopeWrite(StrEnum):
    """What a :class:`Replacement` does with the rows already in its scope."""

    REPLACE = "replace"
    """Delete them and insert the staged rows."""
    INSERT_MISSING = "insert_missing"
    """Keep them and insert only the staged rows whose key is not stored yet."""


@dataclass(frozen=True)
class Replacement:
    """New content for the rows of ``spec.table`` matched by ``scope``.

    ``write`` says what becomes of the rows in scope: :attr:`ScopeWrite.REPLACE` (the
    default) deletes them and inserts the staged rows. ``keys`` are the columns identifying a
    row (e.g. the event id and its time). With them:

    * ``write=ScopeWrite.INSERT_MISSING``: the rows in scope are kept, and only staged rows
      whose key is not stored yet are inserted: no DELETE, so BigQuery bills the scan only, not
      the partitions modified; running it twice inserts nothing the second time;
    * ``stored``: where a stored copy is looked for (default: ``scope``); a staged row with a
      copy there is not inserted, whatever the ``write``. A wider scope than ``scope`` (the
      hours of the rows' times, say) finds copies another load stored;
    * ``counts``: a counts table (columns :data:`COUNT_COLUMNS`) where the transaction records,
      per ingestion hour, event hour and log group, the rows it deleted (negative) and inserted.
    """

    spec: TableSpec
    data: pa.Table
    scope: Scope
    keys: tuple[str, ...] = ()
    write: ScopeWrite = ScopeWrite.REPLACE
    stored: Scope | None = None
    staged: StagingTable | None = None
    counts: TableSpec | None = None

    def __post_init__(self) -> None:
        if (self.write is ScopeWrite.INSERT_MISSING or self.stored is not None) and not self.keys:
            raise ValueError("keeping rows or looking for stored copies needs the key columns")

    @property
    def rows(self) -> int:
        """Rows to insert (before any is found stored): the staged ones, or ``data``'s."""
        return self.staged.rows if self.staged is not None else self.data.num_rows


def ensure_ledger(client: BigQueryClient, tables: Sequence[str]) -> str:
    """The ledger of the family of ``tables`` (the first is its events table), created with
    a row for each of them if missing; once per process. Returns the ledger's table id.

    The rows are inserted outside any transaction, before the first load transaction needs
    them: the guard is an UPDATE, and an UPDATE of a row that is not there changes nothing.
    Two processes inserting the same missing row at once store it twice; harmless, the
    UPDATE then changes both.
    """
    ledger_id = client.table_id(ledger_table_name(tables[0]))
    targets = tuple(sorted({client.table_id(t) for t in tables}))
    with _LEDGER_LOCK:
        if (ledger_id, targets) in _LEDGER_ROWS_READY:
            return ledger_id
    try:
        client.client.get_table(ledger_id, retry=client.retry)
    except gexc.NotFound:
        table = bigquery.Table(ledger_id, schema=list(LEDGER_SCHEMA))
        table.description = "One row per table the pipeline loads; each load transaction updates it"
        client.call(
            f"table {ledger_id}", client.client.create_table, table, exists_ok=True, retry=client.retry
        )
    except Exception as exc:
        raise client.wrap(f"table {ledger_id}", exc) from None
    job_config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ArrayQueryParameter("targets", "STRING", list(targets))]
    )
    sql = (
        f"INSERT INTO `{ledger_id}` (`target`, `transactions`, `updated_at`) "
        "SELECT `target`, 0, CURRENT_TIMESTAMP() FROM UNNEST(@targets) AS `target` "
        f"WHERE `target` NOT IN (SELECT `target` FROM `{ledger_id}`)"
    )
    job = client.call(
        f"rows of {ledger_id}", client.client.query, sql, job_config=job_config, **client.query_retries()
    )
    client.call(f"rows of {ledger_id}", job.result, retry=client.retry, job_retry=client.job_retry)
    with _LEDGER_LOCK:
        _LEDGER_ROWS_READY.add((ledger_id, targets))
    return ledger_id


def replace_script(
    client: BigQueryClient, staged: Sequence[tuple[Replacement, str]], scope_table: str | None, ledger: str
) -> str:
    """The transaction script writing every staged replacement (with its staging table's id)
    after the ledger guard; its scopes read their keys from ``scope_table``."""
    targets = ", ".join(sorted({string_literal(client.table_id(r.spec.table)) for r, _ in staged}))
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
        target = client.table_sql(spec.table)
        select = ", ".join(
            f"PARSE_JSON({quote_identifier('column', c.name)})"
            if c.type == "JSON"
            else quote_identifier("column", c.name)
            for c in spec.columns
        )
        scope = replacement.scope.in_script(scope_sql, index)
        if replacement.write is ScopeWrite.REPLACE:
            if replacement.counts is not None:
                statements.append(_count_rows(client, replacement, f"WHERE {scope}", -1))
            statements.append(f"DELETE FROM {target} WHERE {scope};")
        if replacement.rows:
            columns = ", ".join(quote_identifier("column", c.name) for c in spec.all_columns)
            insert = (
                f"INSERT INTO {target} ({columns}) "
                f"SELECT {select}, {LOAD_TIME} FROM {_first_copies(replacement, staging_id)}"
            )
            if replacement.keys and (
                replacement.write is ScopeWrite.INSERT_MISSING or replacement.stored is not None
            ):
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
                insert += f" AS staged WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {stored} AND {same})"
            elif replacement.staged is not None:
                insert += " AS staged"
            statements.append(insert + ";")
            if replacement.counts is not None:
                loaded = quote_identifier("column", LOADED_AT.name)
                statements.append(
                    _count_rows(client, replacement, f"WHERE {scope} AND {loaded} = {LOAD_TIME}", 1)
                )
    statements.append("COMMIT TRANSACTION;")
    return "\n".join(statements)


def _count_rows(client: BigQueryClient, replacement: Replacement, where: str, sign: int) -> str:
    """A statement of the transaction script recording in ``replacement.counts`` the rows
    of its target matched by ``where``, per ingestion hour (NULL for rows without an
    ingestion time), event hour and log group, counted ``sign`` times."""
    assert replacement.counts is not None
    spec = replacement.spec
    counts = client.table_sql(replacement.counts.table)
    event_time = quote_identifier("column", spec.partition_column)
    columns = ", ".join(quote_identifier("column", c.name) for c in replacement.counts.all_columns)
    return (
        f"INSERT INTO {counts} ({columns}) "
        f"SELECT TIMESTAMP_TRUNC(`ingestion_time`, HOUR) AS ingestion_hour, "
        f"TIMESTAMP_TRUNC({event_time}, HOUR) AS event_hour, `log_group`, "
        f"{string_literal(spec.table)} AS table_name, {sign} * COUNT(*) AS row_count, {LOAD_TIME} "
        f"FROM {client.table_sql(spec.table)} {where} "
        "GROUP BY ingestion_hour, event_hour, `log_group`;"
    )


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


def query_replace_script(client: BigQueryClient, spec: TableSpec, select_sql: str, scope: Scope) -> str:
    """The transaction script replacing the ``scope`` rows of ``spec.table`` with the result of
    ``select_sql`` (see :meth:`BigQueryLoader.replace_from_query
    <cwl_pipeline.adapters.bigquery_loader.BigQueryLoader.replace_from_query>`)."""
    if scope.scope_rows():
        raise ValueError("replace_from_query takes a scope without staged keys (a time scope)")
    target = client.table_sql(spec.table)
    columns = ", ".join(quote_identifier("column", c.name) for c in spec.all_columns)
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {target} WHERE {scope.in_script(None, 0)};\n"
        f"INSERT INTO {target} ({columns}) SELECT *, CURRENT_TIMESTAMP() FROM ({select_sql});\n"
        "COMMIT TRANSACTION;"
    )


def run_transaction(
    client: BigQueryClient, what: str, script: str, tables: Sequence[str]
) -> bigquery.QueryJob:
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
            job = client.client.query(script, **client.query_retries())
            job.result(retry=client.retry, job_retry=client.job_retry)
            return job
        except Exception as exc:
            if not is_transaction_conflict(exc):
                raise client.wrap(what, exc) from exc
            ceiling = min(CONFLICT_BACKOFF_MAX, CONFLICT_BACKOFF_FIRST * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)
            elapsed = time.monotonic() - start
            if elapsed + delay > client.retry_timeout:
                raise DestinationError(
                    scrub_secrets(
                        f"BigQuery {what} on {', '.join(tables)} was cancelled by a concurrent "
                        f"update of the same table {attempt} times in {elapsed:.1f}s "
                        f"(retry_timeout {client.retry_timeout:g}s); the last time: {_conflict_detail(exc)}"
                    )
                ) from exc
            time.sleep(delay)


def _conflict_detail(exc: BaseException) -> str:
    """The server's message of a conflict error, and the job it cancelled."""
    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    detail = str(first.get("message") or getattr(exc, "message", None) or exc)
    job = getattr(exc, "query_job", None)
    return f"{detail} (job {job.job_id})" if job is not None else detail

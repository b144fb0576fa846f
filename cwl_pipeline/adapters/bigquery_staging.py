"""Staging tables: rows (and scope keys) loaded into BigQuery before a transaction writes them.

Each batch goes into a table of its own in the staging dataset with a load job (Parquet, free,
and not a legacy streaming insert). A staging table expires :data:`STAGING_TTL` after it was
created, so one left behind by a process that died is dropped by BigQuery itself; the loader
drops it once its write is done.
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_client import BigQueryClient
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.sql_scopes import SCOPE_TABLE_SCHEMA
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.sql_identifiers import check_identifier, table_path

__all__ = [
    "SEQ_COLUMN",
    "STAGING_TTL",
    "StagingTable",
    "drop_staging",
    "drop_staging_table",
    "open_staging",
    "stage_chunk",
    "stage_rows",
    "stage_scope",
]

STAGING_TTL = timedelta(hours=6)
SEQ_COLUMN = "_seq"
"""Order of arrival of a staged row (staging tables only)."""


@dataclass
class StagingTable:
    """A staging table filled chunk by chunk, one load job per chunk (see
    :func:`stage_chunk`): a load holds one chunk in memory, not its whole read.

    Its rows carry ``_seq``, their order of arrival: where an event id is staged more than once
    (an event delivered twice), the transaction inserts the first copy only.
    """

    spec: TableSpec
    table_id: str
    rows: int = 0
    staged_bytes: int = 0
    job_ids: list[str] = field(default_factory=list)
    created: bool = False


def open_staging(client: BigQueryClient, spec: TableSpec, label: str) -> StagingTable:
    """A staging table for ``spec``'s rows, created by the first :func:`stage_chunk`."""
    staging_id = _staging_id(client, "stage", check_identifier("table", spec.table), label)
    return StagingTable(spec=spec, table_id=staging_id)


def stage_chunk(client: BigQueryClient, staging: StagingTable, data: pa.Table) -> None:
    """Append ``data`` (``spec.columns``, more ignored) to ``staging`` with one load job."""
    if not data.num_rows:
        return
    spec = staging.spec
    chunk = data.select([c.name for c in spec.columns]).append_column(
        SEQ_COLUMN, pa.array(range(staging.rows, staging.rows + data.num_rows), pa.int64())
    )
    schema = [*(_staging_field(c) for c in spec.columns), bigquery.SchemaField(SEQ_COLUMN, "INT64")]
    size, job_id = _load_staging(
        client, staging.table_id, schema, chunk, create=not staging.created, append=staging.created
    )
    staging.created = True
    staging.rows += data.num_rows
    staging.staged_bytes += size
    staging.job_ids.append(job_id)


def drop_staging(client: BigQueryClient, staging: StagingTable | None) -> None:
    """Drop ``staging`` (best effort; it expires on its own anyway)."""
    if staging is not None and staging.created:
        drop_staging_table(client, staging.table_id)


def stage_rows(client: BigQueryClient, spec: TableSpec, data: pa.Table, label: str) -> tuple[str, str, int]:
    """Stage ``data`` (``spec.columns``, more ignored) in a new staging table with one load job;
    returns the table's id, the job's id and the bytes staged."""
    staging_id = _staging_id(client, "stage", check_identifier("table", spec.table), label)
    data = data.select([c.name for c in spec.columns])
    size, job_id = _load_staging(client, staging_id, [_staging_field(c) for c in spec.columns], data)
    return staging_id, job_id, size


def stage_scope(client: BigQueryClient, rows: Sequence[tuple[int, str, str]], label: str) -> tuple[str, str]:
    """Stage the keys a transaction script scopes on, so they never enter the SQL text."""
    staging_id = _staging_id(client, "scope", "keys", label)
    index, kind, value = zip(*rows, strict=True)
    data = pa.table({"scope": pa.array(index, pa.int64()), "kind": pa.array(kind), "value": pa.array(value)})
    _, job_id = _load_staging(client, staging_id, list(SCOPE_TABLE_SCHEMA), data)
    return staging_id, job_id


def drop_staging_table(client: BigQueryClient, staging_id: str) -> None:
    """Drop the staging table ``staging_id`` if it is there."""
    # Best effort and briefly retried: a failed drop must not hide or delay the original
    # error, and staging tables expire on their own after STAGING_TTL.
    with contextlib.suppress(Exception):
        client.client.delete_table(staging_id, not_found_ok=True, retry=client.drop_retry)


def _staging_id(client: BigQueryClient, kind: str, table: str, label: str) -> str:
    suffix = uuid.uuid4().hex[:12]
    label = re.sub(r"[^A-Za-z0-9_]", "_", label)[:100]
    return table_path(client.project, client.staging_dataset, f"_{kind}_{table}_{label}_{suffix}")


def _load_staging(
    client: BigQueryClient,
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
        client.call(f"staging table {staging_id}", client.client.create_table, table, retry=client.retry)
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
        job = client.call(
            f"load into {staging_id}",
            client.client.load_table_from_file,
            buffer,
            staging_id,
            job_config=job_config,
            location=client.location,
            num_retries=client.upload_retries,
        )
        client.call(f"load into {staging_id}", job.result, retry=client.retry)
    except Exception:
        drop_staging_table(client, staging_id)  # the caller only drops the tables that staged
        raise
    finally:
        buffer.close()
    return size, job.job_id


def _staging_field(column: Column) -> bigquery.SchemaField:
    # JSON is staged as its text and parsed in the transaction.
    return bigquery.SchemaField(column.name, "STRING" if column.type == "JSON" else column.type)

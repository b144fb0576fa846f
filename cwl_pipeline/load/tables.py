"""A stream's two BigQuery tables (events and rejects) and the scope one load owns in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from cwl_pipeline.adapters.bigquery import BigQueryLoader, Replacement, ReplaceResult, TableSpec
from cwl_pipeline.adapters.sql_scopes import Scope
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS


@dataclass(frozen=True)
class TablePair:
    """Specs of a stream's events table and of its rejects table."""

    events: TableSpec
    rejects: TableSpec

    @classmethod
    def of(cls, stream: StreamConfig) -> TablePair:
        """Derive both specs from the stream config."""
        schema = stream.schema
        int_columns = [c.name for c in schema.columns if c.type == "INT64"]
        return cls(
            events=TableSpec(
                table=stream.table,
                columns=(*schema.columns, *METADATA_COLUMNS),
                partition_column=schema.time_column,
                clustering=tuple(["log_group", *int_columns][:4]),
                description=stream.description or schema.description,
            ),
            rejects=TableSpec(
                table=stream.rejects_table,
                columns=REJECT_COLUMNS,
                partition_column="timestamp",
                clustering=("log_group", "reason"),
                description=f"Events of stream {stream.name} that did not fit its schema, with the reason.",
            ),
        )


@dataclass(frozen=True)
class LoadScope:
    """The rows one load owns: scopes on the events and on the rejects table."""

    events: Scope
    rejects: Scope


def ensure_tables(loader: BigQueryLoader, tables: TablePair) -> None:
    """Create the dataset and both tables if missing (and reconcile their columns)."""
    loader.ensure_dataset()
    loader.ensure_table(tables.events)
    loader.ensure_table(tables.rejects)


def rows_in_scope(loader: BigQueryLoader, tables: TablePair, scope: LoadScope) -> tuple[int, int]:
    """Rows of the events table and of the rejects table inside ``scope``."""
    return loader.count(tables.events.table, scope.events), loader.count(tables.rejects.table, scope.rejects)


def replace_rows(
    loader: BigQueryLoader, tables: TablePair, scope: LoadScope, rows: pa.Table, rejects: pa.Table, label: str
) -> ReplaceResult:
    """Replace the scoped rows of the events and rejects tables together, in one transaction."""
    return loader.replace(
        [Replacement(tables.events, rows, scope.events), Replacement(tables.rejects, rejects, scope.rejects)],
        label=label,
    )


def range_label(start: datetime, end: datetime) -> str:
    """Short label of a time range, used in staging table names."""
    return f"{start.strftime('%Y%m%d%H%M')}_{end.strftime('%Y%m%d%H%M')}"

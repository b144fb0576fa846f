"""The two BigQuery tables every stream writes (events and rejects) as Dagster assets.

Shared by every source type: keys, table specs, asset specs with column schemas and links, and
the materialization events of a load, with true per-window figures even when one run loads
a range of windows.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import pyarrow as pa

from cwl_pipeline.adapters.bigquery import BigQueryLoader, Replacement, ReplaceResult, TableSpec
from cwl_pipeline.adapters.sql_scopes import Scope
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS, Column
from cwl_pipeline.core.window_stats import WindowStats
from cwl_pipeline.core.windows import partition_key

STREAM_TAG = "cwl/stream"
LOAD_KIND_TAG = "cwl/load"


@dataclass(frozen=True)
class StreamTables:
    """Asset keys and BigQuery table specs of one stream's events and rejects tables."""

    stream: StreamConfig
    events_key: dg.AssetKey
    rejects_key: dg.AssetKey
    events_spec: TableSpec
    rejects_spec: TableSpec

    @classmethod
    def of(cls, stream: StreamConfig) -> "StreamTables":
        """Derive keys and specs from the stream config."""
        schema = stream.schema
        int_columns = [c.name for c in schema.columns if c.type == "INT64"]
        return cls(
            stream=stream,
            events_key=dg.AssetKey([stream.table]),
            rejects_key=dg.AssetKey([stream.rejects_table]),
            events_spec=TableSpec(
                table=stream.table,
                columns=(*schema.columns, *METADATA_COLUMNS),
                partition_column=schema.time_column,
                clustering=tuple(["log_group", *int_columns][:4]),
                description=stream.description or schema.description,
            ),
            rejects_spec=TableSpec(
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


def ensure_stream_tables(loader: BigQueryLoader, tables: StreamTables) -> None:
    """Create the dataset and both tables of a stream if missing."""
    loader.ensure_dataset()
    loader.ensure_table(tables.events_spec)
    loader.ensure_table(tables.rejects_spec)


def rows_in_scope(loader: BigQueryLoader, tables: StreamTables, scope: LoadScope) -> tuple[int, int]:
    """Rows of the events table and of the rejects table inside ``scope``."""
    return (
        loader.count(tables.events_spec.table, scope.events),
        loader.count(tables.rejects_spec.table, scope.rejects),
    )


def replace_stream_rows(
    loader: BigQueryLoader,
    tables: StreamTables,
    scope: LoadScope,
    rows: pa.Table,
    rejects: pa.Table,
    label: str,
) -> ReplaceResult:
    """Replace the scoped rows of the events and rejects tables together, in one transaction."""
    return loader.replace(
        [
            Replacement(tables.events_spec, rows, scope.events),
            Replacement(tables.rejects_spec, rejects, scope.rejects),
        ],
        label=label,
    )


def range_label(start: datetime, end: datetime) -> str:
    """Short label of a time range, used in staging table names."""
    return f"{start.strftime('%Y%m%d%H%M')}_{end.strftime('%Y%m%d%H%M')}"


def column_schema(columns: Iterable[Column]) -> dg.TableSchema:
    """Dagster column schema of a table."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=not c.required),
            )
            for c in columns
        ]
    )


def table_url(bq: BigQuerySettings, table: str) -> str:
    """Link to the table in the BigQuery console."""
    return (
        "https://console.cloud.google.com/bigquery"
        f"?project={bq.project}&ws=!1m5!1m4!4m3!1s{bq.project}!2s{bq.dataset}!3s{table}"
    )


def table_metadata(bq: BigQuerySettings, spec: TableSpec) -> dict[str, object]:
    """Definition metadata of a table asset: name, column schema, console link."""
    return {
        "dagster/table_name": f"{bq.project}.{bq.dataset}.{spec.table}",
        "dagster/column_schema": column_schema(spec.all_columns),
        "bigquery_url": dg.MetadataValue.url(table_url(bq, spec.table)),
    }


def freshness_policy(stream: StreamConfig) -> dg.FreshnessPolicy:
    """Warn/fail when no window of the stream was loaded for the configured durations."""
    return dg.FreshnessPolicy.time_window(
        fail_window=stream.freshness_fail, warn_window=stream.freshness_warn
    )


def table_asset_specs(
    tables: StreamTables, bq: BigQuerySettings, deps: Sequence[dg.AssetKey]
) -> list[dg.AssetSpec]:
    """Asset specs of the events and rejects tables.

    They are ``skippable`` because a run over a range of windows reports each window with its
    own materialization event rather than one result for the whole range.
    """
    stream = tables.stream
    common: dict[str, object] = dict(
        group_name=stream.name,
        owners=list(stream.owners) or None,
        freshness_policy=freshness_policy(stream),
        tags={STREAM_TAG: stream.name},
        kinds={"bigquery", "pandas"},
        skippable=True,
    )
    return [
        dg.AssetSpec(
            tables.events_key,
            deps=list(deps),
            description=tables.events_spec.description,
            metadata={
                **table_metadata(bq, tables.events_spec),
                "window": str(stream.window),
                "settle_lag": str(stream.settle_lag),
            },
            **common,
        ),
        dg.AssetSpec(
            tables.rejects_key,
            deps=[*deps, tables.events_key],
            description=tables.rejects_spec.description,
            metadata=table_metadata(bq, tables.rejects_spec),
            **common,
        ),
    ]


def materializations(
    context: dg.AssetExecutionContext,
    tables: StreamTables,
    stats: Mapping[datetime, WindowStats],
    run_metadata: Mapping[str, object],
) -> Iterator[dg.MaterializeResult]:
    """Report a load: one result per table for a single window, or per-window events for a range.

    Dagster attaches one ``MaterializeResult`` to every partition of a range run; so a range
    run logs an ``AssetMaterialization`` per window instead, each with that window's figures.
    """
    if not context.has_partition_key_range or len(context.partition_keys) == 1:
        window = next(iter(stats.values())) if stats else None
        figures = window.as_metadata() if window else {}
        yield dg.MaterializeResult(
            asset_key=tables.events_key,
            metadata={**run_metadata, **figures, "dagster/row_count": figures.get("rows_loaded", 0)},
        )
        yield dg.MaterializeResult(
            asset_key=tables.rejects_key,
            metadata={**run_metadata, "dagster/row_count": figures.get("rows_rejected", 0)},
        )
        return
    for start, window in sorted(stats.items()):
        figures = window.as_metadata()
        key = partition_key(start)
        context.log_event(
            dg.AssetMaterialization(
                asset_key=tables.events_key,
                partition=key,
                metadata={**run_metadata, **figures, "dagster/row_count": window.rows_loaded},
            )
        )
        context.log_event(
            dg.AssetMaterialization(
                asset_key=tables.rejects_key,
                partition=key,
                metadata={**run_metadata, "dagster/row_count": window.rows_rejected},
            )
        )

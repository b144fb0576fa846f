"""Assets of one CloudWatch polling stream.

For each stream: an external ``AssetSpec`` per log group (or prefix) → one multi-asset that
materializes the events table and its rejects table together for a range of time windows:
read every group's window with FilterLogEvents, decode and normalize with the pure core, and
replace the window atomically in BigQuery.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa

from cwl_pipeline.adapters.bigquery import Replacement, TableSpec, time_scope
from cwl_pipeline.adapters.cloudwatch import WindowRead
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.normalize import NormalizedBatch, normalize
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS, Column
from cwl_pipeline.core.windows import PARTITION_FMT, to_ms
from cwl_pipeline.defs.resources import AwsResource, BigQueryWarehouse

CLOUDWATCH_POOL = "cloudwatch_filter_log_events"
STREAM_TAG = "cwl/stream"


def window_partitions(stream: StreamConfig) -> dg.TimeWindowPartitionsDefinition:
    """Time-window partitions of ``stream``, including the still-open window (end_offset=1)."""
    minutes = stream.window_minutes
    if minutes < 60:
        cron = f"*/{minutes} * * * *"
    elif minutes < 24 * 60:
        cron = f"0 */{minutes // 60} * * *"
    else:
        cron = "0 0 * * *"
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron,
        start=stream.start,
        fmt=PARTITION_FMT,
        timezone="UTC",
        end_offset=1,
    )


def source_key(name: str) -> dg.AssetKey:
    """Asset key of an external log group (or prefix) source."""
    return dg.AssetKey(["cloudwatch", re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "root"])


@dataclass(frozen=True)
class StreamAssets:
    """Keys and table specs of one stream, shared by its asset, sensor and checks."""

    stream: StreamConfig
    events_key: dg.AssetKey
    rejects_key: dg.AssetKey
    events_spec: TableSpec
    rejects_spec: TableSpec
    partitions_def: dg.TimeWindowPartitionsDefinition

    @classmethod
    def of(cls, stream: StreamConfig) -> "StreamAssets":
        """Derive everything from the stream config."""
        schema = stream.schema
        clustering = tuple(
            name for name in ("log_group", *(c.name for c in schema.columns if c.type == "INT64"))
        )[:4]
        return cls(
            stream=stream,
            events_key=dg.AssetKey([stream.table]),
            rejects_key=dg.AssetKey([stream.rejects_table]),
            events_spec=TableSpec(
                table=stream.table,
                columns=(*schema.columns, *METADATA_COLUMNS),
                partition_column=schema.time_column,
                clustering=clustering,
                description=stream.description or schema.description,
            ),
            rejects_spec=TableSpec(
                table=stream.rejects_table,
                columns=REJECT_COLUMNS,
                partition_column="timestamp",
                clustering=("log_group", "reason"),
                description=f"Events of stream {stream.name} that did not fit its schema, with the reason.",
            ),
            partitions_def=window_partitions(stream),
        )


def _column_schema(columns: tuple[Column, ...]) -> dg.TableSchema:
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


def _table_url(bq: BigQuerySettings, table: str) -> str:
    return (
        "https://console.cloud.google.com/bigquery"
        f"?project={bq.project}&ws=!1m5!1m4!4m3!1s{bq.project}!2s{bq.dataset}!3s{table}"
    )


def build_stream_assets(
    stream: StreamConfig, bq: BigQuerySettings
) -> tuple[list[dg.AssetSpec], dg.AssetsDefinition, StreamAssets]:
    """The source specs and the window-loading multi-asset of ``stream``."""
    keys = StreamAssets.of(stream)
    sources = [
        dg.AssetSpec(
            source_key(name),
            description=f"CloudWatch Logs log group {name}" + (" (prefix)" if is_prefix else ""),
            kinds={"aws", "cloudwatch"},
            group_name="sources",
            metadata={"log_group": name, "match": "prefix" if is_prefix else "name"},
        )
        for name, is_prefix in [
            *((g, False) for g in stream.source.log_groups),
            *((p, True) for p in stream.source.log_group_prefixes),
        ]
    ]
    freshness = dg.FreshnessPolicy.time_window(
        fail_window=stream.window + stream.settle_lag + timedelta(minutes=15),
        warn_window=stream.window + stream.settle_lag + timedelta(minutes=5),
    )
    common = dict(
        deps=[s.key for s in sources],
        group_name=stream.name,
        owners=list(stream.owners) or None,
        freshness_policy=freshness,
        tags={STREAM_TAG: stream.name},
    )
    events_spec = dg.AssetSpec(
        keys.events_key,
        description=keys.events_spec.description,
        kinds={"bigquery", "pandas"},
        metadata={
            "dagster/table_name": f"{bq.project}.{bq.dataset}.{stream.table}",
            "dagster/column_schema": _column_schema(keys.events_spec.columns),
            "bigquery_url": dg.MetadataValue.url(_table_url(bq, stream.table)),
            "window": str(stream.window),
            "settle_lag": str(stream.settle_lag),
        },
        **common,
    )
    rejects_spec = dg.AssetSpec(
        keys.rejects_key,
        description=keys.rejects_spec.description,
        kinds={"bigquery", "pandas"},
        metadata={
            "dagster/table_name": f"{bq.project}.{bq.dataset}.{stream.rejects_table}",
            "dagster/column_schema": _column_schema(keys.rejects_spec.columns),
            "bigquery_url": dg.MetadataValue.url(_table_url(bq, stream.rejects_table)),
        },
        **common,
    )

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=[events_spec, rejects_spec],
        partitions_def=keys.partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=CLOUDWATCH_POOL,
        op_tags={STREAM_TAG: stream.name},
    )
    def load_windows(
        context: dg.AssetExecutionContext, aws: AwsResource, bigquery: BigQueryWarehouse
    ) -> Iterator[dg.MaterializeResult]:
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        result = load_stream_window(context.log, stream, keys, aws, bigquery, start, end)
        yield from result.materializations(keys)

    return sources, load_windows, keys


@dataclass
class WindowLoad:
    """Outcome of loading one range of windows, as Dagster metadata."""

    start: datetime
    end: datetime
    batch: NormalizedBatch
    read: WindowRead
    job_ids: list[str]
    staged_bytes: int

    def materializations(self, keys: StreamAssets) -> Iterator[dg.MaterializeResult]:
        """One result for the events table and one for the rejects table."""
        batch = self.batch
        time_col = keys.stream.schema.time_column
        common = {
            "window_start": self.start.isoformat(),
            "window_end": self.end.isoformat(),
            "log_groups": ", ".join(self.read.groups),
            "events_read": batch.events_read,
            "rows_loaded": batch.rows_loaded,
            "rows_rejected": batch.rows_rejected,
            "filter_log_events_calls": self.read.api_calls,
            "bytes_read": self.read.bytes,
            "bytes_staged": self.staged_bytes,
            "bigquery_job_ids": ", ".join(self.job_ids),
        }
        timestamps = batch.rows[time_col] if batch.rows_loaded else pd.Series(dtype=object)
        events_md = {
            **common,
            "dagster/row_count": batch.rows_loaded,
            "reject_reasons": dict(batch.reject_reasons),
        }
        if len(timestamps):
            events_md["min_event_time"] = timestamps.min().isoformat()
            events_md["max_event_time"] = timestamps.max().isoformat()
            ingestion = batch.rows["ingestion_time"]
            if ingestion.notna().any():
                lag = (ingestion - timestamps).dropna().dt.total_seconds()
                events_md["ingestion_lag_p50_s"] = round(float(lag.median()), 3)
                events_md["ingestion_lag_max_s"] = round(float(lag.max()), 3)
        yield dg.MaterializeResult(asset_key=keys.events_key, metadata=events_md)
        yield dg.MaterializeResult(
            asset_key=keys.rejects_key,
            metadata={**common, "dagster/row_count": batch.rows_rejected},
        )


def load_stream_window(
    log: dg.DagsterLogManager | object,
    stream: StreamConfig,
    keys: StreamAssets,
    aws: AwsResource,
    bigquery: BigQueryWarehouse,
    start: datetime,
    end: datetime,
) -> WindowLoad:
    """Read, decode, normalize and atomically replace ``[start, end)`` of ``stream``."""
    reader = aws.logs_reader()
    groups = reader.resolve_log_groups(stream.source.log_groups, stream.source.log_group_prefixes)
    _refuse_beyond_retention(groups, start)
    read = WindowRead()
    start_ms, end_ms = to_ms(start), to_ms(end)

    def events() -> Iterator:
        for group in groups:
            yield from events_from_api(reader.iter_events(group, start_ms, end_ms, read), log_group=group)

    batch = normalize(events(), stream.schema)
    label = f"{start.strftime('%Y%m%d%H%M')}_{end.strftime('%Y%m%d%H%M')}"
    with bigquery.loader() as loader:
        loader.ensure_dataset()
        loader.ensure_table(keys.events_spec)
        loader.ensure_table(keys.rejects_spec)
        result = loader.replace(
            [
                Replacement(
                    keys.events_spec,
                    _arrow(batch.rows),
                    time_scope(stream.schema.time_column, start, end),
                ),
                Replacement(keys.rejects_spec, _arrow(batch.rejects), time_scope("timestamp", start, end)),
            ],
            label=label,
        )
    getattr(log, "info", print)(
        f"{stream.name} {start.isoformat()}..{end.isoformat()}: {batch.events_read} events read, "
        f"{batch.rows_loaded} loaded, {batch.rows_rejected} rejected"
    )
    return WindowLoad(start, end, batch, read, result.job_ids, result.staged_bytes)


def _refuse_beyond_retention(groups: dict[str, int | None], start: datetime) -> None:
    # Replacing a window CloudWatch no longer holds would delete rows that cannot be re-read.
    now = datetime.now(UTC)
    for group, days in groups.items():
        if days is not None and start < now - timedelta(days=days):
            raise SourceError(
                f"window starting {start.isoformat()} is older than the {days}-day retention of "
                f"log group {group!r}: reloading it would delete rows CloudWatch no longer holds"
            )


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)

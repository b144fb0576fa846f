"""The BigQuery tables every stream writes (events and rejects, and its raw table) as Dagster assets.

Shared by every source type: the asset keys of a stream's tables (derived from their specs,
:class:`cwl_pipeline.load.tables.StreamTables`), asset specs with column schemas and links, and
the materialization events of a load, with true per-window figures even when one run loads
a range of windows.
"""

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

import dagster as dg

from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.core.schema import Column
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.load.service import LoadOutcome
from cwl_pipeline.load.tables import StreamTables

STREAM_TAG = "cwl/stream"
LOAD_KIND_TAG = "cwl/load"
WRITER_POOL_PREFIX = "bigquery_table/"
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
"""Statuses of a run that is waiting or going: a sensor does not request its work again."""


def writer_pool(bq: BigQuerySettings, table: str) -> str:
    """The concurrency pool of the one op that writes ``table`` (limit 1 in the instance).

    BigQuery cancels a transaction that mutates a table while another one does; every op that
    writes a table claims its pool, whatever launched the run (a sensor, a backfill, the UI).
    """
    return f"{WRITER_POOL_PREFIX}{bq.project}.{bq.dataset}.{table}"


_POOLS_LOCK = threading.Lock()
_POOLS_READY: set[tuple[int, str]] = set()  # (instance, pool) this process saw with a limit


def ensure_writer_pools(context: dg.SensorEvaluationContext, keys: Iterable[dg.AssetKey]) -> set[str]:
    """Give the pools of the ops that write ``keys`` the instance's default limit, before the
    sensor asks for runs that claim them. Returns the pools that had no limit yet.

    Dagster otherwise sets a new pool's limit at the first claim, and on PostgreSQL runs that
    claim a new pool at the same moment all try to insert its row: the losers fail with
    ``InFailedSqlTransaction`` (dagster-io/dagster#33552). Done here, once per pool, by the
    daemon, serialized across its sensor threads.
    """
    instance = context.instance
    default = instance.global_op_concurrency_default_limit
    if default is None or context.repository_def is None:
        return set()
    by_key = context.repository_def.assets_defs_by_key
    pools = {pool for key in keys if key in by_key and (pool := by_key[key].node_def.pool)}
    ready = {(id(instance), pool) for pool in pools}
    with _POOLS_LOCK:
        if ready <= _POOLS_READY:
            return set()
        known = {pool.name for pool in instance.event_log_storage.get_pool_limits()}
        missing = pools - known
        for pool in sorted(missing):
            instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
        _POOLS_READY.update(ready)
    return missing


def asset_key(tables: StreamTables, spec: TableSpec) -> dg.AssetKey:
    """The asset key of one of the stream's tables: its name after the stream's key prefix, or
    the key the project renamed it to."""
    return tables.project.asset_key(dg.AssetKey([*tables.stream.asset_key_prefix, spec.table]))


def events_key(tables: StreamTables) -> dg.AssetKey:
    """The events table's asset key: the stream's checks, sensors and load records hang on it."""
    return asset_key(tables, tables.events)


def written_keys(tables: StreamTables) -> list[dg.AssetKey]:
    """Every table asset one load writes: the raw table (if the stream keeps one), the events
    and rejects tables."""
    specs = (tables.raw, tables.events, tables.rejects)
    return [asset_key(tables, spec) for spec in specs if spec is not None]


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
    """Asset specs of the events and rejects tables, and of the raw table if the stream keeps one.

    They are ``skippable`` because a run over a range of windows reports each window with its
    own materialization event rather than one result for the whole range. The raw table sits
    between the sources and the typed tables (lineage raw → typed): the typed tables can be
    re-derived from it.
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
    raw_specs: list[dg.AssetSpec] = []
    typed_deps = list(deps)
    events = events_key(tables)
    if tables.raw is not None:
        raw = asset_key(tables, tables.raw)
        raw_specs.append(
            dg.AssetSpec(
                raw,
                deps=list(deps),
                description=tables.raw.description,
                metadata={**table_metadata(bq, tables.raw), "layer": "raw"},
                **common,
            )
        )
        typed_deps = [*deps, raw]
    return [
        *raw_specs,
        dg.AssetSpec(
            events,
            deps=typed_deps,
            description=tables.events.description,
            metadata={
                **table_metadata(bq, tables.events),
                "window": str(stream.window),
                "settle_lag": str(stream.settle_lag),
                "schema": stream.schema.name,
                "parser": stream.schema.parser.describe(),
            },
            **common,
        ),
        dg.AssetSpec(
            asset_key(tables, tables.rejects),
            deps=[*typed_deps, events],
            description=tables.rejects.description,
            metadata=table_metadata(bq, tables.rejects),
            **common,
        ),
    ]


def materializations(
    context: dg.AssetExecutionContext,
    tables: StreamTables,
    outcome: LoadOutcome,
    kind: str,
    extra: Mapping[str, object] | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Report a load: one result per table for a single partition, or per-partition events.

    Dagster attaches one ``MaterializeResult`` to every partition of a range run; so a range
    run logs an ``AssetMaterialization`` per part (window) instead, each with its own figures.
    """
    run_metadata = {"load_kind": kind, **(extra or {}), **outcome.run_metadata()}
    # The figure counting each written table's rows; the raw table, upstream of the typed
    # tables, is reported first.
    counts = [*(["raw_rows"] if tables.raw is not None else []), "rows_loaded", "rows_rejected"]
    counted = list(zip(written_keys(tables), counts, strict=True))
    if context.has_partition_key_range and len(context.partition_keys) > 1:
        for part, figures in sorted(outcome.parts.items(), key=lambda item: str(item[0])):
            key = partition_key(part) if isinstance(part, datetime) else str(part)
            for table_key, count in counted:
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=table_key,
                        partition=key,
                        metadata={**run_metadata, **figures, "dagster/row_count": _row_count(figures, count)},
                    )
                )
        return
    figures = next(iter(outcome.parts.values()), {})
    for table_key, count in counted:
        yield dg.MaterializeResult(
            asset_key=table_key,
            metadata={**run_metadata, **figures, "dagster/row_count": _row_count(figures, count)},
        )


def _row_count(figures: Mapping[str, object], count: str) -> object:
    """A part's row count for a table: raw rows are its rows and rejects (unreadable objects aside)."""
    if count == "raw_rows":
        loaded, rejected = figures.get("rows_loaded", 0), figures.get("rows_rejected", 0)
        unreadable = figures.get("objects_unreadable", 0)
        if all(isinstance(v, int) for v in (loaded, rejected, unreadable)):
            return loaded + rejected - unreadable  # type: ignore[operator]
        return 0
    return figures.get(count, 0)


def selected(
    context: dg.AssetExecutionContext, results: Iterable[dg.MaterializeResult | dg.AssetCheckResult]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The results of the assets and checks the run selected (the op can be subset)."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            key = dg.AssetCheckKey(result.asset_key, result.check_name)
            if key in context.selected_asset_check_keys:
                yield result
        elif result.asset_key in context.selected_asset_keys:
            yield result

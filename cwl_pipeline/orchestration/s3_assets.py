"""What the assets of the two S3 sources share.

An S3 stream is an external ``AssetSpec`` for its prefix (downstream of the CloudWatch log
group when the config names it) and one multi-asset that materializes the events table and its
rejects table together, from a Firehose stream's delivery windows
(:mod:`cwl_pipeline.firehose.assets`) or one export task folder per run
(:mod:`cwl_pipeline.exports.assets`). Both load an :class:`~cwl_pipeline.load.objects.ObjectSetRead`
and evaluate the same load checks as the polling streams (:func:`load_and_check`).
"""

import re
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg

from cwl_pipeline.config import StreamConfig
from cwl_pipeline.load.objects import ObjectSetRead, combined_scope, s3_source
from cwl_pipeline.load.reads import SharedRead
from cwl_pipeline.load.service import LoadOutcome, WriteMode, load, load_shared, write_mode
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import evaluate_load_checks
from cwl_pipeline.orchestration.resources import BigQueryWarehouse
from cwl_pipeline.orchestration.source_assets import log_group_spec
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG, asset_key, events_key, materializations, selected

Result = dg.MaterializeResult | dg.AssetCheckResult


def s3_source_key(bucket: str, prefix: str) -> dg.AssetKey:
    """Asset key of an external S3 prefix."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{bucket}/{prefix}").strip("_")
    return dg.AssetKey(["s3", name or "root"])


def s3_source_specs(stream: StreamConfig) -> list[dg.AssetSpec]:
    """The S3 prefix, and the log group it is delivered from when the config names it."""
    source = s3_source(stream)
    specs: list[dg.AssetSpec] = []
    if source.log_group:
        specs.append(log_group_spec(source.log_group))
    uri = f"s3://{source.bucket}/{source.prefix}"
    if source.layout == "firehose":
        what = f"Firehose deliveries ({source.record_format}) under {uri}"
    else:
        what = f"CreateExportTask files under {uri}"
    metadata: dict[str, object] = {"bucket": source.bucket, "prefix": source.prefix, "layout": source.layout}
    if source.layout == "firehose":
        metadata["record_format"] = source.record_format
    specs.append(
        dg.AssetSpec(
            s3_source_key(source.bucket, source.prefix),
            description=what + (f", from log group {source.log_group}" if source.log_group else ""),
            kinds={"aws", "s3"},
            group_name="sources",
            deps=[s.key for s in specs],
            metadata=metadata,
        )
    )
    return specs


def load_and_check(
    context: dg.AssetExecutionContext,
    stream: StreamConfig,
    tables: StreamTables,
    bigquery: BigQueryWarehouse,
    reads: Iterable[ObjectSetRead],
) -> Iterator[Result]:
    """Load object sets (one transaction each), report them and evaluate the load checks on
    their scopes taken together."""
    kind = context.run.tags.get(LOAD_KIND_TAG, "manual")
    mode = write_mode(kind, live_available=False)
    done: list[ObjectSetRead] = []

    def remembered() -> Iterator[ObjectSetRead]:
        for read in reads:
            yield read
            done.append(read)

    outcome = load(remembered(), tables, bigquery.loader, context.log, stream.name, mode)
    yield from _report_and_check(context, tables, bigquery, outcome, kind, mode, done)


def load_routes_and_check(
    context: dg.AssetExecutionContext,
    routes: Mapping[str, StreamTables],
    bigquery: BigQueryWarehouse,
    steps: Iterable[SharedRead],
) -> Iterator[Result]:
    """Load the routed steps of a Firehose stream into the tables of the selected routes
    (each object read once per step; one transaction per route and step), then report each
    route and evaluate its load checks."""
    kind = context.run.tags.get(LOAD_KIND_TAG, "manual")
    mode = write_mode(kind, live_available=False)
    chosen = {
        name: tables
        for name, tables in routes.items()
        if {events_key(tables), asset_key(tables, tables.rejects)} & set(context.selected_asset_keys)
    }
    done: dict[str, list[ObjectSetRead]] = {name: [] for name in chosen}

    def remembered() -> Iterator[SharedRead]:
        for step in steps:
            yield step
            for name in chosen:
                read = step.reads[name]
                assert isinstance(read, ObjectSetRead)
                done[name].append(read)

    outcomes = load_shared(
        remembered(),
        chosen,
        bigquery.loader,
        context.log,
        {name: tables.stream.name for name, tables in chosen.items()},
        mode,
    )
    for name, tables in chosen.items():
        yield from selected(
            context, _report_and_check(context, tables, bigquery, outcomes[name], kind, mode, done[name])
        )


def _report_and_check(
    context: dg.AssetExecutionContext,
    tables: StreamTables,
    bigquery: BigQueryWarehouse,
    outcome: LoadOutcome,
    kind: str,
    mode: WriteMode,
    done: list[ObjectSetRead],
) -> Iterator[Result]:
    yield from materializations(context, tables, outcome, kind, {"write_mode": mode.value})
    scope = combined_scope(done)
    with bigquery.loader() as loader:
        yield from evaluate_load_checks(loader, tables, outcome.check_facts(scope or done[0].scope))

"""The loading multi-asset of a Firehose stream.

Time-window partitions like a polling stream, but a window holds the objects *delivered* in it
(:mod:`cwl_pipeline.firehose.windows`); a range of windows loads in one run, in steps of
``windows_per_replace`` windows (one transaction per table and step), chunk by chunk.

A stream with ``routes`` is still one multi-asset (subsettable) over the tables of every route
and its own: each object is listed and read once per run, its events split by log group
(:mod:`cwl_pipeline.firehose.routes`), and each route's tables loaded and checked on their own.

The stream's sensor and key-layout check are wired in :mod:`cwl_pipeline.firehose.stream`.
"""

from collections.abc import Iterator
from datetime import UTC

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.firehose.read import is_routed, read_firehose_range, read_routed_range
from cwl_pipeline.firehose.routes import DEFAULT_ROUTE, destinations
from cwl_pipeline.load.project_keys import DEFAULT_KEYS, ProjectKeys
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import load_check_specs
from cwl_pipeline.orchestration.partitions import window_partitions
from cwl_pipeline.orchestration.s3_assets import Result, load_and_check, load_routes_and_check
from cwl_pipeline.orchestration.tables import STREAM_TAG


def route_tables(stream: StreamConfig, project: ProjectKeys = DEFAULT_KEYS) -> dict[str, StreamTables]:
    """The tables of every route of ``stream`` ('' for its own), in routing order."""
    return {d.name: StreamTables.of(d.stream(stream), project) for d in destinations(stream)}


def firehose_asset(
    stream: StreamConfig, routes: dict[str, StreamTables], specs: list[dg.AssetSpec], pool: str
) -> dg.AssetsDefinition:
    """The multi-asset that loads a Firehose stream's delivery windows (a range in one run)."""
    project = routes[DEFAULT_ROUTE].project

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=specs,
        check_specs=[check for tables in routes.values() for check in load_check_specs(tables)],
        partitions_def=window_partitions(stream),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=stream.backfill_windows_per_run),
        pool=pool,
        op_tags={STREAM_TAG: stream.name},
        can_subset=len(routes) > 1,
        required_resource_keys={project.aws, project.bigquery},
    )
    def load_delivery_windows(context: dg.AssetExecutionContext) -> Iterator[Result]:
        aws, bigquery = project.aws_resource(context), project.bigquery_resource(context)
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        store = S3ObjectStore(aws.client("s3"))
        if is_routed(stream):
            # Each object read once per step, its events split among the routes' tables.
            steps = read_routed_range(stream, store, start, end)
            yield from load_routes_and_check(context, routes, bigquery, steps)
            return
        # Step by step, chunk by chunk: a run's memory does not grow with its range.
        own = routes[DEFAULT_ROUTE]
        reads = read_firehose_range(stream, store, start, end)
        yield from load_and_check(context, own.stream, own, bigquery, reads)

    return load_delivery_windows

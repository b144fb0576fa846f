"""Dagster definitions of one Firehose stream: its S3 prefix (and log group), the loading
multi-asset over its routes' tables (:mod:`cwl_pipeline.firehose.assets`), its sensor and its
key-layout check."""

from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.firehose.assets import firehose_asset, route_tables
from cwl_pipeline.firehose.layout_check import build_layout_check
from cwl_pipeline.firehose.routes import DEFAULT_ROUTE
from cwl_pipeline.firehose.sensor import build_firehose_sensor
from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.orchestration.s3_assets import s3_source_specs
from cwl_pipeline.orchestration.stream_definitions import StreamDefinitions
from cwl_pipeline.orchestration.tables import table_asset_specs, writer_pool


def build_firehose_stream(
    stream: StreamConfig, bigquery: BigQuerySettings, project: ProjectKeys
) -> StreamDefinitions:
    """The source specs, the loading asset, the sensor and the key-layout check of a Firehose stream."""
    routes = route_tables(stream, project)
    sources = s3_source_specs(stream)
    specs = [
        spec for tables in routes.values() for spec in table_asset_specs(tables, bigquery, [sources[-1].key])
    ]
    own = routes[DEFAULT_ROUTE]
    return StreamDefinitions(
        sources,
        [firehose_asset(stream, routes, specs, writer_pool(bigquery, stream.table))],
        checks=[build_layout_check(own)],
        sensors=[build_firehose_sensor(own, routes=list(routes.values()))],
    )

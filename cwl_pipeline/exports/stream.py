"""Dagster definitions of one export stream: its S3 prefix (and log group), the loading
multi-asset with one partition per export task folder (:mod:`cwl_pipeline.exports.assets`),
its sensor and the history backfill job."""

from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.exports.assets import export_asset, export_partitions
from cwl_pipeline.exports.history_job import build_export_history_job
from cwl_pipeline.exports.sensor import build_export_sensor
from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.s3_assets import s3_source_specs
from cwl_pipeline.orchestration.stream_definitions import StreamDefinitions
from cwl_pipeline.orchestration.tables import table_asset_specs, writer_pool


def build_export_stream(
    stream: StreamConfig, bigquery: BigQuerySettings, project: ProjectKeys
) -> StreamDefinitions:
    """The source specs, the loading asset, the sensor and the history job of an export stream."""
    tables = StreamTables.of(stream, project)
    sources = s3_source_specs(stream)
    specs = table_asset_specs(tables, bigquery, [sources[-1].key])
    return StreamDefinitions(
        sources,
        [export_asset(stream, tables, specs, writer_pool(bigquery, stream.table))],
        sensors=[build_export_sensor(tables, export_partitions(stream))],
        jobs=[build_export_history_job(stream, project)],
    )

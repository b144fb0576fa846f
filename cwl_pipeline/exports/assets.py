"""The loading multi-asset of an export stream: one dynamic partition and run per export task
folder (its sensor and history job: :mod:`cwl_pipeline.exports.stream`)."""

from collections.abc import Iterator

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import StreamConfig
from cwl_pipeline.exports.read import read_export_folder
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import load_check_specs
from cwl_pipeline.orchestration.s3_assets import Result, load_and_check
from cwl_pipeline.orchestration.tables import STREAM_TAG


def export_partitions(stream: StreamConfig) -> dg.DynamicPartitionsDefinition:
    """One partition per export task folder of ``stream`` (added by its sensor)."""
    return dg.DynamicPartitionsDefinition(name=f"{stream.name}_export_folders")


def export_asset(
    stream: StreamConfig, tables: StreamTables, specs: list[dg.AssetSpec], pool: str
) -> dg.AssetsDefinition:
    """The multi-asset that loads one export task folder per run."""
    # An export is a one-off backfill: no freshness expectation.
    specs = [s.replace_attributes(freshness_policy=None) for s in specs]

    @dg.multi_asset(
        name=f"load_{stream.name}",
        specs=specs,
        check_specs=load_check_specs(tables),
        partitions_def=export_partitions(stream),
        pool=pool,
        op_tags={STREAM_TAG: stream.name},
        required_resource_keys={tables.project.aws, tables.project.bigquery},
    )
    def load_export_task(context: dg.AssetExecutionContext) -> Iterator[Result]:
        aws = tables.project.aws_resource(context)
        read = read_export_folder(stream, S3ObjectStore(aws.client("s3")), context.partition_key)
        yield from load_and_check(context, stream, tables, tables.project.bigquery_resource(context), [read])

    return load_export_task

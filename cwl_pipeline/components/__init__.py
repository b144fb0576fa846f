"""Dagster Components: a stream per ``defs.yaml``, the shared settings, a whole pipeline file."""

from cwl_pipeline.components.pipeline_file import CloudWatchLogsPipeline
from cwl_pipeline.components.settings import CloudWatchLogsToBigQuerySettings
from cwl_pipeline.components.stream import CloudWatchLogsToBigQuery

__all__ = ["CloudWatchLogsPipeline", "CloudWatchLogsToBigQuery", "CloudWatchLogsToBigQuerySettings"]

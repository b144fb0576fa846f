"""Run requests of windowed loads (one window, or a single-run range of windows)."""

from __future__ import annotations

import dagster as dg

# The run tags Dagster reads a single-run partition range from (no public constant exists).
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from cwl_pipeline.core.windows import WindowRequest, parse_partition_key
from cwl_pipeline.orchestration.owed_plan import Retry
from cwl_pipeline.orchestration.owed_runs import SENSOR_RETRIES_ONLY, retry_tags
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG, STREAM_TAG


def run_request(
    stream: str, request: WindowRequest, extra_tags: dict[str, str] | None = None
) -> dg.RunRequest:
    """A run request for one window, or a single-run range of windows."""
    tags = {STREAM_TAG: stream, LOAD_KIND_TAG: request.kind, **SENSOR_RETRIES_ONLY, **(extra_tags or {})}
    if request.first_key == request.last_key:
        return dg.RunRequest(run_key=request.run_key, partition_key=request.first_key, tags=tags)
    tags[ASSET_PARTITION_RANGE_START_TAG] = request.first_key
    tags[ASSET_PARTITION_RANGE_END_TAG] = request.last_key
    return dg.RunRequest(run_key=request.run_key, tags=tags)


def retry_window_request(stream: str, retry: Retry) -> dg.RunRequest:
    """The run request of a retry of a window load (one window or a range)."""
    failed = retry.load.failed
    request = WindowRequest(
        parse_partition_key(failed.first), parse_partition_key(failed.last), failed.kind, retry.run_key
    )
    return run_request(stream, request, retry_tags(retry))

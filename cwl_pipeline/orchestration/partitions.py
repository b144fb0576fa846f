"""The time-window partitions every windowed stream (polling, Firehose) is cut into."""

from __future__ import annotations

import dagster as dg

from cwl_pipeline.config import StreamConfig
from cwl_pipeline.core.windows import PARTITION_FMT


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

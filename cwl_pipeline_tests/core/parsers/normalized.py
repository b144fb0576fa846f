"""Normalize messages through a schema and read the result back as plain Python values."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import NormalizedBatch, normalize
from cwl_pipeline.core.schema import TableSchema

T0 = 1_795_168_800_000  # 2026-11-20T10:00:00Z


def run(messages: list[str | bytes], schema: TableSchema) -> NormalizedBatch:
    """Normalize ``messages`` (one event each, a millisecond apart)."""
    events = [LogEvent(f"e{i}", T0 + i, m, "/aws/lambda/orders", "s-1") for i, m in enumerate(messages)]
    return normalize(events, schema)


def rows(batch: NormalizedBatch) -> list[dict[str, Any]]:
    """The accepted rows, timestamps as ms since the epoch."""
    table = batch.rows_table
    columns = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names).to_pylist()


def reasons(batch: NormalizedBatch) -> list[str]:
    """The reject reasons, in event order."""
    return batch.rejects_table.column("reason").to_pylist()

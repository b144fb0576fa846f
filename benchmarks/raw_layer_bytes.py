"""Logical bytes per event (BigQuery's data size rules) of a raw row and of a typed row.

Run: ``PYTHONPATH=. python benchmarks/raw_layer_bytes.py`` (pure, no servers). See docs/cost.md.
STRING and JSON count 2 bytes + their UTF-8 size, TIMESTAMP/INT64/FLOAT64 8, BOOL 1, NULL 0.
"""

from __future__ import annotations

import random

import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.raw_events import RawCollector
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, TableSchema
from cwl_pipeline.local.demo_producer import demo_message
from cwl_pipeline.local.lambda_demo import LambdaInvocations

EVENTS = 2000
EVENT_ID = "3" * 56  # CloudWatch's ids are 56 digits
STREAM = "2026/11/30/[$LATEST]" + "a" * 32  # a Lambda-style log stream name


def logical_bytes(table: pa.Table) -> int:
    """BigQuery's logical size of ``table``'s values."""
    total = 0
    for column in table.columns:
        valid = len(column) - column.null_count
        if pa.types.is_string(column.type):
            total += 2 * valid + sum(len(v.encode()) for v in column.to_pylist() if v is not None)
        elif pa.types.is_boolean(column.type):
            total += valid
        else:
            total += 8 * valid
    return total


def measure(name: str, messages: list[str], schema: TableSchema) -> None:
    """Print the message, raw-row and typed-row sizes per event."""
    events = [
        LogEvent(EVENT_ID, 1_764_000_000_000 + i, m, "/cwl-demo/app", STREAM, 1_764_000_000_500 + i)
        for i, m in enumerate(messages)
    ]
    collector = RawCollector()
    batch = normalize(collector.tee(events), schema)
    rows = batch.rows_table
    typed = logical_bytes(rows) + 8 * rows.num_rows  # + loaded_at
    message = sum(len(m.encode()) for m in messages) / len(messages)
    print(
        f"{name}: message {message:.0f} B, raw row {logical_bytes(collector.table()) / len(events):.0f} B, "
        f"typed row {typed / rows.num_rows:.0f} B ({batch.rejects_table.num_rows} rejects)"
    )


def main() -> None:
    """Measure the demo app's and the demo Lambda function's messages."""
    rng = random.Random(7)
    measure(
        "seed (demo app)",
        [demo_message(rng, list(range(1, 50))) for _ in range(EVENTS)],
        BUILTIN_SCHEMAS["seed"],
    )
    invocations = LambdaInvocations(random.Random(3))
    lines: list[str] = []
    while len(lines) < EVENTS:
        lines += invocations()
    measure("lambda (demo function)", lines[:EVENTS], BUILTIN_SCHEMAS["lambda"])


if __name__ == "__main__":
    main()

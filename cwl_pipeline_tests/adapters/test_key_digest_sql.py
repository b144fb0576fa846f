"""BigQuery computes the key digest of a scope as the Python side does (the emulator runs the
same GoogleSQL: MD5, TO_HEX, a hex CAST to INT64, BIT_XOR)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.core.key_digest import KeyDigest
from cwl_pipeline.core.schema import Column


def test_a_scope_digest_in_bigquery_equals_the_digest_of_the_same_rows(bq_client, unique_name) -> None:
    loader = BigQueryLoader(bq_client, f"digest_{unique_name}", location="US")
    loader.ensure_dataset()
    spec = TableSpec(
        table="events",
        columns=(Column("timestamp", "TIMESTAMP", required=True), Column("event_id", "STRING")),
        partition_column="timestamp",
    )
    loader.ensure_table(spec)
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    times = [start + timedelta(seconds=i, microseconds=123_457 * i) for i in range(40)]
    ids: list[str | None] = [f"{37_000 + i:056d}" for i in range(39)] + [None]
    rows = pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")), "event_id": pa.array(ids)})
    bq_client.insert_rows_json(
        loader.table_id("events"),
        [{"timestamp": t.isoformat(), "event_id": i} for t, i in zip(times, ids, strict=True)],
    )
    # One row outside the scope: not counted.
    later = start + timedelta(hours=2)
    bq_client.insert_rows_json(loader.table_id("events"), [{"timestamp": later.isoformat(), "event_id": "x"}])

    stored = loader.key_digest(
        "events", time_scope("timestamp", start, start + timedelta(hours=1)), "event_id", "timestamp"
    )

    expected = KeyDigest()
    expected.add(rows["event_id"].to_pylist(), pc.cast(rows["timestamp"], pa.int64()).to_pylist())
    assert stored == expected
    assert stored.count == 40

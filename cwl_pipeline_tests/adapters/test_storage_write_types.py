"""What the Storage Write appender sends, checked without a server: column types and request sizes.

The expected Arrow types are the rows of the table "Supported Apache Arrow data types" on
https://docs.cloud.google.com/bigquery/docs/supported-data-types, for every column type a
declared schema can hold (:data:`~cwl_pipeline.core.schema.COLUMN_TYPES`) and for the
pipeline's own columns.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from cwl_pipeline.adapters.bigquery_write import (
    MAX_REQUEST_BYTES,
    request_size,
    sized_batches,
    storage_write_table,
)
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.core.normalize import arrow_field, rows_schema
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, COLUMN_TYPES, METADATA_COLUMNS, Column

# BigQuery type -> the documented Arrow type ("Supported Apache Arrow types" and "Supported type
# parameters" columns of the page's table).
DOCUMENTED = {
    "BOOL": pa.bool_(),  # Boolean
    "FLOAT64": pa.float64(),  # FloatingPoint, precision in {SINGLE, DOUBLE}
    "INT64": pa.int64(),  # int, bitWidth in {8, 16, 32, 64}
    "JSON": pa.string(),  # Utf8
    "STRING": pa.string(),  # Utf8
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),  # Timestamp, unit = MICROSECONDS, timezone = UTC
}

T = datetime(2026, 11, 20, 10, 0, 0, 123000, tzinfo=UTC)
VALUES = {"BOOL": True, "FLOAT64": 1.5, "INT64": 7, "JSON": '{"a": 1}', "STRING": "x", "TIMESTAMP": T}


def test_the_documented_table_covers_every_column_type_a_schema_can_hold():
    assert set(COLUMN_TYPES) == set(DOCUMENTED)


@pytest.mark.parametrize("column_type", COLUMN_TYPES)
def test_each_column_type_is_sent_as_its_documented_arrow_type(column_type):
    field = arrow_field(Column("c", column_type))  # the field the pipeline's rows carry
    data = pa.table({"c": pa.array([VALUES[column_type], None], field.type)}, pa.schema([field]))
    sent = storage_write_table(data)
    assert sent.schema.field("c").type == DOCUMENTED[column_type]
    assert sent.column("c").to_pylist() == [VALUES[column_type], None]  # nothing lost in the cast


@pytest.mark.parametrize("name", sorted(BUILTIN_SCHEMAS))
def test_every_column_of_the_builtin_tables_is_sent_as_documented(name):
    schema = BUILTIN_SCHEMAS[name]
    columns = {c.name: c.type for c in (*schema.columns, *METADATA_COLUMNS)}
    sent = storage_write_table(rows_schema(schema).empty_table())
    assert {f.name: f.type for f in sent.schema} == {n: DOCUMENTED[t] for n, t in columns.items()}
    # REQUIRED columns stay non-nullable.
    assert [f.nullable for f in sent.schema] == [f.nullable for f in rows_schema(schema)]


def small_and_large_rows(small: int, large: int, size: int) -> pa.Table:
    """``small`` short messages, then a burst of ``large`` messages of ``size`` bytes each."""
    messages = [f"m{i}" for i in range(small)] + [chr(65 + i % 26) * size for i in range(large)]
    return pa.table({"n": pa.array(range(len(messages)), pa.int64()), "message": messages})


STREAM = "projects/p/datasets/d/tables/t/streams/_default"


def test_a_burst_of_large_rows_is_split_so_no_request_is_over_the_limit():
    data = small_and_large_rows(20_000, 30, 500_000)  # ~15 MB, most of it in the last 30 rows
    schema = data.schema.serialize().to_pybytes()
    batches = sized_batches(data, STREAM, schema)
    sizes = [request_size(STREAM, schema, b) for b in batches]
    assert max(sizes) <= MAX_REQUEST_BYTES and len(batches) >= 2
    assert pa.Table.from_batches(batches).equals(data)  # every row once, in order
    # Sized by the average row, as before, the burst would have gone in one request over the limit.
    per_row = data.nbytes // data.num_rows
    by_average = data.to_batches(max_chunksize=MAX_REQUEST_BYTES // per_row)
    assert max(request_size(STREAM, schema, b) for b in by_average) > MAX_REQUEST_BYTES


def test_a_single_row_over_the_limit_is_refused_with_a_clear_error():
    data = small_and_large_rows(1, 1, 2_000)
    with pytest.raises(DestinationError, match="one row is over the AppendRows request limit"):
        sized_batches(data, STREAM, data.schema.serialize().to_pybytes(), limit=1_000)

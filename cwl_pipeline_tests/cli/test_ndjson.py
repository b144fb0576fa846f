"""The vectorized NDJSON writer writes what orjson writes for each row's dict, byte for byte."""

from __future__ import annotations

import io

import orjson
import pyarrow as pa

from cwl_pipeline.cli.ndjson import write_ndjson
from cwl_pipeline.core.formats.timestamps import BIGQUERY_MAX_MS, BIGQUERY_MIN_MS, format_rfc3339_ms

TS = pa.timestamp("ms", tz="UTC")


def reference(table: pa.Table, json_columns: set[str], skip_nulls: set[str]) -> bytes:
    lines = []
    for row in table.to_pylist():
        record = {}
        for name, value in row.items():
            if value is None and name in skip_nulls:
                continue
            if value is not None and pa.types.is_timestamp(table.schema.field(name).type):
                value = format_rfc3339_ms(int(value.timestamp() * 1000))
            elif value is not None and name in json_columns:
                value = orjson.Fragment(value)
            record[name] = value
        lines.append(orjson.dumps(record) + b"\n")
    return b"".join(lines)


def test_matches_orjson_row_by_row():
    ms = [BIGQUERY_MIN_MS, BIGQUERY_MAX_MS, 0, -1, 1_795_168_800_123, None]
    table = pa.table(
        {
            "source_object": pa.array(
                [None, "k", None, "a\x01", None, "x"]
            ),  # first column left out when NULL
            "when": pa.array(ms, pa.int64()).cast(TS),
            "text": pa.array(['a"b', "back\\slash", "tab\tnew\nline", "ünï €", "", None]),
            "n": pa.array([0, -(2**63), 2**63 - 1, None, 7, 1], pa.int64()),
            "f": pa.array([1.0, 1e20, -0.5, 1e-7, None, 3.14159]),
            "b": pa.array([True, False, None, True, False, True]),
            "doc": pa.array(['{"a":[1,2]}', None, '"x"', "null", "1.5", "{}"]),
        }
    )
    out = io.BytesIO()
    write_ndjson(table, out, json_columns={"doc"}, skip_nulls={"source_object", "b"})
    assert out.getvalue() == reference(table, {"doc"}, {"source_object", "b"})


def test_every_column_left_out_gives_an_empty_object():
    table = pa.table({"a": pa.array([None, "x"], pa.string())})
    out = io.BytesIO()
    write_ndjson(table, out, json_columns=set(), skip_nulls={"a"})
    assert out.getvalue() == b'{}\n{"a":"x"}\n'

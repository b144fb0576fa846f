"""The shape of a normalized batch: columns, dtypes, Arrow schema, counts, chunking."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cwl_pipeline.core import normalize as normalize_module
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import decode_bytes, iter_decode
from cwl_pipeline.core.normalize import REJECTS_SCHEMA, normalize, rows_schema, to_arrow
from cwl_pipeline.core.schema import METADATA_COLUMNS, REJECT_COLUMNS, SEED_SCHEMA

T = 1_795_168_800_123

EVENTS = [
    LogEvent("1", T, '{"session_id":1,"action":"click","params":{"a":1}}', "/g", "s1", T + 9, "k1"),
    LogEvent("2", T + 1, "not json", "/g", "s1", None, "k1"),
    LogEvent("3", T + 2, '{"session_id":"x"}', "/g", "s2", None, None),
    LogEvent("4", T + 3, '{"action":7}', "/h", "s2", None, None),
    LogEvent("5", T + 4, b"\xff", "/h", "s2", None, None),
    LogEvent("6", T + 5, "[]", "/h", "s2", None, None),
]


def test_rows_columns_and_dtypes():
    batch = normalize(EVENTS, SEED_SCHEMA)
    expected_columns = [*SEED_SCHEMA.column_names, *(c.name for c in METADATA_COLUMNS)]
    assert list(batch.rows.columns) == expected_columns
    assert dict(batch.rows.dtypes) == {
        "timestamp": pd.ArrowDtype(pa.timestamp("ms", tz="UTC")),
        "session_id": pd.ArrowDtype(pa.int64()),
        "action": pd.ArrowDtype(pa.string()),
        "params": pd.ArrowDtype(pa.string()),
        "event_id": pd.ArrowDtype(pa.string()),
        "log_group": pd.ArrowDtype(pa.string()),
        "log_stream": pd.ArrowDtype(pa.string()),
        "ingestion_time": pd.ArrowDtype(pa.timestamp("ms", tz="UTC")),
        "source_object": pd.ArrowDtype(pa.string()),
    }
    assert batch.rows["event_id"].tolist() == ["1", "4"]
    assert batch.rows["timestamp"].iloc[0] == pd.Timestamp("2026-11-20T10:00:00.123Z")
    assert batch.rows_table.column("params").to_pylist() == ['{"a":1}', None]
    assert batch.rows["ingestion_time"].iloc[0] == pd.Timestamp(T + 9, unit="ms", tz="UTC")


def test_rejects_columns_and_counts():
    batch = normalize(EVENTS, SEED_SCHEMA)
    assert list(batch.rejects.columns) == [c.name for c in REJECT_COLUMNS]
    assert batch.rejects_table.schema.equals(REJECTS_SCHEMA)
    assert (batch.events_read, batch.rows_loaded, batch.rows_rejected) == (6, 2, 4)
    assert batch.reject_reasons == {
        "invalid_json": 1,
        "invalid_type:session_id": 1,
        "invalid_utf8": 1,
        "not_an_object": 1,
    }
    rejects = batch.rejects_table.to_pylist()
    assert [r["event_id"] for r in rejects] == ["2", "3", "5", "6"]
    assert rejects[0]["source_object"] == "k1"
    assert rejects[2]["raw_message"] == "\\xff"
    assert all(r["detail"] for r in rejects)


def test_reasons_sorted_by_count():
    events = [LogEvent(str(i), T, m, "/g", "s") for i, m in enumerate(["x", "[]", "[]", "y", "z"])]
    assert list(normalize(events, SEED_SCHEMA).reject_reasons.items()) == [
        ("invalid_json", 3),
        ("not_an_object", 2),
    ]


def test_arrow_schema_nullability_and_json_metadata():
    table = to_arrow(normalize(EVENTS, SEED_SCHEMA))
    assert table.schema.equals(rows_schema(SEED_SCHEMA))
    fields = {f.name: f for f in table.schema}
    assert not fields["timestamp"].nullable and not fields["session_id"].nullable
    assert not fields["event_id"].nullable and fields["action"].nullable
    assert fields["params"].metadata == {b"bigquery_type": b"JSON"}


def test_dataframe_converts_back_to_arrow_and_parquet(tmp_path):
    batch = normalize(EVENTS, SEED_SCHEMA)
    again = pa.Table.from_pandas(batch.rows, preserve_index=False)
    assert again.column_names == batch.rows_table.column_names
    assert again.to_pylist() == batch.rows_table.to_pylist()
    path = tmp_path / "rows.parquet"
    pq.write_table(batch.rows_table, path)
    assert pq.read_table(path).to_pylist() == batch.rows_table.to_pylist()


def test_empty_batch_has_typed_columns():
    batch = normalize([], SEED_SCHEMA)
    assert (batch.events_read, batch.rows_loaded, batch.rows_rejected) == (0, 0, 0)
    assert batch.reject_reasons == {}
    assert batch.rows["timestamp"].dtype == pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))
    assert list(batch.rejects.columns) == [c.name for c in REJECT_COLUMNS]


def test_out_of_range_reject_timestamp_is_clamped():
    batch = normalize([LogEvent("e", -(10**16), "{}", "/g", "s", 10**16)], SEED_SCHEMA)
    (reject,) = batch.rejects_table.cast(
        pa.schema(
            [pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f for f in REJECTS_SCHEMA]
        )
    ).to_pylist()
    assert reject["reason"] == "out_of_range:timestamp"
    assert reject["timestamp"] == -62_135_596_800_000
    assert reject["ingestion_time"] is None


def test_unencodable_metadata_text_is_escaped():
    batch = normalize(
        [LogEvent("e", T, "{}", "/g\ud800", "s"), LogEvent("f", T, "x\udfff", "/g", "s")], SEED_SCHEMA
    )
    assert batch.rows["log_group"].tolist() == ["/g\\ud800"]
    assert batch.rejects["raw_message"].tolist() == ["x\\udfff"]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_chunked_rows_match(monkeypatch, chunk_rows):
    events = [
        LogEvent(
            str(i),
            T + i,
            f'{{"session_id":{i}}}' if i % 4 else "bad",
            f"/g{i // 5}",
            f"s{i // 3}",
            None,
            f"k{i // 7}",
        )
        for i in range(40)
    ]
    monkeypatch.setattr(normalize_module, "_CHUNK_ROWS", chunk_rows)
    batch = normalize(iter(events), SEED_SCHEMA)
    accepted = [e for e in events if e.message != "bad"]
    assert batch.rows["event_id"].tolist() == [e.event_id for e in accepted]
    assert batch.rows["log_group"].tolist() == [e.log_group for e in accepted]
    assert batch.rows["log_stream"].tolist() == [e.log_stream for e in accepted]
    assert batch.rows["source_object"].tolist() == [e.source_object for e in accepted]
    assert batch.rows["session_id"].tolist() == [int(e.event_id) for e in accepted]
    assert batch.rows_rejected == 10


def test_streaming_from_decoder_equals_list(aws):
    data = aws.firehose_object(
        [aws.envelope(aws.log_events(['{"session_id":1}', "x"], start=2 * i)) for i in range(5)]
    )
    streamed = normalize(iter_decode(data), SEED_SCHEMA)
    listed = normalize(decode_bytes(data), SEED_SCHEMA)
    assert streamed.rows_table.equals(listed.rows_table)
    assert streamed.rejects_table.equals(listed.rejects_table)

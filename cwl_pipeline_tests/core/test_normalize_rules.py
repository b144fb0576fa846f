"""Normalization rules, one case per row: the value a column gets, or the reject reason."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.timestamps import BIGQUERY_MAX_MS, BIGQUERY_MIN_MS
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import SEED_SCHEMA, SchemaError, TableSchema

T = 1_795_168_800_123
MISSING = object()

GENERIC = TableSchema.from_dict(
    "generic",
    {
        "columns": [
            {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
            {"name": "f", "type": "FLOAT64", "path": "m.f"},
            {"name": "b", "type": "BOOL"},
            {"name": "when", "type": "TIMESTAMP"},
            {"name": "j", "type": "JSON", "path": "deep.x.y"},
            {"name": "req", "type": "STRING", "required": True},
            {"name": "s_def", "type": "STRING", "default": "none"},
            {"name": "i_def", "type": "INT64", "default": 5},
            {"name": "ingested", "type": "TIMESTAMP", "source": "ingestion_time"},
        ]
    },
)


def outcome(message: str | bytes, schema: TableSchema = SEED_SCHEMA, **event: Any) -> Any:
    """The accepted row as a dict (timestamps as ms since the epoch), or the reject reason."""
    fields = {"timestamp_ms": T, "ingestion_time_ms": None, **event}
    batch = normalize(
        [LogEvent("e1", fields["timestamp_ms"], message, "/g", "s", fields["ingestion_time_ms"])],
        schema,
    )
    assert batch.events_read == 1
    if batch.rows_loaded:
        table = batch.rows_table
        as_ms = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
        return pa.table(as_ms, names=table.column_names).to_pylist()[0]
    return batch.rejects_table.column("reason")[0].as_py()


def seed_value(column: str, value: Any) -> Any:
    message = {} if value is MISSING else {column: value}
    result = outcome(json.dumps(message))
    return result[column] if isinstance(result, dict) else result


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (-5, -5),
        ("42", 42),
        ("-7", -7),
        ("007", 7),
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (str(-(2**63)), -(2**63)),
        (MISSING, 0),
        (None, 0),
        (2**63, "out_of_range:session_id"),
        (2**64 - 1, "out_of_range:session_id"),
        (10**30, "out_of_range:session_id"),  # orjson reads it as a float
        ("9223372036854775808", "out_of_range:session_id"),
        ("1" * 5000, "out_of_range:session_id"),
        (1.5, "invalid_type:session_id"),
        (1.0, "invalid_type:session_id"),
        (True, "invalid_type:session_id"),
        (False, "invalid_type:session_id"),
        ("abc", "invalid_type:session_id"),
        ("1.0", "invalid_type:session_id"),
        ("+5", "invalid_type:session_id"),
        (" 5", "invalid_type:session_id"),
        ("", "invalid_type:session_id"),
        ("١٢", "invalid_type:session_id"),  # non-ASCII digits
        ([1], "invalid_type:session_id"),
        ({"v": 1}, "invalid_type:session_id"),
    ],
)
def test_session_id(value, expected):
    assert seed_value("session_id", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("click", "click"),
        ("", ""),
        ("ünïcödé ✓", "ünïcödé ✓"),
        (7, "7"),
        (-7, "-7"),
        (1.5, "1.5"),
        (True, "true"),
        (False, "false"),
        (MISSING, None),
        (None, None),
        ({"a": 1}, "invalid_type:action"),
        ([1, 2], "invalid_type:action"),
    ],
)
def test_action(value, expected):
    assert seed_value("action", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"page": "/", "n": [1, 2.5, None]}, '{"page":"/","n":[1,2.5,null]}'),
        ("x", '"x"'),
        (1, "1"),
        (1.5, "1.5"),
        (True, "true"),
        ([], "[]"),
        ({}, "{}"),
        ({"é": "✓"}, '{"é":"✓"}'),
        (MISSING, None),
        (None, None),  # JSON null becomes SQL NULL
    ],
)
def test_params(value, expected):
    assert seed_value("params", value) == expected


def test_params_nested_beyond_json_depth_is_rejected():
    message = '{"params":' + "[" * 300 + "]" * 300 + "}"
    assert outcome(message) == "too_deep:params"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("plain text", "invalid_json"),
        ("", "invalid_json"),
        ('{"session_id": 1', "invalid_json"),
        ('{"session_id": 1} trailing', "invalid_json"),
        ('{"a": NaN}', "invalid_json"),
        ('{"a": 1e400}', "invalid_json"),
        ('{"a": "\\ud800"}', "invalid_json"),  # escaped lone surrogate
        ("[1, 2]", "not_an_object"),
        ("5", "not_an_object"),
        ('"text"', "not_an_object"),
        ("null", "not_an_object"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"action": "caf\xe9"}', "invalid_utf8"),
        ("{}\ud800", "invalid_utf8"),  # unpaired surrogate in the text itself
    ],
)
def test_messages_that_are_not_objects(message, expected):
    assert outcome(message) == expected


def test_valid_utf8_bytes_message_is_accepted():
    assert outcome(b'{"session_id": 3}')["session_id"] == 3


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (BIGQUERY_MIN_MS, BIGQUERY_MIN_MS),
        (BIGQUERY_MAX_MS, BIGQUERY_MAX_MS),
        (0, 0),
        (BIGQUERY_MIN_MS - 1, "out_of_range:timestamp"),
        (BIGQUERY_MAX_MS + 1, "out_of_range:timestamp"),
    ],
)
def test_event_timestamp_range(timestamp, expected):
    result = outcome("{}", timestamp_ms=timestamp)
    assert (result["timestamp"] if isinstance(result, dict) else result) == expected


def test_ingestion_time_out_of_range():
    assert outcome("{}", ingestion_time_ms=BIGQUERY_MAX_MS + 1) == "out_of_range:ingestion_time"


def generic_value(column: str, message: dict[str, Any], **event: Any) -> Any:
    result = outcome(json.dumps({"req": "r", **message}), GENERIC, **event)
    return result[column] if isinstance(result, dict) else result


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (1.5, 1.5),
        (-0.0, -0.0),
        ("2.5", 2.5),
        ("-1e3", -1000.0),
        (".5", 0.5),
        (2**64, float(2**64)),
        ("1e400", "out_of_range:f"),
        ("nan", "invalid_type:f"),
        ("inf", "invalid_type:f"),
        ("1_000", "invalid_type:f"),
        (True, "invalid_type:f"),
        ("abc", "invalid_type:f"),
        ([1.0], "invalid_type:f"),
        (None, None),
    ],
)
def test_float64(value, expected):
    assert generic_value("f", {"m": {"f": value}}) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        (1, "invalid_type:b"),
        (0, "invalid_type:b"),
        ("True", "invalid_type:b"),
        ("yes", "invalid_type:b"),
        (None, None),
    ],
)
def test_bool(value, expected):
    assert generic_value("b", {"b": value}) == expected


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        (1_795_168_800_123, 1_795_168_800_123),
        (1_795_168_800_123.9, 1_795_168_800_123),
        (-1.5, -2),
        ("2026-11-20T10:00:00.123Z", 1_795_168_800_123),
        ("2026-11-20T11:00:00.123+01:00", 1_795_168_800_123),
        ("2026-11-20", "invalid_type:when"),
        ("yesterday", "invalid_type:when"),
        (True, "invalid_type:when"),
        ({"t": 1}, "invalid_type:when"),
        (10**17, "out_of_range:when"),
        (-(10**17), "out_of_range:when"),
        (None, None),
    ],
)
def test_timestamp_from_message(value, expected_ms):
    assert generic_value("when", {"when": value}) == expected_ms


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"deep": {"x": {"y": [1, {"z": None}]}}}, '[1,{"z":null}]'),
        ({"deep": {"x": {"y": "s"}}}, '"s"'),
        ({"deep": {"x": 5}}, None),  # a path through a non-object is missing
        ({"deep": "text"}, None),
        ({"deep": [{"x": {"y": 1}}]}, None),
        ({}, None),
    ],
)
def test_json_nested_path(message, expected):
    assert generic_value("j", message) == expected


def test_required_without_default_rejects_missing_and_null():
    assert outcome(json.dumps({}), GENERIC) == "missing_required:req"
    assert outcome(json.dumps({"req": None}), GENERIC) == "missing_required:req"
    assert outcome(json.dumps({"req": 5}), GENERIC)["req"] == "5"


def test_defaults_fill_missing_and_null():
    row = outcome(json.dumps({"req": "r", "s_def": None}), GENERIC)
    assert (row["s_def"], row["i_def"]) == ("none", 5)


def test_ingestion_time_column():
    row = outcome(json.dumps({"req": "r"}), GENERIC, ingestion_time_ms=T + 5)
    assert (row["ingested"], row["ingestion_time"]) == (T + 5, T + 5)
    assert outcome(json.dumps({"req": "r"}), GENERIC)["ingested"] is None


def test_invalid_default_is_a_schema_error():
    schema = TableSchema.from_dict(
        "bad",
        {
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp"},
                {"name": "n", "type": "INT64", "default": "not a number"},
            ]
        },
    )
    with pytest.raises(SchemaError, match="default"):
        normalize([], schema)


def test_reject_detail_is_human_readable():
    batch = normalize([LogEvent("e", T, '{"session_id": 1.5}', "/g", "s")], SEED_SCHEMA)
    (reject,) = batch.rejects_table.to_pylist()
    assert reject["reason"] == "invalid_type:session_id"
    assert "session_id" in reject["detail"] and "1.5" in reject["detail"]

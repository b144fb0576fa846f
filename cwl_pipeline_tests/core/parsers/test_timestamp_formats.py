"""Column timestamp formats, and NULL-plus-warning for lenient columns."""

from __future__ import annotations

import json

import pytest

from cwl_pipeline.core.schema import SchemaError, TableSchema
from cwl_pipeline.core.timestamp_formats import TimestampFormatError, check_format, timestamp_reader
from cwl_pipeline_tests.core.parsers.normalized import reasons, rows, run

MS = 1_620_042_432_494  # 2021-05-03T11:47:12.494Z


@pytest.mark.parametrize(
    ("formats", "value", "expected"),
    [
        (["%Y-%m-%d %H:%M:%S,%f%z"], "2021-05-03 11:47:12,494+0000", MS),
        (["%Y-%m-%d %H:%M:%S,%f%z"], "2021-05-03 13:47:12,494+02:00", MS),
        (["%Y-%m-%d %H:%M:%S.%f"], "2021-05-03 11:47:12.494", MS),  # no zone: UTC
        (["%d/%b/%Y:%H:%M:%S %z"], "03/May/2021:11:47:12 +0000", MS - 494),
        (["epoch_s"], 1_620_042_432.494, MS),
        (["epoch_s"], "1620042432", MS - 494),
        (["epoch_ms"], "1620042432494", MS),
        (["epoch_us"], 1_620_042_432_494_999, MS),
        (["epoch_ns"], "1620042432494000001", MS),
        (["rfc3339"], "2021-05-03T11:47:12.494Z", MS),
        (["rfc3339", "epoch_ms"], MS, MS),  # the first that reads it wins
        (["rfc3339"], MS, None),
        (["epoch_s"], "1e9", None),
        (["epoch_s"], "9" * 500, None),  # hostile digit strings are refused, not converted
        (["epoch_ms"], True, None),
        (["%Y-%m-%d"], "2021-05-03T00:00", None),
    ],
)
def test_reader(formats, value, expected):
    assert timestamp_reader([check_format(f) for f in formats])(value) == expected


@pytest.mark.parametrize("fmt", ["iso", "", "%Q-%Y", 5])
def test_unusable_formats_are_refused(fmt):
    with pytest.raises(TimestampFormatError):
        check_format(fmt)


def schema(required: bool) -> TableSchema:
    return TableSchema.from_dict(
        "powertools",
        {
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp"},
                {"name": "level", "type": "STRING"},
                {
                    "name": "logged_at",
                    "type": "TIMESTAMP",
                    "path": "timestamp",
                    "format": "%Y-%m-%d %H:%M:%S,%f%z",
                    "required": required,
                },
                {"name": "count", "type": "INT64"},
            ]
        },
    )


def test_nullable_formatted_column_is_null_plus_a_warning():
    messages = [
        json.dumps({"level": "INFO", "timestamp": "2021-05-03 11:47:12,494+0000"}),
        json.dumps({"level": "INFO", "timestamp": "yesterday"}),
        json.dumps({"level": "INFO", "timestamp": "0000-01-01 00:00:00,0+0000"}),  # not a year strptime reads
        json.dumps({"level": "INFO"}),  # missing: NULL, not a warning
        # A warning of an event rejected for another reason is not counted.
        json.dumps({"level": "INFO", "timestamp": "bad", "count": "many"}),
    ]
    batch = run(messages, schema(required=False))
    assert [r["logged_at"] for r in rows(batch)] == [MS, None, None, None]
    assert batch.parse_warnings == {"logged_at": 2}
    assert reasons(batch) == ["invalid_type:count"]


def test_required_formatted_column_still_rejects_with_the_expected_format():
    batch = run([json.dumps({"timestamp": "2021/05/03"})], schema(required=True))
    assert reasons(batch) == ["invalid_type:logged_at"]
    assert "does not match %Y-%m-%d %H:%M:%S,%f%z" in batch.rejects_table.column("detail")[0].as_py()
    assert batch.parse_warnings == {}


def test_a_column_without_format_keeps_the_strict_rule():
    strict = TableSchema.from_dict(
        "strict",
        {
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp"},
                {"name": "when", "type": "TIMESTAMP"},
            ]
        },
    )
    assert reasons(run([json.dumps({"when": "2021-05-03 11:47:12,494+0000"})], strict)) == [
        "invalid_type:when"
    ]


@pytest.mark.parametrize(
    ("column", "error"),
    [
        ({"name": "n", "type": "INT64", "format": "epoch_s"}, "only applies to TIMESTAMP"),
        ({"name": "t", "type": "TIMESTAMP", "source": "ingestion_time", "format": "epoch_s"}, "only applies"),
        ({"name": "t", "type": "TIMESTAMP", "format": []}, "non-empty list"),
        ({"name": "t", "type": "TIMESTAMP", "format": "dd/mm/yyyy"}, "neither one of rfc3339"),
    ],
)
def test_format_errors_name_the_column(column, error):
    with pytest.raises(SchemaError, match=error):
        TableSchema.from_dict(
            "s", {"columns": [{"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp"}, column]}
        )

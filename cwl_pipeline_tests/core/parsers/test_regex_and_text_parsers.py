"""The regex parser (access logs, API Gateway execution logs) and the text parser."""

from __future__ import annotations

import pytest

from cwl_pipeline.core.parsers import ParserError, parser_from_config
from cwl_pipeline.core.schema import TEXT_SCHEMA, TableSchema
from cwl_pipeline_tests.core.parsers.normalized import reasons, rows, run

ACCESS = (
    r'^(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
    r"(?P<status>\d{3}) (?P<bytes>\S+)$"
)
ACCESS_SCHEMA = TableSchema.from_dict(
    "access",
    {
        "parser": {"type": "regex", "pattern": ACCESS, "nulls": ["-"]},
        "columns": [
            {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp"},
            {"name": "ip", "type": "STRING", "required": True},
            {"name": "user", "type": "STRING"},
            {"name": "requested_at", "type": "TIMESTAMP", "path": "time", "format": "%d/%b/%Y:%H:%M:%S %z"},
            {"name": "method", "type": "STRING"},
            {"name": "path", "type": "STRING"},
            {"name": "status", "type": "INT64", "required": True},
            {"name": "bytes", "type": "INT64"},
        ],
    },
)


def test_access_log_groups_become_typed_columns_and_dash_is_null():
    lines = [
        '198.51.100.23 - - [20/Nov/2026:10:00:01 +0000] "GET /health HTTP/1.1" 200 -',
        '203.0.113.9 - alice [20/Nov/2026:11:00:02 +0100] "POST /orders HTTP/2.0" 201 512',
        "Traceback (most recent call last):",  # another writer in the same group
        '198.51.100.23 - - [20/Nov/2026:10:00:03 +0000] "GET / HTTP/1.1" 200 12k',
    ]
    batch = run(lines, ACCESS_SCHEMA)
    assert [(r["ip"], r["user"], r["method"], r["status"], r["bytes"]) for r in rows(batch)] == [
        ("198.51.100.23", None, "GET", 200, None),
        ("203.0.113.9", "alice", "POST", 201, 512),
    ]
    assert rows(batch)[1]["requested_at"] == rows(batch)[0]["requested_at"] + 1000
    assert reasons(batch) == ["no_match", "invalid_type:bytes"]


def test_api_gateway_execution_log_lines():
    schema = TableSchema.from_dict(
        "apigw",
        {
            "parser": {
                "type": "regex",
                "pattern": r"^\((?P<request_id>[0-9a-f-]+)\) (?P<text>(?s:.*))$",
            },
            "columns": [
                {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp"},
                {"name": "request_id", "type": "STRING", "required": True},
                {"name": "text", "type": "STRING"},
            ],
        },
    )
    lines = [
        "(7c1e9a52-3b4d-4e6f-8a9b-0c1d2e3f4a5b) Extended Request Id: Xy12AbCdEfGhIjK=",
        "(7c1e9a52-3b4d-4e6f-8a9b-0c1d2e3f4a5b) Method request body before transformations: {\n"
        '  "order": 4711\n}',
        "(7c1e9a52-3b4d-4e6f-8a9b-0c1d2e3f4a5b) Method completed with status: 200",
    ]
    batch = run(lines, schema)
    assert batch.rows_rejected == 0
    assert rows(batch)[1]["text"].endswith('"order": 4711\n}')


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"type": "regex"}, "needs a non-empty 'pattern'"),
        ({"type": "regex", "pattern": "(unclosed"}, "not a valid regular expression"),
        ({"type": "regex", "pattern": r"\d+"}, "has no named group"),
        ({"type": "regex", "pattern": "(?P<a>.)", "nulls": "-"}, "list of strings"),
        ({"type": "grok"}, "is not one of json, lambda, vpc_flow, regex, text"),
        (["lambda"], "must be a parser name"),
        ({"type": "text", "pattern": "x"}, "unknown key"),
    ],
)
def test_invalid_parsers_are_named(spec, error):
    with pytest.raises(ParserError, match=error):
        parser_from_config(spec, "parser")


def test_text_never_rejects_what_it_can_store():
    messages = ["", "plain", "tab\tseparated\n", "multi\nline\ntrace", '{"json": true}', b"\xffbytes"]
    batch = run(messages, TEXT_SCHEMA)
    assert batch.rows_rejected == 0
    assert [r["message"] for r in rows(batch)] == [
        "",
        "plain",
        "tab\tseparated\n",
        "multi\nline\ntrace",
        '{"json": true}',
        "\\xffbytes",
    ]

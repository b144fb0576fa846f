"""``cwl-pipeline decode --parser``: check a file against a parser before a stream points at it."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

from cwl_pipeline.cli.main import main

T0 = 1_795_168_800_123  # 2026-11-20T10:00:00.123Z
RID = "0b8c2d4e-6f70-4a1b-9c2d-3e4f5a6b7c8d"
LINES = [
    f"START RequestId: {RID} Version: $LATEST\n",
    f"[INFO]\t2026-11-20T10:00:00.200Z\t{RID}\tcharging card\n",
    '{"level":"INFO","message":"charged","timestamp":"2026-11-20 10:00:00,300+0000","service":"pay"}',
    '{"level":"INFO","message":"late","timestamp":"20.11.2026"}',
    f"END RequestId: {RID}\n",
    f"REPORT RequestId: {RID}\tDuration: 95.12 ms\tBilled Duration: 96 ms\tMemory Size: 512 MB\t"
    "Max Memory Used: 88 MB\t\n",
]


def lambda_kinesis_event(tmp_path: Path) -> Path:
    """A Kinesis consumer event carrying one gzip subscription envelope of a Lambda group."""
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/pay",
        "logStream": "2026/11/20/[$LATEST]4d5e6f",
        "subscriptionFilters": ["to-kinesis"],
        "logEvents": [{"id": str(i + 1), "timestamp": T0 + i, "message": m} for i, m in enumerate(LINES)],
    }
    data = base64.b64encode(gzip.compress(json.dumps(envelope).encode())).decode()
    path = tmp_path / "kinesis-event.json"
    path.write_text(json.dumps({"Records": [{"kinesis": {"data": data}, "eventSource": "aws:kinesis"}]}))
    return path


def test_lambda_parser_types_the_lines_and_counts_parse_warnings(tmp_path, capsys):
    path = lambda_kinesis_event(tmp_path)
    assert main(["decode", str(path), "--parser", "lambda"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["record_type"] for r in rows] == ["start", "log", "log", "log", "end", "report"]
    assert (rows[5]["duration_ms"], rows[5]["billed_duration_ms"], rows[5]["memory_size_mb"]) == (
        95.12,
        96,
        512,
    )
    assert rows[2]["logged_at"] == "2026-11-20T10:00:00.300Z" and rows[2]["data"]["service"] == "pay"
    assert rows[3]["logged_at"] is None
    assert err.strip() == (
        "decoded 1 file: 6 events, 6 rows, 0 rejects; parse warnings (values stored as NULL): logged_at=1"
    )


def test_the_default_json_parser_rejects_the_same_file_mostly(tmp_path, capsys):
    assert main(["decode", str(lambda_kinesis_event(tmp_path))]) == 0
    assert capsys.readouterr().err.strip() == ("decoded 1 file: 6 events, 2 rows, 4 rejects (invalid_json=4)")


def test_a_schema_file_carrying_a_regex_parser(tmp_path, capsys):
    schema = tmp_path / "platform.yaml"
    schema.write_text(
        "parser:\n"
        "  type: regex\n"
        "  pattern: '^(?P<kind>START|END|REPORT) RequestId: (?P<request_id>\\S+)'\n"
        "columns:\n"
        "  - {name: timestamp, type: TIMESTAMP, source: event_timestamp}\n"
        "  - {name: kind, type: STRING, required: true}\n"
        "  - {name: request_id, type: STRING}\n"
    )
    rejects = tmp_path / "rejects.ndjson"
    path = lambda_kinesis_event(tmp_path)
    assert main(["decode", str(path), "--schema", str(schema), "--rejects", str(rejects)]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["START", "END", "REPORT"]
    assert [json.loads(line)["reason"] for line in rejects.read_text().splitlines()] == ["no_match"] * 3
    # --parser overrides the schema file's parser; a mapping is given as YAML.
    assert (
        main(
            [
                "decode",
                str(path),
                "--schema",
                str(schema),
                "--parser",
                "{type: regex, pattern: '(?P<kind>END)'}",
            ]
        )
        == 0
    )
    assert "1 row, 5 rejects (no_match=5)" in capsys.readouterr().err


def test_parser_mistakes_are_one_error_line(tmp_path, capsys):
    path = lambda_kinesis_event(tmp_path)
    assert main(["decode", str(path), "--parser", "grok"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cwl-pipeline decode: error: --parser.type: 'grok' is not one of json, lambda, vpc_flow, regex, text"
    )
    assert main(["decode", str(path), "--parser", "{type: regex, pattern: '(?P<x>.)'}"]) == 2
    assert "give --schema FILE naming the columns" in capsys.readouterr().err

"""``cwl-pipeline decode`` end to end through ``main()``: outputs, summary, exit codes."""

from __future__ import annotations

import base64
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cwl_pipeline.cli.main import main

T0 = 1_795_168_800_123  # 2026-11-20T10:00:00.123Z
TASK = "0f3c7a52-4b9e-4d1a-9c55-2e8f6b1d7a90"


def envelope(messages: list[str], stream: str = "web-1", first_id: int = 1) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/app/web",
        "logStream": stream,
        "subscriptionFilters": ["f"],
        "logEvents": [
            {"id": str(first_id + i), "timestamp": T0 + i, "message": m} for i, m in enumerate(messages)
        ],
    }


def gz_json(doc: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


GOOD = json.dumps({"session_id": 7, "action": "click", "params": {"page": "/", "n": [1, 2]}})


@pytest.fixture
def firehose_file(tmp_path: Path) -> Path:
    path = tmp_path / "delivery.gz"
    path.write_bytes(
        gz_json(envelope([GOOD, "not json"]))
        + gz_json(envelope(['{"session_id": "x"}', '{"action": 5}'], stream="web-2", first_id=3))
    )
    return path


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_rows_to_stdout_as_ndjson(firehose_file, tmp_path, capsys):
    rejects = tmp_path / "rejects.ndjson"
    assert main(["decode", str(firehose_file), "--rejects", str(rejects)]) == 0
    out, err = capsys.readouterr()
    rows = ndjson(out)
    assert rows == [
        {
            "timestamp": "2026-11-20T10:00:00.123Z",
            "session_id": 7,
            "action": "click",
            "params": {"page": "/", "n": [1, 2]},
            "event_id": "1",
            "log_group": "/app/web",
            "log_stream": "web-1",
            "source_object": str(firehose_file),
        },
        {
            "timestamp": "2026-11-20T10:00:00.124Z",
            "session_id": 0,
            "action": "5",
            "params": None,
            "event_id": "4",
            "log_group": "/app/web",
            "log_stream": "web-2",
            "source_object": str(firehose_file),
        },
    ]
    assert err == "decoded 1 file: 4 events, 2 rows, 2 rejects (invalid_json=1, invalid_type:session_id=1)\n"
    reject_rows = ndjson(rejects.read_text())
    assert [(r["event_id"], r["reason"]) for r in reject_rows] == [
        ("2", "invalid_json"),
        ("3", "invalid_type:session_id"),
    ]
    assert reject_rows[0]["raw_message"] == "not json"
    assert reject_rows[0]["timestamp"] == "2026-11-20T10:00:00.124Z"
    assert set(reject_rows[0]) == {
        "event_id",
        "timestamp",
        "log_group",
        "log_stream",
        "ingestion_time",
        "source_object",
        "reason",
        "detail",
        "raw_message",
    }


def test_parquet_output(firehose_file, tmp_path, capsys):
    out_path = tmp_path / "rows.parquet"
    code = main(["decode", str(firehose_file), "--output-format", "parquet", "-o", str(out_path)])
    assert code == 0
    assert capsys.readouterr().out == ""
    table = pq.read_table(out_path)
    assert table.column_names[:4] == ["timestamp", "session_id", "action", "params"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.column("event_id").to_pylist() == ["1", "4"]
    assert json.loads(table.column("params")[0].as_py()) == {"page": "/", "n": [1, 2]}


def test_ndjson_to_file(firehose_file, tmp_path, capsys):
    out_path = tmp_path / "rows.ndjson"
    assert main(["decode", str(firehose_file), "-o", str(out_path)]) == 0
    assert capsys.readouterr().out == ""
    assert [r["event_id"] for r in ndjson(out_path.read_text())] == ["1", "4"]


def test_several_files_and_formats(firehose_file, tmp_path, capsys):
    export = tmp_path / "exports" / TASK / "ecs" / "app" / "000000.gz"
    export.parent.mkdir(parents=True)
    export.write_bytes(
        gzip.compress(
            b'2026-11-20T10:00:05.000Z {"session_id": 9}\n2026-11-20T10:00:01.000Z boom\n  at frame\n'
        )
    )
    lambda_event = tmp_path / "event.json"
    data = base64.b64encode(gz_json(envelope([GOOD], first_id=10))).decode()
    lambda_event.write_text(json.dumps({"awslogs": {"data": data}}))
    code = main(["decode", str(firehose_file), str(export), str(lambda_event), "--log-group", "/exported"])
    assert code == 0
    out, err = capsys.readouterr()
    rows = ndjson(out)
    exported = [r for r in rows if r["log_group"] == "/exported"]
    assert [(r["session_id"], r["log_stream"]) for r in exported] == [(9, "ecs/app")]
    assert exported[0]["event_id"].startswith("d-")
    assert [r["event_id"] for r in rows if r["log_group"] == "/app/web"] == ["1", "4", "10"]
    assert err.startswith("decoded 3 files: 7 events, 4 rows, 3 rejects (invalid_json=2, ")


def test_stdin_messages(monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO(b'{"session_id": 1}\n{"session_id": 2}\n'))
    monkeypatch.setattr(sys, "stdin", stdin)
    code = main(["decode", "-", "--format", "messages", "--log-group", "/g", "--log-stream", "s"])
    assert code == 0
    rows = ndjson(capsys.readouterr().out)
    assert [(r["session_id"], r["log_group"], r["log_stream"]) for r in rows] == [
        (1, "/g", "s"),
        (2, "/g", "s"),
    ]
    assert "source_object" not in rows[0]


def test_custom_schema_file(firehose_file, tmp_path, capsys):
    schema = tmp_path / "clicks.yaml"
    schema.write_text(
        "columns:\n"
        "  - {name: at, type: TIMESTAMP, source: event_timestamp, required: true}\n"
        "  - {name: page, type: STRING, path: params.page}\n"
        "  - {name: first, type: JSON, path: params.n}\n"
    )
    assert main(["decode", str(firehose_file), "--schema", str(schema)]) == 0
    rows = ndjson(capsys.readouterr().out)
    assert [(r["at"], r["page"], r["first"]) for r in rows] == [
        ("2026-11-20T10:00:00.123Z", "/", [1, 2]),
        ("2026-11-20T10:00:00.123Z", None, None),  # session_id "x" is no column here
        ("2026-11-20T10:00:00.124Z", None, None),
    ]


def error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1
    return err.rstrip("\n")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.gz", "{path}: No such file or directory"),
        (lambda d: d, "{path}: is a directory"),
    ],
)
def test_unreadable_paths(tmp_path, capsys, make, expected):
    path = make(tmp_path)
    assert main(["decode", str(path)]) == 2
    assert error_line(capsys) == "cwl-pipeline decode: error: " + expected.format(path=path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (gzip.compress(b'{"messageType": "DATA_MESSAGE"}')[:-6], "truncated gzip data: member 1 ends early"),
        (b"some plain text\n", "cannot detect format; pass --format"),
        (b'{"unrelated": true}', "cannot detect format; pass --format (JSON that is not a known"),
    ],
)
def test_unreadable_content(tmp_path, capsys, content, reason):
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    assert main(["decode", str(path)]) == 2
    assert error_line(capsys).startswith(f"cwl-pipeline decode: error: {path}: {reason}")


def test_error_in_second_file_writes_nothing(firehose_file, tmp_path, capsys):
    assert main(["decode", str(firehose_file), str(tmp_path / "nope")]) == 2
    assert "nope: No such file or directory" in error_line(capsys)


def test_export_needs_log_group(tmp_path, capsys):
    path = tmp_path / "exports" / TASK / "web" / "000000.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(b"2026-11-20T10:00:00.000Z hello\n"))
    assert main(["decode", str(path)]) == 2
    assert error_line(capsys) == (
        f"cwl-pipeline decode: error: {path}: format 'export' needs a log group; pass --log-group"
    )


def test_messages_from_stdin_need_a_stream(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
    assert main(["decode", "-", "--format", "messages", "--log-group", "/g"]) == 2
    assert error_line(capsys) == (
        "cwl-pipeline decode: error: <stdin>: format 'messages' needs a log stream; pass --log-stream"
    )


def test_parquet_needs_output(firehose_file, capsys):
    assert main(["decode", str(firehose_file), "--output-format", "parquet"]) == 2
    assert error_line(capsys) == "cwl-pipeline decode: error: --output-format parquet needs -o FILE"


def test_unknown_schema(firehose_file, capsys):
    assert main(["decode", str(firehose_file), "--schema", "nope"]) == 2
    assert "neither a built-in schema (seed, lambda, vpc_flow, text) nor a file" in error_line(capsys)


def test_invalid_schema_file(firehose_file, tmp_path, capsys):
    schema = tmp_path / "bad.yaml"
    schema.write_text("columns:\n  - {name: x, type: INT64}\n")
    assert main(["decode", str(firehose_file), "--schema", str(schema)]) == 2
    assert "needs exactly one TIMESTAMP column" in error_line(capsys)


def test_schema_with_unusable_default(firehose_file, tmp_path, capsys):
    schema = tmp_path / "bad_default.json"
    schema.write_text(
        json.dumps(
            {
                "columns": [
                    {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp"},
                    {"name": "n", "type": "INT64", "default": "many"},
                ]
            }
        )
    )
    assert main(["decode", str(firehose_file), "--schema", str(schema)]) == 2
    assert "default 'many' is not a valid INT64" in error_line(capsys)


def test_empty_file_is_zero_events(tmp_path, capsys):
    path = tmp_path / "empty.gz"
    path.write_bytes(b"")
    assert main(["decode", str(path)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "decoded 1 file: 0 events, 0 rows, 0 rejects\n")


def test_unknown_format_choice_is_a_usage_error(firehose_file, capsys):
    with pytest.raises(SystemExit) as info:
        main(["decode", str(firehose_file), "--format", "xml"])
    assert info.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_workers_give_the_output_of_one_process(firehose_file, tmp_path, capsys):
    second = tmp_path / "second.gz"
    second.write_bytes(gz_json(envelope([GOOD, '{"session_id": 9}', "[1]"], stream="web-9", first_id=20)))
    outputs = []
    for workers in ("1", "2"):
        rows, rejects = tmp_path / f"rows-{workers}.ndjson", tmp_path / f"rejects-{workers}.ndjson"
        args = ["decode", str(firehose_file), str(second), "-o", str(rows), "--rejects", str(rejects)]
        assert main([*args, "--workers", workers]) == 0
        outputs.append((rows.read_bytes(), rejects.read_bytes(), capsys.readouterr().err))
    assert outputs[0] == outputs[1]
    assert outputs[0][0].count(b"\n") == 4 and outputs[0][1].count(b"\n") == 3
    # The workers' spooled parts were appended to the outputs and removed.
    assert not list(tmp_path.glob(".cwl-decode-*"))


def test_spooled_parts_reach_a_pipe_as_they_reach_a_file(firehose_file, tmp_path):
    """A real process whose stdout is a pipe: the parts go there in order, as into a file."""
    import subprocess

    second = tmp_path / "second.gz"
    second.write_bytes(gz_json(envelope([GOOD, '{"session_id": 9}'], stream="web-9", first_id=20)))
    rows = tmp_path / "rows.ndjson"
    command = [sys.executable, "-m", "cwl_pipeline.cli.main", "decode", str(firehose_file), str(second)]
    subprocess.run([*command, "--workers", "2", "-o", str(rows)], check=True, capture_output=True)
    piped = subprocess.run([*command, "--workers", "2"], check=True, capture_output=True, cwd=tmp_path)
    assert piped.stdout == rows.read_bytes()
    assert [r["log_stream"] for r in ndjson(piped.stdout.decode())] == ["web-1", "web-2", "web-9", "web-9"]
    assert not list(tmp_path.glob(".cwl-decode-*"))


def test_workers_report_the_first_unreadable_input(firehose_file, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(gzip.compress(b"x" * 100)[:-5])
    assert (
        main(["decode", str(firehose_file), str(corrupt), str(tmp_path / "missing"), "--workers", "2"]) == 2
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"cwl-pipeline decode: error: {corrupt}: ")
    assert not list(tmp_path.glob(".cwl-decode-*"))

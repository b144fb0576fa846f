"""The hostile corpus through ``cwl-pipeline decode``: one clear error line and exit 2 for an
unreadable input, exit 0 with reconciling counts otherwise; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from cwl_pipeline.cli.main import main
from cwl_pipeline_tests.hostile.corpus import (
    CARRIERS,
    GROUP,
    STREAM,
    case_by_id,
    gzip_bomb,
    message_cases,
    payload,
    payload_cases,
)
from cwl_pipeline_tests.hostile.outcomes import expected_rejects, expected_rows

PREFIX = "cwl-pipeline decode: error: "


def decode_args(path: Path, fmt: str, *extra: str) -> list[str]:
    return ["decode", str(path), "--format", fmt, "--log-group", GROUP, "--log-stream", STREAM, *extra]


def stderr_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err[:2000]
    assert "Traceback" not in err
    return err.rstrip("\n")


@pytest.mark.parametrize("case", payload_cases(), ids=lambda c: c.id)
def test_broken_payloads(case, tmp_path, capsys):
    path = tmp_path / "input.bin"
    path.write_bytes(case.build())
    limit = (
        []
        if case.max_decompressed_bytes is None
        else ["--max-decompressed-bytes", str(case.max_decompressed_bytes)]
    )
    status = main(decode_args(path, case.format, *limit))
    line = stderr_line(capsys)
    if case.error is not None:
        assert status == 2
        assert line.startswith(f"{PREFIX}{path}: ")
        assert case.error in line
    else:
        assert status == 0
        assert line.startswith(f"decoded 1 file: {case.events} event")


@pytest.mark.parametrize("carrier", CARRIERS)
def test_message_corpus_rows_and_rejects(carrier, tmp_path, capsys):
    cases = [case_by_id("plain_object"), *(c for c in message_cases() if carrier in c.carriers())]
    data, fmt = payload(carrier, cases)
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    rejects_path = tmp_path / "rejects.ndjson"
    assert main(decode_args(path, fmt, "--rejects", str(rejects_path))) == 0
    out, err = capsys.readouterr()
    rows = [orjson.loads(line) for line in out.splitlines()]
    rejects = [orjson.loads(line) for line in rejects_path.read_text("utf-8").splitlines()]
    assert err.startswith(f"decoded 1 file: {len(cases)} events, {len(rows)} rows, {len(rejects)} rejects")
    assert len(rows) + len(rejects) == len(cases)
    want_rows = [(s, a, None if p is None else orjson.loads(p)) for s, a, p in expected_rows(cases)]
    assert [(r["session_id"], r.get("action"), r.get("params")) for r in rows] == want_rows
    assert [(r["reason"], r["raw_message"]) for r in rejects] == expected_rejects(cases, carrier)


def test_bad_limit_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "x.gz"
    path.write_bytes(b"")
    with pytest.raises(SystemExit) as info:
        main(["decode", str(path), "--max-decompressed-bytes", "lots"])
    assert info.value.code == 2
    assert "--max-decompressed-bytes: 'lots' is not a byte size" in capsys.readouterr().err


def test_bomb_in_a_real_process(tmp_path):
    """The installed command, as a user runs it: one line on stderr, exit 2, no traceback."""
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip_bomb(256 << 20))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cwl_pipeline.cli.main",
            *decode_args(path, "auto", "--max-decompressed-bytes", "8MiB"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        done.stderr == f"{PREFIX}{path}: decompressed size exceeds 8388608 bytes (max_decompressed_bytes); "
        "refusing the input as a possible decompression bomb\n"
    )


def test_message_corpus_to_parquet(tmp_path, capsys):
    cases = [case_by_id("plain_object"), *(c for c in message_cases() if "firehose" in c.carriers())]
    data, fmt = payload("firehose", cases)
    path = tmp_path / "input.gz"
    path.write_bytes(data)
    out = tmp_path / "rows.parquet"
    assert main(decode_args(path, fmt, "--output-format", "parquet", "-o", str(out))) == 0
    table = pq.read_table(out)
    assert table.column("action").to_pylist() == [a for _, a, _ in expected_rows(cases)]
    assert stderr_line(capsys).startswith(f"decoded 1 file: {len(cases)} events, {table.num_rows} rows")

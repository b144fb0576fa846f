"""The lambda parser on Lambda's own lines and what functions print, through the lambda schema."""

from __future__ import annotations

import json

import pytest

from cwl_pipeline.core.parsers.lambda_logs import parse_lambda_message
from cwl_pipeline.core.schema import LAMBDA_SCHEMA
from cwl_pipeline_tests.core.parsers import samples as s
from cwl_pipeline_tests.core.parsers.normalized import T0, reasons, rows, run

POWERTOOLS_MS = 1_620_042_432_494  # 2021-05-03T11:47:12.494Z


def test_start_and_end():
    assert parse_lambda_message(s.START) == {
        "record_type": "start",
        "request_id": s.RID,
        "version": "$LATEST",
        "message": s.START.rstrip("\n"),
    }
    assert parse_lambda_message(s.END)["record_type"] == "end"
    assert parse_lambda_message(s.END)["request_id"] == s.RID


def test_report_cold_start_is_typed():
    record = parse_lambda_message(s.REPORT_COLD)
    assert {k: record.get(k) for k in record if k != "message"} == {
        "record_type": "report",
        "request_id": s.RID,
        "duration_ms": 1234.56,
        "billed_duration_ms": 1235,
        "memory_size_mb": 256,
        "max_memory_used_mb": 87,
        "init_duration_ms": 412.03,
        "status": "success",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            s.REPORT_WARM_XRAY,
            {
                "duration_ms": 15.74,
                "init_duration_ms": None,
                "xray_trace_id": "1-6745d1c2-0b1c2d3e4f5a6b7c8d9e0f1a",
            },
        ),
        (s.REPORT_SPACES, {"duration_ms": 2.05, "billed_duration_ms": 3, "max_memory_used_mb": 76}),
        (s.REPORT_TIMEOUT, {"duration_ms": 3000.0, "status": "timeout"}),
        # A cut line keeps what it has; the rest is NULL.
        (s.REPORT_TRUNCATED, {"duration_ms": 8.1, "billed_duration_ms": None, "memory_size_mb": None}),
    ],
)
def test_report_variants(line, expected):
    record = parse_lambda_message(line)
    assert {k: record.get(k) for k in expected} == expected
    assert record["request_id"] == s.RID


def test_report_xray_fields_on_the_next_line():
    record = parse_lambda_message(s.REPORT_WARM_XRAY)
    assert (record["xray_segment_id"], record["xray_sampled"]) == ("2b3c4d5e6f7a8b9c", True)


def test_init_start_and_timeout():
    init = parse_lambda_message(s.INIT_START)
    assert (init["record_type"], init["runtime_version"]) == ("init_start", "python:3.12.v38")
    assert init["runtime_version_arn"].startswith("arn:aws:lambda:eu-west-1::runtime:")
    timeout = parse_lambda_message(s.TIMEOUT)
    assert {k: timeout[k] for k in ("record_type", "request_id", "timeout_seconds", "time")} == {
        "record_type": "timeout",
        "request_id": s.RID,
        "timeout_seconds": 3.0,
        "time": "2026-11-20T10:00:03.012Z",
    }


def test_python_runtime_lines_keep_tabs_apart_and_multi_line_messages_whole():
    info = parse_lambda_message(s.PYTHON_INFO)
    assert info == {
        "record_type": "log",
        "level": "INFO",
        "time": "2026-11-20T10:00:00.120Z",
        "request_id": s.RID,
        "message": "Found credentials in environment variables.",
    }
    error = parse_lambda_message(s.PYTHON_ERROR_MULTILINE)
    assert error["level"] == "ERROR"
    assert error["message"].startswith("payment declined\nTraceback (most recent call last):\n")
    assert error["message"].endswith("app.PaymentDeclined: 4711")
    unhandled = parse_lambda_message(s.UNHANDLED)
    assert (unhandled["level"], unhandled.get("request_id")) == (
        "ERROR",
        None,
    )
    assert unhandled["message"].startswith("Runtime.ImportModuleError:")


def test_node_line_and_plain_print():
    node = parse_lambda_message(s.NODE_INFO)
    assert (node["level"], node["request_id"], node["message"]) == ("INFO", s.RID, "user signed in")
    assert parse_lambda_message(s.PRINT) == {"record_type": "log", "message": "processing 3 records"}
    # Python's repr of a dict is not JSON: kept as text, not a reject.
    assert parse_lambda_message(s.PYTHON_DICT_PRINT) == {"record_type": "log", "message": "{'key': 'value'}"}


def test_json_lines_keep_the_object_and_lift_the_usual_keys():
    powertools = parse_lambda_message(s.POWERTOOLS)
    assert powertools["data"] == json.loads(s.POWERTOOLS)
    assert (powertools["level"], powertools["message"], powertools["request_id"]) == (
        "INFO",
        "order accepted",
        s.RID,
    )
    structured = parse_lambda_message(s.POWERTOOLS_DICT_MESSAGE)
    assert structured["message"] == '{"order":4711,"items":2}'  # an object message as JSON text
    app = parse_lambda_message(s.LAMBDA_JSON_APP)
    assert (app["level"], app["request_id"], app["time"]) == ("ERROR", s.RID, "2026-11-20T10:00:00.300Z")


def test_lambda_json_log_format_platform_report_maps_to_the_same_fields():
    record = parse_lambda_message(s.LAMBDA_JSON_REPORT)
    assert {k: record[k] for k in ("record_type", "request_id", "duration_ms", "billed_duration_ms")} == {
        "record_type": "report",
        "request_id": s.RID,
        "duration_ms": 120.5,
        "billed_duration_ms": 121,
    }
    assert (record["memory_size_mb"], record["max_memory_used_mb"], record["init_duration_ms"]) == (
        128,
        60,
        300.2,
    )


def test_a_mixed_group_lands_typed_without_a_reject():
    messages = [
        s.INIT_START,
        s.START,
        s.PRINT,
        s.PYTHON_INFO,
        s.POWERTOOLS,
        s.POWERTOOLS_DICT_MESSAGE,
        s.PYTHON_ERROR_MULTILINE,
        s.PYTHON_DICT_PRINT,
        s.TIMEOUT,
        s.END,
        s.REPORT_TIMEOUT,
        "",
    ]
    batch = run(messages, LAMBDA_SCHEMA)
    assert (batch.rows_loaded, batch.rows_rejected, batch.parse_warnings) == (len(messages), 0, {})
    loaded = rows(batch)
    by_type = [r["record_type"] for r in loaded]
    assert by_type == [
        "init_start",
        "start",
        "log",
        "log",
        "log",
        "log",
        "log",
        "log",
        "timeout",
        "end",
        "report",
        "log",
    ]
    report = loaded[10]
    assert (report["duration_ms"], report["billed_duration_ms"], report["status"]) == (
        3000.0,
        3000,
        "timeout",
    )
    assert loaded[8]["timeout_seconds"] == 3.0
    # Powertools' "2021-05-03 11:47:12,494+0000" and a one-digit fraction with an offset.
    assert loaded[4]["logged_at"] == POWERTOOLS_MS
    assert loaded[5]["logged_at"] == POWERTOOLS_MS - 494 + 900 - 3_600_000
    assert loaded[3]["logged_at"] == T0 + 120  # the runtime's RFC 3339 time
    assert json.loads(loaded[4]["data"])["service"] == "orders"
    assert loaded[2]["data"] is None and loaded[2]["message"] == "processing 3 records"


def test_unreadable_line_time_is_null_and_a_warning_not_a_lost_event():
    bad_time = json.dumps({"level": "INFO", "message": "x", "timestamp": "03/05/2021 11:47"})
    batch = run([bad_time, s.POWERTOOLS], LAMBDA_SCHEMA)
    assert (batch.rows_loaded, batch.rows_rejected, batch.parse_warnings) == (2, 0, {"logged_at": 1})
    assert [r["logged_at"] for r in rows(batch)] == [None, POWERTOOLS_MS]


def test_a_report_whose_numbers_are_not_numbers_is_a_reject_with_a_reason():
    garbled = f"REPORT RequestId: {s.RID}\tDuration: n/a ms\tBilled Duration: 5 ms\t"
    batch = run([garbled, b"\xffnot utf-8"], LAMBDA_SCHEMA)
    assert reasons(batch) == ["invalid_type:duration_ms", "invalid_utf8"]
    assert batch.rejects_table.column("raw_message").to_pylist()[0] == garbled

"""Lambda's platform lines in both log formats, and the application lines that look like them.

Every line here is copied from where it was published; the source is named beside it. JSON
platform events are written the way Lambda's JSON log format writes them (one compact object
per event) from the examples of the Telemetry API schema reference.
"""

from __future__ import annotations

import json

import pytest

from cwl_pipeline.core.parsers.lambda_logs import parse_lambda_message
from cwl_pipeline.core.schema import LAMBDA_SCHEMA
from cwl_pipeline_tests.core.parsers.normalized import rows, run

TELEMETRY_SCHEMA = "https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html"
RUNTIME_ENVIRONMENT = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html"


def compact(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


# TELEMETRY_SCHEMA, "platform.initReport" example.
JSON_INIT_REPORT = compact(
    {
        "time": "2022-10-12T00:01:15.000Z",
        "type": "platform.initReport",
        "record": {
            "initializationType": "on-demand",
            "status": "success",
            "phase": "init",
            "metrics": {"durationMs": 125.33},
            "spans": [{"name": "someTimeSpan", "start": "2022-06-02T12:02:33.913Z", "durationMs": 90.1}],
        },
    }
)
# TELEMETRY_SCHEMA, "platform.runtimeDone" example.
JSON_RUNTIME_DONE = compact(
    {
        "time": "2022-10-12T00:01:15.000Z",
        "type": "platform.runtimeDone",
        "record": {
            "requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
            "status": "success",
            "tracing": {
                "spanId": "54565fb41ac79632",
                "type": "X-Amzn-Trace-Id",
                "value": "Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1",
            },
            "spans": [{"name": "someTimeSpan", "start": "2022-08-02T12:01:23:521Z", "durationMs": 80.0}],
            "metrics": {"durationMs": 140.0, "producedBytes": 16},
        },
    }
)
# TELEMETRY_SCHEMA, "platform.report" example, with the attributes the page lists for it and its
# example leaves out: "status" and "tracing" (a TraceContext, the one of the runtimeDone example).
JSON_REPORT = compact(
    {
        "time": "2022-10-12T00:01:15.000Z",
        "type": "platform.report",
        "record": {
            "metrics": {
                "billedDurationMs": 694,
                "durationMs": 693.92,
                "initDurationMs": 397.68,
                "maxMemoryUsedMB": 84,
                "memorySizeMB": 128,
            },
            "requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
            "status": "success",
            "tracing": {
                "spanId": "54565fb41ac79632",
                "type": "X-Amzn-Trace-Id",
                "value": "Root=1-62e900b2-710d76f009d6e7785905449a;Parent=0efbd19962d95b05;Sampled=1",
            },
        },
    }
)
# TELEMETRY_SCHEMA, "platform.restoreReport" example.
JSON_RESTORE_REPORT = compact(
    {
        "time": "2022-10-12T00:00:15.064Z",
        "type": "platform.restoreReport",
        "record": {
            "status": "success",
            "metrics": {"durationMs": 15.19},
            "spans": [{"name": "someTimeSpan", "start": "2022-08-02T12:01:23:521Z", "durationMs": 30.0}],
        },
    }
)

# github.com/cargo-lambda/cargo-lambda/issues/572: a function whose init fails, then is retried
# inside the first invocation.
INIT_REPORT_ERROR = (
    "INIT_REPORT Init Duration: 206.72 ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError"
)
INIT_REPORT_INVOKE = (
    "INIT_REPORT Init Duration: 1666.62 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError"
)
RUNTIME_EXIT = "RequestId: 123 Error: Runtime exited without providing a reason\nRuntime.ExitError"
# RUNTIME_ENVIRONMENT, "Failures during the Init phase" / "Failures during the Restore phase".
INIT_REPORT_TIMEOUT = "INIT_REPORT Init Duration: 1236.04 ms Phase: init Status: timeout"
INIT_REPORT_EXTENSION = (
    "INIT_REPORT Init Duration: 1236.04 ms Phase: init Status: error Error Type: Extension.Crash"
)
RESTORE_REPORT_TIMEOUT = "RESTORE_REPORT Restore Duration: 1236.04 ms Status: timeout"
RESTORE_REPORT_HOOK = (
    "RESTORE_REPORT Restore Duration: 1236.04 ms Status: error Error Type: Runtime.ExitError"
)
# github.com/docwho2/java-chime-voicesdk-sma, README.md, the `sam logs --tail` example (a SnapStart
# function's restore and first invocation).
RESTORE_START = (
    "RESTORE_START Runtime Version: java:11.v21\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:"
    "156ab0dc268a6b4a8dedcbcf0974795cafba2ee8760fe386062fffdbb887b971"
)
RESTORE_REPORT = "RESTORE_REPORT Restore Duration: 511.25 ms"
START_V56 = "START RequestId: b771fecc-1b53-4faf-922d-1d74357b1676 Version: 56"
REPORT_RESTORED = (
    "REPORT RequestId: b771fecc-1b53-4faf-922d-1d74357b1676\tDuration: 306.34 ms\tBilled Duration: 610 ms\t"
    "Memory Size: 3009 MB\tMax Memory Used: 155 MB\tRestore Duration: 511.25 ms\t"
    "Billed Restore Duration: 303 ms\t"
)
# github.com/cboscolo/elb2loggly/issues/26: a Node.js runtime of the time (no level column), its
# REPORT, and the runtime's error line.
NODE_NO_LEVEL = (
    "2019-02-15T12:01:38.743Z\t7a111162-fe11-4eee-a5f8-0651a0691b8f\tTypeError: Cannot read property '0' of "
    "undefined\n    at exports.handler (/var/task/index.js:9:33)"
)
REPORT_OK = (
    "REPORT RequestId: 7a111162-fe11-4eee-a5f8-0651a0691b8f\tDuration: 54.30 ms\tBilled Duration: 100 ms \t"
    "Memory Size: 128 MB\tMax Memory Used: 29 MB\t"
)
PROCESS_EXITED = "RequestId: 7a111162-fe11-4eee-a5f8-0651a0691b8f Process exited before completing request"
# github.com/DataBiosphere/azul/issues/5622: the platform's own timeout line, as CloudWatch stores it.
PLATFORM_TIMEOUT = (
    "2023-10-20T16:28:17.840Z 4299ee26-8d1d-4ea9-bd43-77b85ed96cfe Task timed out after 31.01 seconds\n\n"
)
# A Node.js function (the runtime's `<time>\t<request id>\tLEVEL\t` line) logging the error another
# function's invocation returned; the errorMessage is the one of
# github.com/alexa-samples/skill-sample-nodejs-smarthome-switch/issues/18.
APP_QUOTES_TIMEOUT = (
    "2020-11-10T05:46:58.102Z\t0c5b0e1a-7f3d-4c55-9a59-2e1d6c8f4b21\tERROR\tinvoke failed: "
    '{"errorMessage":"2020-11-10T05:46:57.874Z 160788cd-45ff-4583-809f-c7e31127cb95 '
    'Task timed out after 3.07 seconds"}'
)
# The Node.js runtime writes the request id `undefined` for output outside an invocation, here
# AWS's Kinesis tutorial function's module-level `console.log('Loading function')`, as the Lambda
# console's "Function Logs" shows it.
NODE_UNDEFINED_ID = "2021-09-25T11:19:26.414Z\tundefined\tINFO\tLoading function"


def test_json_init_report_fills_init_duration_not_duration():
    record = parse_lambda_message(JSON_INIT_REPORT)
    assert {
        k: record.get(k) for k in ("record_type", "init_duration_ms", "duration_ms", "status", "phase")
    } == {
        "record_type": "init_report",
        "init_duration_ms": 125.33,
        "duration_ms": None,
        "status": "success",
        "phase": "init",
    }


def test_json_init_report_of_a_failed_init_carries_status_and_error_type():
    # The failed init of cargo-lambda#572, as the JSON format writes it (the schema reference's
    # PlatformInitReport: errorType?, status).
    failed = json.loads(JSON_INIT_REPORT)
    failed["record"].update(status="error", errorType="Runtime.ExitError", metrics={"durationMs": 206.72})
    failed["record"].pop("spans")
    record = parse_lambda_message(compact(failed))
    assert (record["init_duration_ms"], record["status"], record["error_type"]) == (
        206.72,
        "error",
        "Runtime.ExitError",
    )
    text = parse_lambda_message(INIT_REPORT_ERROR)
    assert {k: text[k] for k in ("init_duration_ms", "status", "error_type")} == {
        k: record[k] for k in ("init_duration_ms", "status", "error_type")
    }


def test_runtime_done_carries_no_duration_so_an_invocation_is_summed_once():
    done = parse_lambda_message(JSON_RUNTIME_DONE)
    assert (done["record_type"], done.get("duration_ms"), done["status"]) == ("end", None, "success")
    loaded = rows(run([JSON_RUNTIME_DONE, JSON_REPORT], LAMBDA_SCHEMA))
    assert sum(r["duration_ms"] or 0 for r in loaded) == 693.92


def test_json_report_tracing_is_the_xray_trace():
    record = parse_lambda_message(JSON_REPORT)
    assert {k: record.get(k) for k in ("xray_trace_id", "xray_segment_id", "xray_sampled")} == {
        "xray_trace_id": "1-62e900b2-710d76f009d6e7785905449a",
        "xray_segment_id": "54565fb41ac79632",
        "xray_sampled": True,
    }


def test_json_restore_report_fills_restore_duration():
    record = parse_lambda_message(JSON_RESTORE_REPORT)
    assert (record["record_type"], record["restore_duration_ms"], record.get("duration_ms")) == (
        "restore_report",
        15.19,
        None,
    )


def test_status_means_the_same_in_both_formats():
    text, json_line = parse_lambda_message(REPORT_OK), parse_lambda_message(JSON_REPORT)
    assert text["status"] == json_line["status"] == "success"
    assert (
        parse_lambda_message(RESTORE_REPORT)["status"] == parse_lambda_message(JSON_RESTORE_REPORT)["status"]
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (INIT_REPORT_ERROR, (206.72, "init", "error", "Runtime.ExitError")),
        (INIT_REPORT_INVOKE, (1666.62, "invoke", "error", "Runtime.ExitError")),
        (INIT_REPORT_TIMEOUT, (1236.04, "init", "timeout", None)),
        (INIT_REPORT_EXTENSION, (1236.04, "init", "error", "Extension.Crash")),
    ],
)
def test_text_init_report(line, expected):
    record = parse_lambda_message(line)
    assert record["record_type"] == "init_report"
    assert tuple(record.get(k) for k in ("init_duration_ms", "phase", "status", "error_type")) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (RESTORE_REPORT, (511.25, "success", None)),
        (RESTORE_REPORT_TIMEOUT, (1236.04, "timeout", None)),
        (RESTORE_REPORT_HOOK, (1236.04, "error", "Runtime.ExitError")),
    ],
)
def test_text_restore_report(line, expected):
    record = parse_lambda_message(line)
    assert record["record_type"] == "restore_report"
    assert tuple(record.get(k) for k in ("restore_duration_ms", "status", "error_type")) == expected


def test_text_restore_start():
    record = parse_lambda_message(RESTORE_START)
    assert (record["record_type"], record["runtime_version"]) == ("restore_start", "java:11.v21")
    assert record["runtime_version_arn"].endswith(
        ":runtime:156ab0dc268a6b4a8dedcbcf0974795cafba2ee8760fe386062fffdbb887b971"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (RUNTIME_EXIT, ("123", "Runtime exited without providing a reason", "Runtime.ExitError")),
        (
            PROCESS_EXITED,
            ("7a111162-fe11-4eee-a5f8-0651a0691b8f", "Process exited before completing request", None),
        ),
    ],
)
def test_runtime_error_lines_keep_the_request_id_and_the_error(line, expected):
    record = parse_lambda_message(line)
    assert record["record_type"] == "runtime_error"
    assert (record["request_id"], record["error_message"], record.get("error_type")) == expected


def test_node_line_without_a_level_column():
    record = parse_lambda_message(NODE_NO_LEVEL)
    assert {k: record.get(k) for k in ("record_type", "time", "request_id", "level")} == {
        "record_type": "log",
        "time": "2019-02-15T12:01:38.743Z",
        "request_id": "7a111162-fe11-4eee-a5f8-0651a0691b8f",
        "level": None,
    }
    assert record["message"].startswith("TypeError: Cannot read property '0' of undefined\n    at exports")


def test_an_application_line_quoting_a_timeout_is_not_a_timeout():
    record = parse_lambda_message(APP_QUOTES_TIMEOUT)
    assert {k: record.get(k) for k in ("record_type", "level", "time", "request_id")} == {
        "record_type": "log",
        "level": "ERROR",
        "time": "2020-11-10T05:46:58.102Z",
        "request_id": "0c5b0e1a-7f3d-4c55-9a59-2e1d6c8f4b21",
    }
    platform = parse_lambda_message(PLATFORM_TIMEOUT)
    assert (platform["record_type"], platform["request_id"], platform["timeout_seconds"]) == (
        "timeout",
        "4299ee26-8d1d-4ea9-bd43-77b85ed96cfe",
        31.01,
    )


def test_node_undefined_request_id_is_null():
    record = parse_lambda_message(NODE_UNDEFINED_ID)
    assert (record["request_id"], record["level"], record["message"]) == (None, "INFO", "Loading function")


def test_the_builtin_schema_keeps_restore_runtime_xray_and_version_fields():
    batch = run([RESTORE_START, RESTORE_REPORT, START_V56, REPORT_RESTORED, JSON_REPORT], LAMBDA_SCHEMA)
    assert (batch.rows_loaded, batch.rows_rejected) == (5, 0)
    restore_start, restore, start, report, json_report = rows(batch)
    assert (restore_start["runtime_version"], restore_start["runtime_version_arn"][:30]) == (
        "java:11.v21",
        "arn:aws:lambda:us-east-1::runt",
    )
    assert (restore["restore_duration_ms"], restore["status"]) == (511.25, "success")
    assert start["version"] == "56"
    assert (report["restore_duration_ms"], report["billed_restore_duration_ms"]) == (511.25, 303)
    assert (json_report["xray_trace_id"], json_report["xray_segment_id"], json_report["xray_sampled"]) == (
        "1-62e900b2-710d76f009d6e7785905449a",
        "54565fb41ac79632",
        True,
    )


def test_init_start_as_the_runtime_version_page_shows_it():
    # https://docs.aws.amazon.com/lambda/latest/dg/runtime-management-identify.html, "Example
    # INIT_START log line".
    record = parse_lambda_message(
        "INIT_START Runtime Version: python:3.13.v14    Runtime Version ARN: "
        "arn:aws:lambda:eu-south-1::runtime:"
        "7b620fc2e66107a1046b140b9d320295811af3ad5d4c6a011fad1fa65127e9e6I"
    )
    assert (record["record_type"], record["runtime_version"]) == ("init_start", "python:3.13.v14")
    assert record["runtime_version_arn"].startswith("arn:aws:lambda:eu-south-1::runtime:7b620fc2")


@pytest.mark.parametrize(
    "line",
    [
        # Written for this test (no published line): application output that starts like the runtime's.
        "RequestId: 42 processed",
        "REPORT generated for order 4711",
        "INIT_REPORT cache warmed",
    ],
)
def test_application_lines_that_start_like_platform_lines_stay_log_lines(line):
    assert parse_lambda_message(line) == {"record_type": "log", "message": line}

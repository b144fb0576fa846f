"""The ``lambda`` parser: the lines an AWS Lambda function's log group holds.

Every message becomes a record with ``record_type`` and the fields below (absent fields
are NULL). Lambda's platform lines, in its text log format
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html,
https://docs.aws.amazon.com/lambda/latest/dg/snapstart-monitoring.html):

``START RequestId: <id> Version: $LATEST``
    ``record_type`` ``start``, ``request_id``, ``version``.
``END RequestId: <id>``
    ``end``, ``request_id``.
``REPORT RequestId: <id>  Duration: 15.74 ms  Billed Duration: 16 ms  Memory Size: 128 MB  ...``
    ``report``, ``request_id``, ``duration_ms``, ``billed_duration_ms``, ``memory_size_mb``,
    ``max_memory_used_mb`` (``... Max Memory Used: 56 MB  Init Duration: 130.49 ms``),
    ``init_duration_ms`` (cold starts only), ``restore_duration_ms``
    and ``billed_restore_duration_ms`` (SnapStart), ``status`` and ``error_type``,
    ``xray_trace_id``, ``xray_segment_id``, ``xray_sampled``. Fields are separated by tabs
    (or spaces); a field missing from the line is NULL.
``INIT_START Runtime Version: python:3.12.v38  Runtime Version ARN: arn:...``
    ``init_start``, ``runtime_version``, ``runtime_version_arn``.
``INIT_REPORT Init Duration: 206.72 ms  Phase: init  Status: error  Error Type: Runtime.ExitError``
    ``init_report``, ``init_duration_ms``, ``phase``, ``status``, ``error_type``.
``RESTORE_START Runtime Version: java:11.v21  Runtime Version ARN: arn:...``
    ``restore_start``, ``runtime_version``, ``runtime_version_arn`` (SnapStart).
``RESTORE_REPORT Restore Duration: 511.25 ms  Status: timeout``
    ``restore_report``, ``restore_duration_ms``, ``status``, ``error_type``.
``RequestId: <id> Error: Runtime exited with error: exit status 1`` (then ``\\nRuntime.ExitError``)
    ``runtime_error``, ``request_id``, ``error_message``, ``error_type``.
``<time> <id> Task timed out after 3.00 seconds`` (the whole line, nothing else)
    ``timeout``, ``time``, ``request_id``, ``timeout_seconds``.

``status`` means one thing in both formats: ``success``, ``timeout``, ``error`` or
``failure``, the values of the JSON format's ``status``. A text ``REPORT``, ``INIT_REPORT`` or
``RESTORE_REPORT`` line carries ``Status:`` only when the phase failed, so one without it is
``success`` (unless the line is cut before the place ``Status`` would be: then NULL).

Lambda's JSON log format (``LogFormat: JSON``) writes the platform events as JSON objects
shaped like the Telemetry API's events
(https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html):
``platform.initStart``, ``platform.start`` and ``platform.restoreStart`` map as their text lines
do; ``platform.report``'s ``metrics`` fill the ``REPORT`` fields; ``platform.initReport``'s and
``platform.restoreReport``'s ``metrics.durationMs`` fill ``init_duration_ms`` and
``restore_duration_ms``; ``platform.runtimeDone`` is ``end`` and carries no duration (its
``durationMs`` repeats the report's, so summing both would count an invocation twice; it stays
in ``data``). A ``tracing`` object (``{"type": "X-Amzn-Trace-Id", "value": "Root=1-...;
Parent=...;Sampled=1", "spanId": ...}``) fills ``xray_trace_id`` (its ``Root``),
``xray_segment_id`` (``spanId``) and ``xray_sampled``.

Application lines are ``record_type`` ``log`` with ``message`` (the text, without the
trailing newline the runtime adds) and, where the line says, ``level``, ``time`` and
``request_id``:

* the Python runtime's ``[INFO]\\t<time>\\t<request id>\\t<message>`` and its unhandled
  error lines ``[ERROR] Runtime.ImportModuleError: ...``;
* the Node.js runtime's ``<time>\\t<request id>\\tINFO\\t<message>``, and its older lines without
  the level column (``<time>\\t<request id>\\t<message>``). Node writes the literal request id
  ``undefined`` for a line logged outside an invocation (module load): that is NULL;
* JSON objects (AWS Lambda Powertools, Lambda's JSON application logs, any structured
  logger): the object is kept as ``data``; ``message``, ``level``, ``time`` and
  ``request_id`` are taken from its usual keys (``message``; ``level``/``levelname``;
  ``timestamp``/``time``; ``requestId``/``function_request_id``/``request_id``);
* anything else (``print`` output, multi-line tracebacks, text that merely looks like
  JSON) is kept whole as ``message``.

The parser never rejects: every line is at least a ``log`` record. Column types still
reject a field they cannot hold (a ``REPORT`` with ``Duration: abc ms`` is
``invalid_type:duration_ms`` under a FLOAT64 column).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_START = re.compile(r"START RequestId:\s*(?P<request_id>\S+)(?:\s+Version:\s*(?P<version>\S+))?")
_END = re.compile(r"END RequestId:\s*(?P<request_id>\S+)")
_FIELD = re.compile(
    r"(?:^|\s)(?P<key>RequestId|Billed Restore Duration|Restore Duration|Billed Duration|Init Duration|"
    r"Max Memory Used|Memory Size|Duration|Status|Error Type|Phase|XRAY TraceId|SegmentId|Sampled):"
    r"[ \t]*(?P<value>[^\s]+)"
)
_FIELD_KEYS = {
    "RequestId": "request_id",
    "Duration": "duration_ms",
    "Billed Duration": "billed_duration_ms",
    "Memory Size": "memory_size_mb",
    "Max Memory Used": "max_memory_used_mb",
    "Init Duration": "init_duration_ms",
    "Restore Duration": "restore_duration_ms",
    "Billed Restore Duration": "billed_restore_duration_ms",
    "Status": "status",
    "Error Type": "error_type",
    "Phase": "phase",
    "XRAY TraceId": "xray_trace_id",
    "SegmentId": "xray_segment_id",
    "Sampled": "xray_sampled",
}
_FLOAT_FIELDS = {"duration_ms", "init_duration_ms", "restore_duration_ms"}
_INT_FIELDS = {"billed_duration_ms", "memory_size_mb", "max_memory_used_mb", "billed_restore_duration_ms"}
# The platform lines whose fields are read by name: their record type, and the field that is
# always written before the optional ``Status`` (a line cut before it says nothing of the outcome).
_FIELD_LINES = {"REPORT": "report", "INIT_REPORT": "init_report", "RESTORE_REPORT": "restore_report"}
_FIRST_FIELD = {
    "REPORT": "RequestId:",
    "INIT_REPORT": "Init Duration:",
    "RESTORE_REPORT": "Restore Duration:",
}
_LAST_ALWAYS = {
    "REPORT": "max_memory_used_mb",
    "INIT_REPORT": "init_duration_ms",
    "RESTORE_REPORT": "restore_duration_ms",
}
_RUNTIME_START = re.compile(
    r"(?P<kind>INIT_START|RESTORE_START) Runtime Version:\s*(?P<runtime_version>\S+)"
    r"(?:\s+Runtime Version ARN:\s*(?P<runtime_version_arn>\S+))?"
)
_RUNTIME_ERROR = re.compile(
    r"RequestId:\s*(?P<request_id>\S+)\s+(?:Error:\s*(?P<error_message>[^\n]+?)|"
    r"(?P<exited>Process exited before completing request))(?:\n(?P<error_type>[A-Za-z][\w.]*))?\s*"
)
_TIMEOUT = re.compile(
    r"(?:(?P<time>\d{4}-\d\d-\d\dT\S+)\s+(?P<request_id>\S+)\s+)?Task timed out after\s+"
    r"(?P<seconds>\d+(?:\.\d+)?) seconds\s*"
)
_PYTHON_LINE = re.compile(
    r"\[(?P<level>[A-Z]+)\]\t(?P<time>[^\t]*)\t(?P<request_id>[^\t]*)\t(?P<message>.*)", re.DOTALL
)
_PYTHON_ERROR = re.compile(r"\[(?P<level>[A-Z]+)\] (?P<message>.*)", re.DOTALL)
_NODE_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT[^\t]+)\t(?P<request_id>[^\t]*)\t(?P<level>[A-Z]+)\t(?P<message>.*)", re.DOTALL
)
# Node.js runtimes before the level column (nodejs8.10, nodejs10.x): time, request id, text.
_NODE_LINE_NO_LEVEL = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT[^\t]+)\t(?P<request_id>[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|undefined)\t"
    r"(?P<message>.*)",
    re.DOTALL,
)
_JSON_PLATFORM_TYPES = {
    "platform.start": "start",
    "platform.report": "report",
    "platform.initStart": "init_start",
    "platform.initReport": "init_report",
    "platform.restoreStart": "restore_start",
    "platform.restoreReport": "restore_report",
    "platform.runtimeDone": "end",
}
_JSON_REPORT_METRICS = {
    "durationMs": "duration_ms",
    "billedDurationMs": "billed_duration_ms",
    "memorySizeMB": "memory_size_mb",
    "maxMemoryUsedMB": "max_memory_used_mb",
    "initDurationMs": "init_duration_ms",
    "restoreDurationMs": "restore_duration_ms",
    "billedRestoreDurationMs": "billed_restore_duration_ms",
}
# Which fields each JSON platform event's ``metrics`` fill; runtimeDone's fill none.
_JSON_METRICS = {
    "platform.report": _JSON_REPORT_METRICS,
    "platform.initReport": {"durationMs": "init_duration_ms"},
    "platform.restoreReport": {"durationMs": "restore_duration_ms"},
}
_TRACE_VALUE = re.compile(r"(?:^|;)\s*(?P<key>Root|Sampled)=(?P<value>[^;]*)")


def parse_lambda_message(message: str) -> dict[str, Any]:
    """The record of one Lambda log message (see the module documentation)."""
    text = message.rstrip("\r\n")
    head = text[:16]
    kind = head.split(" ", 1)[0]
    if kind in _FIELD_LINES and text.startswith(_FIRST_FIELD[kind], len(kind) + 1):
        return _field_line(text, kind)
    if head.startswith("START "):
        match = _START.match(text)
        if match:
            return {"record_type": "start", "message": text, **match.groupdict()}
    elif head.startswith("END "):
        match = _END.match(text)
        if match:
            return {"record_type": "end", "message": text, **match.groupdict()}
    elif kind in ("INIT_START", "RESTORE_START"):
        match = _RUNTIME_START.match(text)
        if match:
            fields = match.groupdict()
            return {"record_type": fields.pop("kind").lower(), "message": text, **fields}
    elif head.startswith("RequestId:"):
        match = _RUNTIME_ERROR.fullmatch(text)
        if match:
            fields = match.groupdict()
            fields["error_message"] = fields["error_message"] or fields.pop("exited")
            fields.pop("exited", None)
            return {"record_type": "runtime_error", "message": text, **fields}
    elif head.startswith("["):
        match = _PYTHON_LINE.match(text) or _PYTHON_ERROR.match(text)
        if match:
            return {"record_type": "log", **match.groupdict()}
    elif head.lstrip().startswith("{"):
        record = _json_line(text)
        if record is not None:
            return record
    if "Task timed out after" in text:
        # Only the platform's own line, whole: an application line that quotes it stays a log line.
        match = _TIMEOUT.fullmatch(text)
        if match:
            return {
                "record_type": "timeout",
                "message": text,
                "time": match["time"],
                "request_id": match["request_id"],
                "timeout_seconds": float(match["seconds"]),
            }
    match = _NODE_LINE.match(text) or _NODE_LINE_NO_LEVEL.match(text)
    if match:
        record = {"record_type": "log", **match.groupdict()}
        if record["request_id"] == "undefined":
            record["request_id"] = None
        return record
    return {"record_type": "log", "message": text}


def _field_line(text: str, kind: str) -> dict[str, Any]:
    """A REPORT, INIT_REPORT or RESTORE_REPORT line: its ``Name: value`` fields by name."""
    record: dict[str, Any] = {"record_type": _FIELD_LINES[kind], "message": text}
    for match in _FIELD.finditer(text, len(kind)):
        key = _FIELD_KEYS[match["key"]]
        record[key] = _typed(key, match["value"])
    if "status" not in record and _LAST_ALWAYS[kind] in record:
        record["status"] = "success"
    return record


def _typed(key: str, value: str) -> Any:
    """A field's value as a number where the field is one (kept as text if it is not)."""
    try:
        if key in _FLOAT_FIELDS:
            return float(value)
        if key in _INT_FIELDS:
            return int(value) if value.isascii() and value.isdigit() else float(value)
    except ValueError:
        return value
    if key == "xray_sampled":
        return {"true": True, "false": False}.get(value, value)
    return value


def _json_line(text: str) -> dict[str, Any] | None:
    """The record of a JSON object line; None when the line is not a JSON object."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    kind = obj.get("type")
    record_field = obj.get("record")
    if type(kind) is str and kind.startswith("platform.") and type(record_field) is dict:
        return _json_platform(kind, obj, record_field, text)
    message = obj.get("message")
    if message is not None and type(message) is not str:
        message = orjson.dumps(message).decode()
    return {
        "record_type": "log",
        "message": message,
        "level": _first(obj, "level", "levelname", "severity"),
        "time": _first(obj, "timestamp", "time"),
        "request_id": _first(obj, "requestId", "function_request_id", "request_id", "aws_request_id"),
        "data": obj,
    }


def _json_platform(kind: str, obj: dict[str, Any], event: dict[str, Any], text: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_type": _JSON_PLATFORM_TYPES.get(kind, kind),
        "message": text,
        "time": obj.get("time"),
        "request_id": event.get("requestId"),
        "version": event.get("version", event.get("functionVersion")),
        "status": event.get("status"),
        "error_type": event.get("errorType"),
        "phase": event.get("phase"),
        "runtime_version": event.get("runtimeVersion"),
        "runtime_version_arn": event.get("runtimeVersionArn"),
        "data": obj,
    }
    metrics = event.get("metrics")
    if type(metrics) is dict:
        for name, key in _JSON_METRICS.get(kind, {}).items():
            if name in metrics:
                record[key] = metrics[name]
    tracing = event.get("tracing")
    if type(tracing) is dict:
        record.update(_tracing(tracing))
    return record


def _tracing(tracing: dict[str, Any]) -> dict[str, Any]:
    """X-Ray fields of a Telemetry API ``TraceContext`` (``X-Amzn-Trace-Id`` header value)."""
    fields: dict[str, Any] = {"xray_segment_id": tracing.get("spanId")}
    value = tracing.get("value")
    if tracing.get("type") == "X-Amzn-Trace-Id" and type(value) is str:
        parts = {m["key"]: m["value"] for m in _TRACE_VALUE.finditer(value)}
        fields["xray_trace_id"] = parts.get("Root")
        fields["xray_sampled"] = {"1": True, "0": False}.get(parts.get("Sampled", ""))
    return fields


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None

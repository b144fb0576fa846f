"""The ``lambda`` parser: the lines an AWS Lambda function's log group holds.

Every message becomes a record with ``record_type`` and the fields below (absent fields
are NULL). Lambda's platform lines, in its text log format
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html):

``START RequestId: <id> Version: $LATEST``
    ``record_type`` ``start``, ``request_id``, ``version``.
``END RequestId: <id>``
    ``end``, ``request_id``.
``REPORT RequestId: <id>  Duration: 15.74 ms  Billed Duration: 16 ms  Memory Size: 128 MB  ...``
    ``report``, ``request_id``, ``duration_ms``, ``billed_duration_ms``, ``memory_size_mb``,
    ``max_memory_used_mb`` (``... Max Memory Used: 56 MB  Init Duration: 130.49 ms``),
    ``init_duration_ms`` (cold starts only), ``restore_duration_ms``
    and ``billed_restore_duration_ms`` (SnapStart), ``status`` and ``error_type`` (when the
    invocation failed), ``xray_trace_id``, ``xray_segment_id``, ``xray_sampled``. Fields are
    separated by tabs (or spaces); a field missing from the line is NULL.
``INIT_START Runtime Version: python:3.12.v38  Runtime Version ARN: arn:...``
    ``init_start``, ``runtime_version``, ``runtime_version_arn``.
``<time> <id> Task timed out after 3.00 seconds``
    ``timeout``, ``time``, ``request_id``, ``timeout_seconds``.

Lambda's JSON log format (``LogFormat: JSON``) writes the same platform events as JSON
(``{"time": ..., "type": "platform.report", "record": {"requestId": ..., "metrics":
{"durationMs": ...}}}``); they map to the same fields.

Application lines are ``record_type`` ``log`` with ``message`` (the text, without the
trailing newline the runtime adds) and, where the line says, ``level``, ``time`` and
``request_id``:

* the Python runtime's ``[INFO]\\t<time>\\t<request id>\\t<message>`` and its unhandled
  error lines ``[ERROR] Runtime.ImportModuleError: ...``;
* the Node.js runtime's ``<time>\\t<request id>\\tINFO\\t<message>``;
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
_REPORT_FIELD = re.compile(
    r"(?:^|\s)(?P<key>RequestId|Billed Restore Duration|Restore Duration|Billed Duration|Init Duration|"
    r"Max Memory Used|Memory Size|Duration|Status|Error Type|XRAY TraceId|SegmentId|Sampled):"
    r"[ \t]*(?P<value>[^\s]+)"
)
_REPORT_KEYS = {
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
    "XRAY TraceId": "xray_trace_id",
    "SegmentId": "xray_segment_id",
    "Sampled": "xray_sampled",
}
_FLOAT_FIELDS = {"duration_ms", "init_duration_ms", "restore_duration_ms"}
_INT_FIELDS = {"billed_duration_ms", "memory_size_mb", "max_memory_used_mb", "billed_restore_duration_ms"}
_INIT_START = re.compile(
    r"INIT_START Runtime Version:\s*(?P<runtime_version>\S+)"
    r"(?:\s+Runtime Version ARN:\s*(?P<runtime_version_arn>\S+))?"
)
_TIMEOUT = re.compile(
    r"(?:(?P<time>\d{4}-\d\d-\d\dT\S+)\s+(?P<request_id>\S+)\s+)?Task timed out after\s+"
    r"(?P<seconds>\d+(?:\.\d+)?) seconds"
)
_PYTHON_LINE = re.compile(
    r"\[(?P<level>[A-Z]+)\]\t(?P<time>[^\t]*)\t(?P<request_id>[^\t]*)\t(?P<message>.*)", re.DOTALL
)
_PYTHON_ERROR = re.compile(r"\[(?P<level>[A-Z]+)\] (?P<message>.*)", re.DOTALL)
_NODE_LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT[^\t]+)\t(?P<request_id>[^\t]*)\t(?P<level>[A-Z]+)\t(?P<message>.*)", re.DOTALL
)
_JSON_PLATFORM_TYPES = {
    "platform.start": "start",
    "platform.report": "report",
    "platform.initStart": "init_start",
    "platform.runtimeDone": "end",
}
_JSON_METRICS = {
    "durationMs": "duration_ms",
    "billedDurationMs": "billed_duration_ms",
    "memorySizeMB": "memory_size_mb",
    "maxMemoryUsedMB": "max_memory_used_mb",
    "initDurationMs": "init_duration_ms",
    "restoreDurationMs": "restore_duration_ms",
    "billedRestoreDurationMs": "billed_restore_duration_ms",
}


def parse_lambda_message(message: str) -> dict[str, Any]:
    """The record of one Lambda log message (see the module documentation)."""
    text = message.rstrip("\r\n")
    head = text[:12]
    if head.startswith("REPORT "):
        return _report(text)
    if head.startswith("START "):
        match = _START.match(text)
        if match:
            return {"record_type": "start", "message": text, **match.groupdict()}
    elif head.startswith("END "):
        match = _END.match(text)
        if match:
            return {"record_type": "end", "message": text, **match.groupdict()}
    elif head.startswith("INIT_START "):
        match = _INIT_START.match(text)
        if match:
            return {"record_type": "init_start", "message": text, **match.groupdict()}
    elif head.startswith("["):
        match = _PYTHON_LINE.match(text) or _PYTHON_ERROR.match(text)
        if match:
            return {"record_type": "log", **match.groupdict()}
    elif head.lstrip().startswith("{"):
        record = _json_line(text)
        if record is not None:
            return record
    if "Task timed out after" in text:
        match = _TIMEOUT.search(text)
        if match:
            return {
                "record_type": "timeout",
                "message": text,
                "time": match["time"],
                "request_id": match["request_id"],
                "timeout_seconds": float(match["seconds"]),
            }
    match = _NODE_LINE.match(text)
    if match:
        return {"record_type": "log", **match.groupdict()}
    return {"record_type": "log", "message": text}


def _report(text: str) -> dict[str, Any]:
    record: dict[str, Any] = {"record_type": "report", "message": text}
    for match in _REPORT_FIELD.finditer(text, len("REPORT")):
        key = _REPORT_KEYS[match["key"]]
        record[key] = _typed(key, match["value"])
    return record


def _typed(key: str, value: str) -> Any:
    """A REPORT value as a number where the field is one (kept as text if it is not)."""
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
        "version": event.get("version"),
        "status": event.get("status"),
        "error_type": event.get("errorType"),
        "runtime_version": event.get("runtimeVersion"),
        "runtime_version_arn": event.get("runtimeVersionArn"),
        "data": obj,
    }
    metrics = event.get("metrics")
    if type(metrics) is dict:
        for name, key in _JSON_METRICS.items():
            if name in metrics:
                record[key] = metrics[name]
    return record


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None

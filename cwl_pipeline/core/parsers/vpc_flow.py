"""The ``vpc_flow`` parser: VPC flow log records, default version-2 format or a custom one.

A record is a line of space-separated fields (AWS: "Each record is a string with fields
separated by spaces", https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html).
The default format is version 2's fourteen fields (:data:`DEFAULT_FIELDS`); a flow log with
a custom ``LogFormat`` lists its fields, given to the parser as ``fields`` or ``format``.

Fields become record keys with ``-`` replaced by ``_`` (``log-status`` -> ``log_status``).
A ``-`` value is NULL (AWS writes ``-`` for a field that does not apply, e.g. every address
and count of a ``NODATA`` or ``SKIPDATA`` record). Numeric fields (:data:`NUMERIC_FIELDS`)
of digits become integers; ``account-id`` and every other field stay text (an account id
may start with ``0``). Any run of whitespace separates fields. A record with another number
of fields than the format is the reject ``field_count``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cwl_pipeline.core.parsers.records import ParseFailure, RecordParser

DEFAULT_FIELDS: tuple[str, ...] = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
)
"""The version-2 default format, in order."""

NUMERIC_FIELDS = frozenset(
    {"version", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end"}
    | {"tcp_flags", "traffic_path"}
)
"""Fields (as record keys) whose digits are read as integers."""


def field_key(name: str) -> str:
    """The record key of a flow log field: ``${log-status}`` -> ``log_status``."""
    return name.strip().removeprefix("${").removesuffix("}").replace("-", "_").lower()


def vpc_flow_parser(fields: Iterable[str] = ()) -> RecordParser:
    """A parser for records of ``fields`` (the default format when empty)."""
    names = tuple(fields) or DEFAULT_FIELDS
    keys = tuple(field_key(f) for f in names)
    numeric = tuple(k in NUMERIC_FIELDS for k in keys)
    count = len(keys)
    expected = f"{count} space-separated fields ({' '.join(names)})"

    def parse(message: str) -> dict[str, Any]:
        values = message.split()
        if len(values) != count:
            raise ParseFailure("field_count", f"vpc_flow: expected {expected}, got {len(values)} field(s)")
        record: dict[str, Any] = {}
        for key, is_number, value in zip(keys, numeric, values, strict=True):
            if value == "-":
                record[key] = None
            elif is_number and value.isascii() and value.isdigit():
                record[key] = int(value)
            else:
                record[key] = value
        return record

    return parse

"""Declared table schemas: which message fields become which BigQuery columns.

A :class:`TableSchema` lists the user columns of a destination table. The pipeline adds
its own metadata columns (:data:`METADATA_COLUMNS`) to every events table, and rejected
events go to a rejects table with :data:`REJECT_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cwl_pipeline.core.parsers import ParserError, ParserSpec, parser_from_config
from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier
from cwl_pipeline.core.timestamp_formats import TimestampFormatError, check_format

ColumnType = Literal["STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "JSON"]
COLUMN_TYPES: tuple[str, ...] = ("STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "JSON")

# Where a column's value comes from: a JSON path into the message, or the event itself.
ColumnSource = Literal["message", "event_timestamp", "ingestion_time"]
COLUMN_SOURCES: tuple[str, ...] = ("message", "event_timestamp", "ingestion_time")


class SchemaError(ValueError):
    """A declared schema is invalid; the message names the offending column or key."""


@dataclass(frozen=True)
class Column:
    """One destination column.

    Attributes:
        name: BigQuery column name.
        type: BigQuery type (STRING, INT64, FLOAT64, BOOL, TIMESTAMP, JSON).
        source: ``message`` reads ``path`` from the message's record (the JSON object, or
            the fields the schema's parser made of the message); ``event_timestamp`` and
            ``ingestion_time`` take CloudWatch's own event fields.
        path: dotted path into the record (``params.user.id``); ``None`` unless
            ``source`` is ``message``.
        required: the BigQuery column is REQUIRED. A missing or null value then takes
            ``default`` if one is declared, and otherwise rejects the event.
        default: value used when the field is missing or null.
        description: column description shown in BigQuery and Dagster.
        formats: TIMESTAMP columns read from the message: the formats tried in order
            (:mod:`cwl_pipeline.core.timestamp_formats`). A column with formats is lenient
            when NULLABLE: a value none of them reads becomes NULL and counts as a parse
            warning instead of rejecting the event. Empty: numbers as ms since the epoch or
            RFC 3339 strings, and a value that is neither rejects the event.
    """

    name: str
    type: ColumnType
    source: ColumnSource = "message"
    path: tuple[str, ...] | None = None
    required: bool = False
    default: Any = None
    description: str = ""
    formats: tuple[str, ...] = ()

    @property
    def lenient(self) -> bool:
        """A value that does not parse becomes NULL plus a parse warning (not a reject)."""
        return bool(self.formats) and not self.required

    @property
    def mode(self) -> str:
        """BigQuery column mode."""
        return "REQUIRED" if self.required else "NULLABLE"


@dataclass(frozen=True)
class TableSchema:
    """The user columns of an events table, in order, and the parser their fields come from.

    ``parser`` turns each message into a record (a dict of fields); columns of source
    ``message`` pick their value from that record by ``path``.
    """

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    parser: ParserSpec = field(default_factory=ParserSpec)
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.columns:
            raise SchemaError(f"schema {self.name!r}: declares no columns")
        seen: dict[str, Column] = {}
        reserved = {c.name for c in METADATA_COLUMNS}
        for column in self.columns:
            if column.name in seen:
                raise SchemaError(f"schema {self.name!r}: column {column.name!r} declared twice")
            if column.name in reserved:
                raise SchemaError(
                    f"schema {self.name!r}: column {column.name!r} is reserved for pipeline metadata"
                )
            seen[column.name] = column
        object.__setattr__(self, "_by_name", seen)
        timestamps = [c for c in self.columns if c.source == "event_timestamp"]
        if len(timestamps) != 1 or timestamps[0].type != "TIMESTAMP":
            raise SchemaError(
                f"schema {self.name!r}: needs exactly one TIMESTAMP column with "
                "source 'event_timestamp' (the table is partitioned on it)"
            )

    @property
    def time_column(self) -> str:
        """Name of the column holding the CloudWatch event timestamp (the partition column)."""
        return next(c.name for c in self.columns if c.source == "event_timestamp")

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        return self._by_name[name]

    @property
    def column_names(self) -> list[str]:
        """User column names in declaration order."""
        return [c.name for c in self.columns]

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> TableSchema:
        """Build a schema from its config form, with clear errors for any mistake.

        ``spec`` is ``{"description": ..., "parser": ..., "columns": [{"name", "type",
        "path" | "source", "required", "default", "format", "description"}, ...]}``; ``parser``
        is a parser name or mapping (:func:`~cwl_pipeline.core.parsers.parser_from_config`),
        ``json`` when absent.
        """
        if not isinstance(spec, Mapping):
            raise SchemaError(f"schema {name!r}: must be a mapping with a 'columns' list")
        unknown = set(spec) - SCHEMA_KEYS
        if unknown:
            raise SchemaError(f"schema {name!r}: unknown key(s) {sorted(unknown)}")
        raw_columns = spec.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise SchemaError(f"schema {name!r}: 'columns' must be a non-empty list")
        try:
            parser = parser_from_config(spec.get("parser", "json"), "parser")
        except ParserError as exc:
            raise SchemaError(f"schema {name!r}: {exc}") from None
        return cls(
            name=name,
            columns=tuple(_column_from_dict(name, i, c) for i, c in enumerate(raw_columns)),
            description=str(spec.get("description", "")),
            parser=parser,
        )


SCHEMA_KEYS = {"columns", "description", "parser"}
COLUMN_KEYS = {"name", "type", "path", "source", "required", "default", "description", "format"}


def _column_from_dict(schema: str, index: int, spec: Any) -> Column:
    where = f"schema {schema!r} column #{index + 1}"
    if not isinstance(spec, Mapping):
        raise SchemaError(f"{where}: must be a mapping")
    unknown = set(spec) - COLUMN_KEYS
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {sorted(unknown)}")
    name = spec.get("name")
    try:
        check_identifier("column", name)
    except IdentifierError as exc:
        raise SchemaError(f"{where}: invalid column name: {exc}") from None
    where = f"schema {schema!r} column {name!r}"
    col_type = str(spec.get("type", "")).upper()
    if col_type not in COLUMN_TYPES:
        raise SchemaError(f"{where}: type {spec.get('type')!r} is not one of {COLUMN_TYPES}")
    source = spec.get("source", "message")
    if source not in COLUMN_SOURCES:
        raise SchemaError(f"{where}: source {source!r} is not one of {COLUMN_SOURCES}")
    path_spec = spec.get("path", name if source == "message" else None)
    if source != "message" and "path" in spec:
        raise SchemaError(f"{where}: 'path' only applies to source 'message'")
    path: tuple[str, ...] | None = None
    if path_spec is not None:
        if not isinstance(path_spec, str) or not path_spec or "" in path_spec.split("."):
            raise SchemaError(f"{where}: path {path_spec!r} must be a dotted field path")
        path = tuple(path_spec.split("."))
    if source != "message" and col_type != "TIMESTAMP":
        raise SchemaError(f"{where}: source {source!r} needs type TIMESTAMP")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise SchemaError(f"{where}: 'required' must be true or false")
    return Column(
        name=name,
        type=col_type,  # type: ignore[arg-type]
        source=source,
        path=path,
        required=required,
        default=spec.get("default"),
        description=str(spec.get("description", "")),
        formats=_formats(spec.get("format"), col_type, source, where),
    )


def _formats(spec: Any, col_type: str, source: str, where: str) -> tuple[str, ...]:
    """The validated ``format`` of a column: one format or a list of them."""
    if spec is None:
        return ()
    if col_type != "TIMESTAMP" or source != "message":
        raise SchemaError(f"{where}: 'format' only applies to TIMESTAMP columns read from the message")
    formats = [spec] if isinstance(spec, str) else spec
    if not isinstance(formats, list) or not formats:
        raise SchemaError(f"{where}: 'format' must be a format or a non-empty list of formats")
    try:
        return tuple(check_format(f) for f in formats)
    except TimestampFormatError as exc:
        raise SchemaError(f"{where}: {exc}") from None


_EVENT_ID = Column("event_id", "STRING", required=True, description="CloudWatch event id, or a derived one")
_ORIGIN = (
    Column("log_group", "STRING", required=True, description="Source log group"),
    Column("log_stream", "STRING", required=True, description="Source log stream"),
    Column("ingestion_time", "TIMESTAMP", description="When CloudWatch ingested the event"),
    Column("source_object", "STRING", description="S3 object the event came from, if any"),
)

# Columns the pipeline adds to every events table, after the user columns.
METADATA_COLUMNS: tuple[Column, ...] = (_EVENT_ID, *_ORIGIN)

# The leading columns of the rejects and raw tables: an event's key, time and origin.
EVENT_COLUMNS: tuple[Column, ...] = (
    _EVENT_ID,
    Column("timestamp", "TIMESTAMP", required=True, description="CloudWatch event timestamp"),
    *_ORIGIN,
)

# Columns of the rejects table kept beside every events table.
REJECT_COLUMNS: tuple[Column, ...] = (
    *EVENT_COLUMNS,
    Column("reason", "STRING", required=True, description="Machine-readable reject reason"),
    Column("detail", "STRING", description="Human-readable detail of the reason"),
    Column("raw_message", "STRING", description="The message as received (invalid UTF-8 escaped)"),
)

SEED_SCHEMA = TableSchema(
    name="seed",
    description="Application events: JSON messages with session_id, action and params.",
    columns=(
        Column(
            "timestamp",
            "TIMESTAMP",
            source="event_timestamp",
            required=True,
            description="CloudWatch event timestamp (UTC, millisecond precision)",
        ),
        Column(
            "session_id",
            "INT64",
            path=("session_id",),
            required=True,
            default=0,
            description="message.session_id; missing or null becomes 0",
        ),
        Column("action", "STRING", path=("action",), description="message.action"),
        Column("params", "JSON", path=("params",), description="message.params, any JSON value"),
    ),
)


def _event_time() -> Column:
    return Column(
        "timestamp",
        "TIMESTAMP",
        source="event_timestamp",
        required=True,
        description="CloudWatch event timestamp (UTC, millisecond precision)",
    )


def _fields(*specs: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, kind, path=(name,), description=text) for name, kind, text in specs)


LAMBDA_SCHEMA = TableSchema(
    name="lambda",
    description="AWS Lambda log lines: platform lines (START, END, REPORT, INIT_*, RESTORE_*, runtime "
    "errors, timeouts; text or JSON log format) typed, application lines as text or JSON (parser lambda).",
    parser=ParserSpec(type="lambda"),
    columns=(
        _event_time(),
        Column(
            "record_type",
            "STRING",
            path=("record_type",),
            required=True,
            description="start, end, report, init_start, init_report, restore_start, restore_report, "
            "runtime_error, timeout, or log (application output)",
        ),
        *_fields(
            ("request_id", "STRING", "Invocation request id"),
            ("level", "STRING", "Log level of an application line (INFO, ERROR, ...)"),
        ),
        Column(
            "logged_at",
            "TIMESTAMP",
            path=("time",),
            formats=("rfc3339", "%Y-%m-%d %H:%M:%S,%f%z", "epoch_ms"),
            description="Time written in the line (runtime or Powertools timestamp); NULL if unreadable",
        ),
        *_fields(
            ("message", "STRING", "The line's message text (the whole line for platform lines)"),
            ("duration_ms", "FLOAT64", "REPORT: Duration (ms)"),
            ("billed_duration_ms", "INT64", "REPORT: Billed Duration (ms)"),
            ("memory_size_mb", "INT64", "REPORT: Memory Size (MB)"),
            ("max_memory_used_mb", "INT64", "REPORT: Max Memory Used (MB)"),
            ("init_duration_ms", "FLOAT64", "REPORT (cold starts) or INIT_REPORT: Init Duration (ms)"),
            ("timeout_seconds", "FLOAT64", "Task timed out after N seconds: N"),
            ("status", "STRING", "REPORT, INIT_REPORT, RESTORE_REPORT: success, timeout, error or failure"),
            ("error_type", "STRING", "Error Type of a failed phase (Runtime.ExitError, ...)"),
            ("xray_trace_id", "STRING", "X-Ray trace id (REPORT XRAY TraceId, JSON tracing Root)"),
            ("data", "JSON", "The JSON object of a JSON line (Powertools, Lambda JSON logs)"),
            ("version", "STRING", "Function version (START, platform.start, platform.initStart)"),
            ("phase", "STRING", "INIT_REPORT: Phase (init, or invoke when init was retried)"),
            ("error_message", "STRING", "RequestId: ... Error: the runtime's error text"),
            ("restore_duration_ms", "FLOAT64", "SnapStart: Restore Duration (ms)"),
            ("billed_restore_duration_ms", "INT64", "SnapStart: Billed Restore Duration (ms)"),
            ("runtime_version", "STRING", "INIT_START / RESTORE_START: Runtime Version"),
            ("runtime_version_arn", "STRING", "INIT_START / RESTORE_START: Runtime Version ARN"),
            ("xray_segment_id", "STRING", "X-Ray segment id (REPORT SegmentId, JSON tracing spanId)"),
            ("xray_sampled", "BOOL", "X-Ray sampled flag (REPORT Sampled, JSON tracing Sampled=1)"),
        ),
    ),
)

VPC_FLOW_SCHEMA = TableSchema(
    name="vpc_flow",
    description="VPC flow log records in the default version-2 format (parser vpc_flow).",
    parser=ParserSpec(type="vpc_flow"),
    columns=(
        _event_time(),
        *_fields(
            ("version", "INT64", "Flow log version"),
            ("account_id", "STRING", "AWS account id of the interface's owner"),
            ("interface_id", "STRING", "Network interface id"),
            ("srcaddr", "STRING", "Source address"),
            ("dstaddr", "STRING", "Destination address"),
            ("srcport", "INT64", "Source port"),
            ("dstport", "INT64", "Destination port"),
            ("protocol", "INT64", "IANA protocol number"),
            ("packets", "INT64", "Packets in the capture window"),
            ("bytes", "INT64", "Bytes in the capture window"),
        ),
        Column("start_time", "TIMESTAMP", path=("start",), formats=("epoch_s",), description="start (s)"),
        Column("end_time", "TIMESTAMP", path=("end",), formats=("epoch_s",), description="end (s)"),
        *_fields(
            ("action", "STRING", "ACCEPT or REJECT"),
            ("log_status", "STRING", "OK, NODATA or SKIPDATA"),
        ),
    ),
)

TEXT_SCHEMA = TableSchema(
    name="text",
    description="Any log: the whole message as one STRING column (parser text).",
    parser=ParserSpec(type="text"),
    columns=(_event_time(), *_fields(("message", "STRING", "The message as written"))),
)

BUILTIN_SCHEMAS: dict[str, TableSchema] = {
    "seed": SEED_SCHEMA,
    "lambda": LAMBDA_SCHEMA,
    "vpc_flow": VPC_FLOW_SCHEMA,
    "text": TEXT_SCHEMA,
}
"""Schemas a stream or ``cwl-pipeline decode`` may name without declaring them."""

PARSER_SCHEMAS: dict[str, str] = {"json": "seed", "lambda": "lambda", "vpc_flow": "vpc_flow", "text": "text"}
"""The built-in schema a stream gets when it names a parser but no schema."""

"""Declared table schemas: which message fields become which BigQuery columns.

A :class:`TableSchema` lists the user columns of a destination table. The pipeline adds
its own metadata columns (:data:`METADATA_COLUMNS`) to every events table, and rejected
events go to a rejects table with :data:`REJECT_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier

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
        source: ``message`` reads ``path`` from the JSON message; ``event_timestamp`` and
            ``ingestion_time`` take CloudWatch's own event fields.
        path: dotted path into the message object (``params.user.id``); ``None`` unless
            ``source`` is ``message``.
        required: the BigQuery column is REQUIRED. A missing or null value then takes
            ``default`` if one is declared, and otherwise rejects the event.
        default: value used when the field is missing or null.
        description: column description shown in BigQuery and Dagster.
    """

    name: str
    type: ColumnType
    source: ColumnSource = "message"
    path: tuple[str, ...] | None = None
    required: bool = False
    default: Any = None
    description: str = ""

    @property
    def mode(self) -> str:
        """BigQuery column mode."""
        return "REQUIRED" if self.required else "NULLABLE"


@dataclass(frozen=True)
class TableSchema:
    """The user columns of an events table, in order."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
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

        ``spec`` is ``{"description": ..., "columns": [{"name", "type", "path" | "source",
        "required", "default", "description"}, ...]}``.
        """
        if not isinstance(spec, Mapping):
            raise SchemaError(f"schema {name!r}: must be a mapping with a 'columns' list")
        unknown = set(spec) - {"columns", "description"}
        if unknown:
            raise SchemaError(f"schema {name!r}: unknown key(s) {sorted(unknown)}")
        raw_columns = spec.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise SchemaError(f"schema {name!r}: 'columns' must be a non-empty list")
        return cls(
            name=name,
            columns=tuple(_column_from_dict(name, i, c) for i, c in enumerate(raw_columns)),
            description=str(spec.get("description", "")),
        )


_COLUMN_KEYS = {"name", "type", "path", "source", "required", "default", "description"}


def _column_from_dict(schema: str, index: int, spec: Any) -> Column:
    where = f"schema {schema!r} column #{index + 1}"
    if not isinstance(spec, Mapping):
        raise SchemaError(f"{where}: must be a mapping")
    unknown = set(spec) - _COLUMN_KEYS
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
    )


# Columns the pipeline adds to every events table, after the user columns.
METADATA_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "STRING", required=True, description="CloudWatch event id, or a derived one"),
    Column("log_group", "STRING", required=True, description="Source log group"),
    Column("log_stream", "STRING", required=True, description="Source log stream"),
    Column("ingestion_time", "TIMESTAMP", description="When CloudWatch ingested the event"),
    Column("source_object", "STRING", description="S3 object the event came from, if any"),
)

# Columns of the rejects table kept beside every events table.
REJECT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "STRING", required=True, description="CloudWatch event id, or a derived one"),
    Column("timestamp", "TIMESTAMP", required=True, description="CloudWatch event timestamp"),
    Column("log_group", "STRING", required=True, description="Source log group"),
    Column("log_stream", "STRING", required=True, description="Source log stream"),
    Column("ingestion_time", "TIMESTAMP", description="When CloudWatch ingested the event"),
    Column("source_object", "STRING", description="S3 object the event came from, if any"),
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

BUILTIN_SCHEMAS: dict[str, TableSchema] = {"seed": SEED_SCHEMA}

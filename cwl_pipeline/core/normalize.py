"""Normalization of decoded events to a declared table schema.

Every event ends up either as one row of the events table or as one row of the rejects
table, never both and never neither: ``events_read == rows_loaded + rows_rejected``.

Rules, per column type of the schema (a value that is missing or JSON ``null`` takes the
column's ``default`` if declared, else NULL if the column is nullable, else the event is
rejected with ``missing_required:<column>``):

``INT64``
    A JSON integer, or a string of decimal digits with an optional leading ``-``, within the
    INT64 range. Floats (even ``1.0``), bools and other strings are ``invalid_type``; values
    outside INT64 are ``out_of_range``.
``FLOAT64``
    A JSON number (not a bool) or a decimal numeric string; finite only.
``BOOL``
    JSON ``true``/``false``, or the strings ``"true"``/``"false"``.
``STRING``
    A string as is; a number or bool becomes its JSON text (``7``, ``1.5``, ``true``);
    objects and arrays are ``invalid_type``.
``TIMESTAMP``
    From a message path: a number of ms since the epoch (fractions truncated) or an RFC 3339
    string; or, when the column declares ``format``, what those formats read
    (:mod:`cwl_pipeline.core.timestamp_formats`). Source ``event_timestamp`` /
    ``ingestion_time``: CloudWatch's own fields. Values outside BigQuery's range (years
    1..9999) are ``out_of_range``. A NULLABLE column with a ``format`` is lenient: a value it
    cannot read (or out of range) is NULL, counted in :attr:`NormalizedBatch.parse_warnings`
    per column, and the event is kept; a REQUIRED one rejects the event.
``JSON``
    Any JSON value, kept as compact JSON text (``"x"`` stays the JSON string ``"x"``). JSON
    ``null`` counts as missing, so it becomes SQL NULL rather than JSON null. Integers beyond
    64 bits are kept as their nearest double (that is how they are parsed); values nested
    deeper than 254 levels are ``too_deep``.

A column's ``path`` walks nested objects; a path through a non-object counts as missing.

The schema's parser (:mod:`cwl_pipeline.core.parsers`) makes each message a record that the
paths walk. With the default ``json`` parser, messages that are not JSON objects are
rejected as a whole: ``invalid_utf8`` (bytes that
are not UTF-8, or text with unpaired surrogates), ``invalid_json`` (also NaN/Infinity, a
leading byte order mark, lone surrogate escapes, raw control characters in strings),
``too_deep`` (nested beyond orjson's 1024 levels), ``not_an_object``. A message larger than
:data:`MAX_MESSAGE_BYTES` (CloudWatch's own event limit, so only crafted input has one) is
``too_large``: its ``raw_message`` keeps the first :data:`MAX_MESSAGE_BYTES` bytes and the
``detail`` its full size. Duplicate keys: the last one wins.

Other parsers read text: a message that is not UTF-8 is ``invalid_utf8`` (except for
``text``, which keeps it with the bad bytes escaped), and each parser adds its own reasons
(``field_count`` for ``vpc_flow``, ``no_match`` for ``regex``).

Rejects keep the event's metadata, a machine-readable ``reason``, a human-readable
``detail`` and the ``raw_message`` (invalid UTF-8 escaped with backslashes). Their
``timestamp`` is clamped into BigQuery's range so that even ``out_of_range`` rejects load.
Reasons that name a column are ``<reason>:<column>``; the event's own timestamp and
ingestion time give ``out_of_range:<time column>`` and ``out_of_range:ingestion_time``.

Speed: messages are parsed with orjson in one tight loop that appends to per-column lists;
every 64k rows the lists become Arrow arrays (timestamps built from int64 milliseconds, no
``datetime`` objects), so a batch holds little as Python objects.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.timestamps import (
    BIGQUERY_MAX_MS,
    BIGQUERY_MIN_MS,
    parse_rfc3339_ms,
)
from cwl_pipeline.core.parsers import ParseFailure, RecordParser

if TYPE_CHECKING:
    import pandas as pd

from cwl_pipeline.core.schema import (
    METADATA_COLUMNS,
    REJECT_COLUMNS,
    Column,
    SchemaError,
    TableSchema,
)
from cwl_pipeline.core.timestamp_formats import timestamp_reader

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

MAX_MESSAGE_BYTES = 1_048_576
"""Largest message normalized (UTF-8 bytes): CloudWatch Logs' maximum event size, 1 MB
(256 KB until 2025). Larger ones are ``too_large`` rejects, their raw message cut to this."""

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": TIMESTAMP_TYPE,
    "JSON": pa.string(),
}
"""Arrow type of each column type; JSON columns hold compact JSON text."""

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DETAIL_VALUE_CHARS = 80


class _Rejected(Exception):
    """Raised inside the per-event loop to route the event to the rejects."""

    __slots__ = ("detail", "raw", "reason")

    def __init__(self, reason: str, detail: str, raw: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw  # the raw_message to keep, when not the whole message


class NormalizedBatch:
    """Events normalized to a schema: loadable rows and the rejected rest.

    ``rows_table`` has the schema's user columns then :data:`METADATA_COLUMNS`;
    ``rejects_table`` has :data:`REJECT_COLUMNS`. ``rows`` and ``rejects`` are the same data
    as DataFrames of ``pd.ArrowDtype`` columns, made on first use (pandas is imported only
    then). Built from the two tables; DataFrames given to the constructor are kept as they are.
    ``parse_warnings`` counts, per lenient column, the accepted rows whose value could not be
    read and was stored as NULL.
    """

    __slots__ = ("_rejects", "_rows", "parse_warnings", "rejects_table", "rows_table")

    def __init__(
        self,
        rows: pd.DataFrame | None = None,
        rejects: pd.DataFrame | None = None,
        *,
        rows_table: pa.Table,
        rejects_table: pa.Table,
        parse_warnings: dict[str, int] | None = None,
    ) -> None:
        self.rows_table = rows_table
        self.parse_warnings = parse_warnings or {}
        self.rejects_table = rejects_table
        self._rows = rows
        self._rejects = rejects

    def __repr__(self) -> str:
        return f"NormalizedBatch(rows_loaded={self.rows_loaded}, rows_rejected={self.rows_rejected})"

    @property
    def rows(self) -> pd.DataFrame:
        """The accepted rows as a DataFrame."""
        if self._rows is None:
            self._rows = _to_frame(self.rows_table)
        return self._rows

    @property
    def rejects(self) -> pd.DataFrame:
        """The rejects as a DataFrame."""
        if self._rejects is None:
            self._rejects = _to_frame(self.rejects_table)
        return self._rejects

    @property
    def rows_loaded(self) -> int:
        """Number of accepted rows."""
        return self.rows_table.num_rows

    @property
    def rows_rejected(self) -> int:
        """Number of rejected events."""
        return self.rejects_table.num_rows

    @property
    def events_read(self) -> int:
        """Number of events normalized: accepted plus rejected."""
        return self.rows_loaded + self.rows_rejected

    @property
    def reject_reasons(self) -> dict[str, int]:
        """Reject count per reason, most frequent first."""
        reasons = Counter(self.rejects_table.column("reason").to_pylist())
        return dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))


def concat_normalized(batches: Sequence[NormalizedBatch]) -> NormalizedBatch:
    """Several batches (at least one) as one: rows and rejects in order, warnings added up."""
    if len(batches) == 1:
        return batches[0]
    warnings: Counter[str] = Counter()
    for batch in batches:
        warnings.update(batch.parse_warnings)
    return NormalizedBatch(
        rows_table=pa.concat_tables([b.rows_table for b in batches]),
        rejects_table=pa.concat_tables([b.rejects_table for b in batches]),
        parse_warnings=dict(sorted(warnings.items())),
    )


def parse_warning_facts(warnings: dict[str, int]) -> dict[str, int]:
    """Parse warnings as run figures: ``parse_warnings.<column>`` -> count (none when zero)."""
    return {f"parse_warnings.{column}": count for column, count in sorted(warnings.items()) if count}


def rows_schema(schema: TableSchema) -> pa.Schema:
    """Arrow schema of the rows of ``schema``'s events table.

    REQUIRED columns are non-nullable; JSON columns carry ``bigquery_type: JSON`` metadata.
    """
    return pa.schema([arrow_field(c) for c in (*schema.columns, *METADATA_COLUMNS)])


def arrow_field(column: Column) -> pa.Field:
    """The Arrow field of a table column (JSON columns are strings marked as JSON)."""
    metadata = {"bigquery_type": "JSON"} if column.type == "JSON" else None
    return pa.field(column.name, ARROW_TYPES[column.type], nullable=not column.required, metadata=metadata)


REJECTS_SCHEMA: pa.Schema = pa.schema([arrow_field(c) for c in REJECT_COLUMNS])
"""Arrow schema of the rejects table."""


def to_arrow(batch: NormalizedBatch) -> pa.Table:
    """The accepted rows as an Arrow table (with the schema of :func:`rows_schema`)."""
    return batch.rows_table


# --- value conversion -------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is True or value is False:
        return f"bool {'true' if value else 'false'}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    kind = {int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > _DETAIL_VALUE_CHARS:
        text = text[: _DETAIL_VALUE_CHARS - 3] + "..."
    return f"{kind} {text}"


Converter = Callable[[Any], Any]


def _int64_converter(name: str) -> Converter:
    invalid = f"invalid_type:{name}"
    out_of_range = f"out_of_range:{name}"

    def convert(value: Any) -> int:
        kind = type(value)
        if kind is int:
            if INT64_MIN <= value <= INT64_MAX:
                return value
            raise _Rejected(out_of_range, f"{name}: {value} is outside the INT64 range")
        if kind is str and _INTEGER.fullmatch(value):
            # Bound the digit count before int(): huge digit strings are slow or refused.
            if len(value.lstrip("-").lstrip("0")) <= 19:
                number = int(value)
                if INT64_MIN <= number <= INT64_MAX:
                    return number
            raise _Rejected(out_of_range, f"{name}: {_describe(value)} is outside the INT64 range")
        if kind is float and value.is_integer() and abs(value) >= 2**63:
            # orjson parses integer literals beyond 64 bits as floats.
            raise _Rejected(out_of_range, f"{name}: {value!r} is outside the INT64 range")
        raise _Rejected(invalid, f"{name}: expected an integer, got {_describe(value)}")

    return convert


def _float64_converter(name: str) -> Converter:
    invalid = f"invalid_type:{name}"

    def convert(value: Any) -> float:
        kind = type(value)
        if kind is float:
            return value  # orjson never produces NaN or infinities
        if kind is int:
            return float(value)
        if kind is str and _DECIMAL.fullmatch(value):
            number = float(value)
            if math.isfinite(number):
                return number
            raise _Rejected(f"out_of_range:{name}", f"{name}: {_describe(value)} is not finite")
        raise _Rejected(invalid, f"{name}: expected a number, got {_describe(value)}")

    return convert


def _bool_converter(name: str) -> Converter:
    invalid = f"invalid_type:{name}"

    def convert(value: Any) -> bool:
        if value is True or value == "true":
            return True
        if value is False or value == "false":
            return False
        raise _Rejected(invalid, f"{name}: expected true or false, got {_describe(value)}")

    return convert


def _string_converter(name: str) -> Converter:
    invalid = f"invalid_type:{name}"
    dumps = orjson.dumps

    def convert(value: Any) -> str:
        kind = type(value)
        if kind is str:
            return value
        if kind is int or kind is float or kind is bool:
            return dumps(value).decode()
        raise _Rejected(invalid, f"{name}: expected a string or scalar, got {_describe(value)}")

    return convert


def _json_converter(name: str) -> Converter:
    dumps = orjson.dumps

    def convert(value: Any) -> str:
        try:
            # Decoding right away also releases orjson's over-allocated output buffer, which a
            # retained bytes object would keep (kilobytes per value).
            return dumps(value).decode()
        except TypeError:  # orjson.JSONEncodeError; orjson stops at 254 levels of nesting
            raise _Rejected(
                f"too_deep:{name}", f"{name}: JSON value nested more than 254 levels deep"
            ) from None

    return convert


def _timestamp_converter(name: str, formats: tuple[str, ...] = ()) -> Converter:
    invalid = f"invalid_type:{name}"
    out_of_range = f"out_of_range:{name}"
    if formats:
        read = timestamp_reader(formats)
        expected = " or ".join(formats)

        def convert_formatted(value: Any) -> int:
            ms = read(value)
            if ms is None:
                raise _Rejected(invalid, f"{name}: {_describe(value)} does not match {expected}")
            if BIGQUERY_MIN_MS <= ms <= BIGQUERY_MAX_MS:
                return ms
            raise _Rejected(out_of_range, f"{name}: {_describe(value)} is outside years 1..9999")

        return convert_formatted

    def convert(value: Any) -> int:
        kind = type(value)
        if kind is int:
            ms = value
        elif kind is float:
            ms = math.floor(value)
        elif kind is str:
            parsed = parse_rfc3339_ms(value)
            if parsed is None:
                raise _Rejected(invalid, f"{name}: {_describe(value)} is not an RFC 3339 timestamp")
            ms = parsed
        else:
            raise _Rejected(invalid, f"{name}: expected a timestamp, got {_describe(value)}")
        if BIGQUERY_MIN_MS <= ms <= BIGQUERY_MAX_MS:
            return ms
        raise _Rejected(out_of_range, f"{name}: {_describe(value)} is outside years 1..9999")

    return convert


_JSON, _STRING, _INT64, _OTHER = range(4)
_KINDS = {"JSON": _JSON, "STRING": _STRING, "INT64": _INT64}
_KINDS.update({t: _OTHER for t in ("FLOAT64", "BOOL", "TIMESTAMP")})

_CONVERTERS: dict[str, Callable[[str], Converter]] = {
    "INT64": _int64_converter,
    "FLOAT64": _float64_converter,
    "BOOL": _bool_converter,
    "STRING": _string_converter,
    "JSON": _json_converter,
    "TIMESTAMP": _timestamp_converter,
}


# --- the per-event loop -----------------------------------------------------------------


@dataclass
class _ColumnPlan:
    """How to fill one column, resolved once per batch."""

    column: Column
    convert: Converter
    missing: Any  # value used when the field is missing or null
    missing_rejection: tuple[str, str] | None  # (reason, detail) when missing rejects
    values: list[Any] = field(default_factory=list)


def _plan(column: Column, warnings: list[str]) -> _ColumnPlan:
    if column.formats:
        convert = _timestamp_converter(column.name, column.formats)
    else:
        convert = _CONVERTERS[column.type](column.name)
    if column.lenient:
        convert = _lenient(convert, column.name, warnings)
    missing: Any = None
    missing_rejection = None
    if column.default is not None:
        try:
            missing = convert(column.default)
        except _Rejected as exc:
            raise SchemaError(
                f"column {column.name!r}: default {column.default!r} is not a valid "
                f"{column.type} ({exc.detail})"
            ) from None
    elif column.required:
        missing_rejection = (
            f"missing_required:{column.name}",
            f"{column.name}: required value is missing or null",
        )
    return _ColumnPlan(column, convert, missing, missing_rejection)


def _lenient(convert: Converter, name: str, warnings: list[str]) -> Converter:
    """``convert``, with a value it refuses becoming NULL and a warning for ``name``."""
    add = warnings.append

    def lenient(value: Any) -> Any:
        try:
            return convert(value)
        except _Rejected:
            add(name)
            return None

    return lenient


def _text_message(message: Any, lossless: bool) -> str:
    """The message as text for a record parser: bytes must be UTF-8 unless not ``lossless``."""
    if type(message) is str:
        return message
    if isinstance(message, bytes):
        if not lossless:
            return message.decode("utf-8", "backslashreplace")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise _Rejected("invalid_utf8", "message is not valid UTF-8 text") from None
    raise _Rejected("invalid_json", f"message is {type(message).__name__}, not text")


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if type(obj) is not dict:
            return None
        obj = obj.get(key)
        if obj is None:
            return None
    return obj


def _parse_failure(message: Any, exc: Exception) -> _Rejected:
    text = str(exc)
    if "byte order mark" in text:
        return _Rejected("invalid_json", "message starts with a byte order mark (U+FEFF)")
    if "UTF-8" in text:
        return _Rejected("invalid_utf8", "message is not valid UTF-8 text")
    if "depth limit" in text:
        return _Rejected("too_deep", "message JSON is nested more than 1024 levels deep")
    if not isinstance(message, (str, bytes)):
        return _Rejected("invalid_json", f"message is {type(message).__name__}, not text")
    return _Rejected("invalid_json", f"message is not JSON: {text}")


def _too_large(message: str | bytes, limit: int) -> _Rejected | None:
    """The rejection of a message over ``limit`` UTF-8 bytes, or None if it is not."""
    size = len(message) if isinstance(message, bytes) else len(message.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return None
    # The start of the escaped raw text, cut at a character boundary within the limit.
    kept = _raw_text(message).encode("utf-8", "backslashreplace")[:limit].decode("utf-8", "ignore")
    return _Rejected(
        "too_large",
        f"message is {size} bytes, over the {limit}-byte limit; raw_message holds its first {limit}",
        kept,
    )


def normalize(
    events: Iterable[LogEvent], schema: TableSchema, *, max_message_bytes: int = MAX_MESSAGE_BYTES
) -> NormalizedBatch:
    """Normalize events to ``schema``'s rows, routing unusable events to the rejects.

    Never raises for bad event content; every event becomes a row or a reject (see the
    module documentation for the rules). ``events`` is consumed once, so it may be a lazy
    iterator (:func:`~cwl_pipeline.core.formats.iter_decode`), which keeps memory low.
    Messages over ``max_message_bytes`` (UTF-8) are ``too_large`` rejects.

    Raises:
        SchemaError: a column's declared default is not valid for its type.
    """
    # Lenient columns name themselves here when a value becomes NULL; counted once the
    # event is accepted.
    event_warnings: list[str] = []
    warnings: Counter[str] = Counter()
    plans = [_plan(c, event_warnings) for c in schema.columns]
    parse: RecordParser | None = schema.parser.build()
    lossless = schema.parser.type != "text"
    message_plans = [p for p in plans if p.column.source == "message"]
    ingestion_plans = [p for p in plans if p.column.source == "ingestion_time"]
    time_plan = next(p for p in plans if p.column.source == "event_timestamp")
    time_reason = f"out_of_range:{time_plan.column.name}"
    arrow_schema = rows_schema(schema)
    # Tuples unpack faster than attribute access in the loop.
    steps = [
        (
            p.column.path[0] if p.column.path and len(p.column.path) == 1 else None,
            p.column.path,
            _KINDS[p.column.type],
            p.convert,
            p.missing,
            p.missing_rejection,
            p.values.append,
        )
        for p in message_plans
    ]
    rollback = [p.values for p in (*message_plans, *ingestion_plans)]
    rows = _RowChunks(plans, arrow_schema)
    add_time = time_plan.values.append
    add_id = rows.event_ids.append
    add_ingestion = rows.ingestion_times.append
    add_run_start = rows.run_starts.append
    add_run_key = rows.run_keys.append
    rejects = _RejectLists()
    loads = orjson.loads
    dumps = orjson.dumps
    decode_error = orjson.JSONDecodeError
    lo, hi = BIGQUERY_MIN_MS, BIGQUERY_MAX_MS
    # No message of at most this many characters can exceed the limit (4 bytes a character).
    short = max_message_bytes // 4
    # Rows of the current chunk; and the (group, stream, source) of its last run of rows.
    pending = 0
    run_group = run_stream = run_source = _NO_RUN

    for event in events:
        event_id, timestamp, message, group, stream, ingestion, source = event
        try:
            if not lo <= timestamp <= hi:
                raise _Rejected(time_reason, f"event timestamp {timestamp} ms is outside years 1..9999")
            if ingestion is not None and not lo <= ingestion <= hi:
                raise _Rejected(
                    "out_of_range:ingestion_time",
                    f"ingestion time {ingestion} ms is outside years 1..9999",
                )
            if len(message) > short and (oversized := _too_large(message, max_message_bytes)):
                raise oversized
            if parse is None:
                try:
                    obj = loads(message)
                except (decode_error, TypeError) as exc:
                    raise _parse_failure(message, exc) from None
                if type(obj) is not dict:
                    raise _Rejected("not_an_object", f"message is JSON but not an object: {_describe(obj)}")
            else:
                try:
                    obj = parse(_text_message(message, lossless))
                except ParseFailure as failure:
                    raise _Rejected(failure.reason, failure.detail) from None
            for key, path, kind, convert, missing, missing_rejection, append in steps:
                value = obj.get(key) if key is not None else _dig(obj, path)
                if value is None:
                    if missing_rejection is not None:
                        raise _Rejected(*missing_rejection)
                    append(missing)
                # The common valid cases inline; everything else goes through the converter,
                # which accepts, coerces or rejects.
                elif kind == _JSON:
                    try:
                        append(dumps(value).decode())
                    except TypeError:
                        append(convert(value))
                elif (kind == _STRING and type(value) is str) or (
                    kind == _INT64 and type(value) is int and INT64_MIN <= value <= INT64_MAX
                ):
                    append(value)
                else:
                    append(convert(value))
            for plan in ingestion_plans:
                if ingestion is None:
                    if plan.missing_rejection is not None:
                        raise _Rejected(*plan.missing_rejection)
                    plan.values.append(plan.missing)
                else:
                    plan.values.append(ingestion)
        except _Rejected as rejected:
            # Undo the appends of the columns filled before the rejection.
            for values in rollback:
                del values[pending:]
            rejects.add(event, rejected)
            event_warnings.clear()
            continue
        if event_warnings:
            warnings.update(event_warnings)
            event_warnings.clear()
        add_time(timestamp)
        add_id(event_id)
        add_ingestion(ingestion)
        # Group, stream and source repeat over long runs of events (a whole envelope or
        # file): record where each run starts instead of appending them to every row.
        if group is not run_group or stream is not run_stream or source is not run_source:
            add_run_start(pending)
            add_run_key((group, stream, source))
            run_group, run_stream, run_source = group, stream, source
        pending += 1
        if pending == _CHUNK_ROWS:
            rows.flush(pending)
            pending = 0
            run_group = run_stream = run_source = _NO_RUN
    rows.flush(pending)

    rows_table = rows.table()
    rejects_table = rejects.table()
    return NormalizedBatch(
        rows_table=rows_table, rejects_table=rejects_table, parse_warnings=dict(sorted(warnings.items()))
    )


# Accepted rows are moved from Python lists to Arrow arrays every this many rows, which
# bounds the memory held as Python objects.
_CHUNK_ROWS = 65_536
_NO_RUN: Any = object()


class _RowChunks:
    """Column lists of the accepted rows, converted to Arrow record batches chunk by chunk."""

    def __init__(self, plans: list[_ColumnPlan], arrow_schema: pa.Schema) -> None:
        self.plans = plans
        self.arrow_schema = arrow_schema
        self.event_ids: list[str] = []
        self.ingestion_times: list[int | None] = []
        self.run_starts: list[int] = []
        self.run_keys: list[tuple[str, str, str | None]] = []
        self.batches: list[pa.RecordBatch] = []

    def flush(self, count: int) -> None:
        """Convert the ``count`` buffered rows into a record batch and empty the lists."""
        if not count:
            return
        metadata = {
            "event_id": _arrow_array(self.event_ids, pa.string()),
            "ingestion_time": _arrow_array(self.ingestion_times, TIMESTAMP_TYPE),
            **self._run_columns(count),
        }
        arrays = [_arrow_array(p.values, ARROW_TYPES[p.column.type]) for p in self.plans]
        arrays += [metadata[c.name] for c in METADATA_COLUMNS]
        self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema))
        # clear(), not new lists: the loop holds the lists' bound append methods.
        for plan in self.plans:
            plan.values.clear()
        self.event_ids.clear()
        self.ingestion_times.clear()
        self.run_starts.clear()
        self.run_keys.clear()

    def _run_columns(self, count: int) -> dict[str, pa.Array]:
        """Group, stream and source arrays: each run's value, repeated over its rows."""
        run_index: list[int] = []
        ends = [*self.run_starts[1:], count]
        for run, (start, end) in enumerate(zip(self.run_starts, ends, strict=True)):
            run_index += [run] * (end - start)
        take = pa.array(run_index, type=pa.int32())
        groups, streams, sources = zip(*self.run_keys, strict=True)
        return {
            "log_group": _arrow_array(groups, pa.string()).take(take),
            "log_stream": _arrow_array(streams, pa.string()).take(take),
            "source_object": _arrow_array(sources, pa.string()).take(take),
        }

    def table(self) -> pa.Table:
        """All flushed rows as one table."""
        return pa.Table.from_batches(self.batches, schema=self.arrow_schema)


class _RejectLists:
    """Column lists of the rejects table, filled one rejected event at a time."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {c.name: [] for c in REJECT_COLUMNS}

    def add(self, event: LogEvent, rejected: _Rejected) -> None:
        event_id, timestamp, message, group, stream, ingestion, source = event
        columns = self.columns
        columns["event_id"].append(event_id)
        columns["timestamp"].append(_clamp_ms(timestamp))
        columns["log_group"].append(group)
        columns["log_stream"].append(stream)
        columns["ingestion_time"].append(
            ingestion if type(ingestion) is int and BIGQUERY_MIN_MS <= ingestion <= BIGQUERY_MAX_MS else None
        )
        columns["source_object"].append(source)
        columns["reason"].append(rejected.reason)
        columns["detail"].append(rejected.detail)
        columns["raw_message"].append(rejected.raw if rejected.raw is not None else _raw_text(message))

    def table(self) -> pa.Table:
        arrays = [_arrow_array(self.columns[c.name], ARROW_TYPES[c.type]) for c in REJECT_COLUMNS]
        return pa.Table.from_arrays(arrays, schema=REJECTS_SCHEMA)


def _clamp_ms(timestamp: Any) -> int:
    if type(timestamp) is not int:
        return 0
    return min(max(timestamp, BIGQUERY_MIN_MS), BIGQUERY_MAX_MS)


def _raw_text(message: Any) -> str:
    if isinstance(message, bytes):
        return message.decode("utf-8", "backslashreplace")
    if isinstance(message, str):
        return message
    return repr(message)


def _arrow_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == TIMESTAMP_TYPE:
        # Building from int64 and casting is far faster than converting ints to timestamps.
        return pa.array(values, type=pa.int64()).cast(TIMESTAMP_TYPE)
    try:
        return pa.array(values, type=arrow_type)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        if arrow_type != pa.string():
            raise
        # Text with unpaired surrogates cannot be stored as UTF-8: escape those code points.
        return pa.array([_utf8_safe(v) for v in values], type=arrow_type)


def _utf8_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def _to_frame(table: pa.Table) -> pd.DataFrame:
    import pandas as pd  # only users of the DataFrame views pay for importing pandas

    return table.to_pandas(types_mapper=pd.ArrowDtype)

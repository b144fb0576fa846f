"""``cwl-pipeline decode``: decode delivered files and normalize them to a table schema.

Reads files in any CloudWatch Logs delivery format (``-`` reads standard input), writes the
accepted rows as NDJSON (default, to stdout) or parquet, the rejects as NDJSON, and prints a
one-line summary on stderr. Exit status: 0 when every input was readable (even with
rejects), 2 when one was not, with one error line and nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import (
    FORMATS,
    DecodeError,
    MissingArgumentError,
    iter_decode,
)
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.formats.timestamps import format_rfc3339_ms
from cwl_pipeline.core.normalize import NormalizedBatch, normalize
from cwl_pipeline.core.parsers import PARSER_TYPES, ParserError, parser_from_config
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, PARSER_SCHEMAS, SchemaError, TableSchema
from cwl_pipeline.core.sizes import parse_byte_size

PROG = "cwl-pipeline decode"

# Flags that supply what MissingArgumentError names.
_FLAGS = {"log_group": "--log-group", "log_stream": "--log-stream"}

# Metadata columns written to NDJSON only when they have a value.
_OPTIONAL_METADATA = ("ingestion_time", "source_object")


class CliError(Exception):
    """A problem reported as one ``error:`` line and exit status 2."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``decode`` sub-command."""
    parser = subparsers.add_parser(
        "decode",
        help="decode CloudWatch Logs deliveries and normalize them to a table schema",
        description="Decode CloudWatch Logs deliveries (any format, auto-detected) and "
        "normalize them to a table schema: rows to stdout or -o, rejects to --rejects.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="input files; - for stdin")
    parser.add_argument(
        "--format",
        default="auto",
        choices=("auto", *FORMATS),
        help="input format (default: detected from the content)",
    )
    parser.add_argument("--log-group", help="log group, for formats that do not carry it")
    parser.add_argument(
        "--log-stream",
        help="log stream, for formats that do not carry it (export: default from the path)",
    )
    parser.add_argument(
        "--schema",
        metavar="NAME|FILE",
        help=f"built-in schema ({', '.join(BUILTIN_SCHEMAS)}) or a YAML/JSON schema file, which may "
        "carry a parser (default: the parser's built-in schema, else seed)",
    )
    parser.add_argument(
        "--parser",
        metavar="NAME|YAML",
        help=f"parse messages with this parser ({', '.join(PARSER_TYPES)}), or a parser mapping as in "
        "the config, e.g. \"{type: regex, pattern: '^(?P<ip>\\S+) '}\" (default: the schema's parser)",
    )
    parser.add_argument("--rejects", metavar="FILE", help="write rejected events here (NDJSON)")
    parser.add_argument(
        "--output-format",
        default="ndjson",
        choices=("ndjson", "parquet"),
        help="format of the accepted rows (parquet needs -o)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write rows here, not stdout")
    parser.add_argument(
        "--max-decompressed-bytes",
        type=_byte_size,
        default=DEFAULT_MAX_DECOMPRESSED_BYTES,
        metavar="SIZE",
        help="refuse an input that decompresses to more than this (bytes, or e.g. 512MiB; default 1GiB)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``decode``; returns the exit status."""
    try:
        if args.output_format == "parquet" and not args.output:
            raise CliError("--output-format parquet needs -o FILE")
        schema = schema_with_parser(args.schema, args.parser)
        events: list[LogEvent] = []
        for path in args.paths:
            events.extend(_decode_path(path, args))
        batch = normalize(events, schema)
        _write_rows(batch, schema, args.output_format, args.output)
        if args.rejects:
            with _open_output(args.rejects) as out:
                _write_ndjson(batch.rejects_table, out, json_columns=set(), skip_nulls=set())
    except (CliError, SchemaError) as exc:  # SchemaError: a default the schema cannot hold
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(summary(len(args.paths), batch), file=sys.stderr)
    return 0


def schema_with_parser(schema_spec: str | None, parser_spec: str | None) -> TableSchema:
    """The schema of ``--schema`` with the parser of ``--parser`` (both optional)."""
    if parser_spec is None:
        return load_schema(schema_spec or "seed")
    try:
        loaded = yaml.safe_load(parser_spec) if parser_spec.lstrip().startswith("{") else parser_spec
        parser = parser_from_config(loaded, "--parser")
    except yaml.YAMLError as exc:
        raise CliError(f"--parser: not a parser name nor a YAML mapping: {_one_line(exc)}") from None
    except ParserError as exc:
        raise CliError(str(exc)) from None
    if schema_spec is None:
        if parser.type not in PARSER_SCHEMAS:
            raise CliError(f"--parser {parser.type}: give --schema FILE naming the columns its fields go to")
        schema_spec = PARSER_SCHEMAS[parser.type]
    schema = load_schema(schema_spec)
    return schema if schema.parser == parser else replace(schema, parser=parser)


def load_schema(spec: str) -> TableSchema:
    """A built-in schema by name, or the schema held by a YAML/JSON file."""
    if spec in BUILTIN_SCHEMAS:
        return BUILTIN_SCHEMAS[spec]
    path = Path(spec)
    if not path.is_file():
        raise CliError(
            f"--schema {spec!r}: neither a built-in schema ({', '.join(BUILTIN_SCHEMAS)}) nor a file"
        )
    try:
        return TableSchema.from_dict(path.stem, yaml.safe_load(path.read_text("utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{spec}: cannot read schema: {_one_line(exc)}") from None
    except SchemaError as exc:
        raise CliError(f"{spec}: {exc}") from None


def summary(files: int, batch: NormalizedBatch) -> str:
    """The one-line report printed on stderr."""
    text = (
        f"decoded {_count(files, 'file')}: {_count(batch.events_read, 'event')}, "
        f"{_count(batch.rows_loaded, 'row')}, {_count(batch.rows_rejected, 'reject')}"
    )
    if batch.reject_reasons:
        reasons = ", ".join(f"{reason}={n}" for reason, n in batch.reject_reasons.items())
        text += f" ({reasons})"
    if batch.parse_warnings:
        warnings = ", ".join(f"{column}={n}" for column, n in batch.parse_warnings.items())
        text += f"; parse warnings (values stored as NULL): {warnings}"
    return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _decode_path(path: str, args: argparse.Namespace) -> list[LogEvent]:
    data, source, mtime_ms = _read_input(path)
    label = path if source is not None else "<stdin>"
    try:
        return list(
            iter_decode(
                data,
                format=args.format,
                log_group=args.log_group,
                log_stream=args.log_stream,
                source_object=source,
                default_timestamp_ms=mtime_ms,
                max_decompressed_bytes=args.max_decompressed_bytes,
            )
        )
    except MissingArgumentError as exc:
        flag = _FLAGS.get(exc.argument)
        raise CliError(f"{label}: {exc}" + (f"; pass {flag}" if flag else "")) from None
    except DecodeError as exc:
        raise CliError(f"{label}: {exc}") from None


def _read_input(path: str) -> tuple[bytes, str | None, int]:
    """The bytes of ``path``, its source name, and the time given to ``messages`` events.

    ``messages`` lines carry no timestamp: they take the file's modification time (the
    current time for stdin).
    """
    if path == "-":
        return sys.stdin.buffer.read(), None, time.time_ns() // 1_000_000
    try:
        if os.path.isdir(path):
            raise CliError(f"{path}: is a directory")
        with open(path, "rb") as handle:
            return handle.read(), path, os.stat(handle.fileno()).st_mtime_ns // 1_000_000
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or _one_line(exc)}") from None


def _write_rows(batch: NormalizedBatch, schema: TableSchema, output_format: str, output: str | None) -> None:
    if output_format == "parquet":
        try:
            pq.write_table(batch.rows_table, output)
        except OSError as exc:
            raise CliError(f"{output}: {_one_line(exc)}") from None
        return
    json_columns = {c.name for c in schema.columns if c.type == "JSON"}
    with _open_output(output) as out:
        _write_ndjson(batch.rows_table, out, json_columns=json_columns, skip_nulls=set(_OPTIONAL_METADATA))


@contextmanager
def _open_output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or _one_line(exc)}") from None
    with handle:
        yield handle


def _write_ndjson(table: pa.Table, out: IO[str], *, json_columns: set[str], skip_nulls: set[str]) -> None:
    """One JSON object per row: timestamps as RFC 3339 UTC, JSON columns as JSON values."""
    names = table.column_names
    columns = []
    for name, column in zip(names, table.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            values = [
                None if ms is None else format_rfc3339_ms(ms) for ms in column.cast(pa.int64()).to_pylist()
            ]
        elif name in json_columns:
            values = [None if v is None else orjson.Fragment(v) for v in column.to_pylist()]
        else:
            values = column.to_pylist()
        columns.append(values)
    dumps = orjson.dumps
    for row in zip(*columns, strict=True):
        record = {
            name: value
            for name, value in zip(names, row, strict=True)
            if value is not None or name not in skip_nulls
        }
        out.write(dumps(record).decode())
        out.write("\n")


def _byte_size(text: str) -> int:
    try:
        return parse_byte_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

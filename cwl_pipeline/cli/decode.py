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
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq
import yaml

from cwl_pipeline.cli.ndjson import RenderedPart, render_ndjson, write_data, write_ndjson
from cwl_pipeline.core.formats import (
    FORMATS,
    DecodeError,
    MissingArgumentError,
)
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.normalize import NormalizedBatch, concat_normalized, normalize
from cwl_pipeline.core.parallel_decode import (
    DecodedObject,
    DecodeInput,
    decode_objects_parallel,
    iter_decode_input,
)
from cwl_pipeline.core.parsers import PARSER_TYPES, ParserError, parser_from_config
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, PARSER_SCHEMAS, SchemaError, TableSchema
from cwl_pipeline.core.sizes import parse_byte_size

PROG = "cwl-pipeline decode"

# Flags that supply what MissingArgumentError names.
_FLAGS = {"log_group": "--log-group", "log_stream": "--log-stream"}


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
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=len(os.sched_getaffinity(0)),
        metavar="N",
        help="processes decoding at once (default: the CPUs available; 1 decodes in this process)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``decode``; returns the exit status."""
    try:
        if args.output_format == "parquet" and not args.output:
            raise CliError("--output-format parquet needs -o FILE")
        schema = schema_with_parser(args.schema, args.parser)
        inputs, labels, read_error = _read_inputs(args.paths, args)
        # NDJSON parts are spooled to files by the workers; Parquet is written from Arrow.
        spooling = _spool_dir(args.output) if args.output_format == "ndjson" else nullcontext(None)
        with spooling as spool:
            outcome = _decode_all(inputs, labels, schema, args, spool)
            if read_error is not None:
                raise read_error
            outcome.write(schema, args.output_format, args.output, args.rejects)
    except (CliError, SchemaError) as exc:  # SchemaError: a default the schema cannot hold
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(outcome.summary(len(args.paths)), file=sys.stderr)
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


class Decoded:
    """The decoded pieces of every input, in order: NDJSON parts or Arrow batches."""

    def __init__(self) -> None:
        self.parts: list[RenderedPart] = []
        self.batches: list[NormalizedBatch] = []

    def add(self, result: DecodedObject) -> None:
        """Keep one input's result."""
        if result.batch is not None:
            self.batches.append(result.batch)
        self.parts.extend(result.parts)

    def write(self, schema: TableSchema, output_format: str, output: str | None, rejects: str | None) -> None:
        """Write the rows (to ``output``, stdout if None) and the rejects (to ``rejects``, if given)."""
        if output_format == "parquet":
            batch = self.batch(schema)
            try:
                pq.write_table(batch.rows_table, output)
            except OSError as exc:
                raise CliError(f"{output}: {_one_line(exc)}") from None
            if rejects:
                with _open_output(rejects) as out:
                    write_ndjson(batch.rejects_table, out, json_columns=set(), skip_nulls=set())
            return
        with _open_output(output) as out:
            for part in self.parts:
                write_data(part.rows, out)
        if rejects:
            with _open_output(rejects) as out:
                for part in self.parts:
                    write_data(part.rejects, out)

    def batch(self, schema: TableSchema) -> NormalizedBatch:
        """All inputs' rows and rejects as one batch."""
        return concat_normalized(self.batches) if self.batches else normalize((), schema)

    def summary(self, files: int) -> str:
        """The one-line report printed on stderr."""
        if self.batches:
            rows = sum(b.rows_loaded for b in self.batches)
            rejected = sum(b.rows_rejected for b in self.batches)
            counts = [b.reject_reasons for b in self.batches]
            parse = [b.parse_warnings for b in self.batches]
        else:
            rows = sum(p.rows_loaded for p in self.parts)
            rejected = sum(p.rows_rejected for p in self.parts)
            counts = [p.reject_reasons for p in self.parts]
            parse = [p.parse_warnings for p in self.parts]
        reasons: Counter[str] = Counter()
        for count in counts:
            reasons.update(count)
        warnings: Counter[str] = Counter()
        for count in parse:
            warnings.update(count)
        return summary(files, rows, rejected, dict(reasons), dict(warnings))


def summary(
    files: int, rows: int, rejects: int, reasons: dict[str, int], warnings: dict[str, int] | None = None
) -> str:
    """The one-line report printed on stderr: counts, rejects per reason (most first), and the
    parse warnings per column."""
    text = (
        f"decoded {_count(files, 'file')}: {_count(rows + rejects, 'event')}, "
        f"{_count(rows, 'row')}, {_count(rejects, 'reject')}"
    )
    if reasons:
        ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        text += " (" + ", ".join(f"{reason}={n}" for reason, n in ordered) + ")"
    if warnings:
        text += "; parse warnings (values stored as NULL): " + ", ".join(
            f"{column}={n}" for column, n in sorted(warnings.items())
        )
    return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _read_inputs(
    paths: list[str], args: argparse.Namespace
) -> tuple[list[DecodeInput], list[str], CliError | None]:
    """The inputs up to the first unreadable path, their labels, and that path's error.

    The error is reported only if every input before it decodes: as if each path were read
    and decoded in turn.
    """
    inputs: list[DecodeInput] = []
    labels: list[str] = []
    for path in paths:
        try:
            data, source, mtime_ms = _read_input(path)
        except CliError as exc:
            return inputs, labels, exc
        inputs.append(
            DecodeInput(
                data,
                source_object=source,
                format=args.format,
                log_group=args.log_group,
                log_stream=args.log_stream,
                default_timestamp_ms=mtime_ms,
                max_decompressed_bytes=args.max_decompressed_bytes,
            )
        )
        labels.append(path if source is not None else "<stdin>")
    return inputs, labels, None


def _decode_all(
    inputs: list[DecodeInput],
    labels: list[str],
    schema: TableSchema,
    args: argparse.Namespace,
    spool_dir: str | None = None,
) -> Decoded:
    """Decode and normalize every input (on ``--workers`` processes), in input order.

    Raises:
        CliError: an input is unreadable (the first one, in input order).
        SchemaError: a column default the schema cannot hold (once every input decoded).
    """
    try:
        normalize((), schema)
    except SchemaError:
        # Unreadable input is reported first, as when decoding precedes normalizing.
        for item, label in zip(inputs, labels, strict=True):
            try:
                for _ in iter_decode_input(item):
                    pass
            except DecodeError as exc:
                raise _input_error(label, exc) from None
        raise
    render = None
    if args.output_format == "ndjson":
        json_columns = frozenset(c.name for c in schema.columns if c.type == "JSON")
        render = partial(
            render_ndjson, json_columns=json_columns, with_rejects=bool(args.rejects), spool_dir=spool_dir
        )
    decoded = Decoded()
    for result in decode_objects_parallel(
        inputs, schema, workers=args.workers, render=render, start_method="fork"
    ):
        if result.error is not None:
            raise _input_error(labels[result.index], result.error)
        decoded.add(result)
    return decoded


def _input_error(label: str, exc: DecodeError) -> CliError:
    if isinstance(exc, MissingArgumentError):
        flag = _FLAGS.get(exc.argument)
        return CliError(f"{label}: {exc}" + (f"; pass {flag}" if flag else ""))
    return CliError(f"{label}: {exc}")


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


@contextmanager
def _spool_dir(output: str | None) -> Iterator[str]:
    """A temporary directory for the workers' NDJSON, next to ``output`` when it is a file.

    Workers write their parts there and send back only the names, so the output's bytes
    cross no pipe and the parent never holds them; the parent then appends the parts to
    the output in order (``sendfile``: inside the kernel).
    """
    parent = None
    if output and output != "-":
        parent = os.path.dirname(os.path.abspath(output))
    try:
        spool = tempfile.TemporaryDirectory(prefix=".cwl-decode-", dir=parent)
    except OSError:
        spool = tempfile.TemporaryDirectory(prefix="cwl-decode-")
    with spool as path:
        yield path


@contextmanager
def _open_output(path: str | None) -> Iterator[IO[bytes]]:
    if path is None or path == "-":
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = open(path, "wb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or _one_line(exc)}") from None
    with handle:
        yield handle


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _byte_size(text: str) -> int:
    try:
        return parse_byte_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

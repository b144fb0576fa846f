"""NDJSON output of an Arrow table, built column by column with Arrow compute.

Each line is the JSON object ``orjson.dumps`` would write for the row's ``{column: value}``
dict: keys in column order, timestamps as RFC 3339 UTC strings with milliseconds
(``2026-11-20T10:00:00.123Z``), JSON columns inserted as their JSON text, NULL as ``null``
(or the key left out, for the columns named in ``skip_nulls``). The text of every line is
assembled by Arrow for a whole record batch at once, so the output costs a few vectorized
passes over each column instead of a Python dict and a ``dumps`` call per row. Values that
need JSON escaping (quotes, backslashes, control characters) and floats are encoded by
orjson one by one, so the output is byte for byte what orjson writes.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cwl_pipeline.core.normalize import NormalizedBatch

OPTIONAL_METADATA = ("ingestion_time", "source_object")
"""Metadata columns written only when they have a value."""

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_QUOTE = '"'
_EMPTY = ""
_MS_PER_DAY = 86_400_000


def write_ndjson(table: pa.Table, out: IO[bytes], *, json_columns: set[str], skip_nulls: set[str]) -> None:
    """Write one JSON object per row of ``table`` to the binary stream ``out``.

    Args:
        table: the rows.
        out: where the lines go (UTF-8, ``\\n`` after every line).
        json_columns: string columns holding JSON text, written as JSON values.
        skip_nulls: columns whose key is left out of a line when the value is NULL.
    """
    for batch in table.to_batches():
        if batch.num_rows:
            lines = ndjson_lines(batch, json_columns=json_columns, skip_nulls=skip_nulls)
            out.write(_data(lines))


def ndjson_lines(batch: pa.RecordBatch, *, json_columns: set[str], skip_nulls: set[str]) -> pa.Array:
    """One string per row of ``batch``: its JSON object followed by a newline."""
    if batch.num_columns == 0:
        return pa.array(["{}\n"] * batch.num_rows, type=pa.string())
    # Every member is written as ',"key":value' (nothing for a left-out NULL), and the
    # line's first ',' becomes '{'. When the first column is always there, its part simply
    # starts with '{'; otherwise the joined members lose their first character.
    first_fixed = batch.schema.names[0] not in skip_nulls or batch.column(0).null_count == 0
    parts: list[pa.Array | pa.Scalar] = [] if first_fixed else [pa.scalar("{")]
    for index, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        lead = "{" if index == 0 and first_fixed else ","
        key = lead + orjson.dumps(name).decode() + ":"
        value = _json_values(column, is_json=name in json_columns)
        if name in skip_nulls and column.null_count:
            parts.append(pc.fill_null(pc.binary_join_element_wise(pa.scalar(key), value, _EMPTY), ""))
        else:
            parts.append(pa.scalar(key))
            parts.append(pc.fill_null(value, "null") if column.null_count else value)
    parts.append(pa.scalar("}\n"))
    lines = pc.binary_join_element_wise(*parts, _EMPTY)
    if first_fixed:
        return lines
    # "{" + ",a,b}" -> "{a,b}"; "{" + "}" (every member left out) stays "{}".
    body = pc.utf8_slice_codeunits(lines, start=1)
    starts_comma = pc.starts_with(body, ",")
    return pc.if_else(
        starts_comma,
        pc.binary_join_element_wise(pa.scalar("{"), pc.utf8_slice_codeunits(body, start=1), _EMPTY),
        lines,
    )


def _json_values(column: pa.Array, *, is_json: bool) -> pa.Array:
    """Each value's JSON text (NULL stays NULL)."""
    kind = column.type
    if is_json:
        return column.cast(pa.string())
    if pa.types.is_timestamp(kind):
        # Date and time of day as Arrow writes them (YYYY-MM-DD, HH:MM:SS.mmm): several
        # times faster than strftime.
        naive = column.cast(pa.timestamp("ms"))
        day = naive.cast(pa.date32())
        day_start = pc.multiply(day.cast(pa.int32()).cast(pa.int64()), _MS_PER_DAY)
        ms_of_day = pc.subtract(naive.cast(pa.int64()), day_start)
        time_of_day = ms_of_day.cast(pa.int32()).cast(pa.time32("ms"))
        return pc.binary_join_element_wise(
            _QUOTE, day.cast(pa.string()), "T", time_of_day.cast(pa.string()), 'Z"', _EMPTY
        )
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return column.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = column.cast(pa.string())
        quoted = pc.binary_join_element_wise(_QUOTE, column, _QUOTE, _EMPTY)
        escape = pc.fill_null(pc.match_substring_regex(column, _NEEDS_ESCAPE), False)
        if not pc.any(escape).as_py():
            return quoted
        escaped = [orjson.dumps(v).decode() for v in column.filter(escape).to_pylist()]
        return pc.replace_with_mask(quoted, escape, pa.array(escaped, type=pa.string()))
    # Floats and anything else: orjson's own text, value by value.
    dumps = orjson.dumps
    return pa.array([None if v is None else dumps(v).decode() for v in column.to_pylist()], type=pa.string())


def _data(lines: pa.Array) -> memoryview:
    """The UTF-8 bytes of a string array's values, back to back, without copying."""
    offsets = lines.buffers()[1]
    data = lines.buffers()[2]
    start = lines.offset
    view = memoryview(offsets).cast("i")
    begin, end = view[start], view[start + len(lines)]
    return memoryview(data)[begin:end]


@dataclass(frozen=True)
class SpooledFile:
    """NDJSON bytes a decoding worker wrote to a file of the spool directory."""

    path: str

    def copy_to(self, out: IO[bytes]) -> None:
        """Append the file's bytes to ``out`` (in the kernel when both are files), then delete it."""
        out.flush()
        with open(self.path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            try:
                _send(source.fileno(), out.fileno(), size)
            except (OSError, io.UnsupportedOperation):
                source.seek(0)
                shutil.copyfileobj(source, out, _COPY_CHUNK)
        os.unlink(self.path)


_COPY_CHUNK = 1 << 20


def _send(source: int, target: int, size: int) -> None:
    offset = 0
    while offset < size:
        sent = os.sendfile(target, source, offset, size - offset)
        if sent == 0:
            raise OSError("sendfile wrote nothing")
        offset += sent


NdjsonData = bytes | SpooledFile


def write_data(data: NdjsonData | None, out: IO[bytes]) -> None:
    """Append one part's NDJSON, held in memory or spooled to a file, to ``out``."""
    if isinstance(data, SpooledFile):
        data.copy_to(out)
    elif data:
        out.write(data)


@dataclass(frozen=True)
class RenderedPart:
    """One piece of decoded input as NDJSON: its rows, its rejects, and their counts."""

    rows: NdjsonData
    rejects: NdjsonData | None
    rows_loaded: int
    rows_rejected: int
    reject_reasons: dict[str, int]
    parse_warnings: dict[str, int]


def render_ndjson(
    batch: NormalizedBatch,
    *,
    json_columns: frozenset[str],
    with_rejects: bool,
    spool_dir: str | None = None,
) -> RenderedPart:
    """A batch as the NDJSON ``cwl-pipeline decode`` writes (run in the decoding worker).

    With ``spool_dir``, the NDJSON is written to new files there (what a worker process
    then sends back is their names, not their bytes); otherwise it is returned as bytes.
    """
    rows = _ndjson(batch.rows_table, set(json_columns), set(OPTIONAL_METADATA), spool_dir)
    rejects = _ndjson(batch.rejects_table, set(), set(), spool_dir) if with_rejects else None
    return RenderedPart(
        rows,
        rejects,
        batch.rows_loaded,
        batch.rows_rejected,
        batch.reject_reasons,
        batch.parse_warnings,
    )


def _ndjson(
    table: pa.Table, json_columns: set[str], skip_nulls: set[str], spool_dir: str | None
) -> NdjsonData:
    if spool_dir is None:
        out = io.BytesIO()
        write_ndjson(table, out, json_columns=json_columns, skip_nulls=skip_nulls)
        return out.getvalue()
    fd, path = tempfile.mkstemp(dir=spool_dir, suffix=".ndjson")
    with open(fd, "wb", buffering=0) as handle:
        write_ndjson(table, handle, json_columns=json_columns, skip_nulls=skip_nulls)
    return SpooledFile(path)

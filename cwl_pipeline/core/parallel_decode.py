"""Decoding and normalizing payloads on several processes, with the results of one process.

:func:`decode_objects_parallel` decodes (:func:`~cwl_pipeline.core.formats.iter_decode`) and
normalizes (:func:`~cwl_pipeline.core.normalize.normalize`) many payloads at once and yields
one :class:`DecodedObject` per payload, in the order given, holding exactly the rows,
rejects and error that the serial :func:`decode_normalize` gives for it.

Two kinds of independence are used:

* objects are independent of each other: each is a task of its own;
* a large Firehose object (gzip members back to back, one subscription envelope each) is
  cut into byte ranges, one task each. gzip has no index of its members, so a range task
  starts at the first position at or after its range that decompresses as a whole gzip
  member (header, deflate data, CRC-32 and length check), and decodes every member that
  starts inside its range, following each member to its end (past the range if need be).
  The parent then checks that the ranges' members tile the payload: each range begins
  exactly where the previous range's last member ended, from byte 0 to the end (or to zero
  padding). Only then is the object's result the ranges' results concatenated; otherwise,
  and whenever a range meets an error, the object is decoded again as one serial task,
  which gives the serial result or error word for word.

The decompression limit (``max_decompressed_bytes``) holds for the object: each range may
decompress up to the limit and the parent checks the ranges' sum, so an over-limit object
costs at most one limit per worker before it is refused.

Workers send their results as Arrow IPC streams (or whatever ``render`` makes of a batch),
not as pickled Python objects. Start-up matters for short runs: ``fork`` starts a worker
in milliseconds but copies the parent's threads' locks in whatever state they are; use
``forkserver`` (the default here) or ``spawn`` in a process that runs threads.
"""

from __future__ import annotations

import multiprocessing
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain, pairwise
from typing import Any

import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.decode import independent_members, iter_decode
from cwl_pipeline.core.formats.envelopes import decode_envelope_documents, iter_envelope_documents
from cwl_pipeline.core.formats.errors import DecodeError
from cwl_pipeline.core.formats.gzip_members import (
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    GZIP_MAGIC,
    DecompressionBudget,
    inflate_member,
)
from cwl_pipeline.core.normalize import MAX_MESSAGE_BYTES, NormalizedBatch, concat_normalized, normalize
from cwl_pipeline.core.schema import TableSchema

DEFAULT_RANGE_BYTES = 2 << 20
"""Compressed bytes per range task of a large object (2 MiB: about 50,000 events)."""

_TAIL_BYTES = 1 << 20  # bytes sent past a range's end, for its last member to end in
_MEMBER_START = GZIP_MAGIC + b"\x08"  # gzip magic and the deflate method
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class DecodeInput:
    """One payload to decode, with the arguments of :func:`~cwl_pipeline.core.formats.iter_decode`."""

    data: bytes
    source_object: str | None = None
    format: str = "auto"
    log_group: str | None = None
    log_stream: str | None = None
    default_timestamp_ms: int | None = None
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES


@dataclass
class DecodedObject:
    """What one payload decoded to: rows and rejects, or the error that made it unreadable.

    Without ``render``, ``batch`` is the payload's :class:`NormalizedBatch`. With ``render``,
    ``parts`` holds what ``render`` made of each piece of the payload, in order (one piece
    unless the payload was cut into ranges), and ``batch`` is None.
    """

    index: int
    batch: NormalizedBatch | None = None
    parts: list[Any] = field(default_factory=list)
    events_read: int = 0
    error: DecodeError | None = None


def decode_normalize(
    item: DecodeInput, schema: TableSchema, *, max_message_bytes: int = MAX_MESSAGE_BYTES
) -> NormalizedBatch:
    """Decode and normalize one payload in this process (the serial reference).

    Raises:
        DecodeError: the payload is unreadable (as :func:`iter_decode` says).
    """
    return normalize(_events(item), schema, max_message_bytes=max_message_bytes)


def decode_objects_parallel(
    items: Iterable[DecodeInput],
    schema: TableSchema,
    *,
    workers: int | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    range_bytes: int = DEFAULT_RANGE_BYTES,
    render: Callable[[NormalizedBatch], Any] | None = None,
    start_method: str = "forkserver",
    executor: Executor | None = None,
    max_pending: int | None = None,
) -> Iterator[DecodedObject]:
    """Decode and normalize payloads on ``workers`` processes; one result per payload, in order.

    Each result equals the serial :func:`decode_normalize` of its payload: the same rows and
    rejects in the same order, or the same :class:`DecodeError` (kept in ``error``, never
    raised). ``items`` is consumed lazily; at most ``max_pending`` tasks (default four per
    worker) are in flight, so memory is bounded by them and not by the number of payloads.

    Args:
        items: the payloads.
        schema: the table schema to normalize to.
        workers: worker processes (default: the CPUs this process may use). With one, or
            when there is a single task, everything runs in this process and no process
            is started.
        max_message_bytes: as for :func:`normalize`.
        range_bytes: a Firehose payload larger than this is cut into ranges of about this
            many compressed bytes.
        render: turns a piece's batch into what the caller wants back, in the worker (a
            picklable function, e.g. one writing NDJSON bytes); default: the batch itself,
            carried as Arrow IPC.
        start_method: how worker processes start (``fork``, ``forkserver``, ``spawn``).
        executor: a process pool to use instead of starting one (it is not shut down).
        max_pending: tasks in flight at most.
    """
    workers = workers or len(os.sched_getaffinity(0))
    tasks = _tasks(items, range_bytes)
    first = list(_take(tasks, 2))
    tasks = chain(first, tasks)
    pieces = sum(max(1, len(task.ranges)) for task in first)
    if executor is None and (workers <= 1 or pieces < 2):
        yield from _run_inline(tasks, schema, max_message_bytes, render)
        return
    if executor is not None:
        yield from _run_pool(executor, tasks, schema, max_message_bytes, render, max_pending or 4 * workers)
        return
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from _run_pool(pool, tasks, schema, max_message_bytes, render, max_pending or 4 * workers)


# --- tasks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """One object, or the ranges of one object (``ranges`` empty: the whole object)."""

    index: int
    item: DecodeInput
    ranges: tuple[tuple[int, int], ...] = ()


def _tasks(items: Iterable[DecodeInput], range_bytes: int) -> Iterator[_Task]:
    for index, item in enumerate(items):
        size = len(item.data)
        ranges: tuple[tuple[int, int], ...] = ()
        if size > range_bytes and independent_members(
            item.data,
            format=item.format,
            source_object=item.source_object,
            max_decompressed_bytes=item.max_decompressed_bytes,
        ):
            count = -(-size // range_bytes)
            bounds = [size * k // count for k in range(count + 1)]
            ranges = tuple(pairwise(bounds))
        yield _Task(index, item, ranges)


def _take(iterator: Iterator[_Task], count: int) -> Iterator[_Task]:
    for _ in range(count):
        task = next(iterator, None)
        if task is None:
            return
        yield task


def _whole_args(task: _Task, schema: TableSchema, mmb: int, render: Any) -> tuple[Any, ...]:
    return (task.item, schema, mmb, render)


def _range_args(
    task: _Task, start: int, stop: int, schema: TableSchema, mmb: int, render: Any
) -> tuple[Any, ...]:
    item = task.item
    size = len(item.data)
    end = min(size, stop + _TAIL_BYTES)
    piece = _Range(item.data[start:end], start, size, stop)
    # The range's bytes travel in ``piece``; the rest of the item goes without its data.
    return (piece, replace(item, data=b""), schema, mmb, render)


# --- running -----------------------------------------------------------------------------


def _run_inline(
    tasks: Iterator[_Task], schema: TableSchema, mmb: int, render: Any
) -> Iterator[DecodedObject]:
    for task in tasks:
        yield _finish(task.index, _decode_whole(task.item, schema, mmb, render), render)


def _run_pool(
    pool: Executor,
    tasks: Iterator[_Task],
    schema: TableSchema,
    mmb: int,
    render: Any,
    max_pending: int,
) -> Iterator[DecodedObject]:
    # Each entry: (task, futures of its pieces). Futures are started in task order and
    # results taken in the same order; at most ``max_pending`` futures are in flight.
    pending: deque[tuple[_Task, list[Future[Any]]]] = deque()
    in_flight = 0
    exhausted = False
    while True:
        while not exhausted and in_flight < max_pending:
            task = next(tasks, None)
            if task is None:
                exhausted = True
                break
            if task.ranges:
                futures = [
                    pool.submit(_decode_range, *_range_args(task, a, b, schema, mmb, render))
                    for a, b in task.ranges
                ]
            else:
                futures = [pool.submit(_decode_whole, *_whole_args(task, schema, mmb, render))]
            pending.append((task, futures))
            in_flight += len(futures)
        if not pending:
            return
        task, futures = pending.popleft()
        outcomes = [f.result() for f in futures]
        in_flight -= len(futures)
        if task.ranges:
            result = _join_ranges(task, outcomes)
            if result is None:  # not tiled, an error, or over the limit: decode it serially
                result = pool.submit(_decode_whole, *_whole_args(task, schema, mmb, render)).result()
        else:
            result = outcomes[0]
        yield _finish(task.index, result, render)


def _finish(index: int, result: _Result, render: Any) -> DecodedObject:
    if result.error is not None:
        return DecodedObject(index, error=result.error)
    if render is not None:
        return DecodedObject(index, parts=list(result.parts), events_read=result.events_read)
    batch = concat_normalized([_from_ipc(part) for part in result.parts])
    return DecodedObject(index, batch=batch, events_read=result.events_read)


def _join_ranges(task: _Task, outcomes: list[_RangeOutcome]) -> _Result | None:
    """The object's result from its ranges' results, or None when they do not tile it."""
    data = task.item.data
    expected = 0
    used = 0
    for outcome in outcomes:
        if outcome.failed:
            return None
        used += outcome.used
        if outcome.first is None:
            continue
        if outcome.first != expected:
            return None
        expected = outcome.end
    if expected != len(data) and data[expected:].strip(b"\x00"):
        return None
    if used > task.item.max_decompressed_bytes:
        return None
    parts = [o.part for o in outcomes if o.part is not None]
    return _Result(parts=parts, events_read=sum(o.events_read for o in outcomes))


# --- worker side -------------------------------------------------------------------------


@dataclass
class _Result:
    parts: list[Any] = field(default_factory=list)
    events_read: int = 0
    error: DecodeError | None = None


@dataclass
class _RangeOutcome:
    first: int | None = None  # where the range's first member starts (None: no member)
    end: int = 0  # where its last member ends
    used: int = 0  # bytes decompressed
    events_read: int = 0
    part: Any = None
    failed: bool = False


def iter_decode_input(item: DecodeInput) -> Iterator[LogEvent]:
    """The events of one payload, decoded lazily (:func:`iter_decode` with the item's arguments)."""
    return _events(item)


def _events(item: DecodeInput) -> Iterator[LogEvent]:
    return iter_decode(
        item.data,
        format=item.format,
        log_group=item.log_group,
        log_stream=item.log_stream,
        source_object=item.source_object,
        default_timestamp_ms=item.default_timestamp_ms,
        max_decompressed_bytes=item.max_decompressed_bytes,
    )


def _decode_whole(item: DecodeInput, schema: TableSchema, mmb: int, render: Any) -> _Result:
    """A whole payload, serially: its batch (rendered), or its error."""
    try:
        batch = normalize(_events(item), schema, max_message_bytes=mmb)
    except DecodeError as exc:
        return _Result(error=exc)
    return _Result(parts=[_render(batch, render)], events_read=batch.events_read)


def _decode_range(
    piece: _Range, item: DecodeInput, schema: TableSchema, mmb: int, render: Any
) -> _RangeOutcome:
    """The members that start inside one range of a Firehose payload."""
    budget = DecompressionBudget(item.max_decompressed_bytes)
    try:
        docs = iter_envelope_documents(piece.members(budget), gzipped=True)
        events = decode_envelope_documents(docs, source_object=item.source_object, budget=budget)
        batch = normalize(events, schema, max_message_bytes=mmb)
    except (DecodeError, _NeedMore):
        return _RangeOutcome(failed=True)
    if piece.first is None:
        return _RangeOutcome(used=budget.used)
    return _RangeOutcome(
        first=piece.first,
        end=piece.end,
        used=budget.used,
        events_read=batch.events_read,
        part=_render(batch, render),
    )


def _render(batch: NormalizedBatch, render: Any) -> Any:
    return render(batch) if render is not None else _to_ipc(batch)


def _to_ipc(batch: NormalizedBatch) -> tuple[pa.Buffer, pa.Buffer, dict[str, int]]:
    return _table_ipc(batch.rows_table), _table_ipc(batch.rejects_table), batch.parse_warnings


def _table_ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _from_ipc(part: tuple[pa.Buffer, pa.Buffer, dict[str, int]]) -> NormalizedBatch:
    rows, rejects = (pa.ipc.open_stream(buffer).read_all() for buffer in part[:2])
    return NormalizedBatch(rows_table=rows, rejects_table=rejects, parse_warnings=part[2])


class _NeedMore(Exception):
    """A member runs past the bytes sent with the range."""


class _Range:
    """Bytes of a payload from ``base`` on (to ``stop`` and a tail), and the range ``[base, stop)``.

    Positions are offsets in the whole payload of ``total`` bytes.
    """

    def __init__(self, data: bytes, base: int, total: int, stop: int) -> None:
        self.data = data
        self.base = base
        self.total = total
        self.stop = stop
        self.first: int | None = None
        self.end = base

    def members(self, budget: DecompressionBudget) -> Iterator[bytes]:
        """Decompress the members starting in the range, following the last to its end."""
        pos = self.base
        if pos > 0:
            found = self._first_member(budget)
            if found is None:
                return
            pos, member = found
            self.first = self.end = pos
            pos += self._last_size
            self.end = pos
            yield member
        else:
            self.first = 0
        view = memoryview(self.data)
        limit = self.base + len(self.data)
        while pos < self.stop and pos < self.total:
            if pos >= limit:
                raise _NeedMore
            at = pos - self.base
            if view[at : at + 2] != GZIP_MAGIC:
                if limit < self.total:
                    raise _NeedMore  # the rest must be seen whole (zero padding or not)
                if not view[at:].tobytes().strip(b"\x00"):
                    self.end = self.total
                    return
                raise DecodeError("unexpected non-gzip bytes after a gzip member")
            member = self._inflate(at, budget)
            if member is None:
                raise DecodeError("truncated gzip member")
            pos += self._last_size
            self.end = pos
            yield member

    _last_size = 0

    def _first_member(self, budget: DecompressionBudget) -> tuple[int, bytes] | None:
        """The first position in the range where a whole gzip member starts, and the member."""
        data = self.data
        at = 0
        while True:
            at = data.find(_MEMBER_START, at)
            if at < 0 or self.base + at >= self.stop:
                return None
            used = budget.used
            try:
                member = self._inflate(at, budget)
            except DecodeError:
                member = None
                if budget.used > budget.limit:
                    raise
            if member is not None:
                return self.base + at, member
            budget.used = used  # a false start costs nothing
            at += 1

    def _inflate(self, at: int, budget: DecompressionBudget) -> bytes | None:
        """The member starting at ``at`` (index in ``data``), or None when it never ends.

        Raises:
            DecodeError: corrupt data, or over the budget.
            _NeedMore: the member runs past the bytes at hand, and the payload goes on.
        """
        try:
            member, pos, ended = inflate_member(memoryview(self.data), at, budget)
        except zlib.error as exc:
            raise DecodeError(f"corrupt gzip data: {exc}") from None
        if not ended:
            if self.base + len(self.data) < self.total:
                raise _NeedMore
            return None
        self._last_size = pos - at
        return member

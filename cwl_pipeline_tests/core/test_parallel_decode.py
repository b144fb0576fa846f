"""Parallel decoding gives exactly the serial rows, rejects and errors (real worker processes)."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

import pytest

from cwl_pipeline.core.formats import DecodeError
from cwl_pipeline.core.parallel_decode import (
    DecodeInput,
    _decode_range,
    _join_ranges,
    _range_args,
    _tasks,
    decode_normalize,
    decode_objects_parallel,
)
from cwl_pipeline.core.schema import SEED_SCHEMA

T0 = 1_795_168_800_000


def _message(rng: random.Random, i: int) -> str:
    roll = rng.random()
    if roll < 0.05:
        return "plain text line"
    if roll < 0.1:
        return json.dumps({"session_id": "not a number", "action": "x"})
    return json.dumps({"session_id": i + 1, "action": "click", "params": {"n": i, "q": 'a"b\\c\n'}})


def envelope(start: int, count: int, rng: random.Random, stream: str = "web-1") -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/app/web",
        "logStream": stream,
        "subscriptionFilters": ["f"],
        "logEvents": [
            {"id": str(10**20 + start + k), "timestamp": T0 + start + k, "message": _message(rng, start + k)}
            for k in range(count)
        ],
    }


def members(count: int, per_member: int = 40, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [
        gzip.compress(json.dumps(envelope(m * per_member, per_member, rng, f"web-{m % 3}")).encode())
        for m in range(count)
    ]


def serial(item: DecodeInput) -> tuple[Any, Any]:
    """The serial outcome: (rows, rejects) tables, or the error's type and text."""
    try:
        batch = decode_normalize(item, SEED_SCHEMA)
    except DecodeError as exc:
        return type(exc), str(exc)
    return batch.rows_table, batch.rejects_table


def parallel(items: list[DecodeInput], **kwargs: Any) -> list[tuple[Any, Any]]:
    kwargs.setdefault("workers", 2)
    kwargs.setdefault("range_bytes", 4096)
    kwargs.setdefault("start_method", "fork")
    out = []
    for result in decode_objects_parallel(items, SEED_SCHEMA, **kwargs):
        if result.error is not None:
            out.append((type(result.error), str(result.error)))
        else:
            out.append((result.batch.rows_table, result.batch.rejects_table))
    return out


def assert_same(got: tuple[Any, Any], expected: tuple[Any, Any]) -> None:
    if isinstance(expected[0], type):
        assert got == expected
        return
    assert got[0].equals(expected[0]) and got[1].equals(expected[1])
    assert got[0].num_rows > 0 or expected[0].num_rows == 0


def test_ranges_of_a_firehose_object_tile_it_and_match_serial():
    data = b"".join(members(60))
    item = DecodeInput(data, source_object="s3://b/k.gz")
    (task,) = _tasks([item], 4096)
    assert len(task.ranges) > 4
    outcomes = [_decode_range(*_range_args(task, a, b, SEED_SCHEMA, 1 << 20, None)) for a, b in task.ranges]
    assert _join_ranges(task, outcomes) is not None  # no fallback to serial decoding
    (got,) = parallel([item])
    expected = serial(item)
    assert_same(got, expected)
    assert expected[0].num_rows + expected[1].num_rows == 60 * 40


def test_a_range_task_carries_its_range_not_the_whole_object():
    """Each range task is pickled to a worker: it must not take the object's bytes along."""
    import pickle

    data = b"".join(members(200))
    (task,) = _tasks([DecodeInput(data, source_object="k.gz")], 4096)
    assert len(data) > 100_000 and len(task.ranges) > 20
    for a, b in task.ranges:
        args = _range_args(task, a, b, SEED_SCHEMA, 1 << 20, None)
        piece = args[0]
        assert piece.data == data[a : a + len(piece.data)]
        # Beyond the range's own bytes (and its tail), only the schema and small arguments.
        assert len(pickle.dumps(args)) - len(piece.data) < 20_000


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_corrupt_member_gives_the_serial_error(where):
    parts = members(30)
    index = {"first": 0, "middle": 15, "last": 29}[where]
    bad = bytearray(parts[index])
    bad[len(bad) // 2] ^= 0xFF  # deflate data or CRC no longer match
    parts[index] = bytes(bad)
    item = DecodeInput(b"".join(parts), source_object="k.gz")
    expected = serial(item)
    assert expected[0] is DecodeError
    assert parallel([item]) == [expected]


def test_truncated_object_and_trailing_bytes_give_the_serial_errors():
    data = b"".join(members(30))
    for payload in (data[:-7], data + b"garbage", data + b"\x00" * 100):
        item = DecodeInput(payload, source_object="k.gz")
        (got,) = parallel([item])
        assert_same(got, serial(item))


def test_one_huge_member_and_a_huge_member_among_small_ones():
    rng = random.Random(5)
    # Random text does not compress: this member is larger than what a range task is sent.
    noise = [json.dumps({"session_id": i, "action": rng.randbytes(600).hex()}) for i in range(3000)]
    doc = envelope(0, 0, rng)
    doc["logEvents"] = [{"id": str(i), "timestamp": T0 + i, "message": m} for i, m in enumerate(noise)]
    huge = gzip.compress(json.dumps(doc).encode())
    assert len(huge) > 2 << 20
    small = members(10)
    for payload in (huge, b"".join([*small[:5], huge, *small[5:]])):
        item = DecodeInput(payload, source_object="k.gz")
        (got,) = parallel([item], range_bytes=256 * 1024)
        assert_same(got, serial(item))


def test_decompression_limit_holds_for_the_whole_object():
    data = b"".join(members(40))
    decompressed = sum(len(gzip.decompress(m)) for m in members(40))
    item = DecodeInput(data, source_object="k.gz", max_decompressed_bytes=decompressed - 1)
    expected = serial(item)
    assert expected[0] is DecodeError and "max_decompressed_bytes" in expected[1]
    assert parallel([item]) == [expected]


def test_many_objects_keep_their_order_errors_and_formats():
    api = json.dumps({"events": [{"eventId": "e1", "timestamp": T0, "message": '{"session_id": 1}'}]})
    items = [
        DecodeInput(b"".join(members(20, seed=1)), source_object="a.gz"),
        DecodeInput(b"not a delivery", source_object="b"),
        DecodeInput(api.encode(), log_group="/g", log_stream="s"),
        DecodeInput(members(1)[0], source_object="c.gz"),
        DecodeInput(b"", source_object="empty"),
        DecodeInput(b"hello\nworld\n", format="messages", log_group="/g"),  # no stream: an error
    ]
    expected = [serial(item) for item in items]
    got = parallel(items, max_pending=2)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


def test_forkserver_workers_and_rendered_parts():
    data = b"".join(members(30))
    item = DecodeInput(data, source_object="k.gz")
    (result,) = decode_objects_parallel(
        [item], SEED_SCHEMA, workers=2, range_bytes=4096, start_method="forkserver", render=_row_count
    )
    rows, rejects = serial(item)
    assert len(result.parts) > 1
    assert sum(result.parts) == rows.num_rows
    assert result.events_read == rows.num_rows + rejects.num_rows


def _row_count(batch: Any) -> int:
    return batch.rows_loaded

"""The hostile corpus through the pure core, in every delivery format it fits.

Each message case becomes a row with the expected values or a reject with the expected reason
and its raw message; each broken payload yields its events or one DecodeError. No other
exception escapes, counts reconcile, and memory stays bounded for the bomb and the big cases.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cwl_pipeline.core.formats import DecodeError, decode_bytes, iter_decode
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.normalize import NormalizedBatch, normalize
from cwl_pipeline.core.schema import SEED_SCHEMA
from cwl_pipeline_tests.hostile.corpus import (
    CARRIERS,
    GROUP,
    STREAM,
    MessageCase,
    case_by_id,
    gzip_bomb,
    message_cases,
    payload,
    payload_cases,
)
from cwl_pipeline_tests.hostile.outcomes import (
    describe_mismatch,
    expected_rejects,
    expected_rows,
)

CASES = message_cases()
MiB = 1 << 20


def decode(data: bytes, fmt: str, max_bytes: int | None = None):
    """decode_bytes with every piece of context a format may need."""
    extra = {} if max_bytes is None else {"max_decompressed_bytes": max_bytes}
    return decode_bytes(
        data,
        format=fmt,
        log_group=GROUP,
        log_stream=STREAM,
        source_object="hostile/object",
        default_timestamp_ms=1_795_168_800_000,
        **extra,
    )


def outcome(batch: NormalizedBatch) -> tuple[list, list]:
    rows = list(
        zip(
            batch.rows_table.column("session_id").to_pylist(),
            batch.rows_table.column("action").to_pylist(),
            batch.rows_table.column("params").to_pylist(),
            strict=True,
        )
    )
    rejects = list(
        zip(
            batch.rejects_table.column("reason").to_pylist(),
            batch.rejects_table.column("raw_message").to_pylist(),
            strict=True,
        )
    )
    return rows, rejects


def assert_outcome(batch: NormalizedBatch, cases: list[MessageCase], carrier: str) -> None:
    rows, rejects = outcome(batch)
    assert batch.events_read == len(cases) == batch.rows_loaded + batch.rows_rejected
    assert rows == expected_rows(cases), describe_mismatch(rows, expected_rows(cases))
    want = expected_rejects(cases, carrier)
    assert rejects == want, describe_mismatch(rejects, want)


@pytest.mark.parametrize(
    ("case", "carrier"),
    [pytest.param(c, f, id=f"{c.id}-{f}") for c in CASES for f in c.carriers()],
)
def test_each_message_case_in_each_format(case, carrier):
    # A well-formed event first: a leading byte order mark of a file is not part of a message.
    cases = [case_by_id("plain_object"), case]
    data, fmt = payload(carrier, cases)
    assert_outcome(normalize(decode(data, fmt), SEED_SCHEMA), cases, carrier)


@pytest.mark.parametrize("carrier", CARRIERS)
def test_whole_corpus_in_one_payload(carrier):
    """All cases side by side: none disturbs its neighbours."""
    cases = [c for c in CASES if carrier in c.carriers()]
    data, fmt = payload(carrier, [case_by_id("plain_object"), *cases])
    events = iter_decode(data, format=fmt, log_group=GROUP, log_stream=STREAM, default_timestamp_ms=0)
    assert_outcome(normalize(events, SEED_SCHEMA), [case_by_id("plain_object"), *cases], carrier)


@pytest.mark.parametrize("case", payload_cases(), ids=lambda c: c.id)
def test_each_broken_payload(case):
    data = case.build()
    if case.error is not None:
        with pytest.raises(DecodeError) as info:
            decode(data, case.format, case.max_decompressed_bytes)
        assert case.error in str(info.value)
        assert "\n" not in str(info.value)
        return
    events = decode(data, case.format, case.max_decompressed_bytes)
    assert len(events) == case.events
    batch = normalize(events, SEED_SCHEMA)
    assert batch.events_read == case.events


def test_default_limit_is_one_gibibyte():
    assert DEFAULT_MAX_DECOMPRESSED_BYTES == 1 << 30


def _peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_gigabyte_bomb_stops_at_the_limit_with_bounded_memory():
    """1 GiB of zeros (about 1 MiB compressed) against a 64 MiB limit: the error comes once
    64 MiB are out, and Python never holds much more than twice that."""
    bomb = gzip_bomb(1 << 30)

    def run() -> None:
        with pytest.raises(DecodeError, match="decompressed size exceeds 67108864 bytes"):
            decode(bomb, "firehose", 64 * MiB)

    assert _peak(run) < 2 * 64 * MiB + 8 * MiB


@pytest.mark.parametrize("case_id", ["one_megabyte_plus", "two_megabytes_text", "many_columns"])
def test_big_messages_normalize_in_bounded_memory(case_id):
    """Peak allocation stays within a small multiple of the message size (at most 2 MiB)."""
    cases = [case_by_id(case_id)]
    data, fmt = payload("firehose", cases)
    events = decode(data, fmt)
    batch: list[NormalizedBatch] = []
    assert _peak(lambda: batch.append(normalize(events, SEED_SCHEMA))) < 24 * MiB
    assert_outcome(batch[0], cases, "firehose")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(carrier=st.sampled_from(CARRIERS), cut=st.floats(0, 1), flip=st.integers(0, 255))
def test_damaged_corpus_payloads_decode_or_raise_decode_error(carrier, cut, flip):
    """Any corpus payload cut short or with one byte changed: events or one DecodeError."""
    cases = [c for c in CASES if carrier in c.carriers() and len(c.message) < 5000][:12]
    data, fmt = payload(carrier, cases)
    position = int(cut * (len(data) - 1))
    damaged = [data[:position], data[:position] + bytes([flip]) + data[position + 1 :]]
    for variant in damaged:
        try:
            events = decode(variant, fmt)
        except DecodeError:
            continue
        batch = normalize(events, SEED_SCHEMA)
        assert batch.events_read == len(events)

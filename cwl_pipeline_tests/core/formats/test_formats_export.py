"""CreateExportTask files: gzip text lines, stream from the key, derived ids."""

from __future__ import annotations

import gzip

import pytest

from cwl_pipeline.core.formats import (
    DecodeError,
    MissingArgumentError,
    decode_bytes,
    detect_format,
    stream_from_export_key,
)
from cwl_pipeline.core.formats.timestamps import parse_rfc3339_ms

TASK = "0f3c7a52-4b9e-4d1a-9c55-2e8f6b1d7a90"

EXPORT_TEXT = (
    '2026-11-20T10:00:02.000Z {"session_id":3}\n'
    "2026-11-20T10:00:00.123Z ERROR request failed\n"
    "Traceback (most recent call last):\n"
    '  File "app.py", line 1, in <module>\n'
    "ValueError: boom\n"
    '2026-11-20T10:00:01.500Z {"session_id":2}\n'
)


def ms(text: str) -> int:
    value = parse_rfc3339_ms(text)
    assert value is not None
    return value


def test_export_lines_multiline_messages_and_out_of_order(aws):
    key = aws.export_key("web-1")
    events = decode_bytes(aws.export_file(EXPORT_TEXT), log_group="/app", source_object=key)
    assert [(e.timestamp_ms, e.message) for e in events] == [
        (ms("2026-11-20T10:00:02Z"), '{"session_id":3}'),
        (
            ms("2026-11-20T10:00:00.123Z"),
            "ERROR request failed\nTraceback (most recent call last):\n"
            '  File "app.py", line 1, in <module>\nValueError: boom',
        ),
        (ms("2026-11-20T10:00:01.5Z"), '{"session_id":2}'),
    ]
    assert {(e.log_group, e.log_stream, e.source_object) for e in events} == {("/app", "web-1", key)}
    assert all(e.event_id.startswith("d-") and e.ingestion_time_ms is None for e in events)


def test_export_detection_and_ids_are_stable(aws):
    data = aws.export_file(EXPORT_TEXT)
    assert detect_format(data) == "export"
    first = decode_bytes(data, log_group="/app", source_object=aws.export_key("s"))
    again = decode_bytes(data, log_group="/app", source_object=aws.export_key("s"))
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_export_ids_do_not_depend_on_line_order(aws):
    lines = EXPORT_TEXT.splitlines()
    reordered = "\n".join([*lines[5:], *lines[1:5], lines[0]]) + "\n"
    a = decode_bytes(aws.export_file(EXPORT_TEXT), log_group="/g", log_stream="s")
    b = decode_bytes(aws.export_file(reordered), log_group="/g", log_stream="s")
    assert {(e.event_id, e.message) for e in a} == {(e.event_id, e.message) for e in b}


def test_duplicate_lines_stay_distinct(aws):
    text = "2026-11-20T10:00:00.000Z same\n" * 3
    events = decode_bytes(aws.export_file(text), log_group="/g", log_stream="s")
    assert len({e.event_id for e in events}) == 3


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-20T10:00:00.000Z", "2026-11-20T10:00:00Z"),
        ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
        ("2026-11-20T10:00:00.1Z", "2026-11-20T10:00:00.100Z"),
        ("2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00.123Z"),
        ("2026-11-20T10:00:00.123+00:00", "2026-11-20T10:00:00.123Z"),
        ("2026-11-20T12:00:00.000+02:00", "2026-11-20T10:00:00Z"),
        ("2026-11-20T05:30:00.000-04:30", "2026-11-20T10:00:00Z"),
    ],
)
def test_export_timestamp_precisions_and_offsets(aws, stamp, expected):
    events = decode_bytes(aws.export_file(f"{stamp} hello\n"), log_group="/g", log_stream="s")
    assert [(e.timestamp_ms, e.message) for e in events] == [(ms(expected), "hello")]


def test_moto_layout_without_trailing_newline(aws):
    text = "2026-11-20T10:00:00.000Z a\n2026-11-20T10:00:01.000Z b"
    events = decode_bytes(aws.export_file(text), log_group="/g", log_stream="s")
    assert [e.message for e in events] == ["a", "b"]


def test_invalid_utf8_line_keeps_its_bytes():
    raw = (
        b"2026-11-20T10:00:00.000Z ok\n"
        b"2026-11-20T10:00:01.000Z bad \xff\xfe\n"
        b"continued \xc3\xa9\n"
        b"2026-11-20T10:00:02.000Z caf\xc3\xa9\n"
    )
    events = decode_bytes(gzip.compress(raw), log_group="/g", log_stream="s")
    assert [e.message for e in events] == ["ok", b"bad \xff\xfe\ncontinued \xc3\xa9", "café"]


def test_plain_text_export_is_accepted(aws):
    events = decode_bytes(b"2026-11-20T10:00:00.000Z plain\n", log_group="/g", log_stream="s")
    assert [e.message for e in events] == ["plain"]


def test_export_needs_a_log_group(aws):
    with pytest.raises(MissingArgumentError) as info:
        decode_bytes(aws.export_file(EXPORT_TEXT), source_object=aws.export_key("s"))
    assert info.value.argument == "log_group"


def test_export_without_key_or_stream(aws):
    with pytest.raises(MissingArgumentError) as info:
        decode_bytes(aws.export_file(EXPORT_TEXT), log_group="/g")
    assert info.value.argument == "log_stream"


def test_forced_export_of_text_without_timestamp_is_an_error():
    with pytest.raises(DecodeError, match="line 1 does not start with a timestamp"):
        decode_bytes(b"no timestamp here\n", format="export", log_group="/g", log_stream="s")


@pytest.mark.parametrize(
    ("key", "stream"),
    [
        (f"exports/{TASK}/web-1/000000.gz", "web-1"),
        (f"exports/{TASK}/web-1/000001.gz", "web-1"),
        (f"{TASK}/web-1/000000.gz", "web-1"),
        (f"/{TASK}/web-1/000000.gz", "web-1"),  # moto with an empty prefix
        (f"a/b/c/{TASK}/2026/11/20/[$LATEST]0123abcd/000000.gz", "2026/11/20/[$LATEST]0123abcd"),
        (f"exports/{TASK}/{TASK.upper()}/000000.gz", TASK.upper()),  # a stream named by a UUID
        ("exports/plain/web-1/000000.gz", "web-1"),  # no task id: the parent folder
        ("web-1/000000.gz", "web-1"),
    ],
)
def test_stream_from_export_key(key, stream):
    assert stream_from_export_key(key) == stream


def test_stream_from_export_key_with_prefix():
    key = "exports/run-7/t-1/ecs/app/abc/000000.gz"
    assert stream_from_export_key(key, prefix="exports/run-7") == "ecs/app/abc"
    assert stream_from_export_key(key, prefix="exports/run-7/") == "ecs/app/abc"
    assert stream_from_export_key(f"{TASK}/s/000000.gz", prefix="") == "s"


@pytest.mark.parametrize("key", ["000000.gz", f"exports/{TASK}/000000.gz"])
def test_key_without_stream_segment(key):
    with pytest.raises(MissingArgumentError, match="cannot find the log stream"):
        stream_from_export_key(key)


def test_key_outside_prefix():
    with pytest.raises(DecodeError, match="not under prefix"):
        stream_from_export_key(f"other/{TASK}/s/000000.gz", prefix="exports")

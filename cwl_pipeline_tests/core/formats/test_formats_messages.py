"""One raw message per line: Firehose with message extraction, plain log files."""

from __future__ import annotations

import gzip

import pytest

from cwl_pipeline.core.formats import DecodeError, MissingArgumentError, decode_bytes

T = 1_795_168_800_000
ARGS = {"format": "messages", "log_group": "/app", "log_stream": "firehose-1", "default_timestamp_ms": T}


def test_extracted_messages_one_event_per_line():
    data = b'{"session_id":1}\n{"session_id":2}\nplain text\n'
    events = decode_bytes(data, source_object="s3://b/x", **ARGS)
    assert [e.message for e in events] == ['{"session_id":1}', '{"session_id":2}', "plain text"]
    assert {(e.log_group, e.log_stream, e.timestamp_ms, e.source_object) for e in events} == {
        ("/app", "firehose-1", T, "s3://b/x")
    }
    assert all(e.event_id.startswith("d-") for e in events)


def test_gzip_compressed_messages_and_blank_lines():
    data = gzip.compress(b"a\n\nb\n\n")
    assert [e.message for e in decode_bytes(data, **ARGS)] == ["a", "b"]


def test_duplicate_messages_get_distinct_stable_ids():
    data = b"same\nsame\nsame\n"
    ids = [e.event_id for e in decode_bytes(data, **ARGS)]
    assert len(set(ids)) == 3
    assert ids == [e.event_id for e in decode_bytes(data, **ARGS)]


def test_invalid_utf8_line_is_kept_as_bytes():
    events = decode_bytes(b"ok\n\xff\xfe oops\n", **ARGS)
    assert [e.message for e in events] == ["ok", b"\xff\xfe oops"]


@pytest.mark.parametrize(
    ("missing", "argument"),
    [
        ("log_group", "log_group"),
        ("log_stream", "log_stream"),
        ("default_timestamp_ms", "default_timestamp_ms"),
    ],
)
def test_messages_need_their_context(missing, argument):
    args = {k: v for k, v in ARGS.items() if k != missing}
    with pytest.raises(MissingArgumentError) as info:
        decode_bytes(b"a\n", **args)
    assert info.value.argument == argument


def test_plain_text_is_not_detected():
    with pytest.raises(DecodeError, match="cannot detect format; pass --format"):
        decode_bytes(b"just some text\n", log_group="/app", log_stream="s")

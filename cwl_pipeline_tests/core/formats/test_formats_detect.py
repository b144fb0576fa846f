"""Format detection and the errors of decode_bytes."""

from __future__ import annotations

import gzip
import json

import pytest

from cwl_pipeline.core.formats import FORMATS, DecodeError, decode_bytes, detect_format


def test_detection_table(aws):
    envelope = aws.envelope(aws.log_events(["a"]))
    export = aws.export_file("2026-11-20T10:00:00.000Z a\n")
    cases = {
        "gzip envelope": (aws.gz(envelope), "subscription"),
        "lambda event": (aws.lambda_event(envelope), "subscription"),
        "envelope json": (aws.compact(envelope), "subscription"),
        "firehose members": (aws.firehose_object([envelope, envelope]), "firehose"),
        "firehose ndjson": (aws.compact(envelope) + b"\n" + aws.compact(envelope), "firehose"),
        "filter response": (b'{"events": [{"timestamp": 1, "message": "m"}]}', "events"),
        "event list": (b'[{"timestamp": 1, "message": "m"}]', "events"),
        "export gzip": (export, "export"),
        "export plain": (gzip.decompress(export), "export"),
        "bom and whitespace": (b"\xef\xbb\xbf \n" + aws.compact(envelope), "subscription"),
    }
    assert {name: detect_format(data) for name, (data, _) in cases.items()} == {
        name: fmt for name, (_, fmt) in cases.items()
    }


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"hello world\n", "cannot detect format; pass --format"),
        (b'{"some": "object"}', "not a known CloudWatch Logs format"),
        (b"[1, 2, 3]", "not a known CloudWatch Logs format"),
        (b'{"broken": ', "looks like JSON"),
        (b"", "empty"),
        (gzip.compress(b"plain text inside gzip"), "cannot detect format"),
        (gzip.compress(b"x")[:-3], "truncated gzip"),
    ],
)
def test_detection_errors(data, match):
    with pytest.raises(DecodeError, match=match):
        detect_format(data)


@pytest.mark.parametrize("data", [b"", b"  \n\t ", gzip.compress(b""), gzip.compress(b"") * 3])
@pytest.mark.parametrize("fmt", ["auto", *FORMATS])
def test_empty_input_yields_no_events(data, fmt):
    assert decode_bytes(data, format=fmt) == []


def test_unknown_format_name():
    with pytest.raises(DecodeError, match="unknown format 'xml'"):
        decode_bytes(b"x", format="xml")


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b'{"events": []}', "subscription"),
        (b'{"messageType": "DATA_MESSAGE"}', "firehose"),
        (b"[]", "subscription"),
        (b"2026-11-20T10:00:00Z x", "events"),
        (b'{"awslogs": {"data": ""}}', "subscription"),
    ],
)
def test_structurally_wrong_input_for_forced_format(data, fmt):
    with pytest.raises(DecodeError):
        decode_bytes(data, format=fmt, log_group="/g", log_stream="s")


def test_decode_error_messages_are_one_line(aws):
    bad_inputs = [
        aws.gz(aws.envelope(aws.log_events(["a"])))[:-4],
        b'{"x": 1}\n{"y": ',
        json.dumps({"events": [{"timestamp": "x"}]}).encode(),
        b"\x1f\x8b garbage",
    ]
    for data in bad_inputs:
        with pytest.raises(DecodeError) as info:
            decode_bytes(data, log_group="/g")
        assert "\n" not in str(info.value) and str(info.value)


def test_byte_order_mark_is_ignored(aws):
    bom = b"\xef\xbb\xbf"
    envelope = aws.compact(aws.envelope(aws.log_events(["a"])))
    assert [e.message for e in decode_bytes(bom + envelope + b"\n" + envelope)] == ["a", "a"]
    export = bom + b"2026-11-20T10:00:00.000Z x\n"
    assert [e.message for e in decode_bytes(export, log_group="/g", log_stream="s")] == ["x"]
    messages = decode_bytes(
        bom + b"m\n", format="messages", log_group="/g", log_stream="s", default_timestamp_ms=0
    )
    assert [e.message for e in messages] == ["m"]

"""Subscription and Firehose deliveries: envelopes in every layout AWS produces."""

from __future__ import annotations

import gzip
import json

import pytest

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import DecodeError, decode_bytes, detect_format, iter_decode


def test_gzip_envelope_decodes_every_event_with_envelope_context(aws):
    envelope = aws.envelope(aws.log_events(['{"session_id":1}', "plain text"]))
    events = decode_bytes(aws.gz(envelope), source_object="s3://b/k")
    assert events == [
        LogEvent(aws.event_id(0), aws.t0, '{"session_id":1}', aws.group, aws.stream, None, "s3://b/k"),
        LogEvent(aws.event_id(1), aws.t0 + 1, "plain text", aws.group, aws.stream, None, "s3://b/k"),
    ]


def test_lambda_event_is_unwrapped(aws):
    envelope = aws.envelope(aws.log_events(["a", "b", "c"]))
    data = aws.lambda_event(envelope)
    assert detect_format(data) == "subscription"
    assert [e.message for e in decode_bytes(data)] == ["a", "b", "c"]


def test_decompressed_envelope_json_decodes(aws):
    envelope = aws.envelope(aws.log_events(["x"]))
    assert detect_format(aws.compact(envelope)) == "subscription"
    assert [e.event_id for e in decode_bytes(aws.compact(envelope))] == [aws.event_id(0)]


def test_integer_event_ids_are_carried_as_strings(aws):
    events = [{"id": 7, "timestamp": aws.t0, "message": "m"}, {"id": 8, "timestamp": aws.t0, "message": "n"}]
    decoded = decode_bytes(aws.gz(aws.envelope(events)))
    assert [e.event_id for e in decoded] == ["7", "8"]
    assert all(type(e.event_id) is str for e in decoded)


def test_control_message_yields_nothing(aws):
    control = aws.envelope([], message_type="CONTROL_MESSAGE")
    assert decode_bytes(aws.gz(control)) == []
    assert decode_bytes(aws.lambda_event(control)) == []


def test_firehose_concatenated_gzip_members(aws):
    envelopes = [
        aws.envelope([], message_type="CONTROL_MESSAGE"),
        aws.envelope(aws.log_events(["a", "b"]), stream="s1"),
        aws.envelope(aws.log_events(["c"], start=2), group="/other", stream="s2"),
    ]
    data = aws.firehose_object(envelopes)
    assert detect_format(data) == "firehose"
    events = decode_bytes(data, source_object="firehose/2026/11/20/10/obj")
    assert [(e.message, e.log_group, e.log_stream) for e in events] == [
        ("a", aws.group, "s1"),
        ("b", aws.group, "s1"),
        ("c", "/other", "s2"),
    ]
    assert {e.source_object for e in events} == {"firehose/2026/11/20/10/obj"}


def test_single_member_firehose_object_is_named_by_its_key(aws):
    data = aws.gz(aws.envelope(aws.log_events(["a"])))
    key = "logs/2026/11/20/10/to-s3-1-2026-11-20-10-05-01-5c3b1a9e-1d2c-4b5a-8f7e-0a1b2c3d4e5f"
    assert detect_format(data, key) == "firehose"
    assert detect_format(data, "lambda-payload.gz") == "subscription"


def test_firehose_decompressed_newline_delimited(aws):
    lines = [aws.compact(aws.envelope(aws.log_events([m], start=i))) for i, m in enumerate("abc")]
    data = b"\n".join(lines) + b"\n"
    assert detect_format(data) == "firehose"
    assert [e.message for e in decode_bytes(data)] == ["a", "b", "c"]


def test_firehose_decompressed_concatenated_without_delimiter(aws):
    docs = [aws.envelope(aws.log_events([m], start=i)) for i, m in enumerate("abc")]
    # Messages containing braces and newlines must not confuse the document boundaries.
    docs[1]["logEvents"][0]["message"] = 'tricky }{ "\n" }'
    data = b"".join(aws.compact(d) for d in docs)
    assert [e.message for e in decode_bytes(data, format="firehose")] == [
        "a",
        'tricky }{ "\n" }',
        "c",
    ]


def test_mixed_newlines_and_concatenation(aws):
    docs = [aws.compact(aws.envelope(aws.log_events([m], start=i))) for i, m in enumerate("abcd")]
    data = docs[0] + docs[1] + b"\n" + docs[2] + b"\n\n" + docs[3]
    assert [e.message for e in decode_bytes(data, format="firehose")] == list("abcd")


def test_pretty_printed_envelopes(aws):
    docs = [json.dumps(aws.envelope(aws.log_events([m], start=i)), indent=2) for i, m in enumerate("ab")]
    data = "\n".join(docs).encode()
    assert [e.message for e in decode_bytes(data, format="subscription")] == ["a", "b"]


def test_subscription_and_firehose_decode_identically(aws):
    data = aws.firehose_object([aws.envelope(aws.log_events(["a", "b"]))] * 2)
    assert decode_bytes(data, format="subscription") == decode_bytes(data, format="firehose")


def test_zero_padding_after_last_member_is_ignored(aws):
    data = aws.gz(aws.envelope(aws.log_events(["a"]))) + b"\x00" * 16
    assert [e.message for e in decode_bytes(data)] == ["a"]


def test_iter_decode_is_lazy_over_members(aws):
    data = aws.firehose_object([aws.envelope(aws.log_events([str(i)], start=i)) for i in range(50)])
    events = iter_decode(data)
    assert next(events).message == "0"
    assert sum(1 for _ in events) == 49


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda env: env.pop("logEvents"), "no 'logEvents' list"),
        (lambda env: env.update(logGroup=5), "no logGroup/logStream"),
        (lambda env: env.update(messageType="SOMETHING"), "unknown messageType"),
        (lambda env: env["logEvents"][1].pop("timestamp"), r"logEvents\[1\]"),
        (lambda env: env["logEvents"][0].update(message=5), r"logEvents\[0\]"),
        (lambda env: env["logEvents"][0].update(id=1.5), r"logEvents\[0\]"),
        (lambda env: env["logEvents"][1].update(timestamp="1"), r"logEvents\[1\]"),
        (lambda env: env["logEvents"].append("not an object"), r"logEvents\[2\]"),
    ],
)
def test_malformed_envelopes_are_decode_errors(aws, mutate, match):
    envelope = aws.envelope(aws.log_events(["a", "b"]))
    mutate(envelope)
    with pytest.raises(DecodeError, match=match):
        decode_bytes(aws.gz(envelope), format="subscription")


@pytest.mark.parametrize(
    "data",
    [
        b'{"awslogs": {"data": "!!! not base64 !!!"}}',
        b'{"awslogs": {"data": 5}}',
        b'{"awslogs": "x"}',
    ],
)
def test_broken_lambda_events_are_decode_errors(data):
    with pytest.raises(DecodeError):
        decode_bytes(data)


def test_truncated_member_is_a_decode_error(aws):
    data = aws.firehose_object([aws.envelope(aws.log_events(["a"]))] * 3)
    with pytest.raises(DecodeError, match="truncated gzip data: member 3"):
        decode_bytes(data[:-10])


def test_corrupt_member_is_a_decode_error(aws):
    member = bytearray(aws.gz(aws.envelope(aws.log_events(["a" * 200]))))
    member[20:30] = b"\xff" * 10
    with pytest.raises(DecodeError, match=r"corrupt gzip data|truncated"):
        decode_bytes(bytes(member))


def test_garbage_after_member_is_a_decode_error(aws):
    with pytest.raises(DecodeError, match="non-gzip bytes after gzip member 1"):
        decode_bytes(aws.gz(aws.envelope(aws.log_events(["a"]))) + b"garbage")


def test_envelope_member_that_is_not_json_is_a_decode_error(aws):
    data = aws.gz(aws.envelope(aws.log_events(["a"]))) + gzip.compress(b"not json at all")
    with pytest.raises(DecodeError, match="gzip member 2"):
        decode_bytes(data, format="firehose")

"""Kinesis Data Streams consumer events, and the clearer errors for look-alike inputs."""

from __future__ import annotations

import base64
import zlib

import pytest

from cwl_pipeline.core.formats import DecodeError, decode_bytes, detect_format
from cwl_pipeline.core.formats.envelopes import is_zlib


def kinesis_record(data: bytes, sequence: int) -> dict:
    """One record of a Lambda Kinesis event (fields as AWS documents them)."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "a1b2c3",
            "sequenceNumber": f"4959{sequence:052d}",
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1795168801.25,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:4959{sequence:052d}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/cwl-logs",
    }


def test_every_record_envelope_is_decoded_in_order(aws):
    first = aws.envelope(aws.log_events(["START RequestId: 1 Version: $LATEST", "hello\tworld"]))
    control = aws.envelope([], message_type="CONTROL_MESSAGE")
    second = aws.envelope(aws.log_events(["END RequestId: 1"], start=2), stream="other")
    event = aws.compact(
        {"Records": [kinesis_record(aws.gz(e), i) for i, e in enumerate((first, control, second))]}
    )
    assert detect_format(event) == "kinesis"
    events = decode_bytes(event)
    assert [(e.message, e.log_stream) for e in events] == [
        ("START RequestId: 1 Version: $LATEST", aws.stream),
        ("hello\tworld", aws.stream),
        ("END RequestId: 1", "other"),
    ]
    assert events == decode_bytes(event, format="kinesis")
    assert events == decode_bytes(aws.gz(event))  # a gzip-compressed copy of the event file


def test_zlib_data_says_what_it_is(aws):
    envelope = aws.compact(aws.envelope(aws.log_events(["x"])))
    squeezed = zlib.compress(envelope)
    assert is_zlib(squeezed) and not is_zlib(aws.gz(envelope)) and not is_zlib(envelope)
    lambda_event = aws.compact({"awslogs": {"data": base64.b64encode(squeezed).decode()}})
    with pytest.raises(DecodeError, match=r"awslogs.data\): is zlib-compressed .*not gzip"):
        decode_bytes(lambda_event)
    kinesis_event = aws.compact({"Records": [kinesis_record(squeezed, 0)]})
    with pytest.raises(DecodeError, match=r"Records\[0\] \(kinesis.data\): is zlib-compressed"):
        decode_bytes(kinesis_event)


@pytest.mark.parametrize(
    ("records", "error"),
    [
        ([{"eventSource": "aws:s3", "s3": {}}], "aws:s3"),
        ("not a list", "'Records' is not a list"),
        ([{"kinesis": {"data": "%%%"}}], "not valid base64"),
        ([{"kinesis": {"data": ""}}], "'kinesis.data' is empty"),
        ([{"kinesis": {}}], "no string 'data'"),
    ],
)
def test_records_that_are_not_kinesis_log_data_are_errors(aws, records, error):
    with pytest.raises(DecodeError, match=error):
        decode_bytes(aws.compact({"Records": records}), format="kinesis")


def test_an_s3_event_is_not_detected_as_kinesis(aws):
    with pytest.raises(DecodeError, match="aws:s3 whose records are not Kinesis records"):
        detect_format(aws.compact({"Records": [{"eventSource": "aws:s3", "s3": {}}]}))


def test_the_export_write_test_object_is_named():
    with pytest.raises(DecodeError, match="aws-logs-write-test object CreateExportTask writes"):
        decode_bytes(b"Permission Check Successful", log_group="/g")

"""Routing split and Firehose error records, without I/O."""

import base64
import gzip
import json

from cwl_pipeline.config import Route
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS
from cwl_pipeline.firehose.error_records import decode_error_object, error_reason
from cwl_pipeline.firehose.routes import DEFAULT_ROUTE, Destination, Router, route_batch, split_contents
from cwl_pipeline.s3_objects.batch import ObjectContent

SEED = BUILTIN_SCHEMAS["seed"]
ROUTES = [
    Route(name="api", table="t_api", schema=SEED, log_group_prefixes=("/app/api/",)),
    Route(name="fn", table="t_fn", schema=SEED, pattern=r"/aws/lambda/.*"),
    Route(name="pay", table="t_pay", schema=SEED, log_groups=("/app/api/pay",)),  # shadowed by "api"
]


def event(event_id: str, group: str) -> LogEvent:
    return LogEvent(
        event_id, 1_700_000_000_000, '{"session_id": 1, "action": "a"}', group, "s", None, "s3://b/k"
    )


def test_first_matching_route_takes_a_group_and_the_rest_is_unrouted():
    router = Router(ROUTES)
    assert router.route_of("/app/api/pay") == "api"
    assert router.route_of("/aws/lambda/resize") == "fn"
    assert router.route_of("/aws/lambda") == DEFAULT_ROUTE  # the pattern must match the whole name
    assert router.route_of("/other") == DEFAULT_ROUTE


def test_an_object_is_split_once_and_its_bytes_counted_once():
    content = ObjectContent(
        "s3://b/k",
        0,
        [event("1", "/app/api/x"), event("2", "/other"), event("3", "/app/api/y")],
        size=100,
    )
    parts = split_contents([content], Router(ROUTES), ["api", "fn", "pay", DEFAULT_ROUTE])
    assert [[e.event_id for e in c.events] for c in parts["api"]] == [["1", "3"]]
    assert [[e.event_id for e in c.events] for c in parts[DEFAULT_ROUTE]] == [["2"]]
    assert parts["fn"] == [] and parts["pay"] == []
    assert sum(c.size for cs in parts.values() for c in cs) == 100
    unreadable = ObjectContent("s3://b/bad", 0, error="truncated gzip")
    assert Router(ROUTES).split(unreadable) == {DEFAULT_ROUTE: unreadable}


def test_unrouted_events_become_rejects_and_duplicates_are_dropped():
    content = ObjectContent("s3://b/k", 0, [event("9", "/other"), event("9", "/other")])
    batch = route_batch([content], Destination(DEFAULT_ROUTE, "t", SEED, rejects_all=True))
    rejects = batch.batch.rejects_table.to_pylist()
    assert [(r["reason"], r["log_group"]) for r in rejects] == [("unrouted", "/other")]
    assert (batch.records_decoded, batch.rows_loaded, batch.rows_rejected, batch.duplicates_dropped) == (
        2,
        0,
        1,
        1,
    )


def test_error_records_are_rejects_with_their_reason_and_raw_record():
    envelope = {
        "logGroup": "/app/api/x",
        "logStream": "s1",
        "logEvents": [{"id": "1", "timestamp": 5, "message": "m"}],
    }
    record = {
        "attemptsMade": 1,
        "arrivalTimestamp": 1_700_000_000_123,
        "ErrorCode": "DataFormatConversion.MalformedData",
        "ErrorMessage": "bad",
        "rawData": base64.b64encode(gzip.compress(json.dumps(envelope).encode())).decode(),
    }
    data = gzip.compress((json.dumps(record) + "\nnot json\n").encode())
    out = decode_error_object(data, uri="s3://b/e", timestamp_ms=1, error_type="format-conversion-failed")
    rows = out.rejects.to_pylist()
    assert out.records == 2
    assert (
        rows[0]["reason"] == error_reason("format-conversion-failed") == "firehose_format_conversion_failed"
    )
    assert (rows[0]["log_group"], rows[0]["log_stream"]) == ("/app/api/x", "s1")
    assert rows[0]["detail"] == "DataFormatConversion.MalformedData: bad (attempts: 1)"
    assert json.loads(rows[0]["raw_message"]) == envelope
    assert rows[1]["detail"] == "not a Firehose error record" and rows[1]["raw_message"] == "not json"
    assert rows[0]["event_id"] != rows[1]["event_id"]
    assert (
        decode_error_object(b"\x1f\x8bbroken", uri="s3://b/e", timestamp_ms=1, error_type=None).records == 1
    )

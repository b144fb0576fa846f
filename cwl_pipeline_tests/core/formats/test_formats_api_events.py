"""FilterLogEvents / GetLogEvents event lists, from the API or saved as JSON."""

from __future__ import annotations

import json

import pytest

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import (
    DecodeError,
    MissingArgumentError,
    decode_bytes,
    detect_format,
    events_from_api,
)
from cwl_pipeline.core.identity import DerivedEventIds

FILTER_EVENTS = [
    {
        "logStreamName": "web-1",
        "timestamp": 1_795_168_800_000,
        "message": '{"session_id":1}',
        "ingestionTime": 1_795_168_800_150,
        "eventId": "37" + "0" * 54,
    },
    {
        "logStreamName": "web-2",
        "timestamp": 1_795_168_800_001,
        "message": "text",
        "ingestionTime": 1_795_168_800_151,
        "eventId": "38" + "0" * 54,
    },
]
GET_EVENTS = [
    {"timestamp": 1_795_168_800_000, "message": "same", "ingestionTime": 1_795_168_800_100},
    {"timestamp": 1_795_168_800_000, "message": "same", "ingestionTime": 1_795_168_800_100},
    {"timestamp": 1_795_168_800_005, "message": "other", "ingestionTime": 1_795_168_800_100},
]


def test_filter_log_events_keep_ids_streams_and_ingestion_time():
    events = list(events_from_api(FILTER_EVENTS, log_group="/app", source_object="poll"))
    assert events == [
        LogEvent(
            "37" + "0" * 54, 1_795_168_800_000, '{"session_id":1}', "/app", "web-1", 1_795_168_800_150, "poll"
        ),
        LogEvent("38" + "0" * 54, 1_795_168_800_001, "text", "/app", "web-2", 1_795_168_800_151, "poll"),
    ]


def test_get_log_events_take_the_stream_argument_and_derive_ids():
    events = list(events_from_api(GET_EVENTS, "/app", "web-9"))
    assert {e.log_stream for e in events} == {"web-9"}
    ids = [e.event_id for e in events]
    assert all(i.startswith("d-") for i in ids)
    assert len(set(ids)) == 3, "identical events keep distinct ids"
    assert ids == [e.event_id for e in events_from_api(GET_EVENTS, "/app", "web-9")]


def test_shared_id_numbering_across_pages():
    ids = DerivedEventIds()
    page1 = list(events_from_api(GET_EVENTS[:1], "/app", "s", ids=ids))
    page2 = list(events_from_api(GET_EVENTS[1:2], "/app", "s", ids=ids))
    assert page1[0].event_id != page2[0].event_id


def test_get_log_events_without_stream_is_missing_argument():
    with pytest.raises(MissingArgumentError) as info:
        list(events_from_api(GET_EVENTS, "/app"))
    assert info.value.argument == "log_stream"


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ({"timestamp": "1", "message": "m", "logStreamName": "s"}, "integer 'timestamp'"),
        ({"timestamp": True, "message": "m", "logStreamName": "s"}, "integer 'timestamp'"),
        ({"timestamp": 1, "message": None, "logStreamName": "s"}, "string 'message'"),
        ({"timestamp": 1, "message": "m", "logStreamName": "s", "ingestionTime": "x"}, "ingestionTime"),
        ({"timestamp": 1, "message": "m", "logStreamName": "s", "eventId": ["x"]}, "eventId"),
        ("not a dict", "not an object"),
    ],
)
def test_malformed_api_events(event, match):
    with pytest.raises(DecodeError, match=match):
        list(events_from_api([event], "/app"))


def test_filter_response_json_file():
    response = {"events": FILTER_EVENTS, "searchedLogStreams": [], "nextToken": "t"}
    data = json.dumps(response).encode()
    assert detect_format(data) == "events"
    events = decode_bytes(data, log_group="/app", source_object="resp.json")
    assert [e.event_id for e in events] == [FILTER_EVENTS[0]["eventId"], FILTER_EVENTS[1]["eventId"]]
    assert {e.source_object for e in events} == {"resp.json"}


def test_bare_event_list_and_get_response():
    assert detect_format(json.dumps(GET_EVENTS).encode()) == "events"
    response = {"events": GET_EVENTS, "nextForwardToken": "f/1", "nextBackwardToken": "b/1"}
    events = decode_bytes(json.dumps(response).encode(), log_group="/app", log_stream="web-9")
    assert [e.message for e in events] == ["same", "same", "other"]


def test_events_need_a_log_group():
    data = json.dumps({"events": FILTER_EVENTS}).encode()
    with pytest.raises(MissingArgumentError) as info:
        decode_bytes(data)
    assert info.value.argument == "log_group"


def test_event_log_group_name_wins_over_argument():
    event = dict(FILTER_EVENTS[0], logGroupName="/own")
    assert decode_bytes(json.dumps([event]).encode(), log_group="/arg")[0].log_group == "/own"


def test_empty_event_lists_yield_nothing():
    assert decode_bytes(b'{"events": []}') == []
    assert decode_bytes(b"[]") == []


def test_ndjson_of_responses():
    pages = [{"events": FILTER_EVENTS[:1]}, {"events": FILTER_EVENTS[1:]}]
    data = b"\n".join(json.dumps(p).encode() for p in pages)
    events = decode_bytes(data, format="events", log_group="/app")
    assert [e.log_stream for e in events] == ["web-1", "web-2"]


def test_events_document_of_wrong_shape():
    with pytest.raises(DecodeError, match="neither an API response"):
        decode_bytes(b'{"events": 5}', format="events", log_group="/app")

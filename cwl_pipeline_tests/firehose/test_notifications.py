"""S3 event notifications as SQS delivers them: direct, through SNS, through EventBridge."""

import json

import pytest

from cwl_pipeline.firehose.notifications import NotificationError, ObjectEvent, parse_notification

KEY = "fh/111122223333/2026/11/30/10/fleet-1-2026-11-30-10-05-00-x y+z"


def s3_record(key: str, name: str = "ObjectCreated:Put", bucket: str = "logs") -> dict:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-30T10:06:01.123Z",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "e"}},
    }


def test_a_direct_notification_decodes_its_url_encoded_keys():
    # S3 encodes keys as a form does: a space is "+", a "+" is "%2B".
    body = json.dumps(
        {"Records": [s3_record("fh/111122223333/2026/11/30/10/fleet-1-2026-11-30-10-05-00-x+y%2Bz")]}
    )
    assert parse_notification(body) == [
        ObjectEvent("logs", KEY, "ObjectCreated:Put", "2026-11-30T10:06:01.123Z")
    ]


def test_through_sns_and_eventbridge_and_the_test_event():
    direct = json.dumps({"Records": [s3_record("a%2Fb")]})
    sns = json.dumps({"Type": "Notification", "MessageId": "m", "Message": direct})
    assert [e.key for e in parse_notification(sns)] == ["a/b"]
    bridge = {
        "detail-type": "Object Created",
        "time": "2026-11-30T10:06:01Z",
        "detail": {"bucket": {"name": "logs"}, "object": {"key": "a b"}},
    }
    (event,) = parse_notification(json.dumps(bridge))
    assert (event.key, event.created) == ("a b", True)
    assert parse_notification(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


def test_removals_are_not_creations():
    (event,) = parse_notification(json.dumps({"Records": [s3_record("k", name="ObjectRemoved:Delete")]}))
    assert not event.created


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"hello": 1}', "no Records, Event, detail or SNS Message"),
        ('{"Records": [{"s3": {"bucket": {}}}]}', "without s3.bucket.name"),
        ('{"detail-type": "Object Created", "detail": {}}', "EventBridge event without"),
    ],
)
def test_anything_else_is_a_clear_error(body, message):
    with pytest.raises(NotificationError, match=message):
        parse_notification(body)

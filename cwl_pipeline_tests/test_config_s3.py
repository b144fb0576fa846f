"""Validation of S3 stream sources."""

from __future__ import annotations

import pytest

from cwl_pipeline.config import ConfigError, S3Source, parse_config


def config(source: str) -> dict:
    import yaml

    return yaml.safe_load(
        f"""
bigquery: {{project: cwl-local, dataset: d}}
streams:
  - name: s
    source: {source}
    start: "2026-01-01T00:00:00Z"
"""
    )


def test_firehose_and_export_sources_parse_with_defaults():
    fh = parse_config(config("{type: s3, bucket: b-1, layout: firehose}")).streams[0].source
    assert fh == S3Source(bucket="b-1", prefix="", layout="firehose", record_format="envelopes_gzip")
    ex = parse_config(config("{type: s3, bucket: b-1, layout: export, log_group: /g}")).streams[0].source
    assert (ex.prefix, ex.log_group) == ("exportedlogs", "/g")
    msg = "{type: s3, bucket: b-1, layout: firehose, record_format: messages, log_group: /g, log_stream: w/1}"
    assert parse_config(config(msg)).streams[0].source.log_stream == "w/1"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{type: s3, bucket: B_1, layout: firehose}", "streams.s.source.bucket"),
        ('{type: s3, bucket: "b-1\\n", layout: firehose}', "streams.s.source.bucket"),
        ("{type: s3, bucket: b-1, layout: tar}", "streams.s.source.layout"),
        ("{type: s3, bucket: b-1, layout: firehose, record_format: csv}", "streams.s.source.record_format"),
        (
            "{type: s3, bucket: b-1, layout: export}",
            "streams.s.source.log_group: required with layout 'export'",
        ),
        ("{type: s3, bucket: b-1, layout: firehose, record_format: messages}", "record_format 'messages'"),
        ("{type: s3, bucket: b-1, layout: export, log_group: /g, record_format: messages}", "only applies"),
        ("{type: s3, bucket: b-1, layout: firehose, log_stream: x}", "streams.s.source.log_stream"),
        ("{type: s3, bucket: b-1, layout: firehose, prefix: /abs}", "streams.s.source.prefix"),
        ("{type: s3, bucket: b-1, layout: firehose, log_groups: [/g]}", "unknown key(s) ['log_groups']"),
    ],
)
def test_invalid_s3_sources_name_the_key(source, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        parse_config(config(source))


def test_notifications_name_a_queue_and_a_safety_listing():
    from datetime import timedelta

    from cwl_pipeline.config import S3Notifications

    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/cwl-fleet-objects"
    source = (
        parse_config(
            config(f"{{type: s3, bucket: b-1, layout: firehose, notifications: {{queue_url: '{url}'}}}}")
        )
        .streams[0]
        .source
    )
    assert source.notifications == S3Notifications(queue_url=url, safety_listing=timedelta(minutes=5))
    quick = (
        parse_config(
            config(
                f"{{type: s3, bucket: b-1, layout: firehose, "
                f"notifications: {{queue_url: '{url}', safety_listing: 90s}}}}"
            )
        )
        .streams[0]
        .source
    )
    assert quick.notifications.safety_listing == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("notifications", "message"),
    [
        ("{queue_url: cwl-fleet}", r"notifications\.queue_url: 'cwl-fleet' must be an SQS queue URL"),
        ("{}", r"notifications\.queue_url: None must be an SQS queue URL"),
        (
            "{queue_url: 'http://q/1/q', safety_listing: 2h}",
            r"notifications\.safety_listing: must be from 1s",
        ),
        ("{queue_url: 'http://q/1/q', every: 1m}", r"notifications"),
    ],
)
def test_invalid_notifications_name_the_key(notifications, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(config(f"{{type: s3, bucket: b-1, layout: firehose, notifications: {notifications}}}"))


def test_notifications_are_for_firehose_layouts_only():
    with pytest.raises(ConfigError, match=r"notifications: only applies to layout 'firehose'"):
        parse_config(
            config(
                "{type: s3, bucket: b-1, layout: export, log_group: /g, notifications: {queue_url: 'http://q/1/q'}}"
            )
        )

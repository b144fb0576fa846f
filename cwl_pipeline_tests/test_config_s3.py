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

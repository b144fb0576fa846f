"""Config of a polling stream's history reader: validated, with the key in every message."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cwl_pipeline.config import BUNDLED_CONFIG, ConfigError, HistorySource, load_config, parse_config
from cwl_pipeline_tests.test_config import BASE, with_stream

HISTORY = {"after": "1d", "bucket": "cwl-exports", "prefix": "app-history/"}


def test_history_section_is_parsed():
    stream = parse_config(with_stream(history=HISTORY)).streams[0]
    assert stream.history == HistorySource(
        bucket="cwl-exports", prefix="app-history", after=timedelta(days=1)
    )
    assert parse_config(BASE).streams[0].history is None


def test_bundled_demo_backfills_app_events_from_exports():
    config = load_config(BUNDLED_CONFIG, env={})
    history = config.stream("app_events").history
    assert history is not None and history.bucket == "cwl-demo-exports"
    assert history.prefix != config.stream("worker_history").source.prefix.strip("/")


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ({**HISTORY, "after": "6h"}, "streams.app.history.after: '6h' is under 12h: AWS says log data"),
        ({k: v for k, v in HISTORY.items() if k != "after"}, "streams.app.history.after: required"),
        ({**HISTORY, "after": "a day"}, "streams.app.history.after: expected a duration"),
        ({**HISTORY, "reader": "export"}, "streams.app.history: unknown key(s) ['reader']"),
        (
            {**HISTORY, "bucket": "Bad_Bucket"},
            "streams.app.history.bucket: 'Bad_Bucket' is not a valid S3 bucket",
        ),
        ({**HISTORY, "prefix": "/x"}, "streams.app.history.prefix: '/x' must be a non-empty key prefix"),
        ({**HISTORY, "prefix": ""}, "streams.app.history.prefix: '' must be a non-empty key prefix"),
        ({**HISTORY, "poll_interval": "0s"}, "streams.app.history.poll_interval: must be positive"),
        ({**HISTORY, "chunk": "1d"}, "streams.app.history: unknown key(s) ['chunk']"),
        ("export", "streams.app.history: must be a mapping"),
    ],
)
def test_invalid_history_is_refused_with_its_key(history, message):
    with pytest.raises(ConfigError) as error:
        parse_config(with_stream(history=history))
    assert message in str(error.value)


def test_history_applies_to_polling_streams_only():
    s3_stream = {
        "name": "exports",
        "source": {
            "type": "s3",
            "bucket": "cwl-exports",
            "prefix": "hist",
            "layout": "export",
            "log_group": "/g",
        },
        "start": "2026-01-01",
        "history": HISTORY,
    }
    with pytest.raises(ConfigError, match=r"streams.exports.history: only applies to a polling stream"):
        parse_config({**BASE, "streams": [s3_stream]})


@pytest.mark.parametrize("prefix", ["app-history", "app-history/sub", "app", ""])
def test_history_prefix_must_not_overlap_an_s3_stream(prefix):
    other = {
        "name": "exports",
        "source": {
            "type": "s3",
            "bucket": "cwl-exports",
            "prefix": prefix or "x",
            "layout": "export",
            "log_group": "/g",
        },
        "start": "2026-01-01",
    }
    history = {**HISTORY, "prefix": "app-history" if prefix != "app" else "app/history"}
    if prefix == "":
        other["source"] = {"type": "s3", "bucket": "cwl-exports", "prefix": "", "layout": "firehose"}
    doc = {**BASE, "streams": [{**BASE["streams"][0], "history": history}, other]}
    with pytest.raises(
        ConfigError,
        match=r"streams.app.history.prefix: s3://cwl-exports/.* overlaps the prefix of stream exports",
    ):
        parse_config(doc)
    # Another bucket is fine, and a prefix beside the stream's (unless it reads the whole bucket).
    doc["streams"][0]["history"] = {**history, "bucket": "cwl-other"}
    assert parse_config(doc).streams[0].history is not None
    if prefix:
        doc["streams"][0]["history"] = {**history, "prefix": "elsewhere"}
        assert parse_config(doc).streams[0].history is not None

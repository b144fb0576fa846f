"""Config validation: every mistake is reported with the key it concerns."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from cwl_pipeline.config import BUNDLED_CONFIG, ConfigError, load_config, parse_config

BASE = {
    "bigquery": {"project": "my-project", "dataset": "logs"},
    "streams": [{"name": "app", "source": {"log_groups": ["/app/web"]}, "start": "2026-01-01"}],
}


def with_stream(**changes):
    stream = {**BASE["streams"][0], **changes}
    return {**BASE, "streams": [stream]}


def test_bundled_local_config_is_valid():
    config = load_config(BUNDLED_CONFIG, env={})
    assert config.bigquery.project == "cwl-local"
    assert config.aws.endpoint_url == "http://127.0.0.1:4566"
    assert config.streams[0].window == timedelta(minutes=15)


def test_environment_variables_are_expanded(tmp_path):
    config = load_config(
        BUNDLED_CONFIG, env={"CWL_BQ_DATASET": "other", "CWL_AWS_ENDPOINT_URL": "http://h:1"}
    )
    assert config.bigquery.dataset == "other"
    assert config.aws.endpoint_url == "http://h:1"


def test_defaults_apply_and_stream_overrides():
    config = parse_config({**with_stream(window="5m"), "defaults": {"window": "30m", "settle_lag": "90s"}})
    stream = config.streams[0]
    assert stream.window == timedelta(minutes=5)
    assert stream.settle_lag == timedelta(seconds=90)
    assert stream.table == "app" and stream.rejects_table == "app_rejects"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**BASE, "extra": 1}, "config: unknown key(s) ['extra']"),
        (with_stream(windw="5m"), "streams.app: unknown key(s) ['windw']"),
        (with_stream(description=[1]), "streams.app.description: must be text, got [1]"),
        (with_stream(max_windows_per_run="x"), "streams.app.max_windows_per_run: must be an integer from 1"),
        (with_stream(window="15 minutes"), "streams.app.window: expected a duration"),
        (with_stream(window="7m"), "streams.app.window: '7m' must divide an hour"),
        (with_stream(settle_lag=True), "streams.app.settle_lag: expected a duration"),
        (with_stream(table="bad-table"), "streams.app.table: 'bad-table' is not a valid BigQuery table"),
        (with_stream(name="App"), "streams[0].name: 'App' must be lower-case"),
        (with_stream(schema="nope"), "streams.app.schema: unknown schema 'nope'"),
        (with_stream(schema=[]), "streams.app.schema: must be the name of a schema under 'schemas', got []"),
        (with_stream(start="yesterday"), "streams.app.start: 'yesterday' is not an ISO 8601"),
        (with_stream(start="2026-01-01T00:07:00Z"), "not aligned to the 0:15:00 window"),
        (with_stream(source={"log_groups": []}), "streams.app.source: name at least one"),
        (with_stream(source={"type": "kinesis", "log_groups": ["/a"]}), "streams.app.source.type: 'kinesis'"),
        (with_stream(source={"log_groups": ["bad group!"]}), "is not a valid CloudWatch log group name"),
        # A trailing newline passes a `$`-anchored .match(); names are matched whole.
        (with_stream(source={"log_groups": ["/app/web\n"]}), "is not a valid CloudWatch log group name"),
        (with_stream(max_windows_per_run=0), "max_windows_per_run: must be an integer from 1 to 4000"),
        ({**BASE, "bigquery": {"project": "p", "dataset": "logs"}}, "bigquery.project: 'p' is not a valid"),
        ({**BASE, "bigquery": {"project": "my-project", "dataset": "bad-ds"}}, "bigquery.dataset: 'bad-ds'"),
        ({**BASE, "aws": {"retry_mode": "fast"}}, "aws.retry_mode: 'fast'"),
        ({**BASE, "streams": []}, "streams: must be a non-empty list"),
        ({**BASE, "streams": [BASE["streams"][0], BASE["streams"][0]]}, "streams: name ['app'] used by more"),
        (
            {**with_stream(schema="mine"), "schemas": {"mine": {"columns": [{"name": "x", "type": "INT"}]}}},
            "schema 'mine' column 'x': type 'INT' is not one of",
        ),
        (
            {
                **with_stream(schema="mine"),
                "schemas": {"mine": {"columns": [{"name": "x", "type": "INT64"}]}},
            },
            "needs exactly one TIMESTAMP column with source 'event_timestamp'",
        ),
    ],
)
def test_invalid_config_names_the_key(doc, message):
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(doc)
    assert message in str(info.value)


def test_custom_schema_is_declared_in_config():
    doc = {
        **with_stream(schema="orders"),
        "schemas": {
            "orders": {
                "columns": [
                    {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
                    {"name": "order_id", "type": "INT64", "path": "order.id", "required": True},
                    {"name": "amount", "type": "FLOAT64"},
                ]
            }
        },
    }
    schema = parse_config(doc).streams[0].schema
    assert schema.time_column == "ts"
    assert schema.column("order_id").path == ("order", "id")
    assert schema.column("amount").path == ("amount",)


def test_missing_file_and_bad_yaml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read pipeline config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unset = tmp_path / "unset.yaml"
    unset.write_text("bigquery:\n  project: ${NOPE_NOT_SET}\n")
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
        load_config(unset, env={})


def test_reconcile_defaults_and_overrides():
    stream = parse_config(BASE).streams[0]
    assert stream.reconcile.enabled
    assert (stream.reconcile.interval, stream.reconcile.lookback) == (timedelta(hours=1), timedelta(hours=24))
    assert stream.reconcile.max_heal_attempts == 3
    doc = {**with_stream(reconcile={"lookback": "2d"}), "defaults": {"reconcile": {"interval": "30m"}}}
    # A stream's reconcile mapping replaces the defaults' as a whole, like freshness.
    tuned = parse_config(doc).streams[0].reconcile
    assert (tuned.interval, tuned.lookback) == (timedelta(hours=1), timedelta(days=2))


@pytest.mark.parametrize(
    ("reconcile", "message"),
    [
        ({"interval": "7m"}, "streams.app.reconcile.interval: '7m' must divide an hour"),
        ({"interval": "1m"}, "streams.app.reconcile.interval: '1m' must divide an hour (5m..60m)"),
        ({"lookback": "30m"}, "streams.app.reconcile.lookback: must be from 1h to 14d"),
        ({"lookback": "15d"}, "streams.app.reconcile.lookback: must be from 1h to 14d"),
        ({"max_heal_attempts": 0}, "streams.app.reconcile.max_heal_attempts: must be an integer"),
        ({"enabled": "yes"}, "streams.app.reconcile.enabled: must be true or false"),
        ({"every": "1h"}, "streams.app.reconcile: unknown key(s) ['every']"),
    ],
)
def test_invalid_reconcile_names_the_key(reconcile, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(with_stream(reconcile=reconcile))


def test_reconcile_is_refused_on_an_s3_source():
    source = {"type": "s3", "bucket": "my-bucket", "prefix": "logs/", "layout": "firehose"}
    with pytest.raises(ConfigError, match=r"streams.app.reconcile: only applies to a polling"):
        parse_config(with_stream(source=source, reconcile={"enabled": False}))

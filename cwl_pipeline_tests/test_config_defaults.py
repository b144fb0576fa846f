"""Every default has one source: the config's dataclasses. The parser, the Dagster resources and
the adapters agree with them (a literal copied somewhere else would drift)."""

from __future__ import annotations

import inspect
from datetime import timedelta

from cwl_pipeline.adapters.aws_session import assumed_role_session
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.gcp_credentials import aws_external_account_credentials
from cwl_pipeline.config import (
    AwsSettings,
    BigQuerySettings,
    GcpCredentials,
    ReconcileSettings,
    StreamConfig,
    default_freshness,
    default_of,
    parse_config,
)
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse

MINIMAL = {
    "bigquery": {"project": "my-project", "dataset": "logs"},
    "streams": [{"name": "app", "source": {"log_groups": ["/app/web"]}, "start": "2026-01-01"}],
}


def test_a_minimal_config_gets_the_dataclass_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.aws == AwsSettings()
    assert config.bigquery == BigQuerySettings(project="my-project", dataset="logs")
    stream = config.streams[0]
    for name in ("initial_lookback", "sweeps", "max_reject_rate", "backfill_windows_per_run"):
        assert getattr(stream, name) == default_of(StreamConfig, name), name
    assert stream.windows_per_replace == default_of(StreamConfig, "windows_per_replace")
    assert stream.reconcile == ReconcileSettings()


def test_freshness_defaults_follow_the_window() -> None:
    stream = parse_config(MINIMAL).streams[0]
    assert (stream.window, stream.settle_lag) == (timedelta(minutes=15), timedelta(minutes=2))
    assert (stream.freshness_warn, stream.freshness_fail) == (timedelta(minutes=22), timedelta(minutes=32))
    assert (stream.freshness_warn, stream.freshness_fail) == default_freshness(
        stream.window, stream.settle_lag
    )
    hourly = parse_config({**MINIMAL, "defaults": {"window": "1h", "settle_lag": "5m"}}).streams[0]
    assert hourly.freshness_fail == timedelta(minutes=80)


def test_resources_default_to_the_config_defaults() -> None:
    aws = AwsSettings()
    resource = AwsResource()
    assert (resource.retry_mode, resource.filter_log_events_per_second, resource.role_session_name) == (
        aws.retry_mode,
        aws.filter_log_events_per_second,
        aws.role_session_name,
    )
    bigquery = BigQuerySettings(project="my-project", dataset="d")
    warehouse = BigQueryWarehouse(project="my-project", dataset="d")
    assert warehouse.retry_timeout_seconds == bigquery.retry_timeout.total_seconds()
    assert (warehouse.credentials_type, warehouse.aws_credentials) == (
        GcpCredentials().type,
        GcpCredentials().aws_credentials,
    )
    assert warehouse.aws_role_session_name == aws.role_session_name


def test_adapters_default_to_the_config_defaults() -> None:
    def default(function, name):
        return inspect.signature(function).parameters[name].default

    retry_timeout = default_of(BigQuerySettings, "retry_timeout").total_seconds()
    assert default(BigQueryLoader, "retry_timeout") == retry_timeout
    assert default(assumed_role_session, "session_name") == default_of(AwsSettings, "role_session_name")
    assert default(aws_external_account_credentials, "aws_credentials") == GcpCredentials().aws_credentials

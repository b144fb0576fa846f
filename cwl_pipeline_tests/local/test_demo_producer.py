"""The demo producer writes to the local CloudWatch, and publishes CloudWatch's own count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from cwl_pipeline.core.formats import events_from_api
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import LAMBDA_SCHEMA
from cwl_pipeline.local.demo_producer import DemoProducer
from cwl_pipeline.local.lambda_demo import LambdaInvocations
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents


def test_producer_publishes_incoming_log_events_for_what_it_put(local_aws, logs_client, unique_name):
    """Real CloudWatch computes IncomingLogEvents itself; the local AWS does not, so the demo
    producer publishes it: the reconciliation of `make run` compares against this count."""
    metrics = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    group = f"/test/demo-{unique_name}"
    producer = DemoProducer(logs_client, group, seed=7, metrics_client=metrics)
    producer.ensure_log_group()
    before = datetime.now(UTC)
    sent = producer.produce_once() + producer.produce_once()

    stored = sum(
        len(page["events"])
        for page in logs_client.get_paginator("filter_log_events").paginate(logGroupName=group)
    )
    hour = before.replace(minute=0, second=0, microsecond=0)
    counts = IncomingLogEvents(metrics).hourly_counts(
        [group], hour - timedelta(hours=1), hour + timedelta(hours=2)
    )
    assert sent == stored == producer.sent
    assert sum(counts.values()) == sent


def test_hourly_counts_refuse_a_range_that_is_not_whole_hours(local_aws):
    metrics = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    with pytest.raises(ValueError, match="whole UTC hours"):
        IncomingLogEvents(metrics).hourly_counts(
            ["/g"], datetime(2026, 11, 30, 7, 35, tzinfo=UTC), datetime(2026, 11, 30, 9, tzinfo=UTC)
        )


def test_lambda_producer_writes_invocations_that_parse_typed_and_counts_them(
    local_aws, logs_client, unique_name
):
    """The `make run` Lambda group: ordered invocations per stream, IncomingLogEvents published,
    and every line lands typed under the lambda schema (no reject)."""

    metrics = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    group = f"/aws/lambda/demo-{unique_name}"
    producer = DemoProducer(
        logs_client, group, streams=("2026/11/30/[$LATEST]0a", "2026/11/30/[$LATEST]0b"), seed=11,
        metrics_client=metrics, lines=LambdaInvocations,
    )  # fmt: skip
    producer.ensure_log_group()
    before = datetime.now(UTC)
    sent = sum(producer.produce_once() for _ in range(40))

    stored = [
        event
        for page in logs_client.get_paginator("filter_log_events").paginate(logGroupName=group)
        for event in page["events"]
    ]
    hour = before.replace(minute=0, second=0, microsecond=0)
    counts = IncomingLogEvents(metrics).hourly_counts(
        [group], hour - timedelta(hours=1), hour + timedelta(hours=2)
    )
    assert sent == len(stored) == sum(counts.values())

    batch = normalize(events_from_api(stored, log_group=group), LAMBDA_SCHEMA)
    assert batch.rows_rejected == 0
    types = batch.rows_table.column("record_type").to_pylist()
    assert types.count("start") == types.count("end") == types.count("report") == 80
    assert {"init_start", "log"} <= set(types)


def test_partner_demo_writes_a_second_account_that_the_bundled_stream_reads(local_aws, logs_client):
    """`make run`'s partner_events stream: the producer writes its group in a second account, and
    the stream's clients (the bundled config's source.account role) read it there, metric included."""
    from cwl_pipeline.config import BUNDLED_CONFIG, load_config
    from cwl_pipeline.local.partner_demo import DEMO_PARTNER_GROUP, partner_clients
    from cwl_pipeline.orchestration.resources import AwsResource
    from cwl_pipeline.polling.filter_log_events import logs_reader

    partner_logs, partner_metrics = partner_clients(local_aws.url, "us-east-1")
    producer = DemoProducer(partner_logs, DEMO_PARTNER_GROUP, seed=5, metrics_client=partner_metrics)
    producer.ensure_log_group()
    before = datetime.now(UTC)
    sent = producer.produce_once()

    config = load_config(BUNDLED_CONFIG, env={"CWL_AWS_ENDPOINT_URL": local_aws.url})
    account = config.stream("partner_events").source_account
    aws = AwsResource.from_settings(config.aws)
    reader = logs_reader(aws, account)
    since = int((before - timedelta(seconds=5)).timestamp() * 1000)
    read = list(reader.iter_events(DEMO_PARTNER_GROUP, since, since + 3_600_000))
    assert len(read) >= sent
    hour = before.replace(minute=0, second=0, microsecond=0)
    counted = IncomingLogEvents(aws.client("cloudwatch", account)).hourly_counts(
        [DEMO_PARTNER_GROUP], hour, hour + timedelta(hours=2)
    )
    assert sum(counted.values()) >= sent
    # Not in the pipeline's own account.
    own = logs_client.describe_log_groups(logGroupNamePrefix=DEMO_PARTNER_GROUP)["logGroups"]
    assert own == []

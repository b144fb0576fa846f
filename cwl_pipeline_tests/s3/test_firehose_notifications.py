"""S3 event notifications to SQS as the Firehose sensor's trigger, the listing as its safety
net: against local AWS (moto server sends S3's notifications to its SQS queue)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg

from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.local.firehose_demo import ensure_object_notifications
from cwl_pipeline_tests.s3.s3_stack import (
    WINDOW,
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    ms,
    write_s3_config,
)

GROUP = "/test/notified"


def _queue(local_aws, s3, bucket: str, name: str) -> tuple[object, str]:
    """A queue receiving the bucket's ObjectCreated events under ``fh/`` (as ``make run`` sets up)."""
    sqs = boto3.client("sqs", endpoint_url=local_aws.url, region_name="us-east-1")
    url = ensure_object_notifications(sqs=sqs, s3=s3, bucket=bucket, prefix="fh/", queue=name)
    return sqs, url


def _put(s3, bucket: str, hour: datetime, event_id: str) -> None:
    body = gzip_envelopes(
        envelope(GROUP, "w", [(event_id, ms(hour + timedelta(minutes=1)), {"session_id": 1})])
    )
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=body)


def test_the_sensor_lists_when_notified_and_as_a_safety_net(
    s3, bucket, local_aws, local_bigquery, write_config, unique_name
):
    sqs, url = _queue(local_aws, s3, bucket, f"q-{unique_name}")
    source = (
        f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, log_group: {GROUP}, "
        f"notifications: {{queue_url: '{url}', safety_listing: 2s}}}}"
    )
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, f"ds_{unique_name}", source))
    sensor = defs.resolve_sensor_def("logs_objects")
    instance = dg.DagsterInstance.ephemeral()
    cursor: str | None = None

    def tick() -> object:
        nonlocal cursor
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, resources=defs.resources, cursor=cursor
        )
        result = sensor.evaluate_tick(context)
        cursor = result.cursor
        return result

    first = tick()  # the first tick lists (nothing yet), and takes the configuration's test event
    assert first.run_requests == []
    quiet = tick()
    assert quiet.run_requests == [] and quiet.skip_message.startswith("no notification, no listing due")

    # A late object (written two hours after its key hour): notified, so a deep listing at once,
    # not up to 30 minutes later.
    hour = key_hour()
    _put(s3, bucket, hour, "1")
    late = tick()
    assert [r.partition_key for r in late.run_requests] == [last_window_key(hour)]
    assert tick().run_requests == []  # the notification was deleted; the object is seen

    # An object written on time whose notification is lost: only the safety listing finds it.
    now = datetime.now(UTC)
    _put(s3, bucket, floor_to_window(now, timedelta(hours=1)), "2")
    sqs.purge_queue(QueueUrl=url)
    assert tick().run_requests == []  # nothing heard, listed less than 2 s ago
    time.sleep(2.1)
    found = tick()
    assert [r.partition_key for r in found.run_requests] == [partition_key(floor_to_window(now, WINDOW))]


def test_a_missing_queue_falls_back_to_listing_every_tick(
    s3, bucket, local_aws, local_bigquery, write_config, unique_name
):
    url = f"{local_aws.url}/123456789012/no-such-queue-{unique_name}"
    source = (
        f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, log_group: {GROUP}, "
        f"notifications: {{queue_url: '{url}'}}}}"
    )
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, f"ds_{unique_name}", source))
    sensor = defs.resolve_sensor_def("logs_objects")
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
    cursor = sensor.evaluate_tick(context).cursor
    hour = key_hour()
    _put(s3, bucket, hour, "1")
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources=defs.resources, cursor=cursor
    )
    result = sensor.evaluate_tick(context)
    # No notification can arrive, so every tick lists, as for a stream without notifications
    # (nothing was listed before: the object is new to this first listing with objects).
    assert [r.partition_key for r in result.run_requests] == [last_window_key(hour)]

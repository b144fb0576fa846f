"""The event times rows of Firehose objects can carry, from the objects' S3 times."""

from datetime import UTC, datetime, timedelta

from cwl_pipeline.s3_objects.stored import subscription_event_times


def test_rows_of_delivered_objects_are_bounded_by_cloudwatchs_limits():
    early = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    late = early + timedelta(hours=3)
    start, end = subscription_event_times([late, early])
    # 14 days before ingestion (PutLogEvents), ingestion up to 24 h + 900 s before delivery.
    assert start == early - timedelta(days=15, seconds=900)
    # At most 2 hours ahead of ingestion, which is never after delivery; the end is exclusive.
    assert end == late + timedelta(hours=2, milliseconds=1)
    assert subscription_event_times([]) is None

"""The Firehose sensor against local AWS: first tick, restart from its cursor, late objects."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg

from cwl_pipeline.firehose.windows import DEEP_LISTING_INTERVAL
from cwl_pipeline_tests.s3.s3_stack import (
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    write_s3_config,
)


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("logs_objects")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    )
    return sensor.evaluate_tick(context)


def test_sensor_requests_new_windows_once_and_reruns_on_late_objects(
    s3, bucket, local_aws, local_bigquery, write_config, unique_name
):
    hour = key_hour()
    body = gzip_envelopes(envelope("/g", "s", [("1", 0, "{}")]))
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=body)
    s3.put_object(Bucket=bucket, Key="other/2026/01/01/00/x", Body=body)  # outside the prefix
    source = f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose}}"
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, "unused", source))
    instance = dg.DagsterInstance.ephemeral()

    first = tick(defs, instance, None)
    assert [r.partition_key for r in first.run_requests] == [last_window_key(hour)]
    assert first.run_requests[0].tags["cwl/load"] == "objects"
    cursor = first.cursor
    assert json.loads(cursor)["watermark"]

    # A restarted daemon resumes from the stored cursor: nothing new, nothing requested.
    again = tick(defs, instance, cursor)
    assert again.run_requests == [] and again.skip_message == "no new objects"

    # A late object (written long after its key hour): the next tick lists only the hours near
    # the watermark and does not see it; the next deep listing (every 30 minutes) does, and
    # the window runs again, with a new run key.
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=body)
    quick = tick(defs, instance, again.cursor)
    assert quick.run_requests == []
    state = json.loads(quick.cursor)
    state["deep_listed_at"] = (
        datetime.fromisoformat(state["deep_listed_at"]) - DEEP_LISTING_INTERVAL
    ).isoformat()
    late = tick(defs, instance, json.dumps(state))
    assert [r.partition_key for r in late.run_requests] == [last_window_key(hour)]
    assert late.run_requests[0].run_key != first.run_requests[0].run_key

    # And once seen, the late object is not requested again.
    assert tick(defs, instance, late.cursor).run_requests == []

    # A cursor lost altogether: the same object set yields the same run key as before, which
    # Dagster skips, so nothing is loaded twice.
    fresh = tick(defs, instance, None)
    assert [r.run_key for r in fresh.run_requests] == [late.run_requests[0].run_key]

"""Failed Firehose window runs and export folder runs are asked for again.

Every failed run here is real: the sensor's request is executed in-process on a persistent
temporary Dagster instance, with the tags the daemon gives a sensor's run, by definitions whose
AWS endpoint is a closed local port; the run fails reading S3 and Dagster records it FAILURE.
The sensor ticks with the working definitions (local AWS and BigQuery). It is built with a retry
policy without waits, so the test does not sleep for minutes.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from cwl_pipeline.config import load_config
from cwl_pipeline.exports.assets import export_partitions
from cwl_pipeline.exports.sensor import build_export_sensor
from cwl_pipeline.firehose.sensor import build_firehose_sensor
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.local.processes import free_port
from cwl_pipeline.orchestration.owed_plan import RetryPolicy
from cwl_pipeline_tests.s3.s3_stack import (
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    ms,
    rows,
    write_s3_config,
)
from cwl_pipeline_tests.sensor_runs import assert_retry_chain, launch, tick

NO_WAIT = RetryPolicy(first_delay=timedelta(0))


@pytest.fixture
def instance():
    """A persistent temporary instance: runs, materializations and dynamic partitions are stored."""
    with dg.instance_for_test() as temp:
        yield temp


def configs(write_config, local_aws, local_bigquery, dataset: str, source: str, extra: str = ""):
    """Working definitions, failing definitions (AWS on a closed port) and the stream config."""
    path: Path = write_s3_config(write_config, local_aws, local_bigquery, dataset, source, extra)
    stream = load_config(path).streams[0]
    defs = definitions(path)
    dead = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}")
    failing = definitions(write_s3_config(write_config, dead, local_bigquery, dataset, source, extra))
    return defs, failing, stream


def test_failed_firehose_window_is_asked_for_again_until_the_bound(
    s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name, instance
):
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    body = gzip_envelopes(envelope("/g", "s", [("1", ms(hour) + 1000, {"session_id": 5})]))
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=body)
    source = f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose}}"
    defs, failing, stream = configs(write_config, local_aws, local_bigquery, dataset, source)
    sensor = build_firehose_sensor(StreamTables.of(stream), NO_WAIT)

    first_tick = tick(sensor, defs, instance, None)
    [request] = first_tick.requests
    assert request.partition_key == last_window_key(hour)
    gave_up = assert_retry_chain(
        sensor=sensor,
        defs=defs,
        failing_defs=failing,
        instance=instance,
        first=request,
        cursor=first_tick.cursor,
        node_name="load_logs",
    )
    assert any(
        line.startswith(f"giving up on objects window {request.partition_key}: attempt 5/5")
        for line in gave_up.lines("ERROR")
    ), gave_up.log
    later = tick(sensor, defs, instance, gave_up.cursor)
    assert later.requests == [] and "GIVEN UP after 5/5" in later.result.skip_message
    assert json.loads(later.cursor)["watermark"]  # the object cursor is kept beside the owed list

    # Once the window is loaded (the endpoint is back, an operator re-runs it), nothing is owed.
    assert launch(defs, instance, request, "load_logs").success
    assert [r["session_id"] for r in rows(bq_client, dataset)] == [5]
    cleared = tick(sensor, defs, instance, later.cursor)
    assert (
        json.loads(cleared.cursor)["owed"]["loads"] == [] and cleared.result.skip_message == "no new objects"
    )


def test_failed_export_folder_is_asked_for_again_until_the_bound(
    s3, bucket, bq_client, local_aws, local_bigquery, logs_client, write_config, unique_name, instance
):
    dataset = f"ds_{unique_name}"
    group = f"/test/hist-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    line = '2026-11-20T10:01:00.000Z {"session_id": 9}\n'
    s3.put_object(Bucket=bucket, Key="hist/folder-1/web-1/000000.gz", Body=gzip.compress(line.encode()))
    source = f"{{type: s3, bucket: {bucket}, prefix: hist, layout: export, log_group: {group}}}"
    defs, failing, stream = configs(
        write_config, local_aws, local_bigquery, dataset, source, "    settle_lag: 0s\n"
    )
    sensor = build_export_sensor(StreamTables.of(stream), export_partitions(stream), NO_WAIT)

    seen = tick(sensor, defs, instance, None)  # no task of that name: loaded once seen stable
    first_tick = tick(sensor, defs, instance, seen.cursor)
    [request] = first_tick.requests
    assert request.partition_key == "folder-1"
    gave_up = assert_retry_chain(
        sensor=sensor,
        defs=defs,
        failing_defs=failing,
        instance=instance,
        first=request,
        cursor=first_tick.cursor,
        node_name="load_logs",
    )
    assert any(
        line.startswith("giving up on export folder folder-1: attempt 5/5") for line in gave_up.lines("ERROR")
    ), gave_up.log
    later = tick(sensor, defs, instance, gave_up.cursor)
    assert later.requests == [] and "GIVEN UP after 5/5" in later.result.skip_message
    # Not asked for again as new: it is a dynamic partition, which the cursor does not repeat.
    assert "done" not in json.loads(later.cursor)
    assert instance.get_dynamic_partitions(export_partitions(stream).name) == ["folder-1"]

    assert launch(defs, instance, request, "load_logs").success
    assert [r["session_id"] for r in rows(bq_client, dataset)] == [9]
    cleared = tick(sensor, defs, instance, later.cursor)
    assert (
        json.loads(cleared.cursor)["owed"]["loads"] == [] and cleared.result.skip_message == "no new folder"
    )

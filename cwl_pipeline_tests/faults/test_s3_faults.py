"""ListObjectsV2 and GetObject storms against the S3 loads (Firehose windows, export folders).

Faults are injected by the fault proxy in front of local AWS: ``list_objects_v2`` matches
``GET /<bucket>?list-type=2…``, ``get_object`` matches ``GET /<bucket>/<key>``; the proxy answers
with S3's ``SlowDown`` (503) or ``InternalError`` (500) XML. Objects are written to moto
directly. The client retries with botocore's adaptive mode and ``aws.max_attempts: 3``.
"""

from __future__ import annotations

import gzip
from datetime import timedelta

import dagster as dg
import pytest

from cwl_pipeline.config import load_config
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.faults.fault_proxy import (
    Truncate,
    get_object,
    list_objects_v2,
    s3_internal_error,
    s3_slow_down,
)
from cwl_pipeline_tests.faults.fault_stack import run_history, table_ids, write_fault_config
from cwl_pipeline_tests.s3.s3_stack import (
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    materialize,
    ms,
)

GROUP = "/test/worker"
MAX_ATTEMPTS = 3
OPERATIONS = {
    "ListObjectsV2": (list_objects_v2, "ListObjectsV2 on s3://{bucket}/fh/"),
    "GetObject": (get_object, "GetObject on s3://{bucket}/fh/"),
}
FAULTS = {"SlowDown": s3_slow_down, "InternalError": s3_internal_error}


@pytest.fixture
def firehose(aws_faults, local_bigquery, write_config, unique_name, bucket):
    """A Firehose stream ``logs`` reading ``bucket`` through the fault proxy, and a writer of
    delivery objects with given event ids into the last window of an hour two hours ago."""
    hour = key_hour()
    dataset = f"ds_{unique_name}"
    source = (
        f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, record_format: envelopes_gzip, "
        f"log_group: {GROUP}}}"
    )
    path = write_fault_config(
        write_config,
        aws_faults.url,
        local_bigquery.url,
        dataset,
        source,
        stream="logs",
        table="logs",
        max_attempts=MAX_ATTEMPTS,
    )

    def deliver(s3, ids: list[str]) -> None:
        t0 = hour + timedelta(minutes=5)
        events = [(i, ms(t0) + n, {"session_id": n, "action": "view"}) for n, i in enumerate(ids)]
        body = gzip_envelopes(envelope(GROUP, "w-1", events))
        s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=body)

    defs = build_definitions(load_config(path))
    return {"defs": defs, "dataset": dataset, "key": last_window_key(hour), "deliver": deliver}


@pytest.mark.parametrize(
    ("operation", "fault"), [("ListObjectsV2", "InternalError"), ("GetObject", "SlowDown")]
)
def test_short_storm_is_retried_through(operation, fault, firehose, aws_faults, s3, bucket, bq_client):
    """The proxy answers the first two matching S3 calls with the fault; retries get through."""
    firehose["deliver"](s3, ["1", "2"])
    firehose["deliver"](s3, ["3"])
    storm = aws_faults.add(OPERATIONS[operation][0](bucket, FAULTS[fault](), times=MAX_ATTEMPTS - 1))

    result = materialize(firehose["defs"], firehose["key"])

    assert result.success and storm.fired == MAX_ATTEMPTS - 1
    assert table_ids(bq_client, firehose["dataset"], "logs") == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("operation", "fault"), [("ListObjectsV2", "SlowDown"), ("GetObject", "InternalError")]
)
def test_long_storm_fails_the_run_and_keeps_the_table(
    operation, fault, firehose, aws_faults, s3, bucket, bq_client
):
    """The proxy answers every matching S3 call with the fault until the rule is removed: the
    run fails naming the call, the object and the error code; the window keeps its rows; the
    re-run after the storm adds the late object's rows exactly once."""
    dataset, key = firehose["dataset"], firehose["key"]
    firehose["deliver"](s3, ["1", "2"])
    materialize(firehose["defs"], key)
    before = table_ids(bq_client, dataset, "logs")
    assert before == ["1", "2"]
    firehose["deliver"](s3, ["2", "3"])  # a late object repeating event 2 (a Firehose retry)

    make_rule, names = OPERATIONS[operation]
    storm = aws_faults.add(make_rule(bucket, FAULTS[fault](), times=None))
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize(firehose["defs"], key, instance=instance, raise_on_error=False)

    assert not failed.success and storm.fired >= MAX_ATTEMPTS
    history = run_history(instance, failed.run_id)
    assert history.status == dg.DagsterRunStatus.FAILURE and history.materialized == []
    assert names.format(bucket=bucket) in history.failure
    assert f"failed after {MAX_ATTEMPTS} attempts: {fault}" in history.failure
    assert table_ids(bq_client, dataset, "logs") == before

    aws_faults.clear()
    assert materialize(firehose["defs"], key).success
    assert table_ids(bq_client, dataset, "logs") == ["1", "2", "3"]


def test_export_folder_get_object_storm(
    aws_faults, local_bigquery, write_config, unique_name, s3, bucket, bq_client
):
    """Export path: the proxy answers every GetObject of the export files with InternalError; the
    folder's run fails naming the file, and loads exactly once the storm is over."""
    dataset = f"ds_{unique_name}"
    folder = "3f2a9c1e-0000-4000-8000-000000000001"
    start = key_hour()
    stamps = [(start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for i in range(4)]
    body = gzip.compress("".join(f'{t} {{"session_id": {i}}}\n' for i, t in enumerate(stamps)).encode())
    s3.put_object(Bucket=bucket, Key=f"exp/{folder}/w-1/000000.gz", Body=body)
    path = write_fault_config(
        write_config,
        aws_faults.url,
        local_bigquery.url,
        dataset,
        f"{{type: s3, bucket: {bucket}, prefix: exp/, layout: export, log_group: {GROUP}}}",
        stream="logs",
        table="logs",
        max_attempts=MAX_ATTEMPTS,
    )
    defs = build_definitions(load_config(path))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("logs_export_folders", [folder])

    storm = aws_faults.add(get_object(bucket, s3_internal_error(), times=None))
    failed = materialize(defs, folder, instance=instance, raise_on_error=False)
    history = run_history(instance, failed.run_id)
    assert storm.fired == MAX_ATTEMPTS and history.status == dg.DagsterRunStatus.FAILURE
    assert f"GetObject on s3://{bucket}/exp/{folder}/w-1/000000.gz" in history.failure
    assert "InternalError" in history.failure
    assert table_ids(bq_client, dataset, "logs") == []

    aws_faults.clear()
    assert materialize(defs, folder, instance=instance).success
    ids = table_ids(bq_client, dataset, "logs")
    assert len(ids) == len(set(ids)) == 4


def test_object_body_cut_off_mid_transfer(firehose, aws_faults, s3, bucket, bq_client):
    """The proxy passes GetObject's status and headers on but cuts the body off after 16 bytes
    (``Truncate``). botocore's retries end with the headers, so the read itself is retried: cut
    every time, the run fails naming the object (never recording it as unreadable); cut once
    per object, the window loads exactly."""
    firehose["deliver"](s3, ["1", "2"])
    firehose["deliver"](s3, ["3"])
    always = aws_faults.add(get_object(bucket, Truncate(16), times=None))
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize(firehose["defs"], firehose["key"], instance=instance, raise_on_error=False)
    history = run_history(instance, failed.run_id)
    assert history.status == dg.DagsterRunStatus.FAILURE and always.fired >= 3
    assert f"reading s3://{bucket}/fh/" in history.failure and "failed 3 times" in history.failure
    assert "IncompleteRead" in history.failure
    assert table_ids(bq_client, firehose["dataset"], "logs_rejects") == []

    aws_faults.clear()
    once = aws_faults.add(get_object(bucket, Truncate(16), times=2))
    result = materialize(firehose["defs"], firehose["key"], instance=instance, raise_on_error=False)

    assert once.fired == 2
    history = run_history(instance, result.run_id)
    assert history.status == dg.DagsterRunStatus.SUCCESS, history.failure
    assert table_ids(bq_client, firehose["dataset"], "logs") == ["1", "2", "3"]
    assert table_ids(bq_client, firehose["dataset"], "logs_rejects") == []

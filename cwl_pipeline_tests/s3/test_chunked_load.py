"""Loads staged chunk by chunk: a stream's chunk_events sizes the chunks, duplicates across
chunks are dropped in BigQuery, figures per chunk added up, the parallel decoder in worker
processes, Firehose ranges in replace steps."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.config import CHUNK_EVENTS_ENV, DECODE_WORKERS_ENV
from cwl_pipeline_tests.s3.s3_stack import (
    assert_blocking_checks_pass,
    assert_reconciles,
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    load_metadata,
    materialize,
    ms,
    rejects,
    rows,
    write_s3_config,
)

GROUP = "/test/chunks"


def source(bucket: str) -> str:
    return f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, log_group: {GROUP}}}"


def test_a_streams_chunk_events_sizes_the_chunks_the_load_stages(
    monkeypatch, s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name
):
    """Four objects of 500 events, chunk_events 1000: the load stages two chunks of 1,000 rows,
    each with its own load job (an object is never split: a chunk closes once it holds enough)."""
    monkeypatch.delenv(CHUNK_EVENTS_ENV, raising=False)
    staged: list[tuple[str, int]] = []
    stage_chunk = BigQueryLoader.stage_chunk

    def counting(loader, staging, data):
        if data.num_rows:
            staged.append((staging.spec.table, data.num_rows))
        stage_chunk(loader, staging, data)

    monkeypatch.setattr(BigQueryLoader, "stage_chunk", counting)
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    t0 = ms(hour + timedelta(minutes=50))
    for part in range(4):
        events = [(f"{part}-{n}", t0 + n, {"session_id": n}) for n in range(500)]
        s3.put_object(
            Bucket=bucket, Key=firehose_key("fh/", hour), Body=gzip_envelopes(envelope(GROUP, "w", events))
        )
    path = write_s3_config(
        write_config, local_aws, local_bigquery, dataset, source(bucket), extra="    chunk_events: 1000\n"
    )
    defs = definitions(path)

    md = load_metadata(materialize(defs, last_window_key(hour)))
    assert staged == [("logs", 1000), ("logs", 1000)]
    assert (md["events_read"], md["rows_loaded"], md["rows_rejected"]) == (2000, 2000, 0)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_object_its_own_chunk_loads_each_event_once(
    workers, monkeypatch, s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name
):
    """One event per chunk: a redelivered event lies in another chunk than its first copy, so
    only BigQuery can drop it; the figures still reconcile, per window and for the run."""
    monkeypatch.setenv(CHUNK_EVENTS_ENV, "1")
    monkeypatch.setenv(DECODE_WORKERS_ENV, workers)
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    t0 = hour + timedelta(minutes=10)
    first = [("1", ms(t0), {"session_id": 1}), ("2", ms(t0) + 5, {"session_id": 2})]
    s3.put_object(
        Bucket=bucket, Key=firehose_key("fh/", hour), Body=gzip_envelopes(envelope(GROUP, "w", first))
    )
    time.sleep(1.1)  # delivery order is LastModified order, to the second
    retry = [first[1], ("3", ms(t0) + 9, {"session_id": 3}), ("4", ms(t0) + 11, "not json")]
    for _ in range(2):  # a Firehose retry, delivered twice
        s3.put_object(
            Bucket=bucket, Key=firehose_key("fh/", hour), Body=gzip_envelopes(envelope(GROUP, "w", retry))
        )
    s3.put_object(Bucket=bucket, Key=firehose_key("fh/", hour), Body=b"\x1f\x8b\x08\x00broken")
    defs = definitions(write_s3_config(write_config, local_aws, local_bigquery, dataset, source(bucket)))

    result = materialize(defs, last_window_key(hour))
    md = load_metadata(result)
    loaded = rows(bq_client, dataset)
    assert [(r["event_id"], r["session_id"]) for r in loaded] == [("1", 1), ("2", 2), ("3", 3)]
    assert loaded[1]["source_object"] == loaded[0]["source_object"], "the first delivery is kept"
    assert sorted(r["reason"] for r in rejects(bq_client, dataset)) == ["invalid_json", "unreadable_object"]
    assert (md["events_read"], md["objects_read"], md["objects_unreadable"]) == (9, 4, 1)
    # 2 and 3 delivered again, the bad line again: four copies dropped.
    assert (md["rows_loaded"], md["rows_rejected"], md["duplicates_dropped"]) == (3, 2, 4)
    assert md["rows_written"] == 5
    assert_reconciles(md)
    assert_blocking_checks_pass(result)

    again = load_metadata(materialize(defs, last_window_key(hour), tags={"cwl/load": "objects"}))
    assert (again["rows_written"], again["replace_transactions"]) == (0, 0)
    assert len(rows(bq_client, dataset)) == 3


def test_a_firehose_range_is_replaced_in_steps_of_windows_per_replace(
    s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name
):
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    earlier = hour - timedelta(hours=1)
    for n, h in enumerate((earlier, hour)):
        body = gzip_envelopes(envelope(GROUP, "w", [(str(n), ms(h), {"session_id": n})]))
        s3.put_object(Bucket=bucket, Key=firehose_key("fh/", h), Body=body)
    path = write_s3_config(
        write_config, local_aws, local_bigquery, dataset, source(bucket), extra="    windows_per_replace: 2\n"
    )
    result = (
        definitions(path)
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            tags={
                ASSET_PARTITION_RANGE_START_TAG: last_window_key(earlier),
                ASSET_PARTITION_RANGE_END_TAG: last_window_key(hour),
            },
        )
    )
    md = load_metadata(result)
    # Five windows in steps of two: [e:45, h:15), [h:15, h:45), [h:45, h+1): the first and the
    # last step hold one object each, each its own transaction; the middle one reads nothing.
    assert (md["replace_steps"], md["replace_transactions"]) == (2, 2)
    assert sorted(r["session_id"] for r in rows(bq_client, dataset)) == [0, 1]
    assert_blocking_checks_pass(result)

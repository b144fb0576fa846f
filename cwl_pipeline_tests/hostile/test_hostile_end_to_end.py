"""The hostile corpus end to end into the BigQuery emulator, through the polling path
(PutLogEvents into local AWS, a window load) and the Firehose S3 path (objects in local S3,
a delivery-window load).

Every event is read back from exactly one of the events table and the rejects table: rows
with byte-exact values (SQL-looking strings, NUL and control characters included), rejects
with their reason and raw message; broken objects as one ``unreadable_object`` reject each.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cwl_pipeline.core.formats import decode_bytes
from cwl_pipeline.core.normalize import MAX_MESSAGE_BYTES
from cwl_pipeline.core.windows import partition_key, to_ms
from cwl_pipeline.s3_objects.decode import delivery_stream_name
from cwl_pipeline_tests.hostile.corpus import (
    GROUP,
    MessageCase,
    case_by_id,
    gzip_bomb,
    message_cases,
    payload,
)
from cwl_pipeline_tests.hostile.outcomes import canonical_json, expected_rejects
from cwl_pipeline_tests.pipeline import polling
from cwl_pipeline_tests.s3 import s3_stack
from cwl_pipeline_tests.stack import Stack, build_stack


def read_back(bq_client, dataset: str, table: str, key: str) -> tuple[dict, dict]:
    """Rows and rejects of a table pair, each keyed by ``key`` (a column name)."""
    rows_sql = (
        f"SELECT {key} AS k, session_id, action, TO_JSON_STRING(params) AS params "
        f"FROM `cwl-local.{dataset}.{table}`"
    )
    rejects_sql = (
        f"SELECT {key} AS k, reason, raw_message, detail, source_object "
        f"FROM `cwl-local.{dataset}.{table}_rejects`"
    )
    rows = [dict(r.items()) for r in bq_client.query(rows_sql).result()]
    rejects = [dict(r.items()) for r in bq_client.query(rejects_sql).result()]
    by_key_rows = {r["k"]: r for r in rows}
    by_key_rejects = {r["k"]: r for r in rejects}
    assert len(by_key_rows) == len(rows) and len(by_key_rejects) == len(rejects), "duplicate keys"
    assert not set(by_key_rows) & set(by_key_rejects), "an event is both a row and a reject"
    return by_key_rows, by_key_rejects


def assert_landed(case: MessageCase, rows: dict, rejects: dict, key, carrier: str) -> None:
    """The case is where it belongs, with its exact values."""
    if case.row is not None:
        assert key in rows, f"{case.id}: not a row ({rejects.get(key, {}).get('reason')})"
        got = rows[key]
        session_id, action, params = case.row
        assert (got["session_id"], got["action"]) == (session_id, action), case.id
        assert canonical_json(got["params"]) == canonical_json(params), case.id
        return
    assert key in rejects, f"{case.id}: not a reject"
    got = rejects[key]
    [(reason, raw)] = expected_rejects([case], carrier)
    assert (got["reason"], got["raw_message"]) == (reason, raw), case.id


@pytest.fixture
def polling_stack(local_aws, local_bigquery, logs_client, write_config, unique_name) -> Stack:
    return polling.make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name)


def test_polling_path(polling_stack, logs_client, bq_client):
    """Each case put with PutLogEvents (one call each: local AWS does not enforce the 1 MB
    batch limit, real AWS would refuse the messages above it) and loaded by one window run."""
    start = polling.window_start()
    cases = [case_by_id("plain_object"), *(c for c in message_cases() if c.polling)]
    times = [start + timedelta(milliseconds=10 * i) for i in range(len(cases))]
    for case, moment in zip(cases, times, strict=True):
        polling.put(logs_client, polling_stack.group, [(moment, case.message)])

    result = polling.materialize(polling_stack.defs, partition_key(start))

    rows, rejects = read_back(bq_client, polling_stack.dataset, "app_events", "timestamp")
    for case, moment in zip(cases, times, strict=True):
        assert_landed(case, rows, rejects, moment, "events")
    assert len(rows) + len(rejects) == len(cases)
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("load_app")[0].metadata.items()}
    assert metadata["events_read"] == len(cases) == metadata["rows_loaded"] + metadata["rows_rejected"]


def firehose_stream(local_aws, local_bigquery, write_config, unique_name, s3, source_keys: str) -> Stack:
    """A Firehose stream ``logs`` on a fresh bucket (prefix ``fh/``) and dataset."""
    bucket = f"cwl-hostile-{unique_name}"
    s3.create_bucket(Bucket=bucket)
    source = f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, {source_keys}}}"
    yaml = s3_stack.s3_stack_yaml(local_aws, local_bigquery, f"ds_{unique_name}", source)
    return build_stack(write_config, bucket=bucket, **yaml)


@pytest.fixture
def firehose_stack(local_aws, local_bigquery, write_config, unique_name, s3) -> Stack:
    return firehose_stream(
        local_aws,
        local_bigquery,
        write_config,
        unique_name,
        s3,
        "record_format: envelopes_gzip, max_decompressed_bytes: 16MiB",
    )


@pytest.fixture
def s3(local_aws):
    return s3_stack.s3_client(local_aws.url)


def test_firehose_s3_path(firehose_stack, s3, bq_client):
    """Message cases in a gzip object and a decompressed (JSON lines) object whose key looks
    like SQL; plus a truncated object, a gzip bomb over the stream's 16 MiB limit and garbage
    between gzip members, each one ``unreadable_object`` reject while the rest of the window
    loads. Loading the window again replaces it with the same rows."""
    hour = s3_stack.key_hour()
    base = to_ms(hour)
    cases = [case_by_id("plain_object"), *(c for c in message_cases() if "firehose" in c.carriers())]
    gz, _ = payload("firehose", cases, base_ms=base, first_id=1)
    lines, _ = payload("firehose_json", cases, base_ms=base, first_id=100_001)
    good_member, _ = payload("subscription", [case_by_id("plain_object")], base_ms=base, first_id=900_001)
    broken = {
        "truncated": good_member[:-6],
        "bomb": gzip_bomb(64 << 20),
        "garbage": good_member + b"GARBAGE" + good_member,
    }
    bucket = firehose_stack.bucket
    keys = {}
    for name, body in {"gz": gz, "lines": lines, **broken}.items():
        stream = "x'; DROP TABLE logs; --`\\" if name == "lines" else "cwl-delivery"
        keys[name] = s3_stack.firehose_key("fh/", hour, stream)
        s3.put_object(Bucket=bucket, Key=keys[name], Body=body)

    result = s3_stack.materialize(firehose_stack.defs, s3_stack.last_window_key(hour))

    rows, rejects = read_back(bq_client, firehose_stack.dataset, "logs", "event_id")
    for first_id in (1, 100_001):
        for i, case in enumerate(cases):
            assert_landed(case, rows, rejects, str(first_id + i), "firehose")
    details = sorted(r["detail"] for r in rejects.values() if r["reason"] == "unreadable_object")
    assert len(details) == 3
    assert any("truncated gzip data" in d for d in details)
    assert any("decompressed size exceeds 16777216 bytes" in d for d in details)
    assert any("unexpected non-gzip bytes after gzip member 1" in d for d in details)
    assert len(rows) + len(rejects) == 2 * len(cases) + 3
    too_large = [r for r in rejects.values() if r["reason"] == "too_large"]
    assert too_large and all(len(r["raw_message"].encode()) <= MAX_MESSAGE_BYTES for r in too_large)
    metadata = s3_stack.load_metadata(result)
    s3_stack.assert_reconciles(metadata)
    assert metadata["objects_unreadable"] == 3
    assert metadata["events_read"] == 2 * len(cases) + 3
    sources = {r["source_object"] for r in rejects.values()}
    assert f"s3://{bucket}/{keys['lines']}" in sources

    s3_stack.materialize(firehose_stack.defs, s3_stack.last_window_key(hour))
    again_rows, again_rejects = read_back(bq_client, firehose_stack.dataset, "logs", "event_id")
    assert (set(again_rows), set(again_rejects)) == (set(rows), set(rejects))


def test_firehose_messages_records(local_aws, local_bigquery, write_config, unique_name, s3, bq_client):
    """Firehose with message extraction: one raw message per line, bytes that are not UTF-8
    included; ids and the timestamp (the object's LastModified) are derived."""
    stack = firehose_stream(
        local_aws,
        local_bigquery,
        write_config,
        unique_name,
        s3,
        f"record_format: messages, log_group: {GROUP}",
    )
    hour = s3_stack.key_hour()
    cases = [case_by_id("plain_object"), *(c for c in message_cases() if "messages" in c.carriers())]
    data, _ = payload("messages", cases)
    key = s3_stack.firehose_key("fh/", hour)
    s3.put_object(Bucket=stack.bucket, Key=key, Body=data)
    modified = s3.head_object(Bucket=stack.bucket, Key=key)["LastModified"]

    result = s3_stack.materialize(stack.defs, s3_stack.last_window_key(hour))

    # The ids the pipeline derives, in line order (derivation itself is tested elsewhere).
    ids = [
        e.event_id
        for e in decode_bytes(
            data,
            format="messages",
            log_group=GROUP,
            log_stream=delivery_stream_name(key),
            default_timestamp_ms=to_ms(modified),
        )
    ]
    rows, rejects = read_back(bq_client, stack.dataset, "logs", "event_id")
    assert len(ids) == len(cases) == len(rows) + len(rejects)
    for case, event_id in zip(cases, ids, strict=True):
        assert_landed(case, rows, rejects, event_id, "messages")
    assert {r["reason"] for r in rejects.values()} >= {"invalid_utf8", "too_large", "not_an_object"}
    s3_stack.assert_reconciles(s3_stack.load_metadata(result))

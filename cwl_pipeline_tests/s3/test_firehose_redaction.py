"""Filters, redaction and the raw table on the Firehose path: S3 objects → BigQuery emulator.

No server filters S3 deliveries: the stream's filter pattern is applied in-process only.
"""

from __future__ import annotations

from datetime import timedelta

from cwl_pipeline_tests.s3.s3_stack import (
    assert_blocking_checks_pass,
    definitions,
    envelope,
    firehose_key,
    gzip_envelopes,
    key_hour,
    last_window_key,
    load_metadata,
    materialize,
    ms,
    write_s3_config,
)

GROUP = "/test/worker"
SALT_ENV = "CWL_TEST_FIREHOSE_SALT"
EMAIL, CARD, TOKEN = "bob@example.org", "5500000000000004", "tok-very-secret"


def test_firehose_deliveries_are_filtered_and_redacted_before_any_table(
    s3, bucket, bq_client, local_aws, local_bigquery, write_config, unique_name, monkeypatch
):
    monkeypatch.setenv(SALT_ENV, "firehose-pepper")
    dataset = f"ds_{unique_name}"
    hour = key_hour()
    t0 = ms(hour + timedelta(minutes=3))
    events = [
        ("201", t0, {"session_id": 1, "action": f"pay {CARD}", "params": {"user": EMAIL, "token": TOKEN}}),
        ("202", t0 + 1, {"session_id": "x", "action": EMAIL}),  # a reject (session_id not INT64)
        (
            "203",
            t0 + 2,
            {"session_id": 3, "action": "heartbeat"},
        ),  # filtered by the term pattern (-heartbeat)
        ("204", t0 + 3, {"session_id": 4, "action": "noise", "params": {"token": TOKEN}}),  # excluded
    ]
    s3.put_object(
        Bucket=bucket,
        Key=firehose_key("fh/", hour),
        Body=gzip_envelopes(envelope(GROUP, "w-1", events)),
    )
    source = f"{{type: s3, bucket: {bucket}, prefix: fh/, layout: firehose, log_group: {GROUP}}}"
    extra = f"""    raw: true
    filter:
      pattern: '-heartbeat'
      exclude: ['"action": ?"noise"']
    redact:
      - mask: '\\d{{16}}'
      - hash: '[\\w.+-]+@[\\w-]+\\.[\\w.]+'
        salt_env: {SALT_ENV}
      - drop_field: params.token
"""
    path = write_s3_config(write_config, local_aws, local_bigquery, dataset, source, extra)

    result = materialize(definitions(path), last_window_key(hour))

    tables = {
        name: [
            dict(r.items()) for r in bq_client.query(f"SELECT * FROM `cwl-local.{dataset}.{name}`").result()
        ]
        for name in ("logs", "logs_rejects", "logs_raw")
    }
    assert [len(tables[n]) for n in ("logs", "logs_rejects", "logs_raw")] == [1, 1, 2]
    for name, table in tables.items():
        assert not any(secret in repr(table) for secret in (EMAIL, CARD, TOKEN)), name
    assert tables["logs"][0]["action"] == "pay <redacted>"
    assert "sha256:" in tables["logs_rejects"][0]["raw_message"]
    md = load_metadata(result)
    assert (md["events_read"], md["events_filtered"], md["events_redacted"]) == (4, 2, 2)
    assert md["events_read"] == md["rows_loaded"] + md["rows_rejected"] + md["duplicates_dropped"] + 2
    assert_blocking_checks_pass(result)

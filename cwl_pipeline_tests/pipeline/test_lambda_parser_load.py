"""A Lambda log group through a real polling load: local AWS → lambda parser → BigQuery emulator."""

from __future__ import annotations

import json
from datetime import timedelta

from cwl_pipeline.core.windows import partition_key, to_ms
from cwl_pipeline_tests.pipeline.polling import make_stack, materialize, put, window_start

RID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"


def test_lambda_lines_land_typed_and_the_reject_rate_check_passes(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack = make_stack(
        local_aws, local_bigquery, logs_client, write_config, unique_name, extra="    parser: lambda"
    )
    start = window_start()
    at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731
    powertools_time = at(2).strftime("%Y-%m-%d %H:%M:%S,") + "250+0000"
    iso = lambda seconds: at(seconds).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # noqa: E731
    lines = [
        "INIT_START Runtime Version: python:3.12.v38\tRuntime Version ARN: arn:aws:lambda:::runtime:a1\n",
        f"START RequestId: {RID} Version: $LATEST\n",
        "processing order 4711\n",
        json.dumps(
            {"level": "INFO", "message": "order accepted", "timestamp": powertools_time, "service": "orders"}
        ),
        json.dumps({"level": "INFO", "message": "clock skew", "timestamp": "not a time"}),
        f"[ERROR]\t{iso(2)}\t{RID}\tpayment declined\nTraceback (most recent call last):\n"
        '  File "/var/task/app.py", line 51, in charge\napp.PaymentDeclined: 4711\n',
        f"{iso(3)} {RID} Task timed out after 3.00 seconds\n",
        f"END RequestId: {RID}\n",
        f"REPORT RequestId: {RID}\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 71 MB\tInit Duration: 250.37 ms\tStatus: timeout\n",
    ]
    put(logs_client, stack.group, [(at(i + 1), line) for i, line in enumerate(lines)])

    result = materialize(stack.defs, partition_key(start))

    table = f"cwl-local.{stack.dataset}.app_events"
    loaded = [
        dict(r.items())
        for r in bq_client.query(
            "SELECT record_type, request_id, level, logged_at, message, duration_ms, billed_duration_ms, "
            "memory_size_mb, max_memory_used_mb, init_duration_ms, timeout_seconds, status, "
            f"TO_JSON_STRING(data) AS data FROM `{table}` ORDER BY timestamp"
        ).result()
    ]
    assert [r["record_type"] for r in loaded] == [
        "init_start", "start", "log", "log", "log", "log", "timeout", "end", "report"
    ]  # fmt: skip
    report = loaded[-1]
    assert {k: report[k] for k in ("request_id", "duration_ms", "billed_duration_ms", "memory_size_mb")} == {
        "request_id": RID,
        "duration_ms": 3000.0,
        "billed_duration_ms": 3000,
        "memory_size_mb": 128,
    }
    assert (report["max_memory_used_mb"], report["init_duration_ms"], report["status"]) == (
        71,
        250.37,
        "timeout",
    )
    assert loaded[6]["timeout_seconds"] == 3.0
    assert to_ms(loaded[3]["logged_at"]) == to_ms(at(2)) + 250
    assert json.loads(loaded[3]["data"])["service"] == "orders"
    assert loaded[4]["logged_at"] is None  # unreadable: NULL, and counted
    assert to_ms(loaded[5]["logged_at"]) == to_ms(at(2))
    assert loaded[5]["level"] == "ERROR" and loaded[5]["message"].endswith("app.PaymentDeclined: 4711")
    rejects = list(bq_client.query(f"SELECT reason FROM `{table}_rejects`").result())
    assert rejects == []

    metadata = result.asset_materializations_for_node("load_app")[0].metadata
    assert (metadata["rows_loaded"].value, metadata["rows_rejected"].value) == (len(lines), 0)
    assert metadata["parse_warnings.logged_at"].value == 1
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["reject_rate"].passed and checks["completeness"].passed and checks["schema_matches"].passed

"""Redaction end to end: local AWS → polling loads → BigQuery emulator, secrets in every spelling.

A Lambda log group (JSON log format) holds secrets written plainly, JSON-escaped and inside a
string-encoded JSON ``message`` (lines and sources: :mod:`.secret_lines`). A refresh of the
open window appends to the live table; the settled load writes the events, rejects and raw
tables. No spelling of any secret may appear in any of the four tables, in what Dagster stores
about the runs (event log with the run metadata, run record), in captured output or logging.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster_shared.serdes import serialize_value

from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline_tests.pipeline.polling import WINDOW, materialize, put
from cwl_pipeline_tests.security.secret_lines import (
    EMAIL_RULE,
    ESCAPED,
    KEPT_LINES,
    PASSWORD_RULE,
    REJECTED_LINES,
    STRICT_LAMBDA_COLUMNS,
    STRING_JSON_ESCAPED,
    WEBHOOK_RULE,
    leaks,
)
from cwl_pipeline_tests.stack import build_stack

SALT_ENV = "CWL_TEST_REDACTION_SALT"


def _extra() -> str:
    redact = [
        {"mask": WEBHOOK_RULE},
        {"hash": EMAIL_RULE, "salt_env": SALT_ENV},
        {"drop_field": PASSWORD_RULE},
    ]
    return f"    schema: lambda_strict\n    raw: true\n    redact: {json.dumps(redact)}\n"


def _rows(bq_client, dataset: str, table: str) -> list[dict]:
    sql = f"SELECT * FROM `cwl-local.{dataset}.{table}` ORDER BY timestamp"
    return [dict(r.items()) for r in bq_client.query(sql).result()]


def _stored_texts(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """The run record and every event of the run's log (metadata and checks included), serialized."""
    texts = [serialize_value(instance.get_run_by_id(result.run_id))]
    return texts + [serialize_value(entry) for entry in instance.all_logs(result.run_id)]


def test_no_spelling_of_a_secret_reaches_a_table_the_run_records_or_the_logs(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, monkeypatch, capfd, caplog
):
    monkeypatch.setenv(SALT_ENV, "salt-for-the-redaction-test")
    caplog.set_level(logging.INFO)
    for name in ("cwl_pipeline", "dagster"):
        caplog.set_level(logging.DEBUG, logger=name)
    group = f"/aws/lambda/signup-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    columns = json.dumps(STRICT_LAMBDA_COLUMNS)
    stack = build_stack(
        lambda text: write_config(
            f"schemas:\n  lambda_strict:\n    parser: lambda\n    columns: {columns}\n{text}"
        ),
        group=group,
        aws_url=local_aws.url,
        bq_url=local_bigquery.url,
        dataset=f"ds_{unique_name}",
        source=f'{{log_groups: ["{group}"]}}',
        bigquery_extra=f', storage_write_endpoint: "127.0.0.1:{local_bigquery.grpc_port}"',
        extra=_extra(),
    )
    now = datetime.now(UTC)
    start = floor_to_window(now, WINDOW)
    if now - start < timedelta(seconds=20):  # room for the events inside the open window
        start -= WINDOW
    lines = (*KEPT_LINES, *REJECTED_LINES)
    put(logs_client, group, [(start + timedelta(seconds=i + 1), line) for i, line in enumerate(lines)])
    key, instance = partition_key(start), dg.DagsterInstance.ephemeral()

    refresh = materialize(stack.defs, key, instance=instance, tags={"cwl/load": "refresh"})
    settled = materialize(stack.defs, key, instance=instance, tags={"cwl/load": "settled"})

    tables = {
        suffix: _rows(bq_client, stack.dataset, f"app_events{suffix}")
        for suffix in ("", "_rejects", "_raw", "_live")
    }
    assert {suffix: len(rows) for suffix, rows in tables.items()} == {
        "": len(KEPT_LINES),
        "_rejects": len(REJECTED_LINES),
        "_raw": len(lines),
        "_live": len(KEPT_LINES),
    }
    for suffix, rows in tables.items():
        assert not leaks(repr(rows)), f"app_events{suffix}: {leaks(repr(rows))}"
    # The secrets were there, hidden: the JSON-escaped line's typed message is masked and hashed.
    events = tables[""]
    escaped = events[KEPT_LINES.index(ESCAPED)]
    assert escaped["message"].startswith("posting alert to <redacted> for sha256:")
    inner = json.loads(events[KEPT_LINES.index(STRING_JSON_ESCAPED)]["message"])
    assert set(inner) == {"event", "email", "webhook"} and inner["webhook"] == "<redacted>"
    assert [r["reason"] for r in tables["_rejects"]] == ["missing_required:request_id"] * 2

    metadata = settled.asset_materializations_for_node("load_app")[0].metadata
    assert metadata["events_redacted"].value == len(lines)
    out, err = capfd.readouterr()
    texts = [*_stored_texts(instance, refresh), *_stored_texts(instance, settled), out, err, caplog.text]
    found = sorted({marker for text in texts for marker in leaks(text)})
    assert not found, f"secrets in the run records or logs: {found}"

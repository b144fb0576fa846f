"""Filters, redaction and the raw table through real polling loads: local AWS → BigQuery emulator.

A redacted value must reach none of the three tables; filtered events are counted and the
completeness check accounts for them; the typed table is re-derived from the raw table alone.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cwl_pipeline.config import CHUNK_EVENTS_ENV, load_config
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.pipeline.polling import failure_text, materialize, put, window_start

SALT_ENV = "CWL_TEST_PII_SALT"
EMAIL, CARD, PASSWORD = "alice@example.com", "4111111111111111", "hunter2-secret"
SECRETS = (EMAIL, CARD, PASSWORD)

# The pattern tests session_id, not action: event 2's action is an object, and a selector that
# reaches an object matches neither = nor != (AWS's filter pattern syntax page).
RULES = f"""    raw: true
    filter:
      pattern: '{{ $.session_id != 3 }}'
      exclude: ['DEBUG']
    redact:
      - mask: '\\b\\d{{16}}\\b'
      - hash: '[\\w.+-]+@[\\w-]+\\.[\\w.]+'
        salt_env: {SALT_ENV}
      - drop_field: params.password
"""


def _config(write_config, local_aws, local_bigquery, group: str, dataset: str, schema: str = "") -> str:
    return write_config(
        f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}"}}
schemas:
  v2:
    columns:
      - {{name: timestamp, type: TIMESTAMP, source: event_timestamp, required: true}}
      - {{name: session_id, type: INT64, path: session_id}}
      - {{name: action, type: STRING, path: action}}
      - {{name: params, type: JSON, path: params}}
      - {{name: email, type: STRING, path: params.email}}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    table: app_events
    window: 15m
    start: "2026-01-01T00:00:00Z"
{schema}{RULES}"""
    )


def _all_rows(bq_client, dataset: str, table: str) -> list[dict]:
    return [dict(r.items()) for r in bq_client.query(f"SELECT * FROM `cwl-local.{dataset}.{table}`").result()]


@pytest.fixture
def salt(monkeypatch) -> str:
    monkeypatch.setenv(SALT_ENV, "pepper-for-tests")
    return "pepper-for-tests"


def test_redacted_values_reach_no_table_and_filtered_events_are_counted(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, salt
):
    group, dataset = f"/test/pii-{unique_name}", f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    path = _config(write_config, local_aws, local_bigquery, group, dataset)
    start = window_start()
    at = lambda seconds: start + timedelta(seconds=seconds)  # noqa: E731
    put(
        logs_client,
        group,
        [
            (
                at(1),
                {
                    "session_id": 1,
                    "action": f"login {EMAIL}",
                    "params": {"email": EMAIL, "password": PASSWORD},
                },
            ),
            (at(2), {"session_id": 2, "action": {"card": CARD, "by": EMAIL}}),  # invalid_type: a reject
            (at(3), {"session_id": 3, "action": "healthcheck"}),  # filtered by the JSON pattern
            (at(4), {"session_id": 4, "action": f"DEBUG {CARD}"}),  # filtered by the exclude regex
            (at(5), f"plain text {EMAIL}"),  # not JSON: no JSON pattern matches it
        ],
    )

    result = materialize(build_definitions(load_config(path)), partition_key(start))

    events = _all_rows(bq_client, dataset, "app_events")
    rejects = _all_rows(bq_client, dataset, "app_events_rejects")
    raw = _all_rows(bq_client, dataset, "app_events_raw")
    assert (len(events), len(rejects), len(raw)) == (1, 1, 2)
    for table in (events, rejects, raw):
        text = repr(table)
        assert not any(secret in text for secret in SECRETS), text
    assert events[0]["action"].startswith("login sha256:")
    assert "password" not in events[0]["params"]
    assert rejects[0]["reason"] == "invalid_type:action" and "<redacted>" in rejects[0]["raw_message"]
    assert sorted(r["message"][:30] for r in raw)[0].startswith('{"session_id":')

    metadata = result.asset_materializations_for_node("load_app")[0].metadata
    assert (metadata["events_filtered"].value, metadata["events_redacted"].value) == (3, 2)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["completeness"].passed, checks["completeness"].description
    completeness = checks["completeness"].metadata
    assert (completeness["events_at_source"].value, completeness["events_filtered"].value) == (5, 3)
    assert completeness["events_expected"].value == 2

    # Loaded again by a sensor (INSERT_MISSING): nothing doubles in any of the three tables.
    materialize(build_definitions(load_config(path)), partition_key(start), tags={"cwl/load": "settled"})
    assert [
        len(_all_rows(bq_client, dataset, t)) for t in ("app_events", "app_events_rejects", "app_events_raw")
    ] == [
        1,
        1,
        2,
    ]


def test_a_term_pattern_is_applied_by_the_server_and_in_process(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, salt
):
    """moto applies plain term patterns itself: the filtered events never reach the reader."""
    group, dataset = f"/test/terms-{unique_name}", f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    path = write_config(
        f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}"}}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    table: app_events
    window: 15m
    start: "2026-01-01T00:00:00Z"
    raw: true
    filter: {{pattern: 'keep'}}
"""
    )
    start = window_start()
    put(
        logs_client,
        group,
        [
            (start + timedelta(seconds=1), {"session_id": 1, "action": "keep"}),
            (start + timedelta(seconds=2), {"session_id": 2, "action": "drop"}),
        ],
    )
    result = materialize(build_definitions(load_config(path)), partition_key(start))
    metadata = result.asset_materializations_for_node("load_app")[0].metadata
    # Filtered by FilterLogEvents: not read, so not counted as filtered in-process.
    assert (metadata["events_read"].value, metadata["events_filtered"].value) == (1, 0)
    assert [r["action"] for r in _all_rows(bq_client, dataset, "app_events")] == ["keep"]
    assert len(_all_rows(bq_client, dataset, "app_events_raw")) == 1


def test_the_typed_table_is_rederived_from_the_raw_table_without_cloudwatch(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, salt, monkeypatch
):
    group, dataset = f"/test/rederive-{unique_name}", f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    start = window_start()
    put(
        logs_client,
        group,
        [
            (start + timedelta(seconds=1), {"session_id": 1, "action": "a", "params": {"email": EMAIL}}),
            (start + timedelta(seconds=2), {"session_id": 2, "action": "b", "params": {"email": "b@x.io"}}),
            (start + timedelta(seconds=3), {"session_id": "not a number", "action": "c"}),  # a reject
        ],
    )
    path = _config(write_config, local_aws, local_bigquery, group, dataset)
    materialize(build_definitions(load_config(path)), partition_key(start))

    # The schema changes (a new column), and CloudWatch no longer has the events.
    logs_client.delete_log_group(logGroupName=group)
    path_v2 = _config(write_config, local_aws, local_bigquery, group, dataset, schema="    schema: v2\n")
    # One event per chunk: the raw rows are read back and normalized chunk by chunk.
    monkeypatch.setenv(CHUNK_EVENTS_ENV, "1")
    defs = build_definitions(load_config(path_v2))
    plain = materialize(defs, partition_key(start), raise_on_error=False)
    assert not plain.success and "does not exist" in failure_text(plain)

    result = materialize(defs, partition_key(start), tags={"cwl/rederive_from": "raw"})

    events = _all_rows(bq_client, dataset, "app_events")
    assert sorted(r["session_id"] for r in events) == [1, 2]
    assert all(r["email"].startswith("sha256:") for r in events)  # the new column, from the raw rows
    assert len(_all_rows(bq_client, dataset, "app_events_rejects")) == 1
    assert len(_all_rows(bq_client, dataset, "app_events_raw")) == 3
    metadata = result.asset_materializations_for_node("load_app")[0].metadata
    assert metadata["rederived_from"].value == "app_events_raw"
    assert (
        metadata["events_read"].value,
        metadata["rows_loaded"].value,
        metadata["rows_rejected"].value,
    ) == (
        3,
        2,
        1,
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["completeness"].passed, checks["completeness"].description


def test_a_missing_salt_variable_is_a_clear_config_error(
    local_aws, local_bigquery, write_config, unique_name, monkeypatch
):
    monkeypatch.delenv(SALT_ENV, raising=False)
    path = _config(write_config, local_aws, local_bigquery, "/test/x", f"ds_{unique_name}")
    with pytest.raises(
        ValueError, match=f"redact\\[1\\].salt_env: environment variable {SALT_ENV} is not set"
    ):
        load_config(path)

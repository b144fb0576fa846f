"""The CloudWatch polling path end to end: local AWS → Dagster asset → BigQuery emulator."""

from __future__ import annotations

import json
from datetime import timedelta

from cwl_pipeline.adapters import bigquery_loader
from cwl_pipeline.adapters.bigquery_transactions import replace_script
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.pipeline.polling import (
    WINDOW,
    failure_text,
    materialize,
    put,
    rows,
    window_start,
)


def test_window_loads_rows_and_rejects_and_rerun_is_idempotent(stack, logs_client, bq_client):
    start = window_start()
    put(
        logs_client,
        stack.group,
        [
            (
                start + timedelta(seconds=1, milliseconds=123),
                {"session_id": 1, "action": "click", "params": {"x": 1}},
            ),
            (start + timedelta(minutes=5), {"session_id": "2", "action": "view"}),
            (start + timedelta(minutes=7), "not json at all"),
            (start + timedelta(minutes=14, seconds=59, milliseconds=999), {"session_id": 3}),
            # Outside the window on both sides: must not be loaded by this partition.
            (start - timedelta(milliseconds=1), {"session_id": 98}),
            (start + WINDOW, {"session_id": 99}),
        ],
    )
    result = materialize(stack.defs, partition_key(start))
    loaded = rows(bq_client, stack.dataset)
    assert [r["session_id"] for r in loaded] == [1, 2, 3]
    assert loaded[0]["timestamp"] == start + timedelta(seconds=1, milliseconds=123)
    assert json.loads(loaded[0]["params"]) == {"x": 1}
    assert loaded[1]["params"] is None and loaded[2]["action"] is None
    assert {r["log_group"] for r in loaded} == {stack.group}
    assert {r["log_stream"] for r in loaded} == {"web-1"}

    rejects = list(
        bq_client.query(
            f"SELECT reason, raw_message FROM `cwl-local.{stack.dataset}.app_events_rejects`"
        ).result()
    )
    assert [(r["reason"], r["raw_message"]) for r in rejects] == [("invalid_json", "not json at all")]

    events_md = result.asset_materializations_for_node("load_app")[0].metadata
    assert events_md["events_read"].value == 4
    assert events_md["rows_loaded"].value == 3
    assert events_md["rows_rejected"].value == 1

    # Re-running the partition any number of times gives the same table.
    materialize(stack.defs, partition_key(start))
    materialize(stack.defs, partition_key(start))
    assert rows(bq_client, stack.dataset) == loaded
    count = next(
        iter(
            bq_client.query(
                f"SELECT COUNT(*) AS n FROM `cwl-local.{stack.dataset}.app_events_rejects`"
            ).result()
        )
    )["n"]
    assert count == 1


def test_rerun_picks_up_late_events_without_duplicates(stack, logs_client, bq_client):
    start = window_start()
    put(logs_client, stack.group, [(start + timedelta(minutes=1), {"session_id": 1})])
    materialize(stack.defs, partition_key(start))
    put(logs_client, stack.group, [(start + timedelta(minutes=2), {"session_id": 2})])
    materialize(stack.defs, partition_key(start))
    assert [r["session_id"] for r in rows(bq_client, stack.dataset)] == [1, 2]


def test_failure_inside_the_replace_leaves_previous_rows_intact(stack, logs_client, bq_client, monkeypatch):
    start = window_start()
    put(logs_client, stack.group, [(start + timedelta(minutes=1), {"session_id": 1, "action": "a"})])
    materialize(stack.defs, partition_key(start))
    before = rows(bq_client, stack.dataset)
    put(logs_client, stack.group, [(start + timedelta(minutes=2), {"session_id": 2, "action": "b"})])

    # Fault injection: the emulator cannot fail on its own between the DELETE and the COMMIT,
    # so the replace script gets a statement that raises after the deletes and inserts ran.
    def failing_script(*args):
        script = replace_script(*args)
        return script.replace("COMMIT TRANSACTION;", "SELECT ERROR('injected failure');\nCOMMIT TRANSACTION;")

    monkeypatch.setattr(bigquery_loader, "replace_script", failing_script)
    result = materialize(stack.defs, partition_key(start), raise_on_error=False)
    assert not result.success
    assert rows(bq_client, stack.dataset) == before
    tables = [t.table_id for t in bq_client.list_tables(stack.dataset)]
    assert not [t for t in tables if t.startswith("_stage_")], "staging tables are dropped"


def test_failed_staging_load_leaves_previous_rows_intact(stack, logs_client, bq_client, monkeypatch):
    start = window_start()
    put(logs_client, stack.group, [(start + timedelta(minutes=1), {"session_id": 1})])
    materialize(stack.defs, partition_key(start))
    before = rows(bq_client, stack.dataset)

    # Fault injection: a load job that fails, as a quota or network error would.
    def broken_load(self, *args, **kwargs):
        raise ConnectionError("injected: connection reset during upload")

    monkeypatch.setattr("google.cloud.bigquery.Client.load_table_from_file", broken_load)
    result = materialize(stack.defs, partition_key(start), raise_on_error=False)
    assert not result.success
    assert rows(bq_client, stack.dataset) == before


def test_missing_log_group_is_one_clear_error(local_aws, local_bigquery, write_config, unique_name):
    path = write_config(
        f"""
aws: {{endpoint_url: "{local_aws.url}", max_attempts: 1}}
bigquery: {{project: cwl-local, dataset: ds_{unique_name}, api_endpoint: "{local_bigquery.url}"}}
streams:
  - name: app
    source: {{log_groups: ["/does/not-exist-{unique_name}"]}}
    start: "2026-01-01T00:00:00Z"
"""
    )
    defs = build_definitions(load_config(path))
    result = materialize(defs, partition_key(window_start()), raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert SourceError.__name__ in message
    assert f"CloudWatch log group '/does/not-exist-{unique_name}' does not exist" in message


def test_unreachable_bigquery_endpoint_is_one_clear_error(local_aws, logs_client, write_config, unique_name):
    group = f"/test/unreachable-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    path = write_config(
        f"""
aws: {{endpoint_url: "{local_aws.url}", max_attempts: 1}}
bigquery: {{project: cwl-local, dataset: ds_x, api_endpoint: "http://127.0.0.1:9", retry_timeout: 2s}}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    start: "2026-01-01T00:00:00Z"
"""
    )
    defs = build_definitions(load_config(path))
    result = materialize(defs, partition_key(window_start()), raise_on_error=False)
    message = failure_text(result)
    assert "DestinationError" in message
    assert "BigQuery endpoint http://127.0.0.1:9 unreachable" in message


def test_a_log_group_removed_from_the_config_keeps_its_rows(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    """A window's scope is its time range *and* the log groups it read: reloading the window
    after a group left the config replaces only the remaining group's rows."""
    groups = [f"/test/kept-{unique_name}", f"/test/removed-{unique_name}"]
    dataset = f"ds_{unique_name}"
    start = window_start()
    for number, group in enumerate(groups):
        logs_client.create_log_group(logGroupName=group)
        logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
        put(
            logs_client,
            group,
            [(start + timedelta(minutes=1 + i), {"session_id": 10 * number + i}) for i in range(2)],
        )

    def defs_reading(names: list[str]):
        path = write_config(
            f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}"}}
streams:
  - name: app
    source: {{log_groups: {json.dumps(names)}}}
    table: app_events
    window: 15m
    start: "2026-01-01T00:00:00Z"
"""
        )
        return build_definitions(load_config(path))

    key = partition_key(start)
    assert materialize(defs_reading(groups), key).success
    assert sorted(r["session_id"] for r in rows(bq_client, dataset)) == [0, 1, 10, 11]

    put(logs_client, groups[0], [(start + timedelta(minutes=9), {"session_id": 2})])
    assert materialize(defs_reading(groups[:1]), key).success
    stored = rows(bq_client, dataset)
    assert sorted(r["session_id"] for r in stored) == [0, 1, 2, 10, 11]
    assert {r["log_group"] for r in stored if r["session_id"] >= 10} == {groups[1]}

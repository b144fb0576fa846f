"""How each kind of load writes (docs/cost.md), against the local stack.

* a refresh of the open window appends the new rows to ``<table>_live`` through the emulator's
  Storage Write API and touches neither the events nor the rejects table;
* each live row carries its event's key hash, on which the ``<table>_recent`` view
  deduplicates; the view shows every event once, whether it is still live or settled;
* a settled load inserts what is missing (no DELETE); loading it again writes nothing; a row
  that is not in the source is kept, and the completeness check fails on it;
* a load launched by hand replaces its window (a row removed from BigQuery by hand is back,
  a row added by hand is gone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.core.key_digest import key_hash
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, materialize, put, window_start
from cwl_pipeline_tests.stack import Stack


def live_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, storage_write) -> Stack:
    """A polling stream whose open-window refreshes append through the emulator's gRPC port,
    behind the stand-in that refuses what BigQuery's Storage Write API refuses."""
    grpc = f', storage_write_endpoint: "{storage_write.endpoint}"'
    return make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, bigquery_extra=grpc)


def ids(bq_client, dataset: str, table: str) -> list[int]:
    sql = f"SELECT session_id FROM `cwl-local.{dataset}.{table}` ORDER BY session_id"
    return [r["session_id"] for r in bq_client.query(sql).result()]


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [events] = [
        m for m in result.asset_materializations_for_node("load_app") if m.asset_key.path == ["app_events"]
    ]
    return {k: v.value for k, v in events.metadata.items()}


def test_refresh_appends_to_the_live_table_and_the_view_shows_each_event_once(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, storage_write
):
    stack = live_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, storage_write)
    now = datetime.now(UTC)
    start = floor_to_window(now, WINDOW)
    if now - start < timedelta(seconds=20):  # room for events inside the open window
        start -= WINDOW
    key, instance = partition_key(start), dg.DagsterInstance.ephemeral()
    refresh = {"cwl/load": "refresh"}
    put(logs_client, stack.group, [(start + timedelta(seconds=i + 1), {"session_id": i}) for i in range(3)])

    first = materialize(stack.defs, key, instance=instance, tags=refresh)
    assert metadata(first)["write_mode"] == "live" and metadata(first)["rows_written"] == 3
    assert not [c for c in first.get_asset_check_evaluations()]  # checks wait for the settled load
    assert ids(bq_client, stack.dataset, "app_events_live") == [0, 1, 2]
    live = bq_client.query(f"SELECT * FROM `cwl-local.{stack.dataset}.app_events_live`").result()
    for row in live:
        micros = int(row["timestamp"].timestamp()) * 1_000_000 + row["timestamp"].microsecond
        assert row["event_key"] == key_hash(row["event_id"], micros)
    assert ids(bq_client, stack.dataset, "app_events") == []
    assert storage_write.calls and not [c.refusals for c in storage_write.calls if c.refusals]

    put(logs_client, stack.group, [(start + timedelta(seconds=10), {"session_id": 3})])
    materialize(stack.defs, key, instance=instance, tags=refresh)
    # The second refresh appends the new event (and re-appends at most the last seconds' ones).
    assert set(ids(bq_client, stack.dataset, "app_events_live")) == {0, 1, 2, 3}
    assert ids(bq_client, stack.dataset, "app_events_recent") == [0, 1, 2, 3]

    settled = materialize(stack.defs, key, instance=instance, tags={"cwl/load": "settled"})
    assert metadata(settled)["write_mode"] == "insert_missing"
    assert all(c.passed for c in settled.get_asset_check_evaluations())
    assert ids(bq_client, stack.dataset, "app_events") == [0, 1, 2, 3]
    assert ids(bq_client, stack.dataset, "app_events_recent") == [0, 1, 2, 3]


def test_settled_load_inserts_what_is_missing_and_a_manual_load_replaces(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, storage_write
):
    stack = live_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, storage_write)
    start = window_start()
    key = partition_key(start)
    put(logs_client, stack.group, [(start + timedelta(minutes=i + 1), {"session_id": i}) for i in range(3)])
    put(logs_client, stack.group, [(start + timedelta(minutes=5), "not json")])
    settled = {"cwl/load": "settled"}

    first = materialize(stack.defs, key, tags=settled)
    assert metadata(first)["rows_written"] == 4  # three rows and one reject
    again = materialize(stack.defs, key, tags={"cwl/load": "sweep-15m"})
    assert metadata(again)["rows_written"] == 0
    assert metadata(again)["replace_transactions"] == 0  # nothing new: no transaction
    assert ids(bq_client, stack.dataset, "app_events") == [0, 1, 2]

    table = f"`cwl-local.{stack.dataset}.app_events`"
    bq_client.query(f"DELETE FROM {table} WHERE session_id = 0").result()
    bq_client.query(
        f"INSERT INTO {table} (timestamp, session_id, event_id, log_group, log_stream, ingestion_time, "
        f"loaded_at) VALUES (TIMESTAMP '{(start + timedelta(minutes=9)).isoformat()}', 99, 'stray', "
        f"'{stack.group}', 'web-1', CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP())"
    ).result()
    healed = materialize(stack.defs, key, tags={"cwl/load": "sweep-6h"}, raise_on_error=False)
    assert metadata(healed)["rows_written"] == 1  # the missing row; the stray one is kept...
    assert ids(bq_client, stack.dataset, "app_events") == [0, 1, 2, 99]
    # ...and the completeness check, comparing the source's count with BigQuery's, says so.
    [completeness] = [c for c in healed.get_asset_check_evaluations() if c.check_name == "completeness"]
    assert not completeness.passed and completeness.metadata["rows_in_table"].value == 4

    replaced = materialize(stack.defs, key)  # by hand: replace
    assert metadata(replaced)["write_mode"] == "replace"
    assert ids(bq_client, stack.dataset, "app_events") == [0, 1, 2]


def test_a_load_that_writes_nothing_is_checked_with_the_counts_it_made_before(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name)
    start = window_start()
    key = partition_key(start)
    put(logs_client, stack.group, [(start + timedelta(minutes=i + 1), {"session_id": i}) for i in range(3)])
    put(logs_client, stack.group, [(start + timedelta(minutes=5), "not json")])
    first = materialize(stack.defs, key, tags={"cwl/load": "settled"})
    checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
    assert checks["completeness"].metadata["counted"].value == "after the load"

    sweep = materialize(stack.defs, key, tags={"cwl/load": "sweep-15m"})
    assert metadata(sweep)["replace_transactions"] == 0
    checks = {c.check_name: c for c in sweep.get_asset_check_evaluations()}
    completeness = checks["completeness"]
    assert completeness.passed
    assert completeness.metadata["counted"].value == "before the load, which then wrote nothing"
    assert completeness.metadata["rows_in_table"].value == 3
    assert completeness.metadata["rows_in_rejects_table"].value == 1
    assert checks["no_duplicate_event_ids"].passed

    # A row the source does not hold, added by hand: the sweep inserts nothing, and its count of
    # the window, made in BigQuery before it decided so, shows the extra row.
    table = f"`cwl-local.{stack.dataset}.app_events`"
    bq_client.query(
        f"INSERT INTO {table} (timestamp, session_id, event_id, log_group, log_stream, ingestion_time, "
        f"loaded_at) VALUES (TIMESTAMP '{(start + timedelta(minutes=9)).isoformat()}', 99, 'stray', "
        f"'{stack.group}', 'web-1', CURRENT_TIMESTAMP(), CURRENT_TIMESTAMP())"
    ).result()
    later = materialize(stack.defs, key, tags={"cwl/load": "sweep-6h"}, raise_on_error=False)
    assert metadata(later)["replace_transactions"] == 0
    [completeness] = [c for c in later.get_asset_check_evaluations() if c.check_name == "completeness"]
    assert not completeness.passed and completeness.metadata["rows_in_table"].value == 4

    # A second copy of a stored event (same id and time), added by hand: the count made before
    # the load counts rows, not keys, whether or not the read holds the key.
    bq_client.query(f"INSERT INTO {table} SELECT * FROM {table} WHERE session_id IN (0, 99)").result()
    again = materialize(stack.defs, key, tags={"cwl/load": "sweep-6h"}, raise_on_error=False)
    assert metadata(again)["replace_transactions"] == 0
    checks = {c.check_name: c for c in again.get_asset_check_evaluations()}
    assert checks["completeness"].metadata["counted"].value == "before the load, which then wrote nothing"
    assert checks["completeness"].metadata["rows_in_table"].value == 6

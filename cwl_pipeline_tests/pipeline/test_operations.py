"""Operations: checks passing and failing, freshness, rollups, range backfills, late-data sweeps."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.sql_scopes import time_scope
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.load.tables import LoadScope, StreamTables
from cwl_pipeline.orchestration.checks import LoadFacts, evaluate_load_checks, latest_window_result
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, materialize, put, rows, window_start


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def results_by_name(results) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in results}


@pytest.fixture
def loaded(local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name):
    """One window loaded with 3 rows and 1 reject, on a stream that tolerates 50 % rejects."""
    stack = make_stack(
        local_aws, local_bigquery, logs_client, write_config, unique_name, extra="    max_reject_rate: 0.5"
    )
    start = window_start()
    put(
        logs_client,
        stack.group,
        [
            (start + timedelta(minutes=1), {"session_id": 1, "action": "view"}),
            (start + timedelta(minutes=2), {"session_id": 1, "action": "click"}),
            (start + timedelta(minutes=3), {"session_id": 2, "action": "view"}),
            (start + timedelta(minutes=4), "plain text"),
        ],
    )
    result = materialize(stack.defs, partition_key(start))
    tables = StreamTables.of(stack.config.streams[0])
    loader = BigQueryLoader(bq_client, stack.dataset)
    end = start + WINDOW
    facts = LoadFacts(
        events_at_source=4,
        duplicates_dropped=0,
        stored_elsewhere=0,
        rows_loaded=3,
        rows_rejected=1,
        rows_before=0,
        scope=LoadScope(time_scope("timestamp", start, end), time_scope("timestamp", start, end)),
        final_sweep=False,
    )
    return {
        **vars(stack),
        "start": start,
        "result": result,
        "tables": tables,
        "loader": loader,
        "facts": facts,
    }


def test_every_check_passes_on_a_clean_load(loaded):
    checks = checks_of(loaded["result"])
    assert set(checks) == {"completeness", "no_duplicate_event_ids", "reject_rate", "schema_matches"}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    assert checks["completeness"].metadata["rows_in_table"].value == 3
    assert checks["reject_rate"].metadata["reject_rate"].value == 0.25


def test_reject_rate_fails_above_threshold_and_passes_below(loaded):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    results = results_by_name(evaluate_load_checks(loader, tables, facts))
    assert tables.stream.max_reject_rate == 0.5  # set by the fixture config
    assert results["reject_rate"].passed
    strict = StreamTables.of(_with(tables.stream, max_reject_rate=0.1))
    results = results_by_name(evaluate_load_checks(loader, strict, facts))
    assert not results["reject_rate"].passed
    assert results["reject_rate"].severity == dg.AssetCheckSeverity.WARN


def test_completeness_fails_when_counts_do_not_reconcile(loaded):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    # The source yielded more events than BigQuery holds.
    results = results_by_name(evaluate_load_checks(loader, tables, _replace(facts, events_at_source=5)))
    assert not results["completeness"].passed
    assert "1 events read are not in BigQuery" in results["completeness"].description
    # Events another load stored already are not expected in this scope.
    elsewhere = _replace(facts, events_at_source=5, stored_elsewhere=1, rows_loaded=4)
    assert results_by_name(evaluate_load_checks(loader, tables, elsewhere))["completeness"].passed
    # BigQuery holds a row the load did not write (someone else wrote into the window).
    loader.query_rows(
        f"INSERT INTO `{loader.table_id('app_events')}` (timestamp, session_id, event_id, log_group, "
        f"log_stream) VALUES (TIMESTAMP '{(loaded['start'] + timedelta(minutes=9)).isoformat()}', 9, "
        "'stray', 'g', 's')"
    )
    results = results_by_name(evaluate_load_checks(loader, tables, facts))
    assert not results["completeness"].passed
    assert results["completeness"].metadata["rows_in_table"].value == 4


def test_completeness_warns_on_late_events_at_the_final_sweep(loaded):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    late = _replace(facts, rows_before=3, final_sweep=True)
    result = results_by_name(evaluate_load_checks(loader, tables, late))["completeness"]
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["new_rows_since_previous_load"].value == 1
    on_time = _replace(facts, rows_before=4, final_sweep=True)
    assert results_by_name(evaluate_load_checks(loader, tables, on_time))["completeness"].passed


def test_duplicate_event_ids_fail(loaded):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    table = loader.table_id("app_events")
    loader.query_rows(
        f"INSERT INTO `{table}` (timestamp, session_id, event_id, log_group, log_stream) "
        f"SELECT timestamp, session_id, event_id, log_group, log_stream FROM `{table}` LIMIT 1"
    )
    result = results_by_name(evaluate_load_checks(loader, tables, facts))["no_duplicate_event_ids"]
    assert not result.passed and result.metadata["duplicate_rows"].value == 1


def test_schema_check_passes_with_a_note_on_an_undeclared_column(loaded, bq_client):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    table = bq_client.get_table(loader.table_id("app_events"))
    table.schema = [*table.schema, bigquery.SchemaField("surprise", "STRING")]
    bq_client.update_table(table, ["schema"])
    result = results_by_name(evaluate_load_checks(loader, tables, facts))["schema_matches"]
    # Loads leave it NULL and keep its data: no reason to hold the rollups back.
    assert result.passed
    assert result.metadata["undeclared_columns_kept"].value == "surprise"
    assert "surprise STRING NULLABLE is no longer declared" in result.description


def test_schema_check_fails_on_a_retyped_table(loaded, bq_client):
    tables, loader, facts = loaded["tables"], loaded["loader"], loaded["facts"]
    # The emulator takes a type change through the API (BigQuery would refuse it); it stands for
    # a table changed behind the pipeline's back after its last load.
    table = bq_client.get_table(loader.table_id("app_events"))
    table.schema = [
        bigquery.SchemaField(f.name, "STRING" if f.name == "session_id" else f.field_type, mode=f.mode)
        for f in table.schema
    ]
    bq_client.update_table(table, ["schema"])
    result = results_by_name(evaluate_load_checks(loader, tables, facts))["schema_matches"]
    assert not result.passed
    assert (
        result.metadata["differences"].value == "column session_id is STRING on the table but declared INT64"
    )


def test_latest_window_loaded_check(loaded):
    stream = loaded["config"].streams[0]
    tables, start = loaded["tables"], loaded["start"]
    instance = dg.DagsterInstance.ephemeral()
    materialize(loaded["defs"], partition_key(start), instance=instance)
    just_settled = start + WINDOW + stream.settle_lag + timedelta(seconds=1)
    assert latest_window_result(instance, tables, just_settled).passed
    next_window_settled = just_settled + WINDOW
    missing = latest_window_result(instance, tables, next_window_settled)
    assert not missing.passed
    assert missing.metadata["expected_window"].value == partition_key(start + WINDOW)


def test_freshness_policy_comes_from_config(
    local_aws, local_bigquery, logs_client, write_config, unique_name
):
    stack = make_stack(
        local_aws,
        local_bigquery,
        logs_client,
        write_config,
        unique_name,
        extra="    freshness: {warn: 20m, fail: 45m}",
    )
    graph = stack.defs.resolve_asset_graph()
    # The hourly rollup is refreshed once an hour, 45 minutes later than a 15-minute window.
    for key, later in (
        (dg.AssetKey("app_events"), timedelta(0)),
        (dg.AssetKey("app_events_hourly_actions"), timedelta(minutes=45)),
    ):
        policy = graph.get(key).freshness_policy
        assert policy.fail_window.to_timedelta() == timedelta(minutes=45) + later
        assert policy.warn_window.to_timedelta() == timedelta(minutes=20) + later


def test_rollups_equal_hand_computed_values(loaded, bq_client, logs_client):
    start = loaded["start"]
    defs = loaded["defs"]
    hour = start.replace(minute=0)
    day = start.replace(hour=0, minute=0)
    materialize(defs, hour.strftime("%Y-%m-%d-%H:%M"), node_name="app_events_hourly_actions")
    materialize(defs, day.strftime("%Y-%m-%d"), node_name="app_events_daily_sessions")
    loaded_rows = rows(bq_client, loaded["dataset"])
    hour_rows = [r for r in loaded_rows if r["timestamp"].replace(minute=0, second=0, microsecond=0) == hour]
    expected_hourly = Counter((r["log_group"], r["action"]) for r in hour_rows)
    hourly = {
        (r["log_group"], r["action"]): (r["events"], r["sessions"])
        for r in bq_client.query(
            f"SELECT * FROM `cwl-local.{loaded['dataset']}.app_events_hourly_actions`"
        ).result()
    }
    assert {k: v[0] for k, v in hourly.items()} == dict(expected_hourly)
    assert hourly[(loaded["group"], "view")][1] == 2  # sessions 1 and 2
    daily = {
        r["session_id"]: (r["events"], r["distinct_actions"], r["first_seen"], r["last_seen"])
        for r in bq_client.query(
            f"SELECT * FROM `cwl-local.{loaded['dataset']}.app_events_daily_sessions`"
        ).result()
    }
    assert daily[1][:2] == (2, 2) and daily[2][:2] == (1, 1)
    assert daily[1][2] == start + timedelta(minutes=1) and daily[1][3] == start + timedelta(minutes=2)


def test_backfilled_range_equals_window_by_window_loads(
    local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name
):
    one = make_stack(local_aws, local_bigquery, logs_client, write_config, f"{unique_name}a")
    # The range run replaces its 4 windows in two steps (3 + 1), each its own transaction.
    two = make_stack(
        local_aws, local_bigquery, logs_client, write_config, f"{unique_name}b", "    windows_per_replace: 3"
    )
    first = window_start() - 3 * WINDOW
    for stack in (one, two):
        put(
            logs_client,
            stack.group,
            [(first + i * timedelta(minutes=7), {"session_id": i, "action": f"a{i % 3}"}) for i in range(8)]
            + [(first + timedelta(minutes=30), "broken {")],
        )
    keys = [partition_key(first + i * WINDOW) for i in range(4)]
    for key in keys:
        materialize(one.defs, key)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        two.defs,
        None,
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )
    strip = {"event_id", "log_group"}  # the two streams differ only in group and local ids
    left = [{k: v for k, v in r.items() if k not in strip} for r in rows(bq_client, one.dataset)]
    right = [{k: v for k, v in r.items() if k not in strip} for r in rows(bq_client, two.dataset)]
    assert left == right and len(left) == 8
    # Each window of the range run got its own, true figures.
    per_window = {
        m.partition: m.metadata["rows_loaded"].value
        for m in result.asset_materializations_for_node("load_app")
        if m.asset_key == dg.AssetKey("app_events")
    }
    expected = Counter(partition_key(first + (i * timedelta(minutes=7)) // WINDOW * WINDOW) for i in range(8))
    assert per_window == {k: expected.get(k, 0) for k in keys}
    steps = {m.metadata["replace_steps"].value for m in result.asset_materializations_for_node("load_app")}
    assert steps == {2}
    checks = checks_of(result)
    assert all(checks[name].passed for name in ("completeness", "no_duplicate_event_ids", "schema_matches"))
    assert not checks["reject_rate"].passed  # 1 of 9 events rejected, over the default 5 %


def test_late_event_inside_the_sweep_horizon_lands_exactly_once(stack, logs_client, bq_client):
    start = window_start()
    key = partition_key(start)
    put(logs_client, stack.group, [(start + timedelta(minutes=1), {"session_id": 1})])
    materialize(stack.defs, key, tags={LOAD_KIND_TAG: "settled"})
    # CloudWatch accepts the late event after the settled load...
    put(logs_client, stack.group, [(start + timedelta(minutes=5), {"session_id": 2})])
    # ...and the sweep after the horizon loads it; sweeping again changes nothing.
    first = materialize(stack.defs, key, tags={LOAD_KIND_TAG: "sweep-15m"})
    materialize(stack.defs, key, tags={LOAD_KIND_TAG: "sweep-6h"})
    assert [r["session_id"] for r in rows(bq_client, stack.dataset)] == [1, 2]
    completeness = checks_of(first)["completeness"]
    assert completeness.passed  # not the final sweep: late events are expected here
    assert completeness.metadata["new_rows_since_previous_load"].value == 1


def _replace(facts: LoadFacts, **changes) -> LoadFacts:
    return replace(facts, **changes)


def _with(stream, **changes):
    return stream.model_copy(update=changes)

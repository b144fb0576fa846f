"""A polling stream's history backfill through CreateExportTask, then polling of the same windows.

Local AWS accepts events days old, and completes export tasks at once; it writes whole
seconds only into export files (``.000``), so the events here have whole-second times.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import PipelineConfig
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline.exports.tasks import ExportTasks
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline.orchestration.tables import LOAD_KIND_TAG
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.history import read_windows_from_export
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, materialize, put
from cwl_pipeline_tests.s3.s3_stack import s3_client
from cwl_pipeline_tests.stack import Stack

COLUMNS = "timestamp, session_id, action, TO_JSON_STRING(params) AS params, log_group, log_stream"


@pytest.fixture
def history(local_aws, local_bigquery, logs_client, write_config, unique_name) -> Stack:
    """Stream ``app`` with ``history: {after: 1d}`` into a fresh bucket."""
    bucket = f"cwl-hist-{unique_name}".replace("_", "-")
    s3_client(local_aws.url).create_bucket(Bucket=bucket)
    extra = f"    history: {{after: 1d, bucket: {bucket}, prefix: app-history}}"
    stack = make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name, extra)
    return replace(stack, bucket=bucket)


def without_history(config: PipelineConfig, dataset: str | None = None) -> dg.Definitions:
    """Definitions of the same stream reading every window with FilterLogEvents."""
    stream = config.streams[0].model_copy(update={"history": None})
    bigquery = config.bigquery.model_copy(update={"dataset": dataset or config.bigquery.dataset})
    return build_definitions(replace(config, streams=(stream,), bigquery=bigquery))


def run_range(defs: dg.Definitions, first: datetime, last: datetime, kind: str | None = None):
    """One run over the windows ``first``..``last`` (a backfill unless ``kind`` is given)."""
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: partition_key(first),
        ASSET_PARTITION_RANGE_END_TAG: partition_key(last),
    }
    if kind:
        tags[LOAD_KIND_TAG] = kind
    return materialize(defs, None, tags=tags)


def window_materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Per partition, the metadata of the events table's materialization."""
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            if mat.asset_key == dg.AssetKey(["app_events"]):
                out[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return out


def select(bq_client, dataset: str, columns: str, table: str = "app_events") -> list[dict]:
    sql = f"SELECT {columns} FROM `cwl-local.{dataset}.{table}` ORDER BY timestamp, event_id"
    return [dict(r.items()) for r in bq_client.query(sql).result()]


def old_events(start: datetime) -> list[tuple[datetime, object]]:
    """Events in two windows from ``start`` (one not JSON), and one on each side of them."""
    return [
        (start + timedelta(seconds=1), {"session_id": 1, "action": "click", "params": {"x": 1}}),
        (start + timedelta(minutes=5), {"session_id": "2", "action": "view"}),
        (start + timedelta(minutes=7), "not json at all"),
        (start + WINDOW + timedelta(minutes=14, seconds=59), {"session_id": 3}),
        (start - timedelta(seconds=1), {"session_id": 98}),
        (start + 2 * WINDOW, {"session_id": 99}),
    ]


def test_backfill_through_an_export_writes_what_filter_log_events_would(
    history, local_aws, logs_client, bq_client, unique_name
):
    start = floor_to_window(datetime.now(UTC) - timedelta(days=2), WINDOW)
    put(logs_client, history.group, old_events(start))
    exported = run_range(history.defs, start, start + WINDOW)
    polled_dataset = f"{history.dataset}_api"
    polled = run_range(without_history(history.config, polled_dataset), start, start + WINDOW)

    by_export = select(bq_client, history.dataset, f"{COLUMNS}, event_id, ingestion_time, source_object")
    by_api = select(bq_client, polled_dataset, f"{COLUMNS}, event_id, ingestion_time, source_object")
    common = COLUMNS.replace("TO_JSON_STRING(params) AS params", "params").split(", ")
    assert len(by_export) == len(by_api) == 3
    assert [{c: r[c] for c in common} for r in by_export] == [{c: r[c] for c in common} for r in by_api]
    assert [r["session_id"] for r in by_export] == [1, 2, 3]
    # What export lines do not carry: CloudWatch's id (derived instead) and the ingestion time.
    assert all(r["event_id"].startswith("d-") for r in by_export)
    assert all(r["event_id"].isdigit() for r in by_api)
    assert {r["ingestion_time"] for r in by_export} == {None} and None not in {
        r["ingestion_time"] for r in by_api
    }
    assert all(r["source_object"].startswith(f"s3://{history.bucket}/app-history/") for r in by_export)
    assert {r["source_object"] for r in by_api} == {None}
    reject_columns = "reason, raw_message, log_group, log_stream"
    assert (
        select(bq_client, history.dataset, reject_columns, "app_events_rejects")
        == select(bq_client, polled_dataset, reject_columns, "app_events_rejects")
        == [
            {
                "reason": "invalid_json",
                "raw_message": "not json at all",
                "log_group": history.group,
                "log_stream": "web-1",
            }
        ]
    )

    # One export task for the group and the step, named in each window's metadata.
    tasks = [
        t
        for t in logs_client.describe_export_tasks()["exportTasks"]
        if t["logGroupName"] == history.group and t["destination"] == history.bucket
    ]
    assert len(tasks) == 1 and tasks[0]["destinationPrefix"].startswith("app-history/")
    windows = window_materializations(exported)
    assert set(windows) == {partition_key(start), partition_key(start + WINDOW)}
    for figures in windows.values():
        assert figures["reader"] == "export" and figures["export_task_ids"] == tasks[0]["taskId"]
        assert figures["write_mode"] == "replace"
    assert [figures["rows_loaded"] for _, figures in sorted(windows.items())] == [2, 1]
    assert {f.get("reader") for f in window_materializations(polled).values()} == {None}
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in exported.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["completeness"] and checks["no_duplicate_event_ids"], checks

    # Re-running the backfill replaces the windows with the same rows.
    run_range(history.defs, start, start + WINDOW)
    assert select(bq_client, history.dataset, COLUMNS) == select(bq_client, polled_dataset, COLUMNS)


def test_a_range_across_after_reads_each_window_with_one_reader(history, logs_client, bq_client):
    moment = datetime.now(UTC) - timedelta(days=1)
    if floor_to_window(moment, WINDOW) + WINDOW - moment < timedelta(seconds=60):
        time.sleep(61)  # keep the boundary still while the test runs
    boundary = floor_to_window(datetime.now(UTC) - timedelta(days=1), WINDOW)
    older, younger = boundary - WINDOW, boundary
    put(
        logs_client,
        history.group,
        [
            (older + timedelta(minutes=1), {"session_id": 1}),
            (younger + timedelta(minutes=1), {"session_id": 2}),
        ],
    )
    result = run_range(history.defs, older, younger)
    windows = window_materializations(result)
    assert windows[partition_key(older)]["reader"] == "export"
    assert windows[partition_key(younger)]["reader"] == "filter_log_events"
    ids = {r["session_id"]: r["event_id"] for r in select(bq_client, history.dataset, "session_id, event_id")}
    assert ids[1].startswith("d-") and ids[2].isdigit()
    run_md = windows[partition_key(older)]
    assert run_md["windows_read_by_export"] and run_md["windows_read_by_filter_log_events"]


def test_polling_after_an_export_backfill_replaces_the_windows_without_duplicates(
    history, logs_client, bq_client
):
    start = floor_to_window(datetime.now(UTC) - timedelta(days=2), WINDOW)
    put(logs_client, history.group, old_events(start))
    run_range(history.defs, start, start + WINDOW)
    exported = select(bq_client, history.dataset, COLUMNS)

    # The same windows loaded again by hand with FilterLogEvents: replaced, ids now CloudWatch's.
    run_range(without_history(history.config), start, start + WINDOW)
    rows = select(bq_client, history.dataset, f"{COLUMNS}, event_id")
    assert [{k: r[k] for k in exported[0]} for r in rows] == exported
    assert all(r["event_id"].isdigit() for r in rows)

    # And back to the export: each window holds one reader's rows, each event once.
    run_range(history.defs, start, start + WINDOW)
    rows = select(bq_client, history.dataset, f"{COLUMNS}, event_id")
    assert len(rows) == 3 and all(r["event_id"].startswith("d-") for r in rows)


def test_a_sweep_after_an_export_backfill_stores_each_event_once(history, logs_client, bq_client):
    start = floor_to_window(datetime.now(UTC) - timedelta(days=2), WINDOW)
    put(logs_client, history.group, old_events(start))
    run_range(history.defs, start, start + WINDOW)
    late = start + timedelta(minutes=9)
    put(logs_client, history.group, [(late, {"session_id": 4})])  # arrived after the export

    # The sensor's sweep of the same windows: FilterLogEvents, inserting what is missing.
    run_range(history.defs, start, start + WINDOW, kind="sweep-6h")
    rows = select(bq_client, history.dataset, f"{COLUMNS}, event_id")
    assert [r["session_id"] for r in rows] == [1, 2, 4, 3]
    assert all(r["event_id"].isdigit() for r in rows), "one reader's ids per window"
    rejects = select(bq_client, history.dataset, "event_id, reason", "app_events_rejects")
    assert len(rejects) == 1 and rejects[0]["event_id"].isdigit()


def test_the_export_reader_refuses_windows_younger_than_after(history, local_aws):
    stream = history.config.streams[0]
    aws = AwsResource.from_settings(history.config.aws)
    start = floor_to_window(datetime.now(UTC) - timedelta(hours=20), WINDOW)
    reads = read_windows_from_export(
        stream,
        logs_reader(aws),
        ExportTasks(aws.client("logs")),
        S3ObjectStore(aws.client("s3")),
        start,
        start + WINDOW,
    )
    with pytest.raises(SourceError, match=r"younger than history\.after .* read them with FilterLogEvents"):
        next(reads)

"""The counts table: what each load transaction wrote, per ingestion hour, event hour and log
group, and its readers (reconciliation, rollups), through the local stack.

Events go in with PutLogEvents (moto stamps their ``ingestionTime`` with the real time), loads
run the project's load path into the BigQuery emulator; CloudWatch's IncomingLogEvents is
written with PutMetricData, since moto does not compute it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.core.windows import floor_to_window
from cwl_pipeline.load.service import WriteMode, load
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.rollups import ROLLUPS, refresh_rollup
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents
from cwl_pipeline.polling.read import read_windows
from cwl_pipeline.polling.reconcile_counts import compare_counts
from cwl_pipeline.polling.reconcile_plan import MAX_EVENT_AGE, MAX_EVENT_AHEAD, floor_to_hour
from cwl_pipeline_tests.pipeline.polling import WINDOW, make_stack, put
from cwl_pipeline_tests.stack import Stack

HOUR = timedelta(hours=1)
log = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def clear_of_hour_boundaries():
    """Start away from the turn of an hour: the events a test puts are ingested in one hour."""
    now = datetime.now(UTC)
    boundary = floor_to_hour(now) + HOUR
    if boundary - now < timedelta(seconds=45):
        time.sleep((boundary - now).total_seconds() + 0.5)


@pytest.fixture
def stack(local_aws, local_bigquery, logs_client, write_config, unique_name) -> Stack:
    return make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name)


def loader_factory(stack: Stack):
    warehouse = BigQueryWarehouse.from_settings(stack.config.bigquery)

    @contextmanager
    def loaders() -> Iterator[BigQueryLoader]:
        with warehouse.loader() as loader:
            yield loader

    return loaders


def load_windows(stack: Stack, start: datetime, end: datetime, mode: WriteMode) -> None:
    stream = stack.config.streams[0]
    reader = logs_reader(AwsResource.from_settings(stack.config.aws))
    load(
        read_windows(stream, reader, start, end),
        StreamTables.of(stream),
        loader_factory(stack),
        log,
        "app",
        mode,
    )


def recorded(stack: Stack, hour: datetime) -> int:
    """Rows the counts table records for ``hour`` of ingestion."""
    tables = StreamTables.of(stack.config.streams[0])
    assert tables.counts is not None
    with loader_factory(stack)() as loader:
        found = loader.recorded_counts_by_hour(
            tables.counts.table, [tables.events.table, tables.rejects.table], [stack.group], hour, hour + HOUR
        )
    return found.get(hour, 0)


def scanned(stack: Stack, hour: datetime) -> int:
    """Rows the events and rejects tables hold for ``hour`` of ingestion, counted in the tables."""
    tables = StreamTables.of(stack.config.streams[0])
    total = 0
    with loader_factory(stack)() as loader:
        for spec in (tables.events, tables.rejects):
            found = loader.counts_by_ingestion_hour(
                spec.table,
                spec.partition_column,
                [stack.group],
                hour,
                hour + HOUR,
                event_time_before=MAX_EVENT_AGE,
                event_time_after=MAX_EVENT_AHEAD,
            )
            total += found.get(hour, 0)
    return total


def counts_rows(bq_client, stack: Stack) -> int:
    [row] = bq_client.query(
        f"SELECT COUNT(*) AS n FROM `cwl-local.{stack.dataset}.app_events_counts`"
    ).result()
    return row["n"]


def test_every_load_transaction_records_the_rows_it_wrote(stack, logs_client, bq_client):
    now = datetime.now(UTC)
    hour = floor_to_hour(now)
    window = floor_to_window(now - timedelta(hours=1), WINDOW)
    events = [(window + timedelta(minutes=m), {"action": f"a{m}", "session_id": m}) for m in (1, 2, 3)]
    put(logs_client, stack.group, [*events, (window + timedelta(minutes=4), "not json: a reject")])
    load_windows(stack, window, window + WINDOW, WriteMode.REPLACE)
    # Recorded in the load's own transaction: what the tables hold, 3 rows and 1 reject.
    assert recorded(stack, hour) == scanned(stack, hour) == 4

    # Replacing the window again records its deletion and its insertion: the sum stays.
    load_windows(stack, window, window + WINDOW, WriteMode.REPLACE)
    assert recorded(stack, hour) == scanned(stack, hour) == 4

    # Inserting what is missing when nothing is: no transaction, no count.
    before = counts_rows(bq_client, stack)
    load_windows(stack, window, window + WINDOW, WriteMode.INSERT_MISSING)
    assert counts_rows(bq_client, stack) == before

    # A late event: only it is inserted, and counted.
    put(logs_client, stack.group, [(window + timedelta(minutes=5), {"action": "late", "session_id": 9})])
    load_windows(stack, window, window + WINDOW, WriteMode.INSERT_MISSING)
    assert recorded(stack, hour) == scanned(stack, hour) == 5


def test_reconciliation_compares_cloudwatch_with_the_counts_table(stack, local_aws, logs_client, bq_client):
    now = datetime.now(UTC)
    hour = floor_to_hour(now)
    window = floor_to_window(now - timedelta(hours=1), WINDOW)
    put(logs_client, stack.group, [(window + timedelta(minutes=m), {"action": "x"}) for m in (1, 2)])
    load_windows(stack, window, window + WINDOW, WriteMode.INSERT_MISSING)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    cloudwatch.put_metric_data(
        Namespace="AWS/Logs",
        MetricData=[
            {
                "MetricName": "IncomingLogEvents",
                "Dimensions": [{"Name": "LogGroupName", "Value": stack.group}],
                "Timestamp": hour + timedelta(minutes=1),
                "Value": 2.0,
                "Unit": "None",
            }
        ],
    )
    # A row only the counts table holds tells which side the comparison read.
    bq_client.query(
        f"INSERT INTO `cwl-local.{stack.dataset}.app_events_counts` "
        "(ingestion_hour, event_hour, log_group, table_name, row_count, loaded_at) "
        f"VALUES (TIMESTAMP '{hour.isoformat()}', TIMESTAMP '{hour.isoformat()}', '{stack.group}', "
        "'app_events', 10, CURRENT_TIMESTAMP())"
    ).result()
    stream = stack.config.streams[0]
    reader = logs_reader(AwsResource.from_settings(stack.config.aws))
    metrics = IncomingLogEvents(cloudwatch)
    judged = hour + timedelta(hours=3)
    tables = StreamTables.of(stream)

    def compare(since: datetime | None) -> tuple[int, int]:
        comparison = compare_counts(
            tables, reader, metrics, loader_factory(stack), judged, counted_since=since
        )
        return comparison.counts[hour]

    # The hour began after the counts table existed: it is read, not the events table.
    assert compare(hour - HOUR) == (2, 12)
    # The hour the counts table was created in is counted in the tables themselves.
    assert compare(None) == (2, 2)


def test_rollups_recompute_only_the_partitions_whose_events_changed(stack, logs_client, bq_client):
    now = datetime.now(UTC)
    window = floor_to_window(now - timedelta(hours=1), WINDOW)
    event_hour = floor_to_hour(window)
    put(
        logs_client,
        stack.group,
        [(window + timedelta(minutes=m), {"action": "a", "session_id": 1}) for m in (1, 2)],
    )
    load_windows(stack, window, window + WINDOW, WriteMode.INSERT_MISSING)
    stream = stack.config.streams[0]
    hourly = next(r for r in ROLLUPS if r.suffix == "hourly_actions")
    first, end = event_hour - HOUR, event_hour + HOUR

    def refresh():
        with loader_factory(stack)() as loader:
            return refresh_rollup(loader, stream, hourly, first, end)

    def events_in_rollup() -> int:
        [row] = bq_client.query(
            f"SELECT SUM(events) AS n FROM `cwl-local.{stack.dataset}.app_events_hourly_actions` "
            f"WHERE hour = TIMESTAMP '{event_hour.isoformat()}'"
        ).result()
        return row["n"] or 0

    done = refresh()
    # The hour before held no events and never changed: only the loaded hour is computed.
    assert done.recomputed == [event_hour] and done.unchanged == 1
    assert events_in_rollup() == 2
    again = refresh()
    assert again.recomputed == [] and again.unchanged == 2 and again.job_ids == []
    put(logs_client, stack.group, [(window + timedelta(minutes=3), {"action": "a", "session_id": 2})])
    load_windows(stack, window, window + WINDOW, WriteMode.INSERT_MISSING)
    assert refresh().recomputed == [event_hour]
    assert events_in_rollup() == 3
    # Run by hand, every partition is computed.
    with loader_factory(stack)() as loader:
        forced = refresh_rollup(loader, stream, hourly, first, end, only_changed=False)
    assert forced.recomputed == [first, event_hour]

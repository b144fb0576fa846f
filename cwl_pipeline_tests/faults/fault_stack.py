"""Building blocks of the fault tests: configs through the fault proxies, ground truth, run history."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from google.cloud import bigquery

from cwl_pipeline.adapters.bigquery_staging import STAGING_TTL
from cwl_pipeline.core.windows import to_ms
from cwl_pipeline_tests.faults.fault_proxy import FaultProxy
from cwl_pipeline_tests.pipeline.polling import put
from cwl_pipeline_tests.stack import Stack, build_stack, stack_yaml

WINDOW = timedelta(minutes=15)
STAGING_PREFIXES = ("_stage_", "_scope_")  # staging tables of batches and of scope keys


def fault_stack_yaml(
    aws_url: str,
    bq_url: str,
    dataset: str,
    source: str,
    *,
    stream: str = "app",
    table: str = "app_events",
    max_attempts: int = 3,
    retry_mode: str = "adaptive",
    retry_timeout: str = "4s",
    extra: str = "",
    storage_write_endpoint: str | None = None,
) -> dict[str, str]:
    """:func:`~cwl_pipeline_tests.stack.stack_yaml` arguments for one stream whose AWS and
    BigQuery endpoints are ``aws_url`` / ``bq_url`` (fault proxies), with a short retry budget on
    both sides; open-window refreshes append through ``storage_write_endpoint`` (the emulator's
    gRPC port, which the proxies do not cover) if given."""
    storage_write = f', storage_write_endpoint: "{storage_write_endpoint}"' if storage_write_endpoint else ""
    return {
        "aws_url": aws_url,
        "bq_url": bq_url,
        "dataset": dataset,
        "source": source,
        "name": stream,
        "table": table,
        "extra": extra,
        "aws_extra": f", max_attempts: {max_attempts}, retry_mode: {retry_mode}",
        "bigquery_extra": f", retry_timeout: {retry_timeout}{storage_write}",
    }


def write_fault_config(write_config, aws_url: str, bq_url: str, dataset: str, source: str, **options) -> Path:
    """The config file of :func:`fault_stack_yaml` (for tests that start processes on it)."""
    return write_config(stack_yaml(**fault_stack_yaml(aws_url, bq_url, dataset, source, **options)))


def polling_stack(write_config, logs_client, aws_url: str, bq_url: str, unique_name: str, **options) -> Stack:
    """A polling stream ``app`` (table ``app_events``) on a fresh log group and dataset."""
    group = f"/test/faults-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    source = f'{{log_groups: ["{group}"]}}'
    yaml = fault_stack_yaml(aws_url, bq_url, f"ds_{unique_name}", source, **options)
    return build_stack(write_config, group=group, **yaml)


def put_events(logs_client, group: str, start: datetime, count: int, first_session: int = 1) -> None:
    """``count`` JSON events spread over the window starting at ``start``."""
    step = WINDOW / (count + 1)
    put(
        logs_client,
        group,
        [(start + step * (i + 1), {"session_id": first_session + i, "action": "view"}) for i in range(count)],
    )


def cloudwatch_ids(logs_client, group: str, start: datetime, end: datetime) -> list[str]:
    """Event ids CloudWatch holds in ``[start, end)``, read straight from local AWS (the truth)."""
    ids, request = [], {"logGroupName": group, "startTime": to_ms(start), "endTime": to_ms(end) - 1}
    while True:
        page = logs_client.filter_log_events(**request)
        ids += [e["eventId"] for e in page["events"] if e["timestamp"] < to_ms(end)]
        if not page.get("nextToken"):
            return sorted(ids)
        request["nextToken"] = page["nextToken"]


def table_ids(bq_client: bigquery.Client, dataset: str, table: str = "app_events") -> list[str]:
    """Every ``event_id`` of a table, duplicates included (an empty list if it does not exist)."""
    try:
        result = bq_client.query(f"SELECT event_id FROM `cwl-local.{dataset}.{table}`").result()
    except Exception as exc:  # a table a failed first load never created
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return []
        raise
    return sorted(r["event_id"] for r in result)


def staging_tables(bq_client: bigquery.Client, dataset: str) -> list[bigquery.Table]:
    """Staging tables still present in ``dataset``, with their metadata."""
    return [
        bq_client.get_table(t.reference)
        for t in bq_client.list_tables(f"cwl-local.{dataset}")
        if t.table_id.startswith(STAGING_PREFIXES)
    ]


def assert_staging_expires(proxy: FaultProxy, bq_client: bigquery.Client, dataset: str) -> int:
    """Every staging table created through ``proxy`` declared an expiry within the staging TTL,
    and every staging table still in ``dataset`` is one of them; returns how many are left.

    The emulator neither keeps nor enforces ``expirationTime``, so the expiry is read from the
    table-creation requests the proxy recorded.
    """
    created: dict[str, datetime] = {}
    for seen in proxy.requests(method="POST", path=rf"/datasets/{dataset}/tables(\?|$)"):
        resource = json.loads(seen.body)
        name = resource["tableReference"]["tableId"]
        if name.startswith(STAGING_PREFIXES):
            assert "expirationTime" in resource, f"{name} was created without an expiry"
            created[name] = datetime.fromtimestamp(int(resource["expirationTime"]) / 1000, UTC)
    now = datetime.now(UTC)
    for name, expires in created.items():
        assert now < expires <= now + STAGING_TTL, (name, expires)
    left = staging_tables(bq_client, dataset)
    assert {t.table_id for t in left} <= set(created), "a staging table was not created by the pipeline"
    return len(left)


@dataclass
class RunHistory:
    """What a Dagster instance recorded about one run."""

    status: dg.DagsterRunStatus
    event_types: list[str]
    failure: str
    materialized: list[str]

    def has(self, event_type: str) -> bool:
        """Whether the event log holds an event of ``event_type`` (e.g. ``STEP_START``)."""
        return event_type in self.event_types


def run_history(instance: dg.DagsterInstance, run_id: str) -> RunHistory:
    """The run's status, event types, failure messages (with causes) and materialized partitions."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    entries = instance.all_logs(run_id)
    messages = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.event_type_value not in ("STEP_FAILURE", "RUN_FAILURE"):
            continue
        messages.append(entry.message or "")
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return RunHistory(
        status=run.status,
        event_types=[e.dagster_event.event_type_value for e in entries if e.dagster_event],
        failure="\n".join(messages),
        materialized=[
            e.dagster_event.partition or ""
            for e in entries
            if e.dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        ],
    )


def dump(value: object) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(value, default=str)


def kill_when_held(process: subprocess.Popen[bytes], held, log: Path) -> None:
    """SIGKILL ``process`` (and its group) once its request arrived at the ``held`` proxy rule."""
    try:
        assert held.arrived.wait(90), log.read_text(errors="replace")[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def fail_by_run_monitoring(instance: dg.DagsterInstance, record) -> None:
    """What the daemon's run monitoring does on its next pass once the run is over its 1 s limit."""
    assert record.start_time is not None
    time.sleep(max(0.0, record.start_time + 1.1 - time.time()))
    monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))

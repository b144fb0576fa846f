"""Metadata calls of refreshes and settled loads, counted on the wire.

BigQuery allows five dataset update operations per 10 s per dataset (``datasets.insert``
counts) and five table metadata updates per 10 s per table
(https://cloud.google.com/bigquery/quotas#dataset_limits, #standard_tables). The fault proxy
sees every HTTP request the pipeline sends to the emulator; these tests count the dataset and
table calls among them. Storage Write appends go over gRPC, beside the proxy.

Staging tables (``_stage_…``, ``_scope_…``) are created and dropped by every load that writes:
each is a new table, so the per-table limit never binds them; they are counted apart.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline_tests.faults.fault_proxy import FaultProxy, Seen
from cwl_pipeline_tests.faults.fault_stack import STAGING_PREFIXES, WINDOW, polling_stack
from cwl_pipeline_tests.pipeline.polling import materialize, put

_DATASETS = re.compile(r"^/bigquery/v2/projects/[^/?]+/datasets(?:/(?P<dataset>[^/?]+))?(?:\?|$)")
_TABLES = re.compile(r"^/bigquery/v2/projects/[^/?]+/datasets/[^/?]+/tables(?:/(?P<table>[^/?]+))?(?:\?|$)")
_VERBS = {"GET": "get", "POST": "insert", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def metadata_calls(seen: list[Seen]) -> Counter[str]:
    """Dataset and table API calls among ``seen``, as ``"datasets.insert"``,
    ``"tables.get"``, ``"staging tables.insert"``, ..."""
    calls: Counter[str] = Counter()
    for request in seen:
        verb = _VERBS.get(request.method, request.method)
        if _DATASETS.match(request.path):
            calls[f"datasets.{verb}"] += 1
        elif match := _TABLES.match(request.path):
            table = match["table"] or json.loads(request.body or b"{}").get("tableReference", {}).get(
                "tableId", ""
            )
            kind = "staging tables" if table.startswith(STAGING_PREFIXES) else "tables"
            calls[f"{kind}.{verb}"] += 1
    return calls


def run(proxy: FaultProxy, defs, key: str, instance, mode: str) -> Counter[str]:
    """The metadata calls of one materialization of ``key`` with ``cwl/load`` = ``mode``."""
    proxy.seen.clear()
    materialize(defs, key, instance=instance, tags={"cwl/load": mode})
    return metadata_calls(list(proxy.seen))


def test_refreshes_and_settled_loads_create_nothing_twice_in_a_process(
    bq_faults, local_aws, local_bigquery, logs_client, write_config, unique_name
):
    stack = polling_stack(
        write_config,
        logs_client,
        local_aws.url,
        bq_faults.url,
        unique_name,
        storage_write_endpoint=f"127.0.0.1:{local_bigquery.grpc_port}",
    )
    now = datetime.now(UTC)
    start = floor_to_window(now, WINDOW)
    if now - start < timedelta(seconds=20):  # room for events inside the open window
        start -= WINDOW
    key, instance = partition_key(start), dg.DagsterInstance.ephemeral()
    put(logs_client, stack.group, [(start + timedelta(seconds=i + 1), {"session_id": i}) for i in range(3)])

    first_refresh = run(bq_faults, stack.defs, key, instance, "refresh")
    # The dataset, the events and live tables and the view: each read once, created once.
    assert first_refresh["datasets.insert"] == 1
    assert first_refresh["tables.insert"] == 3  # events, live, the _recent view
    assert first_refresh["tables.get"] <= 3
    assert sum(first_refresh.values()) <= 8, first_refresh

    put(logs_client, stack.group, [(start + timedelta(seconds=10), {"session_id": 3})])
    second_refresh = run(bq_faults, stack.defs, key, instance, "refresh")
    assert second_refresh == Counter(), second_refresh  # nothing read, nothing created

    settled = run(bq_faults, stack.defs, key, instance, "settled")
    # Only the rejects table, the load ledger (the transactions' conflict guard) and the counts
    # table (rows per hour, written by the load transaction) are new to the process.
    assert settled["datasets.insert"] == 0 and settled["datasets.get"] == 0
    assert settled["tables.insert"] == 3
    assert settled["tables.patch"] == settled["tables.update"] == 0

    again = run(bq_faults, stack.defs, key, instance, "sweep-15m")
    assert again["datasets.insert"] == 0 and again["datasets.get"] == 0
    assert again["tables.insert"] == again["tables.patch"] == again["tables.update"] == 0
    # What is left are the checks' reads of tables they count (tables.get; no update).
    assert set(again) <= {"tables.get", "staging tables.insert", "staging tables.delete"}, again
    assert again["tables.get"] <= settled["tables.get"]

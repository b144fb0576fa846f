"""A stream Component loads on the local stack in a project whose own resources are named
``aws`` and ``bigquery``: it reads its settings' resources under their keys, and writes under
the asset keys its translation gave its tables."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.local.processes import LOCAL_PROJECT
from cwl_pipeline_tests.components.defs_sandbox import HOST, defs_sandbox
from cwl_pipeline_tests.pipeline.polling import materialize, put, rows, window_start
from cwl_pipeline_tests.sensor_runs import tick


def test_a_stream_loads_beside_the_hosts_aws_and_bigquery(
    local_aws, local_bigquery, logs_client, bq_client, unique_name
) -> None:
    group, dataset = f"/test/component-{unique_name}", f"ds_{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    start = window_start()
    put(logs_client, group, [(start + timedelta(minutes=1), {"session_id": 1, "action": "view"})])
    settings = {
        "aws": {"region": "us-east-1", "endpoint_url": local_aws.url, "max_attempts": 2},
        "bigquery": {"project": LOCAL_PROJECT, "dataset": dataset, "api_endpoint": local_bigquery.url},
        "resource_keys": {"aws": "logs_aws", "bigquery": "logs_bigquery"},
    }
    stream = {
        "name": "app",
        "source": {"log_groups": [group]},
        "table": "app_events",
        "window": "15m",
        "start": "2026-01-01T00:00:00Z",
        "translation": {"key": "warehouse/{{ table.name }}"},
    }
    with (
        defs_sandbox({"app": stream}, {"cwl_settings": settings}, HOST) as sandbox,
        sandbox.build_all_defs() as defs,
        dg.instance_for_test() as instance,
    ):
        requested = tick(defs.resolve_sensor_def("app_windows"), defs, instance, None).requests
        assert requested and all(
            key.path[0] == "warehouse" for request in requested for key in request.asset_selection or []
        )
        result = materialize(defs, partition_key(start), instance=instance)
        loaded = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
        assert loaded == {"warehouse/app_events", "warehouse/app_events_rejects"}
        assert [r["session_id"] for r in rows(bq_client, dataset)] == [1]
        host = dg.materialize([defs.resolve_assets_def("host_report")], instance=instance)
        assert host.output_for_node("host_report") == "host aws"

"""Shared helpers of the polling-path tests: a fresh stream per test, events in, rows out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline_tests.stack import Stack, build_stack

WINDOW = timedelta(minutes=15)


def make_stack(
    local_aws,
    local_bigquery,
    logs_client,
    write_config,
    unique_name,
    extra: str = "",
    bigquery_extra: str = "",
    window: str = "15m",
    start: str = "2026-01-01T00:00:00Z",
) -> Stack:
    """One stream ``app`` (table ``app_events``) on a fresh log group and a fresh dataset.

    ``extra`` adds stream keys (indented YAML lines, e.g. ``"    sweeps: [15m]"``),
    ``bigquery_extra`` keys of the ``bigquery`` mapping (e.g. ``', storage_write_endpoint: "…"'``),
    ``window`` the window length and ``start`` the stream's first window.
    """
    group = f"/test/app-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    return build_stack(
        write_config,
        group=group,
        aws_url=local_aws.url,
        bq_url=local_bigquery.url,
        dataset=f"ds_{unique_name}",
        source=f'{{log_groups: ["{group}"]}}',
        window=window,
        start=start,
        extra=extra,
        bigquery_extra=bigquery_extra,
    )


def put(logs_client, group: str, events: list[tuple[datetime, object]], stream: str = "web-1") -> None:
    """PutLogEvents with ``(time, message)`` pairs; dicts are sent as JSON."""
    logs_client.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": to_ms(t), "message": m if isinstance(m, str) else json.dumps(m)}
            for t, m in sorted(events, key=lambda e: e[0])
        ],
    )


def assets_def(defs: dg.Definitions, node_name: str = "load_app") -> dg.AssetsDefinition:
    """The executable assets definition whose op is ``node_name``."""
    return next(
        a for a in defs.resolve_asset_graph().assets_defs if a.is_executable and a.node_def.name == node_name
    )


def materialize(
    defs: dg.Definitions,
    key: str | None,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
    node_name: str = "load_app",
) -> dg.ExecuteInProcessResult:
    """Run one asset (by default the stream's load: events + rejects + checks) for a partition.

    A range runs when ``tags`` hold Dagster's partition range tags and ``key`` is None.
    """
    return dg.materialize(
        [assets_def(defs, node_name)],
        partition_key=key,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
        tags=tags,
    )


def rows(bq_client, dataset: str, table: str = "app_events") -> list[dict]:
    sql = (
        f"SELECT timestamp, session_id, action, TO_JSON_STRING(params) AS params, event_id, "
        f"log_group, log_stream FROM `cwl-local.{dataset}.{table}` ORDER BY timestamp, event_id"
    )
    return [dict(r.items()) for r in bq_client.query(sql).result()]


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's message with all its causes."""
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error, parts = failure.event_specific_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def window_start() -> datetime:
    """A closed window from an hour ago (CloudWatch accepts events up to 14 days old)."""
    return floor_to_window(datetime.now(UTC) - timedelta(hours=1), WINDOW)

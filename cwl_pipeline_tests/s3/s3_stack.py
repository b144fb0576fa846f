"""Building blocks of the S3-source tests: Firehose objects, configs, runs and reads."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
from google.cloud import bigquery

from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, partition_key, to_ms
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.stack import stack_yaml

WINDOW = timedelta(minutes=15)


def s3_client(url: str):
    """A boto3 S3 client on the local AWS."""
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


def envelope(group: str, stream: str, events: list[tuple[str, int, object]]) -> dict:
    """A subscription DATA_MESSAGE with ``(id, timestamp_ms, message)`` events."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["all"],
        "logEvents": [
            {"id": i, "timestamp": ts, "message": m if isinstance(m, str) else json.dumps(m)}
            for i, ts, m in events
        ],
    }


def gzip_envelopes(*envelopes: dict) -> bytes:
    """Firehose's default: one gzip member per envelope, back to back."""
    return b"".join(gzip.compress(json.dumps(e).encode()) for e in envelopes)


def firehose_key(prefix: str, hour: datetime, stream: str = "cwl-delivery") -> str:
    """A key in the Firehose layout for an object whose oldest record arrived in ``hour``."""
    return f"{prefix}{hour:%Y/%m/%d/%H}/{stream}-1-{hour:%Y-%m-%d-%H}-05-00-{uuid.uuid4()}"


def key_hour() -> datetime:
    """An hour two hours ago: objects written now under it belong to its last window."""
    return floor_to_window(datetime.now(UTC) - timedelta(hours=2), timedelta(hours=1))


def last_window_key(hour: datetime) -> str:
    """Partition key of the last 15-minute window of ``hour``."""
    return partition_key(hour + timedelta(hours=1) - WINDOW)


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return to_ms(moment)


def s3_stack_yaml(local_aws, local_bigquery, dataset: str, source: str, extra: str = "") -> dict[str, str]:
    """:func:`~cwl_pipeline_tests.stack.stack_yaml` arguments for one S3 stream ``logs`` (tables
    ``logs``, ``logs_rejects``) reading ``source``."""
    return {
        "aws_url": local_aws.url,
        "bq_url": local_bigquery.url,
        "dataset": dataset,
        "source": source,
        "name": "logs",
        "table": "logs",
        "extra": extra,
    }


def write_s3_config(
    write_config, local_aws, local_bigquery, dataset: str, source: str, extra: str = ""
) -> Path:
    """The config file of :func:`s3_stack_yaml`."""
    return write_config(stack_yaml(**s3_stack_yaml(local_aws, local_bigquery, dataset, source, extra)))


def definitions(path: Path) -> dg.Definitions:
    """Definitions of a config file."""
    return build_definitions(load_config(path))


def materialize(
    defs: dg.Definitions,
    key: str,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the stream's load for one partition (as launched by hand unless ``tags`` say else)."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=key,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
        tags=tags,
    )


def load_metadata(result: dg.ExecuteInProcessResult, asset: str = "logs") -> dict:
    """Metadata values of the events-table materialization of a run."""
    for mat in result.asset_materializations_for_node("load_logs"):
        if mat.asset_key == dg.AssetKey([asset]):
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError("no materialization")


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Asset check name → passed, for a run."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def assert_blocking_checks_pass(result: dg.ExecuteInProcessResult) -> None:
    """Completeness, no duplicate ids and schema passed (the reject rate is only a warning)."""
    checks = check_results(result)
    assert {k: checks[k] for k in ("completeness", "no_duplicate_event_ids", "schema_matches")} == {
        "completeness": True,
        "no_duplicate_event_ids": True,
        "schema_matches": True,
    }, checks


def rows(bq_client: bigquery.Client, dataset: str, table: str = "logs") -> list[dict]:
    """Events rows, ordered."""
    sql = (
        f"SELECT timestamp, session_id, action, event_id, log_group, log_stream, source_object "
        f"FROM `cwl-local.{dataset}.{table}` ORDER BY timestamp, event_id"
    )
    return [dict(r.items()) for r in bq_client.query(sql).result()]


def rejects(bq_client: bigquery.Client, dataset: str, table: str = "logs_rejects") -> list[dict]:
    """Rejects rows, ordered."""
    sql = (
        f"SELECT reason, source_object, raw_message, detail, log_group, log_stream "
        f"FROM `cwl-local.{dataset}.{table}` ORDER BY reason, source_object, raw_message"
    )
    return [dict(r.items()) for r in bq_client.query(sql).result()]


def assert_reconciles(md: dict) -> None:
    """events_read = rows_loaded + rows_rejected + duplicates_dropped."""
    assert md["events_read"] == md["rows_loaded"] + md["rows_rejected"] + md["duplicates_dropped"], md

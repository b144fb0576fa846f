"""Two streams, two AWS accounts: one deployment reads a log group of its own account and a log
group of a second account through a role assumed there (``source.account``).

The local AWS (moto) keeps each account's resources apart and answers a request in the account
of its credentials: credentials from AssumeRole into a role of account 222222222222 act in that
account (moto's multi-account documentation). The two log groups here have the same name, so a
stream that read with the wrong credentials would load the other account's events. moto does
not evaluate a role's trust policy or its ``sts:ExternalId`` condition: the policies themselves
are tested in ``cwl_pipeline_tests/deploy``.

Reconciliation compares a stream's stored rows with ``IncomingLogEvents`` of *its* account:
moto does not compute the metric, so the test writes it in each account as CloudWatch would
have counted it, with different values; the second stream's check passes only if it reads the
second account's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest
from google.api_core.exceptions import NotFound

from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.tables import events_key
from cwl_pipeline.polling.assets import build_window_asset
from cwl_pipeline.polling.reconcile import RECONCILE_CHECK, build_reconciliation_check
from cwl_pipeline.polling.reconcile_counts import horizon_of
from cwl_pipeline.polling.reconcile_plan import floor_to_hour
from cwl_pipeline.streams import build_definitions
from cwl_pipeline_tests.pipeline.polling import WINDOW, materialize, put, rows
from cwl_pipeline_tests.pipeline.test_reconciliation import (  # noqa: F401 (an autouse fixture)
    clear_of_hour_boundaries,
    put_incoming_log_events,
)
from cwl_pipeline_tests.pipeline.test_window_sensor import (  # noqa: F401 (an autouse fixture)
    clear_of_window_boundaries,
)

SECOND_ACCOUNT = "222222222222"
EXTERNAL_ID_ENV = "CWL_TEST_SOURCE_EXTERNAL_ID"


def second_account_clients(local_aws, role_arn: str) -> tuple:
    """Logs and CloudWatch clients acting in the second account, through AssumeRole."""
    sts = boto3.client("sts", endpoint_url=local_aws.url, region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="test-setup")["Credentials"]
    keys = {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
    logs = boto3.client("logs", endpoint_url=local_aws.url, region_name="us-east-1", **keys)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1", **keys)
    return logs, cloudwatch


def two_account_config(
    local_aws, local_bigquery, dataset: str, group: str, role_arn: str, live_path: str, grpc: str
) -> str:
    tuning = f"""    live: {{path: {live_path}}}
    window: 15m
    start: "2026-01-01T00:00:00Z"
    settle_lag: 1m
    sweeps: [15m]
    initial_lookback: 1h"""
    return f"""
aws: {{region: us-east-1, endpoint_url: "{local_aws.url}", max_attempts: 2}}
bigquery:
  {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}",
   storage_write_endpoint: "{grpc}"}}
streams:
  - name: home
    source: {{log_groups: ["{group}"]}}
    table: home_events
{tuning}
  - name: remote
    source:
      log_groups: ["{group}"]
      account: {{role_arn: "{role_arn}", external_id: "${{{EXTERNAL_ID_ENV}}}"}}
    table: remote_events
{tuning}
"""


@pytest.fixture(params=["runs"])
def two_accounts(
    local_aws, local_bigquery, logs_client, write_config, unique_name, monkeypatch, storage_write, request
):
    """One log group name in both accounts, with two events here and three there; the config
    (the open window by refresh runs, or with ``live_path`` "sensor" by the live sensors)."""
    monkeypatch.setenv(EXTERNAL_ID_ENV, f"ext-{unique_name}")
    group = f"/test/xacct-{unique_name}"
    role_arn = f"arn:aws:iam::{SECOND_ACCOUNT}:role/cwl-source-{unique_name}"
    second_logs, second_cloudwatch = second_account_clients(local_aws, role_arn)
    for client in (logs_client, second_logs):
        client.create_log_group(logGroupName=group)
        client.create_log_stream(logGroupName=group, logStreamName="web-1")
    start = floor_to_window(datetime.now(UTC) - timedelta(hours=1), WINDOW)
    put(logs_client, group, [(start + timedelta(minutes=m), {"action": f"home-{m}"}) for m in (1, 2)])
    put(second_logs, group, [(start + timedelta(minutes=m), {"action": f"remote-{m}"}) for m in (3, 4, 5)])
    config_text = two_account_config(
        local_aws, local_bigquery, f"ds_{unique_name}", group, role_arn, request.param, storage_write.endpoint
    )
    path = write_config(config_text)
    config = load_config(path)
    return config, build_definitions(config), group, start, second_cloudwatch, second_logs


def test_each_stream_loads_the_events_of_its_own_account(two_accounts, bq_client):
    config, defs, group, start, *_ = two_accounts
    for name in ("home", "remote"):
        assert materialize(defs, partition_key(start), node_name=f"load_{name}").success
    dataset = config.bigquery.dataset
    home = rows(bq_client, dataset, "home_events")
    remote = rows(bq_client, dataset, "remote_events")
    assert [r["action"] for r in home] == ["home-1", "home-2"]
    assert [r["action"] for r in remote] == ["remote-3", "remote-4", "remote-5"]
    assert {r["log_group"] for r in home + remote} == {group}


def test_the_second_stream_calls_aws_as_the_assumed_role_of_the_second_account(two_accounts):
    config, defs, *_ = two_accounts
    aws = defs.resources["aws"]
    remote = config.stream("remote").source_account
    identity = aws.client("sts", remote).get_caller_identity()
    assert identity["Account"] == SECOND_ACCOUNT
    assert f":assumed-role/{remote.role_arn.split('/')[-1]}/cwl-pipeline" in identity["Arn"]
    assert aws.client("sts").get_caller_identity()["Account"] != SECOND_ACCOUNT


def test_the_log_groups_of_each_account_are_assets_of_their_own(two_accounts):
    _, defs, group, *_ = two_accounts
    keys = {spec.key for spec in defs.resolve_all_asset_specs() if spec.group_name == "sources"}
    tail = group.strip("/").replace("/", "_").replace("-", "_")
    assert dg.AssetKey(["cloudwatch", tail]) in keys
    assert dg.AssetKey(["cloudwatch", SECOND_ACCOUNT, tail]) in keys


def test_reconciliation_of_the_second_stream_reads_the_second_accounts_metric(
    two_accounts, local_aws, bq_client
):
    config, defs, group, start, second_cloudwatch, _ = two_accounts
    hour = floor_to_hour(datetime.now(UTC))
    # CloudWatch's counts, per account: 2 events ingested here, 3 in the second account.
    home_cloudwatch = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    put_incoming_log_events(home_cloudwatch, group, hour, 2)
    put_incoming_log_events(second_cloudwatch, group, hour, 3)
    assert materialize(defs, partition_key(start), node_name="load_remote").success

    stream = config.stream("remote")
    tables = StreamTables.of(stream)
    shift = horizon_of(stream).due_at(hour) + timedelta(minutes=1) - datetime.now(UTC)
    check = build_reconciliation_check(tables, lambda: datetime.now(UTC) + shift)
    load = build_window_asset(tables, config.bigquery)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [load, check],
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(events_key(tables), RECONCILE_CHECK)),
            resources=defs.resources,
            instance=instance,
        )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.metadata["cloudwatch_events"].value == 3
    assert evaluation.metadata["stored_events"].value == 3
    assert evaluation.passed


def test_each_window_sensor_probes_the_open_window_in_its_own_account(two_accounts):
    """An event arrives in the open window of the second account's group only: the stream reading
    that account refreshes its open window, the one reading this account's group of the same
    name does not."""
    _, defs, group, _, _, second_logs = two_accounts
    put(second_logs, group, [(datetime.now(UTC), {"action": "open window"})])
    instance = dg.DagsterInstance.ephemeral()
    kinds = {}
    for name in ("home", "remote"):
        sensor = defs.resolve_sensor_def(f"{name}_windows")
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        result = sensor.evaluate_tick(context)
        kinds[name] = {request.tags["cwl/load"] for request in result.run_requests}
    assert "refresh" in kinds["remote"]
    assert "refresh" not in kinds["home"]


@pytest.mark.parametrize("two_accounts", ["sensor"], indirect=True)
def test_each_live_sensor_reads_the_open_window_in_its_own_account(two_accounts, bq_client):
    """The live sensors read their stream's account: the second account's open-window event is
    appended to the remote stream's live table only."""
    config, defs, group, _, _, second_logs = two_accounts
    put(second_logs, group, [(datetime.now(UTC) - timedelta(seconds=2), {"action": "open window"})])
    instance = dg.DagsterInstance.ephemeral()
    for name in ("home", "remote"):
        sensor = defs.resolve_sensor_def(f"{name}_live")
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        sensor.evaluate_tick(context)
    dataset = config.bigquery.dataset
    assert [r["action"] for r in rows(bq_client, dataset, "remote_events_live")] == ["open window"]
    try:
        home = [r["action"] for r in rows(bq_client, dataset, "home_events_live")]
    except NotFound:  # the home sensor found nothing to append: no live table yet
        home = []
    assert "open window" not in home

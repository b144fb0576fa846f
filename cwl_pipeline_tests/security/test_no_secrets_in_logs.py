"""Secrets never show: canary values in the AWS credentials and the config, then a real load.

The AWS secret key and session token in the environment and the role's external id in the
config (by ``${VAR}`` reference) carry unique canary strings. A load through an assumed role
runs end to end, and another fails; the canaries must appear nowhere in what Dagster stores or
shows (event log, run record, job and repository snapshots, which the UI renders), in the
captured stdout/stderr and logging, or in the errors raised.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from cwl_pipeline.config import ConfigError, load_config
from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.definitions import build_definitions
from cwl_pipeline_tests.pipeline.polling import failure_text, materialize, put, rows, window_start
from cwl_pipeline_tests.security.local_endpoints import SignatureMismatchAws

EXTERNAL_ID_VAR = "CWL_CANARY_EXTERNAL_ID"


@pytest.fixture
def canaries(monkeypatch) -> dict[str, str]:
    """Unique secret values, set where real secrets live."""
    token = uuid.uuid4().hex
    values = {
        "AWS_SECRET_ACCESS_KEY": f"canarySecretKey{token}",
        "AWS_SESSION_TOKEN": f"canarySessionToken{token}",
        EXTERNAL_ID_VAR: f"canaryExternalId{token}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _config(local_aws, local_bigquery, write_config, group: str, dataset: str, aws_url: str | None = None):
    path = write_config(
        f"""
aws:
  region: us-east-1
  endpoint_url: "{aws_url or local_aws.url}"
  max_attempts: 2
  role_arn: arn:aws:iam::123456789012:role/cwl-canary
  external_id: ${{{EXTERNAL_ID_VAR}}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{local_bigquery.url}"}}
streams:
  - name: app
    source: {{log_groups: ["{group}"]}}
    table: app_events
    start: "2026-01-01T00:00:00Z"
"""
    )
    return load_config(path)


def _stored_texts(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    """Everything the instance keeps about the run, serialized as the UI reads it."""
    run = instance.get_run_by_id(result.run_id)
    texts = [serialize_value(run), serialize_value(instance.get_job_snapshot(run.job_snapshot_id))]
    texts += [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    return texts


def _assert_absent(canaries: dict[str, str], texts: list[str], where: str) -> None:
    for name, value in canaries.items():
        leaks = [t[max(0, t.find(value) - 80) : t.find(value) + 80] for t in texts if value in t]
        assert not leaks, f"{name} leaked into {where}: {leaks[:1]}"


def test_canaries_appear_nowhere(
    canaries, local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name, capfd, caplog
):
    # Production log levels for libraries; everything from the pipeline and Dagster. (botocore
    # logs request headers, session tokens included, at DEBUG: docs/security.md says so.)
    caplog.set_level(logging.INFO)
    for name in ("cwl_pipeline", "dagster"):
        caplog.set_level(logging.DEBUG, logger=name)
    group = f"/test/canary-{unique_name}"
    logs_client.create_log_group(logGroupName=group)
    logs_client.create_log_stream(logGroupName=group, logStreamName="web-1")
    start = window_start()
    put(logs_client, group, [(start + timedelta(minutes=1), {"session_id": 7, "action": "login"})])
    config = _config(local_aws, local_bigquery, write_config, group, f"ds_{unique_name}")
    defs = build_definitions(config)

    # The UI's view of the code location: resource config shows the variable, not its value.
    repository = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert EXTERNAL_ID_VAR in repository
    _assert_absent(canaries, [repository, repr(config)], "the repository snapshot or the config")

    instance = dg.DagsterInstance.ephemeral()
    ok = materialize(defs, partition_key(start), instance=instance)
    assert ok.success
    assert [r["session_id"] for r in rows(bq_client, f"ds_{unique_name}")] == [7]

    # A run that fails: its log group is gone.
    logs_client.delete_log_group(logGroupName=group)
    failed = materialize(defs, partition_key(start), raise_on_error=False, instance=instance)
    assert not failed.success
    error = failure_text(failed)
    assert "does not exist" in error

    out, err = capfd.readouterr()
    texts = [*_stored_texts(instance, ok), *_stored_texts(instance, failed), error, out, err, caplog.text]
    _assert_absent(canaries, texts, "the run records, output or errors")


def test_aws_errors_echoing_the_session_token_are_masked(
    canaries, local_aws, local_bigquery, write_config, unique_name, capfd
):
    """AWS quotes the canonical request, session token included, when a signature does not
    match; a local server gives that answer (moto never does). Assuming the role fails so."""
    aws = SignatureMismatchAws().start()
    try:
        config = _config(local_aws, local_bigquery, write_config, "/test/g", f"ds_{unique_name}", aws.url)
        instance = dg.DagsterInstance.ephemeral()
        failed = materialize(
            build_definitions(config), partition_key(window_start()), raise_on_error=False, instance=instance
        )
    finally:
        aws.stop()
    assert not failed.success
    error = failure_text(failed)
    assert "SignatureDoesNotMatch" in error and "x-amz-security-token:<redacted>" in error
    out, err = capfd.readouterr()
    _assert_absent(canaries, [*_stored_texts(instance, failed), error, out, err], "a failed run")


def test_unset_external_id_variable_fails_naming_the_variable(
    canaries, local_aws, local_bigquery, write_config, unique_name, monkeypatch
):
    config = _config(
        local_aws, local_bigquery, write_config, f"/test/none-{unique_name}", f"ds_{unique_name}"
    )
    monkeypatch.delenv(EXTERNAL_ID_VAR)
    with pytest.raises(dg.DagsterInvalidConfigError, match=EXTERNAL_ID_VAR):
        materialize(build_definitions(config), partition_key(window_start()), raise_on_error=False)


def test_config_errors_do_not_echo_environment_values(canaries, write_config):
    path = write_config(
        f"""
bigquery: {{project: "${{{EXTERNAL_ID_VAR}}}", dataset: logs}}
streams: [{{name: app, source: {{log_groups: [/a]}}, start: "2026-01-01"}}]
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"${{{EXTERNAL_ID_VAR}}}" in str(info.value)
    _assert_absent(canaries, [str(info.value), repr(info.value)], "the config error")

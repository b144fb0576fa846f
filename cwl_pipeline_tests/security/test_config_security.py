"""Config: keyless credentials only, external ids by reference, no secret echoed in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cwl_pipeline.config import ConfigError, GcpCredentials, load_config, parse_config

BASE = {
    "bigquery": {"project": "my-project", "dataset": "logs"},
    "streams": [{"name": "app", "source": {"log_groups": ["/app/web"]}, "start": "2026-01-01"}],
}


def with_bigquery(**changes):
    return {**BASE, "bigquery": {**BASE["bigquery"], **changes}}


def with_aws(**aws):
    return {**BASE, "aws": aws}


def test_credentials_default_to_application_default_credentials():
    assert parse_config(BASE).bigquery.credentials == GcpCredentials()


def test_external_account_credentials():
    config = parse_config(
        with_bigquery(
            credentials={"type": "external_account", "config_file": "/etc/cwl-pipeline/gcp-wif.json"}
        )
    )
    assert config.bigquery.credentials == GcpCredentials(
        type="external_account", config_file=Path("/etc/cwl-pipeline/gcp-wif.json"), aws_credentials="boto3"
    )
    config = parse_config(
        with_bigquery(
            credentials={
                "type": "external_account",
                "config_file": "/x.json",
                "aws_credentials": "google-auth",
            }
        )
    )
    assert config.bigquery.credentials.aws_credentials == "google-auth"


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({"type": "service_account"}, "refused: the pipeline never uses key files"),
        ({"type": "service_account", "config_file": "/key.json"}, "'external_account' \\(Workload Identity"),
        ({"type": "external_account"}, "config_file: required with type 'external_account'"),
        ({"config_file": "/x.json"}, "config_file: only applies to type 'external_account'"),
        ({"type": "external_account", "config_file": "/x", "aws_credentials": "env"}, "aws_credentials"),
        ({"type": "oauth"}, "must be one of"),
        ({"type": "default", "key": "x"}, "unknown key"),
    ],
)
def test_bad_credentials_are_refused(credentials, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_bigquery(credentials=credentials))


def test_role_settings():
    aws = parse_config(
        with_aws(
            role_arn="arn:aws:iam::123456789012:role/cwl-reader",
            role_session_name="cwl-prod",
            external_id="${CWL_AWS_EXTERNAL_ID}",
        )
    ).aws
    assert aws.role_session_name == "cwl-prod"
    assert aws.external_id_env == "CWL_AWS_EXTERNAL_ID"


@pytest.mark.parametrize(
    ("aws", "message"),
    [
        ({"role_arn": "arn:aws:iam::123456789012:user/bob"}, "not an IAM role ARN"),
        (
            {"role_arn": "arn:aws:iam::123456789012:role/r", "external_id": "literal-id"},
            "reference to an environment",
        ),
        (
            {"role_arn": "arn:aws:iam::123456789012:role/r", "role_session_name": "has space"},
            "role_session_name",
        ),
        ({"external_id": "${X}"}, "apply only with role_arn"),
    ],
)
def test_bad_role_settings(aws, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(with_aws(**aws))


def test_external_id_reference_is_not_expanded(write_config):
    path = write_config(
        """
aws: {role_arn: "arn:aws:iam::123456789012:role/r", external_id: "${CWL_TEST_EXTERNAL_ID}"}
bigquery: {project: my-project, dataset: logs}
streams: [{name: app, source: {log_groups: [/a]}, start: "2026-01-01"}]
"""
    )
    config = load_config(path, env={"CWL_TEST_EXTERNAL_ID": "canary-external-id"})
    assert config.aws.external_id_env == "CWL_TEST_EXTERNAL_ID"
    assert "canary-external-id" not in repr(config)


def test_errors_name_environment_variables_instead_of_their_values(write_config):
    secret = "s3cr3t-Value/With+Chars"
    path = write_config(
        """
bigquery: {project: my-project, dataset: "${CWL_TEST_DATASET}"}
streams: [{name: app, source: {log_groups: [/a]}, start: "2026-01-01"}]
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"CWL_TEST_DATASET": secret})
    assert secret not in str(info.value)
    assert "${CWL_TEST_DATASET}" in str(info.value)
    # Raised "from None": no chained exception carrying the expanded document is shown.
    assert info.value.__cause__ is None and info.value.__suppress_context__

"""Keyless Google credentials from AWS (Workload Identity Federation), end to end on local servers.

The ECS/Fargate case: the task's AWS credentials come only from the container credentials
endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with an authorization token). They are real
assumed-role credentials issued by the local AWS (moto STS AssumeRole). A local double of
Google's STS verifies the SigV4 signature of the subject token with the role's secret key,
asks the local AWS who signed it, and issues an access token that a BigQuery client then sends
to the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from google.auth import exceptions
from google.auth.transport.requests import Request
from google.cloud import bigquery

from cwl_pipeline.adapters.gcp_credentials import (
    AWS_SUBJECT_TOKEN_TYPE,
    Boto3AwsCredentialsSupplier,
    CredentialsError,
    aws_external_account_credentials,
    load_credential_config,
)
from cwl_pipeline.config import parse_config
from cwl_pipeline.local.processes import LOCAL_PROJECT, free_port
from cwl_pipeline.orchestration.resources import BigQueryWarehouse
from cwl_pipeline_tests.security.local_endpoints import (
    ContainerCredentials,
    GoogleStsDouble,
    RecordingProxy,
    moto_assumed_roles,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/cwl-task"
ASSUMED_ARN = "arn:aws:sts::123456789012:assumed-role/cwl-task/ecs-task-1"
# The pool trusts any session of the task role (an attribute condition on aws.role).
TRUSTED_ROLE_SESSIONS = "arn:aws:sts::123456789012:assumed-role/cwl-task/"
AUDIENCE = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/cwl/providers/aws"
SERVICE_ACCOUNT = "cwl-pipeline@my-project.iam.gserviceaccount.com"
CONTAINER_TOKEN = "container-auth-token-1"


def _assume(local_aws, session_name: str = "ecs-task-1", seconds: int = 900) -> dict[str, str]:
    creds = boto3.client("sts", endpoint_url=local_aws.url, region_name="us-east-1").assume_role(
        RoleArn=ROLE_ARN, RoleSessionName=session_name, DurationSeconds=seconds
    )["Credentials"]
    return {
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "Token": creds["SessionToken"],
        "Expiration": creds["Expiration"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture
def wrong_secrets() -> dict[str, str]:
    """Access key id -> a secret the STS double should believe instead of the real one."""
    return {}


@pytest.fixture
def google_sts(local_aws, wrong_secrets) -> Iterator[GoogleStsDouble]:
    def secret_for(access_key: str) -> str | None:
        # Like Google's STS, which asks AWS: the local AWS knows the secret of each session.
        if access_key in wrong_secrets:
            return wrong_secrets[access_key]
        record = moto_assumed_roles(local_aws.url).get(access_key)
        return record["secret_access_key"] if record else None

    sts = GoogleStsDouble(
        secret_for=secret_for,
        moto_url=local_aws.url,
        trust=lambda arn: arn.startswith(TRUSTED_ROLE_SESSIONS),
    ).start()
    yield sts
    sts.stop()


@pytest.fixture
def ecs_task(local_aws, monkeypatch, tmp_path) -> Iterator[ContainerCredentials]:
    """An ECS/Fargate-like environment: AWS credentials only from the container endpoint."""
    container = ContainerCredentials(authorization=CONTAINER_TOKEN).start()
    container.credentials = _assume(local_aws)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{container.url}/v2/credentials/task")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    yield container
    container.stop()


def write_cred_config(tmp_path: Path, token_url: str, impersonation_url: str | None = None, **source) -> Path:
    """A credential configuration as ``gcloud iam workload-identity-pools create-cred-config --aws``
    writes it, with the endpoints pointed at local doubles."""
    info = {
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
        "token_url": token_url,
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            **source,
        },
    }
    if impersonation_url:
        info["service_account_impersonation_url"] = impersonation_url
    path = tmp_path / "gcp-wif.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


def warehouse(config_file: Path, **changes) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        project="my-project",
        dataset="logs",
        credentials_type="external_account",
        credential_config_file=str(config_file),
        **{"aws_region": "us-east-1", **changes},
    )


def test_fargate_task_credentials_are_exchanged_for_a_google_token(ecs_task, google_sts, tmp_path):
    credentials = warehouse(write_cred_config(tmp_path, f"{google_sts.url}/v1/token")).google_credentials()
    credentials.refresh(Request())
    assert credentials.token == "sts-token-1"
    exchange = google_sts.exchanges[-1]
    assert exchange.error is None
    # Signed with the credentials the container endpoint handed to boto3, and AWS names the
    # assumed role as the caller.
    assert exchange.access_key == ecs_task.credentials["AccessKeyId"]
    assert exchange.caller_arn == ASSUMED_ARN
    assert ecs_task.requests >= 1
    headers = {h["key"].lower(): h["value"] for h in exchange.signed_request["headers"]}
    assert exchange.signed_request["url"].startswith("https://sts.us-east-1.amazonaws.com?")
    assert headers["x-amz-security-token"] == ecs_task.credentials["Token"]
    assert headers["x-goog-cloud-target-resource"] == AUDIENCE
    assert exchange.form["audience"] == AUDIENCE
    assert exchange.form["subject_token_type"] == AWS_SUBJECT_TOKEN_TYPE


def test_google_auths_own_aws_reader_cannot_see_container_credentials(ecs_task, google_sts, tmp_path):
    """What the custom supplier is for: google-auth reads environment variables or instance
    metadata only. The metadata URLs point at a closed local port (as unreachable as the EC2
    metadata service is from a Fargate task)."""
    closed = f"http://127.0.0.1:{free_port()}"
    path = write_cred_config(
        tmp_path,
        f"{google_sts.url}/v1/token",
        url=f"{closed}/latest/meta-data/iam/security-credentials",
        region_url=f"{closed}/latest/meta-data/placement/availability-zone",
    )
    credentials = warehouse(path, aws_credentials="google-auth").google_credentials()
    with pytest.raises(exceptions.TransportError):
        credentials.refresh(Request())
    assert google_sts.exchanges == []


def test_every_refresh_uses_the_current_aws_credentials(ecs_task, google_sts, local_aws, tmp_path):
    """The supplier asks boto3 again on every refresh; boto3 renews the task credentials when
    they are about to expire (here: served with 5 minutes left)."""
    soon = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ecs_task.credentials = {**ecs_task.credentials, "Expiration": soon}
    credentials = warehouse(write_cred_config(tmp_path, f"{google_sts.url}/v1/token")).google_credentials()
    credentials.refresh(Request())
    rotated = {**_assume(local_aws, "ecs-task-1"), "Expiration": soon}
    ecs_task.credentials = rotated
    credentials.refresh(Request())
    assert credentials.token == "sts-token-2"
    assert [e.error for e in google_sts.exchanges] == [None, None]
    assert google_sts.exchanges[-1].access_key == rotated["AccessKeyId"] != google_sts.exchanges[0].access_key


def test_service_account_impersonation(ecs_task, google_sts, tmp_path):
    url = f"{google_sts.url}/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken"
    credentials = warehouse(
        write_cred_config(tmp_path, f"{google_sts.url}/v1/token", url)
    ).google_credentials()
    credentials.refresh(Request())
    assert credentials.token == "sa-token-for-sts-token-1"
    (call,) = google_sts.impersonations
    assert call["authorization"] == "Bearer sts-token-1"
    assert call["body"]["scope"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert google_sts.exchanges[-1].caller_arn == ASSUMED_ARN


def test_an_untrusted_role_gets_no_token(ecs_task, local_aws, google_sts, tmp_path):
    other = boto3.client("sts", endpoint_url=local_aws.url, region_name="us-east-1").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/someone-else", RoleSessionName="other-task"
    )["Credentials"]
    ecs_task.credentials = {
        **ecs_task.credentials,
        "AccessKeyId": other["AccessKeyId"],
        "SecretAccessKey": other["SecretAccessKey"],
        "Token": other["SessionToken"],
    }
    credentials = warehouse(write_cred_config(tmp_path, f"{google_sts.url}/v1/token")).google_credentials()
    with pytest.raises(exceptions.OAuthError, match="not trusted"):
        credentials.refresh(Request())


def test_bigquery_client_sends_the_federated_token(ecs_task, google_sts, local_bigquery, tmp_path):
    """A BigQuery client with these credentials talks to the emulator (which ignores auth)
    through a recording proxy: every request carries the exchanged token."""
    proxy = RecordingProxy(target=local_bigquery.url).start()
    try:
        credentials = warehouse(
            write_cred_config(tmp_path, f"{google_sts.url}/v1/token")
        ).google_credentials()
        client = bigquery.Client(
            project=LOCAL_PROJECT, credentials=credentials, client_options={"api_endpoint": proxy.url}
        )
        rows = list(client.query("SELECT 41 + 1 AS answer").result())
        client.close()
    finally:
        proxy.stop()
    assert rows[0]["answer"] == 42
    authorizations = {{k.lower(): v for k, v in h.items()}.get("authorization") for h in proxy.seen}
    assert authorizations == {"Bearer sts-token-1"}


def test_emulator_endpoint_stays_anonymous(local_bigquery):
    with BigQueryWarehouse(
        project=LOCAL_PROJECT,
        dataset="logs",
        api_endpoint=local_bigquery.url,
        credentials_type="external_account",
    ).get_client() as client:
        assert next(iter(client.query("SELECT 1 AS one").result()))["one"] == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}, "long-lived secret"),
        ({"type": "authorized_user"}, "refused"),
        (
            {"type": "external_account", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"},
            "not an AWS",
        ),
        (
            {
                "type": "external_account",
                "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
                "token_url": "https://sts.evil.example/v1/token",
            },
            "token_url must be an https://\\*.googleapis.com endpoint",
        ),
        (
            {
                "type": "external_account",
                "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
                "token_url": "http://sts.googleapis.com/v1/token",
            },
            "token_url must be",
        ),
        (
            {
                "type": "external_account",
                "subject_token_type": AWS_SUBJECT_TOKEN_TYPE,
                "service_account_impersonation_url": "https://iamcredentials.googleapis.com.evil.example/x",
            },
            "service_account_impersonation_url must be",
        ),
    ],
)
def test_credential_files_are_checked(tmp_path, doc, message):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(CredentialsError, match=message):
        load_credential_config(path)
    with pytest.raises(CredentialsError, match=message):
        warehouse(path).google_credentials()


def test_key_material_in_resource_config_is_refused():
    with pytest.raises(CredentialsError, match="refused"):
        BigQueryWarehouse(
            project="my-project", dataset="logs", gcp_credentials="eyJ0eXBlIjoi..."
        ).google_credentials()


def test_supplier_without_any_aws_credentials_says_so(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    supplier = Boto3AwsCredentialsSupplier(boto3.session.Session(region_name="eu-west-1"))
    assert supplier.get_aws_region(None, None) == "eu-west-1"
    with pytest.raises(exceptions.RefreshError, match="no AWS credentials"):
        supplier.get_aws_security_credentials(None, None)


def test_google_auth_reader_keeps_the_files_credential_source(tmp_path):
    info = load_credential_config(write_cred_config(tmp_path, "https://sts.googleapis.com/v1/token"))
    own = aws_external_account_credentials(info, aws_credentials="google-auth")
    boto = aws_external_account_credentials(info, session=boto3.session.Session(region_name="us-east-1"))
    assert own.info["credential_source"]["environment_id"] == "aws1"
    assert "credential_source" not in boto.info


def test_the_double_rejects_a_signature_made_with_another_secret(
    ecs_task, google_sts, wrong_secrets, tmp_path
):
    """The STS double's signature check is real: with another secret on record it refuses."""
    wrong_secrets[ecs_task.credentials["AccessKeyId"]] = "not-the-secret"
    credentials = warehouse(write_cred_config(tmp_path, f"{google_sts.url}/v1/token")).google_credentials()
    with pytest.raises(exceptions.OAuthError, match="signature does not match"):
        credentials.refresh(Request())


def test_the_runtime_role_is_assumed_before_the_exchange(ecs_task, google_sts, local_aws, tmp_path):
    """With ``aws.role_arn`` the exchange is signed as the runtime role (the pool's attribute
    condition names it), assumed with the task's container credentials."""
    runtime = "arn:aws:sts::123456789012:assumed-role/cwl-pipeline-runtime/cwl-pipeline"
    google_sts.trust = lambda arn: arn == runtime
    credentials = warehouse(
        write_cred_config(tmp_path, f"{google_sts.url}/v1/token"),
        aws_endpoint_url=local_aws.url,
        aws_role_arn="arn:aws:iam::123456789012:role/cwl-pipeline-runtime",
    ).google_credentials()
    credentials.refresh(Request())
    exchange = google_sts.exchanges[-1]
    assert (exchange.error, exchange.caller_arn, credentials.token) == (None, runtime, "sts-token-1")
    assert exchange.access_key != ecs_task.credentials["AccessKeyId"]


def test_config_wires_the_aws_identity_into_the_warehouse():
    doc = {
        "bigquery": {"project": "my-project", "dataset": "logs"},
        "streams": [{"name": "app", "source": {"log_groups": ["/a"]}, "start": "2026-01-01"}],
    }
    config = parse_config(
        {
            **doc,
            "aws": {"region": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:role/cwl-pipeline-runtime"},
            "bigquery": {
                **doc["bigquery"],
                "credentials": {"type": "external_account", "config_file": "/etc/cwl-pipeline/gcp-wif.json"},
            },
        }
    )
    resource = BigQueryWarehouse.from_settings(config.bigquery, config.aws)
    assert resource.credentials_type == "external_account"
    assert resource.credential_config_file == "/etc/cwl-pipeline/gcp-wif.json"
    assert (resource.aws_role_arn, resource.aws_region) == (
        "arn:aws:iam::123456789012:role/cwl-pipeline-runtime",
        "eu-west-1",
    )
    default = parse_config(doc)
    assert BigQueryWarehouse.from_settings(default.bigquery, default.aws).aws_role_arn is None

"""AWS through an assumed role whose credentials renew themselves, against the local AWS (moto STS)."""

from __future__ import annotations

import boto3
import dagster as dg
import pytest

from cwl_pipeline.adapters.aws_session import assumed_role_session
from cwl_pipeline.config import AwsSettings
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline_tests.security.local_endpoints import moto_assumed_roles

ROLE_ARN = "arn:aws:iam::123456789012:role/cwl-reader"


@pytest.fixture
def assume_role_calls(local_aws) -> list[dict]:
    """Parameters of every AssumeRole call made with a base session from :func:`_base`."""
    return []


def _base(local_aws, calls: list[dict]) -> boto3.session.Session:
    """The default chain (local credentials), recording the AssumeRole calls it makes."""
    base = boto3.session.Session(region_name="us-east-1")
    base.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params))
    )
    return base


def _sts(session: boto3.session.Session, local_aws):
    return session.client("sts", endpoint_url=local_aws.url)


def test_calls_are_made_as_the_assumed_role(local_aws, assume_role_calls):
    session = assumed_role_session(
        _base(local_aws, assume_role_calls),
        ROLE_ARN,
        session_name="cwl-test",
        external_id="ext-123",
        endpoint_url=local_aws.url,
    )
    identity = _sts(session, local_aws).get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/cwl-reader/cwl-test"
    assert assume_role_calls == [
        {"RoleArn": ROLE_ARN, "RoleSessionName": "cwl-test", "DurationSeconds": 3600, "ExternalId": "ext-123"}
    ]
    # Credentials valid for an hour are reused, not fetched again per call.
    _sts(session, local_aws).get_caller_identity()
    assert len(assume_role_calls) == 1


def test_credentials_about_to_expire_are_renewed(local_aws, assume_role_calls):
    """15-minute credentials are inside botocore's refresh window from the start, so every use
    assumes the role again: the same mechanism renews hour-long credentials after 45 minutes."""
    session = assumed_role_session(
        _base(local_aws, assume_role_calls), ROLE_ARN, endpoint_url=local_aws.url, duration_seconds=900
    )
    credentials = session.get_credentials()
    first = credentials.get_frozen_credentials().access_key
    second = credentials.get_frozen_credentials().access_key
    assert first != second
    assert len(assume_role_calls) == 2
    arn = _sts(session, local_aws).get_caller_identity()["Arn"]
    assert arn == "arn:aws:sts::123456789012:assumed-role/cwl-reader/cwl-pipeline"


def test_resource_assumes_the_configured_role(local_aws, monkeypatch):
    monkeypatch.setenv("CWL_TEST_EXTERNAL_ID", "ext-from-env")
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url=local_aws.url,
        role_arn=ROLE_ARN,
        role_session_name="cwl-prod",
        external_id="${CWL_TEST_EXTERNAL_ID}",
    )
    resource = AwsResource.from_settings(settings)
    # The resource config holds the variable's name, never its value.
    assert isinstance(resource.external_id, dg.EnvVar)
    assert resource.external_id.env_var_name == "CWL_TEST_EXTERNAL_ID"
    credentials = resource.session().get_credentials().get_frozen_credentials()
    identity = resource.session().client("sts", endpoint_url=local_aws.url).get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/cwl-reader/cwl-prod"
    # The local AWS recorded the session with the external id read from the environment.
    session = moto_assumed_roles(local_aws.url)[credentials.access_key]
    assert (session["session_name"], session["external_id"]) == ("cwl-prod", "ext-from-env")
    assert resource.client("logs").describe_log_groups(limit=1)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_resource_without_role_uses_the_default_chain(local_aws):
    resource = AwsResource.from_settings(AwsSettings(region="us-east-1", endpoint_url=local_aws.url))
    arn = resource.session().client("sts", endpoint_url=local_aws.url).get_caller_identity()["Arn"]
    assert ":assumed-role/" not in arn

"""Credentials are masked in error messages, whatever service echoes them."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from cwl_pipeline.adapters.aws_session import scrub_error_responses
from cwl_pipeline.config import AwsSettings
from cwl_pipeline.core.scrub import REDACTED, scrub_secrets
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline_tests.security.local_endpoints import SignatureMismatchAws

TOKEN = "FQoGZXIvYXdzEBYaDcanaryToken+/abc="


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"host:h\nx-amz-security-token:{TOKEN}\nx-amz-target:Logs", TOKEN),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Security-Token=tok%2Fen&X-Amz-Signature=" + "ab" * 32,
            "tok%2Fen",
        ),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=x&X-Amz-Signature=" + "ab" * 32, "ab" * 32),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=A/x, SignedHeaders=host, Signature=" + "cd" * 32,
            "cd" * 32,
        ),
        ("Authorization: Bearer ya29.a0AfH6SMBcanary", "ya29.a0AfH6SMBcanary"),
        ('{"access_token": "ya29.canary", "expires_in": 3599}', "ya29.canary"),
        ("<Credentials><SessionToken>canaryTok</SessionToken></Credentials>", "canaryTok"),
        ("aws_secret_access_key = canarySecret", "canarySecret"),
        (
            '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIcanary\\n-----END PRIVATE KEY-----\\n"',
            "MIIcanary",
        ),
    ],
)
def test_secrets_are_masked(text, secret):
    redacted = scrub_secrets(text)
    assert secret not in redacted and REDACTED in redacted


def test_ordinary_text_is_untouched():
    text = "window 2026-11-20T10:00:00Z: 5 events read, token bucket empty, session_id 3"
    assert scrub_secrets(text) == text


@pytest.fixture
def bad_signature_aws():
    server = SignatureMismatchAws().start()
    yield server
    server.stop()


def test_botocore_errors_from_our_clients_carry_no_session_token(bad_signature_aws, monkeypatch):
    """AWS echoes the canonical request (with the session token) on a signature mismatch; a
    local server plays that answer, which moto never gives."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    plain = boto3.session.Session().client(
        "logs", endpoint_url=bad_signature_aws.url, region_name="us-east-1"
    )
    with pytest.raises(ClientError) as unprotected:
        plain.describe_log_groups()
    assert TOKEN in str(unprotected.value)  # what botocore would show without redaction

    resource = AwsResource.from_settings(
        AwsSettings(region="us-east-1", endpoint_url=bad_signature_aws.url, max_attempts=1)
    )
    for client in (resource.client("logs"), scrub_error_responses(plain)):
        with pytest.raises(ClientError) as protected:
            client.describe_log_groups()
        assert TOKEN not in str(protected.value)
        assert "x-amz-security-token:" + REDACTED in str(protected.value)
        assert protected.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_unparseable_error_bodies_are_masked_too(monkeypatch):
    """botocore quotes a body it cannot parse in its exception; that text is masked as well."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    server = SignatureMismatchAws(json_only=True).start()
    try:
        resource = AwsResource.from_settings(
            AwsSettings(region="us-east-1", endpoint_url=server.url, max_attempts=1)
        )
        with pytest.raises(ResponseParserError) as error:
            resource.client("sts").get_caller_identity()
    finally:
        server.stop()
    assert "Unable to parse response" in str(error.value)
    assert TOKEN not in str(error.value) and REDACTED in str(error.value)

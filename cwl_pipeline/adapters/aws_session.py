"""boto3 sessions that assume an IAM role and renew the role's credentials before they expire.

An ``sts.assume_role`` call made once yields credentials that expire (one hour by default);
a long run, or a resource kept across runs, would then fail mid-way. Here botocore's own
``AssumeRoleCredentialFetcher`` (the one boto3 uses for ``role_arn`` profiles) feeds
``DeferredRefreshableCredentials``: the role is assumed on first use and again shortly before
the credentials expire, with the base session's (possibly refreshing) credentials as source.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.config import AwsSettings, default_of
from cwl_pipeline.core.scrub import scrub_secrets

ROLE_DURATION_SECONDS = 3600


class _AssumedRoleProvider(CredentialProvider):
    """A credential provider that always answers with the given (refreshing) credentials."""

    METHOD = "cwl-assume-role"
    CANONICAL_NAME = "cwl-assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def assumed_role_session(
    base: boto3.session.Session,
    role_arn: str,
    *,
    session_name: str = default_of(AwsSettings, "role_session_name"),
    external_id: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    duration_seconds: int = ROLE_DURATION_SECONDS,
) -> boto3.session.Session:
    """A session whose credentials are ``role_arn``'s, assumed with ``base``'s credentials.

    ``endpoint_url`` is the STS endpoint (a local AWS); ``external_id`` the role's
    ``sts:ExternalId`` condition value, if it has one.

    Raises:
        SourceError: ``base`` has no credentials to assume the role with.
    """
    source = base.get_credentials()
    if source is None:
        raise SourceError(f"no AWS credentials found to assume role {role_arn}")
    extra_args: dict[str, Any] = {"RoleSessionName": session_name, "DurationSeconds": duration_seconds}
    if external_id:
        extra_args["ExternalId"] = external_id
    region = region or base.region_name
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda *args, **kwargs: scrub_error_responses(
            base.client(*args, endpoint_url=endpoint_url, region_name=region, **kwargs)
        ),
        source_credentials=source,
        role_arn=role_arn,
        extra_args=extra_args,
    )
    credentials = DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method=_AssumedRoleProvider.METHOD
    )
    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _AssumedRoleProvider(credentials))
    return boto3.session.Session(botocore_session=core, region_name=region)


def scrub_error_responses(client: Any) -> Any:
    """Mask credentials in the error responses ``client`` raises as exceptions.

    AWS answers a bad signature with the canonical request it expected, session token
    included, in the error message; botocore puts that message into the exception, and from
    there it would reach logs and the Dagster UI. The handler runs after the response is
    parsed and before botocore builds the exception from it; errors raised before that (a
    response botocore cannot parse, quoted in the message) are masked in place.
    """

    def scrub(parsed: Any = None, **_: Any) -> None:
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            for key, value in error.items():
                if isinstance(value, str):
                    error[key] = scrub_secrets(value)

    def scrub_exception(exception: BaseException | None = None, **_: Any) -> None:
        # Transport and parse errors (a body botocore could not parse is quoted whole).
        if exception is not None:
            exception.args = tuple(scrub_secrets(a) if isinstance(a, str) else a for a in exception.args)

    client.meta.events.register("after-call.*.*", scrub)
    client.meta.events.register("after-call-error.*.*", scrub_exception)
    return client

"""Google Cloud credentials without key files: Workload Identity Federation from AWS.

A credential configuration file (``gcloud iam workload-identity-pools create-cred-config
--aws``) holds no secret: it names the pool provider, Google's STS token endpoint and,
optionally, a service account to impersonate. google-auth signs an AWS STS
``GetCallerIdentity`` request with the workload's AWS credentials, sends it to Google's STS
as the subject token and receives a short-lived Google access token.

google-auth's own AWS reader only looks at environment variables and EC2 instance metadata,
so it fails on ECS/Fargate (container credentials at ``AWS_CONTAINER_CREDENTIALS_*_URI``) and
with EKS IRSA or profiles that assume a role. :class:`Boto3AwsCredentialsSupplier` hands it
credentials from boto3's complete provider chain instead, asked again on every token refresh
(boto3 refreshes temporary credentials itself before they expire).

Service-account key files are refused here as in the config: they are long-lived secrets.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import google.auth
from google.auth import aws, exceptions
from google.auth.credentials import Credentials
from google.oauth2 import service_account

from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.config import GcpCredentials, default_of

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
_KEY_FILE_TYPES = ("service_account", "authorized_user", "impersonated_service_account")


class CredentialsError(DestinationError):
    """Google credentials cannot be built from the configuration; the message says why."""


class Boto3AwsCredentialsSupplier(aws.AwsSecurityCredentialsSupplier):
    """AWS credentials and region for google-auth's AWS external account, from boto3.

    Every call asks the boto3 session again: its credential object refreshes temporary
    credentials (container credentials, assumed roles, web identity) before they expire, and
    google-auth does not cache what a supplier returns.
    """

    def __init__(self, session: boto3.session.Session, region: str | None = None) -> None:
        """``region`` overrides the session's region (used to sign the STS request)."""
        self._session = session
        self._region = region

    def get_aws_security_credentials(self, context: Any, request: Any) -> aws.AwsSecurityCredentials:
        """The current credentials of boto3's provider chain."""
        credentials = self._session.get_credentials()
        if credentials is None:
            raise exceptions.RefreshError(
                "boto3 found no AWS credentials (environment, container or instance role, web "
                "identity, profile) to exchange for a Google access token"
            )
        frozen = credentials.get_frozen_credentials()
        return aws.AwsSecurityCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def get_aws_region(self, context: Any, request: Any) -> str:
        """The configured region, else boto3's (``AWS_REGION``, profile)."""
        region = self._region or self._session.region_name
        if not region:
            raise exceptions.RefreshError("no AWS region set to sign the STS GetCallerIdentity request")
        return region


def load_credential_config(path: str | Path) -> dict[str, Any]:
    """Read and check an AWS ``external_account`` credential configuration file.

    google-auth does not validate the URLs of such a file (its documentation warns about
    configurations from untrusted sources): the signed AWS request would go wherever
    ``token_url`` points. So the endpoints must be Google's (``https://*.googleapis.com``) or
    on the loopback interface (a local test double).

    Raises:
        CredentialsError: unreadable, a key file, not for AWS, or an unexpected endpoint.
    """
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(
            f"cannot read credential configuration {path}: {exc.strerror or exc}"
        ) from None
    except ValueError:
        raise CredentialsError(f"credential configuration {path} is not JSON") from None
    if not isinstance(info, dict):
        raise CredentialsError(f"credential configuration {path} is not a JSON object")
    kind = info.get("type")
    if kind in _KEY_FILE_TYPES:
        raise CredentialsError(
            f"{path} is a {kind!r} credential file (a long-lived secret): refused. Generate a "
            "keyless Workload Identity Federation configuration with gcloud iam "
            "workload-identity-pools create-cred-config --aws (see docs/security.md)"
        )
    if kind != "external_account":
        raise CredentialsError(f"{path}: type {kind!r} is not 'external_account'")
    if info.get("subject_token_type") != AWS_SUBJECT_TOKEN_TYPE:
        raise CredentialsError(
            f"{path}: not an AWS configuration (subject_token_type {AWS_SUBJECT_TOKEN_TYPE})"
        )
    for key in ("token_url", "service_account_impersonation_url", "token_info_url"):
        if info.get(key) is not None:
            _check_google_endpoint(str(path), key, info[key])
    return info


def _check_google_endpoint(path: str, key: str, url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and (host == "googleapis.com" or host.endswith(".googleapis.com")):
        return
    if parts.scheme in ("http", "https") and _is_loopback(host):
        return
    raise CredentialsError(f"{path}: {key} must be an https://*.googleapis.com endpoint, not {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def aws_external_account_credentials(
    info: Mapping[str, Any],
    *,
    aws_credentials: str = default_of(GcpCredentials, "aws_credentials"),
    session: boto3.session.Session | None = None,
    region: str | None = None,
    scopes: Sequence[str] = (CLOUD_PLATFORM_SCOPE,),
) -> aws.Credentials:
    """``google.auth.aws.Credentials`` from a checked configuration (:func:`load_credential_config`).

    ``aws_credentials="boto3"`` (default) supplies AWS credentials from ``session`` (default:
    a new boto3 session); ``"google-auth"`` keeps the file's ``credential_source`` and
    google-auth's own reader (environment variables, EC2 metadata).
    """
    if aws_credentials == "google-auth":
        return aws.Credentials.from_info(dict(info), scopes=list(scopes))
    if aws_credentials != "boto3":
        raise CredentialsError(f"aws_credentials {aws_credentials!r} is not 'boto3' or 'google-auth'")
    # A custom supplier replaces the file's credential_source (google-auth accepts only one).
    without_source = {k: v for k, v in info.items() if k != "credential_source"}
    supplier = Boto3AwsCredentialsSupplier(session or boto3.session.Session(), region)
    return aws.Credentials.from_info(
        without_source, aws_security_credentials_supplier=supplier, scopes=list(scopes)
    )


def default_credentials(scopes: Sequence[str] = (CLOUD_PLATFORM_SCOPE,)) -> tuple[Credentials, str | None]:
    """Application Default Credentials, refusing a service-account key file.

    Raises:
        CredentialsError: none found, or ``GOOGLE_APPLICATION_CREDENTIALS`` names a key file.
    """
    try:
        credentials, project = google.auth.default(scopes=list(scopes))
    except exceptions.DefaultCredentialsError as exc:
        raise CredentialsError(f"no Google Application Default Credentials: {exc}") from None
    if isinstance(credentials, service_account.Credentials):
        raise CredentialsError(
            "Application Default Credentials are a service-account key file: refused. Use "
            "bigquery.credentials.type external_account (Workload Identity Federation), an "
            "attached service account, or gcloud auth application-default login"
        )
    return credentials, project

"""Dagster resources for AWS and BigQuery, built on dagster-aws and dagster-gcp.

dagster-aws's boto3 configuration lacks a retry mode and role assumption, and dagster-gcp's
``BigQueryResource`` has no endpoint option (needed for a local emulator), no dataset and no
keyless credentials. Both are extended here:

* AWS: boto3's credential chain, optionally assuming ``role_arn`` with credentials that renew
  themselves before they expire;
* BigQuery: Application Default Credentials, or Workload Identity Federation from AWS with a
  credential configuration file and AWS credentials from boto3 (works on ECS/Fargate). Never
  a service-account key.

Secrets never go into resource config (Dagster shows resource config in its UI): the
``aws_*_key`` fields of dagster-aws stay empty, and a role's external id is an ``EnvVar``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import dagster as dg
import grpc
from botocore.config import Config
from dagster_aws.utils import ResourceWithBoto3Configuration
from dagster_gcp import BigQueryResource
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from pydantic import Field

from cwl_pipeline.adapters.aws_session import assumed_role_session, scrub_error_responses
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.adapters.gcp_credentials import (
    CredentialsError,
    aws_external_account_credentials,
    default_credentials,
    load_credential_config,
)
from cwl_pipeline.config import AwsSettings, BigQuerySettings, GcpCredentials, SourceAccount, default_of

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


class AwsResource(ResourceWithBoto3Configuration):
    """boto3 clients for CloudWatch Logs, CloudWatch metrics and S3 with retries tuned for API throttling."""

    retry_mode: str = Field(
        default=default_of(AwsSettings, "retry_mode"),
        description="botocore retry mode: 'adaptive' also rate-limits the client on throttling.",
    )
    role_arn: str | None = Field(default=None, description="IAM role to assume, if any.")
    filter_log_events_per_second: float = Field(
        default=default_of(AwsSettings, "filter_log_events_per_second"),
        description="FilterLogEvents requests per second this process may send.",
    )
    role_session_name: str = Field(
        default=default_of(AwsSettings, "role_session_name"),
        description="RoleSessionName of the assumed role (shows in CloudTrail).",
    )
    external_id: str | None = Field(
        default=None,
        description="sts:ExternalId for role_arn; pass an EnvVar so the value is not shown in the UI.",
    )

    @classmethod
    def from_settings(cls, settings: AwsSettings) -> AwsResource:
        """Build from the pipeline config's ``aws`` section (credentials: boto3's chain)."""
        return cls(
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            profile_name=settings.profile,
            role_arn=settings.role_arn,
            role_session_name=settings.role_session_name,
            external_id=dg.EnvVar(settings.external_id_env) if settings.external_id_env else None,
            max_attempts=settings.max_attempts,
            retry_mode=settings.retry_mode,
            filter_log_events_per_second=settings.filter_log_events_per_second,
        )

    def session(self, account: SourceAccount | None = None) -> boto3.session.Session:
        """A boto3 session: the default chain, or ``role_arn`` assumed (and renewed) with it.

        With ``account`` (a stream's ``source.account``) its role is assumed in turn, with the
        pipeline's credentials as source, and its Region is the session's.
        """
        session = self._own_session()
        if account is None or not account.role_arn:
            return session
        return assumed_role_session(
            session,
            account.role_arn,
            session_name=self.role_session_name,
            external_id=account_external_id(account),
            endpoint_url=self.endpoint_url,
            region=account.region or self.region_name,
        )

    def _own_session(self) -> boto3.session.Session:
        session = boto3.session.Session(
            profile_name=self.profile_name,
            region_name=self.region_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )
        if not self.role_arn:
            return session
        return assumed_role_session(
            session,
            self.role_arn,
            session_name=self.role_session_name,
            external_id=self._external_id(),
            endpoint_url=self.endpoint_url,
            region=self.region_name,
        )

    def _external_id(self) -> str | None:
        if isinstance(self.external_id, dg.EnvVar):  # used outside a run: Dagster did not resolve it
            return self.external_id.get_value()
        return self.external_id

    def client(self, service: str, account: SourceAccount | None = None) -> Any:
        """The process's boto3 client for ``service`` ("logs", "s3", ...) with this configuration,
        in ``account`` (a stream's ``source.account``: its role and Region) if given.

        Reused across runs and sensor ticks of the process: botocore's adaptive retry keeps its
        measured rate in the client, and an assumed role is not assumed again on every call.
        """
        external_id = account_external_id(account) if account is not None else None
        key = (service, self.model_dump_json(), self._external_id(), account, external_id)
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = self._new_client(service, account)
        return client

    def caller_account(self, account: SourceAccount | None = None) -> str:
        """Who a client for ``account`` calls AWS as, for per-account quotas: the account of the
        role it assumes (the stream's, else the pipeline's ``role_arn``), else the pipeline's
        own credentials, whatever their account."""
        if account is not None and account.account_id:
            return account.account_id
        own = SourceAccount(role_arn=self.role_arn).account_id if self.role_arn else None
        return own or "own-credentials"

    def _new_client(self, service: str, account: SourceAccount | None = None) -> Any:
        config = Config(
            # botocore's "max_attempts" counts retries; "total_max_attempts" counts every attempt,
            # which is what the config's aws.max_attempts means.
            retries={"total_max_attempts": self.max_attempts, "mode": self.retry_mode},
            connect_timeout=10,
            read_timeout=60,
        )
        client = self.session(account).client(
            service,
            region_name=(account.region if account else None) or self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            config=config,
        )
        return scrub_error_responses(client)


def account_external_id(account: SourceAccount) -> str | None:
    """The external id of ``account``'s role, read from its environment variable now.

    Raises:
        SourceError: the variable is named but not set.
    """
    if not account.external_id_env:
        return None
    value = os.environ.get(account.external_id_env)
    if not value:
        raise SourceError(
            f"environment variable {account.external_id_env} "
            f"(the external id for {account.role_arn}) is not set"
        )
    return value


class BigQueryWarehouse(BigQueryResource):
    """dagster-gcp's BigQuery resource plus a dataset, an optional API endpoint and keyless auth.

    With ``api_endpoint`` set (a local emulator) the client sends no credentials. Otherwise
    ``credentials_type`` says how it authenticates: ``default`` (Application Default
    Credentials) or ``external_account`` (Workload Identity Federation from AWS, see
    :mod:`cwl_pipeline.adapters.gcp_credentials`). dagster-gcp's ``gcp_credentials`` (a
    base64 service-account key) is refused.
    """

    dataset: str = Field(description="Dataset holding the events and rejects tables.")
    staging_dataset: str | None = Field(
        default=None, description="Dataset for short-lived staging tables (default: dataset)."
    )
    api_endpoint: str | None = Field(
        default=None, description="BigQuery REST endpoint override, e.g. a local emulator."
    )
    storage_write_endpoint: str | None = Field(
        default=None, description="The emulator's Storage Write API (gRPC host:port), with api_endpoint."
    )
    retry_timeout_seconds: float = Field(
        default=default_of(BigQuerySettings, "retry_timeout").total_seconds(),
        description="How long API calls are retried before the run fails.",
    )
    credentials_type: str = Field(
        default=default_of(GcpCredentials, "type"),
        description="'default' (ADC) or 'external_account' (Workload Identity Federation).",
    )
    credential_config_file: str | None = Field(
        default=None, description="Workload Identity Federation credential configuration (holds no secret)."
    )
    aws_credentials: str = Field(
        default=default_of(GcpCredentials, "aws_credentials"),
        description="Who reads the AWS credentials to exchange: 'boto3' (its whole chain) or 'google-auth'.",
    )
    # The AWS identity exchanged for Google credentials: the pipeline's own (aws section). Plain
    # fields, not a nested AwsResource: a nested resource makes this one a generator resource.
    aws_region: str | None = Field(default=None, description="AWS region signing the exchange request.")
    aws_profile: str | None = Field(default=None, description="boto3 profile of the exchanged identity.")
    aws_endpoint_url: str | None = Field(default=None, description="STS endpoint for role_arn (local AWS).")
    aws_role_arn: str | None = Field(default=None, description="Role assumed for the exchange, if any.")
    aws_role_session_name: str = Field(
        default=default_of(AwsSettings, "role_session_name"), description="Its RoleSessionName."
    )
    aws_external_id: str | None = Field(default=None, description="Its sts:ExternalId (an EnvVar).")

    @classmethod
    def from_settings(cls, settings: BigQuerySettings, aws: AwsSettings | None = None) -> BigQueryWarehouse:
        """Build from the pipeline config's ``bigquery`` section (and ``aws`` for the exchange)."""
        credentials = settings.credentials
        return cls(
            project=settings.project,
            location=settings.location,
            dataset=settings.dataset,
            staging_dataset=settings.staging_dataset,
            api_endpoint=settings.api_endpoint,
            storage_write_endpoint=settings.storage_write_endpoint,
            retry_timeout_seconds=settings.retry_timeout.total_seconds(),
            credentials_type=credentials.type,
            credential_config_file=str(credentials.config_file) if credentials.config_file else None,
            aws_credentials=credentials.aws_credentials,
            **(_exchange_identity(aws) if aws and credentials.type == "external_account" else {}),
        )

    def google_credentials(self) -> Credentials:
        """The Google credentials this resource authenticates with (no emulator endpoint).

        Raises:
            CredentialsError: a key file, a bad credential configuration, or no credentials.
        """
        if self.gcp_credentials:
            raise CredentialsError(
                "gcp_credentials (a base64 service-account key) is refused: use Workload Identity "
                "Federation or Application Default Credentials (docs/security.md)"
            )
        if self.credentials_type == "external_account":
            if not self.credential_config_file:
                raise CredentialsError("credentials_type external_account needs credential_config_file")
            info = load_credential_config(self.credential_config_file)
            # The same AWS identity the pipeline reads with: role_arn assumed if configured
            # (the pool's attribute condition names that role), else boto3's chain.
            aws = AwsResource(
                region_name=self.aws_region,
                profile_name=self.aws_profile,
                endpoint_url=self.aws_endpoint_url,
                role_arn=self.aws_role_arn,
                role_session_name=self.aws_role_session_name,
                external_id=self.aws_external_id,
            )
            return aws_external_account_credentials(
                info, aws_credentials=self.aws_credentials, session=aws.session(), region=self.aws_region
            )
        if self.credentials_type != "default":
            raise CredentialsError(f"credentials_type {self.credentials_type!r} is not supported")
        return default_credentials()[0]

    def get_object_to_set_on_execution_context(self) -> BigQueryWarehouse:
        """The warehouse itself on a context's ``resources``, as a resource parameter gets it
        (dagster-gcp sets a client there): the stream definitions read it under a key of the
        project's (:class:`~cwl_pipeline.load.project_keys.ProjectKeys`)."""
        return self

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        """A BigQuery client for the configured project, location and endpoint."""
        if self.api_endpoint:
            client = bigquery.Client(
                project=self.project,
                location=self.location,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.api_endpoint},
            )
        else:
            client = bigquery.Client(
                project=self.project, location=self.location, credentials=self.google_credentials()
            )
        try:
            yield client
        finally:
            client.close()

    def appender(self) -> StreamAppender | None:
        """A Storage Write API appender for the dataset; None against an emulator whose gRPC
        endpoint is not configured (open windows are then written like settled ones). An append
        refused for a column BigQuery does not accept yet is retried for the API retry budget."""
        from google.cloud.bigquery_storage_v1 import BigQueryWriteClient
        from google.cloud.bigquery_storage_v1.services.big_query_write.transports import (
            BigQueryWriteGrpcTransport,
        )

        if self.api_endpoint:
            if not self.storage_write_endpoint:
                return None
            channel = grpc.insecure_channel(self.storage_write_endpoint)
            client = BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
        else:
            client = BigQueryWriteClient(credentials=self.google_credentials())
        return StreamAppender(client, self.project, self.dataset, schema_wait=self.retry_timeout_seconds)

    @contextmanager
    def loader(self) -> Iterator[BigQueryLoader]:
        """A loader bound to this resource's dataset."""
        with self.get_client() as client:
            yield BigQueryLoader(
                client,
                self.dataset,
                location=self.location,
                staging_dataset=self.staging_dataset,
                retry_timeout=self.retry_timeout_seconds,
            )


def _exchange_identity(aws: AwsSettings) -> dict[str, Any]:
    """BigQueryWarehouse fields naming the pipeline's AWS identity (see ``AwsResource``)."""
    return {
        "aws_region": aws.region,
        "aws_profile": aws.profile,
        "aws_endpoint_url": aws.endpoint_url,
        "aws_role_arn": aws.role_arn,
        "aws_role_session_name": aws.role_session_name,
        "aws_external_id": dg.EnvVar(aws.external_id_env) if aws.external_id_env else None,
    }

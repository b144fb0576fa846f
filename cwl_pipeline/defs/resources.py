"""Dagster resources for AWS and BigQuery, built on dagster-aws and dagster-gcp.

dagster-aws's boto3 configuration lacks a retry mode and role assumption, and dagster-gcp's
``BigQueryResource`` has no endpoint option (needed for a local emulator) nor a dataset. Both
are extended here; in production BigQuery uses Application Default Credentials, so keyless
Workload Identity Federation works without code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from dagster_aws.utils import ResourceWithBoto3Configuration
from dagster_gcp import BigQueryResource
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from pydantic import Field

from cwl_pipeline.adapters.bigquery import BigQueryLoader
from cwl_pipeline.adapters.cloudwatch import CloudWatchLogsReader
from cwl_pipeline.config import AwsSettings, BigQuerySettings


class AwsResource(ResourceWithBoto3Configuration):
    """boto3 clients for CloudWatch Logs and S3 with retries tuned for API throttling."""

    retry_mode: str = Field(
        default="adaptive",
        description="botocore retry mode: 'adaptive' also rate-limits the client on throttling.",
    )
    role_arn: str | None = Field(default=None, description="IAM role to assume, if any.")

    @classmethod
    def from_settings(cls, settings: AwsSettings) -> AwsResource:
        """Build from the pipeline config's ``aws`` section."""
        return cls(
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            profile_name=settings.profile,
            role_arn=settings.role_arn,
            max_attempts=settings.max_attempts,
            retry_mode=settings.retry_mode,
        )

    def _session(self) -> boto3.session.Session:
        session = boto3.session.Session(
            profile_name=self.profile_name,
            region_name=self.region_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
        )
        if not self.role_arn:
            return session
        creds = session.client("sts", endpoint_url=self.endpoint_url).assume_role(
            RoleArn=self.role_arn, RoleSessionName="cwl-pipeline"
        )["Credentials"]
        return boto3.session.Session(
            region_name=self.region_name,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` ("logs", "s3", ...)."""
        config = Config(
            # botocore's "max_attempts" counts retries; "total_max_attempts" counts every attempt,
            # which is what the config's aws.max_attempts means.
            retries={"total_max_attempts": self.max_attempts, "mode": self.retry_mode},
            connect_timeout=10,
            read_timeout=60,
        )
        return self._session().client(
            service,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            config=config,
        )

    def logs_reader(self) -> CloudWatchLogsReader:
        """A CloudWatch Logs reader over a fresh client."""
        return CloudWatchLogsReader(self.client("logs"))


class BigQueryWarehouse(BigQueryResource):
    """dagster-gcp's BigQuery resource plus a dataset and an optional API endpoint.

    With ``api_endpoint`` set (a local emulator) the client sends no credentials; otherwise it
    uses Application Default Credentials (or dagster-gcp's ``gcp_credentials``).
    """

    dataset: str = Field(description="Dataset holding the events and rejects tables.")
    staging_dataset: str | None = Field(
        default=None, description="Dataset for short-lived staging tables (default: dataset)."
    )
    api_endpoint: str | None = Field(
        default=None, description="BigQuery REST endpoint override, e.g. a local emulator."
    )
    retry_timeout_seconds: float = Field(
        default=120.0, description="How long API calls are retried before the run fails."
    )

    @classmethod
    def from_settings(cls, settings: BigQuerySettings) -> BigQueryWarehouse:
        """Build from the pipeline config's ``bigquery`` section."""
        return cls(
            project=settings.project,
            location=settings.location,
            dataset=settings.dataset,
            staging_dataset=settings.staging_dataset,
            api_endpoint=settings.api_endpoint,
            retry_timeout_seconds=settings.retry_timeout.total_seconds(),
        )

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        """A BigQuery client for the configured project, location and endpoint."""
        if not self.api_endpoint:
            with super().get_client() as client:
                yield client
            return
        client = bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.api_endpoint},
        )
        try:
            yield client
        finally:
            client.close()

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

"""The typed attributes of the settings Component: the ``aws``, ``bigquery``, ``schemas`` and
``defaults`` sections of a pipeline config file, every key with its type.

As for a stream (:mod:`cwl_pipeline.components.stream_attributes`), values reach the pipeline
config's parser as written; it holds the rules and their messages.
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from typing import Annotated, Any, Literal

from pydantic import Field, SkipValidation, StrictFloat, StrictInt

from cwl_pipeline.components.stream_attributes import (
    Count,
    Duration,
    Flag,
    OptionalText,
    Parser,
    Text,
    _Attributes,
)


class AwsAttributes(_Attributes):
    """How to reach AWS."""

    region: OptionalText = Field(
        None, description="Region of the log groups and buckets (default us-east-1)."
    )
    endpoint_url: OptionalText = Field(None, description="Another endpoint, e.g. a local stack.")
    profile: OptionalText = Field(None, description="A named profile of the AWS config files.")
    role_arn: OptionalText = Field(None, description="A role to assume for every AWS call.")
    role_session_name: OptionalText = Field(None, description="The assumed role's session name.")
    external_id: OptionalText = Field(
        None, description="role_arn's external id, as a reference ${NAME} read at run time (never a value)."
    )
    max_attempts: Count = Field(None, description="botocore's attempts per call.")
    retry_mode: Literal["standard", "adaptive", "legacy"] | None = None
    filter_log_events_per_second: Annotated[StrictFloat | StrictInt | None, SkipValidation] = Field(
        None, description="This deployment's share of the account's FilterLogEvents quota (5/s)."
    )


class GcpCredentialsAttributes(_Attributes):
    """Keyless credentials: Application Default Credentials or Workload Identity Federation."""

    type: Literal["default", "external_account"] | None = None
    config_file: OptionalText = Field(None, description="external_account: the credential configuration.")
    aws_credentials: Literal["boto3", "google-auth"] | None = Field(
        None, description="external_account: who reads the AWS credentials it exchanges."
    )


class BigQueryAttributes(_Attributes):
    """Where the tables live."""

    project: Text = Field(description="The Google Cloud project.")
    dataset: Text = Field(description="The dataset of the tables.")
    location: OptionalText = Field(None, description="The dataset's location (default US).")
    staging_dataset: OptionalText = Field(
        None, description="Staging tables' dataset (default <dataset>_staging)."
    )
    retry_timeout: Duration = Field(None, description="How long a call is retried.")
    credentials: GcpCredentialsAttributes | None = None
    api_endpoint: OptionalText = Field(None, description="Another endpoint, e.g. a local emulator.")
    storage_write_endpoint: OptionalText = Field(None, description="With api_endpoint: its gRPC host:port.")


class ColumnAttributes(_Attributes):
    """One column of a table schema."""

    name: Text
    type: Text = Field(description="STRING, INT64, FLOAT64, BOOL, TIMESTAMP, JSON, ...")
    path: OptionalText = Field(None, description="Dotted field of the parsed message (default: the name).")
    source: OptionalText = Field(None, description="An event attribute instead, e.g. event_timestamp.")
    required: Flag = None
    default: Annotated[Any, SkipValidation] = None
    format: OptionalText = Field(None, description="How a time field is written.")
    description: OptionalText = None


class SchemaAttributes(_Attributes):
    """A named table schema the streams may refer to."""

    columns: list[ColumnAttributes]
    parser: Parser | None = None
    description: OptionalText = None

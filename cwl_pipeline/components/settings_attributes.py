"""The typed attributes of the settings Component: the ``aws``, ``bigquery``, ``schemas`` and
``defaults`` sections of a pipeline config file.

``aws`` and ``bigquery`` are derived from their config sections
(:func:`cwl_pipeline.components.attributes.attributes_of`); a table schema is the format of
:mod:`cwl_pipeline.core.schema`, shown here with its keys.
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from typing import Annotated, Any

from pydantic import Field, SkipValidation

from cwl_pipeline.components.attributes import (
    Attributes,
    Flag,
    OptionalText,
    Text,
    attributes_of,
    describe_keys,
)
from cwl_pipeline.components.stream_attributes import Parser
from cwl_pipeline.config import AwsSettings, BigQuerySettings, GcpCredentials

describe_keys(BigQuerySettings, required=frozenset({"project", "dataset"}))
AwsAttributes = attributes_of(AwsSettings)
GcpCredentialsAttributes = attributes_of(GcpCredentials)
BigQueryAttributes = attributes_of(BigQuerySettings)


class ColumnAttributes(Attributes):
    """One column of a table schema."""

    name: Text = Field(description="The column's name in BigQuery.")
    type: Text = Field(description="STRING, INT64, FLOAT64, BOOL, TIMESTAMP, JSON, ...")
    path: OptionalText = Field(None, description="Dotted field of the parsed message (default: the name).")
    source: OptionalText = Field(None, description="An event attribute instead, e.g. event_timestamp.")
    required: Flag = Field(
        None, description="REQUIRED in BigQuery: a missing value takes the default, else rejects the event."
    )
    default: Annotated[Any, SkipValidation] = Field(
        None, description="The value used when the field is missing or null."
    )
    format: OptionalText = Field(None, description="How a time field is written.")
    description: OptionalText = Field(None, description="The column's description in BigQuery.")


class SchemaAttributes(Attributes):
    """A named table schema the streams may refer to."""

    columns: list[ColumnAttributes] = Field(description="The table's columns, in order.")
    parser: Parser | None = Field(None, description="How a message is read into fields (default json).")
    description: OptionalText = Field(None, description="The table's description in BigQuery.")

"""Every key of the settings sections is a typed attribute of the settings Component, and means
the same there as in a pipeline file."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import yaml

from cwl_pipeline import config
from cwl_pipeline.components import CloudWatchLogsToBigQuerySettings
from cwl_pipeline.components import settings_attributes as attrs
from cwl_pipeline.components.stream_attributes import StreamTuningAttributes
from cwl_pipeline.config import parse_config
from cwl_pipeline.config_model import section_keys
from cwl_pipeline.core import schema
from cwl_pipeline_tests.components.attribute_documents import TUNING, model_keys

# A value serialized against the wrong type of its key is a bug in the attributes models.
pytestmark = pytest.mark.filterwarnings("error:Pydantic serializer warnings:UserWarning")

SETTINGS: dict[str, Any] = {
    "aws": {
        "region": "eu-west-1",
        "endpoint_url": "http://127.0.0.1:5000",
        "profile": "logs",
        "role_arn": "arn:aws:iam::123456789012:role/cwl-pipeline-runtime",
        "role_session_name": "cwl-pipeline",
        "external_id": "${CWL_AWS_EXTERNAL_ID}",
        "max_attempts": 7,
        "retry_mode": "adaptive",
        "filter_log_events_per_second": 2.5,
    },
    "bigquery": {
        "project": "logs-prod",
        "dataset": "logs",
        "location": "EU",
        "staging_dataset": "logs_staging",
        "retry_timeout": "5m",
        "credentials": {
            "type": "external_account",
            "config_file": "/etc/wif.json",
            "aws_credentials": "boto3",
        },
        "api_endpoint": "http://127.0.0.1:9050",
        "storage_write_endpoint": "127.0.0.1:9060",
    },
    "schemas": {
        "orders": {
            "description": "Orders.",
            "parser": "json",
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
                {"name": "order_id", "type": "INT64", "path": "order.id", "description": "Id."},
                {"name": "status", "type": "STRING", "default": "unknown"},
                {"name": "paid_at", "type": "TIMESTAMP", "path": "paid", "format": "%Y-%m-%d %H:%M:%S"},
            ],
        }
    },
    "defaults": {
        **TUNING,
        "reconcile": {**TUNING["reconcile"], "enabled": True},
        "decode_workers": 0,
        "live": {"path": "sensor", "interval": "5s", "lookback": "2m"},
    },
}
STREAM = {"name": "orders", "source": {"log_groups": ["/app/orders"]}, "schema": "orders"}


@pytest.mark.parametrize(
    ("model", "parser_keys"),
    [
        (attrs.AwsAttributes, section_keys(config.AwsSettings)),
        (attrs.BigQueryAttributes, section_keys(config.BigQuerySettings)),
        (attrs.GcpCredentialsAttributes, section_keys(config.GcpCredentials)),
        (attrs.SchemaAttributes, schema.SCHEMA_KEYS),
        (attrs.ColumnAttributes, schema.COLUMN_KEYS),
        (StreamTuningAttributes, config.STREAM_TUNING_KEYS),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_each_model_has_exactly_the_keys_the_parser_takes(
    model: type[pydantic.BaseModel], parser_keys: set[str]
) -> None:
    assert model_keys(model) == set(parser_keys)


def test_the_settings_below_use_every_key() -> None:
    columns = {key for column in SETTINGS["schemas"]["orders"]["columns"] for key in column}
    assert set(SETTINGS["aws"]) == section_keys(config.AwsSettings)
    assert set(SETTINGS["bigquery"]) == section_keys(config.BigQuerySettings)
    assert set(SETTINGS["bigquery"]["credentials"]) == section_keys(config.GcpCredentials)
    assert set(SETTINGS["schemas"]["orders"]) == schema.SCHEMA_KEYS and columns == schema.COLUMN_KEYS
    assert set(SETTINGS["defaults"]) == config.STREAM_TUNING_KEYS


def test_every_settings_key_means_the_same_in_a_defs_yaml_and_in_the_pipeline_file() -> None:
    component = CloudWatchLogsToBigQuerySettings.resolve_from_yaml(yaml.safe_dump(SETTINGS))
    from_component = component.pipeline_config([STREAM])
    from_file = parse_config({**SETTINGS, "streams": [STREAM]})
    assert from_component == from_file
    assert from_component.aws.external_id_env == "CWL_AWS_EXTERNAL_ID"  # kept a reference


def test_an_unknown_settings_key_is_refused_at_any_depth() -> None:
    for document in (
        {**SETTINGS, "aws": {**SETTINGS["aws"], "regoin": "x"}},
        {**SETTINGS, "bigquery": {**SETTINGS["bigquery"], "credentials": {"type": "default", "file": "x"}}},
        {**SETTINGS, "defaults": {"windw": "15m"}},
    ):
        with pytest.raises(Exception, match=r"(?i)extra"):
            CloudWatchLogsToBigQuerySettings.resolve_from_yaml(yaml.safe_dump(document))

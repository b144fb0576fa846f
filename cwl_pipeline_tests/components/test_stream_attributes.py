"""Every key of a pipeline-file stream is a typed attribute of the stream Component, and means
the same there: the parser's key sets and the models' fields are compared, and streams using
every key are loaded both ways and compared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pydantic
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from cwl_pipeline import config, config_rules
from cwl_pipeline.components import CloudWatchLogsToBigQuery, CloudWatchLogsToBigQuerySettings
from cwl_pipeline.components import stream_attributes as attrs
from cwl_pipeline.config import StreamConfig, parse_config
from cwl_pipeline.config_model import section_keys
from cwl_pipeline.core.parsers import spec as parser_spec
from cwl_pipeline_tests.components.attribute_documents import TUNING, model_keys

# A value serialized against the wrong type of its key is a bug in the attributes models.
pytestmark = pytest.mark.filterwarnings("error:Pydantic serializer warnings:UserWarning")

SETTINGS: dict[str, Any] = {
    "aws": {"region": "eu-west-1"},
    "bigquery": {"project": "logs-prod", "dataset": "logs"},
    "schemas": {
        "access": {
            "columns": [
                {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
                {"name": "status", "type": "INT64"},
                {"name": "path", "type": "STRING"},
            ]
        }
    },
}

POLLING = {
    "name": "api",
    "source": {"type": "cloudwatch", "log_groups": ["/aws/lambda/api"], "log_group_prefixes": ["/ecs/api-"]},
    "table": "api_events",
    "parser": {"type": "vpc_flow", "fields": ["version", "account-id", "interface-id"]},
    "description": "API logs.",
    "owners": ["team:platform"],
    "asset_key_prefix": ["logs", "aws"],
    "history": {
        "after": "2d",
        "bucket": "log-exports",
        "prefix": "api",
        "poll_interval": "1m",
    },
    "raw": True,
    "raw_table": "api_as_read",
    "filter": {"pattern": '"GET"', "include": ["^\\d"], "exclude": ["healthcheck"]},
    "redact": [
        {"mask": "\\b\\d{16}\\b", "replacement": "<card>"},
        {"hash": "[\\w.+-]+@[\\w-]+\\.[\\w.]+", "salt_env": "TEST_PII_SALT"},
    ],
    **TUNING,
    "live": {"path": "runs", "interval": "10s", "lookback": "1m"},
}
FIREHOSE = {
    "name": "fleet",
    "source": {
        "type": "s3",
        "bucket": "fleet-logs",
        "prefix": "cwl/",
        "layout": "firehose",
        "record_format": "envelopes_gzip",
        "max_decompressed_bytes": "1GiB",
        "key_template": "cwl/!{timestamp:yyyy/MM/dd/HH}/",
        "error_prefix": "errors/!{firehose:error-output-type}/",
        "notifications": {
            "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/fleet",
            "safety_listing": "2m",
        },
    },
    "schema": "seed",
    "start": "2026-11-01T00:00:00Z",
    "unrouted": "load",
    "decode_workers": 2,
    "routes": [
        {
            "name": "flows",
            "table": "fleet_flows",
            "parser": {"type": "vpc_flow", "format": "${version} ${account-id} ${interface-id}"},
            "log_groups": ["/vpc/flows"],
        },
        {
            "name": "access",
            "schema": "access",
            "parser": {"type": "regex", "pattern": "(?P<status>\\d{3}) (?P<path>\\S+)", "nulls": ["-"]},
            "log_group_prefixes": ["/nginx/"],
            "pattern": "access$",
        },
    ],
}
MESSAGES = {
    "name": "single",
    "source": {
        "type": "s3",
        "bucket": "single-logs",
        "layout": "firehose",
        "record_format": "messages",
        "log_group": "/app/single",
        "log_stream": "host-1",
    },
    "parser": "lambda",
    "redact": [{"drop_field": "message.password"}],  # a vpc_flow stream has no fields to drop
    "start": "2026-11-01T00:00:00Z",
}
OTHER_ACCOUNT = {
    "name": "orders",
    "source": {
        "type": "cloudwatch",
        "log_groups": ["arn:aws:logs:eu-central-1:333333333333:log-group:/aws/lambda/orders", "/app/orders"],
        "account": {
            "role_arn": "arn:aws:iam::222222222222:role/cwl-pipeline-source",
            "region": "eu-central-1",
            "external_id": "${SOURCE_EXTERNAL_ID}",
        },
    },
    "start": "2026-11-01T00:00:00Z",
}
STREAMS = [POLLING, FIREHOSE, MESSAGES, OTHER_ACCOUNT]

MODELS_AND_PARSER_KEYS = [
    (attrs.StreamAttributes, config.StreamConfig.document_keys()),
    (attrs.CloudWatchSourceAttributes, section_keys(config.CloudWatchSource)),
    (attrs.SourceAccountAttributes, section_keys(config.SourceAccount)),
    (attrs.S3SourceAttributes, section_keys(config.S3Source)),
    (attrs.NotificationsAttributes, section_keys(config.S3Notifications)),
    (attrs.HistoryAttributes, section_keys(config.HistorySource)),
    (attrs.ReconcileAttributes, section_keys(config.ReconcileSettings)),
    (attrs.FreshnessAttributes, section_keys(config.Freshness)),
    (attrs.RouteAttributes, config.Route.document_keys()),
    (attrs.FilterAttributes, section_keys(config.FilterSettings)),
    (attrs.RedactionAttributes, {*config_rules.REDACTION_KINDS, "replacement", "salt_env"}),
    (attrs.ParserAttributes, set().union(*parser_spec._KEYS.values())),
]


@pytest.mark.parametrize(
    ("model", "parser_keys"), MODELS_AND_PARSER_KEYS, ids=lambda v: getattr(v, "__name__", "")
)
def test_each_model_has_exactly_the_keys_the_parser_takes(
    model: type[pydantic.BaseModel], parser_keys: set[str]
) -> None:
    assert model_keys(model) == set(parser_keys)


NESTED: dict[str, tuple[type[pydantic.BaseModel], ...]] = {
    "source": (attrs.CloudWatchSourceAttributes, attrs.S3SourceAttributes),
    "notifications": (attrs.NotificationsAttributes,),
    "account": (attrs.SourceAccountAttributes,),
    "history": (attrs.HistoryAttributes,),
    "reconcile": (attrs.ReconcileAttributes,),
    "freshness": (attrs.FreshnessAttributes,),
    "filter": (attrs.FilterAttributes,),
    "parser": (attrs.ParserAttributes,),
    "routes": (attrs.RouteAttributes,),
    "redact": (attrs.RedactionAttributes,),
}


def _used(document: dict[str, Any], model: type[pydantic.BaseModel]) -> Iterator[tuple[str, str]]:
    """(model name, key) of every key a document sets, nested models included."""
    for key, value in document.items():
        yield model.__name__, key
        for element in value if isinstance(value, list) else [value]:
            if key in NESTED and isinstance(element, dict):
                kinds = NESTED[key]
                if key == "source":
                    kinds = kinds[1:] if element.get("type") == "s3" else kinds[:1]
                yield from _used(element, kinds[0])


def test_the_streams_below_use_every_key_of_every_model() -> None:
    used = {pair for stream in STREAMS for pair in _used(stream, attrs.StreamAttributes)}
    every = {(model.__name__, key) for model, _ in MODELS_AND_PARSER_KEYS for key in model_keys(model)}
    assert every - used == set()


def _from_defs_yaml(stream: dict[str, Any]) -> StreamConfig:
    """The stream as a ``defs.yaml`` declares it: YAML text, resolved, parsed with its settings."""
    text = yaml.safe_dump({**stream, "settings": "cwl_settings"}, sort_keys=False)
    component = CloudWatchLogsToBigQuery.resolve_from_yaml(text)
    settings = CloudWatchLogsToBigQuerySettings.resolve_from_dict(SETTINGS)
    return settings.pipeline_config([component.stream_document()]).streams[0]


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s["name"])
def test_every_key_means_the_same_in_a_defs_yaml_and_in_the_pipeline_file(
    stream: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PII_SALT", "s3cret")
    from_file = parse_config({**SETTINGS, "streams": [stream]}).streams[0]
    assert _from_defs_yaml(stream) == from_file


def test_the_streams_build_with_their_asset_key_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PII_SALT", "s3cret")
    with create_defs_folder_sandbox() as sandbox:
        sandbox.scaffold_component(
            component_cls=CloudWatchLogsToBigQuerySettings,
            defs_path="cwl_settings",
            defs_yaml_contents={
                "type": "cwl_pipeline.CloudWatchLogsToBigQuerySettings",
                "attributes": SETTINGS,
            },
        )
        for stream in STREAMS:
            sandbox.scaffold_component(
                component_cls=CloudWatchLogsToBigQuery,
                defs_path=stream["name"],
                defs_yaml_contents={"type": "cwl_pipeline.CloudWatchLogsToBigQuery", "attributes": stream},
            )
        with sandbox.build_all_defs() as defs:
            keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"logs/aws/api_events", "logs/aws/api_events_rejects", "logs/aws/api_as_read"} <= keys
    assert {"fleet", "fleet_rejects", "fleet_flows", "fleet_access", "single"} <= keys
    assert dg.AssetKey("api_events").to_user_string() not in keys


def test_an_unknown_key_is_refused_at_any_depth() -> None:
    for document in (
        {**MESSAGES, "windw": "15m"},
        {**FIREHOSE, "source": {**FIREHOSE["source"], "notifications": {"queue": "x"}}},
        {**POLLING, "redact": [{"mask": "x", "salt": "y"}]},
    ):
        with pytest.raises(Exception, match=r"(?i)extra"):
            CloudWatchLogsToBigQuery.resolve_from_yaml(yaml.safe_dump(document))


def test_the_yaml_schema_is_typed() -> None:
    schema = CloudWatchLogsToBigQuery.model().model_json_schema()
    properties = schema["properties"]
    assert {"raw", "raw_table", "filter", "redact", "routes", "unrouted", "asset_key_prefix"} <= set(
        properties
    )
    assert "integer" in str(properties["max_windows_per_run"])
    assert "S3SourceAttributes" in str(properties["source"]) and "CloudWatchSourceAttributes" in str(
        properties["source"]
    )


def test_text_keeps_its_quotes_through_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quoted filter-pattern term is a phrase; Dagster's literal evaluation would unquote it."""
    monkeypatch.setenv("TEST_TERM", '"Task timed out"')
    document = {
        **MESSAGES,
        "filter": {"pattern": "{{ env('TEST_TERM') }}", "include": ['"quoted"', "123"]},
        "description": "[1, 2]",
    }
    stream = CloudWatchLogsToBigQuery.resolve_from_yaml(yaml.safe_dump(document)).stream_document()
    assert stream["filter"] == {"pattern": '"Task timed out"', "include": ['"quoted"', "123"]}
    assert stream["description"] == "[1, 2]"


@pytest.mark.parametrize("prefix", [["logs/aws"], "logs", [""]])
def test_an_asset_key_prefix_is_a_list_of_names(prefix: Any) -> None:
    with pytest.raises(config.ConfigError, match=r"streams\.single\.asset_key_prefix: .* list of names"):
        parse_config({**SETTINGS, "streams": [{**MESSAGES, "asset_key_prefix": prefix}]})

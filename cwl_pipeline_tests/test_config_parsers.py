"""A stream's parser in the config: built-in schemas by parser, overrides, and clear errors."""

from __future__ import annotations

import pytest

from cwl_pipeline.config import BUNDLED_CONFIG, ConfigError, load_config, parse_config
from cwl_pipeline.core.parsers import ParserSpec

BASE = {
    "bigquery": {"project": "my-project", "dataset": "logs"},
    "streams": [{"name": "fn", "source": {"log_groups": ["/aws/lambda/orders"]}, "start": "2026-01-01"}],
}
ACCESS_SCHEMA = {
    "parser": {"type": "regex", "pattern": r"^(?P<ip>\S+) .* (?P<status>\d{3})$"},
    "columns": [
        {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp"},
        {"name": "ip", "type": "STRING"},
        {"name": "status", "type": "INT64"},
    ],
}


def stream(**keys):
    return parse_config({**BASE, "streams": [{**BASE["streams"][0], **keys}]}).streams[0]


def test_default_is_json_and_seed():
    fn = stream()
    assert (fn.schema.name, fn.schema.parser) == ("seed", ParserSpec("json"))


@pytest.mark.parametrize(
    ("parser", "schema"), [("lambda", "lambda"), ("vpc_flow", "vpc_flow"), ("text", "text")]
)
def test_a_parser_alone_brings_its_builtin_schema(parser, schema):
    fn = stream(parser=parser)
    assert (fn.schema.name, fn.schema.parser.type) == (schema, parser)


def test_a_builtin_schema_carries_its_parser():
    assert stream(schema="lambda").schema.parser.type == "lambda"


def test_the_stream_parser_overrides_the_schema_parser():
    fn = stream(schema="vpc_flow", parser={"type": "vpc_flow", "fields": ["version", "srcaddr"]})
    assert fn.schema.name == "vpc_flow" and fn.schema.parser.fields == ("version", "srcaddr")


def test_a_declared_schema_carries_a_regex_parser():
    config = parse_config(
        {
            **BASE,
            "schemas": {"access": ACCESS_SCHEMA},
            "streams": [{**BASE["streams"][0], "schema": "access"}],
        }
    )
    assert config.streams[0].schema.parser.type == "regex"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"parser": "grok"},
            "streams.fn.parser.type: 'grok' is not one of json, lambda, vpc_flow, regex, text",
        ),
        (
            {"parser": {"type": "regex", "pattern": "(?P<a>x"}},
            "streams.fn.parser.pattern: not a valid regular",
        ),
        (
            {"parser": {"type": "regex", "pattern": "(?P<a>x)"}},
            "streams.fn.schema: parser 'regex' needs a schema",
        ),
        ({"parser": {"type": "lambda", "fields": ["x"]}}, "streams.fn.parser: unknown key(s) ['fields']"),
    ],
)
def test_parser_mistakes_name_the_key(doc, message):
    with pytest.raises(ConfigError) as info:
        stream(**doc)
    assert message in str(info.value)


def test_schema_parser_mistakes_name_the_schema():
    bad = {**ACCESS_SCHEMA, "parser": {"type": "regex", "pattern": "no groups"}}
    with pytest.raises(
        ConfigError, match=r"schemas.access: schema 'access': parser.pattern: has no named group"
    ):
        parse_config({**BASE, "schemas": {"access": bad}})


def test_builtin_schema_names_are_reserved():
    with pytest.raises(ConfigError, match=r"schemas\.lambda: the name is taken by a built-in schema"):
        parse_config({**BASE, "schemas": {"lambda": ACCESS_SCHEMA}})


def test_bundled_demo_has_the_lambda_stream():
    fn = load_config(BUNDLED_CONFIG, env={}).stream("lambda_logs")
    assert (fn.table, fn.schema.name, fn.schema.parser.type) == ("lambda_logs", "lambda", "lambda")
    assert fn.source.log_groups == ("/aws/lambda/cwl-demo",)

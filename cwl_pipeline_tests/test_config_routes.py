"""Config of routes and key templates: what is accepted, and every mistake named by its key."""

import pytest

from cwl_pipeline.config import ConfigError, parse_config


def config(source: dict, **stream: object) -> dict:
    return {
        "bigquery": {"project": "my-project", "dataset": "d"},
        "streams": [{"name": "fleet", "source": source, "start": "2026-01-01T00:00:00Z", **stream}],
    }


FIREHOSE = {"type": "s3", "bucket": "my-bucket", "prefix": "fh/", "layout": "firehose"}


def test_routes_templates_and_defaults():
    parsed = parse_config(
        config(
            {
                **FIREHOSE,
                "key_template": "fh/!{partitionKeyFromLambda:team}/!{timestamp:yyyy/MM/dd/HH}/",
                "error_prefix": "err/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            },
            routes=[
                {"name": "api", "log_group_prefixes": ["/app/api/"]},
                {
                    "name": "fn",
                    "pattern": "/aws/lambda/.*",
                    "parser": {"type": "lambda"},
                    "table": "functions",
                },
            ],
        )
    ).stream("fleet")
    assert [(r.name, r.table, r.schema.name) for r in parsed.routes] == [
        ("api", "fleet_api", "seed"),
        ("fn", "functions", "lambda"),
    ]
    assert parsed.unrouted == "reject"
    assert parsed.source.error_template.startswith("err/")


@pytest.mark.parametrize(
    ("source", "stream", "message"),
    [
        ({"type": "cloudwatch", "log_groups": ["/g"]}, {"routes": []}, "routes: only applies to a Firehose"),
        (FIREHOSE, {"routes": [{"name": "a"}]}, "routes.a: name log_groups"),
        (FIREHOSE, {"routes": [{"name": "a", "pattern": "("}]}, "routes.a.pattern"),
        (FIREHOSE, {"routes": [{"name": "a", "log_groups": ["/g"], "table": "fleet"}]}, "routes.a.table"),
        (FIREHOSE, {"routes": [{"name": "a", "log_groups": ["/g"], "table": "-"}]}, "routes.a.table: '-'"),
        (FIREHOSE, {"unrouted": "drop"}, "unrouted: 'drop'"),
        (
            FIREHOSE,
            {"raw": True, "routes": [{"name": "a", "log_groups": ["/g"]}]},
            "raw_table: not supported",
        ),
        ({**FIREHOSE, "key_template": "fh/!{timestamp:yyyy}/"}, {}, "source.key_template"),
        ({**FIREHOSE, "error_prefix": "err/!{firehose:nope}/"}, {}, "source.error_prefix"),
    ],
)
def test_mistakes_are_named(source, stream, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(config(source, **stream))

"""One identifier validator, at config load and again in the loader: hostile names never reach SQL."""

from __future__ import annotations

import pytest

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.config import ConfigError, parse_config
from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier, quoted_table_path

HOSTILE = [
    "",
    "a`b",
    "a.b",
    "a;b",
    "a b",
    "a\tb",
    "events\n",  # `$` in a regex would let a trailing newline through
    "a--b",
    "a'b",
    'a"b',
    "a\\b",
    "a\x00b",
    "\uff21\uff22\uff23",  # fullwidth look-alikes
    "\u0430pp",  # Cyrillic a
    "app\u200b",  # zero-width space
    "e\u0301",  # combining accent
    "x" * 1025,
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("kind", ["dataset", "table", "column"])
def test_hostile_identifiers_are_refused(kind, name):
    with pytest.raises(IdentifierError):
        check_identifier(kind, name)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("project", "my-project"),
        ("dataset", "cwl_logs"),
        ("dataset", "2026_logs"),
        ("table", "app_events"),
        ("column", "session_id"),
    ],
)
def test_plain_identifiers_pass(kind, name):
    assert check_identifier(kind, name) == name


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("project", "My-Project"),
        ("project", "short"),
        ("project", "ends-with-"),
        ("project", "p" * 31),
        ("project", "my-project\n"),
        ("table", "1table"),
        ("column", "c" * 301),
        ("column", "_PARTITIONTIME"),
        ("column", "_table_suffix"),
        ("dataset", None),
        ("table", 42),
    ],
)
def test_more_invalid_identifiers(kind, name):
    with pytest.raises(IdentifierError):
        check_identifier(kind, name)


def test_error_message_is_bounded():
    with pytest.raises(IdentifierError) as info:
        check_identifier("table", "x" * 100_000 + "`")
    assert len(str(info.value)) < 200


def test_quoted_table_path():
    assert quoted_table_path("my-project", "ds", "t") == "`my-project.ds.t`"
    with pytest.raises(IdentifierError):
        quoted_table_path("my-project", "ds", "t`; DROP TABLE x; --")


BASE = {
    "bigquery": {"project": "my-project", "dataset": "logs"},
    "streams": [{"name": "app", "source": {"log_groups": ["/app/web"]}, "start": "2026-01-01"}],
}


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({**BASE, "bigquery": {"project": "my-project\n", "dataset": "logs"}}, "bigquery.project"),
        ({**BASE, "bigquery": {"project": "my-project", "dataset": "lo`gs"}}, "bigquery.dataset"),
        (
            {**BASE, "bigquery": {"project": "my-project", "dataset": "logs", "staging_dataset": "s.t"}},
            "bigquery.staging_dataset",
        ),
        ({**BASE, "streams": [{**BASE["streams"][0], "table": "app\n"}]}, "streams.app.table"),
        ({**BASE, "streams": [{**BASE["streams"][0], "name": "app\n"}]}, "streams[0].name"),
        (
            {
                **BASE,
                "schemas": {
                    "s": {"columns": [{"name": "ts`", "type": "TIMESTAMP", "source": "event_timestamp"}]}
                },
            },
            "schemas.s",
        ),
        (
            {
                **BASE,
                "schemas": {
                    "s": {"columns": [{"name": "ts\n", "type": "TIMESTAMP", "source": "event_timestamp"}]}
                },
            },
            "schemas.s",
        ),
    ],
)
def test_config_refuses_hostile_identifiers(doc, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_config(doc)


def test_loader_validates_again(bq_client):
    """Defense in depth: names that never went through the config are checked before any SQL."""
    with pytest.raises(IdentifierError):
        BigQueryLoader(bq_client, "logs`; DROP SCHEMA x; --")
    with pytest.raises(IdentifierError):
        BigQueryLoader(bq_client, "logs", staging_dataset="a.b")
    loader = BigQueryLoader(bq_client, "logs")
    with pytest.raises(IdentifierError):
        loader.table_id("t` WHERE TRUE; --")
    with pytest.raises(IdentifierError):
        loader.select("t", ["a`, (SELECT 1) AS `b"], None)  # refused before the scope is used

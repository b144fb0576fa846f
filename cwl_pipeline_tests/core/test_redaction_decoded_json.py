"""Redaction that no JSON spelling escapes: decoded strings, JSON held in strings, config checks.

Lines and their sources: :mod:`cwl_pipeline_tests.security.secret_lines`.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwl_pipeline.config import ConfigError, parse_config
from cwl_pipeline.core.embedded_json import rewrite_strings
from cwl_pipeline.core.event_rules import EventRules, Redaction, RuleTally, _apply_regex_rules
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.schema import TableSchema
from cwl_pipeline.s3_objects.batch import ObjectContent, build_object_batch
from cwl_pipeline_tests.security.secret_lines import (
    EMAIL,
    EMAIL_RULE,
    ESCAPED,
    INIT_ESCAPED,
    KEPT_LINES,
    PASSWORD,
    PASSWORD_RULE,
    PLAIN,
    POWERTOOLS_OBJECT,
    REJECTED_LINES,
    STRICT_LAMBDA_COLUMNS,
    STRING_JSON,
    STRING_JSON_ESCAPED,
    WEBHOOK,
    WEBHOOK_RULE,
    leaks,
)

SALT = b"pepper"
RULES = EventRules(
    redactions=(
        Redaction("mask", pattern=WEBHOOK_RULE),
        Redaction("hash", pattern=EMAIL_RULE, salt=SALT),
        Redaction("drop_field", path=PASSWORD_RULE),
    )
)
EMAIL_HASH = "sha256:" + hmac.new(SALT, EMAIL.encode(), hashlib.sha256).hexdigest()[:16]


def _redact(message: str, rules: EventRules = RULES) -> str:
    (event,) = rules.apply([LogEvent("1", 1_000, message, "/aws/lambda/signup", "s")], RuleTally())
    return str(event.message)


@pytest.mark.parametrize("line", [PLAIN, ESCAPED, STRING_JSON, STRING_JSON_ESCAPED, INIT_ESCAPED])
def test_no_spelling_of_a_secret_survives_and_hashes_agree(line: str) -> None:
    redacted = _redact(line)
    assert not leaks(redacted), redacted
    # Decoded down to the JSON inside ``message``: no secret there either, and the e-mail
    # address has one hash whichever way it was written.
    document = json.loads(redacted)
    inner = document["message"]
    text = json.dumps(json.loads(inner)) if inner.startswith("{") else inner
    assert not leaks(text)
    if EMAIL in json.loads(line)["message"] or "email" in inner:
        assert EMAIL_HASH in text


def test_drop_field_steps_into_a_string_holding_json() -> None:
    for line in (STRING_JSON, STRING_JSON_ESCAPED):
        message = json.loads(json.loads(_redact(line))["message"])
        assert message == {"event": "signup", "email": EMAIL_HASH, "webhook": "<redacted>"}
    # A message that is an object: the same path, the ordinary way.
    assert json.loads(_redact(POWERTOOLS_OBJECT))["message"] == {"event": "signup", "email": EMAIL_HASH}


@pytest.mark.parametrize(
    "message",
    [
        '{"message": "{\\"user\\": \\"ann\\"}",  "level": "INFO"}',  # no such field: untouched
        '{"message": "not json {\\"password\\": 1}"}',  # a string that is not JSON
        '{"message": ["{\\"password\\": 1}"]}',  # arrays are not stepped into
        "password=hunter2 as text",
    ],
)
def test_drop_field_leaves_what_it_cannot_reach_byte_for_byte(message: str) -> None:
    assert Redaction("drop_field", path="message.password").apply(message) == message


def test_drop_field_steps_through_several_levels_of_strings() -> None:
    inner = json.dumps({"auth": json.dumps({"password": PASSWORD, "user": "ann"})})
    message = json.dumps({"message": inner, "level": "INFO"})
    dropped = Redaction("drop_field", path="message.auth.password").apply(message)
    assert PASSWORD not in dropped
    assert json.loads(json.loads(json.loads(dropped)["message"])["auth"]) == {"user": "ann"}


def test_a_message_without_a_match_is_kept_as_written() -> None:
    message = '{ "level" : "INFO",\n  "message": "nothing secret \\u00e9" }'
    assert _redact(message) == message


def test_keys_are_redacted_too() -> None:
    message = '{"owners": {"ops.canary.4d1b\\u0040example.com": "admin"}}'
    assert json.loads(_redact(message)) == {"owners": {EMAIL_HASH: "admin"}}


def test_rules_applied_to_their_own_output_change_nothing() -> None:
    """What the raw table stores goes through the rules again when the typed tables are
    re-derived from it: a second pass must not hash a hash or mask a replacement."""
    rules = EventRules(
        redactions=(
            *RULES.redactions,
            Redaction("hash", pattern=r"owner (?P<value>\S+)", salt=SALT),
            Redaction("mask", pattern=r"Token\w+"),
            Redaction("mask", pattern=r"red"),
        )
    )
    for line in (*KEPT_LINES, *REJECTED_LINES):
        once = _redact(line, rules)
        assert _redact(once, rules) == once


def test_a_changed_document_too_deep_to_re_encode_is_replaced_whole() -> None:
    """orjson reads 1024 levels but writes 254: a decoded secret deeper than that cannot be
    written back masked, so the whole message goes."""
    deep = "[" * 300 + json.dumps(WEBHOOK).replace("/", "\\/") + "]" * 300
    assert _redact(deep) == "<redacted>"
    untouched = "[" * 1000 + '"fine"' + "]" * 1000  # nothing to change: no recursion limit either
    assert _redact(untouched) == untouched


def test_every_table_of_a_load_is_free_of_the_secrets() -> None:
    """Events, rejects and raw rows of one batch, built as the S3 and polling paths build them."""
    schema = TableSchema.from_dict("lambda_strict", {"parser": "lambda", "columns": STRICT_LAMBDA_COLUMNS})
    lines = (*KEPT_LINES, *REJECTED_LINES)
    events = [LogEvent(str(i), 1_000 + i, line, "/aws/lambda/signup", "s") for i, line in enumerate(lines)]
    batch = build_object_batch(
        [ObjectContent("s3://b/k", 1_000, events=events)], schema, rules=RULES, raw=True
    )
    assert (batch.rows_loaded, batch.rows_rejected) == (len(KEPT_LINES), len(REJECTED_LINES))
    assert batch.raw is not None
    for table in (batch.batch.rows_table, batch.batch.rejects_table, batch.raw):
        assert not leaks(repr(table.to_pylist()))
    assert not leaks(repr(batch.metadata()))
    assert batch.tally.events_redacted == len(lines)
    data = [json.loads(d) for d in batch.batch.rows_table.column("data").to_pylist()]
    assert json.loads(data[2]["message"])["email"] == EMAIL_HASH  # the typed JSON column


def _doc(parser: object, **stream: object) -> dict:
    return {
        "bigquery": {"project": "cwl-local", "dataset": "d"},
        "schemas": {
            "access": {
                "parser": {"type": "regex", "pattern": "^(?P<ip>\\S+)"},
                "columns": [
                    {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
                    {"name": "ip", "type": "STRING"},
                ],
            }
        },
        "streams": [
            {
                "name": "app",
                "source": {"log_groups": ["/a"]},
                "start": "2026-01-01T00:00:00Z",
                **({"parser": parser} if isinstance(parser, str) else {"schema": "access"}),
                **stream,
            }
        ],
    }


@pytest.mark.parametrize("parser", ["text", "vpc_flow", None])  # None: the regex schema "access"
def test_drop_field_under_a_parser_that_reads_text_is_a_config_error(parser: str | None) -> None:
    redact = [{"mask": "x"}, {"drop_field": "message.password"}]
    with pytest.raises(
        ConfigError, match=r"streams\.app\.redact\[1\]\.drop_field: 'message\.password' cannot apply"
    ):
        parse_config(_doc(parser, redact=redact), env={})


@pytest.mark.parametrize("parser", ["json", "lambda"])
def test_drop_field_under_a_json_parser_is_accepted(parser: str) -> None:
    stream = parse_config(_doc(parser, redact=[{"drop_field": "message.password"}]), env={}).streams[0]
    assert stream.rules.redactions[0].path == "message.password"


def test_drop_field_applies_when_one_route_reads_json() -> None:
    doc = _doc(
        "text",
        source={"type": "s3", "bucket": "b-1", "layout": "firehose"},
        routes=[{"name": "fn", "log_group_prefixes": ["/aws/lambda/"], "parser": "lambda"}],
        redact=[{"drop_field": "message.password"}],
    )
    assert parse_config(doc, env={}).streams[0].routes[0].schema.parser.type == "lambda"
    doc["streams"][0]["routes"][0]["parser"] = "text"
    with pytest.raises(ConfigError, match=r"redact\[0\]\.drop_field: .* reads its messages as text"):
        parse_config(doc, env={})


@pytest.mark.parametrize(
    "rule", [{"mask": "x*"}, {"mask": "(?P<value>\\d*)"}, {"hash": "^", "salt_env": "S"}]
)
def test_a_regex_that_matches_the_empty_text_is_a_config_error(rule: dict) -> None:
    with pytest.raises(ConfigError, match=r"redact\[0\]\.(mask|hash): .* matches the empty text"):
        parse_config(_doc("json", redact=[rule]), env={"S": "salt"})


def test_an_anchored_rule_matches_whole_field_values_however_the_message_is_spelled() -> None:
    rule = Redaction("mask", pattern=r"^\d{16}$")
    for message in (
        '{"card": "4111111111111111", "note": "x 4111111111111111"}',
        '{"card": "4111111111111111", "note": "x 4111111111111111", "p": "a\\/b"}',
    ):
        document = json.loads(rule.apply(message))
        assert (document["card"], document["note"]) == ("<redacted>", "x 4111111111111111")


_TEXT = st.text(alphabet="ab@./: {}[]\"'x1é", max_size=12)
_JSON = st.recursive(
    st.none() | st.integers(-5, 5) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(document=_JSON, indent=st.booleans())
def test_the_shortcut_for_messages_without_a_backslash_changes_no_result(
    document: object, indent: bool
) -> None:
    """A message without a backslash takes the text pass only; the full walk gives the same."""
    message = json.dumps(document, ensure_ascii=False, indent=1 if indent else None)
    if "\\" in message:
        return
    for rules in (
        (Redaction("mask", pattern=r"a@?b"),),
        (Redaction("hash", pattern=r"[ab]+\.x", salt=SALT),),
    ):
        walked = rewrite_strings(message, rules[0]._sub, rules[0]._whole)
        assert _apply_regex_rules(message, rules) == walked

"""Filters and redaction rules: CloudWatch filter patterns in-process, masks, hashes, dropped fields."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from cwl_pipeline.config import ConfigError, parse_config
from cwl_pipeline.core.event_rules import EventRules, MessageFilter, Redaction, RuleTally
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.filter_patterns import FilterPatternError, compile_filter_pattern


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("", "anything", True),
        ("ERROR", "[ERROR 400] bad", True),
        ("ERROR", "error", False),  # case-sensitive
        ("ERROR Exception", "ERROR: Exception raised", True),
        ("ERROR Exception", "ERROR only", False),
        ('"Internal Server Error"', "got Internal Server Error now", True),
        ('"Internal Server Error"', "Internal Error", False),
        ("?ERROR ?WARN", "WARN disk", True),
        ("?ERROR ?WARN", "INFO ok", False),
        ("ERROR -DEBUG", "ERROR in DEBUG mode", False),
        ("-heartbeat", "heartbeat ok", False),
        ("-heartbeat", "order placed", True),
        ("%^[hc]at%", "hat trick", True),
        ("%^[hc]at%", "that", False),
        ('{ $.level = "ERROR" }', '{"level": "ERROR"}', True),
        ('{ $.level = "ERROR" }', '{"level": "INFO"}', False),
        ('{ $.level = "ERROR" }', "level = ERROR (not JSON)", False),
        ('{ $.level != "DEBUG" }', '{"level": "INFO"}', True),
        ('{ $.level != "DEBUG" }', '{"other": 1}', False),  # a missing field matches no comparison
        ("{ $.latency > 1000 }", '{"latency": 1500}', True),
        ("{ $.latency > 1000 }", '{"latency": "1500"}', False),
        ("{ $.user.id = 7 }", '{"user": {"id": 7}}', True),
        ('{ $.path = "/api/*" }', '{"path": "/api/orders"}', True),
        ("{ ($.a = 1 || $.b = 2) && $.c IS TRUE }", '{"b": 2, "c": true}', True),
        ("{ ($.a = 1 || $.b = 2) && $.c IS TRUE }", '{"b": 2, "c": false}', False),
        ("{ $.gone NOT EXISTS }", '{"here": 1}', True),
        ("{ $.x IS NULL }", '{"x": null}', True),
        ("{ $.items[0] = 5 }", '{"items": [5, 6]}', True),
    ],
)
def test_filter_patterns(pattern: str, message: str, expected: bool) -> None:
    assert compile_filter_pattern(pattern)(message) is expected


@pytest.mark.parametrize("pattern", ["[ip, user", '{ $.a = "x" ', "{ $.a ~ 1 }", '"unbalanced', "a ?b"])
def test_unsupported_or_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        compile_filter_pattern(pattern)


def _event(message: str | bytes, event_id: str = "1") -> LogEvent:
    return LogEvent(event_id, 1_000, message, "/g", "s")


def test_rules_filter_then_redact_and_count() -> None:
    salt = b"pepper"
    rules = EventRules(
        filter=MessageFilter(pattern="-heartbeat", include=(r"^\{",), exclude=("DEBUG",)),
        redactions=(
            Redaction("drop_field", path="params.password"),
            Redaction("mask", pattern=r"\b\d{16}\b"),
            Redaction("hash", pattern=r"email=(?P<value>[^\s\"]+)", salt=salt),
        ),
    )
    messages = [
        json.dumps({"a": "email=ann@x.io card 4111111111111111", "params": {"password": "p", "k": 1}}),
        json.dumps({"a": "heartbeat"}),
        "not json at all",
        json.dumps({"a": "DEBUG"}),
        json.dumps({"a": "clean"}),
    ]
    tally = RuleTally()
    kept = list(rules.apply([_event(m, str(i)) for i, m in enumerate(messages)], tally))
    assert [e.event_id for e in kept] == ["0", "4"]
    digest = hmac.new(salt, b"ann@x.io", hashlib.sha256).hexdigest()[:16]
    assert json.loads(kept[0].message) == {"a": f"email=sha256:{digest} card <redacted>", "params": {"k": 1}}
    assert kept[1].message == messages[4]
    assert tally.facts() == {"events_filtered": 3, "events_redacted": 1}


def test_invalid_utf8_messages_keep_their_bad_bytes_and_lose_their_secrets() -> None:
    rules = EventRules(redactions=(Redaction("mask", pattern=r"\d{4}-\d{4}"),))
    (event,) = rules.apply([_event(b"card 1234-5678 \xff end")], RuleTally())
    assert event.message == b"card <redacted> \xff end"


def test_hashes_are_stable_per_salt_and_differ_across_salts() -> None:
    def hashed(salt: bytes) -> str:
        return Redaction("hash", pattern=r"\S+@\S+", salt=salt).apply("to a@b.c")

    assert hashed(b"one") == hashed(b"one") != hashed(b"two")


def _doc(**stream: object) -> dict:
    return {
        "bigquery": {"project": "cwl-local", "dataset": "d"},
        "streams": [
            {"name": "app", "source": {"log_groups": ["/a"]}, "start": "2026-01-01T00:00:00Z", **stream}
        ],
    }


def test_config_reads_rules_and_the_raw_table() -> None:
    stream = parse_config(
        _doc(
            raw=True,
            filter={"pattern": "ERROR", "exclude": ["x+"]},
            redact=[
                {"mask": "a+", "replacement": "#"},
                {"hash": "b", "salt_env": "S"},
                {"drop_field": "p.q"},
            ],
        ),
        env={"S": "salt"},
    ).streams[0]
    assert stream.raw_table == "app_raw"
    assert stream.rules.filter.pattern == "ERROR" and len(stream.rules.redactions) == 3
    assert stream.reconcile.enabled is False  # IncomingLogEvents counts the filtered events too
    assert parse_config(_doc(raw_table="bronze")).streams[0].raw_table == "bronze"
    assert parse_config(_doc()).streams[0].raw_table is None
    assert "salt" not in repr(stream.rules)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"raw": "yes"}, "streams.app.raw: must be true or false"),
        ({"raw": False, "raw_table": "x"}, "raw_table: set, but raw is false"),
        ({"raw_table": "app"}, "raw_table: 'app' is one of the stream's other tables"),
        ({"filter": {"pattern": "[a, b] x"}}, "filter.pattern: .*does not end with ']'"),
        ({"filter": {"include": ["("]}}, r"filter.include\[0\]: invalid regular expression"),
        ({"filter": {"regex": "x"}}, "filter: unknown key"),
        ({"redact": [{"mask": "("}]}, r"redact\[0\].mask: invalid regular expression"),
        ({"redact": [{"mask": "a", "hash": "b"}]}, r"redact\[0\]: needs exactly one of"),
        (
            {"redact": [{"hash": "a", "salt_env": "NOPE_NOT_SET"}]},
            "environment variable NOPE_NOT_SET is not set",
        ),
        ({"redact": [{"hash": "a"}]}, r"salt_env: must name the environment variable"),
        ({"redact": [{"drop_field": "a..b"}]}, "empty path step"),
        ({"redact": [{"mask": "a", "salt_env": "S"}]}, "unknown key"),
        ({"filter": {"pattern": "x"}, "reconcile": {"enabled": True}}, "cannot reconcile"),
    ],
)
def test_config_mistakes_are_named(stream: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_doc(**stream), env={})

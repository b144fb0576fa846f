"""Config of a stream's raw table, filters and redaction rules (validated, with clear errors).

.. code-block:: yaml

    raw: true                  # or raw_table: app_raw (a name of its own)
    filter:
      pattern: '{ $.level != "DEBUG" }'   # CloudWatch filter pattern
      include: ['^\\{']                    # regexes: keep only events one of them matches
      exclude: ['healthcheck']            # regexes: drop events one of them matches
    redact:
      - mask: '\\b\\d{13,19}\\b'            # card-like numbers -> <redacted>
      - hash: '[\\w.+-]+@[\\w-]+\\.[\\w.]+'   # e-mail addresses -> sha256:<16 hex>
        salt_env: PII_SALT                # the salt's environment variable (must be set)
      - drop_field: params.password       # a field of JSON messages (message.password also
                                          # reaches a string field holding JSON)

This module is pure like :mod:`cwl_pipeline.config`: it reads the environment it is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cwl_pipeline.core.event_rules import MASK, EventRules, MessageFilter, Redaction
from cwl_pipeline.core.filter_patterns import FilterPatternError
from cwl_pipeline.core.parsers import JSON_PARSER_TYPES, ParserSpec
from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier

RULE_KEYS = {"raw", "raw_table", "filter", "redact"}
_FILTER_KEYS = {"pattern", "include", "exclude"}
_REDACTION_KINDS = ("mask", "hash", "drop_field")


class RuleConfigError(ValueError):
    """A mistake in a stream's raw, filter or redaction settings (message names the key)."""


def parse_raw_table(raw: Mapping[str, Any], where: str, table: str, default_on: bool = False) -> str | None:
    """The stream's raw table name, or None when the stream has no raw layer."""
    enabled = raw.get("raw", default_on)
    if not isinstance(enabled, bool):
        raise RuleConfigError(f"{where}.raw: must be true or false")
    name = raw.get("raw_table")
    if name is None:
        return f"{table}_raw" if enabled else None
    if raw.get("raw") is False:
        raise RuleConfigError(f"{where}.raw_table: set, but raw is false")
    try:
        check_identifier("table", name)
    except IdentifierError as exc:
        raise RuleConfigError(f"{where}.raw_table: {exc}") from None
    return str(name)


def parse_event_rules(raw: Mapping[str, Any], where: str, env: Mapping[str, str]) -> EventRules:
    """The stream's filter and redaction rules (``filter``, ``redact``)."""
    return EventRules(
        filter=_parse_filter(raw.get("filter"), f"{where}.filter"),
        redactions=tuple(_parse_redactions(raw.get("redact"), f"{where}.redact", env)),
    )


def check_rules_apply(rules: EventRules, parsers: Iterable[ParserSpec], where: str) -> None:
    """Refuse a redaction rule that could never change a message of the stream.

    ``parsers`` are those the stream's events go through (its schema's, each route's). A
    ``drop_field`` needs JSON messages: under parsers that read every message as text
    (``text``, ``regex``, ``vpc_flow``) it would silently do nothing.
    """
    kinds = {parser.type: parser for parser in parsers}
    if any(kind in JSON_PARSER_TYPES for kind in kinds):
        return
    read_as = ", ".join(repr(parser.describe()) for parser in kinds.values())
    for index, rule in enumerate(rules.redactions):
        if rule.kind == "drop_field":
            raise RuleConfigError(
                f"{where}.redact[{index}].drop_field: {rule.path!r} cannot apply: the stream's parser "
                f"({read_as}) reads its messages as text, not JSON, so no message has fields to drop; "
                "mask or hash the value with a regular expression instead, or use parser json or lambda"
            )


def _parse_filter(value: Any, where: str) -> MessageFilter:
    if value is None:
        return MessageFilter()
    if not isinstance(value, Mapping):
        raise RuleConfigError(f"{where}: must be a mapping with pattern, include and/or exclude")
    unknown = sorted(set(value) - _FILTER_KEYS)
    if unknown:
        raise RuleConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_FILTER_KEYS)}")
    pattern = value.get("pattern", "")
    if not isinstance(pattern, str):
        raise RuleConfigError(f"{where}.pattern: must be a CloudWatch filter pattern (a string)")
    include = _regex_list(value.get("include", []), f"{where}.include")
    exclude = _regex_list(value.get("exclude", []), f"{where}.exclude")
    try:
        return MessageFilter(pattern=pattern, include=include, exclude=exclude)
    except FilterPatternError as exc:
        raise RuleConfigError(f"{where}.pattern: {exc}") from None


def _regex_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleConfigError(f"{where}: must be a list of regular expressions")
    for index, pattern in enumerate(value):
        _check_regex(pattern, f"{where}[{index}]")
    return tuple(value)


def _check_regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RuleConfigError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None


def _parse_redactions(value: Any, where: str, env: Mapping[str, str]) -> list[Redaction]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuleConfigError(f"{where}: must be a list of rules (mask, hash, drop_field)")
    return [_parse_redaction(rule, f"{where}[{index}]", env) for index, rule in enumerate(value)]


def _parse_redaction(rule: Any, where: str, env: Mapping[str, str]) -> Redaction:
    if not isinstance(rule, Mapping):
        raise RuleConfigError(f"{where}: must be a mapping like {{mask: <regex>}}")
    kinds = [k for k in _REDACTION_KINDS if k in rule]
    if len(kinds) != 1:
        raise RuleConfigError(f"{where}: needs exactly one of {list(_REDACTION_KINDS)}")
    kind = kinds[0]
    allowed = {kind, *({"replacement"} if kind == "mask" else {"salt_env"} if kind == "hash" else set())}
    unknown = sorted(set(rule) - allowed)
    if unknown:
        raise RuleConfigError(
            f"{where}: unknown key(s) {unknown} for a {kind} rule; allowed: {sorted(allowed)}"
        )
    target = rule[kind]
    if not isinstance(target, str) or not target:
        what = "a dotted JSON field name" if kind == "drop_field" else "a regular expression"
        raise RuleConfigError(f"{where}.{kind}: must be {what}")
    if kind == "drop_field":
        if any(not part for part in target.split(".")):
            raise RuleConfigError(f"{where}.drop_field: {target!r} has an empty path step")
        return Redaction("drop_field", path=target)
    if _check_regex(target, f"{where}.{kind}").fullmatch("") is not None:
        raise RuleConfigError(
            f"{where}.{kind}: {target!r} matches the empty text, so it would insert its replacement "
            "between every two characters; make it match at least one character"
        )
    if kind == "mask":
        replacement = rule.get("replacement", MASK)
        if not isinstance(replacement, str):
            raise RuleConfigError(f"{where}.replacement: must be a string")
        return Redaction("mask", pattern=target, replacement=replacement)
    variable = rule.get("salt_env")
    if not isinstance(variable, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise RuleConfigError(f"{where}.salt_env: must name the environment variable holding the salt")
    salt = env.get(variable, "")
    if not salt:
        raise RuleConfigError(
            f"{where}.salt_env: environment variable {variable} is not set (or empty); "
            "hash rules need a secret salt"
        )
    return Redaction("hash", pattern=target, salt=salt.encode("utf-8"))

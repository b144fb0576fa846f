"""The declared parser of a stream or schema, validated, and the record parser it builds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cwl_pipeline.core.parsers.lambda_logs import parse_lambda_message
from cwl_pipeline.core.parsers.records import RecordParser
from cwl_pipeline.core.parsers.regex import regex_parser
from cwl_pipeline.core.parsers.vpc_flow import field_key, vpc_flow_parser

PARSER_TYPES: tuple[str, ...] = ("json", "lambda", "vpc_flow", "regex", "text")
JSON_PARSER_TYPES: tuple[str, ...] = ("json", "lambda")
"""Parsers that read a message that is a JSON object as JSON; the others read every message as text."""


class ParserError(ValueError):
    """A declared parser is invalid; the message names the offending key."""


_KEYS: dict[str, set[str]] = {
    "json": {"type"},
    "lambda": {"type"},
    "text": {"type"},
    "vpc_flow": {"type", "fields", "format"},
    "regex": {"type", "pattern", "nulls"},
}
_FORMAT_FIELD = re.compile(r"\$\{([A-Za-z0-9_-]+)\}")


@dataclass(frozen=True)
class ParserSpec:
    """A parser and its options.

    Attributes:
        type: one of :data:`PARSER_TYPES`.
        pattern: ``regex``: the regular expression (searched, so anchor it with ``^``/``$``
            to match whole messages); its named groups become fields.
        nulls: ``regex``: group values read as NULL (e.g. ``-`` in access logs).
        fields: ``vpc_flow``: the custom format's fields in order (``account-id`` or
            ``account_id``); empty for the default version-2 format.
    """

    type: str = "json"
    pattern: str | None = None
    nulls: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    def build(self) -> RecordParser | None:
        """The record parser; None for ``json``, which normalization parses inline."""
        if self.type == "json":
            return None
        if self.type == "text":
            return text_record
        if self.type == "lambda":
            return parse_lambda_message
        if self.type == "vpc_flow":
            return vpc_flow_parser(self.fields)
        assert self.pattern is not None
        return regex_parser(self.pattern, self.nulls)

    def describe(self) -> str:
        """A short human-readable form, for logs, metadata and errors."""
        if self.type == "regex":
            return f"regex {self.pattern!r}"
        if self.type == "vpc_flow" and self.fields:
            return f"vpc_flow ({' '.join(self.fields)})"
        return self.type


def text_record(message: str) -> dict[str, Any]:
    """The ``text`` parser: the whole message as the field ``message``."""
    return {"message": message}


def parser_from_config(spec: Any, where: str = "parser") -> ParserSpec:
    """Validate a parser's config form: a name (``lambda``) or a mapping with ``type``.

    Raises:
        ParserError: unknown type or key, or an invalid option (the message names it).
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ParserError(
            f"{where}: must be a parser name ({', '.join(PARSER_TYPES)}) or a mapping with a 'type'"
        )
    kind = spec.get("type")
    if kind not in PARSER_TYPES:
        raise ParserError(f"{where}.type: {kind!r} is not one of {', '.join(PARSER_TYPES)}")
    unknown = set(spec) - _KEYS[kind]
    if unknown:
        raise ParserError(
            f"{where}: unknown key(s) {sorted(unknown)} for parser {kind!r} "
            f"(it takes {sorted(_KEYS[kind] - {'type'}) or 'no options'})"
        )
    if kind == "regex":
        return _regex_spec(spec, where)
    if kind == "vpc_flow":
        return ParserSpec(type=kind, fields=_vpc_fields(spec, where))
    return ParserSpec(type=kind)


def _regex_spec(spec: Mapping[str, Any], where: str) -> ParserSpec:
    pattern = spec.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ParserError(f"{where}.pattern: the regex parser needs a non-empty 'pattern'")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ParserError(f"{where}.pattern: not a valid regular expression: {exc}") from None
    if not compiled.groupindex:
        raise ParserError(f"{where}.pattern: has no named group; name the fields, e.g. (?P<status>\\d{{3}})")
    nulls = spec.get("nulls", [])
    if not isinstance(nulls, list) or not all(isinstance(n, str) for n in nulls):
        raise ParserError(f"{where}.nulls: must be a list of strings, e.g. ['-']")
    return ParserSpec(type="regex", pattern=pattern, nulls=tuple(nulls))


def _vpc_fields(spec: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "fields" in spec and "format" in spec:
        raise ParserError(f"{where}: give either 'fields' or 'format', not both")
    if "format" in spec:
        text = spec["format"]
        if not isinstance(text, str):
            raise ParserError(f"{where}.format: must be a string like '${{version}} ${{vpc-id}} ...'")
        fields = _FORMAT_FIELD.findall(text)
        leftover = _FORMAT_FIELD.sub("", text).strip()
        if not fields or leftover:
            raise ParserError(
                f"{where}.format: must be '${{field}}' names separated by spaces, as in the flow "
                f"log's LogFormat, got {text!r}"
            )
    elif "fields" in spec:
        fields = spec["fields"]
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise ParserError(f"{where}.fields: must be a non-empty list of field names")
    else:
        return ()
    keys = [field_key(f) for f in fields]
    for name, key in zip(fields, keys, strict=True):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ParserError(f"{where}: {name!r} is not a flow log field name")
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ParserError(f"{where}: field(s) {dupes} listed twice")
    return tuple(fields)

"""The sections of a stream's filter and redaction rules (``raw`` is resolved by the stream).

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
from typing import Annotated, Any

from pydantic import Field, model_validator

from cwl_pipeline.config_model import Section, at, list_of, regex, rule
from cwl_pipeline.core.event_rules import MASK, EventRules, MessageFilter, Redaction
from cwl_pipeline.core.filter_patterns import FilterPatternError
from cwl_pipeline.core.parsers import JSON_PARSER_TYPES, ParserSpec

REDACTION_KINDS = ("mask", "hash", "drop_field")
_OPTIONS = {"mask": {"replacement"}, "hash": {"salt_env"}, "drop_field": set()}
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


Regexes = Annotated[
    tuple[Annotated[str, regex("invalid regular expression {value!r}: {exc}")], ...],
    list_of(lambda v: isinstance(v, str) and v, "must be a list of regular expressions"),
]


class FilterSettings(Section):
    """Which events a stream keeps: those its CloudWatch filter pattern matches, one of the
    ``include`` regexes matches (when given) and no ``exclude`` regex matches."""

    pattern: Annotated[
        str, rule(lambda v: isinstance(v, str), "must be a CloudWatch filter pattern (a string)")
    ] = ""
    """A CloudWatch filter pattern."""
    include: Regexes = ()
    """Regexes: keep only events one of them matches."""
    exclude: Regexes = ()
    """Regexes: drop events one of them matches."""

    @model_validator(mode="after")
    def _pattern_compiles(self) -> FilterSettings:
        try:
            self.message_filter()
        except FilterPatternError as exc:
            raise at("pattern", str(exc)) from None
        return self

    def message_filter(self) -> MessageFilter:
        """The filter the pipeline applies."""
        return MessageFilter(pattern=self.pattern, include=self.include, exclude=self.exclude)


class RedactionRule(Section):
    """One rule applied to every message before it is written: exactly one of ``mask``,
    ``hash`` or ``drop_field``."""

    mask: str | None = None
    """Regex whose matches become the replacement."""
    replacement: str | None = None
    """mask: the replacement (default <redacted>)."""
    hash: str | None = None
    """Regex whose matches become a salted hash."""
    salt_env: str | None = None
    """hash: the environment variable holding the salt."""
    drop_field: str | None = None
    """A dotted field of JSON messages to remove; a step may enter a string holding JSON."""
    salt: bytes = Field(b"", exclude=True, repr=False)  # hash: the salt, read from salt_env

    @classmethod
    def resolve(cls, data: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """One kind with its options; a regex that matches something; the salt read."""
        kinds = [kind for kind in REDACTION_KINDS if kind in data]
        if len(kinds) != 1:
            raise at("", f"needs exactly one of {list(REDACTION_KINDS)}")
        kind = kinds[0]
        allowed = {kind, *_OPTIONS[kind]}
        if unknown := sorted(set(data) - allowed):
            raise at("", f"unknown key(s) {unknown} for a {kind} rule; allowed: {sorted(allowed)}")
        target = data[kind]
        if not isinstance(target, str) or not target:
            what = "a dotted JSON field name" if kind == "drop_field" else "a regular expression"
            raise at(kind, f"must be {what}")
        if kind == "drop_field":
            if any(not part for part in target.split(".")):
                raise at("drop_field", f"{target!r} has an empty path step")
            return data
        try:
            matches_nothing = re.compile(target).fullmatch("") is not None
        except re.error as exc:
            raise at(kind, f"invalid regular expression {target!r}: {exc}") from None
        if matches_nothing:
            raise at(
                kind,
                f"{target!r} matches the empty text, so it would insert its replacement "
                "between every two characters; make it match at least one character",
            )
        if kind == "hash":
            variable = data.get("salt_env")
            if not isinstance(variable, str) or not _VARIABLE_RE.fullmatch(variable):
                raise at("salt_env", "must name the environment variable holding the salt")
            if not (salt := context.get("env", {}).get(variable, "")):
                raise at(
                    "salt_env",
                    f"environment variable {variable} is not set (or empty); hash rules need a secret salt",
                )
            data["salt"] = salt.encode("utf-8")
        if kind == "mask" and not isinstance(data.get("replacement", MASK), str):
            raise at("replacement", "must be a string")
        return data

    def redaction(self) -> Redaction:
        """The rule the pipeline applies."""
        if self.drop_field is not None:
            return Redaction("drop_field", path=self.drop_field)
        if self.mask is not None:
            return Redaction("mask", pattern=self.mask, replacement=self.replacement or MASK)
        return Redaction("hash", pattern=self.hash or "", salt=self.salt)


def check_rules_apply(rules: EventRules, parsers: Iterable[ParserSpec]) -> None:
    """Refuse a redaction rule that could never change a message of the stream.

    ``parsers`` are those the stream's events go through (its schema's, each route's). A
    ``drop_field`` needs JSON messages: under parsers that read every message as text
    (``text``, ``regex``, ``vpc_flow``) it would silently do nothing.
    """
    kinds = {parser.type: parser for parser in parsers}
    if any(kind in JSON_PARSER_TYPES for kind in kinds):
        return
    read_as = ", ".join(repr(parser.describe()) for parser in kinds.values())
    for index, redaction in enumerate(rules.redactions):
        if redaction.kind == "drop_field":
            raise at(
                f"redact[{index}].drop_field",
                f"{redaction.path!r} cannot apply: the stream's parser "
                f"({read_as}) reads its messages as text, not JSON, so no message has fields to drop; "
                "mask or hash the value with a regular expression instead, or use parser json or lambda",
            )

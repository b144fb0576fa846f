"""The typed pieces every config section is built from: a section, durations, ranges, and errors.

A section is a frozen pydantic model: its fields are its keys, their types, defaults and
ranges; its validators hold the rules between keys. :func:`validate_section` turns pydantic's
first error into a :class:`ConfigError` that names the key (``streams.app.live.interval``),
the value and the fix, the way every message of the config reads.

This module is pure: it imports neither dagster nor any cloud client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from cwl_pipeline.core.parsers import parser_from_config
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, PARSER_SCHEMAS, TableSchema
from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier


class ConfigError(ValueError):
    """The pipeline config is invalid; the message names the file and the key."""


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_of(value: Any) -> timedelta:
    """``90s``, ``15m``, ``2h`` or ``1d`` (or a number of seconds) as a timedelta.

    Raises:
        ValueError: anything else; the message shows the value and the expected spelling.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a duration like '30s', '15m', '2h' or '1d', got {value!r}")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(duration_of)]


Test = Callable[[Any], Any] | re.Pattern[str]
"""What a value must pass: a predicate, or a regex it must be a text fully matching."""


def rule(
    ok: Test | None = None, problem: str = "", read: Callable[[Any], Any] | None = None, empty: Any = ...
) -> BeforeValidator:
    """A value that ``read`` (when given, e.g. :func:`duration_of`) takes and ``ok`` accepts;
    otherwise ``problem``, in which ``{value!r}`` shows the value as written. An empty value is
    ``empty`` when given."""

    def check(value: Any) -> Any:
        if not value and empty is not ...:
            return empty
        result = read(value) if read else value
        if ok is not None and not passes(ok, result):
            raise ValueError(problem.format(value=value))
        return result

    return BeforeValidator(check)


def between(low: timedelta, high: timedelta, why: str = "") -> BeforeValidator:
    """A duration from ``low`` to ``high``, both included; ``why`` explains the bounds."""
    because = f" ({why})" if why else ""
    return rule(
        lambda d: low <= d <= high, f"must be from {spell(low)} to {spell(high)}{because}", duration_of
    )


def spell(duration: timedelta) -> str:
    """``duration`` as the config spells it: ``5s``, ``15m``, ``1h``, ``14d``."""
    seconds = int(duration.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _DURATION_UNITS[unit] == 0:
            return f"{seconds // _DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def integer(low: int, high: int | None = None, meaning: str = "") -> BeforeValidator:
    """An integer (never a bool) from ``low`` (to ``high``); ``meaning`` explains the bound."""
    if high is not None:
        problem = f"must be an integer from {low} to {high}"
    else:
        problem = (
            "must be a positive integer"
            if low == 1 and not meaning
            else f"{{value!r}} must be an integer of at least {low:,} ({meaning})"
        )
    return rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= (high or v), problem)


def number(ok: Callable[[float], bool], problem: str) -> BeforeValidator:
    """A number (never a bool) that ``ok`` accepts; otherwise ``problem``."""
    return rule(lambda v: isinstance(v, int | float) and not isinstance(v, bool) and ok(v), problem)


def list_of(item: Test, problem: str) -> BeforeValidator:
    """A list whose every item passes ``item``; otherwise ``problem`` (see :func:`rule`)."""
    return rule(lambda v: isinstance(v, list | tuple) and all(passes(item, i) for i in v), problem)


def passes(test: Test, value: Any) -> bool:
    """Whether ``value`` passes ``test``."""
    if isinstance(test, re.Pattern):
        return isinstance(value, str) and test.fullmatch(value) is not None
    return bool(test(value))


def one_of(*choices: str, empty: str | None = None) -> BeforeValidator:
    """One of ``choices``; an empty value is ``empty`` when given."""
    check = rule(lambda v: v in choices, "{value!r} must be one of " + str(list(choices)), empty=empty or ...)
    check.func.choices = choices  # type: ignore[attr-defined]  # shown as the key's type in schemas
    return check


def choices_of(metadata: list[Any]) -> tuple[str, ...] | None:
    """The choices a key's :func:`one_of` validator allows, from its field's metadata."""
    for item in metadata:
        if isinstance(item, BeforeValidator) and (choices := getattr(item.func, "choices", None)):
            return choices
    return None


Flag = Annotated[bool, rule(lambda v: isinstance(v, bool), "must be true or false")]
"""``true`` or ``false``, nothing that merely looks like one."""
OptionalText = Annotated[str | None, BeforeValidator(lambda v: v or None)]
"""A text; an empty value (``${NAME:-}`` of an unset variable) is no value."""


def regex(problem: str) -> BeforeValidator:
    """A regular expression (or None); otherwise ``problem``, where ``{value!r}`` and ``{exc}``
    show the value and why it does not compile."""

    def check(value: Any) -> Any:
        try:
            if value is not None:
                re.compile(value)
        except (re.error, TypeError) as exc:
            raise ValueError(problem.format(value=value, exc=exc)) from None
        return value

    return BeforeValidator(check)


def text(regex: re.Pattern[str], problem: str, required: bool = True) -> BeforeValidator:
    """A text that fully matches ``regex``; otherwise the value and ``problem`` ("is not an
    IAM role ARN") say why. Empty is None unless ``required``."""
    return rule(regex, "{value!r} " + problem, empty=... if required else None)


ENV_REFERENCE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def env_reference(example: str) -> BeforeValidator:
    """A ``${NAME}`` reference to an environment variable, kept as the name ``NAME``: Dagster
    reads the value at run time, so the UI shows the name only."""

    def name(value: Any) -> str:
        match = ENV_REFERENCE_RE.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(
                f"write it as a reference to an environment variable, e.g. ${{{example}}}, not as a "
                "value (values would be shown in the Dagster UI)"
            )
        return match.group(1)

    return rule(read=name, empty=None)


def at(key: str, message: str) -> ValueError:
    """The error of a rule between keys, reported at ``key`` (relative to the section that
    checks it; empty: the section itself)."""
    return ValueError(f".{key}: {message}" if key else f": {message}")


class Section(BaseModel):
    """A config section: known keys only, frozen once validated; a key's docstring is its description."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"must be a mapping, got {type(data).__name__}")
        allowed = cls.document_keys()
        if unknown := sorted(set(data) - allowed, key=str):
            raise ValueError(f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        return cls.resolve(dict(data), info.context or {})

    resolved_keys: ClassVar[dict[str, str]] = {}
    """Keys the section takes and resolves into its fields (key: description)."""

    @classmethod
    def document_keys(cls) -> set[str]:
        """The keys the section takes in a config document."""
        return section_keys(cls) | set(cls.resolved_keys)

    @classmethod
    def resolve(cls, data: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """The document's keys as the fields take them (some sections derive fields from keys)."""
        return data


def bare(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated`` metadata."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def section_keys(cls: type[BaseModel]) -> set[str]:
    """The keys a section takes, as the config spells them."""
    return {field.alias or name for name, field in cls.model_fields.items() if not field.exclude}


T = TypeVar("T")


def validate_section(cls: type[T], raw: Any, where: str, **context: Any) -> T:
    """``raw`` validated as ``cls`` (a section, or a type made of sections); the first error
    as a :class:`ConfigError` at its key.

    ``context`` reaches the validators (``info.context``): what a section needs from outside it.
    """
    try:
        return _adapter(cls).validate_python({} if raw is None else raw, context=context)
    except ValidationError as exc:
        raise ConfigError(describe(exc, where, raw)) from None


_adapter = cache(TypeAdapter)


def describe(exc: ValidationError, where: str, raw: Any = None) -> str:
    """The first error of ``exc`` as ``<where>.<key>: <message>``; an item of a list that has a
    ``name`` in ``raw`` (the document validated) is shown by its name (``routes.api``)."""
    error = exc.errors(include_url=False)[0]
    path, node = where, raw
    for part in error["loc"]:
        if isinstance(part, str) and part.startswith("tag:"):
            continue  # pydantic names the chosen member of a tagged union; the config's keys do not
        if isinstance(part, int):
            node = node[part] if isinstance(node, list | tuple) and 0 <= part < len(node) else None
            name = node.get("name") if isinstance(node, Mapping) else None
            path += f".{name}" if isinstance(name, str) and NAME_RE.fullmatch(name) else f"[{part}]"
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
            path += f".{part}"
    message = str(error["msg"])
    if error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        if message.startswith((".", ": ")):
            return f"{path}{message}"
    elif error["type"] == "missing":
        message = "required"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = f"{_EXPECTED.get(error['type'], message)}, got {error.get('input')!r}"
    return f"{path}: {message}"


_EXPECTED = {
    "string_type": "must be text",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "literal_error": "must be one of the values shown",
}
"""What a value of the wrong type should have been, in the config's words."""


def table_schema(data: Mapping[str, Any], schemas: Mapping[str, TableSchema]) -> TableSchema:
    """The schema a stream or route names (``schema``), with the ``parser`` it names.

    Without ``schema``, a parser's built-in schema (``lambda``, ``vpc_flow``, ``text``; ``seed``
    for ``json``); ``regex`` needs a schema. An already resolved schema is kept.
    """
    named = data.get("schema")
    if isinstance(named, TableSchema):
        return named
    # A ParserError is a ValueError: pydantic reports it as it is, at ``.parser``.
    parser = parser_from_config(data["parser"], ".parser") if data.get("parser") is not None else None
    if named is None:
        if parser is not None and parser.type not in PARSER_SCHEMAS:
            raise at(
                "schema",
                f"parser {parser.type!r} needs a schema whose columns name its fields "
                "(declare one under 'schemas' and set 'schema')",
            )
        named = PARSER_SCHEMAS[parser.type] if parser is not None else "seed"
    if not isinstance(named, str):
        raise at("schema", f"must be the name of a schema under 'schemas', got {named!r}")
    if named not in schemas:
        raise at("schema", f"unknown schema {named!r} (known: {sorted(schemas)})")
    schema = schemas[named]
    return schema if parser is None or parser == schema.parser else replace(schema, parser=parser)


def resolve_table(
    data: dict[str, Any], context: Mapping[str, Any], default: Callable[[str], str], hint: str = ""
) -> str:
    """The ``name`` of a stream or route checked, its ``table`` (by default ``default(name)``)
    and ``schema`` (with ``parser``) resolved in ``data``; the table."""
    name = data.get("name")
    if not passes(NAME_RE, name):
        raise at("name", f"{name!r} must be lower-case letters, digits and underscores{hint}")
    data["table"] = identifier("table", data.get("table", default(name)), key="table")
    data["schema"] = table_schema(data, context.get("schemas", BUILTIN_SCHEMAS))
    data.pop("parser", None)
    return data["table"]


def identifier(kind: str, value: Any, key: str = "", hint: str = "") -> str:
    """``value`` if it is a BigQuery name of ``kind`` (core.sql_identifiers' safe alphabet);
    otherwise the error, with ``hint``, names ``key`` of the section when given (a section's
    resolve step)."""
    try:
        return check_identifier(kind, value)
    except IdentifierError as exc:
        raise (at(key, f"{exc}{hint}") if key else ValueError(f"{exc}{hint}")) from None


NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""Stream and route names: they name assets, checks, sensors and tables."""

"""Component attributes derived from the config sections: the same keys, descriptions and choices.

A section of :mod:`cwl_pipeline.config` is the one definition of its keys. Its attributes model
here shows them to ``defs.yaml`` (JSON schema, editor completion, ``dg check yaml``), with
each value's written form (a duration as ``'15m'``, a schema by name) and no rule of its own:
the values reach the section's validation as written, with their ``{{ }}`` templates rendered
and never evaluated as Python literals (a quoted filter-pattern term keeps its quotes).
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
import types
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any, ForwardRef, Literal, TypeAlias, Union, get_args, get_origin

import dagster as dg
import jinja2
from pydantic import BaseModel, Field, SkipValidation, StrictBool, StrictInt, create_model

from cwl_pipeline.config_model import Section, bare, choices_of
from cwl_pipeline.core.sizes import parse_byte_size


def _text(context: dg.ResolutionContext, value: Any) -> Any:
    """A text value kept as text: its ``{{ }}`` templates rendered, the result never evaluated.

    Dagster renders a template's result as a Python literal by default, so ``'"ERROR"'`` (a
    quoted filter-pattern term) would lose its quotes and ``'123'`` would become a number.
    """
    if not isinstance(value, str) or "{{" not in value:
        return value
    return jinja2.Template(value, undefined=jinja2.StrictUndefined).render(**context.scope)


# Text: filter patterns, regexes, names; rendered, never evaluated as a literal.
Text: TypeAlias = Annotated[str, dg.Resolver(_text, model_field_type=str, inject_before_resolve=False)]
OptionalText: TypeAlias = Annotated[
    str | None, dg.Resolver(_text, model_field_type=str | None, inject_before_resolve=False)
]
Names: TypeAlias = list[Text] | None
# Types shown in the schema, checked by the section's validation (SkipValidation).
Duration: TypeAlias = Annotated[str | StrictInt | None, SkipValidation]
Size: TypeAlias = Annotated[str | StrictInt | None, SkipValidation]  # '2GiB' or a number of bytes
Count: TypeAlias = Annotated[StrictInt | None, SkipValidation]
Number: TypeAlias = Annotated[float | StrictInt | None, SkipValidation]
Flag: TypeAlias = Annotated[StrictBool | None, SkipValidation]
# An unquoted YAML time arrives as a datetime: the section takes both.
Moment: TypeAlias = Annotated[str | None, SkipValidation]


class Attributes(dg.Model, dg.Resolvable):
    """Attributes written as a mapping; a key left out is left to the section's default.

    Each key's description reaches the Component's YAML schema through its resolver: Dagster
    builds that schema from a model of its own, which keeps a resolver's description but drops
    a field's (``Field(None, description=...)``) whenever the field has a default.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for info in cls.model_fields.values():
            if info.description:
                info.metadata[:] = _described(info.metadata, info.description)

    def document(self) -> dict[str, Any]:
        """The keys written, as the pipeline config file spells them."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)


def _described(metadata: list[Any], description: str) -> list[Any]:
    """A field's ``metadata`` with its resolver (a default one when it has none) carrying
    ``description``."""
    resolvers = [item for item in metadata if isinstance(item, dg.Resolver)]
    if not resolvers:
        return [*metadata, dg.Resolver.default(description=description)]
    first = resolvers[0]
    described = first.with_outer_resolver(dg.Resolver.default(description=description))
    return [described if item is first else item for item in metadata]


_WRITTEN_TYPES: dict[type[Section], dict[str, Any]] = {}
_REQUIRED_KEYS: dict[type[Section], frozenset[str]] = {}


def describe_keys(
    section: type[Section], written: dict[str, Any] | None = None, required: frozenset[str] = frozenset()
) -> None:
    """How ``section``'s resolved keys are written (key: type; their descriptions are the
    section's), and the ``required`` keys that must be written. Call before the first
    :func:`attributes_of` of the section."""
    _WRITTEN_TYPES[section], _REQUIRED_KEYS[section] = written or {}, required


@cache
def attributes_of(
    section: type[Section], keys: frozenset[str] | None = None, name: str | None = None
) -> type[Attributes]:
    """The attributes model of ``section``: its document keys (only ``keys`` when given), each
    with its written form, its description and, for a choice, the choices, and the keys
    :func:`describe_keys` adds. Only the required keys must be written: the others are the
    section's to default."""
    written, required = _WRITTEN_TYPES.get(section, {}), _REQUIRED_KEYS.get(section, frozenset())
    if set(written) != set(section.resolved_keys):
        raise TypeError(f"{section.__name__}: describe how {sorted(section.resolved_keys)} are written")
    fields: dict[str, Any] = {}
    for field_name, info in section.model_fields.items():
        key = info.alias or field_name
        if info.exclude or (keys is not None and key not in keys):
            continue
        if isinstance(info.annotation, ForwardRef):
            raise TypeError(f"{section.__name__}.{field_name}: define its type before the section")
        field_type = _written(info.annotation, info.metadata)
        default = ... if key in required else info.default if get_origin(field_type) is Literal else None
        if key in required:
            field_type = _required(field_type)
        # `schema` is a pydantic BaseModel attribute: such a key gets another field name and the alias.
        attribute = f"{key}_" if key in _TAKEN else key
        alias = key if attribute != key else None
        fields[attribute] = (field_type, Field(default, alias=alias, description=info.description))
    for key, field_type in written.items():
        if keys is None or key in keys:
            fields[key] = (field_type, Field(None, description=section.resolved_keys[key]))
    model = create_model(name or f"{section.__name__}Attributes", __base__=Attributes, **fields)
    model.__doc__ = (section.__doc__ or "").strip().split("\n\n")[0]
    return model


_TAKEN = frozenset(dir(BaseModel))


def _written(annotation: Any, metadata: list[Any]) -> Any:
    """How a value of ``annotation`` is written in YAML, as a type the schema can show."""
    if choices := choices_of(metadata):
        return Literal[choices] | None  # type: ignore[valid-type]
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return _written(inner, [*more, *metadata])
    if origin in (Union, types.UnionType):
        members = [_written(arg, []) for arg in get_args(annotation) if arg is not type(None)]
        return Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007
    if origin is Literal:
        return annotation
    if origin is tuple:
        item = get_args(annotation)[0]
        if isinstance(item, type) and issubclass(item, Section):
            return list[attributes_of(item)] | None
        # list[str | int], not StrictInt: Dagster's schema loses a list of Annotated items
        return Names if bare(item) is str else Annotated[list[str | int] | None, SkipValidation]
    if any(getattr(item, "func", None) is parse_byte_size for item in metadata):
        return Size
    base = bare(annotation)
    if isinstance(base, type) and issubclass(base, Section):
        return attributes_of(base) | None
    return _SCALARS.get(base, OptionalText)


def _required(field_type: Any) -> Any:
    """``field_type`` without its ``None``: a key that must be written."""
    if field_type is OptionalText:
        return Text
    members = [arg for arg in get_args(field_type) if arg is not type(None)]
    if get_origin(field_type) in (Union, types.UnionType) and members:
        return Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007
    return field_type


_SCALARS: dict[Any, Any] = {
    timedelta: Duration,
    bool: Flag,
    int: Count,
    float: Number,
    datetime: Moment,
}

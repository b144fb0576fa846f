"""The key reference of the pipeline config, written from the config sections themselves.

``python -m cwl_pipeline.config_reference > docs/config-keys.md`` (``make docs-keys``); a test
keeps the file equal to what this prints, so the reference never drifts from the code.

Pure: it imports neither dagster nor any cloud client.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from cwl_pipeline.config import STREAM_TUNING_KEYS, AwsSettings, BigQuerySettings, StreamConfig
from cwl_pipeline.config_model import Section, bare, choices_of, spell
from cwl_pipeline.core.schema import TableSchema


def _sections(where: str, section: type[Section], tag: str = "") -> Iterator[tuple[str, type[Section]]]:
    """``section`` at ``where`` (``tag`` names the member of a union), then the sections of its
    keys, each where it is written."""
    yield where + tag, section
    for name, info in section.model_fields.items():
        path, annotation = f"{where}.{info.alias or name}", info.annotation
        if get_origin(annotation) is tuple:
            path, annotation = f"{path}[]", get_args(annotation)[0]
        members = [bare(arg) for arg in get_args(annotation) or [annotation]]
        members = [member for member in members if isinstance(member, type) and issubclass(member, Section)]
        for member in members:
            tag = f" (type: {member.model_fields['type'].default})" if len(members) > 1 else ""
            yield from _sections(path, member, tag)


SECTIONS = [
    *_sections("aws", AwsSettings),
    *_sections("bigquery", BigQuerySettings),
    *_sections("streams[]", StreamConfig),
]
"""Every section of a pipeline config, by where it is written."""

HEADER = """# Configuration keys

Every key of a pipeline config file (and of the Components' attributes, which take the same
keys), written from the config sections in `cwl_pipeline/config*.py`,
`cwl_pipeline/polling/source.py` and `cwl_pipeline/firehose/source.py`
(`make docs-keys`; a test keeps this file equal to the code). The rules between keys, and what
the keys do, are in [configuration.md](configuration.md).

The `defaults` section takes the stream keys {tuning}, for every stream.
"""


def reference() -> str:
    """The key reference as Markdown."""
    tuning = ", ".join(f"`{key}`" for key in sorted(STREAM_TUNING_KEYS))
    parts = [HEADER.format(tuning=tuning)]
    for where, section in SECTIONS:
        parts.append(f"## `{where}`\n\n{_summary(section)}\n")
        parts.append("| key | written as | default | what it is |\n|---|---|---|---|")
        for name, info in section.model_fields.items():
            if info.exclude:
                continue
            key = info.alias or name
            shown = _written(info.annotation, info.metadata)
            required = info.is_required() or (info.default is None and info.validate_default)
            default = "required" if required else _default(info.default)
            parts.append(f"| `{key}` | {shown} | {default} | {_cell(info.description)} |")
        for key, description in section.resolved_keys.items():
            parts.append(f"| `{key}` | see [configuration.md](configuration.md) | | {_cell(description)} |")
        parts.append("")
    return "\n".join(parts)


def _summary(section: type[Section]) -> str:
    return " ".join((section.__doc__ or "").strip().split("\n\n")[0].split())


def _cell(text: str | None) -> str:
    """``text`` in a Markdown table cell: ``|`` escaped, and ``<`` outside code spans, so a
    placeholder such as <table>_live is not read as an HTML tag."""
    text = (text or "").replace("|", "\\|")
    return re.sub(r"(`+).+?\1|<", lambda m: m.group(0) if m.group(1) else "&lt;", text)


def _written(annotation: Any, metadata: list[Any]) -> str:
    """How a value is written, in words."""
    if choices := choices_of(metadata):
        return "one of " + ", ".join(f"`{choice}`" for choice in choices)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _written(get_args(annotation)[0], [])
    if origin in (Union, types.UnionType):
        return " or ".join(_written(arg, []) for arg in get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return " or ".join(f"`{arg}`" for arg in get_args(annotation))
    if origin is tuple:
        item = get_args(annotation)[0]
        if isinstance(item, type) and issubclass(item, Section):
            return f"list of mappings: {item.__name__}"
        return "list of names" if item is str else f"list of {_written(item, [])}s"
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return f"mapping: {annotation.__name__}"
    return _WORDS.get(annotation, "text")


_WORDS: dict[Any, str] = {
    timedelta: "duration",
    bool: "`true` or `false`",
    int: "integer",
    float: "number",
    datetime: "time (ISO 8601)",
    Path: "path",
}


def _default(value: Any) -> str:
    if value is None or value == "" or value == ():
        return ""
    if isinstance(value, Section):
        return "its defaults"
    return f"`[{', '.join(map(_spelled, value))}]`" if isinstance(value, tuple) else f"`{_spelled(value)}`"


def _spelled(value: Any) -> str:
    if isinstance(value, timedelta):
        return spell(value)
    if isinstance(value, TableSchema):
        return value.name
    return str(value).lower() if isinstance(value, bool) else str(value)


if __name__ == "__main__":
    print(reference(), end="")

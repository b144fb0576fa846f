"""The ``regex`` parser: a regular expression whose named groups become the record's fields.

The pattern is searched in the message (anchor it with ``^`` and ``$`` to match whole
messages; ``(?s)`` lets ``.`` cross the lines of a multi-line message). Groups that did not
take part in the match, and values listed in ``nulls`` (such as ``-`` in access logs), are
NULL. Values are text: the column types convert them (``"200"`` -> INT64 200) with the
usual reject reasons. A message the pattern does not match is the reject ``no_match``.
"""

from __future__ import annotations

import re
from typing import Any

from cwl_pipeline.core.parsers.records import ParseFailure, RecordParser

_PATTERN_CHARS = 80


def regex_parser(pattern: str, nulls: tuple[str, ...] = ()) -> RecordParser:
    """A parser taking the named groups of ``pattern``'s first match."""
    compiled = re.compile(pattern)
    search = compiled.search
    null_values = frozenset(nulls)
    shown = pattern if len(pattern) <= _PATTERN_CHARS else pattern[: _PATTERN_CHARS - 3] + "..."

    def parse(message: str) -> dict[str, Any]:
        match = search(message)
        if match is None:
            raise ParseFailure("no_match", f"regex: message does not match {shown!r}")
        record = match.groupdict()
        if null_values:
            for key, value in record.items():
                if value in null_values:
                    record[key] = None
        return record

    return parse

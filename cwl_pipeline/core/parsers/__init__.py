"""Parsers: how a message becomes a record (a dict of fields) that schema columns pick from.

Every stream has one parser (``parser:`` in its config or its schema; ``json`` by default).
The parser turns each message into a record; the columns of the table schema then take
their values from the record by ``path``, through the one normalization of
:mod:`cwl_pipeline.core.normalize`. A message the parser cannot read is a reject with a
reason, never a silent drop.

``json``
    The message is a JSON object; the object is the record.
``lambda``
    AWS Lambda log lines: the platform lines (``START``, ``END``, ``REPORT``,
    ``INIT_START``, the ``Task timed out`` message) become typed fields; application lines
    are kept as text, or as JSON when they are JSON (see :mod:`.lambda_logs`).
``vpc_flow``
    VPC flow log records, in the default version-2 format or a custom field list
    (see :mod:`.vpc_flow`).
``regex``
    A regular expression; its named groups become the record's fields.
``text``
    The whole message as the field ``message``; never a reject.
"""

from cwl_pipeline.core.parsers.records import ParseFailure, RecordParser
from cwl_pipeline.core.parsers.spec import (
    JSON_PARSER_TYPES,
    PARSER_TYPES,
    ParserError,
    ParserSpec,
    parser_from_config,
)

__all__ = [
    "JSON_PARSER_TYPES",
    "PARSER_TYPES",
    "ParseFailure",
    "ParserError",
    "ParserSpec",
    "RecordParser",
    "parser_from_config",
]

"""The settings of an S3 source (``source: {type: s3, ...}``) and of a Firehose stream's routes.

Objects that a Firehose delivery stream (``layout: firehose``) or CreateExportTask
(``layout: export``, read by :mod:`cwl_pipeline.exports`) wrote to S3.

Pure: it imports neither dagster nor any cloud client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator

from cwl_pipeline.config_model import Section, at, between, one_of, regex, resolve_table, rule, text
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, TableSchema
from cwl_pipeline.core.sizes import parse_byte_size
from cwl_pipeline.firehose.key_layout import KeyLayout
from cwl_pipeline.polling.source import LOG_GROUP_RE, LogGroups

S3_LAYOUTS = ("firehose", "export")
FIREHOSE_RECORD_FORMATS = ("envelopes_gzip", "envelopes_json", "messages")
EXPORT_DEFAULT_PREFIX = "exportedlogs"  # CreateExportTask's default destinationPrefix
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_LOG_STREAM_RE = re.compile(r"^[^:*]{1,512}$")
_QUEUE_URL_RE = re.compile(r"^https?://[^\s/]+/[^\s]+$")


class S3Notifications(Section):
    """S3 event notifications of new objects, delivered to an SQS queue (one queue per stream).

    The Firehose sensor then lists the bucket only when a notification arrives, when one names
    a late object (a deep listing at once), and at least every ``safety_listing`` (notifications
    can be lost or misconfigured: the listing stays the source of truth).
    """

    queue_url: Annotated[
        str,
        text(
            _QUEUE_URL_RE, "must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)"
        ),
    ] = Field(None, validate_default=True)
    """The queue S3 sends the bucket's notifications to."""
    safety_listing: Annotated[timedelta, between(timedelta(seconds=1), timedelta(hours=1))] = timedelta(
        minutes=5
    )
    """List at least this often (1s..1h)."""


_KEY_PREFIX = "{value!r} must be a key prefix without a leading '/'"


def _key_template(value: Any) -> str | None:
    if value is not None:
        KeyLayout.parse(value)  # a KeyTemplateError is a ValueError, reported as it is
    return value


KeyTemplate = Annotated[
    str | None,
    BeforeValidator(_key_template),
    rule(lambda v: v is None or (isinstance(v, str) and v and not v.startswith("/")), _KEY_PREFIX),
]


class S3Source(Section):
    """Objects delivered to S3: by a Firehose delivery stream, or by CreateExportTask.

    ``prefix`` is the delivery stream's S3 prefix (objects are ``<prefix>YYYY/MM/DD/HH/...``)
    or the export tasks' ``destinationPrefix`` (``<prefix>/<task>/<stream>/000000.gz``).
    ``record_format`` tells how Firehose wrote the records: ``envelopes_gzip`` (its default:
    concatenated gzip subscription envelopes), ``envelopes_json`` (decompression enabled) or
    ``messages`` (message extraction enabled; one raw message per line).
    ``max_decompressed_bytes`` bounds what one object may decompress to; a larger object is
    an ``unreadable_object`` reject.
    """

    type: Literal["s3"] = "s3"
    """Objects in S3."""
    bucket: Annotated[str, text(BUCKET_RE, "is not a valid S3 bucket name")] = Field(
        None, validate_default=True
    )
    """The bucket the objects land in."""
    layout: Annotated[str, one_of(*S3_LAYOUTS)] = Field(None, validate_default=True)
    """firehose or export: who wrote the objects."""
    prefix: Annotated[
        str, rule(lambda v: v is None or (isinstance(v, str) and not v.startswith("/")), _KEY_PREFIX)
    ] = Field(
        None, description=f"Key prefix (default: '' for firehose, '{EXPORT_DEFAULT_PREFIX}' for export)."
    )
    record_format: Annotated[str, one_of(*FIREHOSE_RECORD_FORMATS)] = "envelopes_gzip"
    """How Firehose wrote the records (firehose only)."""
    log_group: Annotated[
        str | None, text(LOG_GROUP_RE, "is not a valid CloudWatch Logs log_group name", required=False)
    ] = None
    """The log group of every event (export; record_format messages)."""
    log_stream: Annotated[
        str | None, text(_LOG_STREAM_RE, "is not a valid CloudWatch Logs log_stream name", required=False)
    ] = None
    """The log stream of every event (record_format messages)."""
    max_decompressed_bytes: Annotated[int, BeforeValidator(parse_byte_size)] = DEFAULT_MAX_DECOMPRESSED_BYTES
    """Largest decompressed object, e.g. '2GiB'."""
    # Firehose only: the delivery stream's S3 prefix with its expressions (default
    # ``<prefix>!{timestamp:yyyy/MM/dd/HH}/``), and its error output prefix (None: not loaded).
    key_template: KeyTemplate = None
    """The delivery stream's S3 prefix with its !{...} expressions (firehose)."""
    error_template: KeyTemplate = Field(None, alias="error_prefix")
    """The delivery stream's error output prefix (firehose)."""
    notifications: S3Notifications | None = None
    """S3 event notifications in SQS that trigger the listing (firehose)."""

    @classmethod
    def resolve(cls, data: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """The prefix of the layout when none is given."""
        if data.get("prefix") is None and data.get("layout") in S3_LAYOUTS:
            data["prefix"] = EXPORT_DEFAULT_PREFIX if data["layout"] == "export" else ""
        return data

    @model_validator(mode="after")
    def _keys_of_the_layout(self) -> S3Source:
        given = self.model_fields_set
        if self.layout == "export":
            if not self.prefix.strip("/"):
                raise at("prefix", "an export layout needs the tasks' destination prefix")
            for name in ("record_format", "key_template", "error_template", "notifications"):
                if name in given and getattr(self, name) is not None:
                    raise at(type(self).model_fields[name].alias or name, "only applies to layout 'firehose'")
        if not self.log_group and (self.layout == "export" or self.record_format == "messages"):
            needs = "layout 'export'" if self.layout == "export" else "record_format 'messages'"
            raise at("log_group", f"required with {needs} (the files do not name it)")
        if self.log_stream and self.record_format != "messages":
            raise at("log_stream", "only applies to record_format 'messages'")
        return self


UNROUTED_ACTIONS = ("reject", "load")


class Route(Section):
    """Events of some log groups of a Firehose stream, bound for a table of their own.

    A log group matches when it is one of ``log_groups``, starts with one of
    ``log_group_prefixes`` or fully matches ``pattern`` (a regular expression). Routes are
    tried in order; the first that matches takes the event. ``table`` defaults to
    ``<stream table>_<name>``; ``schema`` and ``parser`` as a stream's.
    """

    name: str
    """Lower-case letters, digits and _; names the route's assets."""
    table: str = ""
    """BigQuery table (default: <stream table>_<name>)."""
    schema_: TableSchema = Field(BUILTIN_SCHEMAS["seed"], alias="schema")
    """A built-in or declared schema name; with parser."""
    log_groups: LogGroups = ()
    """Log groups routed here."""
    log_group_prefixes: LogGroups = ()
    """Every log group whose name starts so."""
    pattern: Annotated[str | None, regex("{value!r} is not a regular expression ({exc})")] = None
    """A regular expression a log group must fully match."""

    resolved_keys: ClassVar[dict[str, str]] = {
        "parser": "As a stream's: resolved into the route's schema.",
    }

    @classmethod
    def resolve(cls, data: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """The table named after the stream's, the schema looked up with its parser."""
        resolve_table(data, context, lambda name: f"{context.get('table', '')}_{name}")
        return data

    @model_validator(mode="after")
    def _matches_something(self) -> Route:
        if not self.log_groups and not self.log_group_prefixes and self.pattern is None:
            raise at("", "name log_groups, log_group_prefixes or a pattern")
        return self

    @property
    def schema(self) -> TableSchema:  # type: ignore[override]
        """The route's table schema (with the route's parser)."""
        return self.schema_

    @property
    def rejects_table(self) -> str:
        """Name of the route's rejects table."""
        return f"{self.table}_rejects"

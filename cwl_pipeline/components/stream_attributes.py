"""The typed attributes of a stream Component: every key of a pipeline-file stream, with its type.

The models give ``defs.yaml`` its JSON schema (editor completion, ``dg check yaml``) and refuse
unknown keys at every level. Values are not coerced or range-checked here: they reach the
pipeline config's parser (:func:`cwl_pipeline.config.parse_config`) as written, which holds every
rule and its error message, so a stream means the same in a pipeline file and in a ``defs.yaml``.
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
from typing import Annotated, Any, Literal, TypeAlias

import dagster as dg
import jinja2
from pydantic import Field, SkipValidation, StrictBool, StrictFloat, StrictInt


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
# Types shown in the schema, checked by the pipeline config's parser (SkipValidation).
Duration: TypeAlias = Annotated[str | StrictInt | None, SkipValidation]
Count: TypeAlias = Annotated[StrictInt | None, SkipValidation]
Flag: TypeAlias = Annotated[StrictBool | None, SkipValidation]


class _Attributes(dg.Model, dg.Resolvable):
    """Attributes written as a mapping; a key left out is left to the parser's default."""

    def document(self) -> dict[str, Any]:
        """The keys written, as the pipeline config file spells them."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)


class SourceAccountAttributes(_Attributes):
    """The account (a role to assume there) and/or Region the stream's log groups live in."""

    role_arn: OptionalText = Field(None, description="A role in the log groups' account to assume.")
    region: OptionalText = Field(None, description="The log groups' Region (default: aws.region).")
    external_id: OptionalText = Field(
        None, description="role_arn's external id, as a reference ${NAME} read at run time (never a value)."
    )


class CloudWatchSourceAttributes(_Attributes):
    """Log groups polled with FilterLogEvents."""

    type: Literal["cloudwatch"] = Field("cloudwatch", description="Polled with FilterLogEvents.")
    log_groups: Names = Field(
        None, description="Log group names or ARNs, e.g. ['/aws/lambda/app'] (ARNs: in a monitoring account)."
    )
    log_group_prefixes: Names = Field(None, description="Every log group whose name starts so.")
    account: SourceAccountAttributes | None = Field(
        None, description="Read with a role in another account and/or in another Region."
    )


class NotificationsAttributes(_Attributes):
    """S3 event notifications in an SQS queue that trigger the Firehose sensor's listing."""

    queue_url: Text = Field(description="https://sqs.<region>.amazonaws.com/<account>/<queue>")
    safety_listing: Duration = Field(None, description="List at least this often (1s..1h; default 5m).")


class S3SourceAttributes(_Attributes):
    """Objects that Firehose (layout firehose) or CreateExportTask (layout export) wrote to S3."""

    type: Literal["s3"] = Field(description="Objects in S3.")
    bucket: Text = Field(description="The bucket's name.")
    layout: Literal["firehose", "export"] = Field(description="Who wrote the objects.")
    prefix: OptionalText = Field(None, description="Key prefix (export default: exportedlogs).")
    record_format: Literal["envelopes_gzip", "envelopes_json", "messages"] | None = Field(
        None, description="Firehose: what a record holds (default envelopes_gzip)."
    )
    log_group: OptionalText = Field(None, description="The log group, when the files do not name it.")
    log_stream: OptionalText = Field(None, description="record_format messages: the log stream.")
    max_decompressed_bytes: Annotated[StrictInt | str | None, SkipValidation] = Field(
        None, description="Largest decompressed object read, e.g. '2GiB'."
    )
    key_template: OptionalText = Field(None, description="Firehose custom prefix with !{...} expressions.")
    error_prefix: OptionalText = Field(None, description="Firehose error output prefix.")
    notifications: NotificationsAttributes | None = None


class ParserAttributes(_Attributes):
    """A parser with options (``regex``, ``vpc_flow``); a plain name needs none."""

    type: Literal["json", "lambda", "vpc_flow", "regex", "text"]
    pattern: OptionalText = Field(None, description="regex: the expression; named groups are fields.")
    nulls: Names = Field(None, description="regex: group values read as NULL, e.g. ['-'].")
    fields: Names = Field(None, description="vpc_flow: the custom format's fields in order.")
    format: OptionalText = Field(None, description="vpc_flow: the format string '${version} ${vpc-id} ...'.")


Parser: TypeAlias = Literal["json", "lambda", "vpc_flow", "regex", "text"] | ParserAttributes


class HistoryAttributes(_Attributes):
    """Old windows read through CreateExportTask instead of FilterLogEvents."""

    after: Duration = Field(None, description="Windows older than this are exported (at least 12h).")
    bucket: OptionalText = Field(None, description="The export tasks' bucket.")
    prefix: OptionalText = Field(None, description="The export tasks' destination prefix.")
    poll_interval: Duration = Field(None, description="How often a running export task is polled.")


class ReconcileAttributes(_Attributes):
    """The comparison of loaded rows with CloudWatch's IncomingLogEvents."""

    enabled: Flag = None
    interval: Duration = Field(None, description="How often (divides an hour or a day; at least 5m).")
    lookback: Duration = Field(None, description="How far back (1h..14d).")
    max_heal_attempts: Count = Field(None, description="Reloads of one window before it is reported (1..20).")


class LiveAttributes(_Attributes):
    """How a polling stream's open window reaches its live table."""

    path: Literal["sensor", "runs"] | None = Field(
        None, description="sensor: its own sensor appends (no run); runs: a refresh run each time."
    )
    interval: Duration = Field(None, description="sensor: how often it reads new events (5s..5m).")
    lookback: Duration = Field(None, description="sensor: event time re-read for late events (0s..1h).")


class FreshnessAttributes(_Attributes):
    """When the freshness policy warns and fails."""

    warn: Duration = None
    fail: Duration = None


class FilterAttributes(_Attributes):
    """Which events are kept."""

    pattern: OptionalText = Field(None, description="A CloudWatch filter pattern.")
    include: Names = Field(None, description="Regexes: keep only events one of them matches.")
    exclude: Names = Field(None, description="Regexes: drop events one of them matches.")


class RedactionAttributes(_Attributes):
    """One rule: exactly one of mask, hash or drop_field."""

    mask: OptionalText = Field(None, description="Regex whose matches become the replacement.")
    replacement: OptionalText = Field(None, description="mask: the replacement (default <redacted>).")
    hash: OptionalText = Field(None, description="Regex whose matches become a salted hash.")
    salt_env: OptionalText = Field(None, description="hash: the environment variable holding the salt.")
    drop_field: OptionalText = Field(
        None, description="A dotted field of JSON messages to remove; a step may enter a string holding JSON."
    )


class RouteAttributes(_Attributes):
    """Firehose: log groups routed to a table of their own."""

    name: Text
    table: OptionalText = None
    # `schema` is a pydantic BaseModel attribute: the field has another name and the key's alias.
    table_schema: OptionalText = Field(None, alias="schema")
    parser: Parser | None = None
    log_groups: Names = None
    log_group_prefixes: Names = None
    pattern: OptionalText = Field(None, description="Regex on the log group name.")


class StreamTuningAttributes(_Attributes):
    """The keys a stream may take from the settings' ``defaults``."""

    # An unquoted YAML time arrives as a datetime: the parser takes both.
    start: Annotated[str | None, SkipValidation] = Field(
        None, description="First window, e.g. '2026-11-01T00:00:00Z', aligned to the window."
    )
    window: Duration = Field(None, description="Window length dividing an hour or a day, e.g. '15m'.")
    settle_lag: Duration = Field(None, description="Wait after a window closes before its final load.")
    refresh_interval: Duration = Field(
        None, description="Window sensor tick; live.path runs: refresh of the open window, e.g. '1m'."
    )
    max_windows_per_run: Count = Field(None, description="Windows one catch-up run loads (1 to 4000).")
    initial_lookback: Duration = Field(None, description="How far back a new stream starts, e.g. '1d'.")
    sweeps: Annotated[list[str | StrictInt] | None, SkipValidation] = Field(
        None, description="Horizons of the late-event sweeps, e.g. ['15m', '6h']."
    )
    freshness: FreshnessAttributes | None = None
    max_reject_rate: Annotated[StrictFloat | StrictInt | None, SkipValidation] = Field(
        None, description="Share of rejected lines that fails the check (0 to 1)."
    )
    backfill_windows_per_run: Count = Field(None, description="Windows one backfill run loads.")
    windows_per_replace: Count = Field(None, description="Windows one replacement step writes.")
    chunk_events: Count = Field(
        None, description="Events per staged chunk (one load job); bounds a load's memory (at least 1000)."
    )
    decode_workers: Count = Field(
        None, description="Firehose: processes decoding a read's objects (0: one per CPU; default 1)."
    )
    reconcile: ReconcileAttributes | None = None
    live: LiveAttributes | None = None


class StreamAttributes(StreamTuningAttributes):
    """Every key of a stream of the pipeline config file."""

    name: Text = Field(description="Stream name: lower-case letters, digits and underscores.")
    source: CloudWatchSourceAttributes | S3SourceAttributes = Field(
        description="type cloudwatch (log_groups, log_group_prefixes) or s3 (bucket, layout, ...)."
    )
    table: OptionalText = Field(None, description="BigQuery table; default: the stream name.")
    table_schema: OptionalText = Field(None, alias="schema", description="Table schema name (default: seed).")
    parser: Parser | None = None
    description: OptionalText = None
    owners: Names = None
    asset_key_prefix: Names = Field(None, description="Put before the table name in its asset keys.")
    history: HistoryAttributes | None = None
    routes: list[RouteAttributes] | None = None
    unrouted: Literal["reject", "load"] | None = Field(None, description="Events of no route.")
    raw: Flag = Field(None, description="Keep every event as read in a raw table too.")
    raw_table: OptionalText = Field(None, description="The raw table's name (default <table>_raw).")
    filter: FilterAttributes | None = None
    redact: list[RedactionAttributes] | None = None

"""The declarative pipeline config: streams, schemas and connection settings.

The file is YAML. Its path comes from ``CWL_PIPELINE_CONFIG``, which must be set: the bundled
``pipeline.local.yaml`` (local AWS and BigQuery emulator) is used only when chosen explicitly
(``cwl-pipeline dev`` and the tests do), so a deployment that forgot the variable fails on
load instead of talking to 127.0.0.1. String values may refer to environment variables as
``${NAME}`` or ``${NAME:-default}``. Everything is validated on load and every mistake is
reported with the key it concerns. Every default lives in one place: the dataclasses below
(the parser reads its defaults from them).

This module is pure: it imports neither dagster nor any cloud client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cwl_pipeline.config_accounts import ROLE_ARN, ROLE_ARN_RE, SourceAccount
from cwl_pipeline.config_model import (
    ConfigError,
    Duration,
    Flag,
    OptionalText,
    Section,
    at,
    between,
    duration_of,
    env_reference,
    identifier,
    integer,
    list_of,
    number,
    one_of,
    resolve_table,
    rule,
    text,
    validate_section,
)
from cwl_pipeline.config_rules import FilterSettings, RedactionRule, check_rules_apply
from cwl_pipeline.core.event_rules import EventRules
from cwl_pipeline.core.log_group_arns import is_arn, parse_log_group_arn
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, SchemaError, TableSchema
from cwl_pipeline.firehose.source import BUCKET_RE, UNROUTED_ACTIONS, Route, S3Source
from cwl_pipeline.firehose.source import EXPORT_DEFAULT_PREFIX as EXPORT_DEFAULT_PREFIX  # re-exported
from cwl_pipeline.firehose.source import S3Notifications as S3Notifications  # re-exported
from cwl_pipeline.polling.source import CloudWatchSource

CONFIG_ENV_VAR = "CWL_PIPELINE_CONFIG"
BUNDLED_CONFIG = Path(__file__).with_name("pipeline.local.yaml")
"""The local stack's config (local AWS and the BigQuery emulator); never a silent default."""

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_CHUNK_EVENTS = 250_000
"""Events decoded and normalized together, then staged with one load job: what bounds a
load's memory, whatever the size of its windows."""
MIN_CHUNK_EVENTS = 1_000
"""The smallest ``chunk_events`` a config file may set: each chunk is a load job, and BigQuery
allows 1,500 a day per table and 100,000 per project."""
CHUNK_EVENTS_ENV = "CWL_PIPELINE_CHUNK_EVENTS"
"""Overrides every stream's ``chunk_events`` (any positive number: 1 stages each event apart)."""
DECODE_WORKERS_ENV = "CWL_PIPELINE_DECODE_WORKERS"
"""Overrides every stream's ``decode_workers``."""

# Windows must tile an hour or a day exactly so that partitions line up with cron ticks.
_ALLOWED_WINDOW_SECONDS = {m * 60 for m in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)} | {
    h * 3600 for h in (2, 3, 4, 6, 8, 12, 24)
}


def parse_duration(value: Any, where: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h`` or ``1d`` (or a number of seconds) into a timedelta."""
    try:
        return duration_of(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _window(shortest: str) -> BeforeValidator:
    """A window length that tiles an hour or a day, at least ``shortest``."""
    problem = f"{{value!r}} must divide an hour ({shortest}..60m) or a day (2h..24h)"
    low = duration_of(shortest)
    return rule(lambda d: d.total_seconds() in _ALLOWED_WINDOW_SECONDS and d >= low, problem, duration_of)


_SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


class AwsSettings(Section):
    """How to reach AWS (CloudWatch Logs, S3)."""

    region: Annotated[str, BeforeValidator(lambda v: v or "us-east-1")] = "us-east-1"
    """Region of the log groups and buckets."""
    endpoint_url: OptionalText = None
    """Another endpoint, e.g. a local stack."""
    profile: OptionalText = None
    """A named profile of the AWS config files."""
    role_arn: Annotated[str | None, text(ROLE_ARN_RE, ROLE_ARN, required=False)] = None
    """A role to assume for every AWS call."""
    max_attempts: Annotated[int, integer(1, 20)] = 8
    """botocore's attempts per call (1..20)."""
    retry_mode: Annotated[str, one_of("standard", "adaptive", "legacy")] = "adaptive"
    """botocore's retry mode."""
    # FilterLogEvents requests per second one process may send (the account allows 5 per Region).
    filter_log_events_per_second: Annotated[
        float, number(lambda v: 0 < v <= 100, "a number above 0 and at most 100")
    ] = 2.0
    """This deployment's share of the account's FilterLogEvents quota (5/s)."""
    role_session_name: Annotated[
        str, rule(_SESSION_NAME_RE, "2-64 letters, digits and +=,.@_-", empty="cwl-pipeline")
    ] = "cwl-pipeline"
    """The assumed role's session name."""
    # Name of the environment variable holding the role's external id (never the value: the
    # resource passes it to Dagster as an EnvVar, so the UI shows the name only).
    external_id_env: Annotated[str | None, env_reference("CWL_AWS_EXTERNAL_ID")] = Field(
        None, alias="external_id"
    )
    """role_arn's external id, as a reference ${NAME} read at run time (never a value)."""

    @model_validator(mode="after")
    def _role_options(self) -> AwsSettings:
        if (self.external_id_env or "role_session_name" in self.model_fields_set) and not self.role_arn:
            raise at("", "external_id and role_session_name apply only with role_arn")
        return self


GCP_CREDENTIAL_TYPES = ("default", "external_account")
AWS_CREDENTIAL_READERS = ("boto3", "google-auth")
_KEY_FILE_TYPES = ("service_account", "service_account_key", "authorized_user")


def _credential_type(value: Any) -> str:
    kind = value or "default"
    if kind in _KEY_FILE_TYPES:
        raise ValueError(
            f"{kind!r} is refused: the pipeline never uses key files (a long-lived "
            "secret to store, rotate and leak). Use 'external_account' (Workload Identity "
            "Federation from AWS, see docs/security.md) or 'default' (Application Default "
            "Credentials: attached service account, or gcloud auth application-default login)"
        )
    if kind not in GCP_CREDENTIAL_TYPES:
        raise ValueError(f"{kind!r} must be one of {list(GCP_CREDENTIAL_TYPES)}")
    return kind


class GcpCredentials(Section):
    """How the pipeline authenticates to Google Cloud; never a service-account key.

    ``default``: Application Default Credentials. ``external_account``: Workload Identity
    Federation from AWS with the credential configuration in ``config_file`` (it holds no
    secret); ``aws_credentials`` says who reads the AWS credentials that are exchanged:
    ``boto3`` (its whole chain: ECS/Fargate container credentials, EKS IRSA, assumed roles,
    profiles) or ``google-auth`` (its own reader: environment variables or EC2 metadata only).
    """

    type: Annotated[str, BeforeValidator(_credential_type)] = "default"
    """default (Application Default Credentials) or external_account."""
    config_file: Annotated[Path | None, BeforeValidator(lambda v: v or None)] = None
    """external_account: the credential configuration."""
    aws_credentials: Annotated[str, one_of(*AWS_CREDENTIAL_READERS, empty="boto3")] = "boto3"
    """external_account: who reads the AWS credentials it exchanges."""

    @model_validator(mode="after")
    def _config_file_with_its_type(self) -> GcpCredentials:
        if self.type == "external_account" and self.config_file is None:
            raise at(
                "config_file",
                "required with type 'external_account' (the file written by "
                "gcloud iam workload-identity-pools create-cred-config --aws)",
            )
        if self.type == "default" and self.config_file is not None:
            raise at("config_file", "only applies to type 'external_account'")
        return self


class BigQuerySettings(Section):
    """Where tables live in BigQuery."""

    project: Annotated[
        str, rule(read=lambda v: identifier("project", v, hint=" (a Google Cloud project id)"))
    ]
    """The Google Cloud project."""
    dataset: Annotated[str, rule(read=lambda v: identifier("dataset", v))]
    """The dataset of the tables."""
    location: Annotated[str, BeforeValidator(lambda v: v or "US")] = "US"
    """The dataset's location."""
    api_endpoint: OptionalText = None
    """Another endpoint, e.g. a local emulator."""
    # The emulator's Storage Write API (gRPC host:port); real BigQuery needs none.
    storage_write_endpoint: Annotated[
        str | None, text(re.compile(r"[A-Za-z0-9.-]+:\d{1,5}"), "is not host:port", required=False)
    ] = None
    """With api_endpoint: its gRPC host:port."""
    staging_dataset: Annotated[str | None, rule(read=lambda v: identifier("dataset", v), empty=None)] = None
    """Staging tables' dataset (default: the dataset)."""
    retry_timeout: Duration = timedelta(minutes=2)
    """How long a call is retried."""
    credentials: Annotated[GcpCredentials, BeforeValidator(lambda v: v or {})] = GcpCredentials()
    """Keyless credentials: never a service-account key."""

    @model_validator(mode="after")
    def _storage_write_only_locally(self) -> BigQuerySettings:
        if self.storage_write_endpoint and not self.api_endpoint:
            raise at("storage_write_endpoint", "only with api_endpoint (a local emulator)")
        return self

    @property
    def staging(self) -> str:
        """Dataset holding short-lived staging tables (defaults to the main dataset)."""
        return self.staging_dataset or self.dataset


HISTORY_MIN_AGE = timedelta(hours=12)
"""AWS: log data can take up to 12 hours to become available for export."""
_TOO_YOUNG = (
    "{value!r} is under 12h: AWS says log data can take up to 12 hours to become available "
    "for export, so a younger window could be exported incomplete"
)
_EXPORT_PREFIX_RE = re.compile(r"[^/].*", re.DOTALL)
_EXPORT_PREFIX = (
    "{value!r} must be a non-empty key prefix without a leading '/' (the export tasks' destination prefix)"
)


class HistorySource(Section):
    """How a polling stream reads its old windows in a run launched by hand or a backfill.

    Windows that ended more than ``after`` ago are read through CreateExportTask into
    ``s3://bucket/prefix/...`` (one task per log group and replace step, one active task per
    account); younger windows through FilterLogEvents. The config refuses an ``after`` under
    12 hours (:data:`HISTORY_MIN_AGE`); code may build a shorter one (tests).
    """

    bucket: Annotated[str, text(BUCKET_RE, "is not a valid S3 bucket name")]
    """The export tasks' bucket."""
    prefix: Annotated[str, rule(read=lambda v: v.strip("/")), rule(_EXPORT_PREFIX_RE, _EXPORT_PREFIX)]
    """The export tasks' destination prefix."""
    after: Annotated[timedelta, rule(lambda d: d >= HISTORY_MIN_AGE, _TOO_YOUNG, duration_of)]
    """Windows that ended longer ago than this are exported (at least 12h)."""
    poll_interval: Annotated[timedelta, rule(lambda d: d > timedelta(0), "must be positive", duration_of)] = (
        timedelta(seconds=10)
    )
    """How often a running export task is polled."""

    @model_validator(mode="before")
    @classmethod
    def _age_given(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "after" not in data:
            raise at("after", "required (windows older than this are read from an export, e.g. '1d')")
        return data


class ReconcileSettings(Section):
    """Reconciliation of a polling stream with CloudWatch's ``IncomingLogEvents`` metric.

    Every ``interval`` the stream's counts per ingestion hour of the last ``lookback`` are
    compared with CloudWatch's (one GetMetricData request); an hour still short after the final
    sweep is read again, at most ``max_heal_attempts`` times (see docs/reconciliation.md).
    """

    enabled: Flag = True
    """Compare at all (off with a filter)."""
    interval: Annotated[timedelta, _window("5m")] = timedelta(hours=1)
    """How often (divides an hour or a day; at least 5m)."""
    lookback: Annotated[
        timedelta, between(timedelta(hours=1), timedelta(days=14), "CloudWatch accepts events 14 days old")
    ] = timedelta(hours=24)
    """How far back (1h..14d)."""
    max_heal_attempts: Annotated[int, integer(1, 20)] = 3
    """Reloads of one hour before it is reported (1..20)."""


class LiveSettings(Section):
    """How a polling stream's still-open window reaches ``<table>_live`` (docs/latency.md).

    ``path: sensor``: the stream's ``<stream>_live`` sensor reads the newest events itself every
    ``interval`` and appends them, launching no run; it re-reads the last ``lookback`` of event
    time, so an event that arrives up to that late still shows live (later ones show when
    their window settles). ``path: runs``: the window sensor launches a refresh run of the open
    window every ``refresh_interval`` (the earlier design, kept for comparison).
    """

    path: Annotated[str, one_of("sensor", "runs")] = "sensor"
    """sensor: its own sensor appends (no run); runs: a refresh run each time."""
    # The daemon evaluates a sensor at most every ~5 s; the sensor timeout is 60 s.
    interval: Annotated[timedelta, between(timedelta(seconds=5), timedelta(minutes=5))] = timedelta(seconds=5)
    """sensor: how often it reads new events (5s..5m)."""
    lookback: Annotated[timedelta, between(timedelta(0), timedelta(hours=1))] = timedelta(minutes=2)
    """sensor: event time re-read for late events (0s..1h)."""


CONFIG_KEYS = {"aws", "bigquery", "defaults", "schemas", "streams"}
_ASSET_KEY_PART_RE = re.compile(r"[A-Za-z0-9_]{1,128}")


class Freshness(Section):
    """When the stream's tables count as late (default: the window closed and settled, plus 5
    or 15 minutes)."""

    warn: Duration | None = None
    """Warn after this long without a new window."""
    fail: Duration | None = None
    """Fail after this long without a new window."""


class Tuning:
    """Marks a stream key (``Annotated[..., Tuning]``) the ``defaults`` section may set for every stream."""


def _source_type(value: Any) -> str:
    kind = value.get("type", "cloudwatch") if isinstance(value, Mapping) else getattr(value, "type", None)
    return f"tag:{kind}"


def _known_source_type(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get("type", "cloudwatch") not in ("cloudwatch", "s3"):
        raise at("type", f"{value['type']!r} is not supported (use 'cloudwatch' or 's3')")
    return value


Source = Annotated[
    Annotated[CloudWatchSource, Tag("tag:cloudwatch")] | Annotated[S3Source, Tag("tag:s3")],
    Discriminator(_source_type),
    BeforeValidator(_known_source_type),
]

_CHUNK_EVENTS_MEANING = (
    "events per staged chunk, each staged with one load job, and BigQuery allows "
    f"100,000 a day per project; default {DEFAULT_CHUNK_EVENTS:,}"
)
_DECODE_WORKERS_MEANING = (
    "processes decoding an S3 read's objects, 0: one per CPU; default 1, the run's own process"
)
# Keys a stream applies only with some sources, when the stream itself sets them (not defaults).
_POLLING_ONLY = ("history", "reconcile", "live")


class StreamConfig(Section):
    """One stream: a source, how it is cut into windows, and where it lands.

    The keys of a stream in the pipeline file, with their types, defaults and ranges. The keys
    ``schema``/``parser`` and ``raw`` are kept resolved (``schema``, ``raw_table``); ``rules``
    is what the pipeline applies of ``filter`` and ``redact``.
    """

    name: str
    """Lower-case letters, digits and _; names the assets, checks and sensors."""
    source: Source
    """Where the events come from: cloudwatch (polling) or s3."""
    table: str = ""
    """BigQuery table (default: the name)."""
    schema_: TableSchema = Field(BUILTIN_SCHEMAS["seed"], alias="schema")
    """A built-in or declared schema name; with parser."""
    window: Annotated[timedelta, _window("1m"), Tuning] = timedelta(minutes=15)
    """Window length; divides an hour or a day."""
    settle_lag: Annotated[Duration, Tuning] = timedelta(minutes=2)
    """Wait after a window closes before its final load."""
    start: Annotated[datetime, Tuning] = Field(None, validate_default=True)
    """First window to load, aligned to the window."""
    refresh_interval: Annotated[Duration, Tuning] = timedelta(minutes=1)
    """Refresh of the open window (live.path runs)."""
    max_windows_per_run: Annotated[int, integer(1, 4000), Tuning] = 96
    """Windows one sensor run loads."""
    initial_lookback: Annotated[Duration, Tuning] = timedelta(days=1)
    """How far back a new stream's sensor starts."""
    sweeps: Annotated[
        tuple[Duration, ...],
        list_of(lambda _: True, "must be a list of durations, e.g. ['15m', '6h']"),
        Tuning,
    ] = (timedelta(minutes=15), timedelta(hours=6))
    """Late-data sweeps after a window closes."""
    freshness: Annotated[Freshness, Tuning] = Freshness()
    """When the tables count as late."""
    max_reject_rate: Annotated[
        float, number(lambda v: 0 <= v <= 1, "must be a number from 0 to 1"), Tuning
    ] = 0.05
    """The rejects check fails above this share of a load's events."""
    backfill_windows_per_run: Annotated[int, integer(1), Tuning] = 672
    """Windows one backfill run loads."""
    windows_per_replace: Annotated[int, integer(1), Tuning] = 96
    """Windows one replace step writes."""
    # Events per staged chunk (one load job each), and the processes decoding an S3 read's
    # objects (0: one per CPU; 1: in the run's own process). Both size a load's memory and CPU.
    chunk_events: Annotated[int, integer(MIN_CHUNK_EVENTS, meaning=_CHUNK_EVENTS_MEANING), Tuning] = Field(
        DEFAULT_CHUNK_EVENTS, description=f"Events per staged chunk (${CHUNK_EVENTS_ENV} overrides)."
    )
    decode_workers: Annotated[int, integer(0, meaning=_DECODE_WORKERS_MEANING), Tuning] = Field(
        1,
        description=f"Processes decoding a Firehose read (0: one per CPU; ${DECODE_WORKERS_ENV} overrides).",
    )
    description: str = ""
    """What these logs are."""
    owners: Annotated[
        tuple[str, ...],
        list_of(lambda o: isinstance(o, str), "must be a list of e-mail addresses or team:names"),
    ] = ()
    """E-mail addresses or team:names."""
    history: HistorySource | None = None
    """Old windows read through CreateExportTask (polling)."""
    reconcile: Annotated[ReconcileSettings, Tuning] = ReconcileSettings()
    """Comparison with CloudWatch's IncomingLogEvents (polling)."""
    live: Annotated[LiveSettings, Tuning] = LiveSettings()
    """How the open window reaches <table>_live (polling)."""
    # Firehose only: log groups routed to tables of their own; events of no route go to the
    # stream's own tables, as rejects (``unrouted: reject``) or rows (``unrouted: load``).
    routes: tuple[Route, ...] = ()
    """Log groups routed to tables of their own (firehose)."""
    unrouted: Annotated[str, one_of(*UNROUTED_ACTIONS)] = "reject"
    """Events of no route: reject, or load into the stream's table."""
    raw_table: str | None = None
    """The raw layer's table (raw: true; default <table>_raw)."""
    filter: FilterSettings = FilterSettings()
    """Which events are kept."""
    redact: tuple[RedactionRule, ...] = ()
    """Rules applied to every message before it is written: mask, hash, drop_field."""
    asset_key_prefix: Annotated[
        tuple[str, ...],
        list_of(
            _ASSET_KEY_PART_RE,
            "{value!r} must be a list of names (letters, digits and underscores), e.g. ['logs']",
        ),
    ] = ()
    """Put before the table name in each table's asset key, e.g. ['logs']."""

    resolved_keys: ClassVar[dict[str, str]] = {
        "parser": "json (default), lambda, vpc_flow, regex, text, or a mapping with options; resolved "
        "into the schema.",
        "raw": "Keep every event as read in a raw table too (<table>_raw, or raw_table).",
    }

    @classmethod
    def resolve(cls, data: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults merged under the stream's keys, its table, schema and raw table resolved,
        and the keys that apply only to some sources checked against its source."""
        explicit = set(data)
        data = {**context.get("defaults", {}), **data}
        # routes' tables are named after it
        context["table"] = table = resolve_table(data, context, lambda name: name, ", starting with a letter")
        data["raw_table"] = _raw_table(data, table)
        data.pop("raw", None)
        source = data.get("source")
        source_type = source.get("type", "cloudwatch") if isinstance(source, Mapping) else None
        layout = source.get("layout") if isinstance(source, Mapping) and source_type == "s3" else None
        for key in _POLLING_ONLY:
            if key in explicit and data.get(key) is not None and source_type != "cloudwatch":
                raise at(key, "only applies to a polling stream (source type cloudwatch)")
        if "decode_workers" in explicit and layout != "firehose":
            raise at("decode_workers", "only applies to a Firehose stream (source layout firehose)")
        if ("routes" in explicit or "unrouted" in explicit) and layout != "firehose":
            raise at("routes", "only applies to a Firehose stream (source layout firehose)")
        if source_type == "cloudwatch" and _filters(data.get("filter")):
            # IncomingLogEvents counts every event, filtered or not: the counts could never match.
            reconcile = data.get("reconcile") or {}
            if isinstance(reconcile, Mapping) and reconcile.get("enabled") is True:
                raise at(
                    "reconcile",
                    "a stream with a filter cannot reconcile with IncomingLogEvents "
                    "(CloudWatch counts the events the filter drops); set reconcile.enabled: false",
                )
            data["reconcile"] = {**(reconcile if isinstance(reconcile, Mapping) else {}), "enabled": False}
        return data

    @field_validator("start", mode="before")
    @classmethod
    def _aligned_start(cls, value: Any, info: ValidationInfo) -> datetime:
        if value is None:
            raise ValueError("required (first window to load, e.g. '2026-11-01T00:00:00Z')")
        if isinstance(value, datetime):
            start = value
        else:
            try:
                start = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        window = info.data.get("window")
        if window and int(start.timestamp()) % int(window.total_seconds()):
            raise ValueError(f"{value!r} is not aligned to the {window} window")
        return start

    @model_validator(mode="after")
    def _rules_between_keys(self) -> StreamConfig:
        if any(horizon <= self.settle_lag for horizon in self.sweeps):
            raise at("sweeps", "every sweep horizon must be longer than settle_lag")
        if self.freshness_warn > self.freshness_fail:
            raise at("freshness", "warn must not be longer than fail")
        _check_partitions_per_job(self)
        source = self.source
        if self.history is not None and isinstance(source, CloudWatchSource):
            if source.account is not None:
                raise at(
                    "history",
                    "not supported with source.account: the export tasks would run in "
                    "the log groups' account and write to a bucket it may write to; read these windows "
                    "through FilterLogEvents",
                )
            if any(is_arn(group) for group in source.log_groups):
                raise at(
                    "history",
                    "CreateExportTask exports log groups of the account it is called in, "
                    "never one named by ARN; read the group from its own account (source.account.role_arn)",
                )
        if self.raw_table in (self.table, self.rejects_table, f"{self.table}_live", f"{self.table}_recent"):
            raise at("raw_table", f"{self.raw_table!r} is one of the stream's other tables")
        self._check_routes()
        check_rules_apply(self.rules, [self.schema.parser, *(route.schema.parser for route in self.routes)])
        return self

    def _check_routes(self) -> None:
        tables = {self.table, self.rejects_table}
        for route in self.routes:
            if route.table in tables or route.rejects_table in tables:
                raise at(
                    f"routes.{route.name}.table",
                    f"{route.table!r} is already a table of stream or another route",
                )
            tables |= {route.table, route.rejects_table}
        if len({r.name for r in self.routes}) != len(self.routes):
            raise at("routes", "route names must be unique")
        if self.routes and self.raw_table is not None:
            raise at("raw_table", "not supported with routes (each route's rows are its own)")

    @property
    def schema(self) -> TableSchema:  # type: ignore[override]
        """The stream's table schema (with the stream's parser)."""
        return self.schema_

    @cached_property
    def rules(self) -> EventRules:
        """The stream's filter and redaction rules, applied before anything is written."""
        return EventRules(self.filter.message_filter(), tuple(r.redaction() for r in self.redact))

    @property
    def freshness_warn(self) -> timedelta:
        """Warn after this long without a new window."""
        return self.freshness.warn or default_freshness(self.window, self.settle_lag)[0]

    @property
    def freshness_fail(self) -> timedelta:
        """Fail after this long without a new window."""
        return self.freshness.fail or default_freshness(self.window, self.settle_lag)[1]

    @property
    def source_account(self) -> SourceAccount | None:
        """The role and/or Region a polling stream reads its log groups with (None: the
        pipeline's own identity and Region)."""
        return self.source.account if isinstance(self.source, CloudWatchSource) else None

    @property
    def rejects_table(self) -> str:
        """Name of the rejects table kept beside the events table."""
        return f"{self.table}_rejects"

    @property
    def window_minutes(self) -> int:
        """Window length in whole minutes."""
        return int(self.window.total_seconds() // 60)


STREAM_TUNING_KEYS = {key for key, item in StreamConfig.model_fields.items() if Tuning in item.metadata}
"""The stream keys the ``defaults`` section may set for every stream."""


def default_freshness(window: timedelta, settle_lag: timedelta) -> tuple[timedelta, timedelta]:
    """A stream's default freshness (warn, fail): its window closes and settles, plus 5 or 15 minutes."""
    settled = window + settle_lag
    return settled + timedelta(minutes=5), settled + timedelta(minutes=15)


def default_of(cls: type[Section], name: str) -> Any:
    """The default of key ``name`` of the config section ``cls`` (the one place it is written)."""
    item = cls.model_fields[name]
    if item.is_required():
        raise KeyError(f"{cls.__name__}.{name} has no default")
    return item.get_default(call_default_factory=True)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole validated config."""

    aws: AwsSettings
    bigquery: BigQuerySettings
    streams: tuple[StreamConfig, ...]
    schemas: Mapping[str, TableSchema] = field(default_factory=dict)
    path: Path | None = None

    def stream(self, name: str) -> StreamConfig:
        """The stream called ``name``."""
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file in effect: ``$CWL_PIPELINE_CONFIG``.

    Raises:
        ConfigError: the variable is not set (the message says how to set it).
    """
    value = (os.environ if env is None else env).get(CONFIG_ENV_VAR)
    if not value:
        raise ConfigError(
            f"{CONFIG_ENV_VAR} is not set: no pipeline config to load. Either set {CONFIG_ENV_VAR} "
            "to your pipeline config file (see docs/configuration.md), or, for the local stack "
            f"(local AWS and BigQuery emulator), run `cwl-pipeline dev` or set "
            f"{CONFIG_ENV_VAR}={BUNDLED_CONFIG}"
        )
    return Path(value)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Read and validate a pipeline config file (by default the one ``$CWL_PIPELINE_CONFIG`` names).

    ``env`` replaces ``os.environ`` for ``${NAME}`` references and ``CWL_PIPELINE_CONFIG``.

    Raises:
        ConfigError: no path and ``CWL_PIPELINE_CONFIG`` unset, the file is missing, is not
            YAML, or any value is invalid.
    """
    env = os.environ if env is None else env
    path = Path(path) if path is not None else config_path(env)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    substituted: dict[str, str] = {}
    try:
        config = parse_config(_expand_env(raw, env, substituted), env)
    except ConfigError as exc:
        # A value read from the environment may be a secret: name the variable instead.
        raise ConfigError(f"{path}: {scrub_substitutions(str(exc), substituted)}") from None
    return replace(config, path=path)


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Validate an already-parsed config document (see :func:`load_config`).

    ``env`` (default: the process environment) resolves the salts of hash redaction rules and
    holds the overrides of every stream's ``chunk_events`` and ``decode_workers``
    (``$CWL_PIPELINE_CHUNK_EVENTS``, ``$CWL_PIPELINE_DECODE_WORKERS``).
    """
    env = os.environ if env is None else env
    top = _mapping(raw, "config", CONFIG_KEYS)
    aws, bigquery = parse_connection_settings(top)
    schemas: dict[str, TableSchema] = dict(BUILTIN_SCHEMAS)
    for name, spec in _mapping(top.get("schemas", {}), "schemas").items():
        try:
            if name in BUILTIN_SCHEMAS:
                raise SchemaError("the name is taken by a built-in schema")
            schemas[name] = TableSchema.from_dict(name, spec)
        except SchemaError as exc:
            raise ConfigError(f"schemas.{name}: {exc}") from None
    defaults = _mapping(top.get("defaults", {}), "defaults", STREAM_TUNING_KEYS)
    raw_streams = top.get("streams")
    if not isinstance(raw_streams, list) or not raw_streams:
        raise ConfigError("streams: must be a non-empty list")
    context = {"defaults": defaults, "schemas": schemas, "env": env}
    streams = validate_section(tuple[StreamConfig, ...], raw_streams, "streams", **context)
    # The variables hold for every stream, whatever its keys say and below their minimums.
    overrides = load_size_overrides(env)
    streams = tuple(stream.model_copy(update=overrides) for stream in streams)
    for attr in ("name", "table"):
        values = [getattr(s, attr) for s in streams]
        if dupes := sorted({v for v in values if values.count(v) > 1}):
            raise ConfigError(f"streams: {attr} {dupes} used by more than one stream")
    _check_history_prefixes(streams)
    _check_log_group_regions(streams, aws)
    return PipelineConfig(aws=aws, bigquery=bigquery, streams=streams, schemas=schemas)


def load_size_overrides(env: Mapping[str, str]) -> dict[str, int]:
    """``chunk_events`` and ``decode_workers`` of every stream, from the environment when set."""
    overrides: dict[str, int] = {}
    for key, variable, low, meaning in (
        ("chunk_events", CHUNK_EVENTS_ENV, 1, "events per staged chunk, for every stream"),
        ("decode_workers", DECODE_WORKERS_ENV, 0, "decoding processes for every stream, 0: one per CPU"),
    ):
        if value := env.get(variable, "").strip():
            try:
                number = int(value) if value.isascii() and value.isdigit() else value
                overrides[key] = integer(low, meaning=meaning).func(number)
            except ValueError as exc:
                raise ConfigError(f"{variable}: {exc}") from None
    return overrides


def parse_connection_settings(raw: Any) -> tuple[AwsSettings, BigQuerySettings]:
    """Validate the ``aws`` and ``bigquery`` sections of a config document on their own.

    The same rules as :func:`parse_config`; used where the connection settings are declared
    apart from the streams (the ``CloudWatchLogsToBigQuerySettings`` component).
    """
    top = _mapping(raw, "config")
    return (
        validate_section(AwsSettings, top.get("aws"), "aws"),
        validate_section(BigQuerySettings, _mapping(top.get("bigquery"), "bigquery"), "bigquery"),
    )


def _check_log_group_regions(streams: tuple[StreamConfig, ...], aws: AwsSettings) -> None:
    """A log group named by ARN lives in the Region the stream reads in: CloudWatch
    cross-account observability links accounts within one Region."""
    for stream in streams:
        if isinstance(source := stream.source, CloudWatchSource):
            region = (source.account.region if source.account else None) or aws.region
            for group in source.log_groups:
                if is_arn(group) and (group_region := parse_log_group_arn(group).region) != region:
                    raise ConfigError(
                        f"streams.{stream.name}.source.log_groups: {group!r} is in Region {group_region}, "
                        f"the stream reads in {region} (set source.account.region)"
                    )


def _check_history_prefixes(streams: tuple[StreamConfig, ...]) -> None:
    """A history export prefix must not overlap another stream's S3 prefix (whose sensor
    would load the history files a second time) or another history prefix."""
    taken = [
        (s.name, s.source.bucket, s.source.prefix.strip("/"))
        for s in streams
        if isinstance(s.source, S3Source)
    ]
    for stream in streams:
        if stream.history is None:
            continue
        mine = stream.history.prefix
        for name, bucket, prefix in taken:
            if bucket == stream.history.bucket and (
                not prefix or (mine + "/").startswith(prefix + "/") or (prefix + "/").startswith(mine + "/")
            ):
                raise ConfigError(
                    f"streams.{stream.name}.history.prefix: s3://{bucket}/{mine} overlaps the prefix of "
                    f"stream {name} (s3://{bucket}/{prefix}); give the history exports a prefix of their own"
                )
        taken.append((stream.name, stream.history.bucket, mine))


# BigQuery refuses a query or load job that modifies more than 4,000 partitions
# (https://cloud.google.com/bigquery/quotas#partitioned_tables). Tables are DAY-partitioned on
# the event time, so one replacement must never span more than that many days of events.
MAX_PARTITIONS_PER_JOB = 4000
# How far event times in a Firehose object can lie from the object's arrival: PutLogEvents
# accepts events up to 14 days old and 2 hours ahead, and a subscription retries delivery for
# up to 24 hours.
_FIREHOSE_EVENT_SPREAD = timedelta(days=14) + timedelta(hours=24) + timedelta(hours=2)


def partitions_per_replace(windows: int, window: timedelta, spread: timedelta = timedelta(0)) -> int:
    """Most DAY partitions one replacement of ``windows`` windows (plus ``spread``) can modify.

    A span of ``n`` days covers at most ``ceil(n) + 1`` days when it does not start at midnight.
    """
    seconds = windows * int(window.total_seconds()) + int(spread.total_seconds())  # ints: no overflow
    return -(-seconds // 86400) + 1


def _filters(document: Any) -> bool:
    """Whether a ``filter`` as written can drop anything (an invalid one is reported at its key)."""
    try:
        return FilterSettings.model_validate(document or {}).message_filter().active
    except ValueError:
        return False


def _raw_table(data: Mapping[str, Any], table: str) -> str | None:
    """The stream's raw table (``raw``, ``raw_table``), or None when it keeps none."""
    enabled = data.get("raw", False)
    if not isinstance(enabled, bool):
        raise at("raw", "must be true or false")
    name = data.get("raw_table")
    if name is None:
        return f"{table}_raw" if enabled else None
    if data.get("raw") is False:
        raise at("raw_table", "set, but raw is false")
    return identifier("table", name, key="raw_table")


def _hours_or_minutes(window: timedelta) -> str:
    minutes = int(window.total_seconds()) // 60
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _check_partitions_per_job(stream: StreamConfig) -> None:
    """Refuse a replacement size that could make BigQuery refuse the job (see above)."""
    if isinstance(stream.source, CloudWatchSource):
        # A run replaces its range in steps of windows_per_replace windows, each scoped on the
        # event time of those windows.
        spread = timedelta(0)
    elif stream.source.layout == "firehose":
        # A run replaces its range in steps of windows_per_replace windows too, each scoped on
        # the objects that arrived in them, whose events can be older (or newer) than their
        # arrival.
        spread = _FIREHOSE_EVENT_SPREAD
    else:
        return  # an export task folder is one replacement whatever these keys say
    windows, window = stream.windows_per_replace, stream.window
    partitions = partitions_per_replace(windows, window, spread)
    if partitions > MAX_PARTITIONS_PER_JOB:
        # ceil(x) + 1 <= limit  <=>  x <= limit - 1
        largest = ((MAX_PARTITIONS_PER_JOB - 1) * timedelta(days=1) - spread) // window
        raise at(
            "windows_per_replace",
            f"{windows} windows of {_hours_or_minutes(window)} can make one BigQuery job modify up to "
            f"{partitions:,} DAY partitions, over BigQuery's limit of {MAX_PARTITIONS_PER_JOB:,} "
            f"partitions modified per job; use at most {largest:,}",
        )


# Keys whose ``${NAME}`` reference is kept as is (resolved by Dagster at run time).
_ENV_REFERENCE_KEYS = {("aws", "external_id"), ("streams", "source", "account", "external_id")}


def _expand_env(
    value: Any, env: Mapping[str, str], substituted: dict[str, str], path: tuple[str, ...] = ()
) -> Any:
    if isinstance(value, str):
        if path in _ENV_REFERENCE_KEYS:
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if env.get(name):
                substituted[env[name]] = name
                return env[name]
            if default is None:
                raise ConfigError(f"environment variable {name} is not set and has no default")
            return default

        return _ENV_RE.sub(substitute, value)
    if isinstance(value, list):
        return [_expand_env(v, env, substituted, path) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, env, substituted, (*path, str(k))) for k, v in value.items()}
    return value


def scrub_substitutions(message: str, substituted: Mapping[str, str]) -> str:
    """``message`` with every value read from the environment shown as ``${NAME}``.

    Values shorter than 4 characters are left alone: they cannot be secrets worth the name,
    and replacing them would garble the message.
    """
    for value in sorted(substituted, key=len, reverse=True):
        if len(value) >= 4:
            message = message.replace(value, f"${{{substituted[value]}}}")
    return message


def _mapping(value: Any, where: str, keys: set[str] | None = None) -> Mapping[str, Any]:
    """``value``, a mapping (of only ``keys`` when given)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {type(value).__name__}")
    if keys is not None and (unknown := sorted(set(value) - keys)):
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(keys)}")
    return value

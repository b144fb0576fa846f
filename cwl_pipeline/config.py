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
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, model_validator

from cwl_pipeline.config_accounts import ROLE_ARN, ROLE_ARN_RE, SourceAccount
from cwl_pipeline.config_model import (
    ConfigError,
    Duration,
    Flag,
    Section,
    at,
    between,
    duration_of,
    env_reference,
    integer,
    one_of,
    optional,
    positive,
    text,
    validate_section,
)
from cwl_pipeline.config_rules import (
    RULE_KEYS,
    RuleConfigError,
    check_rules_apply,
    parse_event_rules,
    parse_raw_table,
)
from cwl_pipeline.core.event_rules import NO_RULES, EventRules
from cwl_pipeline.core.formats.gzip_members import DEFAULT_MAX_DECOMPRESSED_BYTES
from cwl_pipeline.core.key_layout import KeyLayout, KeyTemplateError
from cwl_pipeline.core.log_group_arns import LogGroupArnError, is_arn, parse_log_group_arn
from cwl_pipeline.core.parsers import ParserError, ParserSpec, parser_from_config
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS, PARSER_SCHEMAS, SchemaError, TableSchema
from cwl_pipeline.core.sizes import parse_byte_size
from cwl_pipeline.core.sql_identifiers import IdentifierError, check_identifier

CONFIG_ENV_VAR = "CWL_PIPELINE_CONFIG"
BUNDLED_CONFIG = Path(__file__).with_name("pipeline.local.yaml")
"""The local stack's config (local AWS and the BigQuery emulator); never a silent default."""

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STREAM_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
# Project, dataset, table and column names go through core.sql_identifiers (also used by the
# loader right before it writes SQL): a plain ASCII alphabet, safe in asset keys and SQL.
_LOG_GROUP_RE = re.compile(r"^[\.\-_/#A-Za-z0-9]{1,512}$")

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
_ALLOWED_WINDOW_SECONDS = sorted(
    {m * 60 for m in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)} | {h * 3600 for h in (2, 3, 4, 6, 8, 12, 24)}
)


def parse_duration(value: Any, where: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h`` or ``1d`` (or a number of seconds) into a timedelta."""
    try:
        return duration_of(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_QUEUE_URL_RE = re.compile(r"^https?://[^\s/]+/[^\s]+$")
_ROLE_SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_HOST_PORT_RE = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}")


def _reconcile_interval(value: Any) -> timedelta:
    interval = duration_of(value)
    if interval.total_seconds() not in _ALLOWED_WINDOW_SECONDS or interval < timedelta(minutes=5):
        raise ValueError(f"{value!r} must divide an hour (5m..60m) or a day (2h..24h)")
    return interval


Optional = Annotated[str | None, BeforeValidator(optional)]


class AwsSettings(Section):
    """How to reach AWS (CloudWatch Logs, S3)."""

    region: Annotated[str, BeforeValidator(lambda v: v or "us-east-1")] = "us-east-1"
    endpoint_url: Optional = None
    profile: Optional = None
    role_arn: Annotated[str | None, text(ROLE_ARN_RE, ROLE_ARN, required=False)] = None
    max_attempts: Annotated[int, integer(1, 20)] = 8
    retry_mode: Annotated[str, one_of("standard", "adaptive", "legacy")] = "adaptive"
    # FilterLogEvents requests per second one process may send (the account allows 5 per Region).
    filter_log_events_per_second: Annotated[float, BeforeValidator(_request_rate)] = 2.0
    role_session_name: Annotated[str, BeforeValidator(_session_name)] = "cwl-pipeline"
    # Name of the environment variable holding the role's external id (never the value: the
    # resource passes it to Dagster as an EnvVar, so the UI shows the name only).
    external_id_env: Annotated[str | None, env_reference("CWL_AWS_EXTERNAL_ID")] = Field(
        None, alias="external_id"
    )

    @model_validator(mode="after")
    def _role_options(self) -> AwsSettings:
        if (self.external_id_env or "role_session_name" in self.model_fields_set) and not self.role_arn:
            raise at("", "external_id and role_session_name apply only with role_arn")
        return self


def _request_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ValueError("a number above 0 and at most 100")
    return float(value)


def _session_name(value: Any) -> str:
    value = value or "cwl-pipeline"
    if not isinstance(value, str) or not _ROLE_SESSION_NAME_RE.fullmatch(value):
        raise ValueError("2-64 letters, digits and +=,.@_-")
    return value


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
    config_file: Annotated[Path | None, BeforeValidator(optional)] = None
    aws_credentials: Annotated[str, one_of(*AWS_CREDENTIAL_READERS, empty="boto3")] = "boto3"

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


def _identifier(kind: str, hint: str = "", required: bool = True) -> BeforeValidator:
    """A BigQuery name of ``kind`` (core.sql_identifiers: the alphabet safe in SQL and asset keys)."""

    def check(value: Any) -> Any:
        if not value and not required:
            return None
        try:
            return check_identifier(kind, value)
        except IdentifierError as exc:
            raise ValueError(f"{exc}{hint}") from None

    return BeforeValidator(check)


class BigQuerySettings(Section):
    """Where tables live in BigQuery."""

    project: Annotated[str, _identifier("project", " (a Google Cloud project id)")]
    dataset: Annotated[str, _identifier("dataset")]
    location: Annotated[str, BeforeValidator(lambda v: v or "US")] = "US"
    api_endpoint: Optional = None
    # The emulator's Storage Write API (gRPC host:port); real BigQuery needs none.
    storage_write_endpoint: Annotated[str | None, text(_HOST_PORT_RE, "is not host:port", required=False)] = (
        None
    )
    staging_dataset: Annotated[str | None, _identifier("dataset", required=False)] = None
    retry_timeout: Duration = timedelta(minutes=2)
    credentials: Annotated[GcpCredentials, BeforeValidator(lambda v: v or {})] = GcpCredentials()

    @model_validator(mode="after")
    def _storage_write_only_locally(self) -> BigQuerySettings:
        if self.storage_write_endpoint and not self.api_endpoint:
            raise at("storage_write_endpoint", "only with api_endpoint (a local emulator)")
        return self

    @property
    def staging(self) -> str:
        """Dataset holding short-lived staging tables (defaults to the main dataset)."""
        return self.staging_dataset or self.dataset


@dataclass(frozen=True)
class CloudWatchSource:
    """A polling source: log groups named exactly, and/or every group under a prefix.

    A named group may be an ARN (a monitoring account of CloudWatch cross-account observability
    reads its source accounts' groups so); ``account`` names the role and/or Region to read with
    when the groups are not in the pipeline's own account and Region.
    """

    log_groups: tuple[str, ...] = ()
    log_group_prefixes: tuple[str, ...] = ()
    account: SourceAccount | None = None


S3_LAYOUTS = ("firehose", "export")
FIREHOSE_RECORD_FORMATS = ("envelopes_gzip", "envelopes_json", "messages")
EXPORT_DEFAULT_PREFIX = "exportedlogs"  # CreateExportTask's default destinationPrefix


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
    safety_listing: Annotated[timedelta, between(timedelta(seconds=1), timedelta(hours=1))] = timedelta(
        minutes=5
    )


@dataclass(frozen=True)
class S3Source:
    """Objects delivered to S3: by a Firehose delivery stream, or by CreateExportTask.

    ``prefix`` is the delivery stream's S3 prefix (objects are ``<prefix>YYYY/MM/DD/HH/...``)
    or the export tasks' ``destinationPrefix`` (``<prefix>/<task>/<stream>/000000.gz``).
    ``record_format`` tells how Firehose wrote the records: ``envelopes_gzip`` (its default:
    concatenated gzip subscription envelopes), ``envelopes_json`` (decompression enabled) or
    ``messages`` (message extraction enabled; one raw message per line).
    ``max_decompressed_bytes`` bounds what one object may decompress to; a larger object is
    an ``unreadable_object`` reject.
    """

    bucket: str
    prefix: str
    layout: str
    record_format: str = "envelopes_gzip"
    log_group: str | None = None
    log_stream: str | None = None
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
    # Firehose only: the delivery stream's S3 prefix with its expressions (default
    # ``<prefix>!{timestamp:yyyy/MM/dd/HH}/``), and its error output prefix (None: not loaded).
    key_template: str | None = None
    error_template: str | None = None
    notifications: S3Notifications | None = None  # Firehose only


UNROUTED_ACTIONS = ("reject", "load")


@dataclass(frozen=True)
class Route:
    """Events of some log groups of a Firehose stream, bound for a table of their own.

    A log group matches when it is one of ``log_groups``, starts with one of
    ``log_group_prefixes`` or fully matches ``pattern`` (a regular expression). Routes are
    tried in order; the first that matches takes the event.
    """

    name: str
    table: str
    schema: TableSchema
    log_groups: tuple[str, ...] = ()
    log_group_prefixes: tuple[str, ...] = ()
    pattern: str | None = None

    @property
    def rejects_table(self) -> str:
        """Name of the route's rejects table."""
        return f"{self.table}_rejects"


HISTORY_READERS = ("export",)
HISTORY_MIN_AGE = timedelta(hours=12)
"""AWS: log data can take up to 12 hours to become available for export."""


def _history_age(value: Any) -> timedelta:
    after = duration_of(value)
    if after < HISTORY_MIN_AGE:
        raise ValueError(
            f"{value!r} is under 12h: AWS says log data can take up to 12 hours "
            "to become available for export, so a younger window could be exported incomplete"
        )
    return after


def _export_prefix(value: Any) -> str:
    if not isinstance(value, str) or not value.strip("/") or value.startswith("/"):
        raise ValueError(
            f"{value!r} must be a non-empty key prefix without a leading '/' "
            "(the export tasks' destination prefix)"
        )
    return value.strip("/")


class HistorySource(Section):
    """How a polling stream reads its old windows in a run launched by hand or a backfill.

    Windows that ended more than ``after`` ago are read through CreateExportTask into
    ``s3://bucket/prefix/...`` (one task per log group and replace step, one active task per
    account); younger windows through FilterLogEvents. The config refuses an ``after`` under
    12 hours (:data:`HISTORY_MIN_AGE`); code may build a shorter one (tests).
    """

    bucket: Annotated[str, text(_BUCKET_RE, "is not a valid S3 bucket name")]
    prefix: Annotated[str, BeforeValidator(_export_prefix)]
    after: Annotated[timedelta, BeforeValidator(_history_age)]
    reader: Annotated[str, one_of(*HISTORY_READERS)] = "export"
    poll_interval: Annotated[timedelta, BeforeValidator(positive)] = timedelta(seconds=10)

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
    interval: Annotated[timedelta, BeforeValidator(_reconcile_interval)] = timedelta(hours=1)
    lookback: Annotated[
        timedelta, between(timedelta(hours=1), timedelta(days=14), "CloudWatch accepts events 14 days old")
    ] = timedelta(hours=24)
    max_heal_attempts: Annotated[int, integer(1, 20)] = 3


LIVE_PATHS = ("sensor", "runs")


class LiveSettings(Section):
    """How a polling stream's still-open window reaches ``<table>_live`` (docs/latency.md).

    ``path: sensor``: the stream's ``<stream>_live`` sensor reads the newest events itself every
    ``interval`` and appends them, launching no run; it re-reads the last ``lookback`` of event
    time, so an event that arrives up to that late still shows live (later ones show when
    their window settles). ``path: runs``: the window sensor launches a refresh run of the open
    window every ``refresh_interval`` (the earlier design, kept for comparison).
    """

    path: Annotated[str, one_of(*LIVE_PATHS)] = "sensor"
    # The daemon evaluates a sensor at most every ~5 s; the sensor timeout is 60 s.
    interval: Annotated[timedelta, between(timedelta(seconds=5), timedelta(minutes=5))] = timedelta(seconds=5)
    lookback: Annotated[timedelta, between(timedelta(0), timedelta(hours=1))] = timedelta(minutes=2)


@dataclass(frozen=True)
class StreamConfig:
    """One stream: a source, how it is cut into windows, and where it lands."""

    name: str
    source: CloudWatchSource | S3Source
    table: str
    schema: TableSchema
    window: timedelta
    settle_lag: timedelta
    start: datetime
    refresh_interval: timedelta
    max_windows_per_run: int
    # Defaults depend on the window: see default_freshness().
    freshness_warn: timedelta
    freshness_fail: timedelta
    initial_lookback: timedelta = timedelta(days=1)
    sweeps: tuple[timedelta, ...] = (timedelta(minutes=15), timedelta(hours=6))
    max_reject_rate: float = 0.05
    backfill_windows_per_run: int = 672
    windows_per_replace: int = 96
    # Events per staged chunk (one load job each), and the processes decoding an S3 read's
    # objects (0: one per CPU; 1: in the run's own process). Both size a load's memory and CPU.
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    decode_workers: int = 1
    description: str = ""
    owners: tuple[str, ...] = ()
    history: HistorySource | None = None
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    live: LiveSettings = field(default_factory=LiveSettings)  # polling streams only
    # Firehose only: log groups routed to tables of their own; events of no route go to the
    # stream's own tables, as rejects (``unrouted: reject``) or rows (``unrouted: load``).
    routes: tuple[Route, ...] = ()
    unrouted: str = "reject"
    raw_table: str | None = None  # the raw layer's table, None without one
    rules: EventRules = NO_RULES  # filters and redaction, applied before anything is written
    asset_key_prefix: tuple[str, ...] = ()  # put before the table name in each table's asset key

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


def default_freshness(window: timedelta, settle_lag: timedelta) -> tuple[timedelta, timedelta]:
    """A stream's default freshness (warn, fail): its window closes and settles, plus 5 or 15 minutes."""
    settled = window + settle_lag
    return settled + timedelta(minutes=5), settled + timedelta(minutes=15)


def default_of(cls: type, name: str) -> Any:
    """The default of key ``name`` of the config section ``cls`` (the one place it is written)."""
    if issubclass(cls, Section):
        item = cls.model_fields[name]
        if item.default_factory is not None:
            return item.default_factory()  # type: ignore[call-arg]
        if item.is_required():
            raise KeyError(f"{cls.__name__}.{name} has no default")
        return item.default
    for data_field in fields(cls):
        if data_field.name == name:
            if data_field.default is not MISSING:
                return data_field.default
            if data_field.default_factory is not MISSING:
                return data_field.default_factory()
            break
    raise KeyError(f"{cls.__name__}.{name} has no default")


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
    path = Path(path) if path is not None else config_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline config ({exc.strerror or exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    substituted: dict[str, str] = {}
    try:
        config = parse_config(
            _expand_env(raw, os.environ if env is None else env, substituted),
            os.environ if env is None else env,
        )
    except ConfigError as exc:
        # A value read from the environment may be a secret: name the variable instead.
        raise ConfigError(f"{path}: {scrub_substitutions(str(exc), substituted)}") from None
    return PipelineConfig(
        aws=config.aws,
        bigquery=config.bigquery,
        streams=config.streams,
        schemas=config.schemas,
        path=path,
    )


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Validate an already-parsed config document (see :func:`load_config`).

    ``env`` (default: the process environment) resolves the salts of hash redaction rules and
    holds the overrides of every stream's ``chunk_events`` and ``decode_workers``
    (``$CWL_PIPELINE_CHUNK_EVENTS``, ``$CWL_PIPELINE_DECODE_WORKERS``).
    """
    env = os.environ if env is None else env
    top = _mapping(raw, "config")
    _only_keys(top, {"aws", "bigquery", "defaults", "schemas", "streams"}, "config")
    aws, bigquery = parse_connection_settings(top)
    schemas: dict[str, TableSchema] = dict(BUILTIN_SCHEMAS)
    for name, spec in _mapping(top.get("schemas", {}), "schemas").items():
        if name in BUILTIN_SCHEMAS:
            raise ConfigError(f"schemas.{name}: the name is taken by a built-in schema")
        try:
            schemas[name] = TableSchema.from_dict(name, spec)
        except SchemaError as exc:
            raise ConfigError(f"schemas.{name}: {exc}") from None
    defaults = _mapping(top.get("defaults", {}), "defaults")
    _only_keys(defaults, _STREAM_TUNING_KEYS, "defaults")
    raw_streams = top.get("streams")
    if not isinstance(raw_streams, list) or not raw_streams:
        raise ConfigError("streams: must be a non-empty list")
    streams = tuple(
        _parse_stream(_mapping(s, f"streams[{i}]"), i, defaults, schemas, env)
        for i, s in enumerate(raw_streams)
    )
    for attr in ("name", "table"):
        values = [getattr(s, attr) for s in streams]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"streams: {attr} {dupes} used by more than one stream")
    _check_history_prefixes(streams)
    _check_log_group_regions(streams, aws)
    return PipelineConfig(aws=aws, bigquery=bigquery, streams=streams, schemas=schemas)


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
        source = stream.source
        if not isinstance(source, CloudWatchSource):
            continue
        region = (source.account.region if source.account else None) or aws.region
        for group in source.log_groups:
            if is_arn(group) and parse_log_group_arn(group).region != region:
                raise ConfigError(
                    f"streams.{stream.name}.source.log_groups: {group!r} is in Region "
                    f"{parse_log_group_arn(group).region}, the stream reads in {region} "
                    "(set source.account.region)"
                )


def _check_history_prefixes(streams: tuple[StreamConfig, ...]) -> None:
    """A history export prefix must not overlap another stream's S3 prefix (whose sensor
    would load the history files a second time) or another history prefix."""
    taken: list[tuple[str, str, str]] = []
    for stream in streams:
        if isinstance(stream.source, S3Source):
            taken.append((stream.name, stream.source.bucket, stream.source.prefix.strip("/")))
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


_STREAM_TUNING_KEYS = {
    "window",
    "settle_lag",
    "start",
    "refresh_interval",
    "max_windows_per_run",
    "initial_lookback",
    "sweeps",
    "freshness",
    "max_reject_rate",
    "backfill_windows_per_run",
    "windows_per_replace",
    "chunk_events",
    "decode_workers",
    "reconcile",
    "live",
}
_STREAM_KEYS = _STREAM_TUNING_KEYS | {
    "name",
    "source",
    "table",
    "schema",
    "parser",
    "description",
    "owners",
    "history",
    "routes",
    "unrouted",
    "asset_key_prefix",
    *RULE_KEYS,
}
_ASSET_KEY_PART_RE = re.compile(r"[A-Za-z0-9_]{1,128}")
_FRESHNESS_KEYS = {"warn", "fail"}
_CLOUDWATCH_KEYS = {"type", "log_groups", "log_group_prefixes", "account"}


def _parse_stream(
    raw: Mapping[str, Any],
    index: int,
    defaults: Mapping[str, Any],
    schemas: Mapping[str, TableSchema],
    env: Mapping[str, str],
) -> StreamConfig:
    where = f"streams[{index}]"
    _only_keys(raw, _STREAM_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _STREAM_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where}.name: {name!r} must be lower-case letters, digits and underscores, "
            "starting with a letter"
        )
    where = f"streams.{name}"
    merged = {**defaults, **raw}

    table = raw.get("table", name)
    try:
        check_identifier("table", table)
    except IdentifierError as exc:
        raise ConfigError(f"{where}.table: {exc}") from None
    schema = _stream_schema(raw, where, schemas)

    window = parse_duration(merged.get("window", "15m"), f"{where}.window")
    if window.total_seconds() not in _ALLOWED_WINDOW_SECONDS:
        raise ConfigError(
            f"{where}.window: {merged.get('window')!r} must divide an hour (1m..60m) or a day (2h..24h)"
        )
    settle_lag = parse_duration(merged.get("settle_lag", "2m"), f"{where}.settle_lag")
    refresh = parse_duration(merged.get("refresh_interval", "1m"), f"{where}.refresh_interval")
    max_windows = merged.get("max_windows_per_run", 96)
    if not isinstance(max_windows, int) or isinstance(max_windows, bool) or not 1 <= max_windows <= 4000:
        raise ConfigError(f"{where}.max_windows_per_run: must be an integer from 1 to 4000")
    start = _parse_start(merged.get("start"), f"{where}.start", window)
    lookback = _duration(merged, "initial_lookback", where, StreamConfig)
    if "sweeps" in merged:
        raw_sweeps = merged["sweeps"]
        if not isinstance(raw_sweeps, list):
            raise ConfigError(f"{where}.sweeps: must be a list of durations, e.g. ['15m', '6h']")
        sweeps = tuple(parse_duration(v, f"{where}.sweeps[{i}]") for i, v in enumerate(raw_sweeps))
    else:
        sweeps = default_of(StreamConfig, "sweeps")
    if any(h <= settle_lag for h in sweeps):
        raise ConfigError(f"{where}.sweeps: every sweep horizon must be longer than settle_lag")
    freshness = _mapping(merged.get("freshness", {}), f"{where}.freshness")
    _only_keys(freshness, _FRESHNESS_KEYS, f"{where}.freshness")
    default_warn, default_fail = default_freshness(window, settle_lag)
    fresh_fail = _duration(freshness, "fail", f"{where}.freshness", default=default_fail)
    fresh_warn = _duration(freshness, "warn", f"{where}.freshness", default=default_warn)
    if fresh_warn > fresh_fail:
        raise ConfigError(f"{where}.freshness: warn must not be longer than fail")
    reject_rate = merged.get("max_reject_rate", default_of(StreamConfig, "max_reject_rate"))
    if isinstance(reject_rate, bool) or not isinstance(reject_rate, int | float) or not 0 <= reject_rate <= 1:
        raise ConfigError(f"{where}.max_reject_rate: must be a number from 0 to 1")
    backfill_windows = merged.get(
        "backfill_windows_per_run", default_of(StreamConfig, "backfill_windows_per_run")
    )
    if not isinstance(backfill_windows, int) or isinstance(backfill_windows, bool) or backfill_windows < 1:
        raise ConfigError(f"{where}.backfill_windows_per_run: must be a positive integer")
    replace_windows = merged.get("windows_per_replace", default_of(StreamConfig, "windows_per_replace"))
    if not isinstance(replace_windows, int) or isinstance(replace_windows, bool) or replace_windows < 1:
        raise ConfigError(f"{where}.windows_per_replace: must be a positive integer")
    chunk_events, decode_workers = _load_size(merged, where, env)
    owners = raw.get("owners", list(default_of(StreamConfig, "owners")))
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise ConfigError(f"{where}.owners: must be a list of e-mail addresses or team:names")
    source = _parse_source(raw.get("source"), f"{where}.source")
    _check_partitions_per_job(where, source, window, replace_windows, backfill_windows, max_windows)
    history = None
    if raw.get("history") is not None:
        if not isinstance(source, CloudWatchSource):
            raise ConfigError(f"{where}.history: only applies to a polling stream (source type cloudwatch)")
        history = validate_section(HistorySource, raw["history"], f"{where}.history")
        if source.account is not None:
            raise ConfigError(
                f"{where}.history: not supported with source.account: the export tasks would run in "
                "the log groups' account and write to a bucket it may write to; read these windows "
                "through FilterLogEvents"
            )
        if any(is_arn(group) for group in source.log_groups):
            raise ConfigError(
                f"{where}.history: CreateExportTask exports log groups of the account it is called in, "
                "never one named by ARN; read the group from its own account (source.account.role_arn)"
            )
    if "decode_workers" in raw and not (isinstance(source, S3Source) and source.layout == "firehose"):
        raise ConfigError(
            f"{where}.decode_workers: only applies to a Firehose stream (source layout firehose)"
        )
    if "reconcile" in raw and not isinstance(source, CloudWatchSource):
        raise ConfigError(f"{where}.reconcile: only applies to a polling (cloudwatch) source")
    try:
        rules = parse_event_rules(raw, where, env)
        raw_table = parse_raw_table(raw, where, table)
    except RuleConfigError as exc:
        raise ConfigError(str(exc)) from None
    if raw_table is not None and raw_table in (table, f"{table}_rejects", f"{table}_live", f"{table}_recent"):
        raise ConfigError(f"{where}.raw_table: {raw_table!r} is one of the stream's other tables")
    reconcile_raw = merged.get("reconcile", {})
    if rules.filter.active and isinstance(source, CloudWatchSource):
        # IncomingLogEvents counts every event, filtered or not: the counts could never match.
        if isinstance(reconcile_raw, Mapping) and reconcile_raw.get("enabled") is True:
            raise ConfigError(
                f"{where}.reconcile: a stream with a filter cannot reconcile with IncomingLogEvents "
                "(CloudWatch counts the events the filter drops); set reconcile.enabled: false"
            )
        reconcile_raw = {**_mapping(reconcile_raw, f"{where}.reconcile"), "enabled": False}
    reconcile = validate_section(ReconcileSettings, reconcile_raw, f"{where}.reconcile")
    if "live" in raw and not isinstance(source, CloudWatchSource):
        raise ConfigError(f"{where}.live: only applies to a polling (cloudwatch) source")
    live = validate_section(LiveSettings, merged.get("live"), f"{where}.live")
    routes, unrouted = _parse_routes(raw, where, source, table, schemas)
    key_prefix = raw.get("asset_key_prefix", [])
    if not isinstance(key_prefix, list) or not all(
        isinstance(part, str) and _ASSET_KEY_PART_RE.fullmatch(part) for part in key_prefix
    ):
        raise ConfigError(
            f"{where}.asset_key_prefix: {key_prefix!r} must be a list of names "
            "(letters, digits and underscores), e.g. ['logs']"
        )
    if routes and raw_table is not None:
        raise ConfigError(f"{where}.raw_table: not supported with routes (each route's rows are its own)")
    try:
        check_rules_apply(rules, [schema.parser, *(route.schema.parser for route in routes)], where)
    except RuleConfigError as exc:
        raise ConfigError(str(exc)) from None

    return StreamConfig(
        name=name,
        source=source,
        table=table,
        schema=schema,
        window=window,
        settle_lag=settle_lag,
        start=start,
        refresh_interval=refresh,
        max_windows_per_run=max_windows,
        initial_lookback=lookback,
        sweeps=sweeps,
        freshness_warn=fresh_warn,
        freshness_fail=fresh_fail,
        max_reject_rate=float(reject_rate),
        backfill_windows_per_run=backfill_windows,
        windows_per_replace=replace_windows,
        chunk_events=chunk_events,
        decode_workers=decode_workers,
        description=str(raw.get("description", default_of(StreamConfig, "description"))),
        owners=tuple(owners),
        history=history,
        reconcile=reconcile,
        live=live,
        routes=routes,
        unrouted=unrouted,
        raw_table=raw_table,
        rules=rules,
        asset_key_prefix=tuple(key_prefix),
    )


def _load_size(merged: Mapping[str, Any], where: str, env: Mapping[str, str]) -> tuple[int, int]:
    """A stream's ``chunk_events`` and ``decode_workers``: the variable when set (it holds for
    every stream), else the stream's key (or its default)."""
    chunk = _override(env, CHUNK_EVENTS_ENV, 1, "events per staged chunk, for every stream")
    if chunk is None:
        chunk = _count(
            merged.get("chunk_events", default_of(StreamConfig, "chunk_events")),
            f"{where}.chunk_events",
            MIN_CHUNK_EVENTS,
            "events per staged chunk, each staged with one load job, and BigQuery allows "
            f"100,000 a day per project; default {DEFAULT_CHUNK_EVENTS:,}",
        )
    workers = _override(env, DECODE_WORKERS_ENV, 0, "decoding processes for every stream, 0: one per CPU")
    if workers is None:
        workers = _count(
            merged.get("decode_workers", default_of(StreamConfig, "decode_workers")),
            f"{where}.decode_workers",
            0,
            "processes decoding an S3 read's objects, 0: one per CPU; default 1, the run's own process",
        )
    return chunk, workers


def _override(env: Mapping[str, str], name: str, minimum: int, meaning: str) -> int | None:
    """The environment variable ``name`` as an integer of at least ``minimum`` (None: not set)."""
    value = env.get(name, "").strip()
    if not value:
        return None
    return _count(int(value) if value.isascii() and value.isdigit() else value, name, minimum, meaning)


def _count(value: Any, where: str, minimum: int, meaning: str) -> int:
    """``value`` if it is an integer of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {value!r} must be an integer of at least {minimum:,} ({meaning})")
    return value


_ROUTE_KEYS = {"name", "table", "schema", "parser", "log_groups", "log_group_prefixes", "pattern"}


def _parse_routes(
    raw: Mapping[str, Any],
    where: str,
    source: CloudWatchSource | S3Source,
    table: str,
    schemas: Mapping[str, TableSchema],
) -> tuple[tuple[Route, ...], str]:
    """The ``routes`` of a Firehose stream, and what becomes of events of no route."""
    unrouted = raw.get("unrouted", "reject")
    if "routes" not in raw and "unrouted" not in raw:
        return (), unrouted
    if not isinstance(source, S3Source) or source.layout != "firehose":
        raise ConfigError(f"{where}.routes: only applies to a Firehose stream (source layout firehose)")
    if unrouted not in UNROUTED_ACTIONS:
        raise ConfigError(f"{where}.unrouted: {unrouted!r} must be one of {list(UNROUTED_ACTIONS)}")
    raw_routes = raw.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError(f"{where}.routes: must be a list of routes")
    routes: list[Route] = []
    tables = {table, f"{table}_rejects"}
    for index, item in enumerate(raw_routes):
        at = f"{where}.routes[{index}]"
        spec = _mapping(item, at)
        _only_keys(spec, _ROUTE_KEYS, at)
        name = spec.get("name")
        if not isinstance(name, str) or not _STREAM_NAME_RE.fullmatch(name):
            raise ConfigError(f"{at}.name: {name!r} must be lower-case letters, digits and underscores")
        at = f"{where}.routes.{name}"
        route_table = spec.get("table", f"{table}_{name}")
        try:
            check_identifier("table", route_table)
        except IdentifierError as exc:
            raise ConfigError(f"{at}.table: {exc}") from None
        if route_table in tables or f"{route_table}_rejects" in tables:
            raise ConfigError(f"{at}.table: {route_table!r} is already a table of stream or another route")
        tables |= {route_table, f"{route_table}_rejects"}
        groups = _str_list(spec.get("log_groups", []), f"{at}.log_groups")
        prefixes = _str_list(spec.get("log_group_prefixes", []), f"{at}.log_group_prefixes")
        for group in groups + prefixes:
            if not _LOG_GROUP_RE.fullmatch(group):
                raise ConfigError(f"{at}: {group!r} is not a valid CloudWatch log group name")
        pattern = spec.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ConfigError(f"{at}.pattern: {pattern!r} is not a regular expression ({exc})") from None
        if not groups and not prefixes and pattern is None:
            raise ConfigError(f"{at}: name log_groups, log_group_prefixes or a pattern")
        routes.append(
            Route(
                name=name,
                table=route_table,
                schema=_stream_schema(spec, at, schemas),
                log_groups=tuple(groups),
                log_group_prefixes=tuple(prefixes),
                pattern=pattern,
            )
        )
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.routes: route names must be unique")
    return tuple(routes), unrouted


def _stream_schema(raw: Mapping[str, Any], where: str, schemas: Mapping[str, TableSchema]) -> TableSchema:
    """The stream's schema, with the stream's ``parser`` when it names one.

    Without ``schema``, a stream naming a parser gets that parser's built-in schema
    (``lambda``, ``vpc_flow``, ``text``; ``seed`` for ``json``); ``regex`` needs a schema.
    """
    parser: ParserSpec | None = None
    if raw.get("parser") is not None:
        try:
            parser = parser_from_config(raw["parser"], f"{where}.parser")
        except ParserError as exc:
            raise ConfigError(str(exc)) from None
    schema_name = raw.get("schema")
    if schema_name is None:
        if parser is not None and parser.type not in PARSER_SCHEMAS:
            raise ConfigError(
                f"{where}.schema: parser {parser.type!r} needs a schema whose columns name its fields "
                "(declare one under 'schemas' and set 'schema')"
            )
        schema_name = PARSER_SCHEMAS[parser.type] if parser is not None else "seed"
    if schema_name not in schemas:
        raise ConfigError(f"{where}.schema: unknown schema {schema_name!r} (known: {sorted(schemas)})")
    schema = schemas[schema_name]
    if parser is not None and parser != schema.parser:
        schema = replace(schema, parser=parser)
    return schema


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


def _check_partitions_per_job(
    where: str,
    source: CloudWatchSource | S3Source,
    window: timedelta,
    windows_per_replace: int,
    backfill_windows: int,
    max_windows: int,
) -> None:
    """Refuse a replacement size that could make BigQuery refuse the job (see above)."""
    if isinstance(source, CloudWatchSource):
        # A run replaces its range in steps of windows_per_replace windows, each scoped on the
        # event time of those windows.
        bounded = [("windows_per_replace", windows_per_replace, timedelta(0))]
    elif source.layout == "firehose":
        # A run replaces its range in steps of windows_per_replace windows too, each scoped on
        # the objects that arrived in them, whose events can be older (or newer) than their
        # arrival.
        bounded = [("windows_per_replace", windows_per_replace, _FIREHOSE_EVENT_SPREAD)]
    else:
        return  # an export task folder is one replacement whatever these keys say
    for key, windows, spread in bounded:
        partitions = partitions_per_replace(windows, window, spread)
        if partitions > MAX_PARTITIONS_PER_JOB:
            # ceil(x) + 1 <= limit  <=>  x <= limit - 1
            largest = ((MAX_PARTITIONS_PER_JOB - 1) * timedelta(days=1) - spread) // window
            minutes = int(window.total_seconds()) // 60
            size = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
            raise ConfigError(
                f"{where}.{key}: {windows} windows of {size} can make one BigQuery job modify up to "
                f"{partitions:,} DAY partitions, over BigQuery's limit of {MAX_PARTITIONS_PER_JOB:,} "
                f"partitions modified per job; use at most {largest:,}"
            )


def _parse_source(raw: Any, where: str) -> CloudWatchSource | S3Source:
    source = _mapping(raw, where)
    kind = source.get("type", "cloudwatch")
    if kind == "s3":
        return _parse_s3_source(source, where)
    _only_keys(source, _CLOUDWATCH_KEYS, where)
    if kind != "cloudwatch":
        raise ConfigError(f"{where}.type: {kind!r} is not supported (use 'cloudwatch' or 's3')")
    groups = _str_list(source.get("log_groups", []), f"{where}.log_groups")
    prefixes = _str_list(source.get("log_group_prefixes", []), f"{where}.log_group_prefixes")
    if not groups and not prefixes:
        raise ConfigError(f"{where}: name at least one of log_groups or log_group_prefixes")
    for group in groups + prefixes:
        if group in groups and is_arn(group):
            try:
                parse_log_group_arn(group)
            except LogGroupArnError as exc:
                raise ConfigError(f"{where}.log_groups: {exc}") from None
        elif not _LOG_GROUP_RE.fullmatch(group):
            raise ConfigError(f"{where}: {group!r} is not a valid CloudWatch log group name")
    account = source.get("account")
    if account is not None:
        account = validate_section(SourceAccount, account, f"{where}.account")
    # One spelling per ARN (without ":*"): it is the log_group of every row read from the group.
    groups = [parse_log_group_arn(g).arn if is_arn(g) else g for g in groups]
    return CloudWatchSource(log_groups=tuple(groups), log_group_prefixes=tuple(prefixes), account=account)


_LOG_STREAM_RE = re.compile(r"^[^:*]{1,512}$")
_S3_KEYS = {
    "type",
    "bucket",
    "prefix",
    "layout",
    "record_format",
    "log_group",
    "log_stream",
    "max_decompressed_bytes",
    "key_template",
    "error_prefix",
    "notifications",
}


def _parse_s3_source(source: Mapping[str, Any], where: str) -> S3Source:
    _only_keys(source, _S3_KEYS, where)
    bucket = source.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET_RE.fullmatch(bucket):
        raise ConfigError(f"{where}.bucket: {bucket!r} is not a valid S3 bucket name")
    layout = source.get("layout")
    if layout not in S3_LAYOUTS:
        raise ConfigError(f"{where}.layout: {layout!r} must be one of {list(S3_LAYOUTS)}")
    prefix = source.get("prefix", EXPORT_DEFAULT_PREFIX if layout == "export" else "")
    if not isinstance(prefix, str) or prefix.startswith("/"):
        raise ConfigError(f"{where}.prefix: {prefix!r} must be a key prefix without a leading '/'")
    if layout == "export" and not prefix.strip("/"):
        raise ConfigError(f"{where}.prefix: an export layout needs the tasks' destination prefix")
    record_format = source.get("record_format")
    if layout == "export" and record_format is not None:
        raise ConfigError(f"{where}.record_format: only applies to layout 'firehose'")
    record_format = record_format or default_of(S3Source, "record_format")
    if record_format not in FIREHOSE_RECORD_FORMATS:
        raise ConfigError(
            f"{where}.record_format: {record_format!r} must be one of {list(FIREHOSE_RECORD_FORMATS)}"
        )
    names = {}
    for key, pattern in (("log_group", _LOG_GROUP_RE), ("log_stream", _LOG_STREAM_RE)):
        value = source.get(key)
        if value is not None and (not isinstance(value, str) or not pattern.fullmatch(value)):
            raise ConfigError(f"{where}.{key}: {value!r} is not a valid CloudWatch Logs {key} name")
        names[key] = value
    if not names["log_group"] and (layout == "export" or record_format == "messages"):
        needs = "layout 'export'" if layout == "export" else "record_format 'messages'"
        raise ConfigError(f"{where}.log_group: required with {needs} (the files do not name it)")
    if names["log_stream"] and record_format != "messages":
        raise ConfigError(f"{where}.log_stream: only applies to record_format 'messages'")
    try:
        max_decompressed = parse_byte_size(
            source.get("max_decompressed_bytes", default_of(S3Source, "max_decompressed_bytes"))
        )
    except ValueError as exc:
        raise ConfigError(f"{where}.max_decompressed_bytes: {exc}") from None
    templates: dict[str, str | None] = {}
    for key in ("key_template", "error_prefix"):
        value = source.get(key)
        if value is None:
            templates[key] = None
            continue
        if layout != "firehose":
            raise ConfigError(f"{where}.{key}: only applies to layout 'firehose'")
        if not isinstance(value, str) or not value or value.startswith("/"):
            raise ConfigError(f"{where}.{key}: {value!r} must be a key prefix without a leading '/'")
        try:
            KeyLayout.parse(value)
        except KeyTemplateError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
        templates[key] = value
    return S3Source(
        bucket=bucket,
        prefix=prefix,
        layout=layout,
        record_format=record_format,
        log_group=names["log_group"],
        log_stream=names["log_stream"],
        max_decompressed_bytes=max_decompressed,
        key_template=templates["key_template"],
        error_template=templates["error_prefix"],
        notifications=_notifications(source.get("notifications"), layout, f"{where}.notifications"),
    )


def _notifications(raw: Any, layout: str, where: str) -> S3Notifications | None:
    if raw is None:
        return None
    if layout != "firehose":
        raise ConfigError(f"{where}: only applies to layout 'firehose'")
    return validate_section(S3Notifications, raw, where)


def _parse_start(value: Any, where: str, window: timedelta) -> datetime:
    if value is None:
        raise ConfigError(f"{where}: required (first window to load, e.g. '2026-11-01T00:00:00Z')")
    if isinstance(value, datetime):
        start = value
    else:
        try:
            start = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not an ISO 8601 date or time") from None
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if int(start.timestamp()) % int(window.total_seconds()):
        raise ConfigError(f"{where}: {value!r} is not aligned to the {window} window")
    return start


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


def _duration(
    raw: Mapping[str, Any], key: str, where: str, cls: type | None = None, default: timedelta | None = None
) -> timedelta:
    """``raw[key]`` parsed as a duration, or the default of field ``key`` of ``cls`` (or ``default``)."""
    if key in raw:
        return parse_duration(raw[key], f"{where}.{key}")
    if default is not None:
        return default
    assert cls is not None
    return default_of(cls, key)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping, got {type(value).__name__}")
    return value


def _only_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be a list of names")
    return list(value)

"""Benchmark: what BigQuery would bill, and which quotas it would use, for one stream's day.

Starts local AWS (moto server) and the BigQuery emulator on free ports, then runs one simulated
UTC day of a polling stream as deployed with the default settings (15-minute windows, 1-minute
refresh of the open window, a settled load and two late-data sweeps per window, hourly
reconciliation, rollups) in compressed time, against the local stack:

* events are put into CloudWatch minute by minute, stamped with the simulated time; their ids
  are CloudWatch-sized (56 digits);
* at each simulated minute the sensor's own planner (:func:`cwl_pipeline.polling.plan.plan_windows`)
  decides what to load, and each request runs the project's load path
  (:func:`cwl_pipeline.load.service.load`) in the write mode of its kind, followed by the load
  checks; one settled run in ``--retry-every`` is run a second time (a run marked failed after
  its BigQuery job ran, then retried);
* every hour, five minutes past, the reconciliation sensor and its asset check each compare
  the stored counts (:func:`cwl_pipeline.polling.reconcile_counts.compare_counts`; CloudWatch's
  side is an AWS request, not billed here);
* after each window's settled load, the rollups recompute the partitions their automation
  condition selects (:func:`cwl_pipeline.orchestration.rollups.refresh_rollup`);
* once a minute a user queries the last 15 minutes through the ``_recent`` view.

Every BigQuery request goes through a recording client: each query (SQL and parameters) is
interpreted by :mod:`benchmarks.dml_billing` and billed at that moment by BigQuery's
on-demand rules, on the sizes the stream's tables would have at the target volume
(``--gb-per-day``, default 20): the simulated rows' logical sizes (BigQuery's data size rules)
scaled so that the day stores that many bytes, with ``--history-days`` such days stored before
it (a deployment in its steady state). A query of the view is billed for the view's own scans.
Load jobs, table creations and deletions and metadata updates are counted for the quota
budget, Storage Write API appends and their bytes apart (priced per byte ingested).

The benchmark checks itself and exits non-zero otherwise: the rows and rejects it models are
the rows and rejects the pipeline stored from the events put (counts printed); every
statement sent is of a kind the model bills and reads only tables whose sizes it models; the
client refuses the calls that would send unbilled work. ``BENCH_COST_TRACE=1`` prints every
statement billed.

The baseline beside the figure is the same day billed as a plain streaming loader would be
(``insert_rows_json``: every byte once, 1 KB minimum per row), on the same scaled rows.

Last line: ``billed/ingested bytes per day: X`` (every statement modelled, the users' ``_recent``
queries included; the line before gives it without them). ``--hours`` simulates part of a day
(faster, for a quick look; the day's partitions are then smaller, so X is lower).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dml_billing import FREE, MIN_BILLED_BYTES, Scan, Statement, billed_bytes, interpret
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_transactions import LEDGER_SCHEMA, ledger_table_name
from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.config import load_config
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.load.service import WriteMode, load, write_mode
from cwl_pipeline.load.tables import StreamTables, recent_view_sql
from cwl_pipeline.local.demo_producer import demo_message
from cwl_pipeline.local.processes import (
    LOCAL_CREDENTIALS,
    LOCAL_PROJECT,
    bigquery_service,
    free_port,
    moto_service,
)
from cwl_pipeline.orchestration.checks import evaluate_load_checks
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.rollups import ROLLUPS, Rollup, refresh_rollup, rollup_spec
from cwl_pipeline.polling.assets import LIVE_OVERLAP
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.plan import PlanState, compares_first, load_passes, plan_windows
from cwl_pipeline.polling.read import read_windows, window_scope
from cwl_pipeline.polling.reconcile_counts import compare_counts

GROUP = "/bench/cost"
DATASET = "bench_cost"
GB = 10**9
LOAD_JOBS_PER_PROJECT = 100_000
QUERY_PER_TIB = 6.25  # on-demand query price, US multi-region
STORAGE_WRITE_PER_GIB = 0.025  # Storage Write API (beyond 2 TiB a month free)
TABLE_OPS_PER_TABLE = 1_500

CONFIG = """\
aws: {{region: {region}, endpoint_url: "{aws_url}", max_attempts: 4}}
bigquery: {{project: {project}, dataset: {dataset}, location: US, api_endpoint: "{bq_url}",
            storage_write_endpoint: "{bq_grpc}"}}
streams:
  - name: cost_events
    source: {{type: cloudwatch, log_groups: ["{group}"]}}
    table: cost_events
    schema: seed
    start: "2026-01-01T00:00:00Z"
"""


def logical_bytes(table: pa.Table) -> dict[str, pa.Array]:
    """Per column, each row's size by BigQuery's data size rules (STRING/JSON: 2 + UTF-8 bytes;
    INT64, FLOAT64, TIMESTAMP: 8; BOOL: 1; NULL: 0)."""
    out = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            sizes = pc.add(pc.binary_length(column), 2)
        elif pa.types.is_boolean(column.type):
            sizes = pa.array([1] * len(column), pa.int64())
        else:
            sizes = pa.array([8] * len(column), pa.int64())
        out[name] = pc.if_else(pc.is_null(column), 0, sizes).cast(pa.int64())
    return out


def cloudwatch_sized(sizes: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """``sizes`` with every event id the size of a CloudWatch one: the rows the pipeline reads
    from the local CloudWatch carry its short ids (``"12345"``), CloudWatch's have 56 digits."""
    if "event_id" not in sizes:
        return sizes
    ids = sizes["event_id"]
    return {**sizes, "event_id": pc.if_else(pc.equal(ids, 0), 0, len(cloudwatch_id(0)) + 2)}


DAY_MS = 86_400_000
TRACE = bool(os.environ.get("BENCH_COST_TRACE"))

Measure = Callable[[str, frozenset[str] | None, date | None, date | None], int]
"""Bytes of a table's columns in a range of DAY partitions, read from the emulator itself."""


@dataclass
class GrowingTables:
    """Sizes of the stream's tables at the simulated moment, scaled to the target volume.

    A row of a table in ``loaded`` is there once a load of its window wrote it (the open window
    is appended to the live table, not to the events table: a settled load finds its window
    empty); a row of another table once the simulated clock passed its event time. Before the
    simulated day, ``history_days`` days as large as
    it are stored already (a deployment in its steady state, not on its first day). Staging
    tables hold what was uploaded into them; the live table what was appended to it; small
    tables whose size does not follow the volume (rollups, counts) are measured in the emulator.
    """

    scale: float
    by_table: dict[str, tuple[list[int], dict[str, list[int]]]]  # table -> (times ms, column sizes)
    day_start_ms: int = 0
    history_days: int = 0
    daily: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> column -> bytes a day
    staged: dict[str, dict[str, int]] = field(default_factory=dict)
    measured: dict[str, Measure] = field(default_factory=dict)
    now_ms: int = 0
    clustered_on_time: frozenset[str] = frozenset()
    loaded: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # table -> windows [ms, ms)

    def load(self, tables: list[str], start: datetime, stop: datetime) -> None:
        """A load wrote the rows of ``[start, stop)`` into ``tables``."""
        window = (to_ms(start), to_ms(stop))
        for table in tables:
            windows = self.loaded.setdefault(table, [])
            if window not in windows:
                windows.append(window)

    def known(self, table: str) -> bool:
        """Whether the model has a size for ``table``."""
        return table in self.staged or table in self.by_table or table in self.measured

    def bytes(
        self,
        table: str,
        columns: frozenset[str] | None,
        first: date | None,
        last: date | None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Scaled bytes of ``columns`` in the partitions ``first``..``last`` (None: unbounded);
        for a table clustered on its partition column, in ``[start, end)`` when given (block
        pruning, idealized: blocks hold consecutive times)."""
        if table in self.staged:
            sizes = self.staged[table]
            return int(sum(v for c, v in sizes.items() if columns is None or c in columns) * self.scale)
        if table in self.measured:
            return self.measured[table](table, columns, first, last)
        if table not in self.by_table:
            return 0
        times, column_sizes = self.by_table[table]
        low = to_ms(datetime.combine(first, datetime.min.time(), UTC)) if first else None
        high = to_ms(datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)) if last else None
        if table in self.clustered_on_time and start is not None and end is not None:
            low, high = to_ms(start), to_ms(end)
        total = 0
        names = [c for c in column_sizes if columns is None or c in columns]
        windows = self.loaded.get(table)
        for index, t in enumerate(times):
            if t > self.now_ms or (low is not None and t < low) or (high is not None and t >= high):
                continue
            if windows is not None and not any(a <= t < b for a, b in windows):
                continue
            total += sum(column_sizes[c][index] for c in names)
        return int(total * self.scale) + self._history(table, names, low, high)

    def _history(self, table: str, names: list[str], low: int | None, high: int | None) -> int:
        """Bytes of the days before the simulated one in ``[low, high)``."""
        if table not in self.daily or not self.history_days:
            return 0
        begin = self.day_start_ms - self.history_days * DAY_MS
        overlap = min(high if high is not None else self.day_start_ms, self.day_start_ms) - max(
            low if low is not None else begin, begin
        )
        if overlap <= 0:
            return 0
        per_day = sum(self.daily[table].get(c, 0) for c in names)
        return int(per_day * overlap / DAY_MS)


@dataclass
class Recorder:
    """What the runtime asked of BigQuery, billed as it went, by purpose and statement kind."""

    sizes: GrowingTables
    schemas: dict[str, tuple[str, frozenset[str]]]
    views: dict[str, str] = field(default_factory=dict)  # view id -> its SQL
    purpose: str = ""
    now: datetime | None = None
    billed: Counter[tuple[str, str]] = field(default_factory=Counter)
    floor: Counter[str] = field(default_factory=Counter)  # per purpose, see statement_floor
    statements: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    api: Counter[str] = field(default_factory=Counter)
    storage_write_bytes: int = 0
    by_shape: Counter[str] = field(default_factory=Counter)
    unbilled: list[str] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None  # what the running load writes
    inserted: list[str] = field(default_factory=list)  # tables its transaction inserted into

    def appended(self, table: str, data: pa.Table, time_column: str) -> None:
        """Count rows appended through the Storage Write API (billed per byte ingested); the
        live table then holds them."""
        self.api["Storage Write API appends"] += 1
        sizes = {c: v.to_pylist() for c, v in cloudwatch_sized(logical_bytes(data)).items()}
        self.storage_write_bytes += sum(sum(v) for v in sizes.values())
        times, columns = self.sizes.by_table.setdefault(table, ([], {}))
        times.extend(to_ms(t) for t in data[time_column].to_pylist())
        for name, values in sizes.items():
            columns.setdefault(name, [0] * (len(times) - len(values))).extend(values)

    def query(self, sql: str, parameters: dict[str, Any]) -> None:
        """Bill one query job (a statement or a script) now."""
        self.api["query jobs"] += 1
        views = [v for v in self.views if f"`{v}`" in sql]
        statements = (
            [self._view_statement(sql, views[0], parameters)]
            if views
            else interpret(sql, parameters, self.schemas, now=self.now)
        )
        for statement in statements:
            if self.window is not None and self.inserted:
                # A statement after an INSERT of the load's transaction reads the inserted rows.
                self.sizes.load(self.inserted, *self.window)
            self.sent[statement.kind] += 1
            if statement.kind not in FREE | BILLED_KINDS:
                self.unbilled.append(f"{statement.kind}: the billing model has no rule for it")
            for scan in statement.scans:
                if not self.sizes.known(scan.table):
                    self.unbilled.append(f"{statement.kind} reads {scan.table}, whose size is not modelled")
            cost = billed_bytes(statement, self.sizes)
            self.floor[self.purpose] += statement_floor(statement, self.sizes) if cost else 0
            if TRACE:
                print(self.purpose, self.now, statement, cost, file=sys.stderr)
            key = (self.purpose, statement.kind)
            self.billed[key] += cost
            self.statements[key] += 1
            if statement.kind == "INSERT":
                self.inserted += [t for t in [statement.target] if t in self.sizes.loaded]
            shape = f"{self.purpose}: {statement.kind} " + " ".join(
                f"{s.table.rsplit('.', 1)[-1][:24]}[{','.join(sorted(s.columns))}]" for s in statement.scans
            )
            self.by_shape[shape] += cost

    def _view_statement(self, sql: str, view: str, parameters: dict[str, Any]) -> Statement:
        """A query of the ``_recent`` view, billed for the view's underlying scans: the user's
        query on the table of each side of its ``UNION ALL`` (its time filter bounds both), plus
        the columns that side reads whatever the query selects (its cutoff's time column, and
        on the live side the window's event id). The cutoff is not taken as pruning anything: it
        is computed from ``CURRENT_TIMESTAMP()``, which BigQuery may not prune on."""
        scans: list[Scan] = []
        for side in self.views[view].split("UNION ALL"):
            table = _TABLE_RE.search(side)
            if table is None:
                raise SystemExit(f"the billing model does not know the shape of view {view}")
            keys = frozenset(_COLUMN_NAME_RE.findall(side[table.end() :]))
            for statement in interpret(sql.replace(f"`{view}`", table.group(0)), parameters, self.schemas):
                scans += [replace(scan, columns=scan.columns | keys) for scan in statement.scans]
        return Statement("SELECT", tuple(scans))


def statement_floor(statement: Statement, sizes: GrowingTables) -> int:
    """The least BigQuery could bill a statement that references the tables ``statement`` does:
    10 MiB per table referenced, and for the staging table an insert reads (the rows it writes)
    what it reads of it. The rest of what a statement is billed (keys read, the columns a query
    selects) depends on how it is written; this does not."""
    stage = [s for s in statement.scans if s.table in sizes.staged] if statement.kind == "INSERT" else []
    staged = sum(billed_bytes(Statement("SELECT", (s,)), sizes) for s in stage)
    others = len(statement.scans) - len(stage)
    return max(MIN_BILLED_BYTES, staged + others * MIN_BILLED_BYTES)


BILLED_KINDS = frozenset({"SELECT", "WITH", "INSERT", "DELETE", "UPDATE", "MERGE"})
"""Statement kinds the billing model bills (the others it knows are free)."""
_TABLE_RE = re.compile(r"`([A-Za-z0-9_-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+)`")
_COLUMN_NAME_RE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


class RecordingAppender:
    """A :class:`StreamAppender` that tells a :class:`Recorder` what it appends."""

    def __init__(self, appender: StreamAppender, recorder: Recorder, table_id: str, time_column: str) -> None:
        self._appender = appender
        self._recorder = recorder
        self._table_id = table_id
        self._time_column = time_column

    def append(self, table: str, data: pa.Table) -> int:
        self._recorder.appended(self._table_id, data, self._time_column)
        return self._appender.append(table, data)


_UNBILLED_CALLS = frozenset(
    {
        "query_and_wait",
        "list_rows",
        "insert_rows",
        "insert_rows_json",
        "insert_rows_from_dataframe",
        "load_table_from_uri",
        "load_table_from_json",
        "load_table_from_dataframe",
        "copy_table",
        "extract_table",
    }
)


class RecordingClient:
    """A ``bigquery.Client`` that tells a :class:`Recorder` about every job and table call,
    and refuses the calls that would send work the recorder does not bill."""

    def __init__(self, client: bigquery.Client, recorder: Recorder) -> None:
        self._client = client
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        if name in _UNBILLED_CALLS:
            raise RuntimeError(f"bench-cost: {name} sends work the cost model does not bill")
        return getattr(self._client, name)

    def query(self, sql: str, job_config: bigquery.QueryJobConfig | None = None, **kwargs: Any) -> Any:
        params = {
            p.name: getattr(p, "value", None) for p in (job_config.query_parameters if job_config else [])
        }
        self._recorder.query(sql, params)
        return self._client.query(sql, job_config=job_config, **kwargs)

    def load_table_from_file(self, file_obj: Any, destination: str, **kwargs: Any) -> Any:
        self._recorder.api["load jobs"] += 1
        data = pq.read_table(file_obj)
        file_obj.seek(0)
        sizes = cloudwatch_sized(logical_bytes(data))
        staged = self._recorder.sizes.staged.setdefault(str(destination), {})
        for column, values in sizes.items():
            staged[column] = staged.get(column, 0) + (pc.sum(values).as_py() or 0)
        self._recorder.schemas[str(destination)] = ("", frozenset(data.column_names))
        return self._client.load_table_from_file(file_obj, destination, **kwargs)

    def create_table(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        self._recorder.api["tables created"] += 1
        return self._client.create_table(table, *args, **kwargs)

    def delete_table(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        self._recorder.api["tables deleted"] += 1
        return self._client.delete_table(table, *args, **kwargs)

    def update_table(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        self._recorder.api["table metadata updates"] += 1
        return self._client.update_table(table, *args, **kwargs)

    def get_table(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        self._recorder.api["table reads"] += 1
        return self._client.get_table(table, *args, **kwargs)


def day_of_events(day: datetime, hours: float, per_minute: int, seed: int = 7) -> list[tuple[int, str]]:
    """``(timestamp ms, message)`` pairs, ``per_minute`` a minute, for ``hours`` from ``day``."""
    rng = random.Random(seed)
    sessions: list[int] = []
    events = []
    for minute in range(int(hours * 60)):
        base = to_ms(day) + minute * 60_000
        for i in range(per_minute):
            events.append(
                (base + (i * 60_000) // per_minute + rng.randrange(0, 1000), demo_message(rng, sessions))
            )
    return events


class NoMetrics:
    """Stands in for CloudWatch's IncomingLogEvents (GetMetricData is an AWS request, not a
    BigQuery bill): every hour counts 0."""

    def hourly_counts(self, log_groups: Any, start: datetime, end: datetime) -> dict[datetime, int]:
        hours, hour = {}, start
        while hour < end:
            hours[hour] = 0
            hour += HOUR
        return hours


def rollup_range(rollup: Rollup, stream: Any, now: datetime) -> tuple[datetime, datetime]:
    """The partitions a rollup's automation condition asks for at ``now``: every partition of
    its lookback, the open one included (``end_offset=1``), in one run (its backfill policy is
    single-run, so Dagster's automation requests a contiguous range as one run)."""
    first = floor_to_window(now - rollup.lookback(stream), rollup.period)
    return first, floor_to_window(now, rollup.period) + rollup.period


def cron_ticks(cron: str, moment: datetime) -> bool:
    """Whether ``cron`` (``M * * * *`` or ``M H * * *``) ticks at ``moment``."""
    minute, hour = cron.split()[:2]
    return moment.minute == int(minute) and (hour == "*" or moment.hour == int(hour))


def main() -> None:
    """Run the simulated day and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb-per-day", type=float, default=20.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--events-per-minute", type=int, default=6)
    parser.add_argument("--history-days", type=int, default=16, help="days already stored before the day")
    parser.add_argument("--retry-every", type=int, default=50, help="one settled run in N is retried")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.update(LOCAL_CREDENTIALS)  # local AWS accepts any key

    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp)) as (aws_url, bq_url, bq_grpc):
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(
            CONFIG.format(
                region=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
                aws_url=aws_url,
                bq_url=bq_url,
                project=LOCAL_PROJECT,
                dataset=DATASET,
                group=GROUP,
                bq_grpc=bq_grpc,
            )
        )
        config = load_config(path)
        stream = config.streams[0]
        tables = StreamTables.of(stream)
        logs = boto3.client("logs", endpoint_url=aws_url, region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"])
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName="app-1")

        day = floor_to_window(datetime.now(UTC) - timedelta(days=2), timedelta(days=1))
        events = day_of_events(day, args.hours, args.events_per_minute)
        batch = normalize(
            (
                LogEvent(
                    event_id=cloudwatch_id(i),
                    timestamp_ms=t,
                    message=m,
                    log_group=GROUP,
                    log_stream="app-1",
                    ingestion_time_ms=t,
                )
                for i, (t, m) in enumerate(events)
            ),
            stream.schema,
        )
        modelled = {"rows": batch.rows_table.num_rows, "rejects": batch.rejects_table.num_rows}
        table_id = {
            spec.table: f"{LOCAL_PROJECT}.{DATASET}.{spec.table}"
            for spec in (tables.events, tables.rejects, tables.live)
        }
        sized = {}
        for spec, table in (
            (tables.events, batch.rows_table),
            (tables.rejects, batch.rejects_table),
        ):
            column_sizes = {c: v.to_pylist() for c, v in logical_bytes(table).items()}
            column_sizes["loaded_at"] = [8] * table.num_rows
            times = [to_ms(t) for t in table[spec.partition_column].to_pylist()]
            sized[table_id[spec.table]] = (times, column_sizes)
        stored = sum(sum(sum(v) for v in cols.values()) for _, cols in sized.values())
        ingested = args.gb_per_day * GB * args.hours / 24
        scale = ingested / stored
        client = bigquery.Client(
            project=LOCAL_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": bq_url},
        )
        sizes = GrowingTables(
            scale=scale,
            by_table=sized,
            day_start_ms=to_ms(day),
            history_days=args.history_days,
            daily={
                table: {c: int(sum(v) * scale * 24 / args.hours) for c, v in columns.items()}
                for table, (_, columns) in sized.items()
            },
            clustered_on_time=frozenset(
                table_id[spec.table]
                for spec in (tables.events, tables.rejects, tables.live)
                if spec.clustering[:1] == (spec.partition_column,)
            ),
        )
        small_tables = [rollup_spec(stream, r) for r in ROLLUPS]
        if tables.counts is not None:
            small_tables.append(tables.counts)
        for spec in small_tables:
            sizes.measured[f"{LOCAL_PROJECT}.{DATASET}.{spec.table}"] = measure_in(
                client, spec.partition_column
            )
        # The load ledger: one row per table the loads write, updated by each load transaction.
        ledger = f"{LOCAL_PROJECT}.{DATASET}.{ledger_table_name(tables.events.table)}"
        sizes.measured[ledger] = measure_in(client, "updated_at")
        schemas = {
            f"{LOCAL_PROJECT}.{DATASET}.{spec.table}": (
                spec.partition_column,
                frozenset(c.name for c in spec.all_columns),
            )
            for spec in (tables.events, tables.rejects, tables.live, *small_tables)
        }
        schemas[ledger] = ("updated_at", frozenset(f.name for f in LEDGER_SCHEMA))
        # The events and rejects tables hold a window once a load wrote it.
        stored_tables = [table_id[tables.events.table], table_id[tables.rejects.table]]
        sizes.loaded.update({table: [] for table in stored_tables})
        recorder = Recorder(sizes, schemas)
        loader = BigQueryLoader(RecordingClient(client, recorder), DATASET, location="US")  # type: ignore[arg-type]
        view_id = loader.table_id(tables.recent_view)
        recorder.views[view_id] = recent_view_sql(loader, tables)

        @contextmanager
        def loaders() -> Iterator[BigQueryLoader]:
            yield loader

        reader = logs_reader(AwsResource.from_settings(config.aws))
        appender = BigQueryWarehouse.from_settings(config.bigquery).appender()
        assert appender is not None
        recording_appender = RecordingAppender(
            appender, recorder, table_id[tables.live.table], tables.live.partition_column
        )
        ingested_until: dict[datetime, datetime] = {}  # what each window's last refresh appended
        passes = load_passes(stream.settle_lag, stream.sweeps)
        state = PlanState()
        put_until = 0
        sim = day
        day_end = day + timedelta(hours=args.hours)
        end = day_end + max(p.lag for p in passes) + 2 * stream.window
        loads: Counter[str] = Counter()
        load_jobs_at_volume: Counter[str] = Counter()
        quiet = logging.getLogger("bench.cost")
        began = time.monotonic()

        def run_load(kind: str, start: datetime, stop: datetime, mode: WriteMode, compare: bool) -> None:
            recorder.purpose = kind
            after = ingested_until.get(start) if mode is WriteMode.LIVE else None
            # CloudWatch stamps ingestion in real time, which runs faster than the simulated
            # clock: the refresh overlap is shrunk by the same factor.
            compression = (time.monotonic() - began) / max(1.0, (sim - day).total_seconds())
            recorder.window = None if mode is WriteMode.LIVE else (start, stop)
            outcome = load(
                read_windows(stream, reader, start, stop),
                tables,
                loaders,
                quiet,
                stream.name,
                mode,
                appender=recording_appender,  # type: ignore[arg-type]
                ingested_after=after - LIVE_OVERLAP * compression if after else None,
                compare_first=compare,
            )
            loads[kind] += 1
            recorder.window, recorder.inserted = None, []
            if mode is not WriteMode.LIVE:
                sizes.load(stored_tables, start, stop)
            if mode is WriteMode.LIVE:
                if outcome.ingested_until:
                    ingested_until[start] = outcome.ingested_until
                return
            # At the target volume a read is staged in chunks of the stream's chunk_events, one load
            # job per chunk for each table the chunk has rows for (rejects: about every chunk); a
            # read found stored already (compared first) stages nothing.
            chunks = (
                math.ceil(outcome.events_at_source * scale / stream.chunk_events)
                if outcome.events_at_source and outcome.job_ids
                else 0
            )
            per_chunk = int(outcome.rows_loaded > 0) + int(outcome.rows_rejected * scale >= chunks > 0)
            load_jobs_at_volume[kind] += chunks * per_chunk
            groups = outcome.facts.get("log_groups", [])
            assert isinstance(groups, list)
            recorder.purpose = "load checks"
            facts = outcome.check_facts(window_scope(stream, start, stop, groups), scope_of_reads=True)
            list(evaluate_load_checks(loader, tables, facts))

        while sim <= end:
            sim += timedelta(minutes=1)
            recorder.now = sim
            new = [(t, m) for t, m in events[put_until:] if t < to_ms(sim)]
            if new:
                logs.put_log_events(
                    logGroupName=GROUP,
                    logStreamName="app-1",
                    logEvents=[{"timestamp": t, "message": m} for t, m in new],
                )
                put_until += len(new)
            sizes.now_ms = to_ms(sim)
            requests, state = plan_windows(
                stream=stream.name,
                now=sim,
                state=state,
                size=stream.window,
                passes=passes,
                refresh_interval=stream.refresh_interval - timedelta(seconds=1),
                partitions_start=day,
                max_windows=stream.max_windows_per_run,
                initial_lookback=sim - day,
                events_arriving=bool(new),
            )
            for request in requests:
                # Only the simulated day's windows: later ones belong to the next day's bill.
                start, stop = request.first_start, min(request.last_start + stream.window, day_end)
                if start >= stop:
                    continue
                kind = request.kind.split("-")[0]
                # As the stream's asset does: the write mode of the kind; checks unless live.
                mode = write_mode(request.kind, live_available=True)
                run_load(kind, start, stop, mode, compares_first(request.kind))
                if kind == "settled" and loads[kind] % args.retry_every == 0:
                    # A run marked failed after its job ran (a lost worker, say) runs again.
                    run_load("retried run", start, stop, mode, compares_first(request.kind))
            if sim >= day_end:
                continue  # the day's own schedule ends with it; its last sweeps still run
            if sim.minute == RECONCILE_MINUTE:
                # The reconciliation sensor and its asset check, each hour a few minutes past.
                recorder.purpose = "reconciliation"
                for _ in ("sensor", "check"):
                    # In the steady state the counts table is older than the day.
                    compare_counts(
                        tables,
                        reader,
                        NoMetrics(),  # type: ignore[arg-type]
                        loaders,
                        sim,
                        counted_since=day - timedelta(days=args.history_days),
                    )
            for rollup in ROLLUPS:
                if cron_ticks(rollup.cron(stream), sim):
                    recorder.purpose = "rollups"
                    refresh_rollup(loader, stream, rollup, *rollup_range(rollup, stream, sim))
            if view_id and ingested_until:
                # A user's look at the last 15 minutes through the _recent view, once a minute.
                recorder.purpose = "_recent query (user)"
                loader.query_rows(
                    f"SELECT `action`, COUNT(*) AS n FROM `{view_id}` "
                    "WHERE `timestamp` >= @since AND `timestamp` < @until GROUP BY `action`",
                    [
                        bigquery.ScalarQueryParameter("since", "TIMESTAMP", sim - timedelta(minutes=15)),
                        bigquery.ScalarQueryParameter("until", "TIMESTAMP", sim),
                    ],
                )
        elapsed = time.monotonic() - began
        stored_counts = {
            "rows": _count(client, table_id[tables.events.table]),
            "rejects": _count(client, table_id[tables.rejects.table]),
        }

    per_day = 24 / args.hours
    print(f"simulated {args.hours:g} h of one stream at {args.gb_per_day:g} GB/day in {elapsed:.0f} s")
    print(
        f"sanity: events put {put_until} of {len(events)}; modelled rows {modelled['rows']}, rejects "
        f"{modelled['rejects']}; stored by the pipeline rows {stored_counts['rows']}, rejects "
        f"{stored_counts['rejects']}"
    )
    failures = []
    if put_until != len(events) or modelled != stored_counts:
        failures.append("the modelled rows and rejects are not what the pipeline stored from the events put")
    unpriced = sorted(
        k for k, n in recorder.sent.items() if n and k not in FREE and not _billed_kind(recorder, k)
    )
    failures += [f"statement kind {k} sent but never billed" for k in unpriced]
    failures += sorted(set(recorder.unbilled))
    print(f"loads: {dict(loads)}")
    print("billed GB/day by purpose and statement kind:")
    print(f"  {'purpose':<24} {'statement':<9} {'per day':>8} {'GB/day':>9}")
    for (purpose, kind), cost in sorted(recorder.billed.items(), key=lambda item: -item[1]):
        count = recorder.statements[(purpose, kind)] * per_day
        print(f"  {purpose:<24} {kind:<9} {count:8.0f} {cost * per_day / GB:9.2f}")
    total = sum(recorder.billed.values())
    print(f"  {'total':<24} {'':<9} {'':>8} {total * per_day / GB:9.2f}")
    print(
        "BigQuery API per stream and day: "
        + ", ".join(f"{k} {v * per_day:.0f}" for k, v in recorder.api.items())
    )
    print("largest statement shapes (GB/day):")
    for shape, cost in recorder.by_shape.most_common(8):
        print(f"  {cost * per_day / GB:8.1f}  {shape}")
    jobs = recorder.api["load jobs"] * per_day
    at_volume = sum(load_jobs_at_volume.values()) * per_day
    print(
        f"load jobs per stream and day: {jobs:.0f} simulated (a read is one chunk); at "
        f"{args.gb_per_day:g} GB/day in chunks of {stream.chunk_events:,} events: {at_volume:.0f} ("
        + ", ".join(f"{k} {v * per_day:.0f}" for k, v in load_jobs_at_volume.items())
        + ")"
    )
    print(
        f"streams per project by load jobs ({LOAD_JOBS_PER_PROJECT:,}/day) at {args.gb_per_day:g} GB/day: "
        f"{LOAD_JOBS_PER_PROJECT / max(at_volume, 1):.0f} (each job loads a fresh staging table: the "
        f"{TABLE_OPS_PER_TABLE:,}/table limit is not reached)"
    )
    write = recorder.storage_write_bytes * scale
    print(
        f"Storage Write API: {write * per_day / GB:.1f} GB/day appended ({write / ingested:.2f} x ingested; "
        f"priced per byte at about 4x a query byte: ${STORAGE_WRITE_PER_GIB}/GiB against "
        f"${QUERY_PER_TIB}/TiB)"
    )
    dollars = total / 2**40 * QUERY_PER_TIB + write / 2**30 * STORAGE_WRITE_PER_GIB
    print(f"dollars per day, on-demand list prices: {dollars * per_day:.2f}")
    streaming = sum(max(1024, r) for r in _row_sizes(sized)) * scale
    print(f"baseline, insert_rows_json (1 KB minimum a row): billed/ingested {streaming / ingested:.2f}")
    user = sum(v for (purpose, _), v in recorder.billed.items() if purpose.endswith("(user)"))
    print(f"billed/ingested without the users' _recent queries: {(total - user) / ingested:.2f}")
    floor = sum(recorder.floor.values())
    print(
        "floor of the same statements (10 MiB per table referenced, the staged rows each insert "
        f"reads): {floor / ingested:.2f} ("
        + ", ".join(f"{p} {v / ingested:.2f}" for p, v in recorder.floor.most_common())
        + ")"
    )
    if failures:
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"billed/ingested bytes per day: {total / ingested:.2f}")


RECONCILE_MINUTE = 5
"""Minute past each hour the reconciliation runs (``reconcile_cron``)."""
HOUR = timedelta(hours=1)


def cloudwatch_id(index: int) -> str:
    """A CloudWatch-sized event id: 56 decimal digits."""
    return f"{index:056d}"


def _billed_kind(recorder: Recorder, kind: str) -> bool:
    return any(v for (_, k), v in recorder.billed.items() if k == kind)


def _count(client: bigquery.Client, table: str) -> int:
    """Rows of ``table`` in the emulator (outside the recorder: the check is not billed)."""
    return int(next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{table}`").result()))["n"])


def measure_in(client: bigquery.Client, partition_column: str) -> Measure:
    """Bytes of a small table's columns in a range of partitions, read from the emulator."""

    def measure(table: str, columns: frozenset[str] | None, first: date | None, last: date | None) -> int:
        where = []
        if first is not None:
            where.append(f"`{partition_column}` >= TIMESTAMP '{first.isoformat()}'")
        if last is not None:
            where.append(f"`{partition_column}` < TIMESTAMP '{(last + timedelta(days=1)).isoformat()}'")
        sql = f"SELECT * FROM `{table}`" + (f" WHERE {' AND '.join(where)}" if where else "")
        try:
            data = client.query(sql).result().to_arrow(create_bqstorage_client=False)
        except NotFound:
            return 0
        return sum(
            pc.sum(v).as_py() or 0 for c, v in logical_bytes(data).items() if columns is None or c in columns
        )

    return measure


def _row_sizes(sized: dict[str, tuple[list[int], dict[str, list[int]]]]) -> Iterator[int]:
    for times, columns in sized.values():
        for index in range(len(times)):
            yield sum(v[index] for v in columns.values())


@contextmanager
def local_stack(tmp: Path) -> Iterator[tuple[str, str, str]]:
    """moto and the BigQuery emulator on free ports; their URLs and the emulator's gRPC endpoint."""
    aws = moto_service(free_port(), tmp / "moto.log").start()
    bq = bigquery_service(free_port(), free_port(), log_path=tmp / "bq.log").start()
    try:
        yield aws.url, bq.url, f"127.0.0.1:{bq.grpc_port}"
    finally:
        bq.stop()
        aws.stop()


if __name__ == "__main__":
    main()

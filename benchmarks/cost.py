"""Benchmark: what BigQuery would bill, and which quotas it would use, for one stream's day.

Starts local AWS (moto server) and the BigQuery emulator on free ports, then runs one simulated
UTC day of a polling stream (the pipeline's defaults: 15-minute windows, 1-minute refresh of the
open window, a settled load and two late-data sweeps per window) in compressed time, each load
written the way the stream's asset writes it (``write_mode`` of its kind):

* events are put into CloudWatch minute by minute, stamped with the simulated time;
* at each simulated minute the sensor's own planner (:func:`cwl_pipeline.polling.plan.plan_windows`)
  decides what to load, and each request runs the project's load path
  (:func:`cwl_pipeline.load.service.load` of :mod:`cwl_pipeline.polling.read`) and the load
  checks, as the stream's asset does, against the local stack;
* every BigQuery request those make goes through a recording client: each query (SQL and
  parameters) is interpreted by :mod:`cwl_pipeline.core.dml_billing` and billed at that moment
  by BigQuery's on-demand DML rules, on the sizes the stream's tables would have at the target
  volume (``--gb-per-day``, default 20): the simulated rows' logical sizes (BigQuery's data
  size rules) scaled so that the day stores that many bytes. Load jobs, table creations and
  deletions and metadata updates are counted for the quota budget, Storage Write API appends
  and their bytes apart (they are priced per byte ingested, not as query bytes).

The baseline beside the figure is the same day billed as a plain streaming loader would be
(``insert_rows_json``: every byte once, 1 KB minimum per row), on the same scaled rows.

Last line: ``billed/ingested bytes per day: X``. ``--hours`` simulates part of a day (faster,
for a quick look; the partitions are then smaller than a full day's, so X is lower).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cwl_pipeline.adapters.bigquery import BigQueryLoader
from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.config import load_config
from cwl_pipeline.core.dml_billing import billed_bytes, interpret
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.load.service import WriteMode, load, write_mode
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
from cwl_pipeline.orchestration.tables import StreamTables
from cwl_pipeline.polling.assets import LIVE_OVERLAP
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.plan import PlanState, load_passes, plan_windows
from cwl_pipeline.polling.read import read_windows, window_scope

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


@dataclass
class GrowingTables:
    """Sizes of the stream's tables at the simulated moment, scaled to the target volume.

    A row is in its table once the simulated clock passed its event time (every load path
    keeps the open window loaded). Staging tables hold what was uploaded into them.
    """

    scale: float
    by_table: dict[str, tuple[list[int], dict[str, list[int]]]]  # table -> (times ms, column sizes)
    staged: dict[str, dict[str, int]] = field(default_factory=dict)
    now_ms: int = 0
    clustered_on_time: frozenset[str] = frozenset()

    def bytes(
        self,
        table: str,
        columns: frozenset[str] | None,
        first: date | None,
        last: date | None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Scaled bytes of ``columns`` in the partitions ``first``..``last`` (None: all); for a
        table clustered on its partition column, in ``[start, end)`` when given (block pruning,
        idealized: blocks hold consecutive times)."""
        if table in self.staged:
            sizes = self.staged[table]
            return int(sum(v for c, v in sizes.items() if columns is None or c in columns) * self.scale)
        if table not in self.by_table:
            return 0
        times, column_sizes = self.by_table[table]
        low = to_ms(datetime.combine(first, datetime.min.time(), UTC)) if first else None
        high = to_ms(datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)) if last else None
        if table in self.clustered_on_time and start is not None and end is not None:
            low, high = to_ms(start), to_ms(end)
        total = 0
        names = [c for c in column_sizes if columns is None or c in columns]
        for index, t in enumerate(times):
            if t > self.now_ms or (low is not None and t < low) or (high is not None and t >= high):
                continue
            total += sum(column_sizes[c][index] for c in names)
        return int(total * self.scale)


@dataclass
class Recorder:
    """What the load path asked of BigQuery, billed as it went."""

    sizes: GrowingTables
    schemas: dict[str, tuple[str, frozenset[str]]]
    kind: str = ""
    billed: Counter[str] = field(default_factory=Counter)
    by_statement: Counter[str] = field(default_factory=Counter)
    api: Counter[str] = field(default_factory=Counter)
    storage_write_bytes: int = 0
    by_shape: Counter[str] = field(default_factory=Counter)

    def appended(self, data: pa.Table) -> None:
        """Count rows appended through the Storage Write API (billed per byte ingested)."""
        self.api["Storage Write API appends"] += 1
        self.storage_write_bytes += sum(pc.sum(v).as_py() or 0 for v in logical_bytes(data).values())

    def query(self, sql: str, parameters: dict[str, Any]) -> None:
        """Bill one query job (a statement or a script) now."""
        self.api["query jobs"] += 1
        for statement in interpret(sql, parameters, self.schemas):
            cost = billed_bytes(statement, self.sizes)
            self.billed[self.kind] += cost
            self.by_statement[statement.kind] += cost
            shape = f"{self.kind}: {statement.kind} " + " ".join(
                f"{s.table.rsplit('.', 1)[-1][:20]}[{','.join(sorted(s.columns))}]" for s in statement.scans
            )
            self.by_shape[shape] += cost


class RecordingAppender:
    """A :class:`StreamAppender` that tells a :class:`Recorder` what it appends."""

    def __init__(self, appender: StreamAppender, recorder: Recorder) -> None:
        self._appender = appender
        self._recorder = recorder

    def append(self, table: str, data: pa.Table) -> int:
        self._recorder.appended(data)
        return self._appender.append(table, data)


class RecordingClient:
    """A ``bigquery.Client`` that tells a :class:`Recorder` about every job and table call."""

    def __init__(self, client: bigquery.Client, recorder: Recorder) -> None:
        self._client = client
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
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
        sizes = logical_bytes(data)
        self._recorder.sizes.staged[str(destination)] = {c: pc.sum(v).as_py() or 0 for c, v in sizes.items()}
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


def main() -> None:
    """Run the simulated day and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb-per-day", type=float, default=20.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--events-per-minute", type=int, default=6)
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
        stream = load_config(path).streams[0]
        config = load_config(path)
        tables = StreamTables.of(stream)
        logs = boto3.client("logs", endpoint_url=aws_url, region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"])
        logs.create_log_group(logGroupName=GROUP)
        logs.create_log_stream(logGroupName=GROUP, logStreamName="app-1")

        day = floor_to_window(datetime.now(UTC) - timedelta(days=2), timedelta(days=1))
        events = day_of_events(day, args.hours, args.events_per_minute)
        batch = normalize(
            (LogEvent(f"{i:056d}", t, GROUP, "app-1", m, t) for i, (t, m) in enumerate(events)), stream.schema
        )
        sized = {}
        for spec, table in (
            (tables.events_spec, batch.rows_table),
            (tables.rejects_spec, batch.rejects_table),
        ):
            column_sizes = {c: v.to_pylist() for c, v in logical_bytes(table).items()}
            column_sizes["loaded_at"] = [8] * table.num_rows
            time_column = spec.partition_column
            times = [to_ms(t) for t in table[time_column].to_pylist()]
            sized[f"{LOCAL_PROJECT}.{DATASET}.{spec.table}"] = (times, column_sizes)
        stored = sum(sum(sum(v) for v in cols.values()) for _, cols in sized.values())
        ingested = args.gb_per_day * GB * args.hours / 24
        sizes = GrowingTables(
            scale=ingested / stored,
            by_table=sized,
            clustered_on_time=frozenset(
                f"{LOCAL_PROJECT}.{DATASET}.{spec.table}"
                for spec in (tables.events_spec, tables.rejects_spec)
                if spec.clustering[:1] == (spec.partition_column,)
            ),
        )
        schemas = {
            f"{LOCAL_PROJECT}.{DATASET}.{spec.table}": (
                spec.partition_column,
                frozenset(c.name for c in spec.all_columns),
            )
            for spec in (tables.events_spec, tables.rejects_spec)
        }
        recorder = Recorder(sizes, schemas)
        client = bigquery.Client(
            project=LOCAL_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": bq_url},
        )
        loader = BigQueryLoader(RecordingClient(client, recorder), DATASET, location="US")  # type: ignore[arg-type]

        @contextmanager
        def loaders() -> Iterator[BigQueryLoader]:
            yield loader

        reader = logs_reader(AwsResource.from_settings(config.aws))
        appender = BigQueryWarehouse.from_settings(config.bigquery).appender()
        assert appender is not None
        recording_appender = RecordingAppender(appender, recorder)
        ingested_until: dict[datetime, datetime] = {}  # what each window's last refresh appended
        passes = load_passes(stream.settle_lag, stream.sweeps)
        state = PlanState()
        put_until = 0
        sim = day
        day_end = day + timedelta(hours=args.hours)
        end = day_end + max(p.lag for p in passes) + 2 * stream.window
        refreshed_at = day
        loads: Counter[str] = Counter()
        quiet = logging.getLogger("bench.cost")
        began = time.monotonic()
        while sim <= end:
            sim += timedelta(minutes=1)
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
                events_arriving=bool(new) and sim - refreshed_at >= timedelta(0),
            )
            for request in requests:
                # Only the simulated day's windows: later ones belong to the next day's bill.
                start, stop = request.first_start, min(request.last_start + stream.window, day_end)
                if start >= stop:
                    continue
                recorder.kind = request.kind.split("-")[0]
                # As the stream's asset does: the write mode of the kind; checks unless live.
                mode = write_mode(request.kind, live_available=True)
                after = ingested_until.get(start) if mode is WriteMode.LIVE else None
                # CloudWatch stamps ingestion in real time, which runs faster than the simulated
                # clock: the refresh overlap is shrunk by the same factor.
                compression = (time.monotonic() - began) / max(1.0, (sim - day).total_seconds())
                outcome = load(
                    read_windows(stream, reader, start, stop),
                    tables.pair,
                    loaders,
                    quiet,
                    stream.name,
                    mode,
                    appender=recording_appender,  # type: ignore[arg-type]
                    ingested_after=after - LIVE_OVERLAP * compression if after else None,
                )
                if mode is WriteMode.LIVE:
                    if outcome.ingested_until:
                        ingested_until[start] = outcome.ingested_until
                else:
                    groups = outcome.facts.get("log_groups", [])
                    assert isinstance(groups, list)
                    facts = outcome.check_facts(window_scope(stream, start, stop, groups))
                    list(evaluate_load_checks(loader, tables, facts))
                loads[recorder.kind] += 1
        elapsed = time.monotonic() - began

    total = sum(recorder.billed.values())
    streaming = sum(max(1024, r) for r in _row_sizes(sized)) * sizes.scale
    per_day = 24 / args.hours
    print(f"simulated {args.hours:g} h of one stream at {args.gb_per_day:g} GB/day in {elapsed:.0f} s")
    print(f"loads: {dict(loads)}")
    print(
        "billed bytes by load kind (GB/day): "
        + ", ".join(f"{k} {v * per_day / GB:.1f}" for k, v in recorder.billed.items())
    )
    print(
        "billed bytes by statement (GB/day): "
        + ", ".join(f"{k} {v * per_day / GB:.1f}" for k, v in recorder.by_statement.items())
    )
    print(
        "BigQuery API per stream and day: "
        + ", ".join(f"{k} {v * per_day:.0f}" for k, v in recorder.api.items())
    )
    print("largest statement shapes (GB/day):")
    for shape, cost in recorder.by_shape.most_common(6):
        print(f"  {cost * per_day / GB:8.1f}  {shape}")
    jobs = recorder.api["load jobs"] * per_day
    fit = LOAD_JOBS_PER_PROJECT / max(jobs, 1)
    print(f"streams per project by load jobs ({LOAD_JOBS_PER_PROJECT:,}/day): {fit:.0f}")
    write = recorder.storage_write_bytes * sizes.scale
    print(
        f"Storage Write API: {write * per_day / GB:.1f} GB/day appended ({write / ingested:.2f} x ingested; "
        f"priced per byte at about 4x a query byte: ${STORAGE_WRITE_PER_GIB}/GiB against "
        f"${QUERY_PER_TIB}/TiB)"
    )
    dollars = total / 2**40 * QUERY_PER_TIB + write / 2**30 * STORAGE_WRITE_PER_GIB
    print(f"dollars per day, on-demand list prices: {dollars * per_day:.2f}")
    print(f"baseline, insert_rows_json (1 KB minimum a row): billed/ingested {streaming / ingested:.2f}")
    print(f"billed/ingested bytes per day: {total / ingested:.2f}")


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

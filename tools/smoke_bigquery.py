"""Smoke test of a BigQuery project: every statement shape the load path sends, for real.

Run it first on a new project (``make smoke-bigquery``, docs/deployment.md). It makes two
datasets named after ``--dataset-prefix`` (the tables and the staging tables), writes a few
synthetic CloudWatch events through the pipeline's own code (no copies of its SQL), prints
PASS or FAIL per step, drops both datasets, and exits 1 if a step failed:

* the datasets and tables created (read first, then created);
* a settled load (staging load jobs, the counting queries, the insert-missing transaction),
  the same load again (counted, nothing written), a sweep (the key digests of the read and of
  the window compared; then with a late event, read again and inserted), a load by hand (the DELETE + INSERT
  transaction) and an S3-style read (its object keys staged as a scope table, copies stored by
  another load looked up over the hours of its events);
* every load check (completeness, no_duplicate_event_ids, reject_rate, schema_matches), the
  count of rows from unreadable objects and the reconciliation's count per ingestion hour;
* the rollups (each partition's DELETE + INSERT ... SELECT transaction, run as the rollup asset);
* a refresh: one Storage Write API append to the live table, and the ``_recent`` view,
  queried with a time filter. On a real project the view's dry-run bytes are compared with
  the same filter on its two tables: equal when the filter reaches both partitioned scans.

Against a real project (credentials: Application Default Credentials)::

    CWL_SMOKE_PROJECT=my-project CWL_SMOKE_LOCATION=EU python tools/smoke_bigquery.py

Against the local emulator::

    python tools/smoke_bigquery.py --project cwl-local --endpoint http://127.0.0.1:9050 \\
        --storage-write-endpoint 127.0.0.1:9060

The latest_window_loaded check reads Dagster's run history only (no BigQuery statement): it
is not run here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg
from google.cloud import bigquery

from cwl_pipeline.adapters.sql_scopes import in_scope, time_ranges_scope
from cwl_pipeline.config import PipelineConfig, StreamConfig, parse_config
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.windows import floor_to_window, partition_key, to_ms
from cwl_pipeline.firehose.read import objects_scope
from cwl_pipeline.load.service import LoadOutcome, WriteMode, load
from cwl_pipeline.load.tables import LoadScope, StreamTables, ensure_tables, range_label, recent_cutoff_sql
from cwl_pipeline.orchestration.checks import evaluate_load_checks
from cwl_pipeline.orchestration.resources import BigQueryWarehouse
from cwl_pipeline.orchestration.rollups import build_rollups
from cwl_pipeline.polling.read import WindowRangeRead, window_scope
from cwl_pipeline.polling.reconcile_plan import MAX_EVENT_AGE, MAX_EVENT_AHEAD

GROUP = "/cwl-smoke/app"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # Dagster's run log
HOUR = timedelta(hours=1)
_log = logging.getLogger("smoke_bigquery")


class StepFailed(AssertionError):
    """A step ran but BigQuery's answer was not the expected one."""


@dataclass
class Smoke:
    """The project under test, the stream written, and the steps' verdicts."""

    config: PipelineConfig
    warehouse: BigQueryWarehouse
    stream: StreamConfig
    tables: StreamTables
    window: datetime  # a settled window
    results: list[tuple[str, str, str]] = field(default_factory=list)
    ingested: datetime = field(default_factory=lambda: datetime.now(UTC))
    serial: int = 0

    def step(self, name: str, run: Callable[[], str | None]) -> None:
        """Run one step; print and keep PASS (with what it found), FAIL or SKIP."""
        try:
            detail = run() or ""
            verdict = "SKIP" if detail.startswith("skipped") else "PASS"
        except Exception as exc:  # a smoke test reports every failure and goes on
            verdict, detail = "FAIL", f"{type(exc).__name__}: {exc}"
            _log.debug("%s", traceback.format_exc())
        self.results.append((verdict, name, detail))
        print(f"{verdict} {name}" + (f": {detail}" if detail else ""), flush=True)

    def events(
        self, times: list[datetime], *, reject: bool = False, source_object: str | None = None
    ) -> list[LogEvent]:
        """Events at ``times`` (JSON messages of the seed schema; the first not JSON if
        ``reject``), each with a CloudWatch-sized id made of its time: the same time, the same
        event (as a second delivery of it would be)."""
        out = []
        for i, moment in enumerate(times):
            message = "not json" if reject and i == 0 else json.dumps({"session_id": i, "action": "smoke"})
            out.append(
                LogEvent(
                    event_id=f"{to_ms(moment):056d}",
                    timestamp_ms=to_ms(moment),
                    message=message,
                    log_group=GROUP,
                    log_stream="smoke-1",
                    ingestion_time_ms=to_ms(self.ingested),
                    source_object=source_object,
                )
            )
        return out

    def read(
        self, events: list[LogEvent], start: datetime, end: datetime, scope: LoadScope | None = None
    ) -> WindowRangeRead:
        """A read of ``events`` in ``[start, end)`` as a polling read builds it."""
        return WindowRangeRead(
            scope=scope or window_scope(self.stream, start, end, [GROUP]),
            label=range_label(start, end),
            events_at_source=0,
            start=start,
            end=end,
            window=self.stream.window,
            time_column=self.stream.schema.time_column,
            bytes_by_window=Counter(),
            source=lambda: iter(events),
            schema=self.stream.schema,
            rules=self.stream.rules,
            keep_raw=self.stream.raw_table is not None,
        )

    def load(self, reads: list[WindowRangeRead], mode: WriteMode, compare_first: bool = False) -> LoadOutcome:
        appender = self.warehouse.appender() if mode is WriteMode.LIVE else None
        return load(
            reads,
            self.tables,
            self.warehouse.loader,
            _log,
            self.stream.name,
            mode,
            appender=appender,
            compare_first=compare_first,
        )

    def count(self, table: str, where: str = "TRUE", params: list | None = None) -> int:
        with self.warehouse.loader() as loader:
            rows = loader.query_rows(
                f"SELECT COUNT(*) AS n FROM {loader.table_sql(table)} WHERE {where}", params or []
            )
        return int(rows[0]["n"])


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def config_for(args: argparse.Namespace, dataset: str) -> PipelineConfig:
    """A one-stream pipeline config (seed schema, raw table) writing to ``dataset``."""
    bigquery_section = {
        "project": args.project,
        "dataset": dataset,
        "staging_dataset": f"{dataset}_staging",
        "location": args.location,
    }
    if args.endpoint:
        bigquery_section["api_endpoint"] = args.endpoint
        if args.storage_write_endpoint:
            bigquery_section["storage_write_endpoint"] = args.storage_write_endpoint
    raw = {
        "aws": {"region": "us-east-1"},
        "bigquery": bigquery_section,
        "defaults": {"window": "15m", "start": "2026-01-01T00:00:00Z"},
        "streams": [
            {
                "name": "smoke",
                "source": {"type": "cloudwatch", "log_groups": [GROUP]},
                "table": "smoke_events",
                "schema": "seed",
                "raw": True,
                "max_reject_rate": 0.5,
            }
        ],
    }
    return parse_config(raw, env={})


def run_steps(smoke: Smoke) -> None:
    tables, start = smoke.tables, smoke.window
    end = start + smoke.stream.window
    minute = timedelta(minutes=1)
    settled_times = [start + i * minute for i in range(1, 6)]
    old_start = floor_to_window(start - timedelta(days=5), smoke.stream.window)
    settled: dict[str, object] = {}

    def tables_created() -> str:
        with smoke.warehouse.loader() as loader:
            ensure_tables(loader, tables)
            loader.ensure_table(tables.live)
            made = [t.table_id for t in loader.client.list_tables(f"{loader.project}.{loader.dataset}")]
        expect({tables.events.table, tables.rejects.table, tables.live.table} <= set(made), f"tables: {made}")
        return ", ".join(sorted(made))

    def settled_load() -> str:
        read = smoke.read(smoke.events(settled_times, reject=True), start, end)
        outcome = smoke.load([read], WriteMode.INSERT_MISSING)
        settled.update(read=read, outcome=outcome)
        expect(outcome.rows_written == 5 and outcome.transactions == 1, f"wrote {outcome.rows_written} rows")
        # A window five days back: the _recent step's time filter has a partition to prune.
        old = smoke.read(smoke.events([old_start + minute]), old_start, old_start + smoke.stream.window)
        expect(smoke.load([old], WriteMode.INSERT_MISSING).rows_written == 1, "the old window")
        expect(smoke.count(tables.events.table) == 5, "events table")
        expect(smoke.count(tables.rejects.table) == 1, "rejects table")
        return "4 rows and 1 reject in one transaction (and 1 row five days back)"

    def settled_again() -> str:
        read = smoke.read(smoke.events(settled_times, reject=True), start, end)
        outcome = smoke.load([read], WriteMode.INSERT_MISSING)
        expect(outcome.rows_written == 0 and outcome.transactions == 0, f"wrote {outcome.rows_written}")
        return "counted, nothing written, no transaction"

    def swept() -> str:
        read = smoke.read(smoke.events(settled_times, reject=True), start, end)
        outcome = smoke.load([read], WriteMode.INSERT_MISSING, compare_first=True)
        expect(not outcome.job_ids and outcome.transactions == 0, f"staged or wrote: {outcome.job_ids}")
        late = smoke.read(smoke.events([*settled_times, start + 7 * minute], reject=True), start, end)
        outcome = smoke.load([late], WriteMode.INSERT_MISSING, compare_first=True)
        expect(outcome.rows_written == 1 and outcome.transactions == 1, f"wrote {outcome.rows_written}")
        return "key digests equal: nothing staged; a late event: read again, 1 row inserted"

    def replaced() -> str:
        read = smoke.read(smoke.events(settled_times, reject=True), start, end)
        outcome = smoke.load([read], WriteMode.REPLACE)
        expect(outcome.transactions == 1 and smoke.count(tables.events.table) == 5, "after the replace")
        return f"{outcome.rows_written} rows and rejects replaced"

    def checks() -> str:
        read, outcome = settled["read"], settled["outcome"]
        assert isinstance(read, WindowRangeRead) and isinstance(outcome, LoadOutcome)
        with smoke.warehouse.loader() as loader:
            results = list(evaluate_load_checks(loader, smoke.tables, outcome.check_facts(read.scope)))
        failed = [r.check_name for r in results if not r.passed]
        expect(len(results) == 4 and not failed, f"checks failed: {failed}")
        return ", ".join(r.check_name for r in results)

    def s3_read() -> str:
        uri = f"s3://cwl-smoke/{uuid.uuid4().hex}.gz"
        # Two events another load stored already (same id and time), three new ones.
        again = smoke.events(settled_times[1:3], source_object=uri)
        new = smoke.events([start + timedelta(seconds=30 + i) for i in range(3)], source_object=uri)
        events = again + new
        times = [datetime.fromtimestamp(e.timestamp_ms / 1000, UTC) for e in events]
        bounds = (min(times), max(times) + timedelta(milliseconds=1))
        scope = objects_scope(smoke.stream.schema.time_column)([uri], [], bounds)
        read = smoke.read(events, start, end, scope)
        hours = [(floor_to_window(start, HOUR), floor_to_window(start, HOUR) + HOUR)]
        read.stored_scope = LoadScope(
            time_ranges_scope(smoke.stream.schema.time_column, hours), time_ranges_scope("timestamp", hours)
        )
        outcome = smoke.load([read], WriteMode.INSERT_MISSING)
        expect(outcome.stored_elsewhere == 2 and outcome.rows_written == 3, f"{outcome}")
        with smoke.warehouse.loader() as loader:
            verdicts = list(evaluate_load_checks(loader, smoke.tables, outcome.check_facts(read.scope)))
            # The count a load makes of rows kept from objects unreadable now.
            kept = loader.count(tables.events.table, in_scope("source_object", [uri]))
        expect(all(v.passed for v in verdicts), f"checks: {[(v.check_name, v.passed) for v in verdicts]}")
        expect(kept == 3, f"{kept} rows of the object")
        return "3 inserted, 2 found stored by the settled load; checks pass; rows of one object counted"

    def reconciliation() -> str:
        hour = floor_to_window(smoke.ingested, HOUR)
        stored = 0
        with smoke.warehouse.loader() as loader:
            for spec in (tables.events, tables.rejects):
                found = loader.counts_by_ingestion_hour(
                    spec.table,
                    spec.partition_column,
                    [GROUP],
                    hour,
                    hour + HOUR,
                    event_time_before=MAX_EVENT_AGE,
                    event_time_after=MAX_EVENT_AHEAD,
                )
                stored += sum(found.values())
        expected = smoke.count(tables.events.table) + smoke.count(tables.rejects.table)
        expect(stored == expected, f"{stored} counted, {expected} stored")
        return f"{stored} rows in ingestion hour {hour:%H:00}"

    def rollups() -> str:
        assets = build_rollups(smoke.tables, smoke.config.bigquery)
        expect(len(assets) == 2, "the seed schema has two rollups")
        names = []
        for asset in assets:
            partitions = asset.partitions_def
            assert partitions is not None
            key = partitions.get_partition_key_for_timestamp(start.timestamp())
            result = dg.materialize(
                [asset], partition_key=key, resources={"bigquery": smoke.warehouse}, run_config=QUIET
            )
            expect(result.success, f"{asset.key.to_user_string()} failed")
            names.append(asset.key.to_user_string())
        return ", ".join(names)

    def live_append() -> str:
        if smoke.warehouse.api_endpoint and not smoke.warehouse.storage_write_endpoint:
            return "skipped: no --storage-write-endpoint for the emulator"
        now = datetime.now(UTC)
        open_start = floor_to_window(now, smoke.stream.window)
        times = [max(open_start, now - timedelta(seconds=5)) + timedelta(milliseconds=i) for i in range(3)]
        read = smoke.read(smoke.events(times), open_start, open_start + smoke.stream.window)
        outcome = smoke.load([read], WriteMode.LIVE)
        expect(outcome.rows_written == 3 and smoke.count(tables.live.table) == 3, "live table")
        return "3 rows appended to the live table through the Storage Write API"

    def recent_view() -> str:
        view = tables.recent_view
        param = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", start)]
        where = f"`{smoke.stream.schema.time_column}` >= @since"
        recent = smoke.count(view, where, param)
        # Its definition: the events table before the cutoff, the live table from it on.
        time, cutoff = f"`{smoke.stream.schema.time_column}`", recent_cutoff_sql(tables)
        expected = smoke.count(tables.events.table, f"{where} AND {time} < {cutoff}", param) + smoke.count(
            tables.live.table, f"{where} AND {time} >= {cutoff}", param
        )
        expect(recent == expected, f"{recent} rows in the view, {expected} in its tables")
        return f"{recent} rows since {start:%H:%M}; " + dry_run_bytes(smoke, where, param)

    smoke.step("datasets and tables (read, then created)", tables_created)
    smoke.step("settled load: staging loads, counts, insert-missing transaction", settled_load)
    smoke.step("settled load again: counted, nothing to write", settled_again)
    smoke.step("asset checks after the settled load", checks)
    smoke.step("sweep: key digests compared, then a late event inserted", swept)
    smoke.step("load by hand: replace transaction (DELETE + INSERT)", replaced)
    smoke.step("S3 read: staged scope keys, copies stored elsewhere, checks, unreadable count", s3_read)
    smoke.step("reconciliation count per ingestion hour", reconciliation)
    smoke.step("rollups: DELETE + INSERT ... SELECT per partition", rollups)
    smoke.step("refresh: Storage Write API append to the live table", live_append)
    smoke.step("_recent view with a time filter", recent_view)


def dry_run_bytes(smoke: Smoke, where: str, params: list) -> str:
    """Dry-run bytes of the view under ``where`` against the same filter on its two tables."""
    keys = f"`event_id`, `{smoke.stream.schema.time_column}`"
    with smoke.warehouse.loader() as loader:
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=params)

        def estimate(sql: str) -> int:
            return int(loader.client.query(sql, job_config=config).total_bytes_processed or 0)

        view = estimate(f"SELECT COUNT(*) FROM {loader.table_sql(smoke.tables.recent_view)} WHERE {where}")
        whole = estimate(f"SELECT COUNT(*) FROM {loader.table_sql(smoke.tables.recent_view)}")
        tables = sum(
            estimate(f"SELECT {keys} FROM {loader.table_sql(t)} WHERE {where}")
            for t in (smoke.tables.events.table, smoke.tables.live.table)
        )
    if not whole:
        return "dry-run bytes not reported by this endpoint (an emulator): pruning not measured"
    expect(view <= tables, f"the view reads {view} bytes, its tables {tables} under the same filter")
    expect(view < whole, f"the filter pruned nothing: {view} of {whole} bytes")
    return f"dry run: {view} bytes filtered (its tables: {tables}), {whole} unfiltered"


def drop_datasets(warehouse: BigQueryWarehouse) -> str:
    with warehouse.get_client() as client:
        for name in (warehouse.dataset, warehouse.staging_dataset):
            client.delete_dataset(f"{warehouse.project}.{name}", delete_contents=True, not_found_ok=True)
    return f"dropped {warehouse.dataset} and {warehouse.staging_dataset}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--project", default=env("CWL_SMOKE_PROJECT"), help="$CWL_SMOKE_PROJECT")
    parser.add_argument(
        "--location", default=env("CWL_SMOKE_LOCATION", "US"), help="$CWL_SMOKE_LOCATION (US)"
    )
    parser.add_argument(
        "--dataset-prefix",
        default=env("CWL_SMOKE_DATASET_PREFIX", "cwl_smoke"),
        help="$CWL_SMOKE_DATASET_PREFIX (cwl_smoke): datasets <prefix>_<random>, <prefix>_<random>_staging",
    )
    parser.add_argument("--endpoint", default=env("CWL_SMOKE_ENDPOINT"), help="REST endpoint of an emulator")
    parser.add_argument(
        "--storage-write-endpoint", default=env("CWL_SMOKE_STORAGE_WRITE_ENDPOINT"), help="its gRPC host:port"
    )
    parser.add_argument("--keep", action="store_true", help="keep the datasets (to look at them)")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("give --project or $CWL_SMOKE_PROJECT")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    dataset = f"{args.dataset_prefix}_{uuid.uuid4().hex[:8]}"
    config = config_for(args, dataset)
    stream = config.streams[0]
    warehouse = BigQueryWarehouse.from_settings(config.bigquery)
    window = floor_to_window(datetime.now(UTC), stream.window) - 2 * stream.window
    smoke = Smoke(config, warehouse, stream, StreamTables.of(stream), window)
    where = f"{args.project}.{dataset}" + (f" at {args.endpoint}" if args.endpoint else "")
    print(f"BigQuery smoke test of {where} (location {args.location}), window {partition_key(window)}")
    try:
        run_steps(smoke)
    finally:
        if args.keep:
            print(f"kept {dataset} and {dataset}_staging")
        else:
            smoke.step("clean up: drop the datasets", lambda: drop_datasets(warehouse))
    failed = [name for verdict, name, _ in smoke.results if verdict == "FAIL"]
    passed = sum(1 for verdict, _, _ in smoke.results if verdict == "PASS")
    print(f"{passed} passed, {len(failed)} failed, {len(smoke.results) - passed - len(failed)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

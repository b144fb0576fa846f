"""Benchmark: end-to-end latency, PutLogEvents → queryable in BigQuery, on the real local stack.

Starts local AWS (moto server), the BigQuery emulator and Dagster (webserver + daemon, a fresh
``DAGSTER_HOME``, the same ``dagster.yaml`` as ``cwl-pipeline dev``) on free ports, with a
pipeline config holding two CloudWatch polling streams and no demo producers, side by side in
the same Dagster instance and the same minutes: one on the live sensor (``live.path: sensor``,
the default) and one on the refresh runs it replaces (``live.path: runs``). Per stream, a
producer thread calls PutLogEvents continuously (``--rate`` events/s, one event per call, each
with a unique ``session_id`` as marker) and records the wall time each call returned; a poller
queries the stream's ``_recent`` view every ``--poll`` seconds and records when each marker
first became visible.

This runs twice: with the local stack's settings (``refresh_interval`` 30s, ``settle_lag`` 15s)
for ``--minutes``, then with the production defaults (``refresh_interval`` 1m, ``settle_lag``
2m) for ``--production-minutes``. Sanity, failing the benchmark otherwise: every event put is
seen in ``_recent`` exactly once; then, Dagster stopped, the windows not settled yet are
settled with the stream's settled load (insert-missing), and every event is in the events
table exactly once. CPU: the live sensor's own CPU per evaluation (its ``cpu_seconds``
metadata, the evaluating thread's time) and the daemon's process tree (daemon + code server,
not the run workers) from /proc.

Side by side, in the same process and on the same servers, the floor without orchestration:
the same producer and poller while a loop calls the stream's load path
(:func:`cwl_pipeline.load.service.load` of :mod:`cwl_pipeline.polling.read`: FilterLogEvents → decode →
normalize → staging load → one replace transaction) on the open window back to back, with no
sensor, no run queue and no run launch. The difference is what orchestration adds.

Every event put must be seen; missing markers are printed as a correctness failure.

Run: ``python benchmarks/latency.py [--minutes 10] [--production-minutes 3] [--rate 5]
[--baseline-minutes 3]``. The last line is ``p50 s: A, p95 s: B, runs per hour: C`` of the
live sensor at the local settings, the refresh runs' figures beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import LoadSampler, describe
from cwl_pipeline.cli.dev import DAGSTER_YAML, WORKSPACE_YAML
from cwl_pipeline.config import StreamConfig, load_config
from cwl_pipeline.core.windows import floor_to_window
from cwl_pipeline.load.service import load as load_reads
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.local.processes import (
    LOCAL_CREDENTIALS,
    LOCAL_PROJECT,
    LocalService,
    bigquery_service,
    free_port,
    moto_service,
)
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline.orchestration.tables import STREAM_TAG
from cwl_pipeline.polling.filter_log_events import logs_reader
from cwl_pipeline.polling.read import read_windows

REGION = LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]
STREAMS = ("web-1", "web-2")
ACTIONS = ("view", "click", "search", "add_to_cart", "checkout", "logout")
PAGES = ("/", "/products", "/products/42", "/cart", "/search", "/account")

CONFIG_TEMPLATE = """\
aws: {{region: {region}, endpoint_url: "{aws_url}", retry_mode: adaptive, max_attempts: 8}}
bigquery: {{project: {project}, dataset: {dataset}, location: US, api_endpoint: "{bq_url}",
            storage_write_endpoint: "{bq_grpc}"}}
defaults:
  window: 15m
  settle_lag: {settle_lag}
  refresh_interval: {refresh_interval}
  max_windows_per_run: 96
  initial_lookback: 1h
  start: "2026-11-01T00:00:00Z"
streams:
{streams}"""
STREAM_TEMPLATE = """\
  - name: {name}
    source: {{type: cloudwatch, log_groups: ["{group}"]}}
    table: {name}
    schema: seed
    live: {{path: {path}}}
"""
LOCAL = {"refresh_interval": "30s", "settle_lag": "15s"}  # cwl_pipeline/pipeline.local.yaml
PRODUCTION = {"refresh_interval": "1m", "settle_lag": "2m"}  # the config's defaults


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``nan`` for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> str:
    """``p50 / p95 / p99 / max`` in seconds."""
    return (
        f"p50 {percentile(values, 50):6.1f} s  p95 {percentile(values, 95):6.1f} s  "
        f"p99 {percentile(values, 99):6.1f} s  max {max(values, default=math.nan):6.1f} s"
    )


class Producer(threading.Thread):
    """Calls PutLogEvents ``rate`` times a second, one event per call, each with a unique marker."""

    def __init__(self, client: Any, group: str, rate: float, first_marker: int = 1) -> None:
        super().__init__(name=f"producer {group}", daemon=True)
        self.client, self.group, self.rate = client, group, rate
        self.next_marker = first_marker
        self.put_at: dict[int, float] = {}  # marker → wall time PutLogEvents returned
        self.stamp: dict[int, datetime] = {}  # marker → the event's timestamp (its window)
        self.errors = 0
        self.rng = random.Random(11)
        self._stopping = threading.Event()

    def message(self, marker: int) -> str:
        """A realistic seed-schema message whose session_id is the marker."""
        action = self.rng.choice(ACTIONS)
        params: dict[str, Any] = {"page": self.rng.choice(PAGES), "duration_ms": self.rng.randint(3, 2500)}
        if action == "search":
            params["query"] = self.rng.choice(["shoes", "red hat", "gift card", "läufer"])
        return json.dumps({"session_id": marker, "action": action, "params": params}, ensure_ascii=False)

    def run(self) -> None:
        """Put until :meth:`stop`, at a steady rate."""
        interval, due = 1.0 / self.rate, time.monotonic()
        while not self._stopping.is_set():
            marker = self.next_marker
            stream = STREAMS[marker % len(STREAMS)]
            event = {"timestamp": int(time.time() * 1000), "message": self.message(marker)}
            try:
                self.client.put_log_events(logGroupName=self.group, logStreamName=stream, logEvents=[event])
            except Exception as exc:  # counted; the marker is not reused, so it is never expected
                self.errors += 1
                print(f"  PutLogEvents failed: {exc}", flush=True)
            else:
                self.put_at[marker] = time.time()
                self.stamp[marker] = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
            self.next_marker += 1
            due += interval
            self._stopping.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        """Stop after the current call."""
        self._stopping.set()
        self.join()


class Poller(threading.Thread):
    """Queries the events table every ``interval`` s and records when each marker first appears."""

    def __init__(self, client: bigquery.Client, table_id: str, producer: Producer, interval: float) -> None:
        super().__init__(name=f"poller {table_id}", daemon=True)
        self.client, self.table_id, self.producer, self.interval = client, table_id, producer, interval
        self.seen_at: dict[int, float] = {}
        self.query_seconds: list[float] = []
        self.load = LoadSampler()
        self._stopping = threading.Event()

    def lowest_unseen(self) -> int:
        """The smallest marker put but not yet seen (or the next one to be put)."""
        pending = [m for m in list(self.producer.put_at) if m not in self.seen_at]
        return min(pending, default=self.producer.next_marker)

    def poll_once(self) -> None:
        """One query for markers not seen yet; visible rows are stamped with the query's end."""
        started = time.time()
        sql = f"SELECT session_id FROM `{self.table_id}` WHERE session_id >= {self.lowest_unseen()}"
        try:
            markers = [row["session_id"] for row in self.client.query(sql).result()]
        except gexc.NotFound:
            return  # the first load creates the table
        finished = time.time()
        self.query_seconds.append(finished - started)
        for marker in markers:
            self.seen_at.setdefault(marker, finished)

    def run(self) -> None:
        """Poll until :meth:`stop`; sample the load average every ~15 s."""
        last_sample = 0.0
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                print(f"  poll failed: {exc}", flush=True)
            if time.monotonic() - last_sample > 15:
                self.load.sample()
                last_sample = time.monotonic()
            self._stopping.wait(self.interval)

    def drain(self, timeout: float) -> None:
        """Keep polling until every marker put was seen, or ``timeout`` s passed; then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(m not in self.seen_at for m in list(self.producer.put_at)):
            time.sleep(0.5)
        self._stopping.set()
        self.join()

    def latencies(self) -> dict[int, float]:
        """Marker → seconds from PutLogEvents returning to first visible."""
        return {m: self.seen_at[m] - t for m, t in self.producer.put_at.items() if m in self.seen_at}

    def missing(self) -> list[int]:
        """Markers put but never seen."""
        return sorted(m for m in self.producer.put_at if m not in self.seen_at)


@dataclass
class Stack:
    """The local servers and what the benchmark needs to reach them."""

    home: Path
    services: list[LocalService] = field(default_factory=list)
    aws_url: str = ""
    bq_url: str = ""
    bq_grpc: str = ""

    def stop(self) -> None:
        """Stop every service, newest first."""
        for service in reversed(self.services):
            service.stop()

    def logs_client(self) -> Any:
        """A boto3 CloudWatch Logs client on local AWS."""
        return boto3.client("logs", endpoint_url=self.aws_url, region_name=REGION)

    def bq_client(self) -> bigquery.Client:
        """A BigQuery client on the emulator."""
        return bigquery.Client(
            project=LOCAL_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.bq_url},
        )

    def write_config(
        self,
        name: str,
        group: str,
        args: argparse.Namespace,
        streams: dict[str, tuple[str, str]] | None = None,
        settings: dict[str, str] | None = None,
    ) -> Path:
        """A pipeline config with one CloudWatch stream ``name`` reading ``group``, or with
        ``streams`` (name → (log group, live path)) and ``settings`` (settle_lag, refresh_interval)."""
        path = self.home / f"{name}.yaml"
        chosen = streams or {name: (group, "sensor")}
        settings = settings or {"settle_lag": args.settle_lag, "refresh_interval": args.refresh_interval}
        path.write_text(
            self.config_text(
                settings,
                "".join(STREAM_TEMPLATE.format(name=n, group=g, path=p) for n, (g, p) in chosen.items()),
            )
        )
        return path

    def config_text(self, settings: dict[str, str], streams: str) -> str:
        """A pipeline config on this stack's servers with ``streams`` (YAML list items) and
        ``settings`` (settle_lag, refresh_interval)."""
        return CONFIG_TEMPLATE.format(
            region=REGION,
            aws_url=self.aws_url,
            bq_url=self.bq_url,
            bq_grpc=self.bq_grpc,
            project=LOCAL_PROJECT,
            dataset="bench",
            settle_lag=settings["settle_lag"],
            refresh_interval=settings["refresh_interval"],
            streams=streams,
        )


def start_servers(home: Path) -> Stack:
    """Local AWS and the BigQuery emulator on free ports, logging under ``home``."""
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    stack = Stack(home)
    aws = moto_service(free_port(), log_path=home / "moto.log")
    stack.services.append(aws.start())
    bq = bigquery_service(free_port(), free_port(), data_dir=home / "bigquery", log_path=home / "bq.log")
    stack.services.append(bq.start())
    stack.aws_url, stack.bq_url, stack.bq_grpc = aws.url, bq.url, f"127.0.0.1:{bq.grpc_port}"
    return stack


def create_group(client: Any, group: str) -> None:
    """Create ``group`` and its streams."""
    client.create_log_group(logGroupName=group)
    for stream in STREAMS:
        client.create_log_stream(logGroupName=group, logStreamName=stream)


def start_dagster(
    stack: Stack, config: Path, dequeue_interval: int | None, home_name: str = "dagster_home"
) -> dict[str, str]:
    """Dagster webserver + daemon as ``cwl-pipeline dev`` starts them; returns their env.

    ``dequeue_interval`` overrides the run queue's ``dequeue_interval_seconds`` (``cwl-pipeline dev``: 1).
    """
    dagster_home = stack.home / home_name
    dagster_home.mkdir()
    instance_yaml = DAGSTER_YAML
    if dequeue_interval:
        instance_yaml = re.sub(
            r"dequeue_interval_seconds: \d+", f"dequeue_interval_seconds: {dequeue_interval}", instance_yaml
        )
    (dagster_home / "dagster.yaml").write_text(instance_yaml)
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML)
    # Create the instance's SQLite storage here, once: the webserver and the daemon starting
    # together on a fresh DAGSTER_HOME can both migrate it and leave two alembic heads.
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))).dispose()
    env = {"DAGSTER_HOME": str(dagster_home), "CWL_PIPELINE_CONFIG": str(config), **LOCAL_CREDENTIALS}
    bin_dir = Path(sys.executable).parent
    restore = _restore_default_signals
    webserver = LocalService(
        "Dagster webserver",
        [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(free_port()), "-w", str(workspace)],
        port=0,
        env=env,
        log_path=stack.home / f"{home_name}-webserver.log",
    )
    daemon = LocalService(
        "Dagster daemon",
        [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
        port=0,
        env=env,
        log_path=stack.home / f"{home_name}-daemon.log",
    )
    stack.services.append(webserver.start(preexec=restore))
    stack.services.append(daemon.start(preexec=restore))
    return env


def _restore_default_signals() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- the floor: the load path called directly, back to back -------------------------------------


def run_direct(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Producer + poller while a loop reloads the open window with the project's load path."""
    group = "/bench/direct"
    create_group(stack.logs_client(), group)
    config = load_config(stack.write_config("direct_events", group, args))
    stream: StreamConfig = config.streams[0]
    tables = StreamTables.of(stream)
    aws = AwsResource.from_settings(config.aws)
    warehouse = BigQueryWarehouse.from_settings(config.bigquery)
    quiet = logging.getLogger("bench.direct")
    quiet.setLevel(logging.WARNING)

    def load(start: datetime) -> float:
        began = time.monotonic()
        reads = read_windows(stream, logs_reader(aws), start, start + stream.window)
        load_reads(reads, tables, warehouse.loader, quiet, stream.name)
        return time.monotonic() - began

    load(floor_to_window(datetime.now(UTC), stream.window))  # creates the tables: not measured
    producer = Producer(stack.logs_client(), group, args.rate)
    poller = Poller(stack.bq_client(), f"{LOCAL_PROJECT}.bench.direct_events", producer, args.poll)
    durations: list[float] = []
    stop_at = time.monotonic() + args.baseline_minutes * 60
    producer.start()
    poller.start()
    previous = floor_to_window(datetime.now(UTC), stream.window)
    while time.monotonic() < stop_at + 120:
        if time.monotonic() >= stop_at:
            if producer.is_alive():
                producer.stop()
            if not poller.missing():
                break
        current = floor_to_window(datetime.now(UTC), stream.window)
        if current != previous:  # the window just closed: load it once more, then move on
            durations.append(load(previous))
            previous = current
        durations.append(load(current))
    if producer.is_alive():
        producer.stop()
    poller.drain(10)
    return {"producer": producer, "poller": poller, "load_seconds": durations}


# --- the pipeline: sensor → run queue → run → BigQuery -----------------------------------------


@dataclass
class RunFacts:
    """One run of the stream's load, from the Dagster instance."""

    run_id: str
    kind: str
    status: str
    created: float
    started: float | None
    ended: float | None
    committed: float | None  # first materialization event: the replace transaction committed
    windows: tuple[datetime, datetime]
    failure: str = ""


def run_facts(instance: Any, stream: str, window: timedelta) -> list[RunFacts]:
    """Every run of ``stream`` with its timestamps and the windows it loaded."""
    import dagster as dg

    facts = []
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={STREAM_TAG: stream})):
        run = record.dagster_run
        tags = run.tags
        first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
        last = tags.get("dagster/asset_partition_range_end") or first
        start = datetime.strptime(first, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        end = datetime.strptime(last, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) + window
        logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        failure = ""
        if run.status != dg.DagsterRunStatus.SUCCESS:
            failed = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            failure = "; ".join(_error_text(e.dagster_event.event_specific_data.error) for e in failed)
        facts.append(
            RunFacts(
                run_id=run.run_id,
                kind=tags.get("cwl/load", "manual"),
                status=run.status.value,
                created=record.create_timestamp.timestamp(),
                started=record.start_time,
                ended=record.end_time,
                committed=min((e.timestamp for e in logs), default=None),
                windows=(start, end),
                failure=failure,
            )
        )
    return sorted(facts, key=lambda f: f.created)


def _error_text(error: Any) -> str:
    parts = []
    while error is not None:
        text = error.message.strip()
        parts.append(text.splitlines()[0] if text else error.cls_name)
        error = error.cause
    return " <- ".join(parts)


def sensor_tick_times(instance: Any, sensor_name: str, after: float) -> list[float]:
    """Timestamps of the sensor's ticks after ``after``."""
    from dagster._core.definitions.run_request import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor_name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
            return sorted(t.timestamp for t in ticks)
    return []


def visible_by(runs: list[RunFacts], stamp: datetime, put: float, seen: float) -> RunFacts | None:
    """The run that made an event visible: the latest one covering its window that committed
    after the event was put and before it was seen (None if there is none)."""
    covering = [r for r in runs if r.windows[0] <= stamp < r.windows[1] and put <= (r.committed or 0) <= seen]
    return max(covering, key=lambda r: r.committed or 0) if covering else None


def breakdown(producer: Producer, poller: Poller, runs: list[RunFacts]) -> dict[str, list[float]]:
    """Per event, split its latency at the run that made it visible.

    That run is the latest successful run covering the event's window that committed before
    the event was first seen. Parts: put → run created (sensor tick wait, refresh interval,
    a refresh still running), created → started (run queue and launch), started → committed
    (read, normalize, stage, replace), committed → seen (poll resolution).
    """
    parts: dict[str, list[float]] = {"tick wait": [], "queue + launch": [], "load": [], "poll": []}
    done = [r for r in runs if r.status == "SUCCESS" and r.committed and r.started]
    for marker, put in producer.put_at.items():
        seen = poller.seen_at.get(marker)
        if seen is None:
            continue
        run = visible_by(done, producer.stamp[marker], put, seen)
        if run is None:
            continue
        parts["tick wait"].append(run.created - put)
        parts["queue + launch"].append((run.started or 0) - run.created)
        parts["load"].append((run.committed or 0) - (run.started or 0))
        parts["poll"].append(seen - (run.committed or 0))
    return parts


@dataclass
class Side:
    """One stream of a side-by-side phase: its producer, poller and what Dagster recorded."""

    name: str
    path: str  # live.path: "sensor" or "runs"
    group: str
    producer: Producer
    poller: Poller
    runs: list[RunFacts] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    live_metadata: list[dict[str, Any]] = field(default_factory=list)
    duplicates_in_recent: int = 0
    settled_once: bool = False
    settled_note: str = ""


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` itself (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_tree(daemon_pid: int) -> list[int]:
    """The daemon and its code servers (children whose command line says ``grpc``), not the
    run workers (``execute_run``)."""
    pids = [daemon_pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ppid == daemon_pid and "grpc" in cmdline and "execute_run" not in cmdline:
            pids.append(int(entry.name))
    return pids


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of ``pids`` (those still alive)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a process gone since
            total += proc_cpu_seconds(pid)
    return total


def live_materializations(instance: Any, table: str) -> list[dict[str, Any]]:
    """Metadata of the live sensor's reports on ``<table>_live``, oldest first."""
    import dagster as dg

    records = instance.fetch_materializations(dg.AssetKey(f"{table}_live"), limit=10_000).records
    found = []
    for record in records:
        mat = record.asset_materialization
        if mat is not None:
            found.append({"at": record.timestamp, **{k: v.value for k, v in mat.metadata.items()}})
    return sorted(found, key=lambda m: m["at"])


def count_per_marker(client: bigquery.Client, table_id: str) -> dict[int, int]:
    """Rows per marker (session_id) in ``table_id``."""
    sql = f"SELECT session_id, COUNT(*) AS n FROM `{table_id}` GROUP BY session_id"
    return {row["session_id"]: row["n"] for row in client.query(sql).result()}


def settle_remaining(stack: Stack, config_path: Path, since: datetime) -> None:
    """The settled load (insert-missing, as a settled run writes) of every window from
    ``since`` to the open one, for each stream of the config: what the window sensor would
    request once they closed."""
    from cwl_pipeline.load.service import WriteMode

    config = load_config(config_path)
    aws = AwsResource.from_settings(config.aws)
    warehouse = BigQueryWarehouse.from_settings(config.bigquery)
    quiet = logging.getLogger("bench.settle")
    quiet.setLevel(logging.WARNING)
    for stream in config.streams:
        start = floor_to_window(since, stream.window)
        end = floor_to_window(datetime.now(UTC), stream.window) + stream.window
        reads = read_windows(stream, logs_reader(aws), start, end)
        load_reads(
            reads, StreamTables.of(stream), warehouse.loader, quiet, stream.name, WriteMode.INSERT_MISSING
        )


def run_side_by_side(
    stack: Stack, args: argparse.Namespace, label: str, settings: dict[str, str], minutes: float
) -> dict[str, Any]:
    """Both live paths, one stream each, in one Dagster instance, producing at the same time."""
    import dagster as dg

    sides_spec = {f"{label}_live": "sensor", f"{label}_runs": "runs"}
    groups = {name: f"/bench/{name}" for name in sides_spec}
    for group in groups.values():
        create_group(stack.logs_client(), group)
    config_path = stack.write_config(
        label, "", args, streams={n: (groups[n], p) for n, p in sides_spec.items()}, settings=settings
    )
    config = load_config(config_path)
    window = config.streams[0].window
    began = time.time()
    before = len(stack.services)
    env = start_dagster(stack, config_path, args.dequeue_interval, home_name=f"dagster_{label}")
    dagster_services = stack.services[before:]
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    instance = dg.DagsterInstance.get()
    # Warm-up: each window sensor's first tick requests the last hour's (empty) closed windows;
    # produce once those runs finished, so the figures show steady state.
    deadline = time.time() + 240
    while time.time() < deadline:
        runs = [r for n in sides_spec for r in run_facts(instance, n, window)]
        if len({r.run_id for r in runs}) >= len(sides_spec) and all(r.ended for r in runs):
            break
        time.sleep(1)
    warm_up = time.time() - began
    print(f"  Dagster up and first runs finished after {warm_up:.0f} s", flush=True)
    sides = []
    for offset, (name, path) in enumerate(sides_spec.items()):
        producer = Producer(
            stack.logs_client(), groups[name], args.rate, first_marker=1 + offset * 10_000_000
        )
        poller = Poller(stack.bq_client(), f"{LOCAL_PROJECT}.bench.{name}_recent", producer, args.poll)
        sides.append(Side(name, path, groups[name], producer, poller))
    daemon_pid = dagster_services[-1].process.pid  # type: ignore[union-attr]
    cpu_before = {pid: tree_cpu([pid]) for pid in daemon_tree(daemon_pid)}
    produce_from = time.time()
    for side in sides:
        side.producer.start()
        side.poller.start()
    minutes_done = 0
    while time.time() < produce_from + minutes * 60:
        time.sleep(5)
        if (time.time() - produce_from) // 60 > minutes_done:
            minutes_done += 1
            counts = "; ".join(
                f"{s.name} {len(s.producer.put_at)} put, {len(s.poller.seen_at)} seen" for s in sides
            )
            print(f"  {minutes_done} min: {counts}", flush=True)
    for side in sides:
        side.producer.stop()
    produced_seconds = time.time() - produce_from
    for side in sides:
        side.poller.drain(args.drain)
    # Per process: a code server that replaced another counts from its start.
    cpu_seconds = sum(tree_cpu([pid]) - cpu_before.get(pid, 0.0) for pid in daemon_tree(daemon_pid))
    cpu_wall = time.time() - produce_from
    deadline = time.time() + 60  # let runs in flight finish, so each has its commit time
    while time.time() < deadline and not all(
        r.ended for n in sides_spec for r in run_facts(instance, n, window)
    ):
        time.sleep(1)
    for side in sides:
        side.runs = [r for r in run_facts(instance, side.name, window) if r.created >= produce_from - 1]
        sensor = f"{side.name}_live" if side.path == "sensor" else f"{side.name}_windows"
        side.ticks = sensor_tick_times(instance, sensor, produce_from)
        side.live_metadata = [
            m for m in live_materializations(instance, side.name) if m["at"] >= produce_from
        ]
    for service in reversed(dagster_services):
        service.stop()
        stack.services.remove(service)
    # Sanity: each event once in _recent; then settled, each event once in the table.
    client = stack.bq_client()
    settle_remaining(stack, config_path, datetime.fromtimestamp(produce_from, UTC) - window)
    for side in sides:
        recent = count_per_marker(client, f"{LOCAL_PROJECT}.bench.{side.name}_recent")
        put_markers = set(side.producer.put_at)
        side.duplicates_in_recent = sum(1 for m in put_markers if recent.get(m, 0) > 1)
        table = count_per_marker(client, f"{LOCAL_PROJECT}.bench.{side.name}")
        missing = [m for m in put_markers if table.get(m, 0) == 0]
        twice = [m for m in put_markers if table.get(m, 0) > 1]
        side.settled_once = not missing and not twice
        side.settled_note = f"events table: {len(missing)} missing, {len(twice)} more than once"
    return {
        "label": label,
        "settings": settings,
        "sides": sides,
        "minutes": produced_seconds / 60,
        "warm_up": warm_up,
        "daemon_cpu_seconds": cpu_seconds,
        "daemon_cpu_wall": cpu_wall,
    }


FIREHOSE_STREAM = """\
  - name: {name}
    source:
      type: s3
      bucket: {bucket}
      prefix: {prefix}
      layout: firehose
      record_format: envelopes_gzip
      log_group: {group}
      notifications: {{queue_url: "{queue_url}"}}
    table: {name}
    schema: seed
"""


def run_firehose(stack: Stack, args: argparse.Namespace, minutes: float) -> dict[str, Any]:
    """A Firehose stream with a 0-second buffering interval and S3 notifications in SQS:
    log group → subscription filter → Firehose → S3 → notification → objects sensor → run."""
    import dagster as dg

    from cwl_pipeline.local.firehose_demo import ensure_firehose_delivery, ensure_object_notifications

    name, group, bucket, prefix = "fh_events", "/bench/firehose", "bench-firehose", "fh/"
    clients = {
        n: boto3.client(n, endpoint_url=stack.aws_url, region_name=REGION) for n in ("firehose", "s3", "sqs")
    }
    logs = stack.logs_client()
    ensure_firehose_delivery(
        logs=logs,
        firehose=clients["firehose"],
        s3=clients["s3"],
        log_group=group,
        delivery_stream="bench-delivery",
        bucket=bucket,
        prefix=prefix,
        buffer_seconds=0,
    )
    for stream in STREAMS:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    queue_url = ensure_object_notifications(
        sqs=clients["sqs"], s3=clients["s3"], bucket=bucket, prefix=prefix, queue="bench-objects"
    )
    path = stack.home / "firehose.yaml"
    path.write_text(
        stack.config_text(
            LOCAL,
            FIREHOSE_STREAM.format(name=name, bucket=bucket, prefix=prefix, group=group, queue_url=queue_url),
        )
    )
    window = load_config(path).streams[0].window
    before = len(stack.services)
    env = start_dagster(stack, path, args.dequeue_interval, home_name="dagster_firehose")
    dagster_services = stack.services[before:]
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    instance = dg.DagsterInstance.get()
    time.sleep(20)  # the code server loads; the sensor's first tick lists an empty bucket
    producer = Producer(logs, group, args.rate)
    side = Side(
        name,
        "firehose",
        group,
        producer,
        Poller(stack.bq_client(), f"{LOCAL_PROJECT}.bench.{name}", producer, args.poll),
    )
    produce_from = time.time()
    producer.start()
    side.poller.start()
    while time.time() < produce_from + minutes * 60:
        time.sleep(5)
    producer.stop()
    produced_seconds = time.time() - produce_from
    side.poller.drain(args.drain)
    side.runs = [r for r in run_facts(instance, name, window) if r.created >= produce_from - 1]
    side.ticks = sensor_tick_times(instance, f"{name}_objects", produce_from)
    for service in reversed(dagster_services):
        service.stop()
        stack.services.remove(service)
    table = count_per_marker(stack.bq_client(), f"{LOCAL_PROJECT}.bench.{name}")
    put_markers = set(producer.put_at)
    missing = [m for m in put_markers if table.get(m, 0) == 0]
    twice = [m for m in put_markers if table.get(m, 0) > 1]
    side.settled_once = not missing and not twice
    side.settled_note = f"events table: {len(missing)} missing, {len(twice)} more than once"
    return {"side": side, "minutes": produced_seconds / 60}


def report_firehose(result: dict[str, Any]) -> bool:
    """Print the Firehose phase; False when a sanity check failed."""
    side: Side = result["side"]
    print(
        f"== Firehose, buffering interval 0 s, S3 notifications in SQS; objects sensor every "
        f"{LOCAL['refresh_interval']} (local refresh_interval); {result['minutes']:.1f} min of events =="
    )
    ok = report_events(
        f"{side.name}: subscription → Firehose → S3 → notification → sensor → run", side.producer, side.poller
    )
    report_runs(side)
    print(f"  runs per hour: {runs_per_hour(side, result['minutes']):.0f}")
    print(
        f"  sanity: every event once in the events table: {'ok' if side.settled_once else 'FAILED'} "
        f"({side.settled_note})"
    )
    return ok and side.settled_once


# --- report ----------------------------------------------------------------------------------


def report_events(label: str, producer: Producer, poller: Poller) -> bool:
    """Print put/seen counts and the latency spread; False when a marker was never seen."""
    latencies = list(poller.latencies().values())
    missing = poller.missing()
    print(f"{label}:")
    print(
        f"  events put {len(producer.put_at)} (PutLogEvents errors {producer.errors}), "
        f"seen {len(latencies)}, missing {len(missing)}"
    )
    if latencies:
        print(f"  put → queryable: {spread(latencies)}")
    if poller.query_seconds:
        print(
            f"  poll query: p50 {percentile(poller.query_seconds, 50):.2f} s, "
            f"max {max(poller.query_seconds):.2f} s (every {poller.interval:.1f} s)"
        )
    print(f"  {poller.load.summary()}")
    if missing:
        print(f"  CORRECTNESS FAILURE: {len(missing)} events never seen, e.g. markers {missing[:10]}")
    return not missing


def report_runs(side: Side) -> None:
    """Print run counts, durations, tick intervals and (refresh runs) the latency breakdown."""
    runs = side.runs
    kinds: dict[str, int] = {}
    for run in runs:
        kinds[run.kind] = kinds.get(run.kind, 0) + 1
    failed = [r for r in runs if r.status in ("FAILURE", "CANCELED")]
    in_flight = [r for r in runs if r.status != "SUCCESS" and r not in failed]
    print(
        f"  runs launched {len(runs)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or 'none'}), "
        f"failed {len(failed)}, still queued or running at the end {len(in_flight)}"
    )
    for run in failed:
        when = datetime.fromtimestamp(run.created, UTC).strftime("%H:%M:%S")
        print(f"    {run.status} {run.kind} run created {when}: {run.failure or 'no step failure logged'}")
    durations = [r.ended - r.started for r in runs if r.ended and r.started]
    launches = [r.started - r.created for r in runs if r.started]
    if runs:
        print(
            f"  run duration (started → ended): p50 {percentile(durations, 50):.1f} s, "
            f"max {max(durations, default=math.nan):.1f} s; created → started: "
            f"p50 {percentile(launches, 50):.1f} s, max {max(launches, default=math.nan):.1f} s"
        )
    gaps = [b - a for a, b in itertools.pairwise(side.ticks)]
    if gaps:
        print(
            f"  sensor ticks {len(side.ticks)}, interval p50 {percentile(gaps, 50):.1f} s, "
            f"max {max(gaps):.1f} s"
        )
    if side.path == "runs":
        parts = breakdown(side.producer, side.poller, runs)
        counted = len(parts["load"])
        if counted:
            print(f"  where the time goes ({counted} events attributed to the run that made them visible):")
            for part, values in parts.items():
                print(
                    f"    {part:15s} p50 {percentile(values, 50):6.1f} s  "
                    f"p95 {percentile(values, 95):6.1f} s  mean {sum(values) / len(values):6.1f} s"
                )


def report_live(side: Side, minutes: float) -> None:
    """The live sensor's own figures: evaluations that appended, their duration, CPU and calls."""
    meta = side.live_metadata
    if not meta:
        print("  live sensor: no evaluation appended anything")
        return
    seconds = [m["evaluation_seconds"] for m in meta]
    cpu = sum(m["cpu_seconds"] for m in meta)
    calls = sum(m["filter_log_events_calls"] for m in meta)
    appended = sum(m["events_appended"] for m in meta)
    print(
        f"  live sensor: {len(meta)} evaluations appended {appended} rows "
        f"({appended - len(side.producer.put_at):+d} vs events put: overlap re-appended), "
        f"evaluation p50 {percentile(seconds, 50):.2f} s, max {max(seconds):.2f} s; "
        f"FilterLogEvents {calls / (minutes * 60):.2f} requests/s"
    )
    print(
        f"  live sensor CPU (evaluating thread): {cpu:.1f} s in {minutes:.1f} min = "
        f"{cpu / (minutes * 60) * 100:.2f} % of one core per stream"
    )


def runs_per_hour(side: Side, minutes: float) -> float:
    """Runs of the stream created while producing, per hour."""
    return len(side.runs) / minutes * 60


def report_phase(result: dict[str, Any]) -> bool:
    """Print one phase's figures; False when a sanity check failed."""
    ok = True
    settings = result["settings"]
    print(
        f"== {result['label']}: refresh_interval {settings['refresh_interval']}, settle_lag "
        f"{settings['settle_lag']}, live sensor every 5s; {result['minutes']:.1f} min of events =="
    )
    for side in result["sides"]:
        title = (
            "live sensor (live.path: sensor): the sensor appends, no run"
            if side.path == "sensor"
            else "refresh runs (live.path: runs): sensor → run queue → run"
        )
        ok &= report_events(f"{side.name}, {title}", side.producer, side.poller)
        report_runs(side)
        if side.path == "sensor":
            report_live(side, result["minutes"])
        print(f"  runs per hour: {runs_per_hour(side, result['minutes']):.0f}")
        sane = side.duplicates_in_recent == 0 and side.settled_once
        print(
            f"  sanity: {side.duplicates_in_recent} events more than once in _recent; "
            f"{side.settled_note}: {'ok' if sane else 'FAILED'}"
        )
        ok &= sane
    print(
        "  daemon + code server CPU (both streams, run workers excluded): "
        f"{result['daemon_cpu_seconds']:.1f} s "
        f"in {result['daemon_cpu_wall'] / 60:.1f} min = "
        f"{result['daemon_cpu_seconds'] / result['daemon_cpu_wall'] * 100:.1f} % of one core"
    )
    print(f"  Dagster start-up to first finished runs (not in the figures): {result['warm_up']:.0f} s")
    return ok


def figures(side: Side, minutes: float) -> str:
    """``p50 s: A, p95 s: B, runs per hour: C`` of one side."""
    latencies = list(side.poller.latencies().values())
    return (
        f"p50 s: {percentile(latencies, 50):.1f}, p95 s: {percentile(latencies, 95):.1f}, "
        f"runs per hour: {runs_per_hour(side, minutes):.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the floor (optional), both live paths at the local settings, then at the production
    defaults, and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="produce for this long (default 10)")
    parser.add_argument(
        "--production-minutes",
        type=float,
        default=3,
        help="then with the production defaults, minutes (default 3; 0: skip)",
    )
    parser.add_argument(
        "--firehose-minutes",
        type=float,
        default=0,
        help="then a Firehose stream, 0-second buffering and S3 notifications, minutes (default 0: skip)",
    )
    parser.add_argument("--rate", type=float, default=5, help="events per second per stream (default 5)")
    parser.add_argument("--poll", type=float, default=1.0, help="BigQuery poll interval in s (default 1)")
    parser.add_argument(
        "--baseline-minutes", type=float, default=0, help="floor without Dagster first, minutes (e.g. 3)"
    )
    parser.add_argument("--refresh-interval", default=LOCAL["refresh_interval"], help="local: 30s")
    parser.add_argument("--settle-lag", default=LOCAL["settle_lag"], help="local: 15s")
    parser.add_argument(
        "--dequeue-interval",
        type=int,
        default=None,
        help="run queue dequeue_interval_seconds (default 1, as cwl-pipeline dev)",
    )
    parser.add_argument("--drain", type=float, default=300, help="max seconds to wait for the last events")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, DAGSTER_HOME)")
    args = parser.parse_args(argv)

    print(describe(), flush=True)
    print(
        f"config: window 15m; {args.rate:g} events/s per stream, one PutLogEvents per event; "
        f"poll every {args.poll:g} s; run queue dequeue interval {args.dequeue_interval or 1} s",
        flush=True,
    )
    home = Path(tempfile.mkdtemp(prefix="cwl-bench-latency-"))
    stack = start_servers(home)
    ok = True
    try:
        direct = None
        if args.baseline_minutes > 0:
            print(f"floor without Dagster: producing for {args.baseline_minutes:g} min", flush=True)
            direct = run_direct(stack, args)
        local = {"refresh_interval": args.refresh_interval, "settle_lag": args.settle_lag}
        phases = []
        if args.minutes > 0:
            print(f"local settings, both live paths: producing for {args.minutes:g} min", flush=True)
            phases.append(run_side_by_side(stack, args, "local", local, args.minutes))
        if args.production_minutes > 0:
            print(f"production defaults, both live paths: producing for {args.production_minutes:g} min")
            phases.append(run_side_by_side(stack, args, "prod", PRODUCTION, args.production_minutes))
        firehose = None
        if args.firehose_minutes > 0:
            print(f"Firehose, 0-second buffering: producing for {args.firehose_minutes:g} min", flush=True)
            firehose = run_firehose(stack, args, args.firehose_minutes)
        print()
        print(describe())
        if direct:
            ok &= report_events("floor: load path called back to back, no Dagster", **_pick(direct))
            loads = direct["load_seconds"]
            print(
                f"  loads {len(loads)}, duration p50 {percentile(loads, 50):.2f} s, "
                f"max {max(loads, default=math.nan):.2f} s"
            )
        for phase in phases:
            ok &= report_phase(phase)
        if firehose:
            ok &= report_firehose(firehose)
        for phase in (p for p in phases if p["label"] == "prod"):
            live, runs = phase["sides"]
            print(
                f"production defaults: live sensor {figures(live, phase['minutes'])}; "
                f"refresh runs {figures(runs, phase['minutes'])}"
            )
        if not ok:
            print("SANITY FAILED: see above")
        if phases:
            live, runs = phases[0]["sides"]
            p95 = percentile(list(live.poller.latencies().values()), 95)
            print(f"target p95 ≤ 10 s: {'met' if p95 <= 10 else 'NOT met'} ({p95:.1f} s)")
            print(
                f"{figures(live, phases[0]['minutes'])} "
                f"(refresh runs, the earlier design, same run: {figures(runs, phases[0]['minutes'])})"
            )
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {home}")
        else:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


def _pick(result: dict[str, Any]) -> dict[str, Any]:
    return {"producer": result["producer"], "poller": result["poller"]}


if __name__ == "__main__":
    sys.exit(main())

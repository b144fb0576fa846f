"""Benchmark: backfill throughput and peak memory — one day of one million events, one backfill.

Starts local AWS (moto server) and the BigQuery emulator on free ports and:

1. **put**: writes ``--events`` realistic seed-schema messages (the demo producer's, about 2 %
   malformed) spread evenly over one past UTC day into ``--streams`` log streams, with
   PutLogEvents batches of at most 10,000 events and 1 MiB (AWS's limits), in time order;
2. **read floor**: pages through the whole day once with the project's FilterLogEvents reader
   and decodes + normalizes it in this process, without BigQuery: what local AWS and the pure
   core cost before any loading;
3. **range run** (the figure): loads the day's 96 15-minute windows of the stream asset as
   Dagster's backfill does with the asset's ``BackfillPolicy.multi_run(672)``: one run over the
   partition range (``dagster/asset_partition_range_start|end`` tags), in a subprocess, on a
   persistent Dagster instance (fresh ``DAGSTER_HOME``). Its peak RSS is the subprocess's own
   ``VmHWM`` at exit (``ru_maxrss`` would include the parent's pages shared between fork and
   exec); helper processes it starts are sampled from ``/proc`` and shown apart;
4. **baseline, one run per window** (``--no-baseline`` skips it): the same day again as 96
   single-window runs in one subprocess — what a backfill becomes without a BackfillPolicy,
   minus the launch of each run (the latency benchmark measures that launch: several seconds
   per run). It replaces the same windows, so the table must be unchanged afterwards.

After each load: rows in BigQuery events + rejects must equal the events put, with no
duplicate ``event_id``. Run: ``python benchmarks/backfill.py [--events 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import LoadSampler, describe, vm_hwm_bytes, vm_rss_bytes
from cwl_pipeline.local.demo_producer import demo_message
from cwl_pipeline.local.processes import (
    LOCAL_CREDENTIALS,
    LOCAL_PROJECT,
    LocalService,
    bigquery_service,
    free_port,
    moto_service,
)

REGION = LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"]
GROUP = "/bench/backfill"
STREAM = "backfill_events"
DATASET = "bench"
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576  # PutLogEvents: sum of UTF-8 message bytes + 26 per event
RSS_TARGET = 1.5 * 2**30
MIB = 2**20

CONFIG_TEMPLATE = """\
aws: {{region: {region}, endpoint_url: "{aws_url}", retry_mode: adaptive, max_attempts: 8}}
bigquery: {{project: {project}, dataset: {dataset}, location: US, api_endpoint: "{bq_url}"}}
streams:
  - name: {name}
    source: {{type: cloudwatch, log_groups: ["{group}"]}}
    table: {name}
    schema: seed
    window: 15m
    windows_per_replace: {windows_per_replace}
    start: "2026-01-01T00:00:00Z"
"""


# --- child process: one Dagster load, reporting its own figures as JSON ---------------------------


def child(mode: str, config: str, day: str) -> int:
    """Run the load in this (sub)process and print one JSON line with its figures."""
    import dagster as dg

    from cwl_pipeline.config import load_config
    from cwl_pipeline.core.windows import partition_key
    from cwl_pipeline.definitions import build_definitions

    defs = build_definitions(load_config(config))
    asset = next(
        a
        for a in defs.resolve_asset_graph().assets_defs
        if a.is_executable and a.node_def.name == f"load_{STREAM}"
    )
    instance = dg.DagsterInstance.get()
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    keys = [partition_key(start + timedelta(minutes=15 * i)) for i in range(96)]
    began = time.perf_counter()
    runs = []
    if mode == "range":
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        runs.append(dg.materialize([asset], instance=instance, tags=tags, raise_on_error=False))
    else:
        for key in keys:
            runs.append(dg.materialize([asset], instance=instance, partition_key=key, raise_on_error=False))
    elapsed = time.perf_counter() - began
    staged = calls = 0
    for result in runs:
        # Run-level figures are repeated on every window of a range run: count them once per run.
        run_staged = run_calls = 0
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            if event.asset_key == dg.AssetKey([STREAM]) and "bytes_staged" in meta:
                run_staged = int(meta["bytes_staged"].value)
                run_calls = int(meta["filter_log_events_calls"].value)
        staged, calls = staged + run_staged, calls + run_calls
    figures = {
        "mode": mode,
        "runs": len(runs),
        "succeeded": sum(r.success for r in runs),
        "seconds": elapsed,
        # VmHWM, not ru_maxrss: ru_maxrss also counts the parent's pages this process held
        # between fork and exec, so it reports the benchmark's own memory, not the load's.
        "vm_hwm_self": vm_hwm_bytes(os.getpid()) or 0,
        "bytes_staged": staged,
        "filter_log_events_calls": calls,
    }
    print("FIGURES " + json.dumps(figures), flush=True)
    return 0


def run_child(mode: str, config: Path, day: datetime, env: dict[str, str]) -> dict[str, Any]:
    """Run :func:`child` in a subprocess; sample its RSS from /proc while it runs."""
    argv = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--config",
        str(config),
        "--day",
        day.date().isoformat(),
    ]
    began = time.perf_counter()
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = {"hwm": 0, "descendants": 0}
    descendant_hwm: dict[int, int] = {}
    load = LoadSampler()

    def sample() -> None:
        last_load = 0.0
        while process.poll() is None:
            peak["hwm"] = max(peak["hwm"], vm_hwm_bytes(process.pid) or 0)
            for pid in descendants(process.pid):
                descendant_hwm[pid] = max(descendant_hwm.get(pid, 0), vm_hwm_bytes(pid) or 0)
            if time.monotonic() - last_load > 15:
                load.sample()
                last_load = time.monotonic()
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    sampler.join()
    elapsed = time.perf_counter() - began
    figures = next(
        (json.loads(line[8:]) for line in output.splitlines() if line.startswith("FIGURES ")), None
    )
    if process.returncode != 0 or figures is None:
        tail = "\n".join(output.splitlines()[-30:])
        raise RuntimeError(f"{mode} load exited with {process.returncode}:\n{tail}")
    return {
        **figures,
        "wall_seconds": elapsed,
        "vm_hwm_sampled": peak["hwm"],
        "descendants_hwm": max(descendant_hwm.values(), default=0),
        "descendants": len(descendant_hwm),
        "load": load,
    }


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child_pid in children.get(stack.pop(), []):
            found.append(child_pid)
            stack.append(child_pid)
    return found


# --- parent: servers, put, read floor, loads, reconciliation --------------------------------------


def put_day(client: Any, day: datetime, events: int, streams: int, seed: int = 5) -> tuple[int, int, float]:
    """PutLogEvents ``events`` messages spread over ``day``; returns (events, calls, seconds)."""
    client.create_log_group(logGroupName=GROUP)
    names = [f"web-{i + 1}" for i in range(streams)]
    for name in names:
        client.create_log_stream(logGroupName=GROUP, logStreamName=name)
    rng = random.Random(seed)
    sessions: list[int] = []
    day_ms = int(day.timestamp() * 1000)
    step = 86_400_000 / events
    put = calls = 0
    began = time.perf_counter()
    for index, name in enumerate(names):
        batch: list[dict[str, Any]] = []
        size = 0
        # Stream k holds events k, k + streams, ...: each stream in time order across the day.
        for i in range(index, events, streams):
            message = demo_message(rng, sessions)
            cost = len(message.encode()) + 26
            if len(batch) == MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES:
                client.put_log_events(logGroupName=GROUP, logStreamName=name, logEvents=batch)
                put, calls, batch, size = put + len(batch), calls + 1, [], 0
            batch.append({"timestamp": day_ms + int(i * step), "message": message})
            size += cost
        if batch:
            client.put_log_events(logGroupName=GROUP, logStreamName=name, logEvents=batch)
            put, calls = put + len(batch), calls + 1
    return put, calls, time.perf_counter() - began


def read_floor(aws_url: str, day: datetime) -> dict[str, Any]:
    """Read the day once with the project's reader, then decode + normalize it; no BigQuery."""
    from cwl_pipeline.core.formats import events_from_api
    from cwl_pipeline.core.normalize import normalize
    from cwl_pipeline.core.schema import SEED_SCHEMA
    from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, WindowRead

    client = boto3.client("logs", endpoint_url=aws_url, region_name=REGION)
    reader = CloudWatchLogsReader(client)
    start_ms = int(day.timestamp() * 1000)
    stats = WindowRead()
    began = time.perf_counter()
    raw = list(reader.iter_events(GROUP, start_ms, start_ms + 86_400_000, stats))
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    batch = normalize(events_from_api(raw, log_group=GROUP), SEED_SCHEMA)
    normalize_s = time.perf_counter() - began
    return {
        "events": len(raw),
        "calls": stats.api_calls,
        "read_s": read_s,
        "normalize_s": normalize_s,
        "rows": batch.rows_loaded,
        "rejects": batch.rows_rejected,
    }


def reconcile(client: bigquery.Client, day: datetime) -> dict[str, int]:
    """Rows, distinct event ids and rejects of the day in BigQuery."""
    end = day + timedelta(days=1)
    scope = f"timestamp >= TIMESTAMP '{day:%Y-%m-%d}' AND timestamp < TIMESTAMP '{end:%Y-%m-%d}'"
    table = f"{LOCAL_PROJECT}.{DATASET}.{STREAM}"
    rows = next(
        iter(
            client.query(
                f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM `{table}` WHERE {scope}"
            ).result()
        )
    )
    rejects = next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{table}_rejects` WHERE {scope}").result()))
    return {"rows": rows["n"], "distinct_ids": rows["ids"], "rejects": rejects["n"]}


def print_load(
    label: str, figures: dict[str, Any], events: int, counts: dict[str, int], read_s: float = 0.0
) -> bool:
    """Print one load's figures; False when BigQuery does not reconcile with the events put."""
    peak = max(figures["vm_hwm_self"], figures["vm_hwm_sampled"])
    total = counts["rows"] + counts["rejects"]
    ok = total == events and counts["distinct_ids"] == counts["rows"]
    print(f"{label}:")
    print(
        f"  {figures['runs']} run(s), {figures['succeeded']} succeeded, {figures['seconds']:.1f} s in runs "
        f"({figures['wall_seconds']:.1f} s with process start): {events / figures['seconds']:,.0f} events/s"
    )
    print(
        f"  peak RSS of the loading process {peak / MIB:,.0f} MiB (its VmHWM at exit); "
        f"{figures['descendants']} short-lived helper process(es) (compute-log capture), "
        f"largest {figures['descendants_hwm'] / MIB:,.0f} MiB"
    )
    print(
        f"  BigQuery: {counts['rows']:,} rows + {counts['rejects']:,} rejects = {total:,} "
        f"(put {events:,}): {'reconciles' if ok else 'DOES NOT RECONCILE'}; "
        f"{counts['rows'] - counts['distinct_ids']} duplicate event ids"
    )
    print(
        f"  BigQuery staging (parquet, zstd, events + rejects): {figures['bytes_staged'] / MIB:.1f} MiB; "
        f"FilterLogEvents calls: {figures['filter_log_events_calls']}"
    )
    if read_s:
        rest = figures["seconds"] - read_s
        print(
            f"  without the FilterLogEvents read of the floor ({read_s:.1f} s on local AWS): "
            f"{rest:.1f} s, {events / rest:,.0f} events/s (decode, normalize, stage, replace, checks)"
        )
    print(f"  {figures['load'].summary()}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Put a day, read it once, load it as one range run and as 96 window runs; print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events over the day (default 1000000)")
    parser.add_argument("--streams", type=int, default=8, help="log streams (default 8)")
    parser.add_argument("--day", default=None, help="UTC day to fill (default: two days ago)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-run-per-window load")
    parser.add_argument("--no-read-floor", action="store_true", help="skip the read + normalize floor")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--windows-per-replace",
        type=int,
        default=96,
        help="the stream's windows_per_replace: windows read and replaced per step (default 96)",
    )
    parser.add_argument("--child", choices=("range", "per-window"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.config, args.day)

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.fromisoformat(args.day).replace(tzinfo=UTC) if args.day else today - timedelta(days=2)
    print(describe(), flush=True)
    print(f"{args.events:,} events over {day:%Y-%m-%d} (96 windows of 15 min), {args.streams} log streams")
    home = Path(tempfile.mkdtemp(prefix="cwl-bench-backfill-"))
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    services: list[LocalService] = []
    ok = True
    try:
        aws = moto_service(free_port(), log_path=home / "moto.log")
        services.append(aws.start())
        bq = bigquery_service(free_port(), free_port(), data_dir=home / "bigquery", log_path=home / "bq.log")
        services.append(bq.start())
        config = home / "pipeline.yaml"
        config.write_text(
            CONFIG_TEMPLATE.format(
                region=REGION,
                aws_url=aws.url,
                bq_url=bq.url,
                project=LOCAL_PROJECT,
                dataset=DATASET,
                name=STREAM,
                group=GROUP,
                windows_per_replace=args.windows_per_replace,
            )
        )
        (home / "dagster_home").mkdir()
        (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            "DAGSTER_HOME": str(home / "dagster_home"),
            "CWL_PIPELINE_CONFIG": str(config),
            **LOCAL_CREDENTIALS,
        }
        logs = boto3.client("logs", endpoint_url=aws.url, region_name=REGION)
        bq_client = bigquery.Client(
            project=LOCAL_PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": bq.url}
        )

        events, calls, put_s = put_day(logs, day, args.events, args.streams)
        print(
            f"put: {events:,} events in {calls} PutLogEvents calls, {put_s:.1f} s, "
            f"{events / put_s:,.0f} events/s; "
            f"local AWS RSS {(vm_rss_bytes(aws.process.pid) or 0) / MIB:,.0f} MiB",
            flush=True,
        )
        floor: dict[str, Any] = {"read_s": 0.0}
        if not args.no_read_floor:
            floor = read_floor(aws.url, day)
            print(
                f"read floor (this process, no BigQuery): FilterLogEvents {floor['events']:,} events in "
                f"{floor['calls']} calls, {floor['read_s']:.1f} s ({floor['events'] / floor['read_s']:,.0f} "
                f"events/s); decode + normalize {floor['normalize_s']:.1f} s "
                f"({floor['events'] / floor['normalize_s']:,.0f} events/s): {floor['rows']:,} rows, "
                f"{floor['rejects']:,} rejects",
                flush=True,
            )
        ranged = run_child("range", config, day, env)
        label = "range run (the backfill, BackfillPolicy.multi_run)"
        ok &= print_load(label, ranged, events, reconcile(bq_client, day), floor["read_s"])
        if not args.no_baseline:
            single = run_child("per-window", config, day, env)
            counts = reconcile(bq_client, day)
            ok &= print_load(
                "baseline: one run per window, same process, no run launch", single, events, counts
            )
            print(f"  range run vs one run per window: {single['seconds'] / ranged['seconds']:.1f}x faster")
        peak = max(ranged["vm_hwm_self"], ranged["vm_hwm_sampled"])
        print(
            f"target peak RSS ≤ 1.5 GiB: {'met' if peak <= RSS_TARGET else 'NOT met'} ({peak / MIB:,.0f} MiB)"
        )
        print(describe())
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep:
            print(f"kept {home}")
        else:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

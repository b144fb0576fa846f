"""Benchmark: 200 log groups through one Firehose prefix, routed to tables, one delivery window.

Starts local AWS (moto server) and the BigQuery emulator on free ports and:

1. writes ``--objects`` Firehose objects (default gzip subscription envelopes) into one key hour,
   together ``--events`` events of ``--groups`` log groups (``/bench/team-<t>/svc-<n>``, five
   teams), as an account-level subscription filter policy would deliver them;
2. loads the hour's last delivery window through the real read and load path
   (:func:`cwl_pipeline.firehose.read.read_routed_range`, then
   :func:`cwl_pipeline.load.service.load_shared`): four routes by log-group prefix
   (teams a-d), the fifth team unrouted (``unrouted: reject``); every object is listed and read
   once, however many routes, and its events staged chunk by chunk into their route's tables;
3. checks that every route's tables hold exactly its events;
4. measures the sensor's listing per tick on a bucket holding a day of deliveries
   (``--day-objects`` keys): the deep listing every tick (what the sensor did before) against a
   quick tick (what it does between deep listings); and on a dynamic-partitioning layout with
   the account before the time (``--day-objects`` keys of 10 accounts over 7 days): the static
   head listed whole (before) against the values found, then each listed by time.

Prints, last: ``events: N, events/s: X, S3 calls/window: L list + G get, BigQuery calls/window: Q,
peak RSS MiB: M``.
Run: ``python benchmarks/routing.py [--events 200000]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import describe, reset_vm_hwm, vm_hwm_bytes
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import load_config
from cwl_pipeline.core.windows import floor_to_window, to_ms
from cwl_pipeline.firehose.key_layout import KeyLayout
from cwl_pipeline.firehose.listing import list_layout
from cwl_pipeline.firehose.read import read_routed_range
from cwl_pipeline.firehose.routes import destinations
from cwl_pipeline.firehose.windows import FirehoseCursor, listing_start_after
from cwl_pipeline.load.service import WriteMode, load_shared
from cwl_pipeline.load.tables import StreamTables
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
BUCKET = "bench-routing"
DATASET = "bench"
TEAMS = "abcde"
WINDOW = timedelta(minutes=15)

CONFIG = """\
aws: {{region: {region}, endpoint_url: "{aws_url}"}}
bigquery: {{project: {project}, dataset: {dataset}, location: US, api_endpoint: "{bq_url}"}}
streams:
  - name: fleet
    source: {{type: s3, bucket: {bucket}, prefix: fleet/, layout: firehose}}
    window: 15m
    start: "2026-01-01T00:00:00Z"
    unrouted: reject
    routes:
      - {{name: team_a, log_group_prefixes: [/bench/team-a/]}}
      - {{name: team_b, log_group_prefixes: [/bench/team-b/]}}
      - {{name: team_c, log_group_prefixes: [/bench/team-c/]}}
      - {{name: team_d, pattern: "/bench/team-d/.*"}}
"""


class CountingClient:
    """A BigQuery client whose method calls are counted by name (the API calls the loader makes)."""

    def __init__(self, client: Any, counts: Counter[str]) -> None:
        self._client = client
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value) or name.startswith("_"):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counts[name] += 1
            return value(*args, **kwargs)

        return counted


def groups(count: int) -> list[str]:
    """``count`` log groups spread over the five teams."""
    return [f"/bench/team-{TEAMS[i % len(TEAMS)]}/svc-{i:03d}" for i in range(count)]


def put_objects(s3: Any, hour: datetime, names: list[str], events: int, objects: int) -> dict[str, int]:
    """Objects of one key hour, written now; events per team."""
    per_team: Counter[str] = Counter()
    per_object = events // objects
    base = to_ms(hour + timedelta(minutes=1))
    serial = 0
    rng = random.Random(7)
    sessions: list[int] = []
    for n in range(objects):
        envelopes: dict[str, list[dict[str, Any]]] = {}
        for i in range(per_object):
            group = names[(n * per_object + i) % len(names)]
            envelopes.setdefault(group, []).append(
                {
                    "id": f"{serial:056d}",
                    "timestamp": base + serial % 600_000,
                    "message": demo_message(rng, sessions),
                }
            )
            per_team[group.split("/")[2]] += 1
            serial += 1
        body = b"".join(
            gzip.compress(
                json.dumps(
                    {
                        "messageType": "DATA_MESSAGE",
                        "owner": "123456789012",
                        "logGroup": group,
                        "logStream": "i-0",
                        "subscriptionFilters": ["account-policy"],
                        "logEvents": evs,
                    }
                ).encode(),
                compresslevel=1,
            )
            for group, evs in envelopes.items()
        )
        key = f"fleet/{hour:%Y/%m/%d/%H}/fleet-1-{hour:%Y-%m-%d-%H}-05-00-{uuid.uuid4()}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return dict(per_team)


def put_day_of_keys(s3: Any, now: datetime, count: int) -> None:
    """``count`` small delivered objects over the last day (what the sensor's listing walks)."""
    start = now - timedelta(hours=25)
    for i in range(count):
        at = start + timedelta(hours=25) * i / count
        key = f"fleet/{at:%Y/%m/%d/%H}/fleet-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")


def put_partitioned_keys(s3: Any, now: datetime, count: int, accounts: int, days: int) -> None:
    """``count`` small objects over the last ``days`` days under a dynamic-partitioning layout
    whose partition key (an account) comes before the time: ``fleet-dyn/<account>/YYYY/MM/dd/HH/``."""
    start = now - timedelta(days=days)
    for i in range(count):
        at = start + timedelta(days=days) * i / count
        key = f"fleet-dyn/{100000000000 + i % accounts}/{at:%Y/%m/%d/%H}/fleet-1-{uuid.uuid4()}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")


def partitioned_listing_calls(
    s3: Any, counts: Counter[str], cursor: FirehoseCursor, now: datetime, by_time: bool
) -> tuple[int, int]:
    """ListObjectsV2 calls and keys of one quick sensor tick on the dynamic layout: from the
    static head (``by_time`` False: what a tick did before) or value by value, by time."""
    store = S3ObjectStore(s3)
    counts.clear()
    if not by_time:
        keys = sum(1 for _ in store.list_objects(BUCKET, PARTITIONED.static_head, None))
    else:
        listed = list_layout(
            store, BUCKET, PARTITIONED, lambda c: listing_start_after(c, cursor, now, now, deep=False)
        )
        keys = sum(1 for _ in listed)
    return counts["ListObjectsV2"], keys


PARTITIONED = KeyLayout.parse("fleet-dyn/!{partitionKeyFromQuery:account}/!{timestamp:yyyy/MM/dd/HH}/")


def listing_calls(
    s3: Any, counts: Counter[str], cursor: FirehoseCursor, now: datetime, deep: bool
) -> tuple[int, int]:
    """ListObjectsV2 calls and keys of one sensor tick's listing."""
    counts.clear()
    start_after = listing_start_after("fleet/", cursor, now, now - timedelta(days=1), deep=deep)
    keys = sum(1 for _ in S3ObjectStore(s3).list_objects(BUCKET, "fleet/", start_after))
    return counts["ListObjectsV2"], keys


def main() -> int:
    """Run the benchmark (see the module docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--day-objects", type=int, default=3000)
    args = parser.parse_args()
    print(describe(), flush=True)
    home = Path(tempfile.mkdtemp(prefix="cwl-bench-routing-"))
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    services: list[LocalService] = []
    try:
        aws = moto_service(free_port(), log_path=home / "moto.log")
        services.append(aws.start())
        bq = bigquery_service(free_port(), free_port(), data_dir=home / "bigquery", log_path=home / "bq.log")
        services.append(bq.start())
        path = home / "pipeline.yaml"
        path.write_text(
            CONFIG.format(
                region=REGION,
                aws_url=aws.url,
                bq_url=bq.url,
                project=LOCAL_PROJECT,
                dataset=DATASET,
                bucket=BUCKET,
            )
        )
        stream = load_config(path).stream("fleet")
        s3_counts: Counter[str] = Counter()
        raw_s3 = boto3.client("s3", endpoint_url=aws.url, region_name=REGION)
        raw_s3.create_bucket(Bucket=BUCKET)

        def count_call(model: Any, **_: Any) -> None:
            s3_counts[model.name] += 1

        raw_s3.meta.events.register("before-call.s3", count_call)
        now = datetime.now(UTC)
        hour = floor_to_window(now - timedelta(hours=3), timedelta(hours=1))
        per_team = put_objects(raw_s3, hour, groups(args.groups), args.events, args.objects)
        print(
            f"put: {args.events:,} events of {args.groups} log groups in {args.objects} objects", flush=True
        )

        bq_counts: Counter[str] = Counter()
        client = bigquery.Client(
            project=LOCAL_PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": bq.url}
        )
        loader = BigQueryLoader(CountingClient(client, bq_counts), DATASET, location="US")  # type: ignore[arg-type]

        @contextmanager
        def loaders() -> Iterator[BigQueryLoader]:
            yield loader

        s3_counts.clear()
        store = S3ObjectStore(raw_s3)
        window = hour + timedelta(hours=1) - WINDOW
        log = logging.getLogger("bench.routing")
        reset_vm_hwm()  # the peak of the load alone, not of writing the objects
        began = time.perf_counter()
        targets = destinations(stream)
        steps = read_routed_range(stream, store, window, window + WINDOW)
        load_shared(
            steps,
            {t.name: StreamTables.of(t.stream(stream)) for t in targets},
            loaders,
            log,
            {t.name: "fleet" for t in targets},
            WriteMode.REPLACE,
        )
        seconds = time.perf_counter() - began
        peak_mib = (vm_hwm_bytes(os.getpid()) or 0) / 2**20
        ok = True
        for target in destinations(stream):
            tables = StreamTables.of(target.stream(stream))
            stored = sum(
                next(
                    iter(client.query(f"SELECT COUNT(*) AS n FROM `{LOCAL_PROJECT}.{DATASET}.{t}`").result())
                )["n"]
                for t in (tables.events.table, tables.rejects.table)
            )
            team = f"team-{target.name[-1]}" if target.name else "team-e"
            expected = per_team.get(team, 0)
            ok &= stored == expected
            name = target.name or "(unrouted)"
            print(
                f"route {name}: {stored:,} rows + rejects in {tables.events.table}[_rejects], "
                f"expected {expected:,}"
            )
        print(f"read, split and loaded into {len(targets)} routes: {seconds:.1f} s", flush=True)
        window_s3 = dict(s3_counts)
        window_bq = sum(bq_counts.values())

        put_day_of_keys(raw_s3, now, args.day_objects)
        cursor = FirehoseCursor(watermark=now - timedelta(minutes=1), deep_listed_at=now)
        deep_calls, deep_keys = listing_calls(raw_s3, s3_counts, cursor, now, deep=True)
        quick_calls, quick_keys = listing_calls(raw_s3, s3_counts, cursor, now, deep=False)
        print(
            f"sensor listing per tick, {args.day_objects:,} objects in the last day: deep (every tick "
            f"before) {deep_calls} ListObjectsV2 calls / {deep_keys:,} keys; quick (between deep "
            f"listings, every 30 min) {quick_calls} calls / {quick_keys:,} keys"
        )
        put_partitioned_keys(raw_s3, now, args.day_objects, accounts=10, days=7)
        before_calls, before_keys = partitioned_listing_calls(raw_s3, s3_counts, cursor, now, by_time=False)
        after_calls, after_keys = partitioned_listing_calls(raw_s3, s3_counts, cursor, now, by_time=True)
        print(
            f"sensor listing per quick tick, dynamic partitioning (account before the time), "
            f"{args.day_objects:,} objects of 10 accounts over 7 days: from the static head (before) "
            f"{before_calls} ListObjectsV2 calls / {before_keys:,} keys; value by value, by time "
            f"{after_calls} calls / {after_keys:,} keys"
        )
        calls = ", ".join(f"{k} {v}" for k, v in sorted(bq_counts.items()))
        print(
            f"events: {args.events:,}, events/s: {args.events / seconds:,.0f}, S3 calls/window: "
            f"{window_s3.get('ListObjectsV2', 0)} list + {window_s3.get('GetObject', 0)} get, "
            f"BigQuery calls/window: {window_bq} ({calls}), peak RSS MiB: {peak_mib:.0f}"
        )
        return 0 if ok else 1
    finally:
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())

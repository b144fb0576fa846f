"""Peak memory and throughput of loading one Firehose delivery window of N events.

Starts local AWS (moto server) and the BigQuery emulator on free ports, writes one 15-minute
delivery window of ``--events`` events into S3 as Firehose objects (``--events-per-object``
each: gzip members of subscription envelopes, 56-digit event ids like CloudWatch's), then
loads the window through the real load path (``read_firehose_windows`` → ``load``, as a
Firehose sensor run does: ``INSERT_MISSING``) in a fresh process, and reports that process's
peak resident memory and events per second.

``--baseline DIR`` loads the same window, in the same run, with the code checked out in
``DIR`` (e.g. ``git archive <commit> | tar -x -C DIR``), into its own dataset: the two
figures side by side. The last line printed is this code's figure:
``events: N, events/s: X, peak RSS MiB: Y``.

    python benchmarks/window.py --events 500000 --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)
# Objects written now under a past key hour are delivered in that hour's last window.
WINDOW_START, WINDOW_END = HOUR + timedelta(minutes=45), HOUR + timedelta(hours=1)
BUCKET = "bench-window"
PREFIX = "fh/"
GROUP = "/bench/window"
ENVELOPE_EVENTS = 500  # events per subscription envelope (one gzip member)


def main() -> None:
    """Parse the arguments, run the parent or the child side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--events-per-object", type=int, default=50_000)
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument(
        "--workers",
        default="1",
        help="decoding processes of this code (CWL_PIPELINE_DECODE_WORKERS; 0: per CPU)",
    )
    parser.add_argument("--child", nargs=3, metavar=("CODE", "CONFIG", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        code, config, events = args.child
        child(Path(code), Path(config), int(events))
        return
    parent(args)


def parent(args: argparse.Namespace) -> None:
    """Start the stack, write the window, load it with each code, print the figures."""
    sys.path.insert(0, str(HERE))
    import boto3

    from cwl_pipeline.local.processes import LOCAL_CREDENTIALS

    os.environ.update(LOCAL_CREDENTIALS)
    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp)) as (aws_url, bq_url):
        s3 = boto3.client("s3", endpoint_url=aws_url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        began = time.monotonic()
        bytes_written = write_window(s3, args.events, args.events_per_object)
        print(
            f"wrote {args.events} events in {-(-args.events // args.events_per_object)} objects "
            f"({bytes_written / 2**20:.1f} MiB gzip) in {time.monotonic() - began:.0f}s",
            flush=True,
        )
        runs = [("baseline", args.baseline)] if args.baseline else []
        runs.append(("this code", HERE))
        figures = {}
        for name, code in runs:
            dataset = f"bench_window_{uuid.uuid4().hex[:8]}"
            config = Path(tmp) / f"{dataset}.yaml"
            config.write_text(config_text(aws_url, bq_url, dataset))
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(code), str(config), str(args.events)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(code), "CWL_PIPELINE_DECODE_WORKERS": args.workers},
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            figures[name] = result
            print(
                f"{name}: {result['seconds']:.1f}s, events/s: {result['events_per_s']:,.0f}, "
                f"peak RSS MiB: {result['peak_rss_mib']:.0f}, rows loaded {result['rows_loaded']}",
                flush=True,
            )
        mine = figures["this code"]
        print(
            f"events: {args.events}, events/s: {mine['events_per_s']:.0f}, "
            f"peak RSS MiB: {mine['peak_rss_mib']:.0f}"
        )


@contextmanager
def local_stack(tmp: Path) -> Iterator[tuple[str, str]]:
    """moto and the BigQuery emulator on free ports, stopped on exit."""
    from cwl_pipeline.local.processes import bigquery_service, free_port, moto_service

    aws = moto_service(free_port(), tmp / "moto.log").start()
    bq = bigquery_service(free_port(), free_port(), log_path=tmp / "bq.log").start()
    try:
        yield aws.url, bq.url
    finally:
        bq.stop()
        aws.stop()


def write_window(s3: object, events: int, per_object: int) -> int:
    """Put ``events`` events into the window's objects, one object at a time; bytes written."""
    written = 0
    base_ms = int(HOUR.timestamp() * 1000)
    n = 0
    while n < events:
        count = min(per_object, events - n)
        members = []
        for first in range(n, n + count, ENVELOPE_EVENTS):
            last = min(first + ENVELOPE_EVENTS, n + count)
            envelope = {
                "messageType": "DATA_MESSAGE",
                "owner": "123456789012",
                "logGroup": GROUP,
                "logStream": f"app-{first % 7}",
                "subscriptionFilters": ["all"],
                "logEvents": [
                    {
                        "id": f"{i:056d}",
                        "timestamp": base_ms + i % 600_000,
                        "message": json.dumps({"session_id": i, "action": "checkout", "n": i % 97}),
                    }
                    for i in range(first, last)
                ],
            }
            members.append(gzip.compress(json.dumps(envelope).encode(), compresslevel=1))
        body = b"".join(members)
        minute = 1 + (n // per_object) % 13
        key = f"{PREFIX}{HOUR:%Y/%m/%d/%H}/cwl-delivery-1-{HOUR:%Y-%m-%d-%H}-{minute:02d}-00-{uuid.uuid4()}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)  # type: ignore[attr-defined]
        written += len(body)
        n += count
    return written


def config_text(aws_url: str, bq_url: str, dataset: str) -> str:
    """A config with one Firehose stream reading the bench bucket."""
    return f"""
aws: {{region: us-east-1, endpoint_url: "{aws_url}", max_attempts: 2}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US, api_endpoint: "{bq_url}"}}
streams:
  - name: logs
    source: {{type: s3, bucket: {BUCKET}, prefix: {PREFIX}, layout: firehose, log_group: {GROUP}}}
    window: 15m
    start: "2026-01-01T00:00:00Z"
"""


def child(code: Path, config_path: Path, events: int) -> None:
    """Load the window with the code in ``code``; print one JSON line of figures."""
    sys.path.insert(0, str(code))
    import logging

    from cwl_pipeline.adapters.s3 import S3ObjectStore
    from cwl_pipeline.config import load_config
    from cwl_pipeline.firehose.read import read_firehose_windows
    from cwl_pipeline.load.service import WriteMode, load
    from cwl_pipeline.load.tables import StreamTables
    from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse

    config = load_config(config_path)
    stream = config.streams[0]
    tables = StreamTables.of(stream)
    store = S3ObjectStore(AwsResource.from_settings(config.aws).client("s3"))
    warehouse = BigQueryWarehouse.from_settings(config.bigquery)
    log = logging.getLogger("bench.window")
    began = time.monotonic()
    read = read_firehose_windows(stream, store, WINDOW_START, WINDOW_END)
    outcome = load([read], tables, warehouse.loader, log, stream.name, WriteMode.INSERT_MISSING)
    seconds = time.monotonic() - began
    # The largest of this process and of its decoding workers, if any (each one on its own).
    peak = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "events_per_s": events / seconds,
                "peak_rss_mib": peak,
                "rows_loaded": outcome.rows_loaded,
                "events_at_source": outcome.events_at_source,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: decode + normalize of a Firehose object, against a per-event legacy loop.

The payload is what Firehose writes to S3 for a CloudWatch Logs subscription: gzip members
back to back, each a DATA_MESSAGE envelope of seed-schema JSON messages with nested params,
about 1% of them malformed. Both paths start from the same bytes and share the gzip
decompression; they differ in everything after it:

* pipeline: ``iter_decode`` + ``normalize`` (orjson, per-column lists, Arrow arrays);
* legacy: ``json.loads`` per envelope and per message, a dict per row with a ``datetime``
  and ``json.dumps(params)``, then ``pd.DataFrame(rows)``.

Figures are printed end to end (bytes to DataFrame) and for the per-event stage alone
(decoded events to DataFrame). Run: ``python benchmarks/decode.py [--events N]``.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import describe
from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import decode_bytes, iter_decode
from cwl_pipeline.core.formats.gzip_members import gunzip_members
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import SEED_SCHEMA

ACTIONS = ("page_view", "click", "add_to_cart", "checkout", "search", "login", "logout")
PAGES = ("/", "/products", "/products/{}", "/cart", "/search?q={}", "/account/orders")
START_MS = 1_795_168_800_000  # 2026-11-20T10:00:00Z


def _message(rng: random.Random, i: int) -> str:
    roll = rng.random()
    if roll < 0.004:
        return '{"session_id": 17, "action": "click", "params": {"page": '  # truncated JSON
    if roll < 0.007:
        return f"WARN worker-{i % 8} retrying upstream call after 503"  # plain text
    if roll < 0.01:
        return json.dumps({"session_id": f"s-{i}", "action": "click"})  # wrong type
    params: dict[str, Any] = {
        "page": rng.choice(PAGES).format(rng.randrange(10_000)),
        "referrer": rng.choice((None, "https://www.example.com/", "https://search.example/")),
        "user": {"id": rng.randrange(1_000_000), "plan": rng.choice(("free", "pro", "team"))},
        "items": [rng.randrange(1000) for _ in range(rng.randrange(4))],
        "duration_ms": round(rng.uniform(1, 5000), 2),
    }
    return json.dumps(
        {"session_id": rng.randrange(1, 2**40), "action": rng.choice(ACTIONS), "params": params},
        separators=(",", ":"),
    )


def build_payload(events: int, per_envelope: int, seed: int = 7) -> bytes:
    """A Firehose-style object: one gzip member per subscription envelope."""
    rng = random.Random(seed)
    members = []
    for start in range(0, events, per_envelope):
        count = min(per_envelope, events - start)
        envelope = {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/app/web",
            "logStream": f"web-{start // per_envelope % 16}",
            "subscriptionFilters": ["to-firehose"],
            "logEvents": [
                {
                    "id": str(10**55 + start + k),
                    "timestamp": START_MS + (start + k) * 7,
                    "message": _message(rng, start + k),
                }
                for k in range(count)
            ],
        }
        members.append(gzip.compress(json.dumps(envelope).encode(), compresslevel=6))
    return b"".join(members)


def run_pipeline(data: bytes) -> int:
    """Decode and normalize, streaming events; returns the number of accepted rows."""
    batch = normalize(iter_decode(data, source_object="bench.gz"), SEED_SCHEMA)
    return batch.rows_loaded


def run_legacy(data: bytes) -> int:
    """The per-event loop the pipeline replaces, from the same bytes; returns the row count."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # utcfromtimestamp
        for member in gunzip_members(data):
            envelope = json.loads(member)
            group, stream = envelope["logGroup"], envelope["logStream"]
            for event in envelope["logEvents"]:
                try:
                    message = json.loads(event["message"])
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                rows.append(
                    {
                        "timestamp": datetime.utcfromtimestamp(event["timestamp"] / 1000),
                        "session_id": message.get("session_id") or 0,
                        "action": message.get("action"),
                        "params": json.dumps(message.get("params")),
                        "event_id": event["id"],
                        "log_group": group,
                        "log_stream": stream,
                    }
                )
    return len(pd.DataFrame(rows))


def normalize_only(events: list[LogEvent]) -> int:
    """The pipeline's per-event stage alone, from decoded events."""
    return normalize(events, SEED_SCHEMA).rows_loaded


def legacy_loop_only(events: list[LogEvent]) -> int:
    """The legacy per-event loop alone, from the same decoded events."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # utcfromtimestamp
        for event in events:
            try:
                message = json.loads(event.message)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            rows.append(
                {
                    "timestamp": datetime.utcfromtimestamp(event.timestamp_ms / 1000),
                    "session_id": message.get("session_id") or 0,
                    "action": message.get("action"),
                    "params": json.dumps(message.get("params")),
                    "event_id": event.event_id,
                    "log_group": event.log_group,
                    "log_stream": event.log_stream,
                }
            )
    return len(pd.DataFrame(rows))


def _best_time(func: Callable[[Any], int], arg: Any, repeat: int) -> tuple[float, int]:
    best = float("inf")
    rows = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        rows = func(arg)
        best = min(best, time.perf_counter() - start)
    return best, rows


def _peak_memory(func: Callable[[Any], int], arg: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        func(arg)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    """Build the payload, measure both paths, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="events (default 500000)")
    parser.add_argument("--per-envelope", type=int, default=500, help="events per envelope")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs; the best is kept")
    args = parser.parse_args(argv)
    events = args.events
    mib = 2**20

    print(describe(), flush=True)
    data = build_payload(events, args.per_envelope)
    print(
        f"payload: {events} events, {len(data) / mib:.1f} MiB gzip, "
        f"{-(-events // args.per_envelope)} gzip members (Firehose object)"
    )

    # Memory first, so Arrow's pool peak reflects the pipeline run alone. tracemalloc sees
    # Python objects (and NumPy buffers); Arrow buffers are reported from Arrow's pool.
    pipeline_peak = _peak_memory(run_pipeline, data)
    arrow_peak = pa.default_memory_pool().max_memory() or 0
    legacy_peak = _peak_memory(run_legacy, data)

    pipeline_s, pipeline_rows = _best_time(run_pipeline, data, args.repeat)
    legacy_s, legacy_rows = _best_time(run_legacy, data, args.repeat)
    print("end to end, from the gzip bytes to a DataFrame:")
    print(
        f"  pipeline: {events / pipeline_s:>10,.0f} events/s  {pipeline_s:6.2f} s  "
        f"peak {pipeline_peak / mib:6.1f} MiB Python + {arrow_peak / mib:.1f} MiB Arrow  "
        f"({pipeline_rows} rows)"
    )
    print(
        f"  legacy:   {events / legacy_s:>10,.0f} events/s  {legacy_s:6.2f} s  "
        f"peak {legacy_peak / mib:6.1f} MiB Python  ({legacy_rows} rows)"
    )
    print(f"  speed-up: {legacy_s / pipeline_s:.1f}x")

    decoded = decode_bytes(data, source_object="bench.gz")
    stage_s, _ = _best_time(normalize_only, decoded, args.repeat)
    loop_s, _ = _best_time(legacy_loop_only, decoded, args.repeat)
    print("per-event stage only, from decoded events:")
    print(f"  normalize:   {events / stage_s:>10,.0f} events/s  {stage_s:6.2f} s")
    print(f"  legacy loop: {events / loop_s:>10,.0f} events/s  {loop_s:6.2f} s")
    print(f"  speed-up: {loop_s / stage_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the whole ``cwl-pipeline decode`` process against the per-event loop it replaces.

Both sides are whole processes started from the shell's point of view (interpreter start-up,
imports, reading the file, and for ``decode`` writing every row and reject as NDJSON), on
the same Firehose object (400,000 events by default; see ``benchmarks/decode.py`` for its
content), run in turn A B A B ... so that both see the same machine:

* baseline: the loop as the original Lambda wrote it, in a fresh interpreter: gunzip the
  members, ``json.loads`` of each envelope and of each message,
  ``datetime.utcfromtimestamp(...).isoformat()``, ``json.dumps(params)``, one dict per row
  (kept in a list; nothing written);
* decode: ``python -m cwl_pipeline.cli.main decode OBJECT -o rows.ndjson --rejects rejects.ndjson``
  (``--workers`` as given; default: the CPUs available).

Prints every pair, the medians, and last the figure asked for:
``events: N, decode events/s: X, baseline loop events/s: Y, speed-up: Zx`` (medians of the
wall times; the speed-up is the median of the pairwise ratios).
Run: ``python benchmarks/decode_process.py [--events N] [--runs R] [--workers W]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def baseline(path: str) -> int:
    """The per-event loop of the original Lambda, over one Firehose object; returns the rows."""
    import zlib

    data = Path(path).read_bytes()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # utcfromtimestamp
        while data:
            inflater = zlib.decompressobj(wbits=31)
            member = inflater.decompress(data)
            data = inflater.unused_data
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
                        "timestamp": datetime.utcfromtimestamp(event["timestamp"] / 1000).isoformat(),
                        "session_id": message.get("session_id") or 0,
                        "action": message.get("action"),
                        "params": json.dumps(message.get("params")),
                        "event_id": event["id"],
                        "log_group": group,
                        "log_stream": stream,
                    }
                )
    return len(rows)


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, children included) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    """Build the object, time both processes in turn, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="events (default 400000)")
    parser.add_argument("--per-envelope", type=int, default=500, help="events per envelope")
    parser.add_argument("--runs", type=int, default=5, help="timed pairs after one warm-up pair")
    parser.add_argument("--workers", type=int, default=0, help="decode --workers (0: the CLI's default)")
    parser.add_argument("--baseline", metavar="FILE", help=argparse.SUPPRESS)  # the baseline process
    args = parser.parse_args(argv)
    if args.baseline:
        print(baseline(args.baseline), file=sys.stderr)
        return 0

    from benchmarks.decode import build_payload
    from benchmarks.machine import describe

    print(describe(), flush=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp, "firehose-object.gz")
        obj.write_bytes(build_payload(args.events, args.per_envelope))
        print(
            f"payload: {args.events} events, {obj.stat().st_size / 2**20:.1f} MiB gzip, "
            f"{-(-args.events // args.per_envelope)} gzip members (Firehose object)"
        )
        python = sys.executable
        base_cmd = [python, str(Path(__file__).resolve()), "--baseline", str(obj)]
        decode_cmd = [python, "-m", "cwl_pipeline.cli.main", "decode", str(obj)]
        decode_cmd += ["-o", str(Path(tmp, "rows.ndjson")), "--rejects", str(Path(tmp, "rejects.ndjson"))]
        if args.workers:
            decode_cmd += ["--workers", str(args.workers)]
        print("baseline:", " ".join(base_cmd[1:]))
        print("decode:  ", " ".join(decode_cmd[1:]))
        env_note = os.environ.get("PYTHONPATH")
        if env_note is None:
            os.environ["PYTHONPATH"] = str(ROOT)
        base_walls, decode_walls, ratios = [], [], []
        for run in range(args.runs + 1):
            b_wall, b_cpu = _timed(base_cmd)
            d_wall, d_cpu = _timed(decode_cmd)
            label = "warm-up" if run == 0 else f"run {run}"
            print(
                f"  {label:8} baseline {b_wall:5.2f} s wall {b_cpu:5.2f} s cpu | "
                f"decode {d_wall:5.2f} s wall {d_cpu:5.2f} s cpu | speed-up {b_wall / d_wall:.2f}x",
                flush=True,
            )
            if run:
                base_walls.append(b_wall)
                decode_walls.append(d_wall)
                ratios.append(b_wall / d_wall)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base_s = statistics.median(base_walls)
    decode_s = statistics.median(decode_walls)
    print(
        f"medians of {args.runs}: baseline {base_s:.2f} s, decode {decode_s:.2f} s; "
        f"pairwise speed-up min {min(ratios):.2f}x, max {max(ratios):.2f}x"
    )
    print(
        f"events: {args.events}, decode events/s: {args.events / decode_s:,.0f}, "
        f"baseline loop events/s: {args.events / base_s:,.0f}, "
        f"speed-up: {statistics.median(ratios):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

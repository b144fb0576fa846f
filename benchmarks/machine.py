"""The machine a benchmark ran on: CPU, cores, memory, load, Python and key package versions.

Printed by every benchmark next to its figures, so a result can be compared only with results
taken on a comparable machine, and so concurrent load is visible in the record.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "dagster",
    "dagster-webserver",
    "boto3",
    "google-cloud-bigquery",
    "pyarrow",
    "pandas",
    "orjson",
    "moto",
    "bqemulator",
    "duckdb",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what the platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gib() -> float:
    """Physical memory in GiB (0 if unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def load_average() -> str:
    """The 1/5/15-minute load averages."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def versions(packages: tuple[str, ...] = PACKAGES) -> str:
    """``name version`` of each installed package among ``packages``."""
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def describe() -> str:
    """Multi-line description of the machine, for a benchmark's output."""
    return "\n".join(
        [
            f"machine: {cpu_model()}, {os.cpu_count()} cores, {memory_total_gib():.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}",
            f"load average (1/5/15 min): {load_average()} "
            f"at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
            f"python {platform.python_version()}; {versions()}",
        ]
    )


def vm_hwm_bytes(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_vm_hwm() -> None:
    """Start this process's peak resident set size (VmHWM) afresh (Linux: ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def vm_rss_bytes(pid: int) -> int | None:
    """Current resident set size (VmRSS) of a live process, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class LoadSampler:
    """Samples the 1-minute load average while a benchmark runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> None:
        """Record the current 1-minute load average."""
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        """Min / mean / max of the samples."""
        if not self.samples:
            return "no samples"
        mean = sum(self.samples) / len(self.samples)
        return (
            f"1-min load average during the run: min {min(self.samples):.2f}, mean {mean:.2f}, "
            f"max {max(self.samples):.2f} ({len(self.samples)} samples, {os.cpu_count()} cores)"
        )

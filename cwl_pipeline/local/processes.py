"""Start and stop the local services as child processes on 127.0.0.1.

Each service runs in its own process group so that stopping it also stops whatever it
spawned, and the port is free again when :meth:`LocalService.stop` returns.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_PROJECT = "cwl-local"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ServiceError(RuntimeError):
    """A local service failed to start; the message names it and shows its last output."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _executable(name: str) -> str:
    # Prefer the script next to the running interpreter (the project's virtualenv).
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


@dataclass
class LocalService:
    """A child process serving on ``port``."""

    name: str
    argv: Sequence[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    grpc_port: int | None = None  # a second, gRPC port (the BigQuery emulator's Storage APIs)

    def start(self, timeout: float = 60.0, preexec: Callable[[], None] | None = None) -> LocalService:
        """Start the process and wait until its port accepts connections (``port`` 0: no port)."""
        if self.port and port_in_use(self.port):
            raise ServiceError(f"{self.name}: port {self.port} is already in use")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            list(self.argv),
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {self.process.returncode}{self._tail()}")
            if not self.port or port_in_use(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise ServiceError(
            f"{self.name} did not listen on port {self.port} within {timeout:.0f}s{self._tail()}"
        )

    def _tail(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return "; last output:\n" + "\n".join(lines)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
        if not self.process or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"


def moto_service(port: int, log_path: Path | None = None) -> LocalService:
    """Local AWS: moto in server mode, in UTC (its export files write local time as Z)."""
    return LocalService(
        name="local AWS (moto)",
        argv=[_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        port=port,
        env={"TZ": "UTC", **LOCAL_CREDENTIALS},
        log_path=log_path,
    )


def ensure_duckdb_extensions() -> None:
    """Install the DuckDB extensions the BigQuery emulator needs from their PyPI packages.

    Without them the emulator tries to download the extensions at start, which fails offline.
    """
    import duckdb_extensions

    for name in ("spatial", "avro"):
        duckdb_extensions.import_extension(name)


def bigquery_service(
    port: int,
    grpc_port: int,
    data_dir: Path | None = None,
    project: str = LOCAL_PROJECT,
    log_path: Path | None = None,
) -> LocalService:
    """Local BigQuery: bqemulator's REST (and gRPC) server, persistent when ``data_dir`` is given.

    Started through :mod:`cwl_pipeline.local.bqemulator_serialized`, which serializes the
    emulator's queries and Storage Write appends on its one DuckDB connection.
    """
    ensure_duckdb_extensions()
    argv = [
        sys.executable,
        "-m",
        "cwl_pipeline.local.bqemulator_serialized",
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--project",
        project,
        "--log-level",
        "warning",
    ]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--persistent", "--data-dir", str(data_dir)]
    return LocalService(
        name="local BigQuery (bqemulator)", argv=argv, port=port, log_path=log_path, grpc_port=grpc_port
    )

"""The production ``dagster.yaml`` and ``workspace.yaml``, made runnable on this machine.

:func:`local_copy` derives the test copy of deploy/dagster/dagster.yaml: the same file with only
the settings listed in :data:`SWAPPED` changed, so what runs is the production file.
:func:`start_deployment` starts what a deployment runs, each as its own process on the one
instance: the code server (``dagster api grpc``, the user-code service), the daemon and the
webserver, both loading the code location from that server as deploy/dagster/workspace.yaml says.
"""

from __future__ import annotations

import copy
import json
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cwl_pipeline.local.processes import LocalService, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster"
PRODUCTION_YAML = DEPLOY / "dagster.yaml"
PRODUCTION_WORKSPACE = DEPLOY / "workspace.yaml"

# Dotted paths of the settings the test copy changes, and why.
SWAPPED = {
    # ECS is not here: the default launcher starts each run as a child process of the code server.
    "run_launcher": "the default run launcher instead of ECS",
    # pgserver's PostgreSQL build has no TLS support (libpq's sslmode=require would refuse it).
    "storage.postgres.postgres_db.params.sslmode": "the local server speaks no TLS",
    # Keep the compute logs' local staging inside the test's folder.
    "compute_logs.config.local_dir": "a folder of the test",
    # The monitoring daemon's pass and the release of a dead run's pool slots take a minute and
    # five minutes in production; seconds here, so the killed-run scenario fits in a test.
    "run_monitoring.poll_interval_seconds": "seconds instead of a minute",
    "run_monitoring.free_slots_after_run_end_seconds": "seconds instead of five minutes",
}


def local_copy(production: dict[str, Any], compute_logs_dir: Path) -> dict[str, Any]:
    """The production instance config with only :data:`SWAPPED` changed."""
    local = copy.deepcopy(production)
    del local["run_launcher"]
    local["storage"]["postgres"]["postgres_db"]["params"]["sslmode"] = "disable"
    local["compute_logs"]["config"]["local_dir"] = str(compute_logs_dir)
    local["run_monitoring"]["poll_interval_seconds"] = 2
    local["run_monitoring"]["free_slots_after_run_end_seconds"] = 3
    return local


def differences(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted paths where two YAML trees differ (a key present in one only counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: set[str] = set()
        for key in set(a) | set(b):
            path = f"{prefix}{key}"
            if key not in a or key not in b:
                found.add(path)
            else:
                found |= differences(a[key], b[key], path + ".")
        return found
    return set() if a == b else {prefix.rstrip(".")}


def workspace_copy(port: int) -> dict[str, Any]:
    """deploy/dagster/workspace.yaml with the code server's port of this test."""
    workspace = yaml.safe_load(PRODUCTION_WORKSPACE.read_text())
    [entry] = workspace["load_from"]
    entry["grpc_server"]["port"] = port
    return workspace


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class Deployment:
    """The code server, the daemon and the webserver of one instance."""

    home: Path
    code_server: LocalService
    daemon: LocalService
    webserver: LocalService
    services: list[LocalService] = field(default_factory=list)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask the webserver's GraphQL API, as the UI does."""
        request = urllib.request.Request(
            f"{self.webserver.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body
        return body["data"]

    def materialize(self, assets: list[str], partition: str) -> str:
        """Launch a run of ``assets`` for ``partition`` from the webserver, as "Materialize" in the
        UI does; returns the run id."""
        params = {
            "selector": {
                "repositoryLocationName": "cwl_pipeline",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [name]} for name in assets],
            },
            "mode": "default",
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
        }
        data = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def logs(self) -> str:
        """The tail of every process's output, for assertion messages."""
        parts = []
        for service in self.services:
            if service.log_path and service.log_path.exists():
                tail = service.log_path.read_text(errors="replace").splitlines()[-40:]
                parts.append(f"--- {service.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the webserver, the daemon and the code server (and the runs it started)."""
        for service in reversed(self.services):
            service.stop()


def start_deployment(home: Path, logs: Path, env: dict[str, str]) -> Deployment:
    """Write the workspace, then start the code server, the daemon and the webserver."""
    code_port, ui_port = free_port(), free_port()
    workspace = home / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(workspace_copy(code_port)))
    env = {**env, "DAGSTER_HOME": str(home), "CWL_CODE_SERVER_HOST": "127.0.0.1"}
    logs.mkdir(parents=True, exist_ok=True)
    grpc = ["api", "grpc", "-m", "cwl_pipeline.definitions", "--location-name", "cwl_pipeline"]
    code_server = LocalService(
        "code server",
        [_bin("dagster"), *grpc, "-h", "127.0.0.1", "-p", str(code_port)],
        code_port,
        env,
        logs / "code_server.log",
    )
    daemon = LocalService("daemon", [_bin("dagster-daemon"), "run", "-w", str(workspace)], 0, env)
    daemon.log_path = logs / "daemon.log"
    webserver = LocalService(
        "webserver",
        [_bin("dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(ui_port)],
        ui_port,
        env,
        logs / "webserver.log",
    )
    deployment = Deployment(home, code_server, daemon, webserver)
    try:
        for service in (code_server, daemon, webserver):
            deployment.services.append(service)
            service.start(timeout=120)
    except Exception:
        deployment.stop()
        raise
    return deployment


def wait_for(predicate, timeout: float, what: str, deployment: Deployment | None = None, every: float = 1.0):
    """Poll ``predicate`` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    logs = deployment.logs() if deployment else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")

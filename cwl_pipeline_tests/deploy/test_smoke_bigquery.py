"""``make smoke-bigquery`` run against the emulator, so that the script a new project is
checked with keeps working as the load path changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cwl_pipeline.local.processes import LOCAL_PROJECT

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "smoke_bigquery.py"
STEPS = 12  # eleven steps and the clean-up


def test_the_smoke_test_passes_every_step_on_the_emulator_and_drops_its_datasets(
    local_bigquery, bq_client, unique_name
):
    prefix = f"smoke_{unique_name}"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--project",
            LOCAL_PROJECT,
            "--dataset-prefix",
            prefix,
            "--endpoint",
            local_bigquery.url,
            "--storage-write-endpoint",
            f"127.0.0.1:{local_bigquery.grpc_port}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    verdicts = [line.split(" ", 1)[0] for line in lines if line.startswith(("PASS ", "FAIL ", "SKIP "))]
    assert verdicts == ["PASS"] * STEPS, done.stdout
    assert lines[-1] == f"{STEPS} passed, 0 failed, 0 skipped"
    assert any("Storage Write API" in line for line in lines)
    assert not [d.dataset_id for d in bq_client.list_datasets() if d.dataset_id.startswith(prefix)]

"""One writer per table: concurrent runs of one stream against BigQuery's transaction conflicts.

Real Dagster runs in child processes (``dagster asset materialize -m cwl_pipeline.definitions``)
share a persistent instance whose pools have one slot (``pools.default_limit: 1``, as in the
local and the production ``dagster.yaml``). The BigQuery fault proxy cancels a transaction that
mutates a table while another one on it is in flight, as real BigQuery does, and holds every
transaction in flight for a while so that unserialized runs would collide. Load kinds (refresh,
settled, sweep, backfill, UI click) differ only in their run tags: all go through the same op,
which claims the table's pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline_tests.faults.fault_stack import WINDOW, cloudwatch_ids, polling_stack, put_events, table_ids
from cwl_pipeline_tests.pipeline.polling import window_start

POOLED = "telemetry: {enabled: false}\nconcurrency:\n  pools:\n    default_limit: {limit}\n"


def run_concurrently(home: Path, config: Path, keys: list[str]) -> list[tuple[int, str]]:
    """Start one ``dagster asset materialize`` per key at once; wait for all; (code, log) each."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "CWL_PIPELINE_CONFIG": str(config)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    processes = []
    for index, key in enumerate(keys):
        argv = [dagster, "asset", "materialize", "-m", "cwl_pipeline.definitions"]
        argv += ["--select", "app_events,app_events_rejects", "--partition", key]
        log = home / f"run-{index}.log"
        with open(log, "wb") as out:
            processes.append((subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT), log))
    return [(p.wait(300), log.read_text(errors="replace")) for p, log in processes]


def instance_home(tmp_path: Path, limit: int) -> Path:
    """A persistent instance with pools of ``limit`` slots, created before the runs start (so
    concurrent processes do not race to create its storage)."""
    home = tmp_path / f"home-{limit}"
    home.mkdir()
    (home / "dagster.yaml").write_text(POOLED.replace("{limit}", str(limit)))
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
    return home


def test_concurrent_runs_of_one_stream_write_one_at_a_time(
    tmp_path, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """Five runs of one stream at once (the same window three times, its neighbours once each):
    the pool lets one write at a time, so BigQuery never cancels a transaction, every run
    succeeds and every event is stored exactly once."""
    stack = polling_stack(write_config, logs_client, local_aws.url, bq_faults.url, unique_name)
    first = window_start() - WINDOW
    for i in range(3):
        put_events(logs_client, stack["group"], first + i * WINDOW, 4, first_session=10 * i)
    keys = [partition_key(first + i * WINDOW) for i in (1, 0, 1, 2, 1)]
    conflicts = bq_faults.emulate_transaction_conflicts(hold=1.0)

    results = run_concurrently(instance_home(tmp_path, 1), stack["path"], keys)

    assert all(code == 0 for code, _ in results), [log[-2000:] for code, log in results if code]
    assert conflicts.cancelled == []
    assert len(conflicts.served) >= len(keys)  # every run's replace reached BigQuery
    expected = cloudwatch_ids(logs_client, stack["group"], first, first + 3 * WINDOW)
    assert len(expected) == 12
    assert sorted(table_ids(bq_client, stack["dataset"])) == sorted(expected)


def test_without_the_pool_transactions_are_cancelled_and_retried(
    tmp_path, bq_faults, local_aws, logs_client, bq_client, write_config, unique_name
):
    """The same runs with room for all of them in the pool: BigQuery cancels overlapping
    transactions (the proxy shows it does), the replace runs a cancelled one again, and the
    table still ends exact. The pool is what keeps this from happening in normal operation."""
    stack = polling_stack(
        write_config, logs_client, local_aws.url, bq_faults.url, unique_name, retry_timeout="60s"
    )
    start = window_start()
    put_events(logs_client, stack["group"], start, 5)
    keys = [partition_key(start)] * 3
    conflicts = bq_faults.emulate_transaction_conflicts(hold=2.0)

    results = run_concurrently(instance_home(tmp_path, 5), stack["path"], keys)

    assert all(code == 0 for code, _ in results), [log[-2000:] for code, log in results if code]
    assert conflicts.cancelled, "the runs did not overlap: the test proves nothing"
    expected = cloudwatch_ids(logs_client, stack["group"], start, start + WINDOW)
    assert sorted(table_ids(bq_client, stack["dataset"])) == sorted(expected)

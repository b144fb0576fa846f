"""The BigQuery emulator restarted in the middle of a run.

A dedicated emulator with ``--persistent --data-dir`` sits behind the fault proxy. The proxy
holds the run's replace transaction (``bigquery_replace`` with ``Hold``); meanwhile the test
stops the emulator, releases the request — which now meets a closed port, so the proxy answers
502 — and starts the emulator again on the same ports and data directory. The client's retries
(``bigquery.retry_timeout: 30s``) must carry the run through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import dagster as dg
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from cwl_pipeline.core.windows import partition_key
from cwl_pipeline.local.processes import LOCAL_PROJECT, LocalService, bigquery_service, free_port
from cwl_pipeline_tests.faults.fault_proxy import FaultProxy, Hold, bigquery_replace
from cwl_pipeline_tests.faults.fault_stack import (
    WINDOW,
    assert_staging_expires,
    cloudwatch_ids,
    polling_stack,
    put_events,
    run_history,
    table_ids,
)
from cwl_pipeline_tests.pipeline.polling import materialize, window_start


@pytest.fixture
def persistent_bigquery(tmp_path) -> Iterator[LocalService]:
    """An emulator of its own, persisting to ``tmp_path``, so a restart loses nothing."""
    service = bigquery_service(
        free_port(), free_port(), data_dir=tmp_path / "bq-data", log_path=tmp_path / "bq.log"
    ).start()
    yield service
    service.stop()


def test_emulator_restart_mid_run_is_carried_through_by_retries(
    persistent_bigquery, local_aws, logs_client, write_config, unique_name
):
    """Held replace → emulator stopped → request released into the closed port (502) →
    emulator started again: the run succeeds, the window is exact, nothing is left staged."""
    with FaultProxy(persistent_bigquery.url) as proxy:
        bq_client = bigquery.Client(
            project=LOCAL_PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": persistent_bigquery.url},
        )
        stack = polling_stack(
            write_config, logs_client, local_aws.url, proxy.url, unique_name, retry_timeout="30s"
        )
        start = window_start()
        key = partition_key(start)
        put_events(logs_client, stack.group, start, 3)
        materialize(stack.defs, key)
        assert len(table_ids(bq_client, stack.dataset)) == 3
        put_events(logs_client, stack.group, start, 2, first_session=10)

        release = threading.Event()
        held = proxy.add(bigquery_replace(Hold(release)))
        restarted: list[str] = []

        def restart_while_held() -> None:
            if not held.arrived.wait(60):
                release.set()
                return
            persistent_bigquery.stop()
            release.set()  # the request now meets a closed port
            for _ in range(600):  # until the proxy answered it 502 (at most 30 s)
                if any(s.status == 502 for s in proxy.seen):
                    break
                threading.Event().wait(0.05)
            persistent_bigquery.start()
            restarted.append("yes")

        helper = threading.Thread(target=restart_while_held)
        helper.start()
        instance = dg.DagsterInstance.ephemeral()
        result = materialize(stack.defs, key, raise_on_error=False, instance=instance)
        helper.join(60)

        assert restarted == ["yes"] and held.fired == 1
        assert any(s.status == 502 for s in proxy.seen), "the emulator was not down when the request left"
        history = run_history(instance, result.run_id)
        assert history.status == dg.DagsterRunStatus.SUCCESS, history.failure
        expected = cloudwatch_ids(logs_client, stack.group, start, start + WINDOW)
        assert len(expected) == 5 and table_ids(bq_client, stack.dataset) == expected
        assert assert_staging_expires(proxy, bq_client, stack.dataset) == 0
        bq_client.close()

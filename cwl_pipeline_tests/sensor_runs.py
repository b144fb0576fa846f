"""Sensor ticks and the runs they request, handled as the Dagster daemon handles them, in-process.

A tick is evaluated with ``build_sensor_context`` on a real instance; what the daemon does with
its result besides launching runs (adding dynamic partitions, storing the tick's asset events)
is done here too, and the tick log (``context.log``) is collected. A requested run is executed
in-process on the same instance with the tags the daemon gives a sensor's run: the request's
tags (the sensor name included) and its run key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG

from cwl_pipeline.orchestration.owed_runs import ATTEMPT_TAG, RETRY_OF_TAG


class _TickLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


@dataclass
class Tick:
    """One evaluated tick: its result and its log lines ``(level, message)``."""

    result: dg.SensorResult | object
    log: list[tuple[str, str]] = field(default_factory=list)

    @property
    def requests(self) -> list[dg.RunRequest]:
        """The run requests of the tick."""
        return list(self.result.run_requests or [])  # type: ignore[attr-defined]

    @property
    def retries(self) -> list[dg.RunRequest]:
        """The requests that ask for failed work again."""
        return [r for r in self.requests if ATTEMPT_TAG in r.tags]

    @property
    def cursor(self) -> str | None:
        """The cursor the tick stores."""
        return self.result.cursor  # type: ignore[attr-defined]

    def lines(self, level: str) -> list[str]:
        """Messages logged at ``level`` (``INFO``, ``WARNING``, ``ERROR``)."""
        return [m for lvl, m in self.log if lvl == level]


def tick(
    sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> Tick:
    """Evaluate one tick of ``sensor`` and apply its partition requests and asset events."""
    context = dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref() if instance.is_persistent else None,
        cursor=cursor,
        definitions=defs,
        resources=defs.resources,
    )
    handler = _TickLog()
    context.log.addHandler(handler)
    result = sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    return Tick(result, handler.lines)


def launch(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, node_name: str
) -> dg.ExecuteInProcessResult:
    """Execute a requested run of the asset whose op is ``node_name``; it may fail."""
    assets = next(
        a for a in defs.resolve_asset_graph().assets_defs if a.is_executable and a.node_def.name == node_name
    )
    return dg.materialize(
        [assets],
        partition_key=request.partition_key,
        instance=instance,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
        raise_on_error=False,
    )


def assert_retry_chain(
    *,
    sensor: dg.SensorDefinition,
    defs: dg.Definitions,
    failing_defs: dg.Definitions,
    instance: dg.DagsterInstance,
    first: dg.RunRequest,
    cursor: str | None,
    node_name: str,
    attempts: int = 5,
) -> Tick:
    """Run ``first`` and every retry the sensor asks for with ``failing_defs`` (each run really
    fails), and check the sensor asks for attempts 2 … ``attempts`` of the same work and then gives
    up. Returns the tick that gave up."""
    request = first
    for attempt in range(1, attempts + 1):
        run = launch(failing_defs, instance, request, node_name)
        assert not run.success
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        after = tick(sensor, defs, instance, cursor)
        cursor = after.cursor
        if attempt == attempts:
            assert after.retries == [], [r.run_key for r in after.retries]
            return after
        [retry] = after.retries
        assert retry.tags[ATTEMPT_TAG] == str(attempt + 1)
        assert retry.tags[RETRY_OF_TAG] == run.run_id
        assert retry.run_key == f"{first.run_key}:attempt-{attempt + 1}"
        assert retry.partition_key == first.partition_key
        same = {k: v for k, v in first.tags.items() if k not in (ATTEMPT_TAG, RETRY_OF_TAG)}
        assert {k: retry.tags.get(k) for k in same} == same  # kind, stream, partition range, sensor
        assert any(
            f"(attempt {attempt + 1}/{attempts}) after run {run.run_id} ended FAILURE" in line
            for line in after.lines("INFO")
        ), after.log
        request = retry
    raise AssertionError("unreachable")

"""Every source kind builds its streams through one builder of one shape, which
``cwl_pipeline.streams`` looks up by the stream's source kind."""

from __future__ import annotations

import dagster as dg
import pytest

from cwl_pipeline.config import BUNDLED_CONFIG, LiveSettings, ReconcileSettings, StreamConfig, load_config
from cwl_pipeline.firehose.layout_check import KEYS_IN_LAYOUT
from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import LATEST_WINDOW
from cwl_pipeline.orchestration.rollups import build_rollups
from cwl_pipeline.orchestration.stream_definitions import StreamDefinitions
from cwl_pipeline.orchestration.tables import asset_key, written_keys
from cwl_pipeline.polling.reconcile import RECONCILE_CHECK
from cwl_pipeline.streams import BUILDERS, build_stream, source_kind

CONFIG = load_config(BUNDLED_CONFIG, env={})
# A polling stream whose open window is refreshed by runs and that is not reconciled: no live
# table, no live sensor, no reconciliation check or sensor.
QUIET = CONFIG.stream("app_events").model_copy(
    update={
        "name": "quiet_events",
        "live": LiveSettings(path="runs"),
        "reconcile": ReconcileSettings(enabled=False),
    }
)
STREAMS = [*CONFIG.streams, QUIET]


def _expected(stream: StreamConfig) -> dict[str, set[str]]:
    """The assets besides the loader's tables, the checks besides the load checks, the sensors
    and the jobs a stream of each source kind contributes."""
    name, tables = stream.name, StreamTables.of(stream)
    kind = source_kind(stream)
    if kind == "export":
        return {
            "assets": set(),
            "checks": set(),
            "sensors": {f"{name}_export_tasks"},
            "jobs": {f"{name}_export_history"},
        }
    if kind == "firehose":
        return {"assets": set(), "checks": {KEYS_IN_LAYOUT}, "sensors": {f"{name}_objects"}, "jobs": set()}
    live = stream.live.path == "sensor"
    reconciled = stream.reconcile.enabled
    assets = {key for rollup in build_rollups(tables, CONFIG.bigquery) for key in rollup.keys}
    sensors = {f"{name}_windows"}
    checks = {LATEST_WINDOW}
    if live:
        assets.add(asset_key(tables, tables.live))
        sensors.add(f"{name}_live")
    if reconciled:
        checks.add(RECONCILE_CHECK)
        sensors.add(f"{name}_reconcile")
    return {
        "assets": {key.to_user_string() for key in assets},
        "checks": checks,
        "sensors": sensors,
        "jobs": set(),
    }


def test_the_local_config_has_a_stream_of_every_source_kind() -> None:
    assert {source_kind(stream) for stream in CONFIG.streams} == set(BUILDERS)


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream.name)
def test_each_source_kinds_builder_gives_a_streams_definitions(stream: StreamConfig) -> None:
    built = BUILDERS[source_kind(stream)](stream, CONFIG.bigquery, ProjectKeys())
    assert isinstance(built, StreamDefinitions)
    assert built.sources and all(isinstance(spec, dg.AssetSpec) for spec in built.sources)
    loader, *others = built.assets
    assert isinstance(loader, dg.AssetsDefinition)
    assert loader.node_def.name == f"load_{stream.name}"
    assert set(written_keys(StreamTables.of(stream))) <= set(loader.keys)
    assert built.sources[-1].key in {dep.asset_key for spec in loader.specs for dep in spec.deps}
    expected = _expected(stream)
    other_keys = {key for a in others for key in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])}
    assert {key.to_user_string() for key in other_keys} == expected["assets"]
    assert {key.name for check in built.checks for key in check.check_keys} == expected["checks"]
    assert {sensor.name for sensor in built.sensors} == expected["sensors"]
    assert {job.name for job in built.jobs} == expected["jobs"]


@pytest.mark.parametrize("stream", STREAMS, ids=lambda stream: stream.name)
def test_every_definition_reads_aws_and_bigquery_under_the_projects_keys(stream: StreamConfig) -> None:
    built = BUILDERS[source_kind(stream)](stream, CONFIG.bigquery, ProjectKeys("logs_aws", "logs_bigquery"))
    executable = [a for a in built.assets if isinstance(a, dg.AssetsDefinition)]
    required = [
        set(d.required_resource_keys) - {"io_manager"}
        for d in [*executable, *built.checks, *built.sensors, *built.jobs]
    ]
    assert set().union(*required) == {"logs_aws", "logs_bigquery"}
    assert required[0] == {"logs_aws", "logs_bigquery"}  # the loader


def test_the_asset_key_prefix_reaches_every_table_asset_rollups_included() -> None:
    prefixed = CONFIG.stream("app_events").model_copy(update={"asset_key_prefix": ("logs",)})
    built = build_stream(prefixed, CONFIG.bigquery)
    keys = {
        key.to_user_string()
        for asset in built.assets
        for key in (asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key])
    }
    assert {"logs/app_events_hourly_actions", "logs/app_events_daily_sessions", "logs/app_events"} <= keys
    assert not {key for key in keys if not key.startswith("logs/")}, keys

"""The repository is a dg project whose defs folder yields what the pipeline file defines."""

from __future__ import annotations

import tomllib

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from cwl_pipeline.components import CloudWatchLogsPipeline
from cwl_pipeline.config import BUNDLED_CONFIG, CONFIG_ENV_VAR, load_config
from cwl_pipeline.definitions import build_definitions, defs
from cwl_pipeline_tests.components.installed import CHECKOUT


def _names(definitions: dg.Definitions) -> dict[str, set[str]]:
    graph = definitions.resolve_asset_graph()
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {key.to_user_string() for key in graph.asset_check_keys},
        "sensors": {sensor.name for sensor in definitions.sensors or []},
        "jobs": {job.name for job in definitions.resolve_all_job_defs()},
        "resources": set(definitions.resources or {}),
    }


def test_the_defs_folder_defines_what_the_pipeline_file_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, str(BUNDLED_CONFIG))
    loaded = defs()
    assert _names(loaded) == _names(build_definitions(load_config()))
    assert loaded.executor is dg.in_process_executor


def test_a_pipeline_component_in_another_project_takes_other_resource_keys() -> None:
    keys = {"aws": "logs_aws", "bigquery": "logs_bigquery"}
    with create_defs_folder_sandbox() as sandbox:
        sandbox.scaffold_component(
            component_cls=CloudWatchLogsPipeline,
            defs_path="pipeline",
            defs_yaml_contents={
                "type": "cwl_pipeline.CloudWatchLogsPipeline",
                "attributes": {"config": str(BUNDLED_CONFIG), "resource_keys": keys},
            },
        )
        with sandbox.build_all_defs() as defs:
            assert set(defs.resources) == {"logs_aws", "logs_bigquery"}
            graph = defs.resolve_asset_graph()
            required = {key for node in graph.asset_nodes for key in node.assets_def.required_resource_keys}
            assert required - {"io_manager"} == {"logs_aws", "logs_bigquery"}


def test_pyproject_and_the_packaged_dg_toml_describe_the_same_project() -> None:
    pyproject = tomllib.loads((CHECKOUT / "pyproject.toml").read_text(encoding="utf-8"))
    packaged = tomllib.loads((CHECKOUT / "cwl_pipeline" / "dg.toml").read_text(encoding="utf-8"))
    assert pyproject["tool"]["dg"]["directory_type"] == packaged["directory_type"] == "project"
    assert pyproject["tool"]["dg"]["project"] == packaged["project"]
    assert packaged["project"]["code_location_name"] == pyproject["tool"]["dagster"]["code_location_name"]
    entry_points = pyproject["project"]["entry-points"]["dagster_dg_cli.registry_modules"]
    assert entry_points == {"cwl_pipeline": "cwl_pipeline"}

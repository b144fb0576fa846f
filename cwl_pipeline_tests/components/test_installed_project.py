"""A user's Dagster project adds two streams with ``dg``, the package installed from its wheel.

The project is written as ``create-dagster project`` lays it out (``src/<package>/defs``,
``[tool.dg]``); its ``.venv`` is a fresh virtualenv holding the wheel (see installed.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cwl_pipeline_tests.components.installed import fresh_venv, run, venv_env

PYPROJECT = """\
[project]
name = "logs_project"
version = "0.1.0"
requires-python = ">=3.11"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "logs_project"
code_location_name = "logs_project"
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh dg project with the wheel in its .venv and the project's own package on its path."""
    root = tmp_path_factory.mktemp("user") / "logs_project"
    package = root / "src" / "logs_project"
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "defs" / "__init__.py").write_text("", encoding="utf-8")
    (package / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")
    python = fresh_venv(root / ".venv", wheel)
    purelib = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    (purelib / "logs_project.pth").write_text(f"{root / 'src'}\n", encoding="utf-8")  # editable
    assert python.exists()
    return root


def dg(project: Path, *args: str, **env: str) -> str:
    """``dg`` run in ``project`` with its .venv."""
    venv = project / ".venv"
    environ = venv_env(venv, project.parent / "dagster_home") | env
    return run([str(venv / "bin" / "python"), "-m", "dagster_dg_cli.cli", *args], cwd=project, env=environ)


BQ_ENV = {"CWL_BQ_PROJECT": "logs-prod", "CWL_BQ_DATASET": "cloudwatch"}


def test_dg_lists_the_components_of_the_installed_package_each_with_a_line_of_doc(project: Path) -> None:
    listed = {
        c["key"]: c["summary"] for c in json.loads(dg(project, "list", "components", "--json"))["items"]
    }
    ours = {key: summary for key, summary in listed.items() if key.startswith("cwl_pipeline.")}
    assert set(ours) == {
        "cwl_pipeline.CloudWatchLogsToBigQuery",
        "cwl_pipeline.CloudWatchLogsToBigQuerySettings",
        "cwl_pipeline.CloudWatchLogsPipeline",
    }
    assert all(summary and "\n" not in summary and summary.endswith(".") for summary in ours.values()), ours


def test_two_scaffolded_streams_load_with_their_settings(project: Path) -> None:
    defs = project / "src" / "logs_project" / "defs"
    dg(project, "scaffold", "defs", "cwl_pipeline.CloudWatchLogsToBigQuerySettings", "cwl_settings")
    for stream in ("app_logs", "worker_logs"):
        dg(project, "scaffold", "defs", "cwl_pipeline.CloudWatchLogsToBigQuery", stream)
    settings = (defs / "cwl_settings" / "defs.yaml").read_text(encoding="utf-8")
    stream_yaml = (defs / "app_logs" / "defs.yaml").read_text(encoding="utf-8")
    assert "{{ env('CWL_BQ_PROJECT') }}" in settings
    assert "name: app_logs" in stream_yaml and "# window: 15m" in stream_yaml  # commented keys

    assert "All definitions loaded successfully." in dg(project, "check", "defs", **BQ_ENV)
    listed = json.loads(dg(project, "list", "defs", "--json", **BQ_ENV))
    sources = {a["asset_key"]: a["source"] for a in listed["assets"]}
    sensors = {s["name"] for s in listed["sensors"]}
    for stream in ("app_logs", "worker_logs"):
        # The events table and its rollups, declared by the stream's defs.yaml.
        assert sources[stream] == f"src/logs_project/defs/{stream}/defs.yaml:5"
        assert f"{stream}_daily_sessions" in sources
        assert {f"{stream}_windows", f"{stream}_automation"} <= sensors
    # One pair of resources, from the settings instance, shared by both streams.
    assert {r["name"] for r in listed["resources"]} == {"cwl_aws", "cwl_bigquery"}


def test_an_invalid_stream_fails_dg_check_with_the_config_files_message(project: Path) -> None:
    bad = project / "src" / "logs_project" / "defs" / "bad_window"
    bad.mkdir()
    (bad / "defs.yaml").write_text(
        "type: cwl_pipeline.CloudWatchLogsToBigQuery\n"
        "attributes:\n  name: bad_window\n  source: {log_groups: ['/x']}\n"
        "  start: '2026-11-01T00:00:00Z'\n  window: 7m\n",
        encoding="utf-8",
    )
    try:
        with pytest.raises(AssertionError, match=r"streams\.bad_window\.window: '7m' must divide an hour"):
            dg(project, "check", "defs", **BQ_ENV)
    finally:
        (bad / "defs.yaml").unlink()
        bad.rmdir()

"""The wheel, installed non-editable into a fresh virtualenv as deploy/Dockerfile installs it,
loads the project's definitions: its dg.toml and defs.yaml travel inside the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

from cwl_pipeline.config import BUNDLED_CONFIG, CONFIG_ENV_VAR
from cwl_pipeline_tests.components.installed import CHECKOUT, run, venv_env

LOAD = """
import cwl_pipeline, cwl_pipeline.definitions as d
from pathlib import Path
assert "site-packages" in cwl_pipeline.__file__, cwl_pipeline.__file__
defs = d.defs()
print(len(list(defs.resolve_all_asset_keys())), sorted(s.name for s in defs.sensors)[:1])
"""


def test_the_wheel_holds_the_project_file_and_every_defs_yaml(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = CHECKOUT / "cwl_pipeline"
    for path in [package / "dg.toml", *package.rglob("defs.yaml"), *package.glob("*.yaml")]:
        assert str(path.relative_to(CHECKOUT)) in names


def test_the_installed_definitions_load_outside_the_checkout(installed_venv: Path, tmp_path: Path) -> None:
    env = venv_env(installed_venv, tmp_path / "home") | {CONFIG_ENV_VAR: str(BUNDLED_CONFIG)}
    python = str(installed_venv / "bin" / "python")
    assets, sensors = run([python, "-c", LOAD], cwd=tmp_path, env=env).strip().split(" ", 1)
    assert int(assets) > 10 and "app_events" in sensors
    validated = run(
        [python, "-m", "dagster", "definitions", "validate", "-m", "cwl_pipeline.definitions"],
        cwd=tmp_path,
        env=env,
    )
    assert "Validation successful" in validated or "successfully" in validated.lower(), validated

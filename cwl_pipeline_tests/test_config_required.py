"""The pipeline config is always an explicit choice: no silent fallback to the local stack's.

A deployment that forgot ``CWL_PIPELINE_CONFIG`` must fail on load with a message saying how to
fix it, never load the bundled config whose endpoints are 127.0.0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cwl_pipeline.cli import dev
from cwl_pipeline.config import BUNDLED_CONFIG, CONFIG_ENV_VAR, ConfigError, config_path, load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _assert_explains_the_fix(message: str) -> None:
    assert f"{CONFIG_ENV_VAR} is not set" in message
    assert "cwl-pipeline dev" in message  # the local stack's way
    assert f"{CONFIG_ENV_VAR}={BUNDLED_CONFIG}" in message  # the explicit local choice


def test_a_missing_variable_is_an_error_that_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    with pytest.raises(ConfigError) as raised:
        load_config()
    _assert_explains_the_fix(str(raised.value))
    with pytest.raises(ConfigError) as raised:
        config_path({CONFIG_ENV_VAR: ""})
    _assert_explains_the_fix(str(raised.value))


def test_the_variable_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, str(BUNDLED_CONFIG))
    assert load_config().path == BUNDLED_CONFIG
    assert config_path({CONFIG_ENV_VAR: "/etc/cwl-pipeline/pipeline.yaml"}) == Path(
        "/etc/cwl-pipeline/pipeline.yaml"
    )


def test_definitions_load_the_config_when_the_location_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the module needs no config; loading the code location needs the variable."""
    from cwl_pipeline import definitions

    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    # Dagster wraps what a component raises; the ConfigError is the cause, message intact.
    with pytest.raises(Exception) as raised:
        definitions.defs()
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__ or error.__context__
    assert isinstance(error, ConfigError), raised.value
    _assert_explains_the_fix(str(error))

    monkeypatch.setenv(CONFIG_ENV_VAR, str(BUNDLED_CONFIG))
    loaded = definitions.defs()
    assert loaded.metadata["config_path"].value == str(BUNDLED_CONFIG)


def _dev_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    dev.add_parser(parser.add_subparsers())
    return parser.parse_args(["dev", *argv])


def test_the_local_stack_chooses_the_bundled_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, "/etc/cwl-pipeline/pipeline.yaml")  # a production shell
    env = dev._dagster_env(tmp_path, _dev_args())
    assert env[CONFIG_ENV_VAR] == str(BUNDLED_CONFIG.resolve())
    mine = tmp_path / "mine.yaml"
    env = dev._dagster_env(tmp_path, _dev_args("--config", str(mine)))
    assert env[CONFIG_ENV_VAR] == str(mine)


def test_the_image_names_its_config_outside_the_package() -> None:
    """The image sets the variable to a path the deployment fills, not the bundled local config."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    assert f"ENV {CONFIG_ENV_VAR}=/etc/cwl-pipeline/pipeline.yaml" in lines
    assert "pipeline.local.yaml" not in (DEPLOY / "Dockerfile").read_text()

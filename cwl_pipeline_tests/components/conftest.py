"""A wheel of the checkout in a fresh virtualenv, shared by the tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cwl_pipeline_tests.components.installed import build_wheel, fresh_venv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's wheel."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel installed, not editable."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    fresh_venv(venv, wheel)
    return venv

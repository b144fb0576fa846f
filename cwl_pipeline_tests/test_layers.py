"""The layers stay apart: pure modules import no I/O library, readers and the load path no Dagster.

Read from the source text (``ast``), so a layer violation fails here even in code no test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cwl_pipeline"

# Pure: formats, decoding, normalization, schemas, and each source's planning.
PURE = [
    "core",
    "s3_objects",
    "polling/plan.py",
    "polling/live_plan.py",
    "polling/reconcile_plan.py",
    "polling/window_stats.py",
    "firehose/key_layout.py",
    "firehose/windows.py",
    "firehose/notifications.py",
    "firehose/error_records.py",
    "exports/plan.py",
    "exports/folders.py",
    "orchestration/owed_plan.py",
]
# Readers, adapters and the load path: I/O, but no Dagster.
NO_DAGSTER = [
    "adapters",
    "load",
    "config.py",
    "config_rules.py",
    "config_accounts.py",
    "config_model.py",
    "config_reference.py",
    "polling/source.py",
    "firehose/source.py",
    "polling/filter_log_events.py",
    "polling/read.py",
    "polling/live_tail.py",
    "polling/rederive.py",
    "polling/history.py",
    "polling/incoming_log_events.py",
    "polling/reconcile_counts.py",
    "firehose/read.py",
    "firehose/routes.py",
    "firehose/listing.py",
    "exports/tasks.py",
    "exports/read.py",
]
IO_LIBRARIES = ("dagster", "boto3", "botocore", "google")


def _modules(places: list[str]) -> list[Path]:
    paths: list[Path] = []
    for place in places:
        path = PACKAGE / place
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return paths


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


@pytest.mark.parametrize("path", _modules(PURE), ids=_relative)
def test_pure_modules_import_no_io_library_and_no_other_layer(path: Path) -> None:
    pure = {f"cwl_pipeline.{p.removesuffix('.py').replace('/', '.')}" for p in PURE}
    for name in _imports(path):
        assert name.split(".")[0] not in IO_LIBRARIES, f"{_relative(path)} imports {name}"
        if name.startswith("cwl_pipeline."):
            assert any(name == p or name.startswith(p + ".") for p in pure), (
                f"{_relative(path)} imports {name}"
            )


@pytest.mark.parametrize("path", _modules(NO_DAGSTER), ids=_relative)
def test_readers_and_the_load_path_import_no_dagster(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] != "dagster", f"{_relative(path)} imports {name}"
        wiring = ("orchestration", "definitions", "cli")
        assert not any(name.startswith(f"cwl_pipeline.{w}") for w in wiring), (
            f"{_relative(path)} imports {name}"
        )
        if name.startswith(("cwl_pipeline.polling.", "cwl_pipeline.firehose.", "cwl_pipeline.exports.")):
            wired = (".assets", ".stream", ".sensor", ".live_sensor", ".reconcile", ".history_job")
            assert not name.endswith(wired), f"{_relative(path)} imports {name}"


def test_every_module_is_in_a_layer_or_is_wiring() -> None:
    """A new module is placed on purpose: pure, reader/adapter, or Dagster wiring."""
    layered = set(_modules(PURE)) | set(_modules(NO_DAGSTER))
    wiring_dirs = ("orchestration", "cli", "local", "components", "defs")
    wiring_names = (
        "assets.py",
        "stream.py",
        "sensor.py",
        "live_sensor.py",
        "reconcile.py",
        "history_job.py",
        "layout_check.py",
        "__init__.py",
    )
    for path in PACKAGE.rglob("*.py"):
        rel = _relative(path)
        if path in layered or rel.startswith(wiring_dirs) or path.name in wiring_names:
            continue
        assert rel in ("definitions.py", "streams.py"), f"{rel}: add it to a layer in {Path(__file__).name}"

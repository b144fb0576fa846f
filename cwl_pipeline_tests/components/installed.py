"""The package as a user installs it: a wheel, installed non-editable into a fresh virtualenv.

The virtualenv is new and holds only the wheel; the wheel's dependencies (dagster, boto3, the
Google clients, ``dg``) are read from the test interpreter's site-packages through a ``.pth``
line, because the test machine reaches no package index. A plain path in a ``.pth`` file only
extends ``sys.path``: the ``.pth`` files of that folder, among them the editable install of the
checkout, are not run, and the fresh environment's own site-packages comes first, so
``import cwl_pipeline`` and its entry points are the wheel's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def build_wheel(workdir: Path) -> Path:
    """Build the checkout's wheel from a copy of what deploy/Dockerfile copies."""
    source = workdir / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    shutil.copytree(
        CHECKOUT / "cwl_pipeline", source / "cwl_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = workdir / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)], cwd=workdir)  # fmt: skip
    (wheel,) = out.glob("cwl_pipeline-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path) -> Path:
    """A new virtualenv at ``path`` with ``wheel`` installed (not editable); its python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(path)], cwd=path.parent)
    python = path / "bin" / "python"
    purelib = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (purelib / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        cwd=path.parent,
    )
    return python


def venv_env(venv: Path, home: Path) -> dict[str, str]:
    """Environment of a process of ``venv``: its bin first, a Dagster home, no checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", DAGSTER_HOME=str(home))
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``argv``; its output, or an AssertionError carrying both streams."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout

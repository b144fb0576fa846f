"""The test PostgreSQL server starts wherever the project is installed and whoever runs it.

Under root the server runs as ``nobody``; when ``nobody`` cannot enter the install folder (a
checkout in a mode-700 folder, a virtualenv under ``/root``) the binaries are copied. These tests
lay the installed ``pgserver`` out again inside a mode-700 folder, as a private checkout has it.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cwl_pipeline_tests.deploy.postgres_server import copy_install, pgserver_install, start_postgres


@pytest.fixture(scope="module")
def private_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pgserver/pginstall`` and ``pgserver.libs`` inside a site-packages under a mode-700 folder."""
    private = tmp_path_factory.mktemp("private-checkout")
    private.chmod(0o700)
    site = private / "venv" / "lib" / "python3.11" / "site-packages"
    return copy_install(pgserver_install(), site)


def test_a_copied_install_keeps_the_libraries_its_binaries_load(tmp_path: Path) -> None:
    copied = copy_install(pgserver_install(), tmp_path / "copy")
    assert copied == tmp_path / "copy" / "pgserver" / "pginstall"
    assert not (copied / "include").exists()
    # The dynamic loader resolves libpq (RPATH $ORIGIN/../../../pgserver.libs) before main runs.
    version = subprocess.run([copied / "bin" / "initdb", "--version"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    assert "PostgreSQL" in version.stdout


def test_the_server_starts_from_a_private_folder(private_install: Path) -> None:
    assert any(not folder.stat().st_mode & stat.S_IXOTH for folder in private_install.parents)
    server = start_postgres(install=private_install)
    try:
        psql = [private_install / "bin" / "psql", "-h", server.host, "-p", str(server.port)]
        answer = subprocess.run(
            [*psql, "-U", "postgres", "-d", "dagster", "-tAc", "SELECT 6*7"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert answer.stdout.strip() == "42"
    finally:
        server.stop()
    assert not server.folder.exists()


def test_initdb_failure_names_the_cause(tmp_path: Path) -> None:
    broken = copy_install(pgserver_install(), tmp_path / "broken")
    shutil.rmtree(broken.parents[1] / "pgserver.libs")  # the copy the old code made: no libraries
    with pytest.raises(RuntimeError, match=r"(?s)initdb failed.*libpq"):
        start_postgres(install=broken)

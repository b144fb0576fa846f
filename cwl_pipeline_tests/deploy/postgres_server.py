"""A real PostgreSQL server on 127.0.0.1, from the binaries the ``pgserver`` package ships.

``pgserver`` (PyPI, installed by the project's ``test`` extra) carries a PostgreSQL 16 build in
its wheel (``pgserver/pginstall``). Only those binaries are used here: ``initdb`` makes a fresh
cluster in a temporary folder, ``postgres`` serves it on a free TCP port (no Unix socket), and
:meth:`PostgresServer.stop` shuts it down and deletes the folder. PostgreSQL refuses to run as
root, so under root (CI) both run as the unprivileged ``nobody`` user. When ``nobody`` cannot enter
the folder the binaries are installed in (a checkout or virtualenv under a mode-700 folder such as
``/root``), they are copied, with the libraries they load, into the server's temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cwl_pipeline.local.processes import free_port, port_in_use

USER = "postgres"  # the cluster's superuser (trust authentication on 127.0.0.1)
PASSWORD = "local-test-only"  # sent by the client; trust authentication does not check it
DATABASE = "dagster"


def pgserver_install() -> Path:
    """The ``pginstall`` folder (bin, lib, share) inside the installed ``pgserver`` package.

    Found without importing ``pgserver``: its import creates lock files in the runtime folder.
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed: install the project's test extra (make test)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@dataclass
class PostgresServer:
    """A running ``postgres`` process and its temporary folder."""

    host: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """A libpq URL of the test database."""
        return f"postgresql://{USER}:{PASSWORD}@{self.host}:{self.port}/{DATABASE}"

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster/dagster.yaml reads its storage connection from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": DATABASE,
            "DAGSTER_PG_USERNAME": USER,
            "DAGSTER_PG_PASSWORD": PASSWORD,
        }

    def create_database(self, name: str) -> dict[str, object]:
        """Create the empty database ``name``; the ``postgres_db`` settings of a Dagster
        instance that keeps its storage there."""
        import psycopg2  # installed with dagster-postgres

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname=DATABASE
        )
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return {
            "hostname": self.host,
            "port": self.port,
            "db_name": name,
            "username": USER,
            "password": PASSWORD,
            "scheme": "postgresql+psycopg2",
        }

    def log(self) -> str:
        """The server's log so far."""
        path = self.folder / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT), SIGKILL after ``timeout``; the folder is deleted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)


def _traversable_by_others(path: Path) -> bool:
    """Whether every folder above ``path`` lets other users in (o+x)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)


def _server_folder() -> Path:
    """A new temporary folder that ``nobody`` can enter (``TMPDIR`` may be a private folder)."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        candidate = Path(base) / "_"
        if Path(base).is_dir() and _traversable_by_others(candidate) and os.access(base, os.W_OK):
            folder = Path(tempfile.mkdtemp(prefix="cwl-postgres-", dir=base))
            folder.chmod(0o755)
            return folder
    raise RuntimeError("no temporary folder that other users can enter: set TMPDIR to one")


def copy_install(install: Path, into: Path) -> Path:
    """Copy ``install`` (``…/site-packages/pgserver/pginstall``) with the libraries it loads.

    The wheel's binaries find ``libpq`` and friends through the relative RPATH
    ``$ORIGIN/../../../pgserver.libs``: the ``pgserver.libs`` folder beside the ``pgserver``
    package. The copy keeps that layout, ``into/pgserver/pginstall`` beside ``into/pgserver.libs``.
    """
    package = install.parent
    skip = shutil.ignore_patterns("include")
    copied = Path(shutil.copytree(install, into / package.name / install.name, ignore=skip))
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, into / libs.name)
    return copied


def start_postgres(timeout: float = 30.0, install: Path | None = None) -> PostgresServer:
    """initdb a fresh cluster, start ``postgres`` on a free port and create the test database.

    ``install`` is a ``pginstall`` folder laid out as in the wheel (default: the installed one).
    """
    folder = _server_folder()
    install = install or pgserver_install()
    as_user: dict[str, object] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        if not _traversable_by_others(install / "bin"):  # e.g. a checkout or virtualenv under /root
            install = copy_install(install, folder / "site")
    data = folder / "data"
    data.mkdir(mode=0o700)
    if as_user:
        os.chown(data, as_user["user"], as_user["group"])  # type: ignore[arg-type]
    bin_dir = install / "bin"
    initdb = subprocess.run(
        [bin_dir / "initdb", "-D", data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync"],
        capture_output=True,
        cwd=folder,
        **as_user,  # type: ignore[arg-type]
    )
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        detail = (initdb.stderr or initdb.stdout).decode(errors="replace")[-2000:]
        raise RuntimeError(f"initdb failed ({initdb.returncode}) from {bin_dir}:\n{detail}")
    port = free_port()
    log = open(folder / "postgres.log", "wb")  # noqa: SIM115 (closed by the server's exit)
    argv = [bin_dir / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200"]
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder, **as_user
    )  # type: ignore[call-overload]
    server = PostgresServer("127.0.0.1", port, folder, process)
    deadline = time.monotonic() + timeout
    while not port_in_use(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"PostgreSQL did not start:\n{server.log()[-3000:]}")
        time.sleep(0.1)
    psql = [bin_dir / "psql", "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-d", "postgres"]
    for _ in range(50):  # the port opens a moment before the server accepts logins
        created = subprocess.run([*psql, "-c", f"CREATE DATABASE {DATABASE}"], capture_output=True)
        if created.returncode == 0:
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"cannot create the database: {created.stderr.decode(errors='replace')}")

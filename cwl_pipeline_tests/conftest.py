"""Shared fixtures: the local AWS and BigQuery servers, started once per test session.

Tests talk to real servers over HTTP (moto in server mode, bqemulator) with the real boto3 and
google-cloud-bigquery clients. Servers start lazily, only for tests that ask for them.

Every test that uses a fixture starting a server process (directly or through another fixture)
is marked ``e2e``: ``pytest -m "not e2e"`` runs the fast pure suite.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from cwl_pipeline.local.processes import (
    LOCAL_CREDENTIALS,
    LOCAL_PROJECT,
    LocalService,
    bigquery_service,
    free_port,
    moto_service,
)
from cwl_pipeline_tests.deploy.postgres_server import PostgresServer, start_postgres
from cwl_pipeline_tests.faults.storage_write_stand_in import StorageWriteStandIn

# Fixtures that start server processes. A new such fixture adds its name here; its tests are
# then marked e2e whichever folder they are in.
SERVER_FIXTURES = frozenset({"local_aws", "local_bigquery", "postgres"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``e2e`` every test whose fixture closure starts a server process."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on a free port (pgserver's binaries), stopped and deleted after:
    the storage of Dagster instances that must behave as the production one does."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """A moto server on a free port, with fake credentials in the environment."""
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    service = moto_service(free_port(), log_path=log).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def local_bigquery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """A BigQuery emulator on free ports (in-memory)."""
    log = tmp_path_factory.mktemp("bq") / "bqemulator.log"
    service = bigquery_service(free_port(), free_port(), log_path=log).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _storage_write_stand_in(local_bigquery: LocalService) -> Iterator[StorageWriteStandIn]:
    assert local_bigquery.grpc_port is not None
    upstream = f"127.0.0.1:{local_bigquery.grpc_port}"
    with StorageWriteStandIn(upstream, local_bigquery.url, LOCAL_PROJECT) as stand_in:
        yield stand_in


@pytest.fixture
def storage_write(_storage_write_stand_in: StorageWriteStandIn) -> Iterator[StorageWriteStandIn]:
    """The emulator's Storage Write API behind a stand-in that refuses what BigQuery refuses
    (``cwl_pipeline_tests/faults/storage_write_stand_in.py``); its records are cleared per test."""
    _storage_write_stand_in.clear()
    yield _storage_write_stand_in
    _storage_write_stand_in.clear()


@pytest.fixture
def logs_client(local_aws: LocalService):
    """A boto3 CloudWatch Logs client on the local AWS."""
    return boto3.client("logs", endpoint_url=local_aws.url, region_name="us-east-1")


@pytest.fixture
def bq_client(local_bigquery: LocalService) -> Iterator[bigquery.Client]:
    """A google-cloud-bigquery client on the emulator."""
    client = bigquery.Client(
        project=LOCAL_PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local_bigquery.url},
    )
    yield client
    client.close()


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix so tests sharing a server never see each other's data."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a pipeline config YAML and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "pipeline.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write

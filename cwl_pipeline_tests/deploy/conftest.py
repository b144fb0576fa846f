"""Fixtures of the deployment tests: fault proxies (the PostgreSQL server is shared, in the
root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cwl_pipeline.local.processes import LocalService
from cwl_pipeline_tests.faults.fault_proxy import FaultProxy


@pytest.fixture(scope="module")
def aws_proxy(local_aws: LocalService) -> Iterator[FaultProxy]:
    """A fault proxy in front of local AWS."""
    with FaultProxy(local_aws.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def bq_proxy(local_bigquery: LocalService) -> Iterator[FaultProxy]:
    """A fault proxy in front of the BigQuery emulator."""
    with FaultProxy(local_bigquery.url) as proxy:
        yield proxy

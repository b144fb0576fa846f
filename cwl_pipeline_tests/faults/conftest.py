"""Fixtures of the fault tests: fault proxies in front of the session's local servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cwl_pipeline.local.processes import LocalService
from cwl_pipeline_tests.faults.fault_proxy import FaultProxy
from cwl_pipeline_tests.s3.s3_stack import s3_client


@pytest.fixture(scope="session")
def _aws_proxy(local_aws: LocalService) -> Iterator[FaultProxy]:
    with FaultProxy(local_aws.url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def _bq_proxy(local_bigquery: LocalService) -> Iterator[FaultProxy]:
    with FaultProxy(local_bigquery.url) as proxy:
        yield proxy


@pytest.fixture
def aws_faults(_aws_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy in front of local AWS, without rules; its rules are cleared after the test."""
    _aws_proxy.clear()
    yield _aws_proxy
    _aws_proxy.clear()


@pytest.fixture
def bq_faults(_bq_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy in front of the BigQuery emulator; its rules are cleared after the test."""
    _bq_proxy.clear()
    yield _bq_proxy
    _bq_proxy.clear()


@pytest.fixture
def s3(local_aws: LocalService):
    """A boto3 S3 client straight to local AWS (no faults): the tests' own writes and reads."""
    return s3_client(local_aws.url)


@pytest.fixture
def bucket(s3, unique_name: str) -> str:
    """A fresh bucket."""
    name = f"cwl-faults-{unique_name}"
    s3.create_bucket(Bucket=name)
    return name

"""Fixtures of the S3-source tests."""

import pytest

from cwl_pipeline_tests.s3.s3_stack import s3_client


@pytest.fixture
def s3(local_aws):
    """A boto3 S3 client on the local AWS."""
    return s3_client(local_aws.url)


@pytest.fixture
def bucket(s3, unique_name) -> str:
    """A fresh bucket."""
    name = f"cwl-test-{unique_name}"
    s3.create_bucket(Bucket=name)
    return name

"""Fixtures of the polling-path tests."""

import pytest

from cwl_pipeline_tests.pipeline.polling import make_stack
from cwl_pipeline_tests.stack import Stack


@pytest.fixture
def stack(local_aws, local_bigquery, logs_client, bq_client, write_config, unique_name) -> Stack:
    """One stream ``app`` (table ``app_events``) on a fresh log group and dataset."""
    return make_stack(local_aws, local_bigquery, logs_client, write_config, unique_name)

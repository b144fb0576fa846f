"""Runs, checks and sensors get the AWS and BigQuery resources under the keys they are built with."""

from __future__ import annotations

import dagster as dg

from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse

KEYS = ProjectKeys(aws="logs_aws", bigquery="logs_bigquery")
RESOURCES = {
    "logs_aws": AwsResource(region_name="eu-west-1"),
    "logs_bigquery": BigQueryWarehouse(project="logs-prod", dataset="logs"),
}


def test_a_context_holds_the_resources_themselves_under_the_keys() -> None:
    with dg.build_sensor_context(resources=RESOURCES) as sensor:
        contexts = [dg.build_asset_context(resources=RESOURCES), sensor]
        for context in contexts:
            # dagster-gcp would put a client there; the warehouse is there itself.
            assert KEYS.bigquery_resource(context) == RESOURCES["logs_bigquery"]
            assert KEYS.aws_resource(context) == RESOURCES["logs_aws"]


def test_a_table_keeps_its_key_unless_renamed() -> None:
    renamed = ProjectKeys(renamed={dg.AssetKey("app"): dg.AssetKey(["warehouse", "app"])})
    assert renamed.asset_key(dg.AssetKey("app")) == dg.AssetKey(["warehouse", "app"])
    assert renamed.asset_key(dg.AssetKey("app_rejects")) == dg.AssetKey("app_rejects")

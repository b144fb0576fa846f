"""The Components' YAML schema (what an editor completes and ``dg check yaml`` reads) describes
every key and shows each value's written form: a list as a list, a byte size as text or a number."""

from __future__ import annotations

from typing import Any

import pytest

from cwl_pipeline.components import (
    CloudWatchLogsPipeline,
    CloudWatchLogsToBigQuery,
    CloudWatchLogsToBigQuerySettings,
)
from cwl_pipeline.config import S3Source, StreamConfig

COMPONENTS = [CloudWatchLogsToBigQuery, CloudWatchLogsToBigQuerySettings, CloudWatchLogsPipeline]


def _ours(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The component's own model and the models of its attributes (not Dagster's partition or
    asset-spec models), by name."""
    models = {"component": schema}
    models |= {name: model for name, model in schema.get("$defs", {}).items() if "Attributes" in name}
    return models


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_every_key_of_the_yaml_schema_has_a_description(component: Any) -> None:
    schema = component.model().model_json_schema()
    undescribed = [
        f"{name}.{key}"
        for name, model in _ours(schema).items()
        for key, spec in model.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert len(_ours(schema)) > 1 or component is CloudWatchLogsPipeline
    assert undescribed == []


def test_a_derived_key_is_described_by_its_config_section() -> None:
    schema = CloudWatchLogsToBigQuery.model().model_json_schema()
    for key in ("window", "sweeps", "max_reject_rate", "unrouted"):
        assert schema["properties"][key]["description"] == StreamConfig.model_fields[key].description
    s3 = schema["$defs"]["S3SourceAttributesModel"]["properties"]
    assert s3["bucket"]["description"] == S3Source.model_fields["bucket"].description


def _types(spec: dict[str, Any]) -> set[str]:
    return {member.get("type") for member in spec.get("anyOf", [spec])}


def test_values_are_shown_in_their_written_form() -> None:
    schema = CloudWatchLogsToBigQuery.model().model_json_schema()
    properties = schema["properties"]
    for key in ("sweeps", "owners", "asset_key_prefix"):
        assert "array" in _types(properties[key]), key
    assert {"string", "integer"} <= _types(properties["window"])
    size = schema["$defs"]["S3SourceAttributesModel"]["properties"]["max_decompressed_bytes"]
    assert {"string", "integer"} <= _types(size)

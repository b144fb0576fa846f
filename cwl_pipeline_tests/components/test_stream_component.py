"""The stream Component: a pipeline-file stream per defs.yaml, validated by the same parser."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from cwl_pipeline.components import CloudWatchLogsToBigQuery, CloudWatchLogsToBigQuerySettings
from cwl_pipeline.config import ConfigError, parse_config
from cwl_pipeline.orchestration.resources import AwsResource, BigQueryWarehouse
from cwl_pipeline_tests.components.defs_sandbox import HOST, defs_sandbox

SETTINGS = {
    "aws": {"region": "eu-west-1"},
    "bigquery": {"project": "{{ env('TEST_BQ_PROJECT') }}", "dataset": "logs"},
    "defaults": {"window": "30m", "start": "2026-11-01T00:00:00Z"},
}
APP = {"name": "app", "source": {"log_groups": ["{{ env('TEST_LOG_GROUP') }}"]}, "schema": "seed"}
WORKER = {
    "name": "worker",
    "source": {"type": "s3", "bucket": "my-firehose", "prefix": "worker/", "layout": "firehose"},
}


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from."""
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    return chain


def _build_error(sandbox: Any) -> list[BaseException]:
    """The error chain of building every definition of ``sandbox``."""
    with pytest.raises(Exception) as raised, sandbox.build_all_defs():
        pass
    return _chain(raised.value)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BQ_PROJECT", "logs-prod")
    monkeypatch.setenv("TEST_LOG_GROUP", "/aws/lambda/app")


def test_two_streams_share_one_pair_of_resources_and_resolve_env_templates(env: None) -> None:
    with (
        defs_sandbox({"app": APP, "worker": WORKER}, {"cwl_settings": SETTINGS}) as sandbox,
        sandbox.build_all_defs() as defs,
    ):
        keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert {"app", "app_rejects", "worker", "worker_rejects"} <= keys
        assert {"app_windows", "app_automation", "worker_automation"} <= {s.name for s in defs.sensors}
        assert set(defs.resources) == {"cwl_aws", "cwl_bigquery"}
        assert isinstance(defs.resources["cwl_aws"], AwsResource)
        bigquery = defs.resources["cwl_bigquery"]
        assert isinstance(bigquery, BigQueryWarehouse)
        app = defs.resolve_assets_def("app")
        table = app.specs_by_key[dg.AssetKey("app")].metadata["dagster/table_name"]
        assert table == "logs-prod.logs.app"  # the env template, resolved


def test_a_host_projects_aws_and_bigquery_resources_stand_beside_the_streams(env: None) -> None:
    keys = {"aws": "logs_aws", "bigquery": "logs_bigquery"}
    with (
        defs_sandbox({"app": APP}, {"cwl_settings": {**SETTINGS, "resource_keys": keys}}, HOST) as sandbox,
        sandbox.build_all_defs() as defs,
    ):
        assert isinstance(defs.resources["logs_aws"], AwsResource)
        assert isinstance(defs.resources["logs_bigquery"], BigQueryWarehouse)
        assert defs.resources["aws"].name == "host aws"  # type: ignore[attr-defined]
        load = defs.resolve_assets_def("app")
        assert load.required_resource_keys - {"io_manager"} == {"logs_aws", "logs_bigquery"}
        # The host's asset gets the host's `aws`, the stream's window sensor its own.
        assert (
            dg.materialize([defs.resolve_assets_def("host_report")]).output_for_node("host_report")
            == "host aws"
        )
        sensor = defs.resolve_sensor_def("app_windows")
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
            result = sensor.evaluate_tick(context)
        assert result.run_requests, result.skip_message


def test_resource_keys_of_the_settings_differ_from_each_other(env: None) -> None:
    settings = {**SETTINGS, "resource_keys": {"aws": "logs", "bigquery": "logs"}}
    with defs_sandbox({"app": APP}, {"cwl_settings": settings}) as sandbox:
        chain = _build_error(sandbox)
    assert any("resource_keys: aws and bigquery are both 'logs'" in str(e) for e in chain)


BILLING = {**SETTINGS, "resource_keys": {"aws": "billing_aws", "bigquery": "billing_bigquery"}}


def test_a_stream_finds_the_projects_only_settings_whatever_its_folder(env: None) -> None:
    with (
        defs_sandbox({"app": APP}, {"platform/warehouse": BILLING}) as sandbox,
        sandbox.build_all_defs() as defs,
    ):
        load = defs.resolve_assets_def("app")
        assert load.required_resource_keys - {"io_manager"} == {"billing_aws", "billing_bigquery"}


def test_a_stream_names_its_settings_among_several(env: None) -> None:
    settings = {"cwl_settings": SETTINGS, "billing": BILLING}
    with defs_sandbox({"app": {**APP, "settings": "billing"}, "worker": WORKER}, settings) as sandbox:
        [error] = [e for e in _build_error(sandbox) if isinstance(e, ConfigError)]
        assert re.fullmatch(
            r".*/worker: the project has 2 cwl_pipeline.CloudWatchLogsToBigQuerySettings instances "
            r"\(billing, cwl_settings\): settings: <folder> names the stream's",
            str(error),
        )
        (sandbox.defs_folder_path / "worker" / "defs.yaml").unlink()
        with sandbox.build_all_defs() as defs:
            load = defs.resolve_assets_def("app")
            assert load.required_resource_keys - {"io_manager"} == {"billing_aws", "billing_bigquery"}


def test_a_stream_without_settings_in_the_project_says_how_to_add_them(env: None) -> None:
    with defs_sandbox({"app": APP}, {}) as sandbox:
        [error] = [e for e in _build_error(sandbox) if isinstance(e, ConfigError)]
        assert "the project has no cwl_pipeline.CloudWatchLogsToBigQuerySettings instance" in str(error)
        assert "dg scaffold defs cwl_pipeline.CloudWatchLogsToBigQuerySettings <folder>" in str(error)


def test_a_translation_and_post_processing_shape_the_table_assets(env: None) -> None:
    translation = {
        "key": "warehouse/{{ table.name }}",
        "group_name": "{{ table.stream }}_tables",
        "tags": {"dataset": "{{ table.dataset }}"},
        "metadata": {"default_key": "{{ spec.key.to_user_string() }}", "table_id": "{{ table.id }}"},
    }
    post_processing = {
        "assets": [
            {"target": "group:app_tables", "attributes": {"owners": ["team:data"]}},
            {"target": "key:warehouse/app_rejects", "attributes": {"metadata": {"tier": "bronze"}}},
        ]
    }
    with (
        defs_sandbox(
            {"app": {**APP, "translation": translation}},
            {"cwl_settings": SETTINGS},
            post_processing=post_processing,
        ) as sandbox,
        sandbox.build_all_defs() as defs,
    ):
        graph = defs.resolve_asset_graph()
        tables = {"app", "app_rejects", "app_live", "app_hourly_actions", "app_daily_sessions"}
        assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
            "cloudwatch/aws_lambda_app",  # a source: no table, its key kept
            *(f"warehouse/{table}" for table in tables),
        }
        for table in tables:
            node = graph.get(dg.AssetKey(["warehouse", table]))
            assert (node.group_name, node.owners) == ("app_tables", ["team:data"])
            assert node.tags["dataset"] == "logs" and node.metadata["default_key"] == table
            assert node.metadata["table_id"] == f"logs-prod.logs.{table}"
        rejects = graph.get(dg.AssetKey(["warehouse", "app_rejects"]))
        assert rejects.metadata["tier"] == "bronze"
        # The stream's other definitions name the new keys: its inputs, checks and sensors.
        events = dg.AssetKey(["warehouse", "app"])
        assert events in rejects.parent_keys
        assert graph.get(dg.AssetKey(["warehouse", "app_hourly_actions"])).parent_keys == {events}
        assert {check.asset_key for check in graph.asset_check_keys} == {events}
        selected = defs.resolve_sensor_def("app_windows").asset_selection.resolve(graph)  # type: ignore[union-attr]
        assert selected == {events, dg.AssetKey(["warehouse", "app_rejects"])}


def test_the_component_is_one_stream_of_a_pipeline_document(env: None) -> None:
    component = CloudWatchLogsToBigQuery.model_validate({**APP, "window": "15m", "owners": ["team:x"]})
    document = component.stream_document()
    assert document == {**APP, "window": "15m", "owners": ["team:x"]}


@pytest.mark.parametrize(
    "attributes",
    [
        {**APP, "window": "7m"},
        {**APP, "max_windows_per_run": True},  # no coercion of true to 1 on the way
        {**APP, "schema": "nope"},
        {**WORKER, "history": {"after": "1d", "bucket": "b-b-b", "prefix": "h"}},
        {**APP, "source": {"type": "cloudwatch"}},
    ],
    ids=["window", "bool-count", "schema", "history-on-s3", "no-log-group"],
)
def test_an_invalid_stream_fails_with_the_pipeline_files_message(
    env: None, attributes: dict[str, Any]
) -> None:
    resolved = {**attributes, "source": {**attributes["source"]}}
    if "log_groups" in resolved["source"]:
        resolved["source"]["log_groups"] = ["/aws/lambda/app"]
    with pytest.raises(ConfigError) as from_file:
        parse_config(
            {
                **SETTINGS,
                "bigquery": {"project": "logs-prod", "dataset": "logs"},
                "streams": [resolved],
            }
        )
    with defs_sandbox({"stream": attributes}, {"cwl_settings": SETTINGS}) as sandbox:
        chain = _build_error(sandbox)
    config_errors = [e for e in chain if isinstance(e, ConfigError)]
    assert config_errors, chain
    message = str(config_errors[0])
    assert message.endswith(str(from_file.value)), (message, str(from_file.value))
    assert re.match(r".*/stream(/defs\.yaml)?: ", message)


def test_scaffolded_settings_and_stream_build_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWL_BQ_PROJECT", "logs-prod")
    monkeypatch.setenv("CWL_BQ_DATASET", "logs")
    with create_defs_folder_sandbox() as sandbox:
        sandbox.scaffold_component(component_cls=CloudWatchLogsToBigQuerySettings, defs_path="cwl_settings")
        folder = sandbox.scaffold_component(component_cls=CloudWatchLogsToBigQuery, defs_path="app_logs")
        written = (folder / "defs.yaml").read_text(encoding="utf-8")
        # Minimal: the keys a stream needs; every other one is a comment.
        assert set(yaml.safe_load(written)["attributes"]) == {"name", "source", "start"}
        assert "# settings: cwl_settings" in written and "# window: 15m" in written
        with sandbox.build_all_defs() as defs:
            assert defs.resolve_assets_def("app_logs").required_resource_keys >= {"cwl_aws", "cwl_bigquery"}

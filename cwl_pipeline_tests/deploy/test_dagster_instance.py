"""deploy/dagster/dagster.yaml against Dagster's own instance config processing.

``InstanceRef.from_dir`` is what ``DagsterInstance.get()`` runs on ``$DAGSTER_HOME``: it validates the
file against the instance schema (``dagster_instance_config``) and turns each pluggable section into a
``ConfigurableClassData``. Each named class is then imported and its config processed against the
class's own ``config_type()``, as ``ConfigurableClassData.rehydrate`` does before instantiating. The
classes are not instantiated: that would connect to PostgreSQL and ECS.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import ConcurrencyConfig, PoolGranularity
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.workspace.config_schema import process_workspace_config
from dagster._serdes.config_class import ConfigurableClassData

from cwl_pipeline.orchestration.tables import WRITER_POOL_PREFIX

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DAGSTER_YAML = DEPLOY / "dagster" / "dagster.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def env_names(node: Any) -> set[str]:
    """Every environment variable the YAML reads, as ``{env: NAME}`` or in ``env_vars``."""
    names: set[str] = set()
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        for key, value in node.items():
            if key == "env_vars":
                names.update(str(v).split("=", 1)[0] for v in value)
            else:
                names |= env_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= env_names(item)
    return names


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load(DAGSTER_YAML.read_text())


@pytest.fixture
def ref(raw: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstanceRef]:
    for name in sorted(env_names(raw)):
        monkeypatch.setenv(name, "5432" if name.endswith("_PORT") else f"value-of-{name.lower()}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield InstanceRef.from_dir(str(home))


def _process(data: ConfigurableClassData) -> dict[str, Any]:
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
    assert result.success, f"{data.module_name}.{data.class_name}: {[e.message for e in result.errors]}"
    return dict(result.value)


def test_every_named_class_imports_and_accepts_its_config(ref: InstanceRef) -> None:
    classes = {
        "storage": ref.storage_data,
        "run_storage": ref.run_storage_data,
        "event_log_storage": ref.event_storage_data,
        "schedule_storage": ref.schedule_storage_data,
        "run_launcher": ref.run_launcher_data,
        "run_coordinator": ref.run_coordinator_data,
        "compute_logs": ref.compute_logs_data,
    }
    resolved = {name: f"{d.module_name}.{d.class_name}" for name, d in classes.items() if d}
    assert resolved == {
        "storage": "dagster_postgres.DagsterPostgresStorage",
        "run_storage": "dagster_postgres.PostgresRunStorage",
        "event_log_storage": "dagster_postgres.PostgresEventLogStorage",
        "schedule_storage": "dagster_postgres.PostgresScheduleStorage",
        "run_launcher": "dagster_aws.ecs.EcsRunLauncher",
        "run_coordinator": "dagster._core.run_coordinator.QueuedRunCoordinator",
        "compute_logs": "dagster_aws.s3.compute_log_manager.S3ComputeLogManager",
    }
    processed = {name: _process(data) for name, data in classes.items() if data}

    # env: values are resolved by the class's schema, so the variables really are read.
    pg = processed["storage"]["postgres_db"]
    assert pg["hostname"] == "value-of-dagster_pg_host"
    assert pg["port"] == 5432
    assert pg["password"] == "value-of-dagster_pg_password"
    launcher = processed["run_launcher"]
    assert launcher["task_definition"]["task_role_arn"] == "value-of-dagster_run_task_role_arn"
    assert launcher["secrets"] == [
        {"name": "DAGSTER_PG_PASSWORD", "valueFrom": "value-of-dagster_pg_password_secret_arn"}
    ]
    assert launcher["secrets_tag"] is None
    assert processed["compute_logs"]["bucket"] == "value-of-dagster_compute_logs_bucket"


def test_no_secret_is_written_inline(raw: dict[str, Any]) -> None:
    pg = raw["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "db_name", "username", "password"):
        assert set(pg[key]) == {"env"}, key
    assert "postgres_url" not in raw["storage"]["postgres"]


def test_concurrency_settings_as_the_daemon_reads_them(ref: InstanceRef) -> None:
    # As DagsterInstance.get_concurrency_config: the queued coordinator's own settings, overridden by
    # the `concurrency` block. The coordinator only stores its config, so rehydrating it is safe.
    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    config = ConcurrencyConfig.from_concurrency_settings(
        ref.settings["concurrency"], coordinator.get_run_queue_config()
    )
    # Every pool is a table's writer: one writer per table.
    assert config.pool_config.default_pool_limit == 1
    assert config.pool_config.pool_granularity == PoolGranularity.OP
    queue = config.run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 20
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["cwl/stream"]["value"] == {"applyLimitPerUniqueValue": True}
    assert limits["cwl/stream"]["limit"] == 2
    assert limits["dagster/backfill"]["limit"] == 6
    assert queue.max_user_code_failure_retries == 3
    # The pool names the dagster.yaml comment describes are the ones the code uses.
    assert f"{WRITER_POOL_PREFIX}<project>.<dataset>.<table>" in DAGSTER_YAML.read_text()


def test_monitoring_retries_and_telemetry(ref: InstanceRef) -> None:
    settings = ref.settings
    assert settings["run_monitoring"]["enabled"] is True
    assert settings["run_monitoring"]["start_timeout_seconds"] > 0
    assert settings["run_monitoring"]["cancel_timeout_seconds"] > 0
    assert settings["run_retries"] == {
        "enabled": True,
        "max_retries": 2,
        "retry_on_asset_or_op_failure": True,
    }
    assert settings["telemetry"] == {"enabled": False}


def test_every_environment_variable_is_documented(raw: dict[str, Any]) -> None:
    docs = DOCS.read_text()
    missing = sorted(name for name in env_names(raw) if f"`{name}`" not in docs)
    assert not missing, f"not described in docs/deployment.md: {missing}"


def test_workspace_validates_and_names_the_code_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CWL_CODE_SERVER_HOST", "cwl-pipeline-code.internal")
    raw = yaml.safe_load((DEPLOY / "dagster" / "workspace.yaml").read_text())
    result = process_workspace_config(raw)
    assert result.success, [e.message for e in result.errors]
    (location,) = result.value["load_from"]
    assert location["grpc_server"] == {
        "host": "cwl-pipeline-code.internal",
        "port": 4000,
        "location_name": "cwl_pipeline",
    }


def test_image_serves_the_same_location_and_instance() -> None:
    """The Dockerfile is not built in CI; at least its server command and config path agree with the
    workspace and the module the project defines."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert '"--module-name", "cwl_pipeline.definitions"' in dockerfile
    assert '"--location-name", "cwl_pipeline"' in dockerfile
    assert '"--port", "4000"' in dockerfile
    assert "COPY deploy/dagster/dagster.yaml deploy/dagster/workspace.yaml ${DAGSTER_HOME}/" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile

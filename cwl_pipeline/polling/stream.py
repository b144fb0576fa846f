"""Dagster definitions of one CloudWatch polling stream.

Its log groups, the window-loading asset (:mod:`cwl_pipeline.polling.assets`) and its rollups,
the latest-window check, the window sensor; the live table and its sensor when the open window
is appended by the sensor (``live.path: sensor``); the reconciliation check and sensor when
``reconcile`` is enabled.
"""

from cwl_pipeline.config import BigQuerySettings, StreamConfig
from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.checks import build_latest_window_check
from cwl_pipeline.orchestration.rollups import build_rollups
from cwl_pipeline.orchestration.stream_definitions import StreamDefinitions
from cwl_pipeline.polling.assets import build_window_asset, log_group_specs
from cwl_pipeline.polling.live_sensor import build_live_sensor, live_asset_spec
from cwl_pipeline.polling.reconcile import build_reconcile_sensor, build_reconciliation_check
from cwl_pipeline.polling.sensor import build_window_sensor


def build_polling_stream(
    stream: StreamConfig, bigquery: BigQuerySettings, project: ProjectKeys
) -> StreamDefinitions:
    """The assets, checks and sensors of a polling stream."""
    tables = StreamTables.of(stream, project)
    built = StreamDefinitions(
        log_group_specs(stream),
        [build_window_asset(tables, bigquery), *build_rollups(tables, bigquery)],
        checks=[build_latest_window_check(tables)],
        sensors=[build_window_sensor(tables)],
    )
    if stream.live.path == "sensor":
        built.assets.append(live_asset_spec(tables, bigquery))
        built.sensors.append(build_live_sensor(tables))
    if stream.reconcile.enabled:
        built.checks.append(build_reconciliation_check(tables))
        built.sensors.append(build_reconcile_sensor(tables))
    return built

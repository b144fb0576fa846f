"""``cwl_pipeline.CloudWatchLogsToBigQuery``: one stream, declared in a ``defs.yaml``.

The attributes are every key of a stream in the pipeline config file, typed
(:mod:`cwl_pipeline.components.stream_attributes`) and validated by the same parser
(:func:`cwl_pipeline.config.parse_config`) together with the project's
``CloudWatchLogsToBigQuerySettings`` instance: the only one in the project, or the one in the
folder the ``settings`` attribute names. ``translation`` sets the key, group, tags, metadata, ...
of each of the stream's table assets (:mod:`cwl_pipeline.components.table_translation`).
"""

# No ``from __future__ import annotations``: Dagster derives the YAML schema from the annotations.
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import Field

from cwl_pipeline.components.settings import CloudWatchLogsToBigQuerySettings
from cwl_pipeline.components.stream_attributes import StreamAttributes
from cwl_pipeline.components.table_translation import TableAsset, translated_stream
from cwl_pipeline.config import ConfigError
from cwl_pipeline.streams import automation_sensor, build_stream

STREAM_TEMPLATE = """\
# One CloudWatch Logs stream into one BigQuery table. The keys are those of a stream in a
# pipeline config file (docs/configuration.md); AWS and BigQuery come from the project's
# cwl_pipeline.CloudWatchLogsToBigQuerySettings instance. Values may read the environment:
# {{{{ env('NAME') }}}}.
type: {type_name}
attributes:
  # Lower-case letters, digits and _; names the assets, checks and sensors.
  name: {name}
  # settings: cwl_settings   # the settings instance's folder, if the project has several
  source:
    # Polled with FilterLogEvents; or type s3 for objects Firehose (layout firehose) or
    # CreateExportTask (layout export) wrote: bucket, prefix, layout, log_group.
    type: cloudwatch
    log_groups: ["/aws/lambda/{name}"]
    # log_group_prefixes: ["/ecs/"]
  # First window to load, aligned to the window.
  start: "{start}"
  # table: {name}       # BigQuery table (default: the name)
  # schema: seed        # a built-in or settings-declared schema (default: seed)
  # parser: lambda      # json (default), lambda, vpc_flow, regex, text
  # window: 15m         # divides an hour or a day
  # settle_lag: 2m      # wait after a window closes before its final load
  # description: What these logs are.
  # owners: ["team:data-platform"]
  # asset_key_prefix: [logs]   # asset keys logs/<table>, logs/<table>_rejects
  # translation: {{group_name: logs, tags: {{domain: "{{{{ table.stream }}}}"}}}}   # each table asset
  # filter: {{pattern: '{{ $.level != "DEBUG" }}', exclude: [healthcheck]}}
  # redact: [{{mask: '\\b\\d{{13,19}}\\b'}}, {{drop_field: params.password}}]
  # raw: true                  # also keep every event as read, in <table>_raw
  # Every other key of a pipeline-file stream works here too (routes, unrouted, history,
  # reconcile, sweeps, freshness, ...): docs/configuration.md.
"""

_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")


class StreamScaffolder(dg.Scaffolder):
    """Writes a commented ``defs.yaml`` of one stream, named after its folder."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        """Write ``defs.yaml`` in the new folder."""
        folder = request.target_path.name
        name = folder if _NAME_RE.fullmatch(folder) else "my_stream"
        start = datetime.now().strftime("%Y-%m-%dT00:00:00Z")
        text = STREAM_TEMPLATE.format(type_name=request.type_name, name=name, start=start)
        (request.target_path / "defs.yaml").write_text(text, encoding="utf-8")


@dg.scaffold_with(StreamScaffolder)
class CloudWatchLogsToBigQuery(dg.Component, StreamAttributes):
    """One CloudWatch Logs stream loaded into one BigQuery table, exactly once per window.

    Polling (FilterLogEvents) or S3 objects (Firehose, CreateExportTask); every key of a stream
    of the pipeline config file (:class:`StreamAttributes`), under the same rules.
    """

    settings: str | None = Field(
        None,
        description="Folder (from the defs folder) of the CloudWatchLogsToBigQuerySettings instance; "
        "without it, the project's only one.",
    )
    translation: (
        Annotated[
            TranslationFn[TableAsset],
            TranslationFnResolver[TableAsset](lambda table: {"table": table}),
        ]
        | None
    ) = Field(
        None,
        description="Each table asset's key, group_name, tags, metadata, ... from its default spec "
        "({{ spec }}) and table ({{ table.name }}, table.stream, table.dataset, table.project, table.id).",
    )

    def stream_document(self) -> dict[str, Any]:
        """This stream as an entry of a pipeline config file's ``streams``."""
        return {k: v for k, v in self.document().items() if k not in ("settings", "translation")}

    def get_asset_spec(self, spec: dg.AssetSpec, table: TableAsset) -> dg.AssetSpec:
        """The asset spec of one of the stream's tables, from its default ``spec``: as the
        ``translation`` makes it. A subclass may override it."""
        return spec if self.translation is None else self.translation(spec, table)

    def find_settings(self, context: dg.ComponentLoadContext) -> CloudWatchLogsToBigQuerySettings:
        """The settings instance in the folder ``settings`` names; without it, the project's only one.

        Raises:
            ConfigError: no ``settings``, and the project has no settings instance or several.
        """
        if self.settings is not None:
            return context.load_component(self.settings, CloudWatchLogsToBigQuerySettings)
        found = context.component_tree.get_all_components(CloudWatchLogsToBigQuerySettings)
        kind = f"cwl_pipeline.{CloudWatchLogsToBigQuerySettings.__name__}"
        if not found:
            raise ConfigError(
                f"{context.path}: the project has no {kind} instance "
                f"(dg scaffold defs {kind} <folder> writes one)"
            )
        if len(found) > 1:
            places = sorted(_place(s, context.defs_module_path) for s in found)
            raise ConfigError(
                f"{context.path}: the project has {len(found)} {kind} instances ({', '.join(places)}): "
                "settings: <folder> names the stream's"
            )
        if found[0].component_loc is not None:
            # Loaded through the context as well, so that Dagster knows the stream depends on it.
            context.load_structural_component_at_loc(found[0].component_loc)
        return found[0]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The stream's assets, checks, sensors and jobs; the resources come from the settings."""
        settings = self.find_settings(context)
        try:
            config = settings.pipeline_config([self.stream_document()])
        except ConfigError as exc:
            raise ConfigError(f"{context.path}: {exc}") from None
        stream = config.streams[0]
        built = translated_stream(
            lambda project: build_stream(stream, config.bigquery, project),
            settings.resource_keys.project_keys(),
            stream.name,
            self.get_asset_spec,
        )
        return dg.Definitions(
            assets=[*built.assets, *built.sources],
            asset_checks=built.checks,
            sensors=[
                *built.sensors,
                automation_sensor(
                    f"{stream.name}_automation",
                    dg.AssetSelection.assets(*(a for a in built.assets if not isinstance(a, dg.AssetSpec))),
                ),
            ],
            jobs=built.jobs,
        )


def _place(settings: CloudWatchLogsToBigQuerySettings, defs_root: Path) -> str:
    """Where the project declares ``settings``, as a stream's ``settings`` names it."""
    if settings.component_loc is None:
        return "(built in Python)"
    return settings.component_loc.get_display_key(defs_root).removesuffix("[0]")

"""A throwaway dg project's defs folder with settings and stream instances, as the component
tests load it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox

from cwl_pipeline.components import CloudWatchLogsToBigQuery, CloudWatchLogsToBigQuerySettings

# A host project's own resources under the keys a pipeline file's definitions use.
HOST = """
import dagster as dg


class HostResource(dg.ConfigurableResource):
    name: str


@dg.asset
def host_report(aws: HostResource) -> str:
    return aws.name


defs = dg.Definitions(
    assets=[host_report],
    resources={"aws": HostResource(name="host aws"), "bigquery": HostResource(name="host bigquery")},
)
"""


@contextmanager
def defs_sandbox(
    streams: dict[str, dict[str, Any]],
    settings: dict[str, dict[str, Any]],
    host: str | None = None,
    post_processing: dict[str, Any] | None = None,
) -> Iterator[DefsFolderSandbox]:
    """A defs folder with ``streams`` and ``settings`` instances (their attributes by folder),
    each stream's ``defs.yaml`` with ``post_processing``, and ``host`` as ``host.py``."""
    with create_defs_folder_sandbox() as sandbox:
        for folder, attributes in settings.items():
            document = {"type": "cwl_pipeline.CloudWatchLogsToBigQuerySettings", "attributes": attributes}
            sandbox.scaffold_component(
                component_cls=CloudWatchLogsToBigQuerySettings, defs_path=folder, defs_yaml_contents=document
            )
        if host is not None:
            (sandbox.defs_folder_path / "host.py").write_text(host, encoding="utf-8")
        for folder, attributes in streams.items():
            document = {"type": "cwl_pipeline.CloudWatchLogsToBigQuery", "attributes": attributes}
            if post_processing is not None:
                document["post_processing"] = post_processing
            sandbox.scaffold_component(
                component_cls=CloudWatchLogsToBigQuery, defs_path=folder, defs_yaml_contents=document
            )
        yield sandbox

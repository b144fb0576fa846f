"""The table assets of a stream Component, as its translation makes them.

A translation (Dagster's ``TranslationFn``: a table's default ``AssetSpec`` and the table it
describes → the table's spec) may give a table another key as well as another group, tags or
metadata, so it runs before the stream's definitions are final: the stream is built once to
learn its tables' default specs and, if the translation changed a key, once more with the new
keys (:attr:`~cwl_pipeline.load.project_keys.ProjectKeys.renamed`), so that its
sensors, checks and rollups name them. Each table's spec is then the translated one. The
sources (log groups, S3 prefixes) are not tables and keep theirs.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import dagster as dg

from cwl_pipeline.load.project_keys import ProjectKeys
from cwl_pipeline.orchestration.stream_definitions import StreamDefinitions

TABLE_NAME = "dagster/table_name"
"""The metadata every table asset of a stream has: ``<project>.<dataset>.<table>``."""


@dataclass(frozen=True)
class TableAsset:
    """One BigQuery table of a stream: ``table`` in a translation's templates."""

    stream: str
    project: str
    dataset: str
    name: str

    @classmethod
    def of(cls, stream: str, spec: dg.AssetSpec) -> "TableAsset | None":
        """The table ``spec`` describes (None: a spec of no table)."""
        table_id = spec.metadata.get(TABLE_NAME)
        if not isinstance(table_id, str):
            return None
        project, dataset, name = table_id.rsplit(".", 2)
        return cls(stream=stream, project=project, dataset=dataset, name=name)

    @property
    def id(self) -> str:
        """``<project>.<dataset>.<table>``."""
        return f"{self.project}.{self.dataset}.{self.name}"


TableSpecFn = Callable[[dg.AssetSpec, TableAsset], dg.AssetSpec]
"""A table's spec from its default spec and the table."""


def translated_stream(
    build: Callable[[ProjectKeys], StreamDefinitions], project: ProjectKeys, stream: str, spec_of: TableSpecFn
) -> StreamDefinitions:
    """The definitions ``build`` makes of ``stream`` with ``project``'s resource keys, each table's
    asset spec as ``spec_of`` makes it from its default one."""
    built = build(project)
    translated: dict[dg.AssetKey, dg.AssetSpec] = {}
    for spec in _specs(built.assets):
        table = TableAsset.of(stream, spec)
        if table is not None and (new := spec_of(spec, table)) is not spec:
            translated[spec.key] = new
    if not translated:
        return built
    renamed = {key: spec.key for key, spec in translated.items() if spec.key != key}
    if renamed:
        built = build(replace(project, renamed=renamed))
    final = {spec.key: _deps_renamed(spec, renamed) for spec in translated.values()}
    assets = dg.map_asset_specs(lambda spec: final.get(spec.key, spec), built.assets)
    return replace(built, assets=list(assets))


def _specs(assets: list[dg.AssetsDefinition | dg.AssetSpec]) -> list[dg.AssetSpec]:
    return [spec for a in assets for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])]


def _deps_renamed(spec: dg.AssetSpec, renamed: Mapping[dg.AssetKey, dg.AssetKey]) -> dg.AssetSpec:
    """``spec`` with its dependencies on renamed tables under their new keys."""
    return spec.replace_attributes(
        deps=[
            dg.AssetDep(renamed.get(dep.asset_key, dep.asset_key), partition_mapping=dep.partition_mapping)
            for dep in spec.deps
        ]
    )

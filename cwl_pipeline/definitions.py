"""Dagster definitions of the ``cwl_pipeline`` project: whatever its ``defs/`` folder declares.

``defs/pipeline/defs.yaml`` is a ``cwl_pipeline.CloudWatchLogsPipeline`` component that reads
the pipeline config file (``CWL_PIPELINE_CONFIG``); ``dg dev``, ``dg check defs``,
``workspace.yaml`` and ``dagster -m cwl_pipeline.definitions`` all load this module.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cwl_pipeline.streams import build_definitions

__all__ = ["build_definitions", "defs"]


@dg.definitions
def defs() -> dg.Definitions:
    """The components of ``cwl_pipeline/defs/``.

    Loaded when Dagster loads the location, not on import, so importing this module needs no
    config; without ``CWL_PIPELINE_CONFIG`` the location fails to load with a message saying how
    to set it (never a silent fallback to the local stack's config). The project is found from
    this package's folder (its ``dg.toml``), so a non-editable install, where the repository's
    ``pyproject.toml`` is absent, loads the same definitions.
    """
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)

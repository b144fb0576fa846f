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

    The project is found from this package's folder (its ``dg.toml``), so a non-editable
    install, where the repository's ``pyproject.toml`` is absent, loads the same definitions.
    """
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)

"""cwl_pipeline: AWS CloudWatch Logs into Google BigQuery, micro-batch and idempotent, on Dagster.

The package is the ``dg`` registry module of its Components (``cwl_pipeline.CloudWatchLogsToBigQuery``,
``cwl_pipeline.CloudWatchLogsToBigQuerySettings``, ``cwl_pipeline.CloudWatchLogsPipeline``). They
are imported on first use, so the pure modules (decoding in worker processes) never import Dagster.
"""

import importlib
from typing import Any

_COMPONENTS = ("CloudWatchLogsPipeline", "CloudWatchLogsToBigQuery", "CloudWatchLogsToBigQuerySettings")


def __getattr__(name: str) -> Any:
    if name in _COMPONENTS:
        return getattr(importlib.import_module("cwl_pipeline.components"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_COMPONENTS])

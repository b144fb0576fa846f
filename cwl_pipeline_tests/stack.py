"""One stream on fresh local resources: the typed stack every scenario test builds.

:func:`stack_yaml` writes the one config shape the tests use (one stream, local or proxied
endpoints); :func:`build_stack` writes it, loads it and builds the definitions. The scenario
suites only choose the source and the extra keys: ``pipeline/polling.py`` (a polling stream on a
fresh log group), ``s3/s3_stack.py`` (a Firehose or export stream), ``faults/fault_stack.py``
(endpoints through the fault proxies, short retry budgets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cwl_pipeline.config import PipelineConfig, load_config
from cwl_pipeline.streams import build_definitions


@dataclass(frozen=True)
class Stack:
    """A stream's config file, its config and definitions, and the fresh resources it uses."""

    path: Path
    config: PipelineConfig
    defs: dg.Definitions
    dataset: str
    group: str = ""  # the log group created for a polling stream
    bucket: str = ""  # the bucket created for an S3 stream


def stack_yaml(
    *,
    aws_url: str,
    bq_url: str,
    dataset: str,
    source: str,
    name: str = "app",
    table: str = "app_events",
    window: str = "15m",
    start: str = "2026-01-01T00:00:00Z",
    extra: str = "",
    aws_extra: str = ", max_attempts: 2",
    bigquery_extra: str = "",
) -> str:
    """A pipeline config with one stream ``name`` reading ``source`` (a YAML flow mapping).

    ``extra`` adds stream keys (indented YAML lines, e.g. ``"    sweeps: [15m]"``); ``aws_extra``
    and ``bigquery_extra`` add keys to the ``aws`` / ``bigquery`` mappings (``", key: value"``).
    """
    return f"""
aws: {{region: us-east-1, endpoint_url: "{aws_url}"{aws_extra}}}
bigquery: {{project: cwl-local, dataset: {dataset}, location: US,
            api_endpoint: "{bq_url}"{bigquery_extra}}}
streams:
  - name: {name}
    source: {source}
    table: {table}
    window: {window}
    start: "{start}"
{extra}
"""


def build_stack(
    write_config: Callable[[str], Path], *, group: str = "", bucket: str = "", **yaml: str
) -> Stack:
    """Write :func:`stack_yaml` (``yaml`` are its arguments), load it and build the definitions."""
    path = write_config(stack_yaml(**yaml))
    config = load_config(path)
    return Stack(path, config, build_definitions(config), yaml["dataset"], group, bucket)

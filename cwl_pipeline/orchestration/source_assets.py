"""External assets of the sources: CloudWatch log groups (and prefixes of them) and S3 prefixes.

They are not materialized here; they give lineage from a log group to its tables.
"""

from __future__ import annotations

import re

import dagster as dg


def source_key(name: str) -> dg.AssetKey:
    """Asset key of an external log group (or prefix) source."""
    return dg.AssetKey(["cloudwatch", re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "root"])


def log_group_spec(name: str, is_prefix: bool = False) -> dg.AssetSpec:
    """External asset spec of a CloudWatch log group, or of every group under a prefix."""
    return dg.AssetSpec(
        source_key(name),
        description=f"CloudWatch Logs log group {name}"
        + (" (every group under this prefix)" if is_prefix else ""),
        kinds={"aws", "cloudwatch"},
        group_name="sources",
        metadata={"log_group": name, "match": "prefix" if is_prefix else "name"},
    )

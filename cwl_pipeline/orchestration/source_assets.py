"""External assets of the sources: CloudWatch log groups (and prefixes of them) and S3 prefixes.

They are not materialized here; they give lineage from a log group to its tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import dagster as dg

from cwl_pipeline.core.log_group_arns import is_arn, parse_log_group_arn


def source_key(name: str, where: Sequence[str] = ()) -> dg.AssetKey:
    """Asset key of an external log group (or prefix) source; ``where`` (account, Region) when
    the group is not in the pipeline's own account and Region, so that groups of one name in
    two accounts stay two assets."""
    return dg.AssetKey(["cloudwatch", *(_key_part(part) for part in where), _key_part(name)])


def _key_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "root"


def log_group_spec(
    name: str, is_prefix: bool = False, account_id: str | None = None, region: str | None = None
) -> dg.AssetSpec:
    """External asset spec of a CloudWatch log group, or of every group under a prefix; a group
    named by ARN, or read in ``account_id`` / ``region``, has them in its key and metadata."""
    label = name
    if is_arn(name):
        arn = parse_log_group_arn(name)
        name, account_id, region = arn.name, arn.account_id, arn.region
    where = {"account_id": account_id, "region": region}
    return dg.AssetSpec(
        source_key(name, [part for part in where.values() if part]),
        description=f"CloudWatch Logs log group {label}"
        + (" (every group under this prefix)" if is_prefix else ""),
        kinds={"aws", "cloudwatch"},
        group_name="sources",
        metadata={
            "log_group": name,
            "match": "prefix" if is_prefix else "name",
            **{key: value for key, value in where.items() if value},
        },
    )

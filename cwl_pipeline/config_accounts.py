"""The AWS account and Region a polling stream's log groups live in (``source.account``).

Without it a stream reads with the pipeline's own identity and Region (the ``aws`` section).
With it the stream's CloudWatch Logs and CloudWatch clients assume ``role_arn`` (a role in the
account holding the log groups, trusted by the pipeline's identity) and/or use ``region``, so
one deployment reads several accounts and Regions. ``external_id`` is the role's
``sts:ExternalId`` condition value, written as a ``${NAME}`` reference to an environment
variable and read from it at run time, never stored in the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCOUNT_KEYS = {"role_arn", "region", "external_id"}
ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
ENV_REFERENCE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-\d+")


class AccountConfigError(ValueError):
    """A ``source.account`` section that cannot be used; the message names the key."""


@dataclass(frozen=True)
class SourceAccount:
    """Where a stream's log groups are read: through ``role_arn`` (if set), in ``region`` (if set)."""

    role_arn: str | None = None
    region: str | None = None
    # Name of the environment variable holding the role's external id (never the value).
    external_id_env: str | None = None

    @property
    def account_id(self) -> str | None:
        """The account of ``role_arn``; None when the stream reads with the pipeline's identity."""
        match = ROLE_ARN_RE.fullmatch(self.role_arn) if self.role_arn else None
        return match.group(1) if match else None


def parse_source_account(raw: Any, where: str) -> SourceAccount | None:
    """``source.account`` validated; None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise AccountConfigError(f"{where}: must be a mapping with role_arn, region and/or external_id")
    unknown = sorted(set(raw) - ACCOUNT_KEYS)
    if unknown:
        raise AccountConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(ACCOUNT_KEYS)}")
    role_arn = raw.get("role_arn") or None
    if role_arn is not None and (not isinstance(role_arn, str) or not ROLE_ARN_RE.fullmatch(role_arn)):
        raise AccountConfigError(
            f"{where}.role_arn: {role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
        )
    region = raw.get("region") or None
    if region is not None and (not isinstance(region, str) or not REGION_RE.fullmatch(region)):
        raise AccountConfigError(f"{where}.region: {region!r} is not an AWS Region name like eu-west-1")
    external_id = raw.get("external_id") or None
    external_id_env = None
    if external_id is not None:
        match = ENV_REFERENCE_RE.fullmatch(external_id) if isinstance(external_id, str) else None
        if not match:
            raise AccountConfigError(
                f"{where}.external_id: write it as a reference to an environment variable, e.g. "
                "${CWL_SOURCE_EXTERNAL_ID}, not as a value (values would be shown in the Dagster UI)"
            )
        external_id_env = match.group(1)
        if role_arn is None:
            raise AccountConfigError(f"{where}.external_id: applies only with role_arn")
    if role_arn is None and region is None:
        raise AccountConfigError(f"{where}: name a role_arn, a region or both")
    return SourceAccount(role_arn=role_arn, region=region, external_id_env=external_id_env)

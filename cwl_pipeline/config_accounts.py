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
from typing import Annotated

from pydantic import Field, model_validator

from cwl_pipeline.config_model import Section, at, env_reference, text

ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-\d+")
ROLE_ARN = "is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"


class SourceAccount(Section):
    """Where a stream's log groups are read: through ``role_arn`` (if set), in ``region`` (if set)."""

    role_arn: Annotated[str | None, text(ROLE_ARN_RE, ROLE_ARN, required=False)] = None
    """A role in the log groups' account to assume."""
    region: Annotated[
        str | None, text(REGION_RE, "is not an AWS Region name like eu-west-1", required=False)
    ] = None
    """The log groups' Region (default: aws.region)."""
    # Name of the environment variable holding the role's external id (never the value).
    external_id_env: Annotated[str | None, env_reference("CWL_SOURCE_EXTERNAL_ID")] = Field(
        None, alias="external_id"
    )
    """role_arn's external id, as a reference ${NAME} read at run time (never a value)."""

    @model_validator(mode="after")
    def _role_or_region(self) -> SourceAccount:
        if self.external_id_env and self.role_arn is None:
            raise at("external_id", "applies only with role_arn")
        if self.role_arn is None and self.region is None:
            raise at("", "name a role_arn, a region or both")
        return self

    @property
    def account_id(self) -> str | None:
        """The account of ``role_arn``; None when the stream reads with the pipeline's identity."""
        match = ROLE_ARN_RE.fullmatch(self.role_arn) if self.role_arn else None
        return match.group(1) if match else None

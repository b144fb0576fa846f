"""The settings of a polling source (``source: {type: cloudwatch, ...}``): log groups read with
FilterLogEvents, in the pipeline's account or another.

Pure: it imports neither dagster nor any cloud client.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from cwl_pipeline.config_accounts import SourceAccount
from cwl_pipeline.config_model import Section, at
from cwl_pipeline.core.log_group_arns import is_arn, parse_log_group_arn

LOG_GROUP_RE = re.compile(r"^[\.\-_/#A-Za-z0-9]{1,512}$")


def _names(value: Any) -> tuple[str, ...]:
    """A list of non-empty names."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of names")
    return tuple(value)


def _log_group(name: str, arn: bool = False) -> str:
    """A log group name (a prefix too), valid as CloudWatch spells them; or, when ``arn``
    allows, an ARN (a monitoring account's view of its source accounts), one spelling per ARN
    (without ``:*``): it is the ``log_group`` of every row read from the group."""
    if arn and is_arn(name):
        return parse_log_group_arn(name).arn  # a LogGroupArnError is a ValueError, reported as it is
    if not LOG_GROUP_RE.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid CloudWatch log group name")
    return name


LogGroups = Annotated[tuple[str, ...], BeforeValidator(lambda v: tuple(map(_log_group, _names(v))))]


class CloudWatchSource(Section):
    """A polling source: log groups named exactly, and/or every group under a prefix.

    A named group may be an ARN (a monitoring account of CloudWatch cross-account observability
    reads its source accounts' groups so); ``account`` names the role and/or Region to read with
    when the groups are not in the pipeline's own account and Region.
    """

    type: Literal["cloudwatch"] = "cloudwatch"
    """Polled with FilterLogEvents."""
    log_groups: Annotated[
        tuple[str, ...], BeforeValidator(lambda v: tuple(_log_group(g, arn=True) for g in _names(v)))
    ] = ()
    """Log group names or ARNs, e.g. ['/aws/lambda/app'] (ARNs: in a monitoring account)."""
    log_group_prefixes: LogGroups = ()
    """Every log group whose name starts so."""
    account: SourceAccount | None = None
    """Read with a role in another account and/or in another Region."""

    @model_validator(mode="after")
    def _some_log_groups(self) -> CloudWatchSource:
        if not self.log_groups and not self.log_group_prefixes:
            raise at("", "name at least one of log_groups or log_group_prefixes")
        return self

"""Log groups named by ARN, as a CloudWatch cross-account observability monitoring account names
the log groups it sees in its source accounts (FilterLogEvents' ``logGroupIdentifier``).

A log group's ARN is ``arn:<partition>:logs:<region>:<account>:log-group:<name>``; DescribeLogGroups
shows it with a trailing ``:*`` as ``arn`` and without it as ``logGroupArn``. Both spellings are
accepted here and the one without ``:*`` is kept, the form ``logGroupIdentifier`` takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Log group names: 1-512 of letters, digits and . - _ / # (CreateLogGroup's pattern).
LOG_GROUP_NAME_PATTERN = r"[\.\-_/#A-Za-z0-9]{1,512}"
_ARN_RE = re.compile(
    rf"arn:(?P<partition>aws[a-z-]*):logs:(?P<region>[a-z]{{2}}(?:-[a-z0-9]+)+-\d+):"
    rf"(?P<account>\d{{12}}):log-group:(?P<name>{LOG_GROUP_NAME_PATTERN})(?::\*)?"
)


class LogGroupArnError(ValueError):
    """Text that starts like an ARN but is not a log group's."""


@dataclass(frozen=True)
class LogGroupArn:
    """A log group named by ARN: the account and Region it lives in, and its name there."""

    partition: str
    region: str
    account_id: str
    name: str

    @property
    def arn(self) -> str:
        """The ARN without the trailing ``:*`` (DescribeLogGroups' ``logGroupArn``)."""
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{self.name}"


def is_arn(identifier: str) -> bool:
    """Whether ``identifier`` is written as an ARN (a log group name never contains ``:``)."""
    return identifier.startswith("arn:")


def parse_log_group_arn(identifier: str) -> LogGroupArn:
    """The parts of a log group ARN.

    Raises:
        LogGroupArnError: ``identifier`` is not a log group ARN.
    """
    match = _ARN_RE.fullmatch(identifier)
    if match is None:
        raise LogGroupArnError(
            f"{identifier!r} is not a log group ARN (arn:aws:logs:<region>:<account>:log-group:<name>)"
        )
    return LogGroupArn(match["partition"], match["region"], match["account"], match["name"])


def log_group_request(identifier: str) -> dict[str, str]:
    """The request parameter naming a log group in FilterLogEvents: ``logGroupIdentifier`` for an
    ARN (a monitoring account reading a source account's group), ``logGroupName`` otherwise."""
    if is_arn(identifier):
        return {"logGroupIdentifier": parse_log_group_arn(identifier).arn}
    return {"logGroupName": identifier}

"""Read CloudWatch Logs windows with FilterLogEvents.

FilterLogEvents can return empty pages while more data remains, so pagination continues until
``nextToken`` is absent, never until a page is empty. FilterLogEvents allows 5 requests/s per
account and Region: each process spends a :class:`RequestBudget` share of it per account and
Region it calls (streams reading other accounts through their roles have budgets of their own),
and throttling beyond that is left to botocore's retry modes, configured on the client.

A log group named by ARN (a monitoring account of CloudWatch cross-account observability) is
read with ``logGroupIdentifier``; every other with ``logGroupName``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from cwl_pipeline.adapters.errors import SourceError, attempts_note
from cwl_pipeline.config import SourceAccount
from cwl_pipeline.core.log_group_arns import is_arn, log_group_request, parse_log_group_arn


@dataclass
class WindowRead:
    """Counters of one window read, for run metadata."""

    api_calls: int = 0
    events: int = 0
    bytes: int = 0
    groups: list[str] = field(default_factory=list)


class RequestBudget:
    """At most ``per_second`` requests per second, shared by every thread that holds it.

    FilterLogEvents allows 5 requests/s per account and Region; a process spends its share
    through one budget, so a run's pages and a sensor's probes in the same process add up.
    """

    def __init__(self, per_second: float) -> None:
        """``per_second`` > 0; a burst of at most one second's requests is allowed."""
        self.per_second = per_second
        self._capacity = max(1.0, per_second)
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def take(self) -> None:
        """Wait until a request may be sent."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.per_second)
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self.per_second if self._tokens < 0 else 0.0
            self.waited_s += wait
        if wait:
            time.sleep(wait)


_BUDGETS: dict[tuple[str, str, str, float], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def filter_log_events_budget(account: str, region: str, endpoint: str, per_second: float) -> RequestBudget:
    """The process's FilterLogEvents budget for one calling account and Region (and endpoint)."""
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault((account, region, endpoint, per_second), RequestBudget(per_second))


class CloudWatchLogsReader:
    """Reads raw events of log groups in half-open time windows ``[start_ms, end_ms)``."""

    def __init__(self, client: Any, budget: RequestBudget | None = None) -> None:
        """``client`` is a boto3 ``logs`` client (with its retry configuration); every
        FilterLogEvents request first takes a slot of ``budget`` (if given)."""
        self._client = client
        self._budget = budget

    def _filter_log_events(self, **request: Any) -> dict[str, Any]:
        if self._budget is not None:
            self._budget.take()
        return self._client.filter_log_events(**request)

    @property
    def _where(self) -> str:
        return f"{self._client.meta.region_name} ({self._client.meta.endpoint_url})"

    def resolve_log_groups(self, names: Iterable[str], prefixes: Iterable[str]) -> dict[str, int | None]:
        """Existing log groups named or under a prefix, with their retention in days (None: never
        expire). A named group that does not exist is an error naming it."""
        groups: dict[str, int | None] = {}
        try:
            for name in names:
                if is_arn(name):
                    groups[name] = self._describe_linked(name)
                    continue
                found = self._describe(prefix=name)
                if name not in found:
                    raise SourceError(f"CloudWatch log group {name!r} does not exist in {self._where}")
                groups[name] = found[name]
            for prefix in prefixes:
                groups.update(self._describe(prefix=prefix))
        except EndpointConnectionError as exc:
            raise SourceError(f"CloudWatch Logs endpoint unreachable: {exc}") from None
        return dict(sorted(groups.items()))

    def _describe_linked(self, identifier: str) -> int | None:
        """The retention of a log group named by ARN, looked up among the groups of its account
        that this (monitoring) account sees."""
        arn = parse_log_group_arn(identifier)
        found = self._describe(
            prefix=arn.name, includeLinkedAccounts=True, accountIdentifiers=[arn.account_id], by_arn=True
        )
        if arn.arn not in found:
            raise SourceError(
                f"CloudWatch log group {identifier!r} is not visible from {self._where} "
                "(is this account a monitoring account linked to the group's account?)"
            )
        return found[arn.arn]

    def _describe(self, prefix: str, by_arn: bool = False, **linked: Any) -> dict[str, int | None]:
        paginator = self._client.get_paginator("describe_log_groups")
        groups: dict[str, int | None] = {}
        try:
            for page in paginator.paginate(logGroupNamePrefix=prefix, **linked):
                for group in page.get("logGroups", []):
                    key = group.get("logGroupArn", "") if by_arn else group["logGroupName"]
                    groups[key] = group.get("retentionInDays")
        except ClientError as exc:
            raise SourceError(
                f"cannot list CloudWatch log groups with prefix {prefix!r} in {self._where}: "
                f"{exc.response['Error'].get('Code')}: {exc.response['Error'].get('Message')}"
            ) from None
        return groups

    def has_events_since(self, log_groups: Iterable[str], since_ms: int) -> bool:
        """Whether any of ``log_groups`` holds an event with a timestamp at or after ``since_ms``.

        One FilterLogEvents call per group with ``limit=1``: cheap enough for a sensor tick.
        """
        for group in log_groups:
            request: dict[str, Any] = {**log_group_request(group), "startTime": since_ms, "limit": 1}
            while True:
                try:
                    page = self._filter_log_events(**request)
                except (ClientError, BotoCoreError):
                    return True  # cannot tell: let the run read and report the error
                if page.get("events"):
                    return True
                if not page.get("nextToken"):
                    break
                request["nextToken"] = page["nextToken"]
        return False

    def read_since(
        self,
        log_group: str,
        start_ms: int,
        *,
        max_requests: int,
        filter_pattern: str | None = None,
        page_events: int | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Events of ``log_group`` with a timestamp at or after ``start_ms``, in timestamp order,
        in at most ``max_requests`` requests; returns ``(events, requests, cut_short)``.

        CloudWatch returns FilterLogEvents events sorted by timestamp (``interleaved`` is
        ignored there and always on); it is passed so the local emulator sorts too.
        ``page_events`` is FilterLogEvents' ``limit`` (default: the API's 10,000).
        """
        request: dict[str, Any] = {"logGroupName": log_group, "startTime": start_ms, "interleaved": True}
        if filter_pattern:
            request["filterPattern"] = filter_pattern
        if page_events:
            request["limit"] = page_events
        events: list[dict[str, Any]] = []
        requests = 0
        while requests < max_requests:
            page = self._page(log_group, request)
            requests += 1
            events += [e for e in page.get("events", []) if e["timestamp"] >= start_ms]
            token = page.get("nextToken")
            if not token:
                return events, requests, False
            request["nextToken"] = token
        return events, requests, True

    def _page(self, log_group: str, request: dict[str, Any]) -> dict[str, Any]:
        """One FilterLogEvents page, its errors as :class:`SourceError` naming the group."""
        try:
            return self._filter_log_events(**request)
        except ClientError as exc:
            code = exc.response["Error"].get("Code")
            if code == "ResourceNotFoundException":
                raise SourceError(
                    f"CloudWatch log group {log_group!r} does not exist in {self._where}"
                ) from None
            raise SourceError(
                f"FilterLogEvents on {log_group!r} failed in {self._where}{attempts_note(exc)}: {code}: "
                f"{exc.response['Error'].get('Message')}"
            ) from None
        except EndpointConnectionError as exc:
            raise SourceError(f"CloudWatch Logs endpoint unreachable: {exc}") from None
        except BotoCoreError as exc:
            raise SourceError(f"FilterLogEvents on {log_group!r} failed: {exc}") from None

    def iter_events(
        self,
        log_group: str,
        start_ms: int,
        end_ms: int,
        stats: WindowRead | None = None,
        *,
        filter_pattern: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield FilterLogEvents events of ``log_group`` with ``start_ms <= timestamp < end_ms``
        (only those matching ``filter_pattern``, a CloudWatch filter pattern, when given)."""
        stats = stats if stats is not None else WindowRead()
        stats.groups.append(log_group)
        # FilterLogEvents treats endTime as inclusive: ask for end - 1 ms.
        request: dict[str, Any] = {
            **log_group_request(log_group),
            "startTime": start_ms,
            "endTime": end_ms - 1,
        }
        if filter_pattern:
            request["filterPattern"] = filter_pattern
        while True:
            page = self._page(log_group, request)
            stats.api_calls += 1
            for event in page.get("events", []):
                if start_ms <= event["timestamp"] < end_ms:
                    stats.events += 1
                    stats.bytes += len(event.get("message", ""))
                    yield event
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token


class AwsClients(Protocol):
    """What builds a reader: boto3 clients by service name (in a stream's account), who they
    call as, and the FilterLogEvents rate (the Dagster ``AwsResource``, or anything shaped like it)."""

    filter_log_events_per_second: float

    def client(self, service: str, account: SourceAccount | None = None) -> Any:
        """A boto3 client for ``service``, in ``account`` if given."""
        ...

    def caller_account(self, account: SourceAccount | None = None) -> str:
        """The account a client for ``account`` calls AWS as."""
        ...


def logs_reader(aws: AwsClients, account: SourceAccount | None = None) -> CloudWatchLogsReader:
    """A CloudWatch Logs reader over ``aws``'s client in ``account`` (a stream's
    ``source.account``; None: the pipeline's own), within the process's FilterLogEvents budget
    for the account and Region it calls."""
    client = aws.client("logs", account)
    budget = filter_log_events_budget(
        aws.caller_account(account),
        client.meta.region_name,
        client.meta.endpoint_url,
        aws.filter_log_events_per_second,
    )
    return CloudWatchLogsReader(client, budget)

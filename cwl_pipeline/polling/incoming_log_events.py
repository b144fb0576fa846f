"""CloudWatch's own count of the events its log groups accepted: the ``IncomingLogEvents`` metric.

``AWS/Logs`` / ``IncomingLogEvents`` with the ``LogGroupName`` dimension is the number of log
events uploaded to the group, by upload (ingestion) time. It is read with GetMetricData, one
query per log group (at most 500 per request), statistic ``Sum`` at a period of one hour; an
hour without events has no datapoint and counts 0. See docs/reconciliation.md.

The client is the stream's: in the account and Region of its log groups (``source.account``).
A log group named by ARN is read in a monitoring account of cross-account observability: its
query names the group's account (``AccountId``) and the group by name.

Also here: counting at the source the events *ingested* in an hour that carry event times in a
range (FilterLogEvents returns ``ingestionTime`` per event), to explain a shortfall.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.core.log_group_arns import is_arn, parse_log_group_arn
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader

NAMESPACE = "AWS/Logs"
METRIC = "IncomingLogEvents"
PERIOD_SECONDS = 3600
_QUERIES_PER_REQUEST = 500  # GetMetricData's limit of MetricDataQueries per request


class IncomingLogEvents:
    """Reads hourly ``IncomingLogEvents`` sums of log groups with GetMetricData."""

    def __init__(self, client: Any) -> None:
        """``client`` is a boto3 ``cloudwatch`` client."""
        self._client = client

    def hourly_counts(self, log_groups: Iterable[str], start: datetime, end: datetime) -> dict[datetime, int]:
        """Events CloudWatch accepted per hour ``[start, end)`` (whole UTC hours), summed over
        ``log_groups``; every hour of the range is present (0 without a datapoint)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        for bound in (start, end):
            if bound.timestamp() % PERIOD_SECONDS:
                # GetMetricData labels datapoints from ``start`` on: unaligned, none would match.
                raise ValueError(f"hourly_counts takes whole UTC hours, not {bound.isoformat()}")
        counts: dict[datetime, int] = {}
        hour = start
        while hour < end:
            counts[hour] = 0
            hour += timedelta(seconds=PERIOD_SECONDS)
        groups = sorted(set(log_groups))
        for first in range(0, len(groups), _QUERIES_PER_REQUEST):
            for moment, value in self._query(groups[first : first + _QUERIES_PER_REQUEST], start, end):
                hour = moment.astimezone(UTC)
                if hour in counts:
                    counts[hour] += round(value)
        return counts

    def _query(
        self, groups: Sequence[str], start: datetime, end: datetime
    ) -> Iterable[tuple[datetime, float]]:
        queries = [_metric_query(index, group) for index, group in enumerate(groups)]
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            try:
                page = self._client.get_metric_data(**request)
            except ClientError as exc:
                error = exc.response["Error"]
                what = f"GetMetricData ({NAMESPACE} {METRIC})"
                raise SourceError(f"{what} failed: {error.get('Code')}: {error.get('Message')}") from None
            except BotoCoreError as exc:
                raise SourceError(f"GetMetricData ({NAMESPACE} {METRIC}) failed: {exc}") from None
            for result in page.get("MetricDataResults", []):
                if result.get("StatusCode") not in (None, "Complete", "PartialData"):
                    status = result.get("StatusCode")
                    raise SourceError(f"GetMetricData for {result.get('Label')!r} returned status {status}")
                yield from zip(result.get("Timestamps", []), result.get("Values", []), strict=True)
            token = page.get("NextToken")
            if not token:
                return
            request["NextToken"] = token


def _metric_query(index: int, group: str) -> dict[str, Any]:
    """The GetMetricData query of one log group's hourly ``IncomingLogEvents`` sum."""
    name, account = group, None
    if is_arn(group):
        arn = parse_log_group_arn(group)
        name, account = arn.name, arn.account_id
    query: dict[str, Any] = {
        "Id": f"g{index}",
        "Label": group,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": METRIC,
                "Dimensions": [{"Name": "LogGroupName", "Value": name}],
            },
            "Period": PERIOD_SECONDS,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }
    if account is not None:
        query["AccountId"] = account
    return query


def count_ingested(
    reader: CloudWatchLogsReader,
    log_groups: Iterable[str],
    *,
    event_start: datetime,
    event_end: datetime,
    ingested_start: datetime,
    ingested_end: datetime,
) -> Counter[str]:
    """Per log group, the events with an event time in ``[event_start, event_end)`` that
    CloudWatch ingested in ``[ingested_start, ingested_end)`` (FilterLogEvents, within the
    reader's request budget)."""
    low, high = _ms(ingested_start), _ms(ingested_end)
    counts: Counter[str] = Counter()
    if event_start >= event_end:
        return counts
    for group in log_groups:
        for event in reader.iter_events(group, _ms(event_start), _ms(event_end)):
            if low <= int(event.get("ingestionTime", -1)) < high:
                counts[group] += 1
    return counts


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)

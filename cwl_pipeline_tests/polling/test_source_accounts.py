"""What the clients of a stream in another account, or naming log groups by ARN, send to AWS.

Log groups named by ARN are how a monitoring account of CloudWatch cross-account observability
reads its source accounts' groups: FilterLogEvents takes them as ``logGroupIdentifier`` (AWS:
"Specify either the name or ARN of the log group ... You must include either
logGroupIdentifier or logGroupName, but not both"). The local AWS (moto) looks such an
identifier up wrongly (it answers ResourceNotFound for a group that exists), so these tests
check the request the real boto3 client builds (captured with botocore's own
``before-parameter-build`` event, then validated and sent by botocore as usual), not moto's
answer. Reading another account end to end is tested with a role instead
(``cwl_pipeline_tests/pipeline/test_cross_account.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from cwl_pipeline.adapters.errors import SourceError
from cwl_pipeline.config import SourceAccount
from cwl_pipeline.orchestration.resources import AwsResource
from cwl_pipeline.polling.filter_log_events import CloudWatchLogsReader, logs_reader
from cwl_pipeline.polling.incoming_log_events import IncomingLogEvents
from cwl_pipeline.polling.reconcile_plan import floor_to_hour

LOCAL_ACCOUNT = "123456789012"  # the account moto answers in for the test credentials


def captured(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` request ``client`` builds from now on."""
    requests: list[dict[str, Any]] = []
    client.meta.events.register(
        f"before-parameter-build.*.{operation}", lambda params, **_: requests.append(dict(params))
    )
    return requests


@pytest.fixture
def group(logs_client, unique_name) -> str:
    name = f"/test/arn-{unique_name}"
    logs_client.create_log_group(logGroupName=name)
    return name


def test_a_log_group_arn_is_read_with_log_group_identifier(logs_client, group):
    arn = f"arn:aws:logs:us-east-1:{LOCAL_ACCOUNT}:log-group:{group}"
    reader = CloudWatchLogsReader(logs_client)
    filters = captured(logs_client, "FilterLogEvents")
    describes = captured(logs_client, "DescribeLogGroups")

    # Resolved among the groups of its account that this account sees (its own, here).
    assert reader.resolve_log_groups([arn], []) == {arn: None}
    assert describes[-1] == {
        "logGroupNamePrefix": group,
        "includeLinkedAccounts": True,
        "accountIdentifiers": [LOCAL_ACCOUNT],
    }
    with pytest.raises(SourceError):  # moto's wrong lookup of logGroupIdentifier (see above)
        list(reader.iter_events(arn, 0, 1_000))
    assert filters[-1] == {"logGroupIdentifier": arn, "startTime": 0, "endTime": 999}

    assert list(reader.iter_events(group, 0, 1_000)) == []
    assert filters[-1] == {"logGroupName": group, "startTime": 0, "endTime": 999}


def test_an_arn_the_account_does_not_see_is_named_in_the_error(logs_client, group):
    arn = f"arn:aws:logs:us-east-1:222222222222:log-group:{group}"
    with pytest.raises(SourceError, match=r"is not visible from us-east-1.*monitoring account"):
        CloudWatchLogsReader(logs_client).resolve_log_groups([arn], [])


def test_incoming_log_events_of_an_arn_name_the_groups_account(local_aws, group):
    cloudwatch = boto3.client("cloudwatch", endpoint_url=local_aws.url, region_name="us-east-1")
    queries = captured(cloudwatch, "GetMetricData")
    arn = f"arn:aws:logs:us-east-1:222222222222:log-group:{group}"
    hour = floor_to_hour(datetime.now(UTC)) - timedelta(hours=1)
    IncomingLogEvents(cloudwatch).hourly_counts([arn, group], hour, hour + timedelta(hours=1))
    by_label = {q["Label"]: q for q in queries[-1]["MetricDataQueries"]}
    assert by_label[arn]["AccountId"] == "222222222222"
    assert by_label[arn]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "LogGroupName", "Value": group}]
    assert "AccountId" not in by_label[group]


def test_filter_log_events_budgets_are_per_calling_account_and_region(local_aws):
    aws = AwsResource(region_name="us-east-1", endpoint_url=local_aws.url)
    one = SourceAccount(role_arn="arn:aws:iam::222222222222:role/reader-a")
    same_account = SourceAccount(role_arn="arn:aws:iam::222222222222:role/reader-b")
    other_region = SourceAccount(role_arn="arn:aws:iam::222222222222:role/reader-a", region="eu-west-1")
    other_account = SourceAccount(role_arn="arn:aws:iam::333333333333:role/reader-a")
    own_region = SourceAccount(region="eu-west-1")
    budgets = {
        name: logs_reader(aws, account)._budget
        for name, account in {
            "own": None,
            "one": one,
            "same_account": same_account,
            "other_region": other_region,
            "other_account": other_account,
            "own_region": own_region,
        }.items()
    }
    assert budgets["one"] is budgets["same_account"]  # two roles, one account: one quota
    distinct = ["own", "one", "other_region", "other_account", "own_region"]
    assert len({id(budgets[name]) for name in distinct}) == len(distinct)
    assert logs_reader(aws)._budget is budgets["own"]


def test_a_missing_external_id_variable_is_named(local_aws, monkeypatch):
    monkeypatch.delenv("CWL_TEST_UNSET_EXTERNAL_ID", raising=False)
    aws = AwsResource(region_name="us-east-1", endpoint_url=local_aws.url)
    account = SourceAccount(
        role_arn="arn:aws:iam::222222222222:role/reader", external_id="${CWL_TEST_UNSET_EXTERNAL_ID}"
    )
    with pytest.raises(
        SourceError, match=r"CWL_TEST_UNSET_EXTERNAL_ID .*arn:aws:iam::222222222222:role/reader"
    ):
        aws.client("logs", account)

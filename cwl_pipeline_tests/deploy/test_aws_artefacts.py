"""deploy/aws: the CloudFormation template passes cfn-lint, the standalone IAM policies are the template's
runtime policies, and both grant exactly the AWS calls the pipeline code makes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint import api as cfn_lint
from cfnlint.data import AdditionalSpecs
from cfnlint.helpers import load_resource

from cwl_pipeline.config import EXPORT_DEFAULT_PREFIX, S3Source, default_of
from cwl_pipeline_tests.deploy.iam_documents import (
    IAM_ACTIONS,
    SOURCE_POLICIES,
    SOURCE_TEMPLATE,
    TEMPLATE,
    as_list,
    called_operations,
    granted_actions,
    json_policies,
    load_template,
    render,
    source_role,
    statements,
    template_runtime_policies,
)

# cfn-lint's informational rule asking for an architecture "Context" metadata block on every
# template: a convention of AWS's own tooling, not a correctness check.
IGNORED_RULES = {"I4010"}

# IAM resource types per action, from the Service Authorization Reference data cfn-lint ships.
SERVICE_AUTHORIZATION: dict[str, Any] = load_resource(AdditionalSpecs, "Policies.json")


STAR_WITH_OPTIONAL_RESOURCE = {"cloudwatch:GetMetricData": ["dataset"]}


def resource_types(action: str) -> list[str] | None:
    """The resource types ``action`` can be scoped to; None when IAM does not know the action."""
    service, name = action.split(":", 1)
    actions = SERVICE_AUTHORIZATION.get(service, {}).get("Actions", {})
    for known, spec in actions.items():
        if known.lower() == name.lower():
            return list(spec.get("Resources", []))
    return None


def test_template_passes_cfn_lint() -> None:
    matches = [m for m in cfn_lint.lint_all(TEMPLATE.read_text()) if m.rule.id not in IGNORED_RULES]
    assert not matches, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


def test_cfn_lint_rejects_an_unknown_iam_action() -> None:
    """The lint is not vacuous: a misspelt action in the same template is reported."""
    broken = TEMPLATE.read_text().replace("logs:FilterLogEvents", "logs:FilterLogEvent", 1)
    assert "W3037" in {m.rule.id for m in cfn_lint.lint_all(broken)}


def test_standalone_policies_are_the_templates_runtime_policies() -> None:
    standalone = json_policies()
    assume = standalone.pop("assume-runtime-role")
    assert standalone == template_runtime_policies()

    # sts:AssumeRole: the caller's side is the standalone document, the template's side is the
    # runtime role's trust policy naming that caller.
    trust = load_template()["Resources"]["RuntimeRole"]["Properties"]["AssumeRolePolicyDocument"]
    (trust_statement,) = statements(trust)
    assert trust_statement["Action"] == "sts:AssumeRole"
    assert trust_statement["Principal"] == {"AWS": {"Ref": "RuntimePrincipalArn"}}
    (assume_statement,) = statements(assume)
    assert assume_statement["Action"] == "sts:AssumeRole"
    assert assume_statement["Resource"].startswith("arn:aws:iam::ACCOUNT_ID:role/")


def test_code_scan_finds_the_known_calls() -> None:
    """The scan itself works: the calls every source path makes are found."""
    assert {
        ("logs", "FilterLogEvents"),
        ("logs", "DescribeLogGroups"),
        ("s3", "ListObjectsV2"),
        ("s3", "GetObject"),
    } <= called_operations()


def test_policies_grant_exactly_the_actions_the_code_needs() -> None:
    operations = called_operations()
    unmapped = sorted(op for op in operations if op not in IAM_ACTIONS)
    assert not unmapped, f"new AWS calls in the code; add their IAM actions and policies: {unmapped}"
    needed = set().union(*(IAM_ACTIONS[op] for op in operations))

    assert granted_actions(json_policies()) == needed
    assert granted_actions(template_runtime_policies()) | {"sts:AssumeRole"} == needed


@pytest.mark.parametrize("source", ["template", "standalone"])
def test_no_wildcard_action_and_star_resource_only_where_iam_requires_it(source: str) -> None:
    documents = template_runtime_policies() if source == "template" else json_policies()
    for name, document in documents.items():
        for statement in statements(document):
            for action in as_list(statement["Action"]):
                assert "*" not in action, (name, action)
                types = resource_types(action)
                assert types is not None, f"{name}: {action} is not an IAM action"
                if statement["Resource"] == "*":
                    # DescribeLogGroups and DescribeExportTasks have no resource type.
                    # GetMetricData's only one is an optional CloudWatch dataset that a metric
                    # query of AWS/Logs does not name: granted on *.
                    optional = STAR_WITH_OPTIONAL_RESOURCE.get(action)
                    assert types in ([], optional), f"{name}: {action} can be scoped to {types}, not *"
                else:
                    assert types, f"{name}: {action} only works on Resource *"


def test_runtime_resources_stay_in_the_sources() -> None:
    policies = template_runtime_policies()
    resources: dict[str, set[str]] = {}
    for document in policies.values():
        for statement in statements(document):
            for action in as_list(statement["Action"]):
                resources.setdefault(action, set()).update(as_list(statement["Resource"]))
    logs_arn = "arn:aws:logs:REGION:ACCOUNT_ID:log-group:"
    # The polled groups of the account, and (monitoring account) the linked accounts' groups.
    assert resources["logs:FilterLogEvents"] == {
        f"{logs_arn}POLLED_LOG_GROUP_PATTERN",
        f"{logs_arn}POLLED_LOG_GROUP_PATTERN:*",
        "arn:aws:logs:REGION:*:log-group:LINKED_LOG_GROUP_PATTERN",
        "arn:aws:logs:REGION:*:log-group:LINKED_LOG_GROUP_PATTERN:*",
    }
    # Roles in other accounts: exactly those named.
    assert resources["sts:AssumeRole"] == {"arn:aws:iam::SOURCE_ACCOUNT_ID:role/SOURCE_ROLE_NAME"}
    # Export streams' groups, and the polled groups whose old windows a history backfill exports.
    assert resources["logs:CreateExportTask"] == {
        f"{logs_arn}EXPORT_LOG_GROUP_PATTERN",
        f"{logs_arn}EXPORT_LOG_GROUP_PATTERN:*",
        f"{logs_arn}POLLED_LOG_GROUP_PATTERN",
        f"{logs_arn}POLLED_LOG_GROUP_PATTERN:*",
    }
    assert resources["s3:ListBucket"] == {"arn:aws:s3:::BUCKET"}
    assert resources["s3:GetObject"] == {
        "arn:aws:s3:::BUCKET/FIREHOSE_PREFIX/*",
        "arn:aws:s3:::BUCKET/EXPORT_PREFIX/*",
        "arn:aws:s3:::BUCKET/HISTORY_PREFIX/*",
    }
    # The only write: export files, where CloudWatch Logs puts them.
    assert resources["s3:PutObject"] == {
        "arn:aws:s3:::BUCKET/EXPORT_PREFIX/*",
        "arn:aws:s3:::BUCKET/HISTORY_PREFIX/*",
    }
    (list_statement,) = [s for s in statements(policies["s3-read"]) if s["Action"] == "s3:ListBucket"]
    prefixes = ["FIREHOSE_PREFIX/*", "EXPORT_PREFIX/*", "HISTORY_PREFIX/*"]
    assert list_statement["Condition"] == {"StringLike": {"s3:prefix": prefixes}}


def test_export_bucket_policy_admits_cloudwatch_logs_only_under_the_export_prefix() -> None:
    policy = render(load_template()["Resources"]["LogBucketPolicy"]["Properties"]["PolicyDocument"])
    by_sid = {s["Sid"]: s for s in statements(policy)}
    source = {"aws:SourceArn": "arn:aws:logs:REGION:ACCOUNT_ID:log-group:*"}

    acl = by_sid["CloudWatchLogsExportAclCheck"]
    assert acl["Principal"] == {"Service": "logs.REGION.amazonaws.com"}
    assert (acl["Action"], acl["Resource"]) == ("s3:GetBucketAcl", "arn:aws:s3:::BUCKET")
    assert acl["Condition"] == {"StringEquals": {"aws:SourceAccount": "ACCOUNT_ID"}, "ArnLike": source}

    write = by_sid["CloudWatchLogsExportWrite"]
    assert write["Principal"] == {"Service": "logs.REGION.amazonaws.com"}
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == [
        "arn:aws:s3:::BUCKET/EXPORT_PREFIX/*",
        "arn:aws:s3:::BUCKET/HISTORY_PREFIX/*",
    ]
    assert write["Condition"] == {
        "StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceAccount": "ACCOUNT_ID"},
        "ArnLike": source,
    }

    tls = by_sid["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(tls["Resource"]) == {"arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/*"}


def test_firehose_writes_what_the_pipelines_default_record_format_reads() -> None:
    template = load_template()
    resources = template["Resources"]
    destination = resources["DeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    # Subscription records are gzip'd by CloudWatch Logs and concatenated as they are: no extra
    # compression, no decompression or delimiter processor.
    assert destination["CompressionFormat"] == "UNCOMPRESSED"
    assert "ProcessingConfiguration" not in destination
    assert default_of(S3Source, "record_format") == "envelopes_gzip"
    # No !{...} expression: Firehose appends YYYY/MM/DD/HH/, the key layout the pipeline reads.
    assert destination["Prefix"] == {"Ref": "FirehosePrefix"}
    assert template["Parameters"]["FirehosePrefix"]["Default"].endswith("/")
    assert template["Parameters"]["ExportPrefix"]["Default"] == EXPORT_DEFAULT_PREFIX

    delivery = render(resources["FirehoseDeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    for statement in statements(delivery):
        if "s3:PutObject" in as_list(statement["Action"]):
            assert set(statement["Resource"]) == {
                "arn:aws:s3:::BUCKET/FIREHOSE_PREFIX/*",
                "arn:aws:s3:::BUCKET/firehose-errors/*",
            }
    subscription = render(resources["SubscriptionRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    assert granted_actions({"s": subscription}) == {"firehose:PutRecord", "firehose:PutRecordBatch"}


def test_outputs_name_what_the_pipeline_config_needs() -> None:
    outputs = load_template()["Outputs"]
    assert {"BucketName", "RuntimeRoleArn", "FirehoseDeliveryRoleArn", "SubscriptionRoleArn"} <= set(outputs)
    assert {"DeliveryStreamName"} <= set(outputs)


def test_account_subscription_filter_policy_is_an_option_into_the_delivery_stream() -> None:
    """The account-level policy exists only when the parameter asks for it, sends to the
    delivery stream with the subscription role, and excludes the stream's own error log group."""
    template = load_template()
    policy = template["Resources"]["AccountSubscriptionFilterPolicy"]
    assert policy["Type"] == "AWS::Logs::AccountPolicy"
    assert policy["Condition"] == "HasAccountSubscriptionPolicy"
    assert template["Conditions"]["HasAccountSubscriptionPolicy"] == {
        "Fn::Equals": [{"Ref": "AccountSubscriptionPolicy"}, "true"]
    }
    assert template["Parameters"]["AccountSubscriptionPolicy"]["Default"] == "false"
    props = policy["Properties"]
    assert (props["PolicyType"], props["Scope"]) == ("SUBSCRIPTION_FILTER_POLICY", "ALL")
    assert "${FirehoseLogGroup}" in props["SelectionCriteria"]["Fn::Sub"]
    body, values = props["PolicyDocument"]["Fn::Sub"]
    assert values == {
        "Destination": {"Fn::GetAtt": ["DeliveryStream", "Arn"]},
        "Role": {"Fn::GetAtt": ["SubscriptionRole", "Arn"]},
    }
    assert {"DestinationArn", "RoleArn", "FilterPattern", "Distribution"} <= set(
        json.loads(body.replace("${", "").replace('}"', '"'))
    )


def test_cfn_lint_checks_the_account_policy() -> None:
    """The lint validates the account policy's properties: an unknown policy type is reported."""
    broken = TEMPLATE.read_text().replace(
        "PolicyType: SUBSCRIPTION_FILTER_POLICY", "PolicyType: SUBSCRIPTION", 1
    )
    assert "E3030" in {m.rule.id for m in cfn_lint.lint_all(broken)}


def test_the_source_account_template_passes_cfn_lint() -> None:
    matches = [m for m in cfn_lint.lint_all(SOURCE_TEMPLATE.read_text()) if m.rule.id not in IGNORED_RULES]
    assert not matches, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


def test_the_source_account_role_trusts_only_the_runtime_role_with_the_external_id() -> None:
    role = source_role()
    (trust,) = statements(role["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"AWS": "arn:aws:iam::PIPELINE_ACCOUNT_ID:role/RUNTIME_ROLE_NAME"}
    assert (trust["Effect"], trust["Action"]) == ("Allow", "sts:AssumeRole")
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "EXTERNAL_ID"}}
    assert load_template(SOURCE_TEMPLATE)["Parameters"]["ExternalId"]["NoEcho"] is True
    # The standalone trust policy is the template's.
    assert json_policies(SOURCE_POLICIES)["trust"] == role["AssumeRolePolicyDocument"]


def test_the_source_account_role_reads_what_the_runtime_role_reads_in_its_own_account() -> None:
    role = source_role()
    policies = {p["PolicyName"]: p["PolicyDocument"] for p in role["Policies"]}
    standalone = json_policies(SOURCE_POLICIES)
    standalone.pop("trust")
    assert policies == standalone
    # Exactly the runtime role's CloudWatch reading (log groups, windows, IncomingLogEvents), no
    # S3, no export, no further role.
    assert policies == {"cloudwatch-read": template_runtime_policies()["cloudwatch-read"]}
    reading = {op for op in called_operations() if op[0] in ("logs", "cloudwatch")}
    reading -= {("logs", "CreateExportTask"), ("logs", "DescribeExportTasks")}
    assert granted_actions(policies) == set().union(*(IAM_ACTIONS[op] for op in reading))


def test_other_accounts_are_granted_only_when_the_template_names_them() -> None:
    """Without SourceRoleArns and LinkedLogGroupPattern the runtime role assumes no other role
    and reads no other account's group."""
    template = load_template()
    conditional = {}
    for policy in template["Resources"]["RuntimeRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy:
            condition, document, otherwise = policy["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            conditional[document["PolicyName"]] = condition
    assert conditional == {
        "assume-source-roles": "HasSourceRoles",
        "cloudwatch-read-linked": "HasLinkedLogGroupPattern",
    }
    parameters = template["Parameters"]
    assert (
        parameters["SourceRoleArns"]["Default"] == "" and parameters["LinkedLogGroupPattern"]["Default"] == ""
    )

"""Read the deploy/aws policy documents: the CloudFormation template's (rendered with placeholder
parameter values) and the standalone JSON files, plus the AWS operations the pipeline code calls."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "aws" / "cloudformation.yaml"
# Deployed in each account whose log groups a stream reads through a role (source.account).
SOURCE_TEMPLATE = ROOT / "deploy" / "aws" / "source-account.yaml"
POLICIES = ROOT / "deploy" / "aws" / "policies"
SOURCE_POLICIES = POLICIES / "source-account"
# Every package that runs in a deployment (not the local demo stack).
CODE_DIRS = tuple(
    ROOT / "cwl_pipeline" / name
    for name in ("adapters", "load", "polling", "firehose", "exports", "orchestration")
)

# Parameter values that render the template's runtime policies into the placeholders used by the
# standalone JSON documents.
PLACEHOLDERS: Mapping[str, str] = {
    "AWS::Partition": "aws",
    "AWS::Region": "REGION",
    "AWS::AccountId": "ACCOUNT_ID",
    "LogBucket": "BUCKET",
    "LogBucket.Arn": "arn:aws:s3:::BUCKET",
    "PolledLogGroupPattern": "POLLED_LOG_GROUP_PATTERN",
    "SubscribedLogGroupName": "SUBSCRIBED_LOG_GROUP",
    "ExportLogGroupPattern": "EXPORT_LOG_GROUP_PATTERN",
    "FirehosePrefix": "FIREHOSE_PREFIX/",
    "ExportPrefix": "EXPORT_PREFIX",
    "HistoryPrefix": "HISTORY_PREFIX",
    "FirehoseLogGroup.Arn": "arn:aws:logs:REGION:ACCOUNT_ID:log-group:FIREHOSE_LOG_GROUP:*",
    "DeliveryStream.Arn": "arn:aws:firehose:REGION:ACCOUNT_ID:deliverystream/DELIVERY_STREAM",
    "ObjectQueue.Arn": "arn:aws:sqs:REGION:ACCOUNT_ID:OBJECT_QUEUE",
    "SourceRoleArns": "arn:aws:iam::SOURCE_ACCOUNT_ID:role/SOURCE_ROLE_NAME",
    "LinkedLogGroupPattern": "LINKED_LOG_GROUP_PATTERN",
    # source-account.yaml
    "PipelineRoleArn": "arn:aws:iam::PIPELINE_ACCOUNT_ID:role/RUNTIME_ROLE_NAME",
    "ExternalId": "EXTERNAL_ID",
}
CONDITIONS: Mapping[str, bool] = {
    "HasExportLogGroupPattern": True,
    "HasBucketName": True,
    "HasSourceRoles": True,
    "HasLinkedLogGroupPattern": True,
}

# The IAM actions each AWS operation needs (Service Authorization Reference). S3 names its
# actions after access, not after the operation.
IAM_ACTIONS: Mapping[tuple[str, str], frozenset[str]] = {
    ("logs", "DescribeLogGroups"): frozenset({"logs:DescribeLogGroups"}),
    ("logs", "FilterLogEvents"): frozenset({"logs:FilterLogEvents"}),
    ("logs", "DescribeExportTasks"): frozenset({"logs:DescribeExportTasks"}),
    ("cloudwatch", "GetMetricData"): frozenset({"cloudwatch:GetMetricData"}),
    # "you must use credentials that have permission to write to the S3 bucket that you specify
    # as the destination" (CreateExportTask API reference).
    ("logs", "CreateExportTask"): frozenset({"logs:CreateExportTask", "s3:PutObject"}),
    ("s3", "ListObjectsV2"): frozenset({"s3:ListBucket"}),
    ("s3", "GetObject"): frozenset({"s3:GetObject"}),
    ("s3", "HeadObject"): frozenset({"s3:GetObject"}),
    ("sts", "AssumeRole"): frozenset({"sts:AssumeRole"}),
    ("sqs", "ReceiveMessage"): frozenset({"sqs:ReceiveMessage"}),
    # "setting permissions for ... DeleteMessage ... sets permissions for the corresponding batch
    # versions" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api.html).
    ("sqs", "DeleteMessageBatch"): frozenset({"sqs:DeleteMessage"}),
}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as CloudFormation reads it (short-form tags become ``Fn::`` mappings)."""
    template, matches = decode_str(path.read_text())
    assert not matches, matches
    return template


def render(node: Any, values: Mapping[str, str] = PLACEHOLDERS) -> Any:
    """Resolve Ref, Fn::GetAtt, Fn::Sub and Fn::If in ``node`` with ``values``."""
    if isinstance(node, list):
        return [render(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return values[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return values[".".join(target) if isinstance(target, list) else target]
    if set(node) == {"Fn::If"}:
        condition, when_true, when_false = node["Fn::If"]
        return render(when_true if CONDITIONS[condition] else when_false, values)
    if set(node) == {"Fn::Sub"}:
        spec = node["Fn::Sub"]
        text, local = (spec, {}) if isinstance(spec, str) else (spec[0], spec[1])
        scope = {**values, **{k: render(v, values) for k, v in local.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: scope[m.group(1)], text)
    return {key: render(value, values) for key, value in node.items()}


def template_runtime_policies() -> dict[str, dict[str, Any]]:
    """The runtime role's inline policies by name, rendered with the placeholders."""
    role = load_template()["Resources"]["RuntimeRole"]["Properties"]
    return {p["PolicyName"]: p["PolicyDocument"] for p in render(role["Policies"])}


def source_role() -> dict[str, Any]:
    """The source account role's properties (source-account.yaml), rendered with the placeholders."""
    return render(load_template(SOURCE_TEMPLATE)["Resources"]["SourceReadRole"]["Properties"])


def json_policies(folder: Path = POLICIES) -> dict[str, dict[str, Any]]:
    """deploy/aws/policies/*.json (or another folder's) by file stem."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def as_list(value: Any) -> list[Any]:
    """A policy element that may be a single value or a list, as a list."""
    return value if isinstance(value, list) else [value]


def statements(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The statements of a policy document."""
    yield from as_list(document["Statement"])


def granted_actions(documents: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Every action allowed by the documents."""
    return {
        action
        for document in documents.values()
        for statement in statements(document)
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


def _operation_names(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name of ``service``."""
    model = botocore.session.get_session().get_service_model(service)
    return {botocore.xform_name(op): op for op in model.operation_names}


# botocore helpers the code uses that call an AWS API on its behalf.
INDIRECT_CALLS = {"AssumeRoleCredentialFetcher": ("sts", "AssumeRole")}


def _google_only(source: str) -> bool:
    """A module of Google clients only (a BigQuery adapter): its ``client`` is not an AWS one
    (``self.client.get_dataset`` would read as CloudWatch's GetDataset)."""
    imports = {
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    return any(name.startswith("google.cloud") for name in imports) and not any(
        name.split(".")[0] in ("boto3", "botocore") for name in imports
    )


def called_operations() -> set[tuple[str, str]]:
    """(service, operation) of every boto3 client call in the adapters and Dagster definitions.

    The services are those the code creates clients for (``client("logs")`` ...); an operation is
    a method of theirs taken from a client (``self._client.filter_log_events``, also when only
    referenced; ``session.client("sts").assume_role``) or a ``get_paginator("...")`` argument.
    A client is a name or attribute ending in ``client``, or a ``.client(...)`` call. A botocore
    helper in :data:`INDIRECT_CALLS` counts as the call it makes.
    """
    trees = [
        ast.parse(text)
        for d in CODE_DIRS
        for path in sorted(d.glob("*.py"))
        if not _google_only(text := path.read_text())
    ]
    services: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "client"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                services.add(node.args[0].value)
    methods = {service: _operation_names(service) for service in services}
    found: set[tuple[str, str]] = set()
    for tree in trees:
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Attribute) and _is_client(node.value):
                names.append(node.attr)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_paginator"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.append(str(node.args[0].value))
            for name in names:
                found.update((service, ops[name]) for service, ops in methods.items() if name in ops)
            if isinstance(node, ast.Name | ast.Attribute):
                helper = node.id if isinstance(node, ast.Name) else node.attr
                if helper in INDIRECT_CALLS:
                    found.add(INDIRECT_CALLS[helper])
    return found


def _is_client(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id.endswith("client")
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("client")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"

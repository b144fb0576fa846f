"""A second AWS account on the local stack: the ``partner_events`` demo stream's log group.

The local AWS keeps every account's resources apart and acts in the account of the credentials
it is called with; credentials from AssumeRole into a role of another account act in that
account. So the demo writes ``/cwl-demo/partner`` (and its ``IncomingLogEvents``) as account
``DEMO_PARTNER_ACCOUNT``, through the same role the stream reads with (``source.account``).
IAM is not evaluated locally: the role needs no creation, and its trust policy (with an external
id, ``deploy/aws/source-account.yaml``) matters only on AWS.
"""

from __future__ import annotations

from typing import Any

import boto3

DEMO_PARTNER_ACCOUNT = "210987654321"
DEMO_PARTNER_ROLE = f"arn:aws:iam::{DEMO_PARTNER_ACCOUNT}:role/cwl-demo-source"
DEMO_PARTNER_GROUP = "/cwl-demo/partner"


def partner_clients(endpoint_url: str, region: str) -> tuple[Any, Any]:
    """CloudWatch Logs and CloudWatch clients acting in the partner account (AssumeRole)."""
    sts = boto3.client("sts", endpoint_url=endpoint_url, region_name=region)
    credentials = sts.assume_role(RoleArn=DEMO_PARTNER_ROLE, RoleSessionName="cwl-demo-producer")[
        "Credentials"
    ]
    keys = {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
    logs = boto3.client("logs", endpoint_url=endpoint_url, region_name=region, **keys)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint_url, region_name=region, **keys)
    return logs, cloudwatch

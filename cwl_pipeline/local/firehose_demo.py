"""The local Firehose path: log group → subscription filter → Firehose → S3 bucket, in local AWS.

Local AWS delivers one gzip object per PutLogEvents call, at
``<prefix>YYYY/MM/DD/HH/<delivery stream>-1-<time>-<uuid>``, which is the layout (and the
default record format) a real delivery stream writes. IAM roles are not checked locally, so
the role ARNs are placeholders; on AWS they must let CloudWatch Logs put records into the
delivery stream and the delivery stream write into the bucket.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

LOCAL_ACCOUNT = "123456789012"
_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/cwl-demo-delivery"


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def ensure_firehose_delivery(
    *,
    logs: Any,
    firehose: Any,
    s3: Any,
    log_group: str,
    delivery_stream: str,
    bucket: str,
    prefix: str,
    buffer_seconds: int = 60,
) -> str:
    """Make ``log_group`` deliver through ``delivery_stream`` into ``s3://bucket/prefix``.

    Creates what is missing (log group, bucket, delivery stream, subscription filter) and
    returns the delivery stream's ARN. ``buffer_seconds`` is the delivery stream's buffering
    interval (0 to 900; 0: Firehose delivers within seconds). Local AWS writes each
    PutLogEvents call's object at once, whatever the interval.
    """
    try:
        logs.create_log_group(logGroupName=log_group)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    ensure_bucket(s3, bucket)
    try:
        arn = firehose.describe_delivery_stream(DeliveryStreamName=delivery_stream)[
            "DeliveryStreamDescription"
        ]["DeliveryStreamARN"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        arn = firehose.create_delivery_stream(
            DeliveryStreamName=delivery_stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": _ROLE,
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": prefix,
                "BufferingHints": {"IntervalInSeconds": buffer_seconds, "SizeInMBs": 5},
                "CompressionFormat": "UNCOMPRESSED",  # the envelopes arrive gzipped already
            },
        )["DeliveryStreamARN"]
    logs.put_subscription_filter(
        logGroupName=log_group,
        filterName=f"{delivery_stream}-all",
        filterPattern="",
        destinationArn=arn,
        roleArn=_ROLE,
    )
    return arn


DEMO_WORKER_GROUP = "/cwl-demo/worker"
DEMO_DELIVERY_STREAM = "cwl-demo-worker"
DEMO_FIREHOSE_BUCKET = "cwl-demo-firehose"
DEMO_FIREHOSE_PREFIX = "worker/"
DEMO_EXPORT_BUCKET = "cwl-demo-exports"
DEMO_OBJECT_QUEUE = "cwl-demo-worker-objects"


def ensure_object_notifications(*, sqs: Any, s3: Any, bucket: str, prefix: str, queue: str) -> str:
    """Send ``bucket``'s ObjectCreated events under ``prefix`` to the SQS queue ``queue``
    (created if missing); returns the queue's URL. Local AWS checks no queue policy; on AWS
    the queue must allow ``s3.amazonaws.com`` to send (deploy/aws/cloudformation.yaml)."""
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )
    return url


def ensure_worker_demo(endpoint_url: str, region: str) -> None:
    """The demo's second path in local AWS: ``/cwl-demo/worker`` delivered through Firehose to
    ``s3://cwl-demo-firehose/worker/`` (its new objects notified to the SQS queue
    ``cwl-demo-worker-objects``), and the bucket its history is exported to."""
    import boto3

    clients = {
        name: boto3.client(name, endpoint_url=endpoint_url, region_name=region)
        for name in ("logs", "firehose", "s3", "sqs")
    }
    ensure_firehose_delivery(
        logs=clients["logs"],
        firehose=clients["firehose"],
        s3=clients["s3"],
        log_group=DEMO_WORKER_GROUP,
        delivery_stream=DEMO_DELIVERY_STREAM,
        bucket=DEMO_FIREHOSE_BUCKET,
        prefix=DEMO_FIREHOSE_PREFIX,
    )
    ensure_object_notifications(
        sqs=clients["sqs"],
        s3=clients["s3"],
        bucket=DEMO_FIREHOSE_BUCKET,
        prefix=DEMO_FIREHOSE_PREFIX,
        queue=DEMO_OBJECT_QUEUE,
    )
    ensure_bucket(clients["s3"], DEMO_EXPORT_BUCKET)

"""Receive and delete the messages of an SQS queue (S3 event notifications of new objects).

Receiving never blocks a sensor tick for long: each ReceiveMessage waits at most a second, and a
tick takes at most ``max_batches`` batches of 10. A failure raises :class:`SourceError` naming
the queue; a message that could not be deleted comes back after its visibility timeout, which
is harmless (the sensor's listing is the source of truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cwl_pipeline.adapters.errors import SourceError, attempts_note

_BATCH = 10  # the most ReceiveMessage and DeleteMessageBatch take


@dataclass(frozen=True)
class QueueMessage:
    """One message received: its id, the handle that deletes it, and its body."""

    message_id: str
    receipt_handle: str
    body: str


class NotificationQueue:
    """One SQS queue of S3 event notifications."""

    def __init__(self, client: Any, queue_url: str) -> None:
        """``client`` is a boto3 ``sqs`` client."""
        self._client = client
        self.queue_url = queue_url

    def receive(self, max_batches: int = 10, wait_seconds: int = 1) -> list[QueueMessage]:
        """Up to 10 messages per batch, ``max_batches`` batches, stopping at the first short batch."""
        messages: list[QueueMessage] = []
        for _ in range(max_batches):
            response = self._call(
                "ReceiveMessage",
                self._client.receive_message,
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=_BATCH,
                WaitTimeSeconds=wait_seconds,
            )
            batch = response.get("Messages", [])
            messages += [QueueMessage(m["MessageId"], m["ReceiptHandle"], m.get("Body", "")) for m in batch]
            if len(batch) < _BATCH:
                break
            wait_seconds = 0  # more are there: do not wait for the next batches
        return messages

    def delete(self, messages: list[QueueMessage]) -> int:
        """Delete ``messages``; returns how many SQS did not delete (they come back later)."""
        failed = 0
        for start in range(0, len(messages), _BATCH):
            batch = messages[start : start + _BATCH]
            response = self._call(
                "DeleteMessageBatch",
                self._client.delete_message_batch,
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(batch)],
            )
            failed += len(response.get("Failed", []))
        return failed

    def _call(self, name: str, method: Any, **request: Any) -> dict[str, Any]:
        try:
            return method(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                raise SourceError(f"SQS queue {self.queue_url} does not exist") from None
            if code in ("AccessDenied", "AccessDeniedException"):
                raise SourceError(
                    f"SQS denied {name} on {self.queue_url}: check sqs:ReceiveMessage / sqs:DeleteMessage"
                ) from None
            raise SourceError(
                f"{name} on {self.queue_url} failed{attempts_note(exc)}: {code}: {error.get('Message')}"
            ) from None
        except BotoCoreError as exc:
            raise SourceError(f"{name} on {self.queue_url} failed: {exc}") from None

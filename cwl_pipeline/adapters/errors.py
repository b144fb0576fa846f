"""Errors raised by the adapters, each naming the resource it concerns."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source (log group, bucket, endpoint) cannot be read; the message names it."""


class DestinationError(RuntimeError):
    """BigQuery cannot be written (missing dataset, permission, endpoint); the message names it."""


def attempts_note(exc: BaseException) -> str:
    """`` after N attempts`` when a botocore error was retried before it was raised, else ``""``."""
    response = getattr(exc, "response", None) or {}
    retries = response.get("ResponseMetadata", {}).get("RetryAttempts") or 0
    return f" after {retries + 1} attempts" if retries else ""

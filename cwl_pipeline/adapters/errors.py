"""Errors raised by the adapters, each naming the resource it concerns."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source (log group, bucket, endpoint) cannot be read; the message names it."""


class DestinationError(RuntimeError):
    """BigQuery cannot be written (missing dataset, permission, endpoint); the message names it."""

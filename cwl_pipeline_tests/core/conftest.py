"""Builders of CloudWatch Logs payloads in the layouts AWS delivers them.

Exposed as the ``aws`` fixture so tests in this folder share them without imports.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

GROUP = "/app/web"
STREAM = "web-1"
# 2026-11-20T10:00:00.000Z
T0 = 1_795_168_800_000


class AwsLayouts:
    """Payload builders: envelopes, Lambda events, Firehose objects, export files."""

    group = GROUP
    stream = STREAM
    t0 = T0

    @staticmethod
    def event_id(n: int) -> str:
        """A 56-digit id like CloudWatch's."""
        return str(37_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000 + n)

    @classmethod
    def log_events(cls, messages: list[str], start: int = 0) -> list[dict[str, Any]]:
        return [
            {"id": cls.event_id(start + i), "timestamp": T0 + start + i, "message": m}
            for i, m in enumerate(messages)
        ]

    @staticmethod
    def envelope(
        log_events: list[dict[str, Any]],
        group: str = GROUP,
        stream: str = STREAM,
        message_type: str = "DATA_MESSAGE",
    ) -> dict[str, Any]:
        if message_type == "CONTROL_MESSAGE":
            return {
                "messageType": "CONTROL_MESSAGE",
                "owner": "CloudwatchLogs",
                "logGroup": "",
                "logStream": "",
                "subscriptionFilters": [],
                "logEvents": [
                    {
                        "id": "",
                        "timestamp": T0,
                        "message": "CWL CONTROL MESSAGE: Checking health of destination",
                    }
                ],
            }
        return {
            "messageType": message_type,
            "owner": "123456789012",
            "logGroup": group,
            "logStream": stream,
            "subscriptionFilters": ["to-pipeline"],
            "logEvents": log_events,
        }

    @staticmethod
    def compact(doc: Any) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def gz(cls, data: bytes | dict[str, Any]) -> bytes:
        return gzip.compress(data if isinstance(data, bytes) else cls.compact(data))

    @classmethod
    def lambda_event(cls, envelope: dict[str, Any]) -> bytes:
        data = base64.b64encode(cls.gz(envelope)).decode()
        return cls.compact({"awslogs": {"data": data}})

    @classmethod
    def firehose_object(cls, envelopes: list[dict[str, Any]]) -> bytes:
        """Default Firehose layout: one gzip member per envelope, no delimiter."""
        return b"".join(cls.gz(e) for e in envelopes)

    @staticmethod
    def export_file(text: str) -> bytes:
        return gzip.compress(text.encode())

    @staticmethod
    def export_key(stream: str, task: str = "0f3c7a52-4b9e-4d1a-9c55-2e8f6b1d7a90") -> str:
        return f"exports/{task}/{stream}/000000.gz"


@pytest.fixture(scope="session")
def aws() -> type[AwsLayouts]:
    """The payload builders."""
    return AwsLayouts

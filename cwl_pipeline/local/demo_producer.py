"""A demo producer: realistic seed-schema JSON logs, and a few malformed lines, into local CloudWatch.

It imitates a small web application: sessions that view pages, click, search and buy, with
nested ``params``. About 2 % of lines are malformed on purpose (plain text, stack traces,
wrong types) so the rejects table has something to show.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

ACTIONS = ("view", "click", "search", "add_to_cart", "checkout", "logout")
PAGES = ("/", "/products", "/products/42", "/cart", "/search", "/account")
MALFORMED: tuple[Any, ...] = (
    "GET /healthz 200 0.4ms",
    "Traceback (most recent call last):\n  File \"app.py\", line 10, in handle\nKeyError: 'user'",
    {"session_id": "abc", "action": "click"},
    {"session_id": 12.5, "action": "view"},
    {"session_id": 7, "action": {"nested": True}},
    '{"session_id": 3, "action": "view"',
)


def demo_message(rng: random.Random, session_ids: list[int]) -> str:
    """One log line; mostly valid seed-schema JSON."""
    if rng.random() < 0.02:
        bad = rng.choice(MALFORMED)
        return bad if isinstance(bad, str) else json.dumps(bad)
    if rng.random() < 0.05 or not session_ids:
        session_ids.append(rng.randrange(1, 10**9))
        del session_ids[:-50]
    action = rng.choice(ACTIONS)
    params: dict[str, Any] = {"page": rng.choice(PAGES), "duration_ms": rng.randint(3, 2500)}
    if action == "search":
        params["query"] = rng.choice(["shoes", "red hat", "gift card", "läufer"])
    if action in ("add_to_cart", "checkout"):
        params["items"] = [{"sku": f"SKU-{rng.randint(1, 99)}", "qty": rng.randint(1, 3)}]
    message: dict[str, Any] = {"session_id": rng.choice(session_ids), "action": action, "params": params}
    if rng.random() < 0.01:
        message["session_id"] = str(message["session_id"])  # digits as a string: accepted
    return json.dumps(message, ensure_ascii=False)


class DemoProducer(threading.Thread):
    """Writes a burst of events to each stream of ``log_group`` every ``interval`` seconds.

    ``lines``, when given, makes one burst per stream: it is called once per stream with a
    random generator and returns a factory of ordered line sequences (e.g. one Lambda
    invocation each); otherwise bursts are seed-schema application events.
    """

    def __init__(
        self,
        logs_client: Any,
        log_group: str,
        streams: tuple[str, ...] = ("web-1", "web-2"),
        interval: float = 2.0,
        seed: int | None = None,
        metrics_client: Any | None = None,
        lines: Callable[[random.Random], Callable[[], list[str]]] | None = None,
    ) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.client = logs_client
        self.log_group = log_group
        self.streams = streams
        self.interval = interval
        self.rng = random.Random(seed)
        self.sessions: list[int] = []
        self.sent = 0
        self.metrics = metrics_client
        self.line_makers = {s: lines(self.rng) for s in streams} if lines is not None else None
        self._stopping = threading.Event()

    def ensure_log_group(self) -> None:
        """Create the log group and streams if they do not exist."""
        try:
            self.client.create_log_group(logGroupName=self.log_group)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        for stream in self.streams:
            try:
                self.client.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise

    def produce_once(self) -> int:
        """Send one burst; returns the number of events sent."""
        sent = 0
        for stream in self.streams:
            now_ms = int(time.time() * 1000)
            if self.line_makers is not None:
                messages = self.line_makers[stream]()
                count = len(messages)
                # One invocation's lines, a millisecond apart, in order.
                events = [{"timestamp": now_ms - count + i, "message": m} for i, m in enumerate(messages)]
            else:
                count = self.rng.randint(1, 8)
                events = [
                    {
                        "timestamp": now_ms - self.rng.randint(0, 1500),
                        "message": demo_message(self.rng, self.sessions),
                    }
                    for _ in range(count)
                ]
                events.sort(key=lambda e: e["timestamp"])
            self.client.put_log_events(logGroupName=self.log_group, logStreamName=stream, logEvents=events)
            sent += count
        self.sent += sent
        if self.metrics is not None:
            self._count_incoming(sent)
        return sent

    def _count_incoming(self, count: int) -> None:
        """Publish what CloudWatch would: ``IncomingLogEvents`` of the group (AWS/Logs).

        Real CloudWatch computes this metric itself; the local AWS does not, so the demo
        producer stands in for it and the reconciliation check has CloudWatch's count to
        compare with.
        """
        self.metrics.put_metric_data(
            Namespace="AWS/Logs",
            MetricData=[
                {
                    "MetricName": "IncomingLogEvents",
                    "Dimensions": [{"Name": "LogGroupName", "Value": self.log_group}],
                    "Timestamp": time.time(),
                    "Value": float(count),
                    "Unit": "None",
                }
            ],
        )

    def run(self) -> None:
        """Produce until :meth:`stop`; a failed burst is retried on the next tick."""
        self.ensure_log_group()
        while not self._stopping.is_set():
            try:
                self.produce_once()
            except Exception as exc:  # keep the demo running through a transient error
                print(f"demo producer: {exc}", flush=True)
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        """Ask the thread to finish after the current burst."""
        self._stopping.set()

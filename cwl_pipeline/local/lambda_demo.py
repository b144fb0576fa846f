"""Lambda-style demo log lines: what a small Python function's log group holds.

Every invocation writes Lambda's platform lines around the function's own output, as the
Lambda text log format does: ``INIT_START`` on a cold start, ``START``, application lines
(``print`` output, the Python runtime's ``[INFO]``/``[ERROR]`` lines with a multi-line
traceback, AWS Lambda Powertools JSON lines), the ``Task timed out`` message now and then,
``END`` and ``REPORT`` (with ``Init Duration`` on a cold start and ``Status: timeout`` after
a timeout).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime

FUNCTION = "cwl-demo"
MEMORY_MB = 128
TIMEOUT_S = 3
RUNTIME = "python:3.12.v38"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _powertools_time(ms: int) -> str:
    # Powertools' default: "%Y-%m-%d %H:%M:%S,%f%z" with milliseconds, e.g. 2021-05-03 11:47:12,494+0000
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S,") + f"{stamp.microsecond // 1000:03d}+0000"


class LambdaInvocations:
    """Generates the log lines of invocations of one demo function instance (log stream)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.cold = True

    def __call__(self) -> list[str]:
        """The lines of one invocation, in order."""
        rng = self.rng
        now = int(time.time() * 1000)
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lines: list[str] = []
        cold, self.cold = self.cold, rng.random() < 0.05
        if cold:
            lines.append(
                f"INIT_START Runtime Version: {RUNTIME}\tRuntime Version ARN: "
                f"arn:aws:lambda:us-east-1::runtime:{rng.getrandbits(256):064x}\n"
            )
        lines.append(f"START RequestId: {request_id} Version: $LATEST\n")
        order = rng.randrange(1000, 99999)
        lines.append(f"processing order {order}\n")  # print()
        lines.append(f"[INFO]\t{_iso(now)}\t{request_id}\tFound credentials in environment variables.\n")
        timestamp = _powertools_time(now) if rng.random() > 0.01 else "not a time"
        lines.append(
            json.dumps(
                {
                    "level": "INFO",
                    "location": "handler:42",
                    "message": {"order": order, "items": rng.randint(1, 5)},
                    "timestamp": timestamp,
                    "service": FUNCTION,
                    "cold_start": cold,
                    "function_name": FUNCTION,
                    "function_memory_size": str(MEMORY_MB),
                    "function_request_id": request_id,
                }
            )
        )
        timed_out = rng.random() < 0.03
        if not timed_out and rng.random() < 0.1:
            lines.append(
                f"[ERROR]\t{_iso(now)}\t{request_id}\tpayment declined for order {order}\n"
                "Traceback (most recent call last):\n"
                '  File "/var/task/app.py", line 51, in charge\n'
                "    raise PaymentDeclined(order)\n"
                f"app.PaymentDeclined: {order}\n"
            )
        duration = TIMEOUT_S * 1000.0 if timed_out else round(rng.uniform(1.5, 900), 2)
        if timed_out:
            lines.append(
                f"{_iso(now + TIMEOUT_S * 1000)} {request_id} Task timed out after {TIMEOUT_S}.00 seconds\n"
            )
        lines.append(f"END RequestId: {request_id}\n")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {MEMORY_MB} MB\t"
            f"Max Memory Used: {rng.randint(40, 90)} MB\t"
        )
        if cold:
            report += f"Init Duration: {rng.uniform(120, 400):.2f} ms\t"
        if timed_out:
            report += "Status: timeout"
        lines.append(report + "\n")
        return lines

"""Checking what the pipeline made of corpus cases against what the corpus expects."""

from __future__ import annotations

import orjson

from cwl_pipeline.core.normalize import MAX_MESSAGE_BYTES
from cwl_pipeline_tests.hostile.corpus import ROW, MessageCase

# Formats that carry messages as bytes, not as JSON strings: text that UTF-8 cannot hold
# (lone surrogates) reaches them as the bytes Python would write for it.
BYTE_CARRIERS = ("export", "messages")


def raw_text(message: str | bytes, carrier: str = "events") -> str:
    """What the rejects table keeps of a message (invalid UTF-8 escaped with backslashes)."""
    if isinstance(message, str) and carrier in BYTE_CARRIERS:
        message = message.encode("utf-8", "surrogatepass")
    if isinstance(message, bytes):
        return message.decode("utf-8", "backslashreplace")
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def expected_rows(cases: list[MessageCase]) -> list[tuple[int, str | None, str | None]]:
    """``(session_id, action, params JSON)`` of the cases that must become rows, in order."""
    return [c.row for c in cases if c.expect == ROW]  # type: ignore[misc]


def expected_rejects(cases: list[MessageCase], carrier: str = "events") -> list[tuple[str, str]]:
    """``(reason, raw_message)`` of the cases that must be rejected, in order."""
    out = []
    for case in cases:
        if case.expect == ROW:
            continue
        raw = raw_text(case.message, carrier)
        if case.expect == "too_large":
            raw = raw.encode()[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
        out.append((case.expect, raw))
    return out


def canonical_json(text: str | None) -> str | None:
    """JSON text in one canonical spelling, so BigQuery's and orjson's output compare."""
    return None if text is None else orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()


def describe_mismatch(got: list, want: list) -> str:
    """The first differing position of two lists, shortened for a readable failure."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"at {i}: got {str(g)[:300]} want {str(w)[:300]}"
    return f"lengths {len(got)} != {len(want)}"

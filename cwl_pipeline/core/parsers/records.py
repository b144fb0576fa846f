"""What every parser is: a function from a message to a record, or a :class:`ParseFailure`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ParseFailure(Exception):
    """A message the parser cannot read: it becomes a reject with ``reason`` and ``detail``."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


RecordParser = Callable[[str], dict[str, Any]]
"""Turns one message (text) into a record; raises :class:`ParseFailure` when it cannot."""

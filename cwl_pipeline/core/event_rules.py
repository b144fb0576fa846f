"""A stream's event rules: which events are kept (filters) and what is masked (redaction).

Applied to the events as read, before anything else sees them (normalization, the raw table,
the rejects, figures in run metadata), on every source path:

1. **filter**: ``pattern`` (a CloudWatch filter pattern, :mod:`cwl_pipeline.core.filter_patterns`,
   also passed to FilterLogEvents by the polling path), ``include`` (regexes: an event is kept
   only if one of them matches its message) and ``exclude`` (regexes: an event is dropped if
   one matches). Filters see the message as read, before redaction. Filtered events are
   counted (``events_filtered``), never stored;
2. **redaction**, in the order declared:

   * ``drop_field``: removes a (dotted) field from a message that is a JSON object;
   * ``mask``: replaces every match of a regex with a fixed text;
   * ``hash``: replaces every match with ``sha256:`` + the first 16 hex digits of
     HMAC-SHA256(salt, value), so equal values stay joinable without being readable; the salt
     comes from an environment variable named in the config.

   A regex with a group named ``value`` replaces only that group (``email=(?P<value>\\S+)``).
   Events whose message changed are counted (``events_redacted``).

Messages that are not valid UTF-8 (bytes) are matched through a lossless ``surrogateescape``
decoding, so the invalid bytes survive for the ``invalid_utf8`` reject and matches are masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import orjson

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.filter_patterns import Matcher, compile_filter_pattern

MASK = "<redacted>"
HASH_PREFIX = "sha256:"
HASH_HEX_DIGITS = 16


@dataclass(frozen=True)
class MessageFilter:
    """Which events a stream keeps (see the module docs)."""

    pattern: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _matcher: Matcher = field(init=False, repr=False, compare=False)
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", compile_filter_pattern(self.pattern))
        object.__setattr__(self, "_include", tuple(re.compile(r) for r in self.include))
        object.__setattr__(self, "_exclude", tuple(re.compile(r) for r in self.exclude))

    @property
    def active(self) -> bool:
        """Whether the filter can drop anything."""
        return bool(self.pattern.strip() or self.include or self.exclude)

    def keeps(self, message: str) -> bool:
        """Whether an event with ``message`` is kept."""
        if not self._matcher(message):
            return False
        if self._include and not any(r.search(message) for r in self._include):
            return False
        return not any(r.search(message) for r in self._exclude)


RedactionKind = Literal["mask", "hash", "drop_field"]


@dataclass(frozen=True)
class Redaction:
    """One redaction rule (see the module docs). ``salt`` is the resolved secret of ``hash``."""

    kind: RedactionKind
    pattern: str = ""
    path: str = ""  # drop_field: the dotted field
    replacement: str = MASK
    salt: bytes = field(default=b"", repr=False)
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", None)
        if self.kind == "drop_field":
            if not self.path:
                raise ValueError("drop_field needs a field path")
            return
        if not self.pattern:
            raise ValueError(f"{self.kind} needs a pattern")
        if self.kind == "hash" and not self.salt:
            raise ValueError("hash needs a non-empty salt")
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def apply(self, message: str) -> str:
        """``message`` with this rule applied."""
        if self.kind == "drop_field":
            return _drop_field(message, self.path.split("."))
        assert self._regex is not None
        return self._regex.sub(self._substitute, message)

    def _substitute(self, match: re.Match[str]) -> str:
        group = "value" if "value" in match.re.groupindex and match.group("value") is not None else 0
        secret = match.group(group)
        if self.kind == "hash":
            digest = hmac.new(self.salt, secret.encode("utf-8", "surrogateescape"), hashlib.sha256)
            hidden = HASH_PREFIX + digest.hexdigest()[:HASH_HEX_DIGITS]
        else:
            hidden = self.replacement
        if group == 0:
            return hidden
        whole, start = match.group(0), match.start(0)
        return whole[: match.start(group) - start] + hidden + whole[match.end(group) - start :]


def _drop_field(message: str, path: list[str]) -> str:
    if not message.lstrip().startswith("{"):
        return message
    try:
        document = orjson.loads(message)
    except orjson.JSONDecodeError:
        return message
    if not isinstance(document, dict):
        return message
    node = document
    for step in path[:-1]:
        node = node.get(step)
        if not isinstance(node, dict):
            return message
    if path[-1] not in node:
        return message
    del node[path[-1]]
    return orjson.dumps(document).decode()


@dataclass
class RuleTally:
    """What a stream's rules did to one read."""

    events_filtered: int = 0
    events_redacted: int = 0

    def facts(self) -> dict[str, int]:
        """Counters for run metadata (only those of rules that exist, zeros included)."""
        return {"events_filtered": self.events_filtered, "events_redacted": self.events_redacted}


@dataclass(frozen=True)
class EventRules:
    """A stream's filter and redaction rules."""

    filter: MessageFilter = field(default_factory=MessageFilter)
    redactions: tuple[Redaction, ...] = ()

    @property
    def active(self) -> bool:
        """Whether the rules change anything."""
        return self.filter.active or bool(self.redactions)

    def apply(self, events: Iterable[LogEvent], tally: RuleTally) -> Iterator[LogEvent]:
        """``events`` less the filtered ones, redacted, counted in ``tally`` (lazily)."""
        if not self.active:
            yield from events
            return
        for event in events:
            raw = event.message
            text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
            if self.filter.active and not self.filter.keeps(text):
                tally.events_filtered += 1
                continue
            redacted = text
            for rule in self.redactions:
                redacted = rule.apply(redacted)
            if redacted != text:
                tally.events_redacted += 1
                message: str | bytes = (
                    redacted.encode("utf-8", "surrogateescape") if isinstance(raw, bytes) else redacted
                )
                event = event._replace(message=message)
            yield event


NO_RULES = EventRules()

"""A stream's event rules: which events are kept (filters) and what is masked (redaction).

Applied to the events as read, before anything else sees them (normalization, the raw table,
the rejects, figures in run metadata), on every source path:

1. **filter**: ``pattern`` (a CloudWatch filter pattern, :mod:`cwl_pipeline.core.filter_patterns`,
   also passed to FilterLogEvents by the polling path), ``include`` (regexes: an event is kept
   only if one of them matches its message) and ``exclude`` (regexes: an event is dropped if
   one matches). Filters see the message as read, before redaction. Filtered events are
   counted (``events_filtered``), never stored;
2. **redaction**, in the order declared:

   * ``drop_field``: removes a (dotted) field from a message that is a JSON object. A step
     may go through a string whose text is a JSON object (``message.password`` reaches the
     ``password`` of ``{"message": "{\\"password\\": \\"…\\"}"}``, as Lambda's JSON log
     format writes an application's own JSON); that string is re-encoded without the field.
     Arrays are not stepped into;
   * ``mask``: replaces every match of a regex with a fixed text;
   * ``hash``: replaces every match with ``sha256:`` + the first 16 hex digits of
     HMAC-SHA256(salt, value), so equal values stay joinable without being readable; the salt
     comes from an environment variable named in the config.

   A regex with a group named ``value`` replaces only that group (``email=(?P<value>\\S+)``).
   ``mask`` and ``hash`` search the message as written **and**, when it is a JSON object or
   array, every string in it decoded (keys and values; ``https:\\/\\/…`` is ``https://…``,
   ``\\u0040`` is ``@``), stepping into strings whose text is a JSON object or array
   (:mod:`cwl_pipeline.core.embedded_json`). A document that changed is re-encoded as compact
   JSON, so a value's decoded form survives nowhere. A match that lies inside the rule's own
   output (its replacement text, a ``sha256:`` token) is left alone: a value is never masked
   or hashed twice, and applying the rules again to stored messages (re-deriving from the raw
   table) changes nothing.
   Events whose message changed are counted (``events_redacted``).

Messages that are not valid UTF-8 (bytes) are matched through a lossless ``surrogateescape``
decoding, so the invalid bytes survive for the ``invalid_utf8`` reject and matches are masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from cwl_pipeline.core.embedded_json import drop_path, rewrite_strings
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
HASH_TOKEN = re.compile(f"{HASH_PREFIX}[0-9a-f]{{{HASH_HEX_DIGITS}}}")
"""What a hash rule writes."""
# Anchors and lookarounds: what can make a regex match a string alone but not the same string
# inside a longer text. Searched in the pattern's source, so it may also flag a pattern that
# has none (``[^a]``): that only costs the shortcut below.
_CONTEXTUAL = re.compile(r"\^|\$|\\[AZ]|\(\?<?[=!]")


@dataclass(frozen=True)
class Redaction:
    """One redaction rule (see the module docs). ``salt`` is the resolved secret of ``hash``."""

    kind: RedactionKind
    pattern: str = ""
    path: str = ""  # drop_field: the dotted field
    replacement: str = MASK
    salt: bytes = field(default=b"", repr=False)
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _output: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _contextual: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", None)
        object.__setattr__(self, "_output", None)
        object.__setattr__(self, "_contextual", bool(_CONTEXTUAL.search(self.pattern)))
        if self.kind == "drop_field":
            if not self.path:
                raise ValueError("drop_field needs a field path")
            return
        if not self.pattern:
            raise ValueError(f"{self.kind} needs a pattern")
        if self.kind == "hash" and not self.salt:
            raise ValueError("hash needs a non-empty salt")
        object.__setattr__(self, "_regex", re.compile(self.pattern))
        output = HASH_TOKEN if self.kind == "hash" else re.compile(re.escape(self.replacement))
        object.__setattr__(self, "_output", output if output.pattern else None)

    def apply(self, message: str) -> str:
        """``message`` with this rule applied."""
        if self.kind == "drop_field":
            # Without a backslash, every key is spelled in the text as it decodes.
            if "\\" not in message and self.path.rsplit(".", 1)[-1] not in message:
                return message
            return drop_path(message, self.path.split("."), self._whole)
        return _apply_regex_rules(message, (self,))

    def _sub(self, text: str) -> str:
        """Every match in ``text`` replaced, except those inside this rule's own output."""
        assert self._regex is not None
        if self._regex.search(text) is None:
            return text
        guarded = [m.span() for m in self._output.finditer(text)] if self._output is not None else []
        if not guarded:
            return self._regex.sub(self._substitute, text)

        def substitute(match: re.Match[str]) -> str:
            group = _target_group(match)
            start, end = match.span(group)
            if any(low <= start and end <= high for low, high in guarded):
                return match.group(0)
            return self._substitute(match)

        return self._regex.sub(substitute, text)

    def _whole(self, text: str) -> str:
        """What replaces a whole text whose decoded JSON changed but cannot be re-encoded."""
        return self._hide(text) if self.kind == "hash" else self.replacement if self.kind == "mask" else MASK

    def _hide(self, secret: str) -> str:
        if self.kind == "hash":
            digest = hmac.new(self.salt, secret.encode("utf-8", "surrogateescape"), hashlib.sha256)
            return HASH_PREFIX + digest.hexdigest()[:HASH_HEX_DIGITS]
        return self.replacement

    def _substitute(self, match: re.Match[str]) -> str:
        group = _target_group(match)
        hidden = self._hide(match.group(group))
        if group == 0:
            return hidden
        whole, start = match.group(0), match.start(0)
        return whole[: match.start(group) - start] + hidden + whole[match.end(group) - start :]


def _apply_regex_rules(message: str, rules: Sequence[Redaction]) -> str:
    """``message`` with mask and hash ``rules`` applied in order, to the text as written and to
    every decoded string of its JSON (one walk for them all)."""
    # Without a backslash, every string of a JSON message is spelled in the text as it decodes,
    # so a regex without anchors or lookarounds finds in the strings what it found in the text.
    if "\\" not in message and not any(rule._contextual for rule in rules):
        for rule in rules:
            message = rule._sub(message)
        return message

    def rewrite(text: str) -> str:
        for rule in rules:
            text = rule._sub(text)
        return text

    return rewrite_strings(message, rewrite, rules[0]._whole)


def _target_group(match: re.Match[str]) -> int | str:
    """The group a match replaces: ``value`` when the regex has one and it took part, else all."""
    return "value" if "value" in match.re.groupindex and match.group("value") is not None else 0


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
    _steps: tuple[Callable[[str], str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Consecutive mask and hash rules share one walk through a message's JSON.
        steps: list[Callable[[str], str]] = []
        group: list[Redaction] = []
        for rule in (*self.redactions, None):
            if rule is not None and rule.kind != "drop_field":
                group.append(rule)
                continue
            if group:
                steps.append(partial(_apply_regex_rules, rules=tuple(group)))
                group = []
            if rule is not None:
                steps.append(rule.apply)
        object.__setattr__(self, "_steps", tuple(steps))

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
            for step in self._steps:
                redacted = step(redacted)
            if redacted != text:
                tally.events_redacted += 1
                message: str | bytes = (
                    redacted.encode("utf-8", "surrogateescape") if isinstance(raw, bytes) else redacted
                )
                event = event._replace(message=message)
            yield event


NO_RULES = EventRules()

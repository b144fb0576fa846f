"""Where a Firehose stream writes its objects: a key template, parsed and matched.

Firehose names an object ``<evaluated prefix><suffix>``; without a custom prefix the prefix is
the arrival hour ``YYYY/MM/dd/HH/`` (UTC). A custom prefix may hold expressions
(https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html):

* ``!{timestamp:<Java DateTimeFormatter pattern>}``: the approximate arrival time of the
  oldest record of the object (UTC); every occurrence is the same instant;
* ``!{firehose:error-output-type}`` (error output prefix only): ``processing-failed``,
  ``format-conversion-failed``, ... ; ``!{firehose:random-string}``: 11 random characters;
* ``!{partitionKeyFromQuery:<key>}`` / ``!{partitionKeyFromLambda:<key>}``: dynamic
  partitioning keys.

A :class:`KeyLayout` matches a key against its template and gives the key's **period**: the
time the timestamp expressions name, at their resolution (an hour with ``HH``, else a day).
A key the template does not match is *outside the layout*: the sensor reports it on a failing
asset check rather than skipping it silently.

This module is pure (no I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_TIME_TEMPLATE = "!{timestamp:yyyy/MM/dd/HH}/"
"""Firehose's own prefix when none is configured (``YYYY/MM/dd/HH/``)."""

_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_NAMESPACES = ("timestamp", "firehose", "partitionKeyFromQuery", "partitionKeyFromLambda")
_FIREHOSE_VALUES = ("error-output-type", "random-string")
# Java DateTimeFormatter letters understood in a timestamp pattern, and how many digits each
# prints; quoted text ('...') and other non-letters are literal.
_FIELDS = {"yyyy": ("year", 4), "uuuu": ("year", 4), "MM": ("month", 2), "dd": ("day", 2), "HH": ("hour", 2)}
_FIELD_RE = re.compile(r"yyyy|uuuu|MM|dd|HH|'[^']*'|[A-Za-z]+|[^A-Za-z']+")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class KeyTemplateError(ValueError):
    """A key template that cannot be used (unknown expression, no hour or day in it)."""


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Time:
    parts: tuple[tuple[str, str], ...]  # ("field", name) or ("text", literal)


@dataclass(frozen=True)
class _Dynamic:
    name: str  # a partition key, "error-output-type" or "random-string"


@dataclass(frozen=True)
class KeyLayout:
    """A parsed key template (see the module docs)."""

    template: str
    segments: tuple[_Literal | _Time | _Dynamic, ...]
    pattern: re.Pattern[str]
    resolution: timedelta

    @classmethod
    def parse(cls, template: str) -> KeyLayout:
        """Parse ``template``; one without a timestamp expression gets ``YYYY/MM/dd/HH/`` appended."""
        if "!{timestamp:" not in template:
            template = template + DEFAULT_TIME_TEMPLATE
        segments: list[_Literal | _Time | _Dynamic] = []
        cursor = 0
        for match in _EXPRESSION.finditer(template):
            if match.start() > cursor:
                segments.append(_Literal(template[cursor : match.start()]))
            namespace, value = match.groups()
            if namespace not in _NAMESPACES:
                raise KeyTemplateError(f"unknown namespace {namespace!r} in {match.group(0)}")
            if namespace == "timestamp":
                segments.append(_Time(_time_parts(value)))
            elif namespace == "firehose":
                if value not in _FIREHOSE_VALUES:
                    raise KeyTemplateError(f"!{{firehose:{value}}}: use one of {list(_FIREHOSE_VALUES)}")
                segments.append(_Dynamic(value))
            else:
                if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
                    raise KeyTemplateError(f"{match.group(0)}: a partition key name is letters, digits, _.-")
                segments.append(_Dynamic(value))
            cursor = match.end()
        if "!{" in template[cursor:]:
            raise KeyTemplateError(f"unclosed expression in {template!r}")
        if cursor < len(template):
            segments.append(_Literal(template[cursor:]))
        return cls._of(template, segments)

    @classmethod
    def _of(cls, template: str, segments: list[_Literal | _Time | _Dynamic]) -> KeyLayout:
        fields = {name for s in segments if isinstance(s, _Time) for kind, name in s.parts if kind == "field"}
        if not {"year", "month", "day"} <= fields:
            raise KeyTemplateError(
                f"{template!r}: the timestamp expressions must give at least yyyy, MM and dd"
            )
        merged: list[_Literal | _Time | _Dynamic] = []
        for segment in segments:  # adjacent literals as one (a substituted value joins them)
            if isinstance(segment, _Literal) and merged and isinstance(merged[-1], _Literal):
                merged[-1] = _Literal(merged[-1].text + segment.text)
            else:
                merged.append(segment)
        return cls(
            template=template,
            segments=tuple(merged),
            pattern=re.compile(_regex(merged)),
            resolution=HOUR if "hour" in fields else DAY,
        )

    def leading_dynamic(self) -> tuple[str, str] | None:
        """``(prefix, name)`` when a dynamic expression comes before the time and is a whole
        "folder" of the key (``<prefix><value>/...``, ``prefix`` empty or ending with ``/``):
        its values can then be found by listing ``prefix`` with a ``/`` delimiter, and each
        value's keys listed by time (:meth:`with_value`). None otherwise (the time comes
        first, or the values cannot be listed that way; ``random-string`` is never listed).
        """
        if self.time_before_dynamic():
            return None
        for index, segment in enumerate(self.segments):
            if isinstance(segment, _Time):
                return None
            if isinstance(segment, _Dynamic):
                before = self.segments[index - 1] if index else None
                after = self.segments[index + 1] if index + 1 < len(self.segments) else None
                prefix = before.text if isinstance(before, _Literal) else ""
                if (
                    segment.name == "random-string"
                    or (prefix and not prefix.endswith("/"))
                    or not (isinstance(after, _Literal) and after.text.startswith("/"))
                ):
                    return None
                return prefix, segment.name
        return None

    def with_value(self, name: str, value: str) -> KeyLayout:
        """This layout with every ``name`` expression replaced by the literal ``value``."""
        segments = [
            _Literal(value) if isinstance(s, _Dynamic) and s.name == name else s for s in self.segments
        ]
        template = _EXPRESSION.sub(
            lambda m: value if m.group(2) == name and m.group(1) != "timestamp" else m.group(0),
            self.template,
        )
        return KeyLayout._of(template, segments)

    @property
    def static_head(self) -> str:
        """The literal text before the first expression: every key starts with it."""
        first = self.segments[0]
        return first.text if isinstance(first, _Literal) else ""

    def match(self, key: str) -> KeyMatch | None:
        """The period and dynamic values of ``key``, or None when it is outside the layout."""
        found = self.pattern.match(key)
        if found is None:
            return None
        groups = found.groupdict()
        values: dict[str, int] = {}
        for name in ("year", "month", "day", "hour"):
            seen = {int(v) for k, v in groups.items() if v is not None and k.startswith(f"t_{name}_")}
            if len(seen) > 1:  # every timestamp expression is the same instant
                return None
            if seen:
                values[name] = seen.pop()
        try:
            period = datetime(
                values["year"], values["month"], values["day"], values.get("hour", 0), tzinfo=UTC
            )
        except ValueError:
            return None
        names = {_group(s.name): s.name for s in self.segments if isinstance(s, _Dynamic)}
        dynamic = {names[k[2:]]: v for k, v in groups.items() if k.startswith("d_")}
        return KeyMatch(period=period, values=dynamic)

    def period_prefix(self, period: datetime) -> str:
        """The longest key prefix that every object of ``period`` shares: the template rendered
        up to its first dynamic expression."""
        out = []
        for segment in self.segments:
            if isinstance(segment, _Dynamic):
                break
            out.append(segment.text if isinstance(segment, _Literal) else _render(segment, period))
        return "".join(out)

    def time_before_dynamic(self) -> bool:
        """Whether every timestamp field comes before the first dynamic expression (a period's
        objects then share a prefix of their own)."""
        for segment in self.segments:
            if isinstance(segment, _Dynamic):
                return not any(isinstance(s, _Time) for s in self.segments[self.segments.index(segment) :])
        return True

    def periods(self, start: datetime, end: datetime) -> list[datetime]:
        """Periods overlapping ``[start, end)``."""
        period = _floor(start, self.resolution)
        out = []
        while period < end:
            out.append(period)
            period += self.resolution
        return out

    def listing_prefixes(self, start: datetime, end: datetime) -> list[str]:
        """Key prefixes whose listing finds every object of the periods in ``[start, end)``
        (one per period when they have a prefix of their own, else the static head; see
        :meth:`leading_dynamic` for a layout with dynamic values before the time)."""
        if not self.time_before_dynamic():
            return [self.static_head]
        return list(dict.fromkeys(self.period_prefix(p) for p in self.periods(start, end)))


@dataclass(frozen=True)
class KeyMatch:
    """What a key in the layout says: its period, and its dynamic values (partition keys,
    ``error-output-type``)."""

    period: datetime
    values: dict[str, str]


def firehose_layout(prefix: str, key_template: str | None = None) -> KeyLayout:
    """The layout of a stream: ``key_template`` if set, else ``<prefix>YYYY/MM/dd/HH/``."""
    return KeyLayout.parse(key_template if key_template is not None else prefix + DEFAULT_TIME_TEMPLATE)


def _time_parts(pattern: str) -> tuple[tuple[str, str], ...]:
    parts: list[tuple[str, str]] = []
    for token in _FIELD_RE.findall(pattern):
        if token in _FIELDS:
            parts.append(("field", _FIELDS[token][0]))
        elif token.startswith("'"):
            parts.append(("text", token[1:-1] or "'"))
        elif token[0].isalpha():
            raise KeyTemplateError(
                f"!{{timestamp:{pattern}}}: {token!r} is not supported (use yyyy, MM, dd, HH and literals)"
            )
        else:
            parts.append(("text", token))
    return tuple(parts)


def _regex(segments: list[_Literal | _Time | _Dynamic]) -> str:
    out = ["^"]
    counter = 0
    for segment in segments:
        if isinstance(segment, _Literal):
            out.append(re.escape(segment.text))
        elif isinstance(segment, _Dynamic):
            name = _group(segment.name)
            out.append(f"(?P<d_{name}>[^/]+?)" if f"d_{name}" not in "".join(out) else "[^/]+?")
        else:
            for kind, value in segment.parts:
                if kind == "text":
                    out.append(re.escape(value))
                else:
                    digits = 4 if value == "year" else 2
                    out.append(f"(?P<t_{value}_{counter}>\\d{{{digits}}})")
                    counter += 1
    return "".join(out)


def _group(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _render(segment: _Time, moment: datetime) -> str:
    formats = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H"}
    return "".join(moment.strftime(formats[v]) if k == "field" else v for k, v in segment.parts)


def _floor(moment: datetime, size: timedelta) -> datetime:
    moment = moment.astimezone(UTC)
    if size == DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)

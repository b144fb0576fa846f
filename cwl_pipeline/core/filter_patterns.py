"""CloudWatch Logs filter patterns, evaluated in-process.

A polling stream passes its ``filter.pattern`` to FilterLogEvents; the S3 paths (Firehose,
exports) have no server to filter for them. So the same pattern is also evaluated here, on
every path, and a stream's result does not depend on what the server applied (moto applies
only plain term patterns and lets JSON, ``?`` and ``%regex%`` patterns match everything).

Supported (CloudWatch's filter pattern syntax,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):

* ``""``: every event;
* terms: ``ERROR`` (contains), ``ERROR Exception`` (contains both), ``"exact phrase"``,
  ``?ERROR ?WARN`` (contains either), ``ERROR -DEBUG`` (contains ERROR, not DEBUG). Terms are
  matched case-sensitively as substrings of the message;
* regex: ``%regex%`` (searched anywhere in the message);
* JSON: ``{ $.level = "ERROR" }``, ``{ $.latency > 1000 }``, ``!=``, ``<``, ``<=``, ``>=``,
  ``*`` wildcards in string values, ``IS TRUE`` / ``IS FALSE`` / ``IS NULL``, ``NOT EXISTS``,
  combined with ``&&``, ``||`` and parentheses. A message that is not a JSON object matches no
  JSON pattern.

Space-delimited patterns (``[ip, user, ...]``) are refused with a clear error: use a regex
``include`` / ``exclude`` rule instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

Matcher = Callable[[str], bool]


class FilterPatternError(ValueError):
    """A filter pattern this module cannot evaluate."""


def compile_filter_pattern(pattern: str) -> Matcher:
    """A predicate on a message that is true when ``pattern`` matches it.

    Raises:
        FilterPatternError: the pattern is malformed or uses unsupported syntax.
    """
    text = pattern.strip()
    if not text:
        return lambda message: True
    if text.startswith("{"):
        return _json_matcher(text)
    if text.startswith("["):
        raise FilterPatternError(
            f"{pattern!r}: space-delimited patterns are not evaluated in-process; "
            "use a JSON or term pattern, or an include/exclude regex"
        )
    if len(text) > 1 and text.startswith("%") and text.endswith("%"):
        try:
            regex = re.compile(text[1:-1])
        except re.error as exc:
            raise FilterPatternError(f"{pattern!r}: invalid regex: {exc}") from None
        return lambda message: regex.search(message) is not None
    return _term_matcher(text, pattern)


_TERM = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def _term_matcher(text: str, pattern: str) -> Matcher:
    required: list[str] = []
    optional: list[str] = []
    excluded: list[str] = []
    position = 0
    for match in _TERM.finditer(text):
        if text[position : match.start()].strip():
            raise FilterPatternError(f"{pattern!r}: cannot read {text[position : match.start()]!r}")
        position = match.end()
        prefix, quoted, bare = match.groups()
        term = quoted.replace('\\"', '"') if quoted is not None else bare
        if bare is not None and '"' in bare:
            raise FilterPatternError(f"{pattern!r}: unbalanced quote in {bare!r}")
        {"": required, "?": optional, "-": excluded}[prefix].append(term)
    if optional and required:
        raise FilterPatternError(f"{pattern!r}: mix '?term' alternatives with plain terms is ambiguous")

    def matches(message: str) -> bool:
        if any(term in message for term in excluded):
            return False
        if optional:
            return any(term in message for term in optional)
        return all(term in message for term in required)

    return matches


# -- JSON patterns -------------------------------------------------------------------------

_JSON_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\))
      | (?P<path>\$(?:\.[A-Za-z0-9_\-@]+|\[\d+\])*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_*][A-Za-z0-9_.*\-:/@]*)
    )""",
    re.X,
)

_MISSING = object()


def _json_matcher(text: str) -> Matcher:
    if not text.endswith("}"):
        raise FilterPatternError(f"{text!r}: a JSON pattern ends with '}}'")
    tokens = _tokenize(text[1:-1], text)
    parser = _JsonParser(tokens, text)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise FilterPatternError(f"{text!r}: unexpected {tokens[parser.position][1]!r}")

    def matches(message: str) -> bool:
        try:
            document = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        return isinstance(document, dict) and predicate(document)

    return matches


def _tokenize(body: str, pattern: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    body = body.rstrip()
    while position < len(body):
        match = _JSON_TOKEN.match(body, position)
        if match is None or match.end() == position:
            raise FilterPatternError(f"{pattern!r}: cannot read {body[position:].strip()[:20]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _JsonParser:
    """Recursive descent over ``or := and ('||' and)*``, ``and := atom ('&&' atom)*``."""

    def __init__(self, tokens: list[tuple[str, str]], pattern: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.pattern = pattern

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise FilterPatternError(f"{self.pattern!r}: ends too early")
        self.position += 1
        return token

    def expression(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._conjunction()]
        while self._peek() == ("op", "||"):
            self._take()
            parts.append(self._conjunction())
        return parts[0] if len(parts) == 1 else (lambda doc: any(p(doc) for p in parts))

    def _conjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._atom()]
        while self._peek() == ("op", "&&"):
            self._take()
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else (lambda doc: all(p(doc) for p in parts))

    def _atom(self) -> Callable[[dict[str, Any]], bool]:
        kind, value = self._take()
        if (kind, value) == ("op", "("):
            inner = self.expression()
            if self._take() != ("op", ")"):
                raise FilterPatternError(f"{self.pattern!r}: missing ')'")
            return inner
        if kind != "path":
            raise FilterPatternError(f"{self.pattern!r}: expected a selector like $.field, got {value!r}")
        path = _path_steps(value)
        kind, operator = self._take()
        if kind == "word" and operator.upper() in ("IS", "NOT"):
            return self._keyword(path, operator.upper())
        if kind != "op" or operator not in ("=", "!=", "<", "<=", ">", ">="):
            raise FilterPatternError(
                f"{self.pattern!r}: expected a comparison after {value}, got {operator!r}"
            )
        kind, literal = self._take()
        return _comparison(path, operator, kind, literal, self.pattern)

    def _keyword(self, path: list[str | int], keyword: str) -> Callable[[dict[str, Any]], bool]:
        _, word = self._take()
        if keyword == "NOT":
            if word.upper() != "EXISTS":
                raise FilterPatternError(f"{self.pattern!r}: expected NOT EXISTS")
            return lambda doc: _select(doc, path) is _MISSING
        expected = {"TRUE": True, "FALSE": False, "NULL": None}.get(word.upper(), _MISSING)
        if expected is _MISSING:
            raise FilterPatternError(f"{self.pattern!r}: expected IS TRUE, IS FALSE or IS NULL")
        return lambda doc: (value := _select(doc, path)) is not _MISSING and value is expected


def _path_steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for step in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        steps.append(step[0] if step[0] else int(step[1]))
    return steps


def _select(document: Any, path: list[str | int]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(document, list) or step >= len(document):
                return _MISSING
        elif not isinstance(document, dict) or step not in document:
            return _MISSING
        document = document[step]
    return document


def _comparison(
    path: list[str | int], operator: str, kind: str, literal: str, pattern: str
) -> Callable[[dict[str, Any]], bool]:
    if kind == "number":
        number = float(literal)
        compare = {
            "=": lambda v: v == number,
            "!=": lambda v: v != number,
            "<": lambda v: v < number,
            "<=": lambda v: v <= number,
            ">": lambda v: v > number,
            ">=": lambda v: v >= number,
        }[operator]

        def numeric(doc: dict[str, Any]) -> bool:
            value = _select(doc, path)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return bool(compare(value))

        return numeric
    if kind not in ("string", "word") or operator not in ("=", "!="):
        raise FilterPatternError(f"{pattern!r}: {operator} needs a number, got {literal!r}")
    text = orjson.loads(literal) if kind == "string" else literal
    regex = re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", text)))

    def textual(doc: dict[str, Any]) -> bool:
        value = _select(doc, path)
        if value is _MISSING or isinstance(value, dict | list) or value is None:
            return operator == "!=" and value is not _MISSING
        shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
        hit = regex.fullmatch(shown) is not None
        return hit if operator == "=" else not hit

    return textual

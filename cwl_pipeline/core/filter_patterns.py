"""CloudWatch Logs filter patterns, evaluated in-process.

A polling stream passes its ``filter.pattern`` to FilterLogEvents; the S3 paths (Firehose,
exports) have no server to filter for them. So the same pattern is also evaluated here, on
every path, and a stream's result does not depend on what the server applied (moto applies
only plain term patterns and lets JSON, ``?`` and ``%regex%`` patterns match everything).

The syntax is the one of AWS's "Filter pattern syntax for metric filters, subscription filters,
and filter log events"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):

* ``""``: every event.
* Terms, matched case-sensitively as substrings: ``ERROR`` (contains), ``ERROR Exception``
  (contains both), ``"exact phrase"``, ``ERROR -DEBUG`` or ``"ERROR" - "Exiting"`` (contains
  ERROR, not DEBUG / Exiting). ``?`` starts an alternative: ``?ERROR ?WARN`` matches either, and
  ``?"ERROR" "MainThread" ?"WARN" "Deadlock"`` (what AWS CDK's ``anyTermGroup`` writes) matches
  ERROR and MainThread, or WARN and Deadlock: each ``?`` opens a group that holds the terms after
  it, and the event matches when one group's terms all hold.
* Regex: ``%regex%``, searched anywhere in the message. Only the characters the page lists are
  accepted (letters, digits, space, ``: _ # = @ / ; , -`` and the operators
  ``^ $ ? [ ] { } | \\ * + .``): ``%something!%`` and ``(``/``)`` are refused, as CloudWatch
  refuses them.
* JSON: ``{ SELECTOR OP VALUE }``. Selectors are ``$.name`` steps (letters, digits, ``-``, ``_``)
  each followed by any ``[N]`` array indexes: ``$.users[0].id``, ``$.coordinates[0][1]``. A
  selector must reach a value (string, number, boolean): on an array or an object every
  comparison is false, ``=`` and ``!=`` alike. Values: ``"quoted"`` or unquoted strings, with a
  ``*`` wildcard at the start or the end (``*Event``, ``123.123.*``; ``Ev*ent`` is only the text
  ``Ev*ent``; ``@``, ``$``, backslashes and non-ASCII text must be quoted), numbers
  (``+1000``, ``-5``, ``55.5``, ``10e-3``) for ``= != < <= > >=``, ``%regex%``, and ``*`` alone
  (any value). ``IS TRUE``, ``IS FALSE``, ``IS NULL``, ``NOT EXISTS``; ``&&``, ``||`` and
  parentheses, ``()`` before ``&&`` before ``||``.
  A message that is not a JSON object matches no JSON pattern.
* Space-delimited: ``[ip, user, username, timestamp, request, status_code = 4*, bytes > 1000]``.
  The message is split on spaces; text between ``"`` ``"`` or ``[`` ``]`` is one field (without
  them). Each element names one field; ``...`` (once) stands for any number of fields; without it
  the message must have exactly as many fields as the pattern. Conditions use the JSON values and
  operators and may be joined by ``&&`` and ``||``; a condition on another field of the pattern
  (``status_code = 4* && status_code != 403``) applies to that field.

A JSON or space-delimited pattern holds at most two regexes, as CloudWatch allows. A pattern this
module cannot read raises :class:`FilterPatternError` naming the position; it is never read as
something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

Matcher = Callable[[str], bool]

_MISSING = object()
_MAX_REGEXES = 2


class FilterPatternError(ValueError):
    """A filter pattern this module cannot evaluate; the message names the position."""


def _error(pattern: str, position: int, what: str) -> FilterPatternError:
    return FilterPatternError(f"{pattern!r}: {what} at position {position}")


def compile_filter_pattern(pattern: str) -> Matcher:
    """A predicate on a message that is true when ``pattern`` matches it.

    Raises:
        FilterPatternError: the pattern is malformed or uses unsupported syntax.
    """
    start = len(pattern) - len(pattern.lstrip())
    text = pattern.strip()
    if not text:
        return lambda message: True
    if text.startswith("{"):
        return _json_matcher(pattern, start)
    if text.startswith("["):
        return _delimited_matcher(pattern, start)
    if len(text) > 1 and text.startswith("%") and text.endswith("%"):
        regex = _regex(pattern, start)
        closing = pattern.index("%", start + 1)
        if closing != start + len(text) - 1:
            raise _error(pattern, closing + 1, "text after the regex's closing '%'")
        return lambda message: regex.search(message) is not None
    return _term_matcher(pattern)


# -- regexes -------------------------------------------------------------------------------

_REGEX_ALLOWED = re.compile(r"[A-Za-z0-9 :_#=@/;,\-^$?\[\]{}|\\*+.]")


def _regex(pattern: str, start: int) -> re.Pattern[str]:
    """The ``%...%`` regex that starts at ``start`` (the opening ``%``) and ends at the next ``%``."""
    end = pattern.find("%", start + 1)
    if end < 0:
        raise _error(pattern, start, "a regex '%...' without its closing '%'")
    body = pattern[start + 1 : end]
    if not body:
        raise _error(pattern, start, "an empty regex")
    for offset, char in enumerate(body):
        if not _REGEX_ALLOWED.fullmatch(char):
            raise _error(pattern, start + 1 + offset, f"{char!r}, which CloudWatch regexes do not allow")
    try:
        return re.compile(body)
    except re.error as exc:
        raise _error(pattern, start + 1 + (exc.pos or 0), f"an invalid regex ({exc.msg})") from None


# -- term patterns -------------------------------------------------------------------------


@dataclass
class _Group:
    required: list[str]
    excluded: list[str]

    def holds(self, message: str) -> bool:
        return all(t in message for t in self.required) and not any(t in message for t in self.excluded)


def _term_matcher(pattern: str) -> Matcher:
    terms = _terms(pattern)
    if any(prefix == "?" for prefix, _, _ in terms) and terms[0][0] != "?":
        raise _error(pattern, terms[0][2], "a term before the first '?term' alternative")
    groups: list[_Group] = []
    for prefix, term, _ in terms:
        if prefix == "?" or not groups:
            groups.append(_Group([], []))
        (groups[-1].excluded if prefix == "-" else groups[-1].required).append(term)
    if len(groups) == 1:
        return groups[0].holds
    return lambda message: any(group.holds(message) for group in groups)


def _terms(pattern: str) -> list[tuple[str, str, int]]:
    """(prefix, term, position) of each term; the prefix is "", "?" or "-" (which may stand alone)."""
    terms: list[tuple[str, str, int]] = []
    prefix, prefix_at = "", -1
    position = 0
    while True:
        while position < len(pattern) and pattern[position].isspace():
            position += 1
        if position >= len(pattern):
            break
        if pattern[position] in "?-":
            if prefix:
                raise _error(pattern, position, f"{pattern[position]!r} after {prefix!r}")
            prefix, prefix_at = pattern[position], position
            position += 1
            continue
        if pattern[position] == '"':
            term, position = _quoted(pattern, position)
        else:
            end = position
            while end < len(pattern) and not pattern[end].isspace():
                end += 1
            term = pattern[position:end]
            if '"' in term:
                raise _error(pattern, position + term.index('"'), "a quote inside an unquoted term")
            position = end
        terms.append((prefix, term, prefix_at if prefix else position - len(term)))
        prefix = ""
    if prefix:
        raise _error(pattern, prefix_at, f"{prefix!r} with no term after it")
    return terms


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The text of the ``"..."`` at ``start`` (``\\"`` is a quote) and the position after it."""
    match = re.compile(r'"((?:[^"\\]|\\.)*)"').match(pattern, start)
    if match is None:
        raise _error(pattern, start, "an unbalanced quote")
    return re.sub(r"\\(.)", r"\1", match[1]), match.end()


# -- values (JSON and space-delimited conditions) ------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")


@dataclass
class _Value:
    kind: str  # "number", "text", "regex"
    text: str
    number: float = 0.0
    regex: re.Pattern[str] | None = None


def _read_value(pattern: str, position: int, stops: str) -> tuple[_Value, int]:
    """The value at ``position`` (blanks skipped); it ends at a blank or one of ``stops``."""
    while position < len(pattern) and pattern[position] == " ":
        position += 1
    if position >= len(pattern):
        raise _error(pattern, position, "a comparison without a value")
    char = pattern[position]
    if char == '"':
        text, end = _quoted(pattern, position)
        return _Value("text", text, regex=_wildcard(text)), end
    if char == "%":
        regex = _regex(pattern, position)
        return _Value("regex", regex.pattern, regex=regex), pattern.index("%", position + 1) + 1
    end = position
    while end < len(pattern) and not pattern[end].isspace() and pattern[end] not in stops:
        if pattern.startswith(("&&", "||"), end):
            break
        end += 1
    word = pattern[position:end]
    if not word:
        raise _error(pattern, position, f"{char!r} where a value belongs")
    if _NUMBER.fullmatch(word):
        return _Value("number", word, number=float(word)), end
    bad = next((i for i, c in enumerate(word) if c in _QUOTE_ONLY or not c.isascii()), None)
    if bad is not None:
        raise _error(pattern, position + bad, f"{word[bad]!r} in an unquoted value (quote it)")
    return _Value("text", word, regex=_wildcard(word)), end


# Characters a value may hold only in quotes: the page names "@", "$" and the backslash (and
# Unicode); the others would be read as syntax.
_QUOTE_ONLY = frozenset('@$\\"%!()&|')


def _wildcard(text: str) -> re.Pattern[str]:
    """``*`` at the start or the end matches any text; one inside is itself ("Ev*ent")."""
    head = text.startswith("*")
    tail = len(text) > 1 and text.endswith("*")
    core = text[1 if head else 0 : len(text) - 1 if tail else len(text)]
    return re.compile((".*" if head else "") + re.escape(core) + (".*" if tail else ""), re.DOTALL)


def _compare(value: Any, operator: str, literal: _Value, text_field: bool = False) -> bool:
    """One comparison on a JSON value or a field's text; arrays, objects, null and absence fail."""
    if value is _MISSING or value is None or isinstance(value, dict | list):
        return False
    if isinstance(value, bool):
        value = "true" if value else "false"
    if literal.kind == "number":
        # A JSON string is text even when it spells a number; a space-delimited field is always text.
        number = value if isinstance(value, int | float) else _as_number(value) if text_field else None
        if number is None:
            if operator in ("=", "!="):  # "123456789012" in a string field
                return (str(value) == literal.text) is (operator == "=")
            return False
        return {
            "=": number == literal.number,
            "!=": number != literal.number,
            "<": number < literal.number,
            "<=": number <= literal.number,
            ">": number > literal.number,
            ">=": number >= literal.number,
        }[operator]
    text = value if isinstance(value, str) else _number_text(value)
    assert literal.regex is not None
    if literal.kind == "regex":
        hit = literal.regex.search(text) is not None
    else:
        hit = literal.regex.fullmatch(text) is not None
    return hit if operator == "=" else not hit


def _as_number(value: str) -> float | None:
    return float(value) if _NUMBER.fullmatch(value) else None


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# -- JSON patterns -------------------------------------------------------------------------

_SELECTOR = re.compile(r"\$(?:\.[A-Za-z0-9_-]+(?:\[\d+\])*)+")
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_KEYWORDS = re.compile(r"(IS\s+TRUE|IS\s+FALSE|IS\s+NULL|NOT\s+EXISTS)\b", re.IGNORECASE)

Predicate = Callable[[Any], bool]


class _Parser:
    """Recursive descent over ``or := and ('||' and)*``, ``and := atom ('&&' atom)*``.

    ``atom`` is ``(or)`` or a condition; :meth:`condition` reads one (a JSON selector, or a
    space-delimited field name) and is what the two pattern kinds differ in.
    """

    def __init__(self, pattern: str, position: int, end: int, stops: str) -> None:
        self.pattern = pattern
        self.position = position
        self.end = end
        self.stops = stops
        self.regexes = 0

    def blank(self) -> None:
        while self.position < self.end and self.pattern[self.position].isspace():
            self.position += 1

    def at(self, token: str) -> bool:
        self.blank()
        return self.pattern.startswith(token, self.position) and self.position < self.end

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.at("||"):
            self.position += 2
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda doc: any(p(doc) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.atom()]
        while self.at("&&"):
            self.position += 2
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else (lambda doc: all(p(doc) for p in parts))

    def atom(self) -> Predicate:
        if self.at("("):
            self.position += 1
            inner = self.expression()
            if not self.at(")"):
                raise _error(self.pattern, self.position, "a missing ')'")
            self.position += 1
            return inner
        return self.condition()

    def condition(self) -> Predicate:
        raise NotImplementedError

    def operator(self) -> str:
        self.blank()
        for operator in _OPERATORS:
            if self.pattern.startswith(operator, self.position):
                self.position += len(operator)
                return operator
        raise _error(self.pattern, self.position, "no comparison operator (= != < <= > >=)")

    def value(self, operator: str) -> _Value:
        self.blank()
        start = self.position
        value, self.position = _read_value(self.pattern, self.position, self.stops)
        if self.position > self.end:
            raise _error(self.pattern, self.end, "a value running past the pattern's end")
        if value.kind == "regex":
            self.regexes += 1
            if self.regexes > _MAX_REGEXES:
                raise _error(self.pattern, start, f"more than {_MAX_REGEXES} regexes in one pattern")
        if value.kind != "number" and operator not in ("=", "!="):
            raise _error(self.pattern, start, f"{operator} needs a number")
        return value


class _JsonParser(_Parser):
    def condition(self) -> Predicate:
        self.blank()
        match = _SELECTOR.match(self.pattern, self.position)
        if match is None or match.end() > self.end:
            raise _error(self.pattern, self.position, "no selector like $.field or $.list[0].field")
        steps = [name if name else int(index) for name, index in _STEP.findall(match[0])]
        self.position = match.end()
        self.blank()
        keyword = _KEYWORDS.match(self.pattern, self.position)
        if keyword is not None:
            self.position = keyword.end()
            word = " ".join(keyword[1].upper().split())
            if word == "NOT EXISTS":
                return lambda doc: _select(doc, steps) is _MISSING
            expected = {"IS TRUE": True, "IS FALSE": False, "IS NULL": None}[word]
            return lambda doc: (value := _select(doc, steps)) is not _MISSING and value is expected
        operator = self.operator()
        self.blank()
        if self.pattern.startswith("*", self.position) and self._ends_value(self.position + 1):
            self.position += 1  # "$.latency = *": any value
            return lambda doc: _is_value(_select(doc, steps)) is (operator == "=")
        literal = self.value(operator)
        return lambda doc: _compare(_select(doc, steps), operator, literal)

    def _ends_value(self, position: int) -> bool:
        rest = self.pattern[position : self.end].lstrip()
        return not rest or rest.startswith(("&&", "||", ")"))


def _is_value(value: Any) -> bool:
    return value is not _MISSING and value is not None and not isinstance(value, dict | list)


def _select(document: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, int):
            if not isinstance(document, list) or step >= len(document):
                return _MISSING
        elif not isinstance(document, dict) or step not in document:
            return _MISSING
        document = document[step]
    return document


def _json_matcher(pattern: str, start: int) -> Matcher:
    end = len(pattern.rstrip())
    if not pattern.endswith("}", 0, end):
        raise _error(pattern, end, "a JSON pattern that does not end with '}'")
    parser = _JsonParser(pattern, start + 1, end - 1, stops="){}")
    predicate = parser.expression()
    parser.blank()
    if parser.position != parser.end:
        raise _error(
            pattern, parser.position, f"unexpected {pattern[parser.position : end - 1].strip()[:20]!r}"
        )

    def matches(message: str) -> bool:
        try:
            document = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        return isinstance(document, dict) and predicate(document)

    return matches


# -- space-delimited patterns --------------------------------------------------------------

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MESSAGE_FIELD = re.compile(r'"([^"]*)"|\[([^\]]*)\]|(\S+)')


class _FieldParser(_Parser):
    """Conditions of one element; ``fields`` maps names to their position in the pattern."""

    def __init__(self, pattern: str, position: int, end: int, fields: dict[str, int]) -> None:
        super().__init__(pattern, position, end, stops=",]")
        self.fields = fields

    def condition(self) -> Predicate:
        self.blank()
        match = _FIELD_NAME.match(self.pattern, self.position)
        if match is None:
            raise _error(self.pattern, self.position, "no field name")
        index = self.fields.get(match[0])
        if index is None:
            raise _error(self.pattern, self.position, f"{match[0]!r}, which names no field of the pattern")
        self.position = match.end()
        operator = self.operator()
        literal = self.value(operator)
        return lambda fields: _compare(fields[index], operator, literal, text_field=True)


def _delimited_matcher(pattern: str, start: int) -> Matcher:
    end = len(pattern.rstrip())
    if not pattern.endswith("]", 0, end):
        raise _error(pattern, end, "a space-delimited pattern that does not end with ']'")
    elements = _elements(pattern, start + 1, end - 1)
    ellipses = [i for i, (_, text) in enumerate(elements) if text == "..."]
    if len(ellipses) > 1:
        raise _error(pattern, elements[ellipses[1]][0], "a second '...'")
    fields: dict[str, int] = {}
    for index, (position, text) in enumerate(elements):
        name = _FIELD_NAME.match(text)
        if text and text != "..." and name is None:
            raise _error(pattern, position, f"{text[:20]!r} where a field name belongs")
        if name is not None:
            fields.setdefault(name[0], index)
    conditions: list[Predicate] = []
    regexes = 0
    for position, text in elements:
        name = _FIELD_NAME.match(text)
        if name is None or name.end() == len(text):
            continue
        parser = _FieldParser(pattern, position, position + len(text), fields)
        parser.regexes = regexes
        conditions.append(parser.expression())
        regexes = parser.regexes
        parser.blank()
        if parser.position != parser.end:
            raise _error(pattern, parser.position, f"unexpected {text[parser.position - position :][:20]!r}")
    ellipsis = ellipses[0] if ellipses else None
    width = len(elements)

    def matches(message: str) -> bool:
        values = [next(g for g in m.groups() if g is not None) for m in _MESSAGE_FIELD.finditer(message)]
        if ellipsis is None:
            if len(values) != width:
                return False
            aligned: list[Any] = values
        else:
            after = width - ellipsis - 1
            if len(values) < width - 1:
                return False
            aligned = [*values[:ellipsis], _MISSING, *values[len(values) - after :]]
        return all(condition(aligned) for condition in conditions)

    return matches


def _elements(pattern: str, start: int, end: int) -> list[tuple[int, str]]:
    """The comma-separated elements between ``[`` and ``]``: (position, text), blanks trimmed.

    Commas inside ``"..."`` or ``%...%`` do not separate elements.
    """
    elements: list[tuple[int, str]] = []
    position = element_start = start
    while position <= end:
        char = pattern[position] if position < end else ","
        if char == '"':
            _, position = _quoted(pattern, position)
            continue
        if char == "%":
            closing = pattern.find("%", position + 1)
            if closing < 0 or closing >= end:
                raise _error(pattern, position, "a regex '%...' without its closing '%'")
            position = closing + 1
            continue
        if char == ",":
            raw = pattern[element_start:position]
            stripped = raw.strip()
            elements.append((element_start + len(raw) - len(raw.lstrip()), stripped))
            element_start = position + 1
        position += 1
    return elements

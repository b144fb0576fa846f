"""A corpus of hostile inputs, built by small generators (nothing binary is stored).

Two kinds of case:

* :class:`MessageCase`: one event message (and sometimes its timestamp) with the outcome the
  seed schema must give it: a row with known values, or a reject reason. The same messages
  travel in every delivery format that can carry them (:func:`payload`), through the polling
  path and through Firehose objects.
* :class:`PayloadCase`: a whole payload (file or S3 object) that is broken as a container: a
  truncated gzip, a gzip bomb, garbage between members... Its outcome is a number of events,
  or one :class:`~cwl_pipeline.core.formats.DecodeError` whose message matches ``error``.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from cwl_pipeline.core.formats.timestamps import format_rfc3339_ms
from cwl_pipeline.core.normalize import MAX_MESSAGE_BYTES

ROW = "row"
BASE_MS = 1_795_168_800_000  # 2026-11-20T10:00:00Z
GROUP = "/hostile/app"
STREAM = "web-1"
KB256 = 256 * 1024  # CloudWatch's event limit until 2025 (now 1 MB)

# Delivery formats a message can travel in (``decode_bytes`` format, with how it is wrapped).
CARRIERS = ("events", "subscription", "firehose", "firehose_json", "export", "messages")


@dataclass(frozen=True)
class MessageCase:
    """One message and its expected outcome.

    ``row`` is ``(session_id, action, params as compact JSON text or None)`` when ``expect``
    is :data:`ROW`. ``timestamp_ms`` set means the case is about the event time (absolute,
    so it cannot go through PutLogEvents, which takes only the last 14 days).
    """

    id: str
    message: str | bytes
    expect: str
    row: tuple[int, str | None, str | None] | None = None
    timestamp_ms: int | None = None

    def carriers(self) -> tuple[str, ...]:
        """The formats that can carry this message unchanged."""
        out = []
        text = self.message if isinstance(self.message, str) else None
        if text is not None:
            out += ["events", "subscription", "firehose", "firehose_json"]
        if self.timestamp_ms is None or -62_135_596_800_000 <= self.timestamp_ms <= 253_402_300_799_999:
            # Export lines: a continuation line must not look like the start of an event.
            raw = self.message if isinstance(self.message, bytes) else _utf8(self.message)
            lines = raw.split(b"\n")
            if not raw.endswith(b"\n") and not any(_TS_LINE.match(line) for line in lines[1:]):
                out.append("export")
            if self.timestamp_ms is None and raw and b"\n" not in raw:
                out.append("messages")
        return tuple(out)

    @property
    def polling(self) -> bool:
        """Whether PutLogEvents can carry it (text, no lone surrogates, a recent time)."""
        return (
            isinstance(self.message, str)
            and self.timestamp_ms is None
            and _utf8(self.message) == self.message.encode("utf-8", "backslashreplace")
            and bool(self.message)
        )


_TS_LINE = re.compile(rb"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _j(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# Four-byte characters filling a message of exactly the limit: '{"action":"…xyz"}'.
EMOJI_AT_LIMIT = "\U0001f600" * ((MAX_MESSAGE_BYTES - 16) // 4) + "xyz"
SQL = "'; DROP TABLE x; --"
CONTROL = "".join(chr(c) for c in range(0x20) if c != 0x0A) + "\x7f"


def message_cases() -> list[MessageCase]:
    """Every message case (built fresh; a few hold about a megabyte)."""
    big_value = "a" * (MAX_MESSAGE_BYTES - 100)
    return [
        MessageCase(
            "plain_object", _j({"session_id": 1, "action": "a", "params": {"k": 1}}), ROW, (1, "a", '{"k":1}')
        ),
        MessageCase("empty_object", "{}", ROW, (0, None, None)),
        MessageCase("empty_message", "", "invalid_json"),
        MessageCase("whitespace_message", "   ", "invalid_json"),
        MessageCase("plain_text", "ERROR something broke", "invalid_json"),
        MessageCase("json_array", "[1,2,3]", "not_an_object"),
        MessageCase("json_string", '"text"', "not_an_object"),
        MessageCase("json_number", "42", "not_an_object"),
        MessageCase("json_null", "null", "not_an_object"),
        MessageCase("truncated_json", '{"session_id": 1, "action": "a', "invalid_json"),
        MessageCase("nan_token", '{"session_id": 1, "params": NaN}', "invalid_json"),
        MessageCase("infinity_token", '{"session_id": 1, "params": Infinity}', "invalid_json"),
        MessageCase("minus_infinity_token", '{"session_id": -Infinity}', "invalid_json"),
        MessageCase("float_overflow", '{"params": 1e400}', "invalid_json"),
        # Integers: session_id is INT64.
        MessageCase("int64_max", '{"session_id": 9223372036854775807}', ROW, (2**63 - 1, None, None)),
        MessageCase("int64_min", '{"session_id": -9223372036854775808}', ROW, (-(2**63), None, None)),
        MessageCase("beyond_int64", '{"session_id": 9223372036854775808}', "out_of_range:session_id"),
        MessageCase("below_int64", '{"session_id": -9223372036854775809}', "out_of_range:session_id"),
        MessageCase("beyond_uint64", '{"session_id": 18446744073709551616}', "out_of_range:session_id"),
        MessageCase("beyond_64_bits", '{"session_id": ' + "9" * 60 + "}", "out_of_range:session_id"),
        MessageCase(
            "digit_string_beyond_int64", '{"session_id": "' + "9" * 400 + '"}', "out_of_range:session_id"
        ),
        MessageCase(
            "huge_int_in_params",
            '{"params": {"n": ' + "1" * 40 + "}}",
            ROW,
            (0, None, '{"n":1.1111111111111112e+39}'),
        ),
        # Wrong types for every column of the seed schema.
        MessageCase("float_session_id", '{"session_id": 1.0}', "invalid_type:session_id"),
        MessageCase("fraction_session_id", '{"session_id": 1.5}', "invalid_type:session_id"),
        MessageCase("exponent_session_id", '{"session_id": 1e3}', "invalid_type:session_id"),
        MessageCase("bool_session_id", '{"session_id": true}', "invalid_type:session_id"),
        MessageCase("text_session_id", '{"session_id": "abc"}', "invalid_type:session_id"),
        MessageCase("object_session_id", '{"session_id": {"a": 1}}', "invalid_type:session_id"),
        MessageCase("array_session_id", '{"session_id": [1]}', "invalid_type:session_id"),
        MessageCase("digit_string_session_id", '{"session_id": "-12"}', ROW, (-12, None, None)),
        MessageCase("object_action", '{"action": {"a": 1}}', "invalid_type:action"),
        MessageCase("array_action", '{"action": ["a"]}', "invalid_type:action"),
        MessageCase("number_action", '{"action": 1.5}', ROW, (0, "1.5", None)),
        MessageCase("bool_action", '{"action": false}', ROW, (0, "false", None)),
        MessageCase("string_params", '{"params": "x"}', ROW, (0, None, '"x"')),
        MessageCase("array_params", '{"params": [1, "a", null]}', ROW, (0, None, '[1,"a",null]')),
        MessageCase("null_params", '{"session_id": null, "params": null}', ROW, (0, None, None)),
        # Depth: orjson parses up to 1024 levels and writes up to 254.
        MessageCase("params_depth_254", '{"params": ' + _nested(254) + "}", ROW, (0, None, _nested(254))),
        MessageCase("params_depth_255", '{"params": ' + _nested(255) + "}", "too_deep:params"),
        MessageCase(
            "message_depth_1024",
            '{"x": ' + _nested(1023) + "}",
            ROW,
            (0, None, None),
        ),
        MessageCase("message_depth_1025", '{"x": ' + _nested(1024) + "}", "too_deep"),
        MessageCase("message_depth_100000", '{"x": ' + _nested(100_000) + "}", "too_deep"),
        # SQL-looking strings: data, never SQL.
        MessageCase(
            "sql_injection",
            _j({"session_id": 2, "action": SQL, "params": {SQL: SQL}}),
            ROW,
            (2, SQL, _j({SQL: SQL})),
        ),
        MessageCase(
            "backticks_and_escapes",
            _j({"action": "`x`.`y`; \\' \\\" \\\\ \\n %s ${x} {{x}}", "params": {"`k`": "\\"}}),
            ROW,
            (0, "`x`.`y`; \\' \\\" \\\\ \\n %s ${x} {{x}}", _j({"`k`": "\\"})),
        ),
        MessageCase(
            "quotes",
            _j({"action": "it's \"quoted\" ''", "params": "'"}),
            ROW,
            (0, "it's \"quoted\" ''", '"\'"'),
        ),
        # NUL bytes and control characters.
        MessageCase(
            "nul_in_string",
            _j({"session_id": 3, "action": "a\u0000b", "params": {"k": "\u0000"}}),
            ROW,
            (3, "a\u0000b", '{"k":"\\u0000"}'),
        ),
        MessageCase(
            "nul_in_key", _j({"session_id": 4, "params": {"k\u0000": 1}}), ROW, (4, None, '{"k\\u0000":1}')
        ),
        MessageCase(
            "control_characters",
            _j({"action": CONTROL, "params": {CONTROL: CONTROL}}),
            ROW,
            (0, CONTROL, orjson.dumps({CONTROL: CONTROL}).decode()),
        ),
        MessageCase("raw_nul_in_json_string", '{"action": "a\u0000b"}', "invalid_json"),
        MessageCase("raw_nul_text", "plain\u0000text", "invalid_json"),
        MessageCase("multi_line_text", "line one\nline two", "invalid_json"),
        # Encodings.
        MessageCase("invalid_utf8", b'{"action": "\xff\xfe"}', "invalid_utf8"),
        MessageCase("invalid_utf8_text", b"caf\xe9 au lait", "invalid_utf8"),
        MessageCase("overlong_utf8", b'{"action": "\xc0\xaf"}', "invalid_utf8"),
        MessageCase("bom_then_object", "\ufeff{}", "invalid_json"),
        MessageCase("lone_surrogate_escape", '{"action": "\\ud800"}', "invalid_json"),
        MessageCase("lone_surrogate_character", '{"action": "\ud800"}', "invalid_utf8"),
        MessageCase("paired_surrogate_escape", '{"action": "\\ud83d\\ude00"}', ROW, (0, "\U0001f600", None)),
        MessageCase("non_bmp_text", _j({"action": "\U0001f600 中文 é"}), ROW, (0, "\U0001f600 中文 é", None)),
        # Keys.
        MessageCase("duplicate_keys", '{"session_id": 1, "session_id": 2}', ROW, (2, None, None)),
        MessageCase("very_long_key", _j({"k" * 100_000: 1, "session_id": 5}), ROW, (5, None, None)),
        MessageCase(
            "many_columns", _j({**{f"c{i}": i for i in range(20_000)}, "session_id": 6}), ROW, (6, None, None)
        ),
        # Sizes around CloudWatch's limits (256 KB until 2025, 1 MB now).
        MessageCase(
            "just_below_256kb", _j({"action": "b" * (KB256 - 20)}), ROW, (0, "b" * (KB256 - 20), None)
        ),
        MessageCase(
            "just_above_256kb", _j({"action": "c" * (KB256 + 20)}), ROW, (0, "c" * (KB256 + 20), None)
        ),
        MessageCase(
            "at_message_limit",
            _j({"action": big_value + "d" * (100 - 13)}),
            ROW,
            (0, big_value + "d" * (100 - 13), None),
        ),
        MessageCase("one_megabyte_plus", _j({"action": "e" * MAX_MESSAGE_BYTES}), "too_large"),
        MessageCase("two_megabytes_text", "f" * (2 * MAX_MESSAGE_BYTES), "too_large"),
        MessageCase("emoji_at_limit", _j({"action": EMOJI_AT_LIMIT}), ROW, (0, EMOJI_AT_LIMIT, None)),
        MessageCase("emoji_over_limit", _j({"action": EMOJI_AT_LIMIT + "w"}), "too_large"),
        MessageCase("invalid_utf8_over_limit", b"\xff" * (MAX_MESSAGE_BYTES + 1), "too_large"),
        # Event timestamps (the CloudWatch ones, in ms).
        MessageCase("negative_timestamp", "{}", ROW, (0, None, None), timestamp_ms=-1),
        MessageCase("year_1", "{}", ROW, (0, None, None), timestamp_ms=-62_135_596_800_000),
        MessageCase("before_year_1", "{}", "out_of_range:timestamp", timestamp_ms=-62_135_596_800_001),
        MessageCase("year_9999_end", "{}", ROW, (0, None, None), timestamp_ms=253_402_300_799_999),
        MessageCase("year_10000", "{}", "out_of_range:timestamp", timestamp_ms=253_402_300_800_000),
        MessageCase("seconds_not_ms", "{}", ROW, (0, None, None), timestamp_ms=1_795_168_800),
        MessageCase(
            "microseconds_not_ms", "{}", "out_of_range:timestamp", timestamp_ms=1_795_168_800_000_000
        ),
        MessageCase("int64_max_timestamp", "{}", "out_of_range:timestamp", timestamp_ms=2**63 - 1),
        MessageCase("uint64_max_timestamp", "{}", "out_of_range:timestamp", timestamp_ms=2**64 - 1),
    ]


def case_by_id(case_id: str) -> MessageCase:
    """The message case called ``case_id``."""
    return next(c for c in message_cases() if c.id == case_id)


# --- carrying messages in each delivery format ------------------------------------------


def event_times(cases: list[MessageCase], base_ms: int = BASE_MS) -> list[int]:
    """The event time of each case: its own, or ``base_ms`` plus its position."""
    return [c.timestamp_ms if c.timestamp_ms is not None else base_ms + i for i, c in enumerate(cases)]


def envelope(cases: list[MessageCase], times: list[int], first_id: int = 1) -> dict:
    """A subscription DATA_MESSAGE holding the cases' messages."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": GROUP,
        "logStream": STREAM,
        "subscriptionFilters": ["all"],
        "logEvents": [
            {"id": str(first_id + i), "timestamp": t, "message": c.message}
            for i, (c, t) in enumerate(zip(cases, times, strict=True))
        ],
    }


def _dumps(doc: object) -> bytes:
    # ensure_ascii escapes lone surrogates, which UTF-8 cannot carry.
    return json.dumps(doc).encode()


def payload(
    carrier: str, cases: list[MessageCase], base_ms: int = BASE_MS, first_id: int = 1
) -> tuple[bytes, str]:
    """The cases' messages wrapped as ``carrier``; returns ``(payload, decode_bytes format)``.

    Every case must list ``carrier`` in :meth:`MessageCase.carriers`. Event ids, where the
    format has them, are ``first_id``, ``first_id + 1``... in case order.
    """
    assert all(carrier in c.carriers() for c in cases), carrier
    times = event_times(cases, base_ms)
    if carrier == "events":
        events = [
            {"eventId": str(first_id + i), "timestamp": t, "message": c.message, "logStreamName": STREAM}
            for i, (c, t) in enumerate(zip(cases, times, strict=True))
        ]
        return _dumps({"events": events}), "events"
    if carrier == "subscription":
        return gzip.compress(_dumps(envelope(cases, times, first_id))), "subscription"
    if carrier in ("firehose", "firehose_json"):
        docs = [
            _dumps(envelope(cases[i : i + 7], times[i : i + 7], first_id=first_id + i))
            for i in range(0, len(cases), 7)
        ]
        if carrier == "firehose":
            return b"".join(gzip.compress(d) for d in docs), "firehose"
        return b"\n".join(docs), "firehose"
    if carrier == "export":
        lines = [
            format_rfc3339_ms(t).encode()
            + b" "
            + (c.message if isinstance(c.message, bytes) else _utf8(c.message))
            for c, t in zip(cases, times, strict=True)
        ]
        return gzip.compress(b"\n".join(lines) + b"\n"), "export"
    if carrier == "messages":
        return b"\n".join(
            c.message if isinstance(c.message, bytes) else _utf8(c.message) for c in cases
        ), "messages"
    raise ValueError(carrier)


def lambda_event(inner: bytes) -> bytes:
    """A Lambda subscription event wrapping ``inner`` (normally a gzip envelope)."""
    return _dumps({"awslogs": {"data": base64.b64encode(inner).decode()}})


# --- broken payloads --------------------------------------------------------------------


def gzip_bomb(decompressed: int, chunk: int = 1 << 20) -> bytes:
    """``decompressed`` zero bytes as one gzip member, compressed in chunks (bounded memory).

    Zeros compress about 1000:1: 10 GiB become about 10 MiB.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(chunk)
    parts = []
    full, rest = divmod(decompressed, chunk)
    for _ in range(full):
        parts.append(packer.compress(zeros))
    parts.append(packer.compress(bytes(rest)))
    parts.append(packer.flush())
    return b"".join(parts)


def _good_member(first_id: int = 1) -> bytes:
    return gzip.compress(_dumps(envelope([case_by_id("plain_object")], [BASE_MS], first_id)))


def _json_bomb_envelope() -> bytes:
    # An envelope whose JSON itself is small but a message holds a nested-array bomb.
    return _dumps(envelope([MessageCase("x", _nested(50_000), "too_deep")], [BASE_MS]))


@dataclass(frozen=True)
class PayloadCase:
    """A broken container and its outcome: ``events`` events, or a DecodeError matching ``error``.

    ``max_decompressed_bytes`` is the limit the case is decoded with (None: the default).
    """

    id: str
    build: Callable[[], bytes] = field(repr=False)
    format: str
    error: str | None = None
    events: int = 0
    max_decompressed_bytes: int | None = None


def payload_cases() -> list[PayloadCase]:
    """Every broken-container case."""
    member = _good_member()
    envelope_text = _dumps(envelope([case_by_id("plain_object")], [BASE_MS]))
    return [
        PayloadCase("empty_file", lambda: b"", "auto"),
        PayloadCase("empty_gzip", lambda: gzip.compress(b""), "auto"),
        PayloadCase("only_bom_and_whitespace", lambda: b"\xef\xbb\xbf \n\t", "auto"),
        PayloadCase("bom_before_envelope", lambda: b"\xef\xbb\xbf" + envelope_text, "auto", events=1),
        PayloadCase("truncated_gzip", lambda: member[:-5], "firehose", error="truncated gzip data: member 1"),
        PayloadCase(
            "truncated_second_member",
            lambda: member + member[:20],
            "firehose",
            error="truncated gzip data: member 2",
        ),
        PayloadCase(
            "corrupt_checksum",
            lambda: member[:-8] + b"\0\0\0\0" + member[-4:],
            "firehose",
            error="corrupt gzip data in member 1",
        ),
        PayloadCase(
            "garbage_between_members",
            lambda: member + b"GARBAGE" + _good_member(2),
            "firehose",
            error="unexpected non-gzip bytes after gzip member 1",
        ),
        PayloadCase("zero_padding_after_members", lambda: member + bytes(64), "firehose", events=1),
        PayloadCase(
            "gzip_bomb",
            lambda: gzip_bomb(64 << 20),
            "firehose",
            error="decompressed size exceeds 16777216 bytes",
            max_decompressed_bytes=16 << 20,
        ),
        PayloadCase(
            "gzip_bomb_auto",
            lambda: gzip_bomb(64 << 20),
            "auto",
            error="decompressed size exceeds 16777216 bytes",
            max_decompressed_bytes=16 << 20,
        ),
        PayloadCase(
            "bomb_after_good_member",
            lambda: member + gzip_bomb(64 << 20),
            "firehose",
            error="decompressed size exceeds 16777216 bytes",
            max_decompressed_bytes=16 << 20,
        ),
        PayloadCase(
            "bomb_in_lambda_event",
            lambda: lambda_event(gzip_bomb(64 << 20)),
            "subscription",
            error="decompressed size exceeds 16777216 bytes",
            max_decompressed_bytes=16 << 20,
        ),
        PayloadCase(
            "bomb_export",
            lambda: gzip_bomb(64 << 20),
            "export",
            error="decompressed size exceeds 16777216 bytes",
            max_decompressed_bytes=16 << 20,
        ),
        PayloadCase(
            "plain_payload_over_limit",
            lambda: b" " * 2048 + envelope_text,
            "firehose",
            error="decompressed size exceeds 1024 bytes",
            max_decompressed_bytes=1024,
        ),
        # Firehose with decompression and no delimiter: documents back to back. Reading them
        # once each (not rescanning the rest per document) keeps this linear.
        PayloadCase("concatenated_envelopes", lambda: envelope_text * 20_000, "firehose", events=20_000),
        PayloadCase(
            "concatenated_envelopes_in_two_lines",
            lambda: envelope_text * 10_000 + b"\n" + envelope_text * 10_000,
            "firehose",
            events=20_000,
        ),
        PayloadCase("many_tiny_members", lambda: gzip.compress(b"") * 20_000 + member, "firehose", events=1),
        PayloadCase("not_gzip_not_json", lambda: b"\x00\x01\x02binary", "auto", error="cannot detect format"),
        PayloadCase(
            "envelope_array",
            lambda: gzip.compress(b"[1, 2]"),
            "firehose",
            error="not a CloudWatch Logs subscription envelope",
        ),
        PayloadCase(
            "envelope_string",
            lambda: gzip.compress(b'"text"'),
            "subscription",
            error="not a CloudWatch Logs subscription envelope",
        ),
        PayloadCase(
            "envelope_invalid_utf8",
            lambda: gzip.compress(envelope_text.replace(b"123456789012", b"\xff")),
            "firehose",
            error="not UTF-8",
        ),
        PayloadCase(
            "envelope_nested_deeply",
            lambda: gzip.compress(_nested(200_000).encode()),
            "firehose",
            error="nested too deeply",
        ),
        PayloadCase(
            "envelope_message_bomb", lambda: gzip.compress(_json_bomb_envelope()), "firehose", events=1
        ),
        PayloadCase(
            "envelope_nan_timestamp",
            lambda: gzip.compress(envelope_text.replace(str(BASE_MS).encode(), b"NaN")),
            "firehose",
            error="invalid JSON",
        ),
        PayloadCase(
            "envelope_huge_timestamp",
            lambda: gzip.compress(envelope_text.replace(str(BASE_MS).encode(), b"1" + b"0" * 30)),
            "firehose",
            error="integer 'timestamp'",
        ),
        PayloadCase(
            "envelope_float_timestamp",
            lambda: gzip.compress(
                envelope_text.replace(str(BASE_MS).encode(), str(BASE_MS).encode() + b".5")
            ),
            "firehose",
            error="integer 'timestamp'",
        ),
        PayloadCase(
            "envelope_message_not_string",
            lambda: gzip.compress(
                _dumps(
                    {
                        **envelope([], []),
                        "logEvents": [{"id": "1", "timestamp": BASE_MS, "message": {"session_id": 1}}],
                    }
                )
            ),
            "firehose",
            error="string 'message'",
        ),
        PayloadCase(
            "envelope_bool_id",
            lambda: gzip.compress(
                _dumps(
                    {**envelope([], []), "logEvents": [{"id": True, "timestamp": BASE_MS, "message": "{}"}]}
                )
            ),
            "firehose",
            error="integer 'id'",
        ),
        PayloadCase(
            "envelope_duplicate_keys",
            lambda: gzip.compress(envelope_text.replace(b'"logGroup"', b'"logGroup": 5, "logGroup"')),
            "firehose",
            events=1,
        ),
        PayloadCase(
            "control_message_only",
            lambda: gzip.compress(
                _dumps({"messageType": "CONTROL_MESSAGE", "logGroup": "", "logStream": "", "logEvents": []})
            ),
            "firehose",
        ),
        PayloadCase(
            "unknown_message_type",
            lambda: gzip.compress(envelope_text.replace(b"DATA_MESSAGE", b"'; DROP TABLE x; --")),
            "firehose",
            error="unknown messageType",
        ),
        PayloadCase(
            "awslogs_not_base64",
            lambda: b'{"awslogs": {"data": "!!!"}}',
            "subscription",
            error="not valid base64",
        ),
        PayloadCase(
            "api_events_not_list", lambda: b'{"events": "x"}', "events", error="neither an API response"
        ),
        PayloadCase(
            "api_event_float_timestamp",
            lambda: _dumps({"events": [{"timestamp": 1.5, "message": "{}", "logStreamName": "s"}]}),
            "events",
            error="no integer 'timestamp'",
        ),
        PayloadCase(
            "export_without_timestamp",
            lambda: gzip.compress(b"no timestamp here\n"),
            "export",
            error="does not start with a timestamp",
        ),
        PayloadCase(
            "export_year_0",
            lambda: gzip.compress(b"0000-01-01T00:00:00.000Z {}\n"),
            "export",
            error="does not start with a timestamp",
        ),
        PayloadCase(
            "export_nul_and_invalid_utf8",
            lambda: gzip.compress(b"2026-11-20T10:00:00.000Z a\x00b\n2026-11-20T10:00:00.001Z \xff\xfe\n"),
            "export",
            events=2,
        ),
        PayloadCase("messages_nul_lines", lambda: b"\x00\n\x00\x00\n{}\n", "messages", events=3),
    ]


def grouped(cases: list[MessageCase], carrier: str) -> Iterator[MessageCase]:
    """The cases that ``carrier`` can carry, in corpus order."""
    return (c for c in cases if carrier in c.carriers())

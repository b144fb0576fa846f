"""RFC 3339 parsing and formatting in integer milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cwl_pipeline.core.formats.timestamps import (
    BIGQUERY_MAX_MS,
    BIGQUERY_MIN_MS,
    format_rfc3339_ms,
    match_rfc3339_prefix,
    parse_rfc3339_ms,
)


def epoch_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", epoch_ms(2026, 11, 20, 10)),
        ("2026-11-20T10:00:00.123Z", epoch_ms(2026, 11, 20, 10) + 123),
        ("2026-11-20T10:00:00.1239Z", epoch_ms(2026, 11, 20, 10) + 123),
        ("2026-11-20t10:00:00.5z", epoch_ms(2026, 11, 20, 10) + 500),
        ("2026-11-20 10:00:00+01:00", epoch_ms(2026, 11, 20, 9)),
        ("1969-12-31T23:59:59.999Z", -1),
        ("0001-01-01T00:00:00Z", BIGQUERY_MIN_MS),
        ("9999-12-31T23:59:59.999999Z", BIGQUERY_MAX_MS),
        ("2024-02-29T00:00:00Z", epoch_ms(2024, 2, 29)),
    ],
)
def test_parse(text, expected):
    assert parse_rfc3339_ms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20",
        "2026-11-20T10:00:00",  # no zone
        "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T10:00:60Z",
        "2026-11-20T10:00:00+25:00",
        "2026-11-20T10:00:00Z trailing",
        "not a time",
    ],
)
def test_parse_rejects(text):
    assert parse_rfc3339_ms(text) is None


def test_prefix_match_reports_the_end():
    assert match_rfc3339_prefix("2026-11-20T10:00:00.000Z msg") == (epoch_ms(2026, 11, 20, 10), 24)
    assert match_rfc3339_prefix("  at frame") is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (epoch_ms(2026, 11, 20, 10) + 123, "2026-11-20T10:00:00.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (BIGQUERY_MIN_MS, "0001-01-01T00:00:00.000Z"),
        (BIGQUERY_MAX_MS, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_round_trips(ms, text):
    assert format_rfc3339_ms(ms) == text
    assert parse_rfc3339_ms(text) == ms

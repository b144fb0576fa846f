"""Typed literals round-trip through the emulator: ``SELECT <literal>`` returns the exact value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cwl_pipeline.adapters.sql_literals import int_literal, string_literal, timestamp_literal

# Any Unicode text without NUL and lone surrogates (not representable in a STRING), with
# quotes, backslashes, newlines and escape-looking sequences drawn often.
_PIECES = st.one_of(
    st.sampled_from(["'", '"', "\\", "\n", "\r", "\t", "`", ";", "--", "\\x41", "\\u00e9", "\x01", "\x7f"]),
    st.characters(codec="utf-8", exclude_characters="\x00"),
)
TEXT = st.lists(_PIECES, max_size=30).map("".join)
TIMESTAMPS = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _select(bq_client, literal: str):
    return next(iter(bq_client.query(f"SELECT {literal} AS v").result()))["v"]


@SLOW
@given(value=TEXT)
def test_string_literal_round_trips(bq_client, value):
    assert _select(bq_client, string_literal(value)) == value


@SLOW
@given(value=TIMESTAMPS)
def test_timestamp_literal_round_trips(bq_client, value):
    assert _select(bq_client, timestamp_literal(value)) == value.astimezone(UTC)


def test_int_literal_round_trips(bq_client):
    for value in (0, -1, 2**63 - 1, -(2**62)):
        assert _select(bq_client, int_literal(value)) == value


@pytest.mark.parametrize(
    ("fn", "value", "error"),
    [
        (timestamp_literal, "2026-01-01 00:00:00", TypeError),  # a raw str is never a timestamp
        (timestamp_literal, datetime(2026, 1, 1), ValueError),  # naive: which zone?
        (string_literal, b"bytes", TypeError),
        (string_literal, "nul\x00", ValueError),
        (string_literal, "lone \ud800", ValueError),
        (int_literal, "1; DROP TABLE x", TypeError),
        (int_literal, True, TypeError),
        (int_literal, 2**63, ValueError),
    ],
)
def test_untyped_or_unrepresentable_values_are_refused(fn, value, error):
    with pytest.raises(error):
        fn(value)

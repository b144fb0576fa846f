"""Property-based checks: no input makes decoding or normalization fail unexpectedly."""

from __future__ import annotations

import contextlib
import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats import FORMATS, DecodeError, decode_bytes
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import SEED_SCHEMA, TableSchema

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text including unpaired surrogates, which CloudWatch never sends but Python allows.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
seed_like = st.fixed_dictionaries(
    {},
    optional={"session_id": json_values, "action": json_values, "params": json_values},
)
messages = st.one_of(
    any_text,
    st.binary(max_size=60),
    seed_like.map(json.dumps),
    json_values.map(json.dumps),
)

# Fragments that steer random bytes towards the decoders' interesting paths.
fragments = st.sampled_from(
    [
        b"\x1f\x8b",
        b'{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[',
        b'{"id":"1","timestamp":1,"message":"m"}',
        b'{"awslogs":{"data":"',
        b'{"events":[',
        b"2026-11-20T10:00:00.000Z ",
        b"\n",
        b"]}",
        b"}",
        b"\xff",
    ]
)
payloads = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(fragments, st.binary(max_size=8)), max_size=12).map(b"".join),
)


def _check_events(events: list[LogEvent]) -> None:
    for event in events:
        assert isinstance(event, LogEvent)
        assert isinstance(event.event_id, str) and event.event_id
        assert type(event.timestamp_ms) is int
        assert isinstance(event.message, (str, bytes))


@FAST
@given(data=payloads, fmt=st.sampled_from(["auto", *FORMATS]), gzipped=st.booleans())
def test_arbitrary_bytes_decode_or_raise_decode_error(data, fmt, gzipped):
    if gzipped:
        data = gzip.compress(data)
    try:
        events = decode_bytes(
            data, format=fmt, log_group="/g", log_stream="s", source_object="k", default_timestamp_ms=0
        )
    except DecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    _check_events(events)
    normalize(events, SEED_SCHEMA)


@FAST
@given(data=payloads, fmt=st.sampled_from(["auto", *FORMATS]))
def test_arbitrary_bytes_without_context(data, fmt):
    with contextlib.suppress(DecodeError):
        _check_events(decode_bytes(data, format=fmt))


@FAST
@given(
    events=st.lists(
        st.tuples(
            messages,
            st.integers(min_value=-(2**62), max_value=2**62),
            st.none() | st.integers(min_value=-(2**62), max_value=2**62),
            any_text,
        ),
        max_size=20,
    )
)
def test_arbitrary_messages_normalize_with_reconciling_counts(events):
    log_events = [
        LogEvent(f"e{i}", ts, message, "/g", stream or "s", ingestion, "k")
        for i, (message, ts, ingestion, stream) in enumerate(events)
    ]
    batch = normalize(log_events, SEED_SCHEMA)
    assert batch.events_read == len(log_events) == len(batch.rows) + len(batch.rejects)
    assert sum(batch.reject_reasons.values()) == batch.rows_rejected
    accepted = set(batch.rows["event_id"])
    rejected = set(batch.rejects["event_id"])
    assert accepted.isdisjoint(rejected)
    assert accepted | rejected == {e.event_id for e in log_events}


GENERIC = TableSchema.from_dict(
    "generic",
    {
        "columns": [
            {"name": "ts", "type": "TIMESTAMP", "source": "event_timestamp", "required": True},
            {"name": "f", "type": "FLOAT64"},
            {"name": "b", "type": "BOOL", "required": True, "default": False},
            {"name": "t", "type": "TIMESTAMP", "path": "x.t"},
            {"name": "j", "type": "JSON", "path": "x"},
            {"name": "s", "type": "STRING", "required": True},
            {"name": "i", "type": "INT64", "path": "x.i"},
        ]
    },
)
generic_messages = st.fixed_dictionaries(
    {},
    optional={
        "f": json_values,
        "b": json_values,
        "s": json_values,
        "x": st.fixed_dictionaries({}, optional={"t": json_values, "i": json_values}) | json_values,
    },
).map(json.dumps)


@FAST
@given(st.lists(st.one_of(generic_messages, messages), max_size=15))
def test_generic_schema_never_raises(message_list):
    log_events = [LogEvent(str(i), 0, m, "/g", "s") for i, m in enumerate(message_list)]
    batch = normalize(log_events, GENERIC)
    assert batch.events_read == len(log_events)
    assert batch.rows["s"].isna().sum() == 0

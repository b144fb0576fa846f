"""Raw rows: every event kept as read, and events rebuilt from them for re-deriving."""

from __future__ import annotations

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.formats.timestamps import BIGQUERY_MAX_MS
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.raw_events import RawCollector, events_from_raw
from cwl_pipeline.core.schema import BUILTIN_SCHEMAS


def test_raw_rows_round_trip_to_the_same_events_and_the_same_normalization() -> None:
    events = [
        LogEvent("1", 1_000, '{"session_id": 1, "action": "a\\tb"}', "/g", "s", 1_500, None),
        LogEvent("2", 2_000, "line one\nline two", "/g", "s", None, "s3://b/k"),
        LogEvent("3", 3_000, b"bad \xff bytes \\x41", "/g", "s", 3_100, None),
    ]
    collector = RawCollector()
    first = normalize(collector.tee(events), BUILTIN_SCHEMAS["seed"])
    raw = collector.table()
    assert raw["message"].to_pylist()[2] == "bad \\xff bytes \\x41"
    assert raw["invalid_utf8"].to_pylist() == [False, False, True]

    rebuilt = list(events_from_raw(raw.to_pylist()))
    assert rebuilt[:2] == events[:2]
    assert isinstance(rebuilt[2].message, bytes)  # still invalid UTF-8: rejected the same way
    again = normalize(rebuilt, BUILTIN_SCHEMAS["seed"])
    assert again.rows_table.equals(first.rows_table)
    assert again.rejects_table["reason"].to_pylist() == first.rejects_table["reason"].to_pylist()


def test_times_outside_bigquery_are_clamped_like_the_rejects() -> None:
    collector = RawCollector()
    list(collector.tee([LogEvent("1", 10**15, "x", "/g", "s", 10**15)]))
    row = collector.table().to_pylist()[0]
    assert int(row["timestamp"].timestamp() * 1000) == BIGQUERY_MAX_MS // 1000 * 1000 + 999
    assert row["ingestion_time"] is None

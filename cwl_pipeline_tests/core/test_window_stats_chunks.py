"""Per-window figures added up chunk by chunk equal those of the whole batch at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import SEED_SCHEMA
from cwl_pipeline.core.window_stats import WindowStatsAccumulator, per_window_stats

START = datetime(2026, 11, 2, 10, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def events() -> list[LogEvent]:
    base = int(START.timestamp() * 1000)
    out = []
    for i in range(40):
        t = base + i * 61_000 + i % 7  # spread over three windows, some milliseconds
        message = "not json" if i % 9 == 0 else f'{{"session_id": {i}, "action": "a"}}'
        ingestion = None if i % 11 == 0 else t + 1_000 * (i % 5)
        out.append(LogEvent(str(i), t, message, "/g", "s", ingestion, None))
    return out


def test_chunked_figures_equal_the_whole_batch():
    loaded_at = START + timedelta(hours=1)
    starts = [START + WINDOW * k for k in range(4)]
    whole = normalize(events(), SEED_SCHEMA)
    expected = per_window_stats(
        whole.rows,
        whole.rejects,
        time_column="timestamp",
        window_starts=starts,
        size=WINDOW,
        loaded_at=loaded_at,
        bytes_by_window={START: 5},
    )
    accumulator = WindowStatsAccumulator("timestamp", WINDOW)
    all_events = events()
    for i in range(0, len(all_events), 7):
        chunk = normalize(all_events[i : i + 7], SEED_SCHEMA)
        accumulator.add(chunk.rows_table, chunk.rejects_table)
    got = accumulator.stats(starts, loaded_at, {START: 5})
    assert {k: v.as_metadata() for k, v in got.items()} == {k: v.as_metadata() for k, v in expected.items()}
    assert sum(s.rows_rejected for s in got.values()) == 5 and got[starts[3]].events_read == 0


def test_no_rows_at_all():
    empty = normalize([], SEED_SCHEMA)
    accumulator = WindowStatsAccumulator("timestamp", WINDOW)
    accumulator.add(empty.rows_table, empty.rejects_table)
    assert isinstance(empty.rows_table, pa.Table)
    assert [s.events_read for s in accumulator.stats([START], START).values()] == [0]

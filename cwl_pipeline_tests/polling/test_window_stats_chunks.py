"""Per-window figures added up chunk by chunk equal those of the whole batch, computed
independently (pandas group-bys over the whole batch)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from cwl_pipeline.core.events import LogEvent
from cwl_pipeline.core.normalize import normalize
from cwl_pipeline.core.schema import SEED_SCHEMA
from cwl_pipeline.polling.window_stats import WindowStats, WindowStatsAccumulator

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
    expected = per_window_stats_whole(
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


def per_window_stats_whole(
    rows: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    time_column: str,
    window_starts: list[datetime],
    size: timedelta,
    loaded_at: datetime,
    bytes_by_window: Mapping[datetime, int] | None = None,
) -> dict[datetime, WindowStats]:
    """The figures of a whole batch at once, computed independently with pandas group-bys."""
    stats = {start: WindowStats(start) for start in window_starts}
    for start, size_bytes in (bytes_by_window or {}).items():
        if start in stats:
            stats[start].bytes_read = size_bytes
    if len(rows):
        times = rows[time_column]
        keys = _window_keys(times, size)
        ingestion = rows["ingestion_time"]
        ingest_lag = (ingestion - times).dt.total_seconds()
        load_lag = (pd.Timestamp(loaded_at) - ingestion).dt.total_seconds()
        frame = pd.DataFrame(
            {
                "w": keys,
                "t": times.to_numpy(),
                "ingest_lag": ingest_lag.to_numpy(),
                "load_lag": load_lag.to_numpy(),
            }
        )
        for key, group in frame.groupby("w", sort=False):
            entry = stats.setdefault(_datetime(key), WindowStats(_datetime(key)))
            entry.rows_loaded = len(group)
            entry.min_event_time = group["t"].min().to_pydatetime()
            entry.max_event_time = group["t"].max().to_pydatetime()
            if group["ingest_lag"].notna().any():  # export files carry no ingestion time
                entry.ingestion_lag_p50_s = _round(group["ingest_lag"].median())
                entry.ingestion_lag_max_s = _round(group["ingest_lag"].max())
                entry.load_lag_p50_s = _round(group["load_lag"].median())
                entry.load_lag_max_s = _round(group["load_lag"].max())
    if len(rejects):
        keys = _window_keys(rejects["timestamp"], size)
        frame = pd.DataFrame({"w": keys, "reason": rejects["reason"].to_numpy()})
        for key, group in frame.groupby("w", sort=False):
            entry = stats.setdefault(_datetime(key), WindowStats(_datetime(key)))
            entry.rows_rejected = len(group)
            entry.reject_reasons = {str(k): int(v) for k, v in group["reason"].value_counts().items()}
    return stats


def _window_keys(times: pd.Series, size: timedelta) -> np.ndarray:
    # Event timestamps are never null (the column is REQUIRED), so a plain int64 array is safe.
    ms = times.astype("int64[pyarrow]").to_numpy(dtype="int64")
    size_ms = int(size.total_seconds() * 1000)
    return ms - ms % size_ms


def _datetime(key: object) -> datetime:
    return datetime.fromtimestamp(int(key) / 1000, tz=UTC)


def _round(value: object) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)

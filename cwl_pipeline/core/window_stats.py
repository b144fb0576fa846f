"""Per-window figures of a normalized batch, for materialization metadata.

A run may load a range of windows at once; each window still gets its own, true figures
(rows, rejects, event-time bounds, lags), never the range total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd


@dataclass
class WindowStats:
    """Figures of one window of one load."""

    start: datetime
    rows_loaded: int = 0
    rows_rejected: int = 0
    bytes_read: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    min_event_time: datetime | None = None
    max_event_time: datetime | None = None
    ingestion_lag_p50_s: float | None = None
    ingestion_lag_max_s: float | None = None
    load_lag_p50_s: float | None = None
    load_lag_max_s: float | None = None

    @property
    def events_read(self) -> int:
        """Events read from the source for this window (loaded + rejected)."""
        return self.rows_loaded + self.rows_rejected

    def as_metadata(self) -> dict[str, object]:
        """Flat metadata entries (times as ISO strings, lags in seconds)."""
        out: dict[str, object] = {
            "events_read": self.events_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "bytes_read": self.bytes_read,
            "reject_reasons": dict(self.reject_reasons),
        }
        optional = {
            "min_event_time": self.min_event_time.isoformat() if self.min_event_time else None,
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "ingestion_lag_p50_s": self.ingestion_lag_p50_s,
            "ingestion_lag_max_s": self.ingestion_lag_max_s,
            "load_lag_p50_s": self.load_lag_p50_s,
            "load_lag_max_s": self.load_lag_max_s,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


def per_window_stats(
    rows: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    time_column: str,
    window_starts: list[datetime],
    size: timedelta,
    loaded_at: datetime,
    bytes_by_window: Mapping[datetime, int] | None = None,
) -> dict[datetime, WindowStats]:
    """Split a batch's figures by window; every window of ``window_starts`` gets an entry."""
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
            entry = stats.setdefault(_to_datetime(key), WindowStats(_to_datetime(key)))
            entry.rows_loaded = len(group)
            entry.min_event_time = group["t"].min().to_pydatetime()
            entry.max_event_time = group["t"].max().to_pydatetime()
            if group["ingest_lag"].notna().any():  # export files carry no ingestion time
                entry.ingestion_lag_p50_s = _rounded(group["ingest_lag"].median())
                entry.ingestion_lag_max_s = _rounded(group["ingest_lag"].max())
                entry.load_lag_p50_s = _rounded(group["load_lag"].median())
                entry.load_lag_max_s = _rounded(group["load_lag"].max())
    if len(rejects):
        keys = _window_keys(rejects["timestamp"], size)
        frame = pd.DataFrame({"w": keys, "reason": rejects["reason"].to_numpy()})
        for key, group in frame.groupby("w", sort=False):
            entry = stats.setdefault(_to_datetime(key), WindowStats(_to_datetime(key)))
            entry.rows_rejected = len(group)
            entry.reject_reasons = {str(k): int(v) for k, v in group["reason"].value_counts().items()}
    return stats


def _window_keys(times: pd.Series, size: timedelta) -> np.ndarray:
    # Event timestamps are never null (the column is REQUIRED), so a plain int64 array is safe.
    ms = times.astype("int64[pyarrow]").to_numpy(dtype="int64")
    size_ms = int(size.total_seconds() * 1000)
    return ms - ms % size_ms


def _to_datetime(key: object) -> datetime:
    return datetime.fromtimestamp(int(key) / 1000, tz=UTC)


def _rounded(value: object) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)

"""Per-window figures of a normalized batch, for materialization metadata.

A run may load a range of windows at once; each window still gets its own, true figures
(rows, rejects, event-time bounds, lags), never the range total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


def _ms(column: pa.ChunkedArray) -> np.ndarray:
    """Milliseconds since the epoch of a timestamp column without nulls."""
    return pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy()


def _to_datetime(key: object) -> datetime:
    return datetime.fromtimestamp(int(key) / 1000, tz=UTC)


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 3)


class WindowStatsAccumulator:
    """Per-window figures of a batch, normalized whole or chunk by chunk: the chunks' figures added
    up. Counts, bounds and reasons are summed as they come; each row's two times (event,
    ingestion) are kept as 8-byte integers for the medians, not the rows themselves."""

    def __init__(self, time_column: str, size: timedelta) -> None:
        """Figures of windows of ``size`` on ``time_column``."""
        self.time_column = time_column
        self.size = size
        self._rows: dict[int, int] = {}
        self._rejects: dict[int, int] = {}
        self._reasons: dict[int, dict[str, int]] = {}
        self._bounds: dict[int, tuple[int, int]] = {}
        self._lags: dict[int, list[np.ndarray]] = {}  # per window: arrays of (event ms, ingestion ms)

    def add(self, rows: pa.Table, rejects: pa.Table) -> None:
        """Count one chunk's rows and rejects (Arrow tables of a :class:`NormalizedBatch`)."""
        size_ms = int(self.size.total_seconds() * 1000)
        if rows.num_rows:
            times = _ms(rows[self.time_column])
            ingestion_column = rows["ingestion_time"]
            has_ingestion = pc.is_valid(ingestion_column).to_numpy(zero_copy_only=False)
            ingestion_ms = _ms(pc.fill_null(ingestion_column, pa.scalar(0, ingestion_column.type)))
            keys = times - times % size_ms
            for key in np.unique(keys):
                mask = keys == key
                k = int(key)
                self._rows[k] = self._rows.get(k, 0) + int(mask.sum())
                low, high = int(times[mask].min()), int(times[mask].max())
                old = self._bounds.get(k)
                self._bounds[k] = (low, high) if old is None else (min(old[0], low), max(old[1], high))
                both = mask & has_ingestion
                if both.any():
                    self._lags.setdefault(k, []).append(np.stack([times[both], ingestion_ms[both]]))
        if rejects.num_rows:
            times = _ms(rejects["timestamp"])
            keys = times - times % size_ms
            reasons = rejects["reason"].to_pylist()
            for key, reason in zip(keys.tolist(), reasons, strict=True):
                self._rejects[key] = self._rejects.get(key, 0) + 1
                counts = self._reasons.setdefault(key, {})
                counts[str(reason)] = counts.get(str(reason), 0) + 1

    def stats(
        self,
        window_starts: list[datetime],
        loaded_at: datetime,
        bytes_by_window: Mapping[datetime, int] | None = None,
    ) -> dict[datetime, WindowStats]:
        """The figures of every window of ``window_starts`` (and of any other window seen)."""
        stats = {start: WindowStats(start) for start in window_starts}
        for start, size_bytes in (bytes_by_window or {}).items():
            if start in stats:
                stats[start].bytes_read = size_bytes
        loaded_ms = loaded_at.timestamp() * 1000
        for k, count in self._rows.items():
            entry = stats.setdefault(_to_datetime(k), WindowStats(_to_datetime(k)))
            entry.rows_loaded = count
            low, high = self._bounds[k]
            entry.min_event_time, entry.max_event_time = _to_datetime(low), _to_datetime(high)
            if k in self._lags:
                pairs = np.concatenate(self._lags[k], axis=1)
                ingest_lag = (pairs[1] - pairs[0]) / 1000
                load_lag = (loaded_ms - pairs[1]) / 1000
                entry.ingestion_lag_p50_s = _rounded(np.median(ingest_lag))
                entry.ingestion_lag_max_s = _rounded(ingest_lag.max())
                entry.load_lag_p50_s = _rounded(np.median(load_lag))
                entry.load_lag_max_s = _rounded(load_lag.max())
        for k, count in self._rejects.items():
            entry = stats.setdefault(_to_datetime(k), WindowStats(_to_datetime(k)))
            entry.rows_rejected = count
            entry.reject_reasons = dict(sorted(self._reasons[k].items(), key=lambda i: (-i[1], i[0])))
        return stats

"""Micro-batch window arithmetic and the near-real-time request plan.

Windows are half-open ``[start, start + size)`` intervals aligned to the epoch in UTC. The
sensor asks :func:`plan_windows` what to load at each tick:

* every window that closed at least ``settle_lag`` ago, exactly once, in order, as ranges of at
  most ``max_windows`` windows (one range per tick, so work per tick is bounded and a long
  outage becomes a few range runs rather than thousands of single ones);
* the still-open window, again every ``refresh_interval`` while new events arrive, so rows
  show up in BigQuery within about a minute instead of a window length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

PARTITION_FMT = "%Y-%m-%d-%H:%M"


def floor_to_window(moment: datetime, size: timedelta) -> datetime:
    """Start of the window that contains ``moment``."""
    seconds = int(size.total_seconds())
    epoch = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def partition_key(window_start: datetime) -> str:
    """Dagster partition key of the window starting at ``window_start``."""
    return window_start.astimezone(UTC).strftime(PARTITION_FMT)


def parse_partition_key(key: str) -> datetime:
    """Inverse of :func:`partition_key`."""
    return datetime.strptime(key, PARTITION_FMT).replace(tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.astimezone(UTC).timestamp() * 1000)


@dataclass(frozen=True)
class WindowRequest:
    """Load windows ``first_start`` … ``last_start`` (inclusive) in one run."""

    first_start: datetime
    last_start: datetime
    kind: str  # "settled" (final load of closed windows) or "refresh" (the open window)
    run_key: str

    @property
    def first_key(self) -> str:
        """Partition key of the first window."""
        return partition_key(self.first_start)

    @property
    def last_key(self) -> str:
        """Partition key of the last window."""
        return partition_key(self.last_start)


@dataclass(frozen=True)
class PlanState:
    """What the sensor remembers between ticks (its cursor)."""

    settled_until: datetime | None = None  # end of the last window requested as settled
    refreshed_window: datetime | None = None  # start of the open window last refreshed
    refreshed_at: datetime | None = None  # when that refresh was requested
    refresh_count: int = 0

    def to_json(self) -> dict[str, str | int | None]:
        """Serializable form for a sensor cursor."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "settled_until": iso(self.settled_until),
            "refreshed_window": iso(self.refreshed_window),
            "refreshed_at": iso(self.refreshed_at),
            "refresh_count": self.refresh_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, str | int | None] | None) -> PlanState:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()

        def parse(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromisoformat(str(value)) if value else None

        return cls(
            settled_until=parse("settled_until"),
            refreshed_window=parse("refreshed_window"),
            refreshed_at=parse("refreshed_at"),
            refresh_count=int(data.get("refresh_count") or 0),
        )


def plan_windows(
    *,
    stream: str,
    now: datetime,
    state: PlanState,
    size: timedelta,
    settle_lag: timedelta,
    refresh_interval: timedelta,
    partitions_start: datetime,
    max_windows: int,
    initial_lookback: timedelta,
    events_arriving: bool,
) -> tuple[list[WindowRequest], PlanState]:
    """Decide which windows to request at ``now``; returns the requests and the new state.

    ``events_arriving`` tells whether new events showed up in the open window since the last
    refresh (the sensor probes the source); without them the open window is not refreshed.
    ``initial_lookback`` bounds the first catch-up of a sensor that has no state yet; older
    windows are loaded by a backfill.
    """
    requests: list[WindowRequest] = []
    settled_end = floor_to_window(now - settle_lag, size)  # windows ending by here are settled
    begin = state.settled_until
    if begin is None:
        begin = max(partitions_start, floor_to_window(now - initial_lookback, size))
    begin = max(begin, partitions_start)
    new_state = state
    if begin < settled_end:
        last = min(settled_end - size, begin + size * (max_windows - 1))
        first_key, last_key = partition_key(begin), partition_key(last)
        key = first_key if first_key == last_key else f"{first_key}..{last_key}"
        requests.append(WindowRequest(begin, last, "settled", f"{stream}:settled:{key}"))
        new_state = replace(new_state, settled_until=last + size)

    open_start = floor_to_window(now, size)
    due = (
        state.refreshed_window != open_start
        or state.refreshed_at is None
        or now - state.refreshed_at >= refresh_interval
    )
    if open_start >= partitions_start and events_arriving and due:
        count = state.refresh_count + 1
        key = partition_key(open_start)
        requests.append(WindowRequest(open_start, open_start, "refresh", f"{stream}:refresh:{key}:{count}"))
        new_state = replace(new_state, refreshed_window=open_start, refreshed_at=now, refresh_count=count)
    return requests, new_state

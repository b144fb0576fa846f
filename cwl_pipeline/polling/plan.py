"""What a polling stream's sensor requests at each tick: the near-real-time request plan.

The sensor asks :func:`plan_windows` what to load at each tick:

* every window that closed at least ``settle_lag`` ago, exactly once, in order, as ranges of at
  most ``max_windows`` windows (one range per tick, so work per tick is bounded and a long
  outage becomes a few range runs rather than thousands of single ones);
* every closed window again after each late-data sweep horizon (for example 15 minutes and
  6 hours), so events that CloudWatch accepted late land in their window; this includes the
  windows of a new sensor's first catch-up whose horizon had not passed when it started;
* the still-open window, again every ``refresh_interval`` while new events arrive, so rows
  show up in BigQuery within about a minute instead of a window length.

Pure: no I/O, a function of time and the sensor's cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cwl_pipeline.core.windows import WindowRequest, floor_to_window, partition_key


@dataclass(frozen=True)
class LoadPass:
    """Load every window once it closed ``lag`` ago: the settled load and each late-data sweep."""

    name: str
    lag: timedelta


SWEEP_PREFIX = "sweep-"


def load_passes(settle_lag: timedelta, sweeps: tuple[timedelta, ...]) -> tuple[LoadPass, ...]:
    """The settled pass, then one sweep pass per horizon (named after it, e.g. ``sweep-15m``)."""
    return (
        LoadPass("settled", settle_lag),
        *(LoadPass(f"{SWEEP_PREFIX}{_short(h)}", h) for h in sorted(sweeps) if h > settle_lag),
    )


def compares_first(kind: str) -> bool:
    """Whether a load of ``kind`` compares what it read with the window before staging: the
    sweeps, which find the window complete unless late events arrived."""
    return kind.startswith(SWEEP_PREFIX)


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class PlanState:
    """What the sensor remembers between ticks (its cursor)."""

    done_until: dict[str, datetime] = field(default_factory=dict)  # per pass: end of last window requested
    refreshed_window: datetime | None = None  # start of the open window last refreshed
    refreshed_at: datetime | None = None  # when that refresh was requested
    refresh_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "done_until": {k: v.isoformat() for k, v in self.done_until.items()},
            "refreshed_window": self.refreshed_window.isoformat() if self.refreshed_window else None,
            "refreshed_at": self.refreshed_at.isoformat() if self.refreshed_at else None,
            "refresh_count": self.refresh_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PlanState:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()

        def parse(value: Any) -> datetime | None:
            return datetime.fromisoformat(str(value)) if value else None

        return cls(
            done_until={k: datetime.fromisoformat(v) for k, v in (data.get("done_until") or {}).items()},
            refreshed_window=parse(data.get("refreshed_window")),
            refreshed_at=parse(data.get("refreshed_at")),
            refresh_count=int(data.get("refresh_count") or 0),
        )


def plan_windows(
    *,
    stream: str,
    now: datetime,
    state: PlanState,
    size: timedelta,
    passes: tuple[LoadPass, ...],
    refresh_interval: timedelta,
    partitions_start: datetime,
    max_windows: int,
    initial_lookback: timedelta,
    events_arriving: bool,
) -> tuple[list[WindowRequest], PlanState]:
    """Decide which windows to request at ``now``; returns the requests and the new state.

    For each pass, every window that ended at least ``pass.lag`` ago is requested once, in
    order, at most ``max_windows`` per tick. ``events_arriving`` tells whether new events showed
    up in the open window since its last refresh (the sensor probes the source); without them
    the open window is not refreshed. ``initial_lookback`` bounds the first catch-up of a
    sensor without state; older windows are loaded by a backfill.
    """
    requests: list[WindowRequest] = []
    done_until = dict(state.done_until)
    # A new sensor (or one whose cursor was reset) settles the lookback once. Each sweep starts
    # with the first window still inside its horizon: the window that closed just before the
    # start is swept like any other, while a window whose horizon had passed already was read
    # after it by the catch-up itself.
    first_ever = max(partitions_start, floor_to_window(now - initial_lookback, size))
    for index, load_pass in enumerate(passes):
        due_end = floor_to_window(now - load_pass.lag, size)  # windows ending by here are due
        initial = first_ever if index == 0 else max(first_ever, due_end)
        begin = max(done_until.setdefault(load_pass.name, initial), partitions_start)
        if begin >= due_end:
            continue
        last = min(due_end - size, begin + size * (max_windows - 1))
        first_key, last_key = partition_key(begin), partition_key(last)
        key = first_key if first_key == last_key else f"{first_key}..{last_key}"
        requests.append(WindowRequest(begin, last, load_pass.name, f"{stream}:{load_pass.name}:{key}"))
        done_until[load_pass.name] = last + size
    new_state = replace(state, done_until=done_until)

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

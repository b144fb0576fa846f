"""What the live sensor of a polling stream reads at each tick, and which events it appends.

The live path re-reads a range of **event time** at every tick and appends what it has not
appended yet. FilterLogEvents selects by event timestamp only, and events often arrive out of
timestamp order (an agent buffers, a client retries): a cursor that moved ``startTime`` to the
newest ingestion time seen would skip every event older than one already ingested. So the
cursor here is a covered range of event time, and ingestion time only tells, inside that
range, which events the previous read already saw.

Each tick:

* reads every event with a timestamp at or after ``start``, where ``start`` is ``lookback``
  before the previous read began (so an event arriving up to ``lookback`` late is still
  read), or where the previous read stopped if it was cut short, and never before ``floor``
  (windows older than that are the settled load's: no unbounded replay after downtime);
* appends an event unless the previous read covered its timestamp and it was ingested before
  that read's newest ingestion time minus ``overlap`` (CloudWatch may show an event to
  FilterLogEvents a little after its ingestion time). The rest was appended already: at
  least once, and the ``_recent`` view deduplicates.

Pure: no I/O, a function of time, the cursor and what was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OVERLAP_MS = 10_000
"""Events ingested this long before the newest one read are appended again (see module docs)."""


@dataclass(frozen=True)
class LiveState:
    """The live sensor's cursor: what its last read covered.

    Every event with a timestamp in ``[from_ms, to_ms]`` (``to_ms`` None: no upper bound) that
    FilterLogEvents showed when the read began at ``read_ms`` was read and appended;
    ``ingested_ms`` is the newest ingestion time among them.
    """

    from_ms: int | None = None
    to_ms: int | None = None
    read_ms: int | None = None
    ingested_ms: int | None = None
    appended: int = 0  # events appended since the sensor started (its cursor was first written)

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "read_ms": self.read_ms,
            "ingested_ms": self.ingested_ms,
            "appended": self.appended,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LiveState:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()
        return cls(
            from_ms=data.get("from_ms"),
            to_ms=data.get("to_ms"),
            read_ms=data.get("read_ms"),
            ingested_ms=data.get("ingested_ms"),
            appended=int(data.get("appended") or 0),
        )


def read_start(state: LiveState, now_ms: int, *, lookback_ms: int, floor_ms: int, open_start_ms: int) -> int:
    """Where this tick's read begins (event time, inclusive).

    A new sensor starts with the open window (or ``lookback`` before now, if earlier). Then:
    ``lookback`` before the previous read began, or where that read stopped if earlier; never
    before ``floor_ms``.
    """
    if state.read_ms is None:
        start = min(open_start_ms, now_ms - lookback_ms)
    else:
        start = state.read_ms - lookback_ms
        if state.to_ms is not None:
            start = min(start, state.to_ms)
    return max(start, floor_ms)


def is_new(state: LiveState, timestamp_ms: int, ingestion_ms: int) -> bool:
    """Whether an event read now was not appended by the previous read (see module docs)."""
    if state.read_ms is None or state.ingested_ms is None or state.from_ms is None:
        return True
    covered = timestamp_ms >= state.from_ms and (state.to_ms is None or timestamp_ms <= state.to_ms)
    return not covered or ingestion_ms >= state.ingested_ms - OVERLAP_MS


def after_read(
    state: LiveState,
    *,
    start_ms: int,
    read_ms: int,
    stopped_at_ms: int | None,
    newest_ingestion_ms: int | None,
    appended: int = 0,
) -> LiveState:
    """The cursor after a read from ``start_ms`` that began at ``read_ms``.

    ``stopped_at_ms``: the read was cut short (bounded work per tick); the timestamp of the last
    event it read, whose millisecond may hold more events (so the covered range ends just
    before it). ``newest_ingestion_ms``: the newest ingestion time among the events read.
    """
    newest = newest_ingestion_ms
    if state.ingested_ms is not None:
        newest = state.ingested_ms if newest is None else max(newest, state.ingested_ms)
    return LiveState(
        from_ms=start_ms,
        to_ms=None if stopped_at_ms is None else stopped_at_ms - 1,
        read_ms=read_ms,
        ingested_ms=newest,
        appended=state.appended + appended,
    )

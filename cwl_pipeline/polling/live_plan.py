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
  read), or where the previous read stopped if it was cut short (bounded work per tick: a
  backlog is read over several ticks), and never before ``floor``
  (windows older than that are the settled load's: no unbounded replay after downtime);
* appends an event unless the previous read covered its timestamp and either it was ingested
  before that read's newest ingestion time minus :data:`OVERLAP_MS` or its key is among the
  keys that read kept of the events ingested after that (CloudWatch may show an event to
  FilterLogEvents a little after its ingestion time, so the last seconds are re-read and told
  apart by key). At least once: keys beyond :data:`MAX_SEEN` are not kept and those events
  are appended again, as are the events of a tick whose cursor was never stored; the
  ``_recent`` view deduplicates.

Pure: no I/O, a function of time, the cursor and what was read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OVERLAP_MS = 10_000
"""Events ingested this long before the newest one read are told apart by key (see module docs)."""
MAX_SEEN = 1000
"""Keys the cursor keeps at most (8 hex digits each); past that the overlap is appended again."""


def event_key(event_id: str, timestamp_ms: int) -> str:
    """A short key of an event: its id and timestamp (ids alone repeat on the local stack)."""
    return hashlib.sha1(f"{event_id}:{timestamp_ms}".encode()).hexdigest()[:8]


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
    seen: frozenset[str] = frozenset()  # keys of the events read with ingestion >= ingested_ms - overlap

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "read_ms": self.read_ms,
            "ingested_ms": self.ingested_ms,
            "appended": self.appended,
            "seen": sorted(self.seen),
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
            seen=frozenset(data.get("seen") or ()),
        )


def read_start(state: LiveState, now_ms: int, *, lookback_ms: int, floor_ms: int, open_start_ms: int) -> int:
    """Where this tick's read begins (event time, inclusive).

    A new sensor starts with the open window (or ``lookback`` before now, if earlier). Then
    ``lookback`` before the previous read began, or, if that read was cut short, where it
    stopped (while a busy stream catches up, late events are left to the settled load); never
    before ``floor_ms``.
    """
    if state.read_ms is None:
        start = min(open_start_ms, now_ms - lookback_ms)
    elif state.to_ms is not None:
        start = state.to_ms  # the rest of a read cut short: what precedes was just read
    else:
        start = state.read_ms - lookback_ms
    return max(start, floor_ms)


def is_new(state: LiveState, timestamp_ms: int, ingestion_ms: int, key: str = "") -> bool:
    """Whether an event read now was not appended by the previous read (see module docs)."""
    if state.read_ms is None or state.ingested_ms is None or state.from_ms is None:
        return True
    covered = timestamp_ms >= state.from_ms and (state.to_ms is None or timestamp_ms <= state.to_ms)
    if not covered:
        return True
    if ingestion_ms < state.ingested_ms - OVERLAP_MS:
        return False
    return key not in state.seen


def after_read(
    state: LiveState,
    *,
    start_ms: int,
    read_ms: int,
    stopped_at_ms: int | None,
    newest_ingestion_ms: int | None,
    appended: int = 0,
    read: Iterable[tuple[str, int]] = (),
) -> LiveState:
    """The cursor after a read from ``start_ms`` that began at ``read_ms``.

    ``stopped_at_ms``: the read was cut short (bounded work per tick); the timestamp of the last
    event it read, whose millisecond may hold more events (so the covered range ends just
    before it). ``newest_ingestion_ms``: the newest ingestion time among the events read;
    ``read``: their ``(key, ingestion time)``, of which those inside the overlap are kept.
    """
    newest = newest_ingestion_ms
    if state.ingested_ms is not None:
        newest = state.ingested_ms if newest is None else max(newest, state.ingested_ms)
    seen: frozenset[str] = frozenset()
    if newest is not None:
        recent = {key for key, ingested in read if ingested >= newest - OVERLAP_MS}
        seen = frozenset(recent) if len(recent) <= MAX_SEEN else frozenset()
    return LiveState(
        from_ms=start_ms,
        to_ms=None if stopped_at_ms is None else stopped_at_ms - 1,
        read_ms=read_ms,
        ingested_ms=newest,
        appended=state.appended + appended,
        seen=seen,
    )

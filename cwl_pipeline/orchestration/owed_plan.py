"""Loads a sensor asked for whose run failed or was cancelled: what is still owed, and when to ask again.

A sensor's request is spent once Dagster created its run: the run key is never launched twice,
and the sensor's own cursor has moved past the work. So a load whose run ended FAILURE or
CANCELED (a killed run worker is marked failed by run monitoring) is asked for again only if
something remembers it. Each sensor keeps that memory in its cursor (:class:`OwedState`) and
asks :func:`plan_owed` at every tick:

* a failed run is *owed* until a run that started after it succeeded in loading every one of
  its partitions (any run: a retry, a later pass, a backfill launched by hand);
* an owed load is requested again once its backoff passed and no run is loading its partitions,
  as attempt ``n + 1`` with the run key ``<original key>:attempt-<n + 1>`` (so Dagster does not
  skip it as a duplicate), at most ``policy.max_attempts`` attempts in all;
* after the last attempt it is *given up*: listed, never requested again, until a run loads it.

The owed list is bounded (:data:`MAX_OWED`); what falls out of it is reported, never dropped
silently. Everything here is pure: the sensor reads runs and materializations from Dagster
and passes in what they say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cwl_pipeline.core.windows import parse_partition_key, partition_key

MAX_OWED = 100
"""Owed loads kept in a cursor; beyond it the oldest given-up loads, then the oldest owed ones,
are dropped with an error note."""
MAX_RETRIES_PER_TICK = 10
"""Retries requested by one tick: recovering from a long outage does not flood the run queue."""
SCAN_OVERLAP = timedelta(minutes=10)
"""Failed runs updated this long before the last scan are listed again: a run store's update
times are not committed in order."""
INITIAL_LOOKBACK = timedelta(days=1)
"""How far back a sensor without owed state looks for failed runs."""

_ATTEMPT_SUFFIX = re.compile(r":attempt-\d+$")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed load is asked for again.

    The wait after attempt ``n`` failed is ``first_delay * factor ** (n - 1)``, at most
    ``max_delay``: by default 1, 4, 16 and 60 minutes, so five attempts span about 80 minutes
    plus the runs' own durations.
    """

    max_attempts: int = 5
    first_delay: timedelta = timedelta(minutes=1)
    factor: int = 4
    max_delay: timedelta = timedelta(hours=1)

    def delay_after(self, attempt: int) -> timedelta:
        """How long to wait after attempt ``attempt`` failed before asking for the next one."""
        return min(self.first_delay * self.factor ** max(0, attempt - 1), self.max_delay)


DEFAULT_RETRY = RetryPolicy()


def work_of(run_key: str) -> str:
    """The identity of a request's work: its run key without an ``:attempt-<n>`` suffix."""
    return _ATTEMPT_SUFFIX.sub("", run_key)


def retry_run_key(work: str, attempt: int) -> str:
    """The run key of attempt ``attempt`` of ``work`` (attempt 1 is the original key)."""
    return work if attempt <= 1 else f"{work}:attempt-{attempt}"


def partitions_of(first: str, last: str, size: timedelta | None) -> list[str]:
    """Partition keys ``first`` … ``last``: consecutive windows of ``size``, or ``[first]`` for
    partitions that are not time windows (``size`` None, e.g. export folders)."""
    if size is None or first == last:
        return [first]
    start, end = parse_partition_key(first), parse_partition_key(last)
    keys = []
    while start <= end:
        keys.append(partition_key(start))
        start += size
    return keys


@dataclass(frozen=True)
class FailedRun:
    """A run the sensor launched that ended FAILURE or CANCELED, as its tags describe it."""

    run_id: str
    work: str  # see work_of()
    kind: str  # the load kind tag: settled, sweep-15m, objects, export, ...
    first: str  # first partition key
    last: str  # last partition key (the same as first for one partition)
    attempt: int
    status: str  # FAILURE or CANCELED
    started_at: datetime  # a load of its partitions after this covers it
    ended_at: datetime

    def label(self, size: timedelta | None) -> str:
        """Human form, e.g. ``settled windows 2026-01-01-00:00..2026-01-01-01:45``."""
        if size is None:
            return f"{self.kind} folder {self.first}"
        if self.first == self.last:
            return f"{self.kind} window {self.first}"
        return f"{self.kind} windows {self.first}..{self.last}"

    def to_json(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "run_id": self.run_id,
            "work": self.work,
            "kind": self.kind,
            "first": self.first,
            "last": self.last,
            "attempt": self.attempt,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailedRun:
        """Inverse of :meth:`to_json`."""
        return cls(
            run_id=str(data["run_id"]),
            work=str(data["work"]),
            kind=str(data["kind"]),
            first=str(data["first"]),
            last=str(data["last"]),
            attempt=int(data["attempt"]),
            status=str(data["status"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]),
        )


@dataclass(frozen=True)
class OwedLoad:
    """A load still owed: its last failed attempt, when the next one is due, and whether that
    next attempt was requested already (at ``requested_at``)."""

    failed: FailedRun
    due_at: datetime
    requested_at: datetime | None = None

    def given_up(self, policy: RetryPolicy) -> bool:
        """Whether every attempt was spent."""
        return self.failed.attempt >= policy.max_attempts

    def to_json(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            **self.failed.to_json(),
            "due_at": self.due_at.isoformat(),
            "requested_at": self.requested_at.isoformat() if self.requested_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OwedLoad:
        """Inverse of :meth:`to_json`."""
        requested = data.get("requested_at")
        return cls(
            failed=FailedRun.from_json(data),
            due_at=datetime.fromisoformat(data["due_at"]),
            requested_at=datetime.fromisoformat(requested) if requested else None,
        )


@dataclass(frozen=True)
class OwedState:
    """The owed part of a sensor's cursor.

    ``loads`` maps a work (see :func:`work_of`) to what is owed; ``scanned_until`` is the update
    time up to which failed runs were read, and ``seen`` the failed runs read within
    :data:`SCAN_OVERLAP` of it (run id → update time), which the overlap lists again.
    """

    loads: dict[str, OwedLoad] = field(default_factory=dict)
    scanned_until: datetime | None = None
    seen: dict[str, float] = field(default_factory=dict)

    def scan_since(self, now: datetime) -> datetime:
        """The update time from which to list failed runs at this tick."""
        if self.scanned_until is None:
            return now - INITIAL_LOOKBACK
        return self.scanned_until - SCAN_OVERLAP

    def after_scan(self, runs: Mapping[str, datetime], scanned_until: datetime) -> OwedState:
        """Record a scan: the failed runs listed (id → update time) and how far it reached."""
        keep_from = (scanned_until - SCAN_OVERLAP).timestamp()
        seen = {**self.seen, **{run_id: t.timestamp() for run_id, t in runs.items()}}
        return replace(
            self,
            scanned_until=scanned_until,
            seen={run_id: t for run_id, t in seen.items() if t >= keep_from},
        )

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "loads": [load.to_json() for _, load in sorted(self.loads.items())],
            "scanned_until": self.scanned_until.isoformat() if self.scanned_until else None,
            "seen": dict(sorted(self.seen.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> OwedState:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state."""
        if not data:
            return cls()
        loads = [OwedLoad.from_json(item) for item in data.get("loads") or []]
        scanned = data.get("scanned_until")
        return cls(
            loads={load.failed.work: load for load in loads},
            scanned_until=datetime.fromisoformat(scanned) if scanned else None,
            seen={str(k): float(v) for k, v in (data.get("seen") or {}).items()},
        )


@dataclass(frozen=True)
class Note:
    """One line for the sensor's tick log."""

    level: Literal["info", "warning", "error"]
    text: str


@dataclass(frozen=True)
class Retry:
    """Ask for ``load`` again as attempt ``attempt`` under ``run_key``."""

    load: OwedLoad
    attempt: int
    run_key: str


@dataclass(frozen=True)
class OwedPlan:
    """The outcome of one tick: retries to request, notes to log, the new owed state."""

    retries: list[Retry]
    notes: list[Note]
    state: OwedState

    def changed_from(self, before: OwedState) -> bool:
        """Whether the owed list differs from ``before`` (a load added, resolved, retried)."""
        return _view(before) != _view(self.state)


def _view(state: OwedState) -> dict[str, tuple[int, bool]]:
    return {work: (load.failed.attempt, load.requested_at is not None) for work, load in state.loads.items()}


def plan_owed(
    *,
    state: OwedState,
    failures: Sequence[FailedRun],
    loaded: Mapping[str, datetime],
    busy: AbstractSet[str],
    now: datetime,
    policy: RetryPolicy,
    size: timedelta | None,
    max_owed: int = MAX_OWED,
    max_retries: int = MAX_RETRIES_PER_TICK,
) -> OwedPlan:
    """Fold new failed runs into the owed list and decide what to request again at ``now``.

    ``failures`` are failed runs not seen at earlier ticks; ``loaded`` maps a partition key to
    the start of the latest *successful* run that loaded it; ``busy`` holds the partitions a
    queued or running run of the stream is loading (a retry waits for it, rather than racing
    it for the same rows); ``size`` is the window length (None: one partition per load).
    ``max_owed`` bounds the owed list, ``max_retries`` the retries requested at one tick.
    """
    notes: list[Note] = []
    loads = dict(state.loads)
    for failed in sorted(failures, key=lambda f: (f.ended_at, f.attempt)):
        current = loads.get(failed.work)
        if current is not None and current.failed.attempt >= failed.attempt:
            continue  # an older attempt, or one already folded in
        if _covered(failed, loaded, size):
            notes.append(
                Note(
                    "info",
                    f"run {_short(failed.run_id)} of {failed.label(size)} ended {failed.status}, "
                    "but a later run loaded it: nothing owed",
                )
            )
            loads.pop(failed.work, None)
            continue
        load = OwedLoad(failed, due_at=failed.ended_at + policy.delay_after(failed.attempt))
        loads[failed.work] = load
        if load.given_up(policy):
            notes.append(
                Note(
                    "error",
                    f"giving up on {failed.label(size)}: attempt {failed.attempt}/{policy.max_attempts} "
                    f"(run {failed.run_id}) ended {failed.status}; it stays owed until it is loaded by "
                    "hand (materialize the partition)",
                )
            )
        else:
            notes.append(
                Note(
                    "warning",
                    f"run {failed.run_id} of {failed.label(size)} ended {failed.status} "
                    f"(attempt {failed.attempt}/{policy.max_attempts}); attempt {failed.attempt + 1} "
                    f"due at {_clock(load.due_at)}",
                )
            )

    retries: list[Retry] = []
    for work, load in sorted(loads.items(), key=lambda item: (item[1].failed.ended_at, item[0])):
        failed = load.failed
        if _covered(failed, loaded, size):
            notes.append(Note("info", f"{failed.label(size)} was loaded by a later run: no longer owed"))
            del loads[work]
            continue
        if load.given_up(policy) or load.requested_at is not None or now < load.due_at:
            continue
        if busy.intersection(partitions_of(failed.first, failed.last, size)):
            continue  # a run is loading these partitions; its outcome decides
        if len(retries) >= max_retries:
            continue
        attempt = failed.attempt + 1
        retries.append(Retry(load, attempt, retry_run_key(work, attempt)))
        loads[work] = replace(load, requested_at=now)
        notes.append(
            Note(
                "info",
                f"re-requesting {failed.label(size)} (attempt {attempt}/{policy.max_attempts}) "
                f"after run {failed.run_id} ended {failed.status}",
            )
        )

    loads, dropped = _bounded(loads, policy, max_owed)
    for load in dropped:
        notes.append(
            Note(
                "error",
                f"owed list full ({max_owed}): {load.failed.label(size)} (last run {load.failed.run_id}, "
                f"attempt {load.failed.attempt}) is no longer tracked; load it by hand",
            )
        )
    return OwedPlan(retries, notes, replace(state, loads=loads))


def describe_owed(state: OwedState, policy: RetryPolicy, size: timedelta | None, now: datetime) -> str:
    """One line listing what is owed, for the tick log and skip messages ("" when nothing)."""
    if not state.loads:
        return ""
    parts = []
    for load in sorted(state.loads.values(), key=lambda item: item.failed.ended_at):
        failed = load.failed
        if load.given_up(policy):
            what = f"GIVEN UP after {failed.attempt}/{policy.max_attempts} (run {_short(failed.run_id)})"
        elif load.requested_at is not None:
            what = f"attempt {failed.attempt + 1}/{policy.max_attempts} requested"
        elif now < load.due_at:
            what = f"attempt {failed.attempt + 1}/{policy.max_attempts} due at {_clock(load.due_at)}"
        else:
            what = f"attempt {failed.attempt + 1}/{policy.max_attempts} waits for a running load"
        parts.append(f"{failed.label(size)}: {what}")
    return f"{len(parts)} load(s) owed: " + "; ".join(parts)


def _covered(failed: FailedRun, loaded: Mapping[str, datetime], size: timedelta | None) -> bool:
    for key in partitions_of(failed.first, failed.last, size):
        at = loaded.get(key)
        if at is None or at < failed.started_at:
            return False
    return True


def _bounded(
    loads: dict[str, OwedLoad], policy: RetryPolicy, max_owed: int
) -> tuple[dict[str, OwedLoad], list[OwedLoad]]:
    if len(loads) <= max_owed:
        return loads, []
    # Evict given-up loads first (they are asked for no more), then the oldest.
    order = sorted(loads.values(), key=lambda load: (not load.given_up(policy), load.failed.ended_at))
    dropped = order[: len(loads) - max_owed]
    gone = {load.failed.work for load in dropped}
    return {work: load for work, load in loads.items() if work not in gone}, dropped


def _short(run_id: str) -> str:
    return run_id[:8]


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")

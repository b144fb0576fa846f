"""Reconciliation with CloudWatch's own count: per ingestion hour, what CloudWatch counted
(``IncomingLogEvents``) against what the pipeline stored, and what to do about a shortfall.

CloudWatch counts every event a log group accepted in an hour, by *ingestion* time. The pipeline
stores each event with its ``ingestion_time``, in the events table or, if it did not fit the
schema, in the rejects table. So for an hour ``H`` the two counts agree once every window an
event ingested in ``H`` can belong to has had its final late-data sweep:

* an event ingested in ``H`` carries an event time from ``H - 14 days`` (PutLogEvents refuses
  older events) to ``H + 1 h + 2 hours`` (it refuses events further in the future);
* so the last window it can land in ends by ``H + 3 h + window``, swept for the last time
  ``final_sweep`` later (:func:`due_at`).

Before that moment a short hour is *within the horizon*: a sweep still to come may load the
missing events. After it, a short hour *needs a heal*: the missing events were ingested in
``H`` for windows already past their final sweep when they arrived, i.e. windows ending
before ``H + 1 h - final_sweep`` (:func:`heal_ranges`). A heal reads those windows again and
inserts only the missing rows, newest day first; the older days only if a later
reconciliation still finds the hour short. Once every readable window was read again, what is
still missing was not readable at the source: the sensor counts the events ingested in ``H``
that carry an event time before the stream's ``start`` and notes the log groups whose
retention may have expired some (:func:`explain`). A shortfall those do not account for is
*unexplained*, and fails the check.

Everything here is pure: the Dagster side reads the counts and passes them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cwl_pipeline.core.windows import floor_to_window

HOUR = timedelta(hours=1)
MAX_EVENT_AGE = timedelta(days=14)
"""PutLogEvents refuses events older than 14 days (and older than the group's retention)."""
MAX_EVENT_AHEAD = timedelta(hours=2)
"""PutLogEvents refuses events more than 2 hours in the future."""
HEAL_FIRST_SPAN = timedelta(days=1)
"""The first heal of an hour reads this much (the newest windows it may concern)."""


def floor_to_hour(moment: datetime) -> datetime:
    """Start of the UTC hour containing ``moment``."""
    return floor_to_window(moment, HOUR)


def ceil_to_window(moment: datetime, size: timedelta) -> datetime:
    """Start of the first window that begins at or after ``moment``."""
    floor = floor_to_window(moment, size)
    return floor if floor == moment else floor + size


class HourState(StrEnum):
    """How an ingestion hour compares."""

    AGREES = "agrees"
    WITHIN_HORIZON = "short, within the sweep horizon"  # a sweep still to come may load them
    SHORT = "short past the final sweep"  # needs a heal, or is unexplained
    EXPLAINED = "short, explained at the source"
    SURPLUS = "surplus"  # stored more than CloudWatch counted


@dataclass(frozen=True)
class Horizon:
    """The stream's timing that decides when an ingestion hour can be judged."""

    window: timedelta
    settle_lag: timedelta
    final_sweep: timedelta  # the largest late-data sweep horizon (or the settle lag)

    def settled_by(self, hour: datetime) -> datetime:
        """When the settled loads of every window ending by the hour's end have run."""
        return hour + HOUR + self.window + self.settle_lag

    def due_at(self, hour: datetime) -> datetime:
        """When every window an event ingested in ``hour`` can belong to had its final sweep
        (the last one ends by ``hour + 1 h + 2 h + window``; its sweep runs within a window)."""
        return hour + HOUR + MAX_EVENT_AHEAD + 2 * self.window + self.final_sweep


@dataclass(frozen=True)
class HealRecord:
    """What the reconciliation did about one short hour (kept in the sensor's cursor)."""

    attempts: int = 0  # heal loads requested
    shortfall: int = 0  # CloudWatch minus stored when last looked at
    probed: bool = False  # the source was asked why, after every readable window was re-read
    explained: int = 0  # events of the shortfall the source accounts for
    reason: str = ""  # what accounts for them, or why nothing does

    def to_json(self) -> dict[str, Any]:
        """Serializable form."""
        return {
            "attempts": self.attempts,
            "shortfall": self.shortfall,
            "probed": self.probed,
            "explained": self.explained,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HealRecord:
        """Inverse of :meth:`to_json`."""
        return cls(
            attempts=int(data.get("attempts") or 0),
            shortfall=int(data.get("shortfall") or 0),
            probed=bool(data.get("probed")),
            explained=int(data.get("explained") or 0),
            reason=str(data.get("reason") or ""),
        )

    def accounts_for(self, shortfall: int) -> bool:
        """Whether the source's explanation covers ``shortfall`` missing events."""
        return self.probed and 0 < shortfall <= self.explained


@dataclass(frozen=True)
class HourVerdict:
    """One ingestion hour: CloudWatch's count, the stored count, and what it means."""

    hour: datetime
    cloudwatch: int
    stored: int
    state: HourState
    note: str = ""

    @property
    def difference(self) -> int:
        """Stored minus counted (negative: a shortfall)."""
        return self.stored - self.cloudwatch


def hours_to_compare(now: datetime, lookback: timedelta, horizon: Horizon, start: datetime) -> list[datetime]:
    """Ingestion hours of the last ``lookback`` whose settled loads ran, oldest first; none
    before the hour of the stream's ``start``."""
    first = max(floor_to_hour(now - lookback), floor_to_hour(start))
    hours, hour = [], first
    while horizon.settled_by(hour) <= now:
        hours.append(hour)
        hour += HOUR
    return hours


def classify(
    hour: datetime,
    cloudwatch: int,
    stored: int,
    now: datetime,
    horizon: Horizon,
    record: HealRecord | None = None,
) -> HourVerdict:
    """How ``hour`` compares at ``now``; ``record`` is what a heal found out about it so far."""
    if stored == cloudwatch:
        return HourVerdict(hour, cloudwatch, stored, HourState.AGREES)
    if stored > cloudwatch:
        return HourVerdict(
            hour,
            cloudwatch,
            stored,
            HourState.SURPLUS,
            f"{stored - cloudwatch} more rows stored than CloudWatch counted",
        )
    shortfall = cloudwatch - stored
    due = horizon.due_at(hour)
    if now < due:
        return HourVerdict(
            hour,
            cloudwatch,
            stored,
            HourState.WITHIN_HORIZON,
            f"{shortfall} not stored yet; the final sweep of its windows is due by {due:%Y-%m-%d %H:%M}",
        )
    if record is not None and record.accounts_for(shortfall):
        return HourVerdict(hour, cloudwatch, stored, HourState.EXPLAINED, record.reason)
    note = f"{shortfall} missing past the final sweep"
    if record is not None and record.attempts:
        note += f"; {record.attempts} heal(s) so far"
    if record is not None and record.probed:
        note += f"; {record.reason}"
    return HourVerdict(hour, cloudwatch, stored, HourState.SHORT, note)


def heal_ranges(
    hour: datetime,
    *,
    horizon: Horizon,
    start: datetime,
    oldest_readable: datetime | None = None,
) -> list[tuple[datetime, datetime]]:
    """The windows a heal of ``hour`` reads, newest day first: ``[begin, end)`` ranges.

    They are the windows that were past their final sweep when events of ``hour`` could arrive
    (ending before ``hour + 1 h - final_sweep``), no older than 14 days before ``hour`` (the
    oldest event time CloudWatch accepted then), nor than the stream's ``start``, nor than
    ``oldest_readable`` (the groups' retention). Empty if no such window exists.
    """
    end = floor_to_window(hour + HOUR - horizon.final_sweep, horizon.window)
    begin = max(floor_to_window(hour - MAX_EVENT_AGE, horizon.window), start)
    if oldest_readable is not None:
        begin = max(begin, ceil_to_window(oldest_readable, horizon.window))
    if begin >= end:
        return []
    newest = max(begin, end - HEAL_FIRST_SPAN)
    return [(newest, end)] + ([(begin, newest)] if begin < newest else [])


@dataclass(frozen=True)
class Explanation:
    """What the source says about events ingested in an hour that are not stored."""

    before_start: int  # ingested in the hour, stamped before the stream's start
    expired_groups: tuple[str, ...] = ()  # groups whose retention may have expired some


def explain(shortfall: int, source: Explanation, start: datetime) -> tuple[int, str]:
    """How many of ``shortfall`` missing events ``source`` accounts for, and the reason."""
    parts, accounted = [], 0
    if source.before_start:
        accounted += source.before_start
        parts.append(
            f"{source.before_start} event(s) ingested then carry event times before the stream's "
            f"start ({start:%Y-%m-%d %H:%M}) and are outside its windows"
        )
    rest = shortfall - accounted
    if rest > 0 and source.expired_groups:
        accounted += rest
        parts.append(
            f"{rest} event(s) are no longer at the source: their event times may be past the "
            f"retention of {', '.join(source.expired_groups)}"
        )
    if shortfall - accounted > 0:
        parts.append(
            f"{shortfall - accounted} event(s) are unexplained: every readable window was read "
            "again and the source holds no other events ingested then"
        )
    return min(accounted, shortfall), "; ".join(parts)


@dataclass(frozen=True)
class HealRequest:
    """Read ``[start, end)`` again for ``hour`` (attempt ``attempt``), inserting what is missing."""

    hour: datetime
    attempt: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Note:
    """A line for the sensor's tick log."""

    level: str  # "info", "warning", "error"
    text: str


@dataclass
class HealPlan:
    """What one reconciliation asks for, remembers and says."""

    verdicts: list[HourVerdict]
    requests: list[HealRequest] = field(default_factory=list)
    records: dict[datetime, HealRecord] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


def plan_heals(
    *,
    counts: Mapping[datetime, tuple[int, int]],
    records: Mapping[datetime, HealRecord],
    now: datetime,
    horizon: Horizon,
    start: datetime,
    max_attempts: int,
    oldest_readable: datetime | None,
    probe: Callable[[datetime], Explanation],
) -> HealPlan:
    """Classify each hour of ``counts`` (hour → (CloudWatch, stored)) and plan its heals.

    A short hour past its final sweep is healed up to ``max_attempts`` times: the newest day of
    :func:`heal_ranges` first, then the older days, then all of them again. Once every range was
    read (or the attempts ran out) and the hour is still short, ``probe`` asks the source what
    it holds for that hour, once; a shortfall it accounts for is *explained*. An hour that
    agrees again is reported healed and forgotten. Records of hours no longer compared are
    dropped.
    """
    plan = HealPlan(verdicts=[])
    for hour in sorted(counts):
        cloudwatch, stored = counts[hour]
        record = records.get(hour)
        verdict = classify(hour, cloudwatch, stored, now, horizon, record)
        if verdict.state is not HourState.SHORT:
            if record is not None and record.attempts and verdict.state is HourState.AGREES:
                healed = f"{hour:%Y-%m-%d %H:00}: agrees with CloudWatch after {record.attempts} heal(s)"
                plan.notes.append(Note("info", healed))
            elif record is not None and verdict.state is HourState.EXPLAINED:
                plan.records[hour] = record
            plan.verdicts.append(verdict)
            continue
        shortfall = cloudwatch - stored
        record = replace(record or HealRecord(), shortfall=shortfall)
        ranges = heal_ranges(hour, horizon=horizon, start=start, oldest_readable=oldest_readable)
        if not record.probed and record.attempts >= min(len(ranges), max_attempts):
            accounted, reason = explain(shortfall, probe(hour), start)
            record = replace(record, probed=True, explained=accounted, reason=reason)
            verdict = classify(hour, cloudwatch, stored, now, horizon, record)
        label = f"{hour:%Y-%m-%d %H:00}"
        said = f"{label}: CloudWatch counted {cloudwatch} events ingested, {stored} stored"
        if verdict.state is HourState.EXPLAINED:
            plan.notes.append(Note("warning", f"{said}; explained: {record.reason}"))
        elif record.attempts < max_attempts and ranges:
            attempt = record.attempts + 1
            begin, end = ranges[attempt - 1] if attempt <= len(ranges) else (ranges[-1][0], ranges[0][1])
            plan.requests.append(HealRequest(hour, attempt, begin, end))
            record = replace(record, attempts=attempt)
            plan.notes.append(
                Note(
                    "warning",
                    f"{said}: short by {shortfall} past the final sweep; heal {attempt}/{max_attempts} "
                    f"reads windows {begin:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} again and inserts "
                    "what is missing",
                )
            )
        else:
            why = record.reason or "no window is readable for it"
            failed = f"{said}: short by {shortfall}, unexplained after {record.attempts} heal(s): {why}"
            plan.notes.append(Note("error", failed))
        plan.records[hour] = record
        plan.verdicts.append(verdict)
    return plan


@dataclass(frozen=True)
class Totals:
    """Sums over the compared hours, for metadata and plots."""

    cloudwatch: int
    stored: int
    shortfall_past_final_sweep: int
    shortfall_within_horizon: int
    shortfall_explained: int
    surplus: int

    @property
    def difference(self) -> int:
        """Stored minus counted over every compared hour."""
        return self.stored - self.cloudwatch


def totals(verdicts: Sequence[HourVerdict]) -> Totals:
    """Sum the verdicts by state."""

    def short(state: HourState) -> int:
        return sum(-v.difference for v in verdicts if v.state is state)

    return Totals(
        cloudwatch=sum(v.cloudwatch for v in verdicts),
        stored=sum(v.stored for v in verdicts),
        shortfall_past_final_sweep=short(HourState.SHORT),
        shortfall_within_horizon=short(HourState.WITHIN_HORIZON),
        shortfall_explained=short(HourState.EXPLAINED),
        surplus=sum(v.difference for v in verdicts if v.state is HourState.SURPLUS),
    )


def hours_table(verdicts: Sequence[HourVerdict]) -> str:
    """The verdicts as a Markdown table, newest hour first."""
    lines = ["| hour (UTC) | CloudWatch | stored | difference | state | note |", "|---|---|---|---|---|---|"]
    for v in sorted(verdicts, key=lambda v: v.hour, reverse=True):
        note = v.note.replace("|", "/")
        counts = f"{v.cloudwatch} | {v.stored} | {v.difference:+d}"
        lines.append(f"| {v.hour:%Y-%m-%d %H:00} | {counts} | {v.state} | {note} |")
    return "\n".join(lines)


def text_plot(verdicts: Sequence[HourVerdict], width: int = 40) -> str:
    """A bar per hour (stored out of counted), for a fixed-width Markdown block."""
    largest = max((max(v.cloudwatch, v.stored) for v in verdicts), default=0)
    lines = []
    for v in sorted(verdicts, key=lambda v: v.hour):
        filled = round(width * v.stored / largest) if largest else 0
        counted = round(width * v.cloudwatch / largest) if largest else 0
        bar = "#" * min(filled, counted) + "." * max(0, counted - filled) + "+" * max(0, filled - counted)
        lines.append(f"{v.hour:%m-%d %H:00} {bar:<{width}} {v.stored}/{v.cloudwatch} {v.difference:+d}")
    legend = "# stored and counted   . counted, not stored   + stored, not counted"
    return "\n".join(["```", *lines, legend, "```"])


def records_to_json(records: Mapping[datetime, HealRecord]) -> dict[str, Any]:
    """Heal records keyed by ISO hour, for a cursor or metadata."""
    return {hour.isoformat(): record.to_json() for hour, record in sorted(records.items())}


def records_from_json(data: Mapping[str, Any] | None) -> dict[datetime, HealRecord]:
    """Inverse of :func:`records_to_json`."""
    return {
        datetime.fromisoformat(hour).astimezone(UTC): HealRecord.from_json(value)
        for hour, value in (data or {}).items()
    }

"""What a source hands to the load path: one scope's rows and rejects, and the read's figures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from cwl_pipeline.load.tables import LoadScope

Facts = dict[str, int | list[str]]
"""Run-level figures of a read: counters (summed over reads) and name lists (merged)."""


@dataclass(kw_only=True)
class SourceRead(ABC):
    """Rows and rejects of one scope, ready to replace that scope atomically.

    ``events_at_source`` is what the source itself yielded (FilterLogEvents events, records
    decoded from objects), counted before normalization: the completeness check compares it
    with what BigQuery holds afterwards.

    ``stored_scope`` is where copies of the read's events may already be stored by *other*
    loads of the stream (None: only in ``scope`` itself). An S3 read sets it to the hours of
    its event times: Firehose may deliver an event again in another delivery window, and two
    export tasks may both export it. An event with a copy there is not stored again.
    """

    scope: LoadScope
    label: str
    events_at_source: int
    stored_scope: LoadScope | None = None
    facts: Facts = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)  # objects deleted between listing and reading

    @abstractmethod
    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The rows and the rejects to write."""

    def chunks(self) -> Iterator[tuple[pa.Table, pa.Table, pa.Table | None]]:
        """The rows, the rejects and the raw rows (None: no raw table) to write, a chunk at a
        time (the load stages each as it comes). Reads that hold everything in memory anyway
        yield :meth:`tables` and :meth:`raw_rows` once."""
        yield (*self.tables(), self.raw_rows())

    def rereadable(self) -> bool:
        """Whether :meth:`reread` can make :meth:`chunks` read the source a second time."""
        return False

    def reread(self) -> None:
        """Forget a finished pass of :meth:`chunks`: the next one reads the source again."""
        raise NotImplementedError(f"{self.label} cannot be read twice")

    def count_staged_duplicates(
        self, rows: Mapping[str | None, int], rejects: Mapping[str | None, int]
    ) -> None:
        """Duplicates the load dropped across chunks (per ``source_object``), for the figures."""
        return None

    @abstractmethod
    def part_figures(self, loaded_at: datetime) -> dict[Hashable, dict[str, object]]:
        """Figures per part of the scope (a window start, an export folder), for metadata."""

    def raw_rows(self) -> pa.Table | None:
        """The raw rows to write (None: the read writes no raw table)."""
        return None

    @property
    def events_filtered(self) -> int:
        """Events the stream's filter dropped: read, never stored."""
        value = self.facts.get("events_filtered", 0)
        return value if isinstance(value, int) else 0

    @property
    def rows_loaded(self) -> int:
        """Rows for the events table."""
        return self.tables()[0].num_rows

    @property
    def rows_rejected(self) -> int:
        """Rows for the rejects table."""
        return self.tables()[1].num_rows

    @property
    def duplicates_dropped(self) -> int:
        """Events read twice and stored once."""
        return 0

    @property
    def unreadable(self) -> list[str]:
        """Objects that could not be read now; rows stored from them earlier are kept."""
        return []

    @property
    def unreadable_event_times(self) -> tuple[datetime, datetime] | None:
        """``[earliest, latest)`` event time of any row stored from the unreadable objects, if
        the source bounds it (None: unbounded)."""
        return None

    @property
    def nothing_read(self) -> bool:
        """True when the source found nothing at all to read: the scope is then left as it is."""
        return False

    def without_stored(self, kept: Mapping[str, set[str]]) -> None:
        """Drop the events already stored from unreadable objects (``uri -> event ids``)."""
        if kept:
            raise NotImplementedError(f"{type(self).__name__} has no unreadable objects")


class SharedRead(Protocol):
    """Several reads fed by one pass over their source (a routed Firehose step: each object
    read once, its events split among the routes' reads).

    :meth:`chunks` yields ``(key, rows, rejects, raw)``, the key naming the read in
    ``reads`` the chunk belongs to; once it has run to its end, every read's scope and
    figures are set, as after its own :meth:`SourceRead.chunks`.
    """

    @property
    def chunk_events(self) -> int:
        """Events decoded at a time: also the rows and rejects a read's parts are gathered to
        before they are staged."""
        ...

    @property
    def reads(self) -> Mapping[str, SourceRead]:
        """The reads, by key."""
        ...

    def chunks(
        self, only: Iterable[str] | None = None
    ) -> Iterator[tuple[str, pa.Table, pa.Table, pa.Table | None]]:
        """The chunks of the reads in ``only`` (default: all), as they are decoded."""
        ...


def merge_facts(into: Facts, facts: Facts) -> None:
    """Add ``facts`` to ``into``: counters summed, lists merged without repeats."""
    for name, value in facts.items():
        if isinstance(value, list):
            current = into.get(name, [])
            assert isinstance(current, list)
            into[name] = list(dict.fromkeys([*current, *value]))
        else:
            current_count = into.get(name, 0)
            assert isinstance(current_count, int)
            into[name] = current_count + value

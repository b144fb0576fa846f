"""Write what sources read into a stream's tables: one atomic replacement per read.

:func:`load` is the only place rows reach BigQuery for every source: it ensures the tables,
counts what the scope held before, keeps rows of objects that became unreadable, replaces the
scope in one transaction and adds the read's figures to a :class:`LoadOutcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cwl_pipeline.adapters.bigquery import BigQueryLoader
from cwl_pipeline.adapters.sql_scopes import in_scope
from cwl_pipeline.load.reads import Facts, SourceRead, merge_facts
from cwl_pipeline.load.tables import LoadScope, TablePair, ensure_tables, replace_rows, rows_in_scope

LoaderFactory = Callable[[], AbstractContextManager[BigQueryLoader]]
"""Opens a BigQuery loader (e.g. ``BigQueryWarehouse.loader``)."""


@dataclass(frozen=True)
class LoadFacts:
    """What a load did to its scope, for the load checks."""

    events_read: int  # counted at the source, less the duplicates it delivered
    rows_loaded: int
    rows_rejected: int
    rows_before: int  # events + rejects rows in scope before the load
    scope: LoadScope
    final_sweep: bool  # this load was the stream's last late-data sweep


@dataclass
class LoadOutcome:
    """Totals of every read of one load, with figures per part (window or folder)."""

    parts: dict[Hashable, dict[str, object]] = field(default_factory=dict)
    events_at_source: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_dropped: int = 0
    rows_before: int = 0
    rows_kept_from_unreadable: int = 0
    objects_vanished: int = 0
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0
    steps: int = 0
    facts: Facts = field(default_factory=dict)

    def run_metadata(self) -> dict[str, object]:
        """Facts of the load as a whole, shared by every part it wrote."""
        metadata: dict[str, object] = {
            name: ", ".join(value) if isinstance(value, list) else value for name, value in self.facts.items()
        }
        metadata.update(
            replace_steps=self.steps,
            bytes_staged=self.staged_bytes,
            bigquery_job_ids=", ".join(self.job_ids) or "none (nothing to replace)",
        )
        if self.objects_vanished or self.rows_kept_from_unreadable:
            metadata["objects_vanished"] = self.objects_vanished
            metadata["rows_kept_from_unreadable_objects"] = self.rows_kept_from_unreadable
        return metadata

    def check_facts(self, scope: LoadScope, *, final_sweep: bool = False) -> LoadFacts:
        """What the load checks compare with BigQuery, for ``scope`` (the whole load's)."""
        return LoadFacts(
            events_read=self.events_at_source - self.duplicates_dropped,
            rows_loaded=self.rows_loaded,
            rows_rejected=self.rows_rejected,
            rows_before=self.rows_before,
            scope=scope,
            final_sweep=final_sweep,
        )


def load(
    reads: Iterable[SourceRead], tables: TablePair, loaders: LoaderFactory, log: logging.Logger, name: str
) -> LoadOutcome:
    """Replace each read's scope with its rows and rejects, one transaction per read.

    ``reads`` is consumed lazily, so a source can read step by step: only one read's rows are
    held at a time. ``name`` (the stream) prefixes log lines.
    """
    outcome = LoadOutcome()
    with ExitStack() as opened:
        loader: BigQueryLoader | None = None
        for read in reads:
            if loader is None:
                # Opened once the source has read: a source that fails, fails before BigQuery.
                loader = opened.enter_context(loaders())
                ensure_tables(loader, tables)
            _load_read(loader, tables, read, outcome, log, name)
    return outcome


def _load_read(
    loader: BigQueryLoader,
    tables: TablePair,
    read: SourceRead,
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
) -> None:
    for uri in read.unreadable:
        log.warning(f"{name}: unreadable object {uri} (one reject recorded)")
    for uri in read.vanished:
        log.warning(f"{name}: {uri} was deleted after it was listed; its rows are kept")
    outcome.objects_vanished += len(read.vanished)
    merge_facts(outcome.facts, read.facts)
    if read.nothing_read:
        # Nothing to read, nothing to replace: rows of objects gone from S3 stay.
        log.info(f"{name}: nothing to load for {read.label}")
        outcome.parts.update(read.part_figures(datetime.now(UTC)))
        return
    outcome.rows_before += sum(rows_in_scope(loader, tables, read.scope))
    if read.unreadable:
        outcome.rows_kept_from_unreadable += _keep_rows_of_unreadable(loader, tables, read, log, name)
    rows, rejects = read.tables()
    result = replace_rows(loader, tables, read.scope, rows, rejects, read.label)
    outcome.parts.update(read.part_figures(datetime.now(UTC)))
    outcome.events_at_source += read.events_at_source
    outcome.rows_loaded += rows.num_rows
    outcome.rows_rejected += rejects.num_rows
    outcome.duplicates_dropped += read.duplicates_dropped
    outcome.job_ids += result.job_ids
    outcome.staged_bytes += result.staged_bytes
    outcome.steps += 1
    log.info(
        f"{name} {read.label}: {read.events_at_source} events read, {rows.num_rows} loaded, "
        f"{rejects.num_rows} rejected, {read.duplicates_dropped} duplicates dropped"
    )


def _keep_rows_of_unreadable(
    loader: BigQueryLoader, tables: TablePair, read: SourceRead, log: logging.Logger, name: str
) -> int:
    """Rows stored earlier from objects unreadable now stay; their events are not stored twice."""
    kept = loader.select(
        tables.events.table, ["source_object", "event_id"], in_scope("source_object", read.unreadable)
    )
    if kept:
        log.warning(f"{name}: {len(kept)} rows loaded earlier from objects that are unreadable now are kept")
    by_uri: dict[str, set[str]] = {}
    for row in kept:
        by_uri.setdefault(row["source_object"], set()).add(row["event_id"])
    read.without_stored(by_uri)
    return len(kept)

"""Write what sources read into a stream's tables, one read at a time, in one of three modes.

:func:`load` is the only place rows reach BigQuery for every source. How it writes a read is
its :class:`WriteMode`, chosen by the kind of load (see ``docs/cost.md``):

* ``REPLACE`` (a load launched by hand, a backfill: re-deriving rows): one transaction deletes
  the scope and inserts what was read. BigQuery bills every partition it modifies.
* ``INSERT_MISSING`` (settled loads, sweeps, S3 deliveries): only staged rows whose key is
  not stored yet are inserted, in a transaction that inserts a row only if its key is still
  absent (so a retried or repeated load inserts nothing twice).
  No DELETE: BigQuery bills the scans only, and a load that finds nothing new writes nothing.
  A read whose scope holds rows of another reader (ids derived from an export where it reads
  CloudWatch's own ids, or the reverse) replaces the scope instead: ids never mix in a window.

Exactly once across scopes: a read may name a wider ``stored_scope`` (S3 reads: the hours of
their event times). An event whose (id, time) is already stored there by another load is not
stored again, in any mode: the copy stored first wins, and replacing its scope later keeps it
(the other scopes never inserted it). The checks count such events as ``stored_elsewhere``.
Bounded memory: a read hands its rows over in chunks (:meth:`SourceRead.chunks`), each staged
with its own load job as it comes, so a load holds one chunk, never a whole window or range.
Everything that needs the whole read happens in BigQuery, against the staged rows: an event
staged twice (delivered twice) is inserted once, its first copy (``QUALIFY ROW_NUMBER()``);
stored keys are looked up with anti-joins (``NOT EXISTS``), and the figures (duplicates, rows
stored in the scope, copies stored elsewhere, the id families of the other-reader rule) are
counted by one query per table before the transaction.

A load may first compare what it read with what its scope holds (``compare_first``: the
sweeps, which usually find nothing new): the count and a key digest of the read's rows and
rejects against the same of the scope, one query per table reading ids and times. Equal, the
read is done: nothing staged, no load job, no join. Otherwise the source is read again and
written as above.

* ``LIVE`` (refreshes of the still-open window): the rows ingested since the previous refresh
  are appended to the live table through the Storage Write API: no query, no load job.

A stream with a raw table gets its raw rows written in the same transaction, in the same
mode and scope (the rejects scope: the raw table has the rejects table's metadata columns).
``LIVE`` appends write no raw rows: the window's settled load writes them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from cwl_pipeline.adapters.bigquery_counts import PreparedReplace, StagedCounts
from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_staging import StagingTable
from cwl_pipeline.adapters.bigquery_transactions import Replacement, ScopeWrite
from cwl_pipeline.adapters.bigquery_write import StreamAppender
from cwl_pipeline.adapters.sql_scopes import Scope, all_of, in_scope, time_scope
from cwl_pipeline.core.identity import DERIVED_ID_PREFIX
from cwl_pipeline.core.key_digest import KeyDigest, key_hashes
from cwl_pipeline.load.reads import Facts, SharedRead, SourceRead, merge_facts
from cwl_pipeline.load.tables import (
    LIVE_KEY,
    LoadScope,
    StreamTables,
    ensure_recent_view,
    ensure_tables,
    event_keys,
    replace_rows,
)


class WriteMode(StrEnum):
    """How :func:`load` writes a read (see the module docs)."""

    REPLACE = "replace"
    INSERT_MISSING = "insert_missing"
    LIVE = "live"


REFRESH = "refresh"
"""The kind of load of a still-open window's refreshes."""
MANUAL = "manual"
"""The kind of a load launched by hand (no kind tag): a UI materialization, a backfill."""


def write_mode(kind: str, *, live_available: bool) -> WriteMode:
    """How a load of ``kind`` writes: a refresh appends to the live table, the sensors' settled
    loads and sweeps insert what is missing, anything else (a run launched by hand, a backfill)
    replaces its windows."""
    if kind == REFRESH:
        return WriteMode.LIVE if live_available else WriteMode.INSERT_MISSING
    if kind == MANUAL:
        return WriteMode.REPLACE
    return WriteMode.INSERT_MISSING


LoaderFactory = Callable[[], AbstractContextManager[BigQueryLoader]]
"""Opens a BigQuery loader (e.g. ``BigQueryWarehouse.loader``)."""


@dataclass(frozen=True)
class LoadFacts:
    """What a load did to its scope, for the load checks."""

    events_at_source: int  # what the source yielded (FilterLogEvents events, decoded records)
    duplicates_dropped: int  # delivered twice within the read: stored once
    stored_elsewhere: int  # already stored by another load (another window, object set, folder)
    rows_loaded: int  # what normalization made of the rest: rows ...
    rows_rejected: int  # ... and rejects
    rows_before: int  # events + rejects rows in scope before the load
    scope: LoadScope
    final_sweep: bool  # this load was the stream's last late-data sweep
    events_filtered: int = 0  # dropped by the stream's filter: read, never stored
    # Rows (events table, rejects table) in scope, counted in BigQuery by this load before it
    # would write, when it then wrote nothing (no transaction): still what the scope holds.
    # None: not known that way (counted after the load).
    stored_unchanged: tuple[int | None, int | None] | None = None

    @property
    def events_read(self) -> int:
        """Events the source yielded that this load's scope must hold."""
        return self.events_at_source - self.duplicates_dropped - self.stored_elsewhere - self.events_filtered


@dataclass
class LoadOutcome:
    """Totals of every read of one load, with figures per part (window or folder)."""

    parts: dict[Hashable, dict[str, object]] = field(default_factory=dict)
    events_at_source: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_dropped: int = 0
    stored_elsewhere: int = 0
    scopes_taken_over: int = 0  # reads that replaced rows of another reader
    rows_before: int = 0
    # rows_before per table (events, rejects); None once a read did not count that table
    rows_before_split: tuple[int | None, int | None] = (0, 0)
    rows_kept_from_unreadable: int = 0
    objects_vanished: int = 0
    rows_written: int = 0  # rows and rejects this load added (all of them when it replaced)
    raw_rows: int | None = None  # raw rows of the reads (None: the stream keeps no raw table)
    ingested_until: datetime | None = None  # newest ingestion time of the rows it read
    job_ids: list[str] = field(default_factory=list)
    staged_bytes: int = 0
    steps: int = 0
    transactions: int = 0  # replace transactions run (none for a read that found nothing new)
    facts: Facts = field(default_factory=dict)

    def run_metadata(self) -> dict[str, object]:
        """Facts of the load as a whole, shared by every part it wrote."""
        metadata: dict[str, object] = {
            name: ", ".join(value) if isinstance(value, list) else value for name, value in self.facts.items()
        }
        metadata.update(
            rows_written=self.rows_written,
            events_stored_elsewhere=self.stored_elsewhere,
            scopes_taken_over_from_another_reader=self.scopes_taken_over,
            replace_steps=self.steps,
            replace_transactions=self.transactions,
            bytes_staged=self.staged_bytes,
            bigquery_job_ids=", ".join(self.job_ids) or "none (nothing to replace)",
        )
        if self.raw_rows is not None:
            metadata["raw_rows_read"] = self.raw_rows
        if self.ingested_until is not None:
            metadata["ingested_until"] = self.ingested_until.isoformat()
        if self.objects_vanished or self.rows_kept_from_unreadable:
            metadata["objects_vanished"] = self.objects_vanished
            metadata["rows_kept_from_unreadable_objects"] = self.rows_kept_from_unreadable
        return metadata

    def check_facts(
        self, scope: LoadScope, *, final_sweep: bool = False, scope_of_reads: bool = False
    ) -> LoadFacts:
        """What the load checks compare with BigQuery, for ``scope`` (the whole load's).

        ``scope_of_reads``: ``scope`` is exactly the union of the reads' scopes, so the counts
        the reads made of them before deciding to write nothing are the scope's counts."""
        return LoadFacts(
            events_at_source=self.events_at_source,
            duplicates_dropped=self.duplicates_dropped,
            stored_elsewhere=self.stored_elsewhere,
            rows_loaded=self.rows_loaded,
            rows_rejected=self.rows_rejected,
            rows_before=self.rows_before,
            scope=scope,
            final_sweep=final_sweep,
            events_filtered=self.events_filtered,
            stored_unchanged=self.rows_before_split
            if scope_of_reads and self.steps and not self.transactions
            else None,
        )

    @property
    def events_filtered(self) -> int:
        """Events the stream's filter dropped in every read of the load."""
        value = self.facts.get("events_filtered", 0)
        return value if isinstance(value, int) else 0


def load(
    reads: Iterable[SourceRead],
    tables: StreamTables,
    loaders: LoaderFactory,
    log: logging.Logger,
    name: str,
    mode: WriteMode = WriteMode.REPLACE,
    *,
    appender: StreamAppender | None = None,
    ingested_after: datetime | None = None,
    compare_first: bool = False,
) -> LoadOutcome:
    """Write each read in ``mode``, one transaction (or one append) per read.

    ``reads`` is consumed lazily, so a source can read step by step: only one read's rows are
    held at a time. ``name`` (the stream) prefixes log lines. ``LIVE`` needs ``appender`` and
    appends only rows ingested after ``ingested_after`` (the previous refresh's newest, if
    known: the rest is already in the live table). ``compare_first``: an ``INSERT_MISSING``
    read that can be read twice is first compared with its scope (see the module's docstring).
    """
    if mode is WriteMode.LIVE and appender is None:
        raise ValueError("LIVE writes need a Storage Write API appender")
    outcome = LoadOutcome()
    with ExitStack() as opened:
        loader: BigQueryLoader | None = None
        for read in reads:
            if loader is None:
                # Opened once the source has read: a source that fails, fails before BigQuery.
                loader = opened.enter_context(loaders())
                if mode is WriteMode.LIVE:
                    _ensure_live(loader, tables)
                else:
                    ensure_tables(loader, tables)
            if mode is WriteMode.LIVE:
                assert appender is not None
                _append_live(appender, tables, read, outcome, log, name, ingested_after)
            else:
                _load_read(loader, tables, read, outcome, log, name, mode, compare_first)
    return outcome


def _ensure_live(loader: BigQueryLoader, tables: StreamTables) -> None:
    loader.ensure_dataset()
    loader.ensure_table(tables.events)
    loader.ensure_table(tables.live)
    ensure_recent_view(loader, tables)


def _append_live(
    appender: StreamAppender,
    tables: StreamTables,
    read: SourceRead,
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
    ingested_after: datetime | None,
) -> None:
    rows, _ = read.tables()
    newest = pc.max(rows["ingestion_time"]).as_py() if rows.num_rows else None
    if ingested_after is not None and rows.num_rows:
        rows = rows.filter(
            pc.greater(rows["ingestion_time"], pa.scalar(ingested_after, rows["ingestion_time"].type))
        )
    now = pa.array([datetime.now(UTC)] * rows.num_rows, pa.timestamp("us", tz="UTC"))
    event_id, time = event_keys(tables.live)
    keys = pa.array(key_hashes(rows[event_id].to_pylist(), _micros(rows[time]).to_pylist()), pa.int64())
    data = (
        rows.select([c.name for c in tables.live.columns if c is not LIVE_KEY])
        .append_column(LIVE_KEY.name, keys)
        .append_column("loaded_at", now)
    )
    appender.append(tables.live.table, data)
    merge_facts(outcome.facts, read.facts)
    _add_read(outcome, read, datetime.now(UTC))
    outcome.rows_written += data.num_rows
    if newest is not None:
        outcome.ingested_until = max(outcome.ingested_until or newest, newest)
    log.info(f"{name} {read.label}: {data.num_rows} new rows appended to {tables.live.table}")


def _micros(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as microseconds since the epoch, as the key hash takes them."""
    return pc.cast(pc.cast(times, pa.timestamp("us", tz="UTC")), pa.int64())


def _add_read(outcome: LoadOutcome, read: SourceRead, loaded_at: datetime) -> None:
    outcome.parts.update(read.part_figures(loaded_at))
    outcome.events_at_source += read.events_at_source
    outcome.rows_loaded += read.rows_loaded
    outcome.rows_rejected += read.rows_rejected
    outcome.duplicates_dropped += read.duplicates_dropped
    outcome.steps += 1


def _load_read(
    loader: BigQueryLoader,
    tables: StreamTables,
    read: SourceRead,
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
    mode: WriteMode,
    compare_first: bool = False,
) -> None:
    if compare_first and mode is WriteMode.INSERT_MISSING and read.rereadable():
        if _stored_as_read(loader, tables, read, outcome, log, name):
            return
        read.reread()
    staged = _Staged.open(loader, tables, read.label)
    try:
        # Each chunk is staged as it comes: the load holds one chunk, not the whole read.
        for rows, rejects, raw in read.chunks():
            staged.add(loader, rows, rejects, raw)
            del rows, rejects, raw
    except BaseException:
        staged.drop(loader)
        raise
    _write_read(loader, tables, read, staged, outcome, log, name, mode)


def _stored_as_read(
    loader: BigQueryLoader,
    tables: StreamTables,
    read: SourceRead,
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
) -> bool:
    """Read ``read`` through, keeping only the key digests of its rows, rejects and raw rows;
    when its scope holds exactly those events (equal digests), record the read as one that
    wrote nothing."""
    # The raw table's scope is the rejects scope (it has the rejects table's metadata columns).
    specs = [(tables.events, read.scope.events), (tables.rejects, read.scope.rejects)]
    if tables.raw is not None:
        specs.append((tables.raw, read.scope.rejects))
    read_digests = [KeyDigest() for _ in specs]
    for chunk in read.chunks():
        for digest, (spec, _), table in zip(read_digests, specs, chunk, strict=False):
            if table is None:
                continue
            event_id, time = event_keys(spec)
            digest.add(table[event_id].to_pylist(), _micros(table[time]).to_pylist())
        del chunk
    stored = [loader.key_digest(spec.table, scope, *event_keys(spec)) for spec, scope in specs]
    if stored != read_digests:
        log.info(
            f"{name} {read.label}: {read.events_at_source} events read, not all stored (rows "
            f"{read_digests[0].count} read, {stored[0].count} stored; rejects {read_digests[1].count} "
            f"read, {stored[1].count} stored): reading again to write what is missing"
        )
        return False
    merge_facts(outcome.facts, read.facts)
    _add_read(outcome, read, datetime.now(UTC))
    if tables.raw is not None:
        outcome.raw_rows = (outcome.raw_rows or 0) + read_digests[2].count
    outcome.rows_before += stored[0].count + stored[1].count
    before_rows, before_rejects = outcome.rows_before_split
    outcome.rows_before_split = (
        None if before_rows is None else before_rows + stored[0].count,
        None if before_rejects is None else before_rejects + stored[1].count,
    )
    log.info(
        f"{name} {read.label}: {read.events_at_source} events read, {read.rows_loaded} rows and "
        f"{read.rows_rejected} rejects, all stored already (same count and key digest): nothing staged"
    )
    return True


def load_shared(
    steps: Iterable[SharedRead],
    tables: Mapping[str, StreamTables],
    loaders: LoaderFactory,
    log: logging.Logger,
    names: Mapping[str, str],
    mode: WriteMode = WriteMode.REPLACE,
) -> dict[str, LoadOutcome]:
    """Write reads that share one pass over their source: per step, the chunks of every
    read are staged as they come (each to its own tables), then each read is written in its
    own transaction, as :func:`load` writes it. Only the reads named in ``tables`` are
    written (the others are not even decoded). ``names`` prefix each read's log lines.

    A source's chunk is split among the reads, so each read's part of it is small: a read's
    chunks are gathered (as Arrow tables, far smaller than the decoded events) until it holds
    the step's ``chunk_events`` rows and rejects (the stream's ``chunk_events``), and the read
    holding the most is staged whenever all of them together hold more than twice that. So a
    load job carries a useful amount, and memory stays bounded whatever the window's size and
    the number of reads.

    ``LIVE`` is not supported (shared reads are S3 object sets, loaded settled).
    """
    if mode is WriteMode.LIVE:
        raise ValueError("shared reads are not appended live")
    outcomes = {key: LoadOutcome() for key in tables}
    with ExitStack() as opened:
        loader: BigQueryLoader | None = None
        for step in steps:
            if loader is None:
                loader = opened.enter_context(loaders())
                for pair in tables.values():
                    ensure_tables(loader, pair)
            buffer_rows = step.chunk_events
            staged = {
                key: _Staged.open(loader, pair, step.reads[key].label, buffer_rows)
                for key, pair in tables.items()
            }
            try:
                for key, rows, rejects, raw in step.chunks(only=list(tables)):
                    staged[key].add(loader, rows, rejects, raw)
                    del rows, rejects, raw
                    # Bounded memory: past the cap, the read holding the most goes first.
                    while sum(s.pending_rows for s in staged.values()) > 2 * buffer_rows:
                        max(staged.values(), key=lambda s: s.pending_rows).flush(loader)
                for stage in staged.values():
                    stage.flush(loader)
            except BaseException:
                for stage in staged.values():
                    stage.drop(loader)
                raise
            for key, pair in tables.items():
                _write_read(loader, pair, step.reads[key], staged[key], outcomes[key], log, names[key], mode)
    return outcomes


@dataclass
class _Staged:
    """The staging tables of one read (events, rejects, raw), filled chunk by chunk.

    Chunks are staged as they come, or with ``buffer_rows`` gathered until the read holds
    that many rows and rejects (fewer, larger load jobs; see :func:`load_shared`).
    """

    rows: StagingTable
    rejects: StagingTable
    raw: StagingTable | None
    buffer_rows: int = 0
    raw_rows: int | None = None
    pending: list[tuple[pa.Table, pa.Table, pa.Table | None]] = field(default_factory=list)
    pending_rows: int = 0

    @classmethod
    def open(cls, loader: BigQueryLoader, tables: StreamTables, label: str, buffer_rows: int = 0) -> _Staged:
        return cls(
            loader.open_staging(tables.events, label),
            loader.open_staging(tables.rejects, label),
            loader.open_staging(tables.raw, label) if tables.raw is not None else None,
            buffer_rows,
        )

    def add(self, loader: BigQueryLoader, rows: pa.Table, rejects: pa.Table, raw: pa.Table | None) -> None:
        """Stage one chunk (one load job per table that gets rows), or gather it."""
        if self.raw is not None and raw is not None:
            self.raw_rows = (self.raw_rows or 0) + raw.num_rows
        self.pending.append((rows, rejects, raw))
        self.pending_rows += rows.num_rows + rejects.num_rows
        if self.pending_rows >= self.buffer_rows:
            self.flush(loader)

    def flush(self, loader: BigQueryLoader) -> None:
        """Stage what is gathered: one load job per table that gets rows."""
        if not self.pending:
            return
        parts, self.pending, self.pending_rows = self.pending, [], 0
        loader.stage_chunk(self.rows, _concat([p[0] for p in parts]))
        loader.stage_chunk(self.rejects, _concat([p[1] for p in parts]))
        if self.raw is not None:
            raws = [p[2] for p in parts if p[2] is not None]
            if raws:
                loader.stage_chunk(self.raw, _concat(raws))

    def drop(self, loader: BigQueryLoader) -> None:
        """Drop every staging table created."""
        self.pending, self.pending_rows = [], 0
        for staging in (self.rows, self.rejects, self.raw):
            if staging is not None:
                loader.drop_staging(staging)


def _concat(tables: list[pa.Table]) -> pa.Table:
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _write_read(
    loader: BigQueryLoader,
    tables: StreamTables,
    read: SourceRead,
    staged: _Staged,
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
    mode: WriteMode,
) -> None:
    """Write a read whose chunks are all staged: nothing when it read nothing, else one
    transaction (see :func:`_write_staged`)."""
    try:
        if staged.raw_rows is not None:
            outcome.raw_rows = (outcome.raw_rows or 0) + staged.raw_rows
        for uri in read.unreadable:
            log.warning(f"{name}: unreadable object {uri} (one reject recorded)")
        for uri in read.vanished:
            log.warning(f"{name}: {uri} was deleted after it was listed; its rows are kept")
        outcome.objects_vanished += len(read.vanished)
        skipped = read.facts.get("write_test_objects_skipped", [])
        for uri in skipped if isinstance(skipped, list) else []:
            log.info(f"{name}: skipped {uri}: CreateExportTask's access check object, no log events")
        merge_facts(outcome.facts, read.facts)
        if read.nothing_read:
            # Nothing to read, nothing to replace: rows of objects gone from S3 stay.
            log.info(f"{name}: nothing to load for {read.label}")
            outcome.rows_before_split = (None, None)
            outcome.parts.update(read.part_figures(datetime.now(UTC)))
            staged.drop(loader)
            return
        if read.unreadable:
            outcome.rows_kept_from_unreadable += _keep_rows_of_unreadable(loader, tables, read, log, name)
    except BaseException:
        staged.drop(loader)
        raise
    _write_staged(loader, tables, read, (staged.rows, staged.rejects, staged.raw), outcome, log, name, mode)


def _write_staged(
    loader: BigQueryLoader,
    tables: StreamTables,
    read: SourceRead,
    staged: tuple[StagingTable, StagingTable, StagingTable | None],
    outcome: LoadOutcome,
    log: logging.Logger,
    name: str,
    mode: WriteMode,
) -> None:
    """Count the staged rows against the tables (in BigQuery), then write them in one
    transaction: the first staged copy of each (id, time) only, and none already stored."""
    wider = read.stored_scope
    lookup = mode is WriteMode.INSERT_MISSING or wider is not None
    counted: dict[str, StagedCounts] = {}
    written: dict[str, int] = {}
    chosen = {"mode": mode}

    def decide(prepared: PreparedReplace) -> list[Replacement]:
        replacements = prepared.replacements
        for index, replacement in enumerate(replacements):
            counted[replacement.spec.table] = prepared.counts(index, DERIVED_ID_PREFIX, lookup=lookup)
        every = list(counted.values())
        if mode is WriteMode.INSERT_MISSING and _other_reader(every):
            log.warning(
                f"{name} {read.label}: the scope holds rows another reader loaded (other event ids): "
                "replacing it with this read, so ids never mix"
            )
            chosen["mode"] = WriteMode.REPLACE
            outcome.scopes_taken_over += 1
            replacements = [dataclasses.replace(r, write=ScopeWrite.REPLACE) for r in replacements]
        insert_missing = chosen["mode"] is WriteMode.INSERT_MISSING
        for replacement in replacements:
            c = counted[replacement.spec.table]
            first = replacement.rows - c.duplicates
            if insert_missing:
                written[replacement.spec.table] = first - c.elsewhere - c.own
            elif wider is not None:
                written[replacement.spec.table] = first - c.stored_outside
            else:
                written[replacement.spec.table] = first
        if insert_missing and not any(written.values()):
            return []  # nothing new: no transaction, nothing billed for DML
        return replacements

    result = replace_rows(
        loader,
        tables,
        read.scope,
        staged[0],
        staged[1],
        read.label,
        write=ScopeWrite.INSERT_MISSING if mode is WriteMode.INSERT_MISSING else ScopeWrite.REPLACE,
        stored=wider,
        raw=staged[2],
        decide=decide,
    )
    none = StagedCounts()
    rows_counts = counted.get(tables.events.table, none)
    reject_counts = counted.get(tables.rejects.table, none)
    duplicates = read.duplicates_dropped + rows_counts.duplicates + reject_counts.duplicates
    read.count_staged_duplicates(rows_counts.duplicates_by_object, reject_counts.duplicates_by_object)
    rows_loaded = staged[0].rows - rows_counts.duplicates
    rows_rejected = staged[1].rows - reject_counts.duplicates
    elsewhere = rows_counts.elsewhere + reject_counts.elsewhere
    outcome.rows_before += rows_counts.before + reject_counts.before
    # A table the read had nothing for was not counted (its replacement was skipped).
    outcome.rows_before_split = (
        _added(outcome.rows_before_split[0], counted.get(tables.events.table)),
        _added(outcome.rows_before_split[1], counted.get(tables.rejects.table)),
    )
    outcome.stored_elsewhere += elsewhere
    outcome.parts.update(read.part_figures(datetime.now(UTC)))
    outcome.events_at_source += read.events_at_source
    outcome.rows_loaded += rows_loaded
    outcome.rows_rejected += rows_rejected
    outcome.duplicates_dropped += duplicates
    outcome.steps += 1
    total_written = written.get(tables.events.table, 0) + written.get(tables.rejects.table, 0)
    outcome.rows_written += total_written
    outcome.job_ids += result.job_ids
    outcome.staged_bytes += result.staged_bytes
    outcome.transactions += result.transactions
    log.info(
        f"{name} {read.label}: {read.events_at_source} events read, {rows_loaded} rows and "
        f"{rows_rejected} rejects, {total_written} of {rows_loaded + rows_rejected} "
        f"written ({chosen['mode']}), {duplicates} duplicates dropped, {elsewhere} already stored by "
        "other loads"
    )


def _added(total: int | None, counts: StagedCounts | None) -> int | None:
    return None if total is None or counts is None else total + counts.before


def _other_reader(counts: list[StagedCounts]) -> bool:
    """Whether the scope holds ids of a family (derived from an export, or CloudWatch's own)
    that the read's rows do not have: another reader loaded the scope."""
    read_derived = any(c.derived for c in counts)
    read_native = any(c.native for c in counts)
    if not (read_derived or read_native):
        return False  # nothing read: whatever is stored stays
    stored_derived = any(c.before_derived for c in counts)
    stored_native = any(c.before_native for c in counts)
    return (stored_derived and not read_derived) or (stored_native and not read_native)


def _keep_rows_of_unreadable(
    loader: BigQueryLoader, tables: StreamTables, read: SourceRead, log: logging.Logger, name: str
) -> int:
    """Rows stored earlier from objects unreadable now stay (the events scope leaves those
    objects out); their events are not stored twice (the read finds those copies in its
    ``stored_scope``)."""
    scope: Scope = in_scope("source_object", read.unreadable)
    bounds = read.unreadable_event_times
    if bounds is not None:
        # Bounded in time, so BigQuery prunes the partitions no such row can be in.
        scope = all_of(time_scope(tables.events.partition_column, *bounds), scope)
    kept = loader.count(tables.events.table, scope)
    if kept:
        log.warning(f"{name}: {kept} rows loaded earlier from objects that are unreadable now are kept")
    return kept

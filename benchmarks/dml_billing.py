"""What BigQuery bills a statement on demand, by its DML pricing rules (a model, no I/O).

The rules (quoted in ``docs/bigquery-behaviour.md``, from BigQuery's DML and on-demand pricing
pages):

* every statement is billed the bytes of the columns it references in the partitions it scans
  (all partitions when its filter on the partition column does not bound them), at least
  10 MiB per table referenced and 10 MiB per statement;
* ``DELETE``, ``UPDATE`` and a ``MERGE`` that deletes or updates are billed, in addition, the
  whole size (every column) of each partition they modify; ``INSERT`` is billed its scan only;
* load jobs, DDL and the transaction statements are free, and so is a script variable's
  ``DECLARE`` that reads no table (the minimum is "per table referenced"; one that reads a
  table is billed as the query it runs);
* a filter on the partition column prunes from one side too ("The example query prunes dates
  before 2016-01-01": ``WHERE transaction_date >= '2016-01-01'``), and a constant expression
  such as ``CURRENT_TIMESTAMP()`` prunes, where a dynamic one (a subquery, a join condition)
  does not (https://cloud.google.com/bigquery/docs/querying-partitioned-tables).

Statements arrive already interpreted (:class:`Statement`); sizes come from a
:class:`TableSizes` (for instance a simulation of how a table's partitions grow).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

MIN_BILLED_BYTES = 10 * 2**20
"""On-demand minimum per table referenced and per statement (10 MiB)."""

MODIFYING = frozenset({"DELETE", "UPDATE", "MERGE"})
FREE = frozenset({"LOAD", "DDL", "BEGIN", "COMMIT", "ROLLBACK", "DECLARE"})


@dataclass(frozen=True)
class Scan:
    """A table a statement reads: the columns it references, in the DAY partitions
    ``first_day`` … ``last_day`` (None: unbounded on that side; both None: every partition).
    ``start`` / ``end`` are the exact time bounds on the partition column: a table clustered
    on that column first prunes its blocks to about that range."""

    table: str
    columns: frozenset[str]
    first_day: date | None = None
    last_day: date | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Statement:
    """One billable statement: its kind (``SELECT``, ``INSERT``, ``DELETE``, ...), what it
    scans, the partitions it modifies (``(table, first_day, last_day)``, None for every
    partition that holds rows) and the table it writes (``INSERT``, ``DELETE``, ...)."""

    kind: str
    scans: tuple[Scan, ...] = ()
    modifies: tuple[tuple[str, date | None, date | None], ...] = ()
    target: str | None = None


class TableSizes(Protocol):
    """Logical bytes of a table's columns in a range of DAY partitions, at billing time."""

    def bytes(
        self,
        table: str,
        columns: frozenset[str] | None,
        first_day: date | None,
        last_day: date | None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Bytes of ``columns`` (None: every column) read in the partitions of the range; with
        ``start``/``end``, a table clustered on its partition column reads only about the rows
        of ``[start, end)``."""
        ...


def billed_bytes(statement: Statement, sizes: TableSizes) -> int:
    """Bytes BigQuery bills ``statement`` on demand (0 for free statements)."""
    if statement.kind in FREE:
        return 0
    scanned = sum(
        max(MIN_BILLED_BYTES, sizes.bytes(s.table, s.columns, s.first_day, s.last_day, s.start, s.end))
        for s in statement.scans
    )
    modified = 0
    if statement.kind in MODIFYING:
        modified = sum(sizes.bytes(table, None, first, last) for table, first, last in statement.modifies)
    return max(MIN_BILLED_BYTES, scanned + modified)


def total_billed(statements: Iterable[Statement], sizes: TableSizes) -> int:
    """Bytes billed for every statement of ``statements``."""
    return sum(billed_bytes(s, sizes) for s in statements)


_TABLE_RE = re.compile(r"`([A-Za-z0-9_-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+)`")
_COLUMN_RE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_TARGET_RE = re.compile(r"^\s*(?:DELETE\s+FROM|INSERT\s+INTO|UPDATE|MERGE\s+(?:INTO\s+)?)\s*`([^`]+)`", re.I)
_BOUND_RE = re.compile(
    r"`(?P<column>[A-Za-z_][A-Za-z0-9_]*)`\s*(?P<op>>=|<)\s*"
    r"(?:TIMESTAMP\s+'(?P<literal>[^']+)'|@(?P<param>[A-Za-z_][A-Za-z0-9_]*)"
    r"|TIMESTAMP_SUB\(\s*CURRENT_TIMESTAMP\(\)\s*,\s*INTERVAL\s+(?P<amount>\d+)\s+(?P<unit>DAY|HOUR|MINUTE)\s*\))",
    re.I,
)
_INSERT_COLUMNS_RE = re.compile(r"^\s*INSERT\s+INTO\s+`[^`]+`\s*\([^)]*\)", re.I)
_UNITS = {"DAY": timedelta(days=1), "HOUR": timedelta(hours=1), "MINUTE": timedelta(minutes=1)}
_KINDS = {"ALTER": "DDL", "CREATE": "DDL", "DROP": "DDL", "TRUNCATE": "DDL"}


def interpret(
    sql: str,
    parameters: Mapping[str, datetime],
    schemas: Mapping[str, tuple[str, frozenset[str]]],
    *,
    now: datetime | None = None,
) -> list[Statement]:
    """The statements of ``sql`` (one statement or a script) as the billing model sees them.

    ``schemas`` maps each known table id (``project.dataset.table``) to its partition column and
    its columns; ``parameters`` holds the query's TIMESTAMP parameters. A referenced column is
    attributed to every scanned table that has it; a time bound on a table's partition column
    (a ``TIMESTAMP`` literal or parameter, or ``TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL n
    DAY|HOUR|MINUTE)`` evaluated at ``now``; ``>=`` and ``<``) limits the partitions scanned and,
    for ``DELETE`` / ``UPDATE`` / ``MERGE``, those modified; one bound alone limits that side.
    Without any, every partition is. Several ranges count as their span, from the earliest bound
    to the latest.
    """
    statements = []
    for text in (part.strip() for part in sql.split(";\n")):
        text = text.rstrip(";").strip()
        if not text:
            continue
        keyword = text.split(None, 1)[0].upper()
        kind = _KINDS.get(keyword, keyword)
        if kind == "DECLARE" and _TABLE_RE.search(text):
            kind = "SELECT"  # its default is a query over a table
        if kind in FREE:
            statements.append(Statement(kind))
            continue
        target_match = _TARGET_RE.match(text)
        target = target_match.group(1) if target_match else None
        tables = list(dict.fromkeys(_TABLE_RE.findall(text)))
        # An INSERT's column list names the target's columns: nothing is read for them.
        columns = frozenset(_COLUMN_RE.findall(_INSERT_COLUMNS_RE.sub("", text, count=1)))
        scans, modifies = [], []
        for table in tables:
            read_from = text
            if table == target and kind == "INSERT":
                # An INSERT reads its target only in a subquery (e.g. NOT EXISTS): those columns.
                at = text.find(f"FROM `{table}`")
                if at < 0:
                    continue
                read_from = text[at:]
            partition_column, table_columns = schemas.get(table, ("", frozenset()))
            start, end = _bounds(read_from, partition_column, parameters, now)
            first, last = _days(start, end)
            referenced = frozenset(_COLUMN_RE.findall(read_from)) if read_from is not text else columns
            scans.append(Scan(table, referenced & table_columns, first, last, start, end))
            if table == target and kind in MODIFYING:
                modifies.append((table, first, last))
        statements.append(Statement(kind, tuple(scans), tuple(modifies), target))
    return statements


def _days(start: datetime | None, end: datetime | None) -> tuple[date | None, date | None]:
    first = start.astimezone(UTC).date() if start is not None else None
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date() if end is not None else None
    return first, last


def _bounds(
    text: str, column: str, parameters: Mapping[str, datetime], now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    low = high = None
    for match in _BOUND_RE.finditer(text):
        if match.group("column") != column:
            continue
        if match.group("literal"):
            value = datetime.fromisoformat(match.group("literal").replace(" ", "T"))
        elif match.group("param"):
            value = parameters.get(match.group("param"))
        else:
            amount = int(match.group("amount")) * _UNITS[match.group("unit").upper()]
            value = now - amount if now is not None else None
        if value is None:
            continue
        # Several ranges (``a OR b``) are billed as the span from the first to the last: an
        # upper bound, since blocks between them may be pruned.
        if match.group("op") == ">=":
            low = value if low is None else min(low, value)
        else:
            high = value if high is None else max(high, value)
    return low, high

"""A fault-injecting HTTP reverse proxy for the local AWS and BigQuery servers.

The emulators never fail on their own, so the fault tests put this proxy between the real
clients and the real servers. Every request is forwarded unchanged (bodies streamed both ways)
unless a :class:`Rule` matches it; a rule then acts for its next ``times`` matches: answer with
a given status and body, drop the connection (before or after the upstream did the work),
delay, or hold the request until the test releases it. Holding is how a test kills a process
or restarts a server while a request is in flight.

The proxy records every request it saw, and each rule the requests it acted on, so a test can
assert that its fault really fired.

It can also stand in for BigQuery's transaction concurrency, which the emulator lacks
(:meth:`FaultProxy.emulate_transaction_conflicts`, :class:`TransactionConflicts`): a
multi-statement transaction that mutates a table while another transaction mutating that table
is in flight is cancelled; one that only appends never is; and each reads the snapshot it
started with.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CHUNK = 64 * 1024
MATCH_BODY_LIMIT = 4 * 1024 * 1024  # request bodies up to this size are buffered (for body rules)
RECORD_BODY_LIMIT = 64 * 1024  # how much of each request body the record keeps
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


def duplicate_job(project: str, location: str, job_id: str) -> Respond:
    """BigQuery's answer to ``jobs.insert`` of a job id it already has: 409, reason
    ``duplicate`` ("This error returns when trying to create a job, dataset, or table that
    already exists", https://cloud.google.com/bigquery/docs/error-messages). The Python client
    then follows the existing job (python-bigquery#751: a job whose create request failed may
    still have started)."""
    message = f"Already Exists: Job {project}:{location}.{job_id}"
    body = {
        "error": {
            "code": 409,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "duplicate"}],
            "status": "ALREADY_EXISTS",
        }
    }
    return Respond(409, json.dumps(body).encode())


# ---------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True)
class Respond:
    """Answer with ``status`` and ``body`` instead of forwarding."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer; the upstream never sees the request."""


@dataclass(frozen=True)
class DropResponse:
    """Forward the request and read the upstream's whole answer, then close the connection
    without passing it on: the work was done, but the client cannot know."""


@dataclass(frozen=True)
class Truncate:
    """Forward the request, pass the answer's status and headers on, then only ``keep`` bytes
    of its body before closing the connection: a transfer cut off mid-way."""

    keep: int = 16


@dataclass(frozen=True)
class Forward:
    """Forward the request (what a held or delayed request does by default afterwards)."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then act as ``then``."""

    seconds: float
    then: Action = Forward()


@dataclass(frozen=True)
class Hold:
    """Keep the request until ``release`` is set (at most ``timeout`` seconds), then act as
    ``then`` — forward it, or drop it as if its sender had died before it left."""

    release: threading.Event
    then: Action = Forward()
    timeout: float = 120.0


Action = Respond | Drop | DropResponse | Truncate | Forward | Delay | Hold


def aws_json_error(code: str, message: str, status: int = 400) -> Respond:
    """An error of an AWS JSON-protocol API (CloudWatch Logs)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    return Respond(status, body, "application/x-amz-json-1.1", (("x-amzn-RequestId", "fault-proxy"),))


def throttling() -> Respond:
    """CloudWatch Logs' ``ThrottlingException`` (HTTP 400)."""
    return aws_json_error("ThrottlingException", "Rate exceeded", 400)


def aws_unavailable() -> Respond:
    """CloudWatch Logs' ``ServiceUnavailableException`` (HTTP 503)."""
    return aws_json_error("ServiceUnavailableException", "The service is unavailable", 503)


def s3_error(code: str, message: str, status: int) -> Respond:
    """An S3 REST XML error."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    return Respond(status, body, "application/xml")


def s3_slow_down() -> Respond:
    """S3's ``SlowDown`` (HTTP 503)."""
    return s3_error("SlowDown", "Please reduce your request rate.", 503)


def s3_internal_error() -> Respond:
    """S3's ``InternalError`` (HTTP 500)."""
    return s3_error("InternalError", "We encountered an internal error. Please try again.", 500)


def google_error(status: int = 503, reason: str = "backendError", message: str = "Backend error") -> Respond:
    """A Google API error body, as BigQuery sends it."""
    names = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": names.get(status, "UNKNOWN"),
        }
    }
    return Respond(status, json.dumps(body).encode())


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    target: str | None
    action: str
    status: int | None = None
    body: bytes = b""  # the first RECORD_BODY_LIMIT bytes of a buffered request body


@dataclass
class Rule:
    """Which requests to act on, and how.

    Every given criterion must hold: ``method``; ``path`` (a regex searched in the request
    target, query string included); ``target`` (the ``X-Amz-Target`` header of AWS JSON APIs,
    e.g. ``Logs_20140328.FilterLogEvents``); ``body`` (a substring of the request body).
    ``times`` bounds how many matches the rule acts on (None: every one).
    """

    action: Action
    method: str | None = None
    path: str | None = None
    target: str | None = None
    body: str | None = None
    times: int | None = 1
    hits: list[Seen] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str, target: str | None, body: bytes | None) -> bool:
        """Whether a request meets every criterion (``body`` None: not buffered, never matches
        a body criterion)."""
        if self.method and method != self.method:
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.target and target != self.target:
            return False
        return not (self.body and (body is None or self.body.encode() not in body))

    @property
    def spent(self) -> bool:
        """Whether the rule acted ``times`` times already."""
        return self.times is not None and len(self.hits) >= self.times

    @property
    def fired(self) -> int:
        """How many requests the rule acted on."""
        return len(self.hits)


def filter_log_events(action: Action, times: int | None = 1) -> Rule:
    """CloudWatch Logs FilterLogEvents calls."""
    return Rule(action, method="POST", target="Logs_20140328.FilterLogEvents", times=times)


def list_objects_v2(bucket: str, action: Action, times: int | None = 1) -> Rule:
    """S3 ListObjectsV2 on ``bucket`` (path-style requests, as to a local endpoint)."""
    return Rule(action, method="GET", path=rf"^/{re.escape(bucket)}/?\?(.*&)?list-type=2", times=times)


def get_object(bucket: str, action: Action, times: int | None = 1) -> Rule:
    """S3 GetObject of any key of ``bucket``."""
    return Rule(action, method="GET", path=rf"^/{re.escape(bucket)}/[^?]+", times=times)


def bigquery_upload(action: Action, times: int | None = 1) -> Rule:
    """Media uploads of BigQuery load jobs (the staging loads)."""
    return Rule(action, path=r"^/upload/bigquery/v2/projects/[^/]+/jobs", times=times)


def bigquery_job_insert(action: Action, body: str | None = None, times: int | None = 1) -> Rule:
    """BigQuery ``jobs.insert`` calls, optionally only those whose body holds ``body``."""
    return Rule(
        action, method="POST", path=r"^/bigquery/v2/projects/[^/]+/jobs(\?|$)", body=body, times=times
    )


def bigquery_replace(action: Action, times: int | None = 1) -> Rule:
    """The replace transaction: a query job whose script begins a transaction."""
    return bigquery_job_insert(action, body="BEGIN TRANSACTION", times=times)


# ---------------------------------------------------------------------------------------------
# BigQuery transaction conflicts and snapshots
#
# Real BigQuery (https://cloud.google.com/bigquery/docs/transactions, "Transaction concurrency"):
#   "If a transaction mutates (update or deletes) rows in a table, then other transactions or
#   DML statements that mutate rows in the same table cannot run concurrently. Conflicting
#   transactions are cancelled. Conflicting DML statements that run outside of a transaction
#   are queued to run later, subject to queuing limits."
#   "Operations that read or append new rows can run concurrently with the transaction."
#   "If a transaction only reads a table or appends new rows to it, any operation can be
#   performed concurrently on that table."
# and, same page: "Transactions guarantee ACID properties and support snapshot isolation.
# During a transaction, all reads return a consistent snapshot of the tables referenced in the
# transaction."
# The cancelled job ends DONE with an ``invalidQuery`` error (HTTP 400) whose message, as seen
# in the field, reads
#   Query error: Transaction is aborted due to concurrent update against table
#   acme:dataset.table. Transaction ID: 61e30eea-0000-2dab-8e60-94eb2c1b1a92 at [24:9]
# The emulator runs overlapping transactions one after the other, each reading what the one
# before committed; this mode cancels the conflicting ones as BigQuery does, and lets the
# others read the snapshot they started with. Plain DML outside a transaction is left alone:
# BigQuery queues it.

CONCURRENT_UPDATE = "Transaction is aborted due to concurrent update against table"
SNAPSHOT_PREFIX = "_proxy_snapshot_"

_QUERY_JOB = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/?]+)/(?P<kind>jobs|queries)(\?|$)")
_JOB_LOOKUP = re.compile(
    r"^/bigquery/v2/projects/(?P<project>[^/?]+)/(?P<kind>jobs|queries)/(?P<job>[^/?]+)(\?|$)"
)
_COMMENT = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)
_BEGIN_TRANSACTION = re.compile(r"\bBEGIN(\s+TRANSACTION)?\s*;", re.I)
# A table name: backticked (`p.d.t`, `p`.`d`.`t`) or a bare dotted name.
_NAME = r"`[^`]+`(?:\.`[^`]+`)*|[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*){1,2}"
_NAMES = re.compile(_NAME)
# A statement that writes a table, at the statement's start (MERGE's own "UPDATE SET",
# "INSERT VALUES", "DELETE" clauses are inside it, never at a start).
_WRITE = re.compile(
    r"\s*(?P<verb>DELETE(?:\s+FROM)?|INSERT(?:\s+INTO)?|MERGE(?:\s+INTO)?|UPDATE|TRUNCATE\s+TABLE)\s+"
    rf"(?P<table>{_NAME})",
    re.I,
)
_MERGE_CHANGES_ROWS = re.compile(r"\bTHEN\s+(UPDATE|DELETE)\b", re.I)
# INSERT [INTO] t [(columns)] followed by a query: the query is what it reads.
_INSERT_QUERY = re.compile(
    rf"\s*INSERT(?:\s+INTO)?\s+(?P<table>{_NAME})\s*(?P<columns>\([^()]*\))?\s*(?P<query>\(*\s*(?:SELECT|WITH)\b[\s\S]*)$",
    re.I,
)


def _blank_comments(sql: str) -> str:
    """``sql`` with comments turned into spaces (offsets and line breaks kept)."""
    return _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), sql)


def _statements(code: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each statement of ``code``: split at semicolons outside quotes."""
    spans, start, quote, index = [], 0, "", 0
    while index < len(code):
        char = code[index]
        if quote:
            if char == "\\" and quote != "`":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == ";":
            spans.append((start, index))
            start = index + 1
        index += 1
    if code[start:].strip():
        spans.append((start, len(code)))
    return spans


def _table_name(text: str, project: str) -> str:
    parts = text.replace("`", "").split(".")
    return ".".join([project, *parts] if len(parts) == 2 else parts)


@dataclass(frozen=True)
class _Write:
    """One statement of a transaction that writes a table."""

    start: int
    end: int
    table: str  # project.dataset.table
    mutates: bool  # changes or deletes rows (else only appends)
    position: tuple[int, int]  # (line, column) of the statement


def _writes(code: str, project: str) -> list[_Write]:
    writes = []
    for start, end in _statements(code):
        match = _WRITE.match(code, start, end)
        if match is None:
            continue
        verb = match["verb"].split()[0].upper()
        statement = code[start:end]
        mutates = verb in {"DELETE", "UPDATE", "TRUNCATE"} or (
            verb == "MERGE" and _MERGE_CHANGES_ROWS.search(statement) is not None
        )
        at = match.start("verb")
        line = code.count("\n", 0, at) + 1
        column = at - (code.rfind("\n", 0, at) + 1) + 1
        writes.append(_Write(start, end, _table_name(match["table"], project), mutates, (line, column)))
    return writes


def transaction_tables(sql: str, project: str) -> dict[str, tuple[int, int]] | None:
    """The tables a transaction script mutates (DELETE, UPDATE, TRUNCATE, a MERGE that
    updates or deletes), as ``project.dataset.table`` mapped to the ``(line, column)`` of its
    first mutating statement; tables it only appends to (INSERT, a MERGE that only inserts) are
    not among them. None if ``sql`` begins no transaction.

    A name without a project takes ``project``. Comments are ignored; a statement inside a
    string literal would be taken as one (good enough for the scripts the tests run).
    """
    code = _blank_comments(sql)
    if not _BEGIN_TRANSACTION.search(code):
        return None
    tables: dict[str, tuple[int, int]] = {}
    for write in _writes(code, project):
        if write.mutates:
            tables.setdefault(write.table, write.position)
    return tables


@dataclass(frozen=True)
class SnapshotRead:
    """An ``INSERT … <query>`` of a transaction whose query reads its snapshot: the query's rows
    are computed into ``snapshot`` when the transaction starts, and inserted at its commit."""

    start: int
    end: int
    snapshot: str  # project.dataset.table holding the query's rows
    create: str  # the statement computing them
    insert: str  # the statement that replaces the original one


_DECLARE = re.compile(r"DECLARE\s+\w+\s+\w+\s+DEFAULT\s+CURRENT_TIMESTAMP\(\)\s*;", re.I)


def pinned_declarations(sql: str, now: datetime) -> dict[str, str]:
    """Each ``DECLARE x TIMESTAMP DEFAULT CURRENT_TIMESTAMP();`` of a script, with its value
    pinned to ``now``: a snapshot read that uses the variable is computed before the script
    runs, so both must see one value (BigQuery evaluates the script's ``CURRENT_TIMESTAMP()``
    once, at its start)."""
    literal = f"TIMESTAMP '{now.astimezone(UTC).isoformat()}'"
    return {
        m.group(0): re.sub(r"CURRENT_TIMESTAMP\(\)", literal, m.group(0), flags=re.I)
        for m in _DECLARE.finditer(sql)
    }


def snapshot_reads(sql: str, project: str) -> list[SnapshotRead]:
    """The statements of a transaction script whose reads the proxy can take from the
    snapshot: every ``INSERT … SELECT`` whose query reads no table an earlier statement of the
    transaction wrote (such a query must see those writes, so it runs at commit, as the
    DELETE, UPDATE and MERGE statements do: the conflict rule keeps other mutators of their
    tables out meanwhile)."""
    code = _blank_comments(sql)
    written: set[str] = set()
    reads = []
    for write in _writes(code, project):
        match = _INSERT_QUERY.match(code, write.start, write.end)
        if match is not None:
            query = match["query"]
            sources = {_table_name(n, project) for n in _NAMES.findall(query) if "." in n}
            if not sources & written:
                target_project, dataset, _ = write.table.split(".", 2)
                snapshot = f"{target_project}.{dataset}.{SNAPSHOT_PREFIX}{uuid.uuid4().hex[:12]}"
                reads.append(
                    SnapshotRead(
                        write.start,
                        write.end,
                        snapshot,
                        f"CREATE TABLE `{snapshot}` AS {sql[match.start('query') : match.end('query')]}",
                        f"\nINSERT INTO {match['table']} {match['columns'] or ''} SELECT * FROM `{snapshot}`",
                    )
                )
        written.add(write.table)
    return reads


@dataclass(frozen=True)
class Cancelled:
    """A transaction the proxy cancelled: it never reached the emulator."""

    job_id: str
    table: str  # project.dataset.table
    message: str
    holder: str = ""  # the job id of the transaction in flight on ``table``


@dataclass
class _Transaction:
    job_id: str
    project: str
    location: str
    kind: str  # "jobs" (jobs.insert) or "queries" (jobs.query)
    tables: dict[str, tuple[int, int]]  # the tables it mutates
    configuration: dict
    request: dict
    sql: str
    held: bool = False
    snapshots: list[SnapshotRead] = field(default_factory=list)
    pinned: dict[str, str] = field(default_factory=dict)  # see pinned_declarations

    def body(self) -> bytes:
        """The request to forward: the script with its snapshot reads, if any were taken."""
        if not self.snapshots:
            return json.dumps(self.request).encode()
        sql = self.sql
        for read in sorted(self.snapshots, key=lambda r: r.start, reverse=True):
            sql = sql[: read.start] + read.insert + sql[read.end :]
        for declaration, pinned in self.pinned.items():  # before every snapshot read
            sql = sql.replace(declaration, pinned, 1)
        request = json.loads(json.dumps(self.request))
        if self.kind == "jobs":
            request["configuration"]["query"]["query"] = sql
        else:
            request["query"] = sql
        return json.dumps(request).encode()


Upstream = Callable[[str, str, bytes], tuple[int, bytes]]


def _query_failed(answer: bytes) -> bool:
    """Whether a ``jobs.query`` answer reports an error (the emulator answers 200 with
    ``errors``; BigQuery with ``status.errorResult``)."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        return True
    return bool(parsed.get("errors") or (parsed.get("status") or {}).get("errorResult"))


class TransactionConflicts:
    """BigQuery's transaction concurrency, in front of the emulator.

    A query job (``jobs.insert`` or ``jobs.query``) whose SQL begins a transaction is in flight
    from when the proxy receives it until the emulator has answered, plus ``hold`` before it is
    forwarded (seconds, or an event the test sets; only the first ``hold_first`` transactions
    let through, if given) so that overlaps are likely.

    * Conflicts: while in flight it holds every table it mutates (:func:`transaction_tables`).
      Another transaction mutating one of those tables meanwhile is cancelled without reaching
      the emulator: ``jobs.insert`` answers a job that is DONE with BigQuery's ``invalidQuery``
      error (the client's ``job.result()`` raises ``BadRequest``), ``jobs.query`` answers HTTP
      400 with it, and the cancelled job's ``jobs.get`` / ``jobs.getQueryResults`` answer the
      same. A transaction that only appends to a table (INSERT, a MERGE that only inserts)
      never conflicts on it, and never makes another one conflict.
    * Snapshots: when a transaction is let through, the rows of each of its ``INSERT … SELECT``
      statements that :func:`snapshot_reads` allows are computed at once into a snapshot table
      next to the target; the statement sent to the emulator inserts them from there. So an
      insert that checks what is stored (``WHERE NOT EXISTS``) sees the table as it was when
      its transaction started, not the rows another transaction committed meanwhile.

    ``received`` lists every transaction's job id once it was cancelled or started (its
    snapshot taken; a held transaction is started), ``cancelled`` what was
    cancelled, ``served`` the job ids forwarded to the emulator, ``snapshots`` the snapshot
    tables taken (dropped once the transaction ended), ``snapshot_failures`` the errors of
    snapshots that could not be taken (that transaction then reads at commit, as the emulator
    does).
    """

    def __init__(
        self, hold: float | threading.Event = 0.0, hold_timeout: float = 120.0, hold_first: int | None = None
    ) -> None:
        """``hold``: how long each transaction stays in flight before it is forwarded."""
        self.hold = hold
        self.hold_timeout = hold_timeout
        self.hold_first = hold_first
        self.received: list[str] = []
        self.cancelled: list[Cancelled] = []
        self.served: list[str] = []
        self.snapshots: list[str] = []
        self.snapshot_failures: list[str] = []
        self._let_through = 0
        self._active: dict[str, str] = {}  # table -> job id in flight
        self._jobs: dict[str, tuple[dict, dict]] = {}  # cancelled job id -> (job resource, error)
        self._changed = threading.Condition()

    def in_flight(self) -> dict[str, str]:
        """Tables with a mutating transaction in flight, and that transaction's job id."""
        with self._changed:
            return dict(self._active)

    def wait_in_flight(self, table: str | None = None, timeout: float = 10.0) -> bool:
        """Wait until a transaction mutating ``table`` (any table if None) is in flight."""
        with self._changed:
            return self._changed.wait_for(
                lambda: (table in self._active) if table else bool(self._active), timeout
            )

    def wait_received(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` transactions arrived and were cancelled or started (their
        snapshot taken)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.received) >= count, timeout)

    def release(self) -> None:
        """Let held transactions go on (when ``hold`` is an event)."""
        if isinstance(self.hold, threading.Event):
            self.hold.set()

    def parse(self, method: str, path: str, body: bytes) -> _Transaction | None:
        """The transaction a request starts, if it is a query job whose SQL begins one."""
        match = _QUERY_JOB.match(path)
        if method != "POST" or match is None or not body:
            return None
        try:
            request = json.loads(body)
        except ValueError:
            return None
        if match["kind"] == "jobs":
            configuration = request.get("configuration") or {}
            sql = (configuration.get("query") or {}).get("query")
            reference = request.get("jobReference") or {}
            job_id = reference.get("jobId") or f"job_{uuid.uuid4().hex}"
            location = reference.get("location") or "US"
        else:
            sql = request.get("query")
            configuration = {"query": {"query": sql, "useLegacySql": request.get("useLegacySql", False)}}
            job_id, location = f"job_{uuid.uuid4().hex}", request.get("location") or "US"
        tables = transaction_tables(sql, match["project"]) if isinstance(sql, str) else None
        if tables is None or not isinstance(sql, str):
            return None
        return _Transaction(
            job_id, match["project"], location, match["kind"], tables, configuration, request, sql
        )

    def begin(self, txn: _Transaction) -> Cancelled | Respond | None:
        """Mark ``txn`` in flight on the tables it mutates, or cancel it if one is taken already.

        An insert of a job id in flight or served already is the client sending its insert again
        (its first answer was slow or lost), not a second transaction: BigQuery answers it 409
        duplicate (:func:`duplicate_job`) and never cancels a job over its own retried insert.
        """
        with self._changed:
            if txn.job_id in self._active.values() or txn.job_id in self.served:
                return duplicate_job(txn.project, txn.location, txn.job_id)
            taken = next((t for t in txn.tables if t in self._active), None)
            if taken is None:
                self._active.update(dict.fromkeys(txn.tables, txn.job_id))
                self._let_through += 1
                txn.held = self.hold_first is None or self._let_through <= self.hold_first
                self._changed.notify_all()
                return None
            cancelled = self._cancel(txn, taken)
            self.cancelled.append(cancelled)
            self.received.append(txn.job_id)
            self._changed.notify_all()
            return cancelled

    def take_snapshots(self, txn: _Transaction, upstream: Upstream) -> None:
        """Compute the rows of ``txn``'s snapshot reads now, at its start."""
        txn.pinned = pinned_declarations(txn.sql, datetime.now(UTC))
        declarations = "\n".join(txn.pinned.values())
        for read in snapshot_reads(txn.sql, txn.project):
            create = f"{declarations}\n{read.create}" if declarations else read.create
            request = {"query": create, "useLegacySql": False, "location": txn.location}
            query = txn.configuration.get("query") or {}
            for name in ("queryParameters", "parameterMode"):
                if name in query:
                    request[name] = query[name]
            try:
                status, answer = upstream(
                    "POST", f"/bigquery/v2/projects/{txn.project}/queries", json.dumps(request).encode()
                )
            except OSError as exc:
                status, answer = 0, str(exc).encode()
            if status != 200 or _query_failed(answer):
                with self._changed:
                    self.snapshot_failures.append(answer.decode(errors="replace")[:2000])
                continue
            txn.snapshots.append(read)
            with self._changed:
                self.snapshots.append(read.snapshot)
        with self._changed:
            self.received.append(txn.job_id)  # started: its snapshot is taken
            self._changed.notify_all()

    def drop_snapshots(self, txn: _Transaction, upstream: Upstream) -> None:
        """Drop the snapshot tables of ``txn`` (it ended)."""
        for read in txn.snapshots:
            project, dataset, table = read.snapshot.split(".")
            with contextlib.suppress(OSError):
                upstream("DELETE", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}", b"")

    def wait_hold(self, txn: _Transaction) -> None:
        """Keep a transaction in flight before it is forwarded, as configured."""
        if not txn.held:
            return
        if isinstance(self.hold, threading.Event):
            self.hold.wait(self.hold_timeout)
        elif self.hold > 0:
            time.sleep(self.hold)

    def end(self, txn: _Transaction) -> None:
        """The emulator answered (or failed): ``txn`` is no longer in flight."""
        with self._changed:
            for table in txn.tables:
                if self._active.get(table) == txn.job_id:
                    del self._active[table]
            self.served.append(txn.job_id)
            self._changed.notify_all()

    def answer(self, txn_or_path: _Transaction | str) -> Respond | None:
        """The proxy's answer for a cancelled transaction's request, or for a later lookup of
        a cancelled job (None: not a cancelled job)."""
        if isinstance(txn_or_path, str):
            match = _JOB_LOOKUP.match(txn_or_path)
            if match is None:
                return None
            kind, job_id = match["kind"], match["job"]
        else:
            kind, job_id = txn_or_path.kind, txn_or_path.job_id
        with self._changed:
            found = self._jobs.get(job_id)
        if found is None:
            return None
        job, error = found
        if kind == "jobs":
            return Respond(200, json.dumps(job).encode())
        # jobs.query and jobs.getQueryResults report a failed job as an HTTP error.
        return bigquery_job_error(error)

    def _cancel(self, txn: _Transaction, table: str) -> Cancelled:
        line, column = txn.tables[table]
        project, dataset, name = table.split(".", 2)
        message = (
            f"Query error: {CONCURRENT_UPDATE} {project}:{dataset}.{name}. "
            f"Transaction ID: {uuid.uuid4()} at [{line}:{column}]"
        )
        error = {"reason": "invalidQuery", "location": "query", "message": message}
        now = str(int(time.time() * 1000))
        job = {
            "kind": "bigquery#job",
            "id": f"{txn.project}:{txn.location}.{txn.job_id}",
            "jobReference": {"projectId": txn.project, "jobId": txn.job_id, "location": txn.location},
            "configuration": {**txn.configuration, "jobType": "QUERY"},
            "statistics": {
                "creationTime": now,
                "startTime": now,
                "endTime": now,
                "query": {"statementType": "SCRIPT"},
            },
            "status": {"state": "DONE", "errorResult": error, "errors": [error]},
        }
        self._jobs[txn.job_id] = (job, error)
        return Cancelled(txn.job_id, table, message, self._active.get(table, ""))


def bigquery_job_error(error: dict, status: int = 400) -> Respond:
    """A Google API error body carrying a job's ``errorResult`` (as ``jobs.query`` and
    ``jobs.getQueryResults`` report a failed job)."""
    body = {
        "error": {
            "code": status,
            "message": error["message"],
            "errors": [{"domain": "global", "locationType": "other", **error}],
            "status": "INVALID_ARGUMENT" if status == 400 else "UNKNOWN",
        }
    }
    return Respond(status, json.dumps(body).encode())


# ---------------------------------------------------------------------------------------------
# The proxy


class FaultProxy:
    """A reverse proxy to ``upstream`` (``http://host:port``) on a free local port."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create the proxy; :meth:`start` serves it."""
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.conflicts: TransactionConflicts | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL clients should use instead of the upstream's."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests and stop serving."""
        self.clear()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        """Act on matching requests from now on; the first rule that matches acts."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def emulate_transaction_conflicts(
        self, hold: float | threading.Event = 0.0, hold_timeout: float = 120.0, hold_first: int | None = None
    ) -> TransactionConflicts:
        """From now on, cancel a BigQuery transaction that mutates a table another transaction
        in flight mutates, and let transactions read their snapshot, as real BigQuery does (see
        :class:`TransactionConflicts`). Rules still act first; a request they forward is subject
        to it. :meth:`clear` turns it off."""
        conflicts = TransactionConflicts(hold, hold_timeout, hold_first)
        with self._lock:
            self.conflicts = conflicts
        return conflicts

    def clear(self) -> None:
        """Forget every rule and recorded request, and stop emulating transaction conflicts;
        held requests are released."""
        with self._lock:
            for rule in self.rules:
                if isinstance(rule.action, Hold):
                    rule.action.release.set()
            self.rules.clear()
            self.seen.clear()
            if self.conflicts is not None:
                self.conflicts.release()
            self.conflicts = None

    def upstream_request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Send a request of the proxy's own to the upstream: its status and body."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)
        try:
            headers = {"Content-Type": "application/json"} if body else {}
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def requests(
        self, method: str | None = None, path: str | None = None, target: str | None = None
    ) -> list[Seen]:
        """Recorded requests meeting the given criteria (same meaning as in :class:`Rule`)."""
        probe = Rule(Forward(), method=method, path=path, target=target)
        with self._lock:
            return [s for s in self.seen if probe.matches(s.method, s.path, s.target, b"")]

    def _pick(self, method: str, path: str, target: str | None, body: bytes | None) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.spent and rule.matches(method, path, target, body):
                    rule.hits.append(Seen(method, path, target, _action_name(rule.action)))
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


def _action_name(action: Action) -> str:
    if isinstance(action, Respond):
        return f"respond {action.status}"
    return type(action).__name__.lower()


def _handler_class(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(_ProxyHandler):
        pass

    Handler.proxy = proxy
    return Handler


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy
    _pending: Seen | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass  # the proxy's record is in FaultProxy.seen

    def _handle(self) -> None:
        try:
            self._serve()
        except OSError:
            self.close_connection = True  # the client went away (killed, or timed out)

    def _serve(self) -> None:
        target = self.headers.get("X-Amz-Target")
        body, stream_length = self._read_body()
        rule = self.proxy._pick(self.command, self.path, target, body)
        if rule is not None:
            rule.arrived.set()
        action: Action = rule.action if rule is not None else Forward()
        self._pending: Seen | None = Seen(
            self.command, self.path, target, _action_name(action), None, (body or b"")[:RECORD_BODY_LIMIT]
        )
        status = self._act(action, body, stream_length)
        self._record(status)  # no answer sent (dropped)

    def _record(self, status: int | None) -> None:
        if self._pending is not None:
            self.proxy._record(replace(self._pending, status=status))
            self._pending = None

    def send_response_only(self, code: int, message: str | None = None) -> None:
        # Recorded before the client can read the answer, so a test never races the record.
        self._record(code)
        super().send_response_only(code, message)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _read_body(self) -> tuple[bytes | None, int | None]:
        """The request body if small enough to buffer, else ``(None, length)`` to stream it."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"".join(self._read_chunks()), None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MATCH_BODY_LIMIT:
            return None, length
        return self.rfile.read(length) if length else b"", None

    def _read_chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _act(self, action: Action, body: bytes | None, stream_length: int | None) -> int | None:
        if isinstance(action, Respond):
            self.send_response(action.status)
            self.send_header("Content-Type", action.content_type)
            for name, value in action.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(action.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(action.body)
            return action.status
        if isinstance(action, Drop):
            self._drop()
            return None
        if isinstance(action, Delay):
            threading.Event().wait(action.seconds)
            return self._act(action.then, body, stream_length)
        if isinstance(action, Hold):
            action.release.wait(action.timeout)
            return self._act(action.then, body, stream_length)
        keep = action.keep if isinstance(action, Truncate) else None
        deliver = not isinstance(action, DropResponse)
        conflicts = self.proxy.conflicts
        if conflicts is None or body is None:
            return self._forward(body, stream_length, deliver=deliver, keep=keep)
        return self._forward_transaction(conflicts, body, deliver, keep)

    def _forward_transaction(
        self, conflicts: TransactionConflicts, body: bytes, deliver: bool, keep: int | None
    ) -> int | None:
        """Forward under the transaction-conflict emulation: a cancelled job is answered here."""
        lookup = conflicts.answer(self.path) if self.command == "GET" else None
        if lookup is not None:
            return self._conflict_answer(lookup)
        txn = conflicts.parse(self.command, self.path, body)
        if txn is None:
            return self._forward(body, None, deliver=deliver, keep=keep)
        begun = conflicts.begin(txn)
        if isinstance(begun, Respond):  # a job id BigQuery already holds
            return self._conflict_answer(begun)
        if begun is not None:
            answer = conflicts.answer(txn)
            assert answer is not None
            return self._conflict_answer(answer)
        ended = False
        upstream = self.proxy.upstream_request

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                conflicts.end(txn)
                conflicts.drop_snapshots(txn, upstream)

        try:
            conflicts.take_snapshots(txn, upstream)
            conflicts.wait_hold(txn)
            # Ended as soon as the emulator answered (it runs a query job before answering),
            # before the client hears of it: its next transaction must not meet its own.
            forwarded = txn.body() if txn.snapshots else body
            return self._forward(forwarded, None, deliver=deliver, keep=keep, answered=end)
        finally:
            end()

    def _conflict_answer(self, answer: Respond) -> int | None:
        if self._pending is not None:
            self._pending = replace(self._pending, action="conflict")
        return self._act(answer, None, None)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _forward(
        self,
        body: bytes | None,
        stream_length: int | None,
        deliver: bool,
        keep: int | None = None,
        answered: Callable[[], None] | None = None,
    ) -> int | None:
        proxy = self.proxy
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
        try:
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                length = stream_length if body is None else len(body)
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                if body is not None:
                    if body:
                        conn.send(body)
                else:
                    remaining = stream_length or 0
                    while remaining:
                        chunk = self.rfile.read(min(CHUNK, remaining))
                        if not chunk:
                            break
                        conn.send(chunk)
                        remaining -= len(chunk)
                response = conn.getresponse()
                if answered is not None:
                    answered()
            except OSError as exc:
                return self._bad_gateway(exc) if deliver else self._drop()
            if not deliver:
                response.read()
                self._drop()
                return response.status
            self._relay(response, keep)
            return response.status
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse, keep: int | None = None) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower == "content-length":
                continue
            if lower == "location":
                value = value.replace(self.proxy.upstream, self.proxy.url)
            self.send_header(name, value)
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is not None or no_body:
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if keep is not None:
                self.wfile.write(response.read()[:keep])
                self.wfile.flush()
                self._drop()
                return
            while not no_body and (chunk := response.read(CHUNK)):
                self.wfile.write(chunk)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := response.read(CHUNK):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _bad_gateway(self, exc: OSError) -> int:
        body = f"upstream {self.proxy.upstream} unreachable: {exc}".encode()
        self.send_response(502)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return 502

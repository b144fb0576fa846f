"""Export task folders in S3, and when a folder is complete enough to load.

CreateExportTask writes ``<prefix>/<taskId>/<logStream>/000000.gz`` (more numbered files for
large streams) plus a ``<prefix>/aws-logs-write-test`` object when it checks its access. Some
local emulators write ``<prefix>/<random id per stream>/<stream with / as ->/000000.gz``
instead, so a folder is not always a task id.

A folder is loaded once it is known complete:

* its name is a task id and DescribeExportTasks reports the task ``COMPLETED``; or
* the task API cannot tell (no task of that id) and the folder's listing stayed the same
  across two sensor ticks at least ``stable_after`` apart.

A ``FAILED`` or ``CANCELLED`` task is never loaded: its files may be partial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cwl_pipeline.exports.plan import FAILED_STATUSES

WRITE_TEST_OBJECT = "aws-logs-write-test"


def folder_base(prefix: str) -> str:
    """The key prefix under which task folders live: ``prefix`` with one trailing ``/``."""
    return prefix.rstrip("/") + "/"


def folder_prefix(prefix: str, folder: str) -> str:
    """The key prefix of one task folder."""
    return f"{folder_base(prefix)}{folder}/"


def folder_of(key: str, prefix: str) -> str | None:
    """The task folder holding ``key``; None for the write-test object and keys elsewhere."""
    base = folder_base(prefix)
    if not key.startswith(base):
        return None
    folder, sep, rest = key[len(base) :].partition("/")
    if not sep or not folder or not rest or rest.rsplit("/", 1)[-1] == WRITE_TEST_OBJECT:
        return None
    return folder


def is_export_file(key: str) -> bool:
    """Whether ``key`` is an export data file (not the write-test object or a folder marker)."""
    name = key.rsplit("/", 1)[-1]
    return bool(name) and name != WRITE_TEST_OBJECT


@dataclass(frozen=True)
class FolderDecision:
    """What to do with a folder at this tick: ``load``, ``wait`` or ``skip`` (failed task)."""

    action: str
    reason: str


def decide_folder(
    *,
    task_status: str | None,
    signature: str,
    pending: tuple[str, datetime] | None,
    now: datetime,
    stable_after: timedelta,
) -> FolderDecision:
    """Whether a folder is complete (see the module documentation).

    ``task_status`` is the status code DescribeExportTasks gives for the folder name, None
    when no task has that id; ``pending`` is the ``(signature, since)`` recorded at earlier
    ticks.
    """
    if task_status == "COMPLETED":
        return FolderDecision("load", "export task COMPLETED")
    if task_status in FAILED_STATUSES:
        return FolderDecision("skip", f"export task {task_status}: its files may be partial")
    if task_status is not None:
        return FolderDecision("wait", f"export task {task_status}")
    if pending is None or pending[0] != signature:
        return FolderDecision("wait", "listing not yet seen stable")
    if now - pending[1] >= stable_after:
        return FolderDecision("load", f"listing unchanged for {now - pending[1]}")
    return FolderDecision("wait", "listing stable for less than the settle lag")


@dataclass(frozen=True)
class ExportCursor:
    """What the export sensor remembers between ticks, bounded by what S3 holds now.

    Loaded folders are not kept here: they are the stream's dynamic partitions. ``skipped``
    holds folders not to load (their task failed) with the reason, ``pending`` the folders
    waiting to be confirmed with the signature first seen and since when. Both keep only
    folders still listed (:meth:`for_folders`), so the cursor never grows with the history.
    """

    skipped: dict[str, str] = field(default_factory=dict)
    pending: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def for_folders(self, folders: Iterable[str]) -> ExportCursor:
        """This cursor without the folders that are no longer listed."""
        listed = set(folders)
        return ExportCursor(
            skipped={f: r for f, r in self.skipped.items() if f in listed},
            pending={f: p for f, p in self.pending.items() if f in listed},
        )

    def to_json(self) -> dict[str, Any]:
        """Serializable form for a sensor cursor."""
        return {
            "skipped": dict(sorted(self.skipped.items())),
            "pending": {k: [sig, since.isoformat()] for k, (sig, since) in sorted(self.pending.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ExportCursor:
        """Inverse of :meth:`to_json`; ``None`` gives the initial state. A cursor of the earlier
        form (a ``done`` map of every folder ever loaded) keeps only its skipped folders."""
        if not data:
            return cls()
        skipped = {str(k): str(v) for k, v in (data.get("skipped") or {}).items()}
        for folder, value in (data.get("done") or {}).items():
            if str(value).startswith("skipped: "):
                skipped.setdefault(str(folder), str(value).removeprefix("skipped: "))
        return cls(
            skipped=skipped,
            pending={
                str(k): (str(v[0]), datetime.fromisoformat(v[1]))
                for k, v in (data.get("pending") or {}).items()
            },
        )

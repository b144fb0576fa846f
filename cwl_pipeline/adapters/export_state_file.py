"""The JSON file holding a backfill's state, written atomically after every change."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cwl_pipeline.core.export_plan import ExportState


class StateFileError(RuntimeError):
    """The state file cannot be read, is not a backfill state, or belongs to another one."""


def load_state(path: Path, *, log_group: str, bucket: str, prefix: str) -> ExportState:
    """The state in ``path``, or a new one if the file does not exist.

    Raises:
        StateFileError: unreadable file, or the state of another log group or destination.
    """
    if not path.exists():
        return ExportState(log_group, bucket, prefix)
    try:
        state = ExportState.from_json(json.loads(path.read_text(encoding="utf-8")))
        state.check_destination(log_group, bucket, prefix)
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # includes JSONDecodeError
        raise StateFileError(f"state file {path}: {exc}") from None
    return state


def save_state(path: Path, state: ExportState) -> None:
    """Write ``state`` to ``path`` atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

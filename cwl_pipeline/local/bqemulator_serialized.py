"""bqemulator with one lock around its DuckDB connection.

Run as ``python -m cwl_pipeline.local.bqemulator_serialized start …`` (the emulator's arguments).

bqemulator 1.4.0 shares one DuckDB connection between its REST server (queries run on the
asyncio thread) and its Storage Write gRPC servicer (appends run on worker threads), and the
servicer's own lock covers appends only. A DuckDB connection is not safe for concurrent use
from two threads: a query and an append that overlap can block both forever (seen on the local
stack with the live sensor appending every 5 s while the `_recent` view is queried: the
emulator's main thread waiting in ``DuckDBEngine.fetch_arrow``, a gRPC thread in
``BigQueryWriteHandler._flush_to_target``). This entry point wraps the emulator's query calls
and its append in one re-entrant lock, then runs the emulator's own command line. Real BigQuery
needs nothing of the kind: it serves queries and appends concurrently.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return wrapper


def install() -> None:
    """Wrap the DuckDB calls of bqemulator's queries and of its Storage Write appends."""
    from bqemulator.grpc_api.write_servicer import BigQueryWriteHandler
    from bqemulator.storage.engine import DuckDBEngine

    for name in ("execute", "fetch_arrow"):
        setattr(DuckDBEngine, name, _serialized(getattr(DuckDBEngine, name)))
    BigQueryWriteHandler._flush_to_target = _serialized(BigQueryWriteHandler._flush_to_target)  # type: ignore[method-assign]


def main() -> int:
    """Install the lock, then run bqemulator's command line with this process's arguments."""
    install()
    from bqemulator.cli import main as emulator_main

    sys.argv[0] = "bqemulator"
    return int(emulator_main() or 0)


if __name__ == "__main__":
    sys.exit(main())

"""What this process already knows exists in BigQuery: datasets, tables, views.

BigQuery rate-limits metadata writes: "Your project can perform up to five dataset update
operations every 10 seconds" per dataset, ``datasets.insert`` included, and "up to five table
metadata update operations per 10 seconds per table" (``tables.insert``, ``tables.patch``,
``tables.update``, DDL on tables) — https://cloud.google.com/bigquery/quotas#dataset_limits
and #standard_tables. So the loader reads before it creates, and remembers here, for the
life of the process, what it created or found: a dataset or table it knows is not read or
created again. A table is remembered with the spec it was evolved to (another spec is
evolved again), a view with its query (another query replaces it).

An entry is forgotten when BigQuery says something is not found (the dataset or table was
deleted behind the process's back): the next ensure reads and creates again.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

__all__ = ["METADATA", "MetadataCache"]

Place = tuple[str, str]
"""Where the metadata lives: the API endpoint and the project."""


class MetadataCache:
    """Datasets, tables (with their spec) and views (with their query) known to exist."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._datasets: set[tuple[str, str, str]] = set()
        self._tables: dict[tuple[str, str, str, str], Hashable] = {}
        self._views: dict[tuple[str, str, str, str], str] = {}

    def has_dataset(self, place: Place, dataset: str) -> bool:
        """Whether ``dataset`` is known to exist."""
        with self._lock:
            return (*place, dataset) in self._datasets

    def add_dataset(self, place: Place, dataset: str) -> None:
        """Remember that ``dataset`` exists."""
        with self._lock:
            self._datasets.add((*place, dataset))

    def table_spec(self, place: Place, dataset: str, table: str) -> Hashable | None:
        """The spec ``table`` was last created or evolved to, if known."""
        with self._lock:
            return self._tables.get((*place, dataset, table))

    def set_table(self, place: Place, dataset: str, table: str, spec: Hashable) -> None:
        """Remember that ``table`` exists and matches ``spec``."""
        with self._lock:
            self._tables[(*place, dataset, table)] = spec

    def view_query(self, place: Place, dataset: str, view: str) -> str | None:
        """The query ``view`` was last created or replaced with, if known."""
        with self._lock:
            return self._views.get((*place, dataset, view))

    def set_view(self, place: Place, dataset: str, view: str, query: str) -> None:
        """Remember that ``view`` exists with ``query``."""
        with self._lock:
            self._views[(*place, dataset, view)] = query

    def forget(self, place: Place, dataset: str | None = None) -> None:
        """Forget what is known of ``dataset`` (of every dataset if None) at ``place``."""
        with self._lock:
            self._datasets = {k for k in self._datasets if not _under(k, place, dataset)}
            self._tables = {k: v for k, v in self._tables.items() if not _under(k, place, dataset)}
            self._views = {k: v for k, v in self._views.items() if not _under(k, place, dataset)}

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._datasets.clear()
            self._tables.clear()
            self._views.clear()


def _under(key: tuple[str, ...], place: Place, dataset: str | None) -> bool:
    return key[:2] == place and (dataset is None or key[2] == dataset)


METADATA = MetadataCache()
"""The process's cache: every loader of the process shares it."""

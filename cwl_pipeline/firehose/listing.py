"""Listing a Firehose stream's objects by key period, whatever its key layout.

With Firehose's own layout (``<prefix>YYYY/MM/dd/HH/``), or any template whose time comes
before its dynamic values, a period's objects share a prefix, so a listing can start at the
period it needs (``StartAfter``) or list that period's prefix only.

A dynamic-partitioning template often puts a partition key first
(``logs/!{partitionKeyFromQuery:account}/!{timestamp:yyyy/MM/dd/HH}/``), and the error output
prefix usually does (``errors/!{firehose:error-output-type}/!{timestamp:...}/``). Listed from
its static head, such a layout lists every object ever written under it, at every tick.
Instead, the values of each leading dynamic expression are found with one ``/``-delimited
listing of the level they are in (:meth:`~cwl_pipeline.firehose.key_layout.KeyLayout.leading_dynamic`),
and each value's keys are listed by time like any other layout. The cost then grows with the
number of values (accounts, error types), not with the bucket's history. Objects found beside
those folders cannot be in the layout; they are returned so that the ``keys_in_layout``
check reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.firehose.key_layout import KeyLayout
from cwl_pipeline.s3_objects.stored import StoredObject


def concrete_layouts(
    store: S3ObjectStore, bucket: str, layout: KeyLayout
) -> tuple[list[KeyLayout], list[StoredObject]]:
    """``layout`` with its leading dynamic values filled in, one layout per combination of
    values found in the bucket (``[layout]`` when it has none to fill), and the objects found
    beside the listed folders (outside the layout)."""
    done: list[KeyLayout] = []
    strays: list[StoredObject] = []
    pending = [layout]
    while pending:
        current = pending.pop()
        lead = current.leading_dynamic()
        if lead is None:
            done.append(current)
            continue
        prefix, name = lead
        folders, objects = store.list_level(bucket, prefix)
        strays += objects
        for folder in folders:
            value = folder[len(prefix) :].rstrip("/")
            if value and "!{" not in value:
                pending.append(current.with_value(name, value))
    return sorted(done, key=lambda item: item.template), strays


def list_layout(
    store: S3ObjectStore,
    bucket: str,
    layout: KeyLayout,
    start_after: Callable[[KeyLayout], str | None],
) -> Iterator[StoredObject]:
    """Every object of ``layout`` from the key ``start_after`` gives for each of its concrete
    layouts (None: all of them), and the objects beside its dynamic folders."""
    layouts, strays = concrete_layouts(store, bucket, layout)
    yield from strays
    for concrete in layouts:
        yield from store.list_objects(bucket, concrete.static_head, start_after(concrete))


def list_periods(
    store: S3ObjectStore, bucket: str, layout: KeyLayout, start: datetime, end: datetime
) -> list[StoredObject]:
    """Every object under the key prefixes of the periods overlapping ``[start, end)``."""
    layouts, _ = concrete_layouts(store, bucket, layout)
    return [
        obj
        for concrete in layouts
        for prefix in concrete.listing_prefixes(start, end)
        for obj in store.list_objects(bucket, prefix)
    ]

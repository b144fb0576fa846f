"""bench-cost's floor of a statement and its CloudWatch-sized ids, without a server."""

from __future__ import annotations

import pyarrow as pa

from benchmarks.cost import GrowingTables, cloudwatch_sized, logical_bytes, statement_floor
from benchmarks.dml_billing import MIN_BILLED_BYTES, Scan, Statement

STAGE, EVENTS, LIVE = "p.d._stage_x", "p.d.events", "p.d.events_live"


def sizes() -> GrowingTables:
    """A staging table of 50 MiB of `action` and 30 MiB of `event_id`; events and live known."""
    return GrowingTables(
        scale=1.0,
        by_table={EVENTS: ([], {}), LIVE: ([], {})},
        staged={STAGE: {"action": 50 * 2**20, "event_id": 30 * 2**20}},
    )


def test_an_insert_floor_is_its_staged_rows_plus_the_minimum_of_every_other_table():
    insert = Statement(
        "INSERT", (Scan(STAGE, frozenset({"action", "event_id"})), Scan(EVENTS, frozenset({"event_id"})))
    )
    assert statement_floor(insert, sizes()) == 80 * 2**20 + MIN_BILLED_BYTES


def test_any_other_statement_floor_is_the_minimum_per_table_it_references():
    join = Statement("WITH", (Scan(STAGE, frozenset({"event_id"})), Scan(EVENTS, frozenset({"event_id"}))))
    view = Statement("SELECT", (Scan(EVENTS, frozenset({"action"})), Scan(LIVE, frozenset({"action"}))))
    assert statement_floor(join, sizes()) == 2 * MIN_BILLED_BYTES
    assert statement_floor(view, sizes()) == 2 * MIN_BILLED_BYTES


def test_ids_of_the_local_cloudwatch_are_sized_as_cloudwatch_ones():
    rows = pa.table({"event_id": ["7", None, "123456"], "action": ["a", "bb", None]})
    sized = cloudwatch_sized(logical_bytes(rows))
    assert sized["event_id"].to_pylist() == [58, 0, 58]  # 56 digits + 2, a NULL costs nothing
    assert sized["action"].to_pylist() == [3, 4, 0]

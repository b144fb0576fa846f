"""The on-demand DML billing model: scans, modified partitions, minimums, SQL interpretation."""

from __future__ import annotations

from datetime import date

from cwl_pipeline.core.dml_billing import MIN_BILLED_BYTES, Scan, Statement, billed_bytes, interpret

MIB = 2**20
EVENTS = "p.d.events"
STAGE = "p.d._stage_events_x"
SCHEMAS = {
    EVENTS: ("timestamp", frozenset({"timestamp", "event_id", "log_group", "action"})),
    STAGE: ("", frozenset({"timestamp", "event_id", "action"})),
}


class Sizes:
    """100 MiB per column per day on 2026-11-27 and 2026-11-28; staging 20 MiB per column."""

    def bytes(self, table, columns, first, last):
        names = SCHEMAS[table][1] if columns is None else columns
        if table == STAGE:
            return 20 * MIB * len(names)
        days = [d for d in (date(2026, 11, 27), date(2026, 11, 28)) if first is None or first <= d <= last]
        return 100 * MIB * len(names) * len(days)


def test_insert_is_billed_its_scan_only():
    statement = Statement("INSERT", (Scan(STAGE, frozenset({"event_id", "timestamp"})),))
    assert billed_bytes(statement, Sizes()) == 40 * MIB


def test_delete_is_billed_its_scan_plus_every_column_of_the_modified_partitions():
    day = date(2026, 11, 28)
    statement = Statement(
        "DELETE", (Scan(EVENTS, frozenset({"timestamp"}), day, day),), ((EVENTS, day, day),)
    )
    assert billed_bytes(statement, Sizes()) == 100 * MIB + 4 * 100 * MIB


def test_minimums_per_table_and_per_statement_and_free_kinds():
    small = Statement("SELECT", (Scan(EVENTS, frozenset({"timestamp"}), date(2020, 1, 1), date(2020, 1, 1)),))
    assert billed_bytes(small, Sizes()) == MIN_BILLED_BYTES
    assert billed_bytes(Statement("SELECT"), Sizes()) == MIN_BILLED_BYTES
    assert billed_bytes(Statement("COMMIT"), Sizes()) == 0
    assert billed_bytes(Statement("DDL"), Sizes()) == 0


def test_interpreted_replace_script_prunes_to_the_window_day():
    sql = (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM `{EVENTS}` WHERE (`timestamp` >= TIMESTAMP '2026-11-28 23:45:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-29 00:00:00.000000+00') AND (`log_group` IN ('/a'));\n"
        f"INSERT INTO `{EVENTS}` (`timestamp`, `event_id`, `action`) "
        f"SELECT `timestamp`, `event_id`, `action`, CURRENT_TIMESTAMP() FROM `{STAGE}`;\n"
        "COMMIT TRANSACTION;"
    )
    begin, delete, insert, commit = interpret(sql, {}, SCHEMAS)
    assert (begin.kind, commit.kind) == ("BEGIN", "COMMIT")
    day = date(2026, 11, 28)
    assert delete.scans == (Scan(EVENTS, frozenset({"timestamp", "log_group"}), day, day),)
    assert delete.modifies == ((EVENTS, day, day),)
    assert insert.scans == (Scan(STAGE, frozenset({"timestamp", "event_id", "action"})),)
    assert insert.modifies == ()


def test_parameters_bound_a_scan_and_an_unbounded_scan_reads_every_partition():
    from datetime import UTC, datetime

    params = {
        "scope_start": datetime(2026, 11, 27, tzinfo=UTC),
        "scope_end": datetime(2026, 11, 28, tzinfo=UTC),
    }
    [count] = interpret(
        f"SELECT COUNT(*) FROM `{EVENTS}` WHERE `timestamp` >= @scope_start AND `timestamp` < @scope_end",
        params,
        SCHEMAS,
    )
    assert count.scans == (Scan(EVENTS, frozenset({"timestamp"}), date(2026, 11, 27), date(2026, 11, 27)),)
    [keys] = interpret(f"SELECT `event_id` FROM `{EVENTS}` WHERE `action` = 'x'", {}, SCHEMAS)
    assert keys.scans == (Scan(EVENTS, frozenset({"event_id", "action"})),)
    assert billed_bytes(keys, Sizes()) == 2 * 2 * 100 * MIB

"""The on-demand DML billing model: scans, modified partitions, minimums, SQL interpretation."""

from __future__ import annotations

from datetime import UTC, date, datetime

from benchmarks.dml_billing import MIN_BILLED_BYTES, Scan, Statement, billed_bytes, interpret

MIB = 2**20
EVENTS = "p.d.events"
STAGE = "p.d._stage_events_x"
SCHEMAS = {
    EVENTS: ("timestamp", frozenset({"timestamp", "event_id", "log_group", "action"})),
    STAGE: ("", frozenset({"timestamp", "event_id", "action"})),
}


class Sizes:
    """100 MiB per column per day on 2026-11-27 and 2026-11-28; staging 20 MiB per column."""

    def bytes(self, table, columns, first, last, start=None, end=None):
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
    window = (datetime(2026, 11, 28, 23, 45, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    assert delete.scans == (Scan(EVENTS, frozenset({"timestamp", "log_group"}), day, day, *window),)
    assert delete.modifies == ((EVENTS, day, day),)
    assert insert.scans == (Scan(STAGE, frozenset({"timestamp", "event_id", "action"})),)
    assert insert.modifies == ()


def test_insert_of_missing_rows_reads_its_target_in_the_window_only():
    window_sql = (
        "(`timestamp` >= TIMESTAMP '2026-11-28 10:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-28 10:15:00.000000+00')"
    )
    sql = (
        f"INSERT INTO `{EVENTS}` (`timestamp`, `event_id`, `action`) "
        f"SELECT `timestamp`, `event_id`, `action`, CURRENT_TIMESTAMP() FROM `{STAGE}` AS staged "
        f"WHERE NOT EXISTS (SELECT 1 FROM `{EVENTS}` WHERE {window_sql} "
        "AND `event_id` = staged.`event_id` AND `timestamp` = staged.`timestamp`)"
    )
    [insert] = interpret(sql, {}, SCHEMAS)
    day = date(2026, 11, 28)
    window = (datetime(2026, 11, 28, 10, tzinfo=UTC), datetime(2026, 11, 28, 10, 15, tzinfo=UTC))
    assert set(insert.scans) == {
        Scan(STAGE, frozenset({"timestamp", "event_id", "action"})),
        Scan(EVENTS, frozenset({"timestamp", "event_id"}), day, day, *window),
    }
    assert insert.modifies == ()


def test_parameters_bound_a_scan_and_an_unbounded_scan_reads_every_partition():
    params = {
        "scope_start": datetime(2026, 11, 27, tzinfo=UTC),
        "scope_end": datetime(2026, 11, 28, tzinfo=UTC),
    }
    [count] = interpret(
        f"SELECT COUNT(*) FROM `{EVENTS}` WHERE `timestamp` >= @scope_start AND `timestamp` < @scope_end",
        params,
        SCHEMAS,
    )
    day = date(2026, 11, 27)
    assert count.scans == (Scan(EVENTS, frozenset({"timestamp"}), day, day, *params.values()),)
    [keys] = interpret(f"SELECT `event_id` FROM `{EVENTS}` WHERE `action` = 'x'", {}, SCHEMAS)
    assert keys.scans == (Scan(EVENTS, frozenset({"event_id", "action"})),)
    assert billed_bytes(keys, Sizes()) == 2 * 2 * 100 * MIB


def test_several_time_ranges_are_billed_as_their_span():
    sql = (
        f"SELECT `event_id`, `timestamp` FROM `{EVENTS}` WHERE "
        "((`timestamp` >= TIMESTAMP '2026-11-20 10:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-20 11:00:00.000000+00') OR "
        "(`timestamp` >= TIMESTAMP '2026-11-27 10:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-27 11:00:00.000000+00'))"
    )
    [select] = interpret(sql, {}, SCHEMAS)
    [scan] = select.scans
    assert (scan.first_day, scan.last_day) == (date(2026, 11, 20), date(2026, 11, 27))


def test_an_insert_column_list_is_not_read_from_its_source():
    sql = (
        "INSERT INTO `p.d.rollup` (`hour`, `action`, `loaded_at`) "
        "SELECT TIMESTAMP_TRUNC(`timestamp`, HOUR), `action`, CURRENT_TIMESTAMP() FROM `p.d.events` "
        "WHERE `timestamp` >= TIMESTAMP '2026-11-28 00:00:00+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-28 01:00:00+00'"
    )
    schemas = {EVENTS: ("timestamp", frozenset({"timestamp", "action", "loaded_at", "event_id"}))}
    [statement] = interpret(sql, {}, schemas)
    [scan] = statement.scans
    assert scan.columns == frozenset({"timestamp", "action"})


def test_a_bound_relative_to_the_current_time_prunes_from_that_day_on():
    sql = (
        "SELECT `event_id` FROM `p.d.events` "
        "WHERE `timestamp` >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 4 DAY)"
    )
    now = datetime(2026, 11, 28, 6, tzinfo=UTC)
    [statement] = interpret(sql, {}, SCHEMAS, now=now)
    [scan] = statement.scans
    assert (scan.first_day, scan.last_day) == (date(2026, 11, 24), None)
    assert scan.start == datetime(2026, 11, 24, 6, tzinfo=UTC)
    # Without a clock the bound is unknown: every partition is billed.
    [unbounded] = interpret(sql, {}, SCHEMAS)
    assert (unbounded.scans[0].first_day, unbounded.scans[0].last_day) == (None, None)


def test_a_declare_is_free_unless_it_reads_a_table():
    script = (
        "DECLARE _load_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP();\n"
        "DECLARE n INT64 DEFAULT (SELECT COUNT(`event_id`) FROM `p.d.events`);"
    )
    free, query = interpret(script, {}, SCHEMAS)
    assert free.kind == "DECLARE" and billed_bytes(free, Sizes()) == 0
    assert query.kind == "SELECT" and billed_bytes(query, Sizes()) == 2 * 100 * MIB

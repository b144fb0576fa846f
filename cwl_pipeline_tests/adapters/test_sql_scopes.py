"""Replacement scopes on source_object: keys never enter SQL text, hostile keys scope exactly.

Object keys may hold any character. Single statements pass them as query parameters; the
transaction script reads them from a staged scope table. Both are run against the emulator
with keys full of quotes, backslashes, control characters and SQL syntax.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.bigquery_transactions import Replacement
from cwl_pipeline.adapters.sql_scopes import (
    all_of,
    in_scope,
    literal_in_scope,
    prefix_scope,
    time_ranges_scope,
    time_scope,
)
from cwl_pipeline.core.schema import Column

HOSTILE_KEYS = [
    "s3://b/p/plain.gz",
    "s3://b/p/it's.gz",
    "s3://b/p/back\\slash\\'.gz",
    "s3://b/p/new\nline\r\t.gz",
    "s3://b/p/ctl\x01\x1f\x7f.gz",
    "s3://b/p/`tick`; DROP TABLE x; --.gz",
    "s3://b/p/uni é😀\u2028\ufeff.gz",
    's3://b/p/"double".gz',
    "s3://b/p/@scope_keys ${x} %s.gz",
]
SPEC = TableSpec(
    table="objects",
    columns=(
        Column("timestamp", "TIMESTAMP", required=True),
        Column("source_object", "STRING"),
        Column("n", "INT64"),
    ),
    partition_column="timestamp",
)
T = datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_script_predicates_hold_no_key_text():
    for scope in (
        in_scope("source_object", HOSTILE_KEYS),
        prefix_scope("source_object", "s3://b/'p", ["x'y"]),
    ):
        sql = scope.in_script("`p.d.scope`", 3)
        assert all(value not in sql for _, value in scope.scope_rows())
        assert "`scope` = 3" in sql


def test_empty_key_scope_matches_nothing():
    scope = in_scope("source_object", [])
    assert scope.with_parameters() == ("FALSE", [])
    assert scope.in_script(None, 0) == "FALSE"
    assert scope.scope_rows() == []


def test_time_scope_script_form_is_typed_literals():
    scope = time_scope("timestamp", T, T.replace(hour=11))
    assert scope.in_script() == (
        "`timestamp` >= TIMESTAMP '2026-11-20 10:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-20 11:00:00.000000+00'"
    )
    assert scope.scope_rows() == []


def test_time_and_log_group_scope_needs_no_scope_table():
    """A polling window's scope: typed time bounds and escaped log group literals, no staged keys."""
    scope = all_of(
        time_scope("timestamp", T, T.replace(hour=11)), literal_in_scope("log_group", ["/b", "/a'x"])
    )
    assert scope.scope_rows() == []
    assert scope.in_script(None, 0).endswith("AND (`log_group` IN ('/a\\'x', '/b'))")
    sql, params = scope.with_parameters()
    assert sql.endswith("AND (`log_group` IN UNNEST(@scope_names))")
    assert [p.name for p in params] == ["scope_start", "scope_end", "scope_names"]
    assert (
        all_of(time_scope("timestamp", T, T), literal_in_scope("log_group", []))
        .in_script(None, 0)
        .endswith("AND (FALSE)")
    )


def test_scopes_combined_with_clashing_parameters_are_refused():
    with pytest.raises(ValueError, match="reuse a parameter name"):
        all_of(in_scope("a", ["k"]), in_scope("b", ["k"])).with_parameters()


def test_hostile_column_name_is_refused():
    with pytest.raises(ValueError, match="not a valid BigQuery column name"):
        in_scope("source_object` = 1 OR `x", ["k"]).with_parameters()


@pytest.fixture
def loader(bq_client, unique_name) -> BigQueryLoader:
    loader = BigQueryLoader(bq_client, f"ds_scope_{unique_name}", location="US")
    loader.ensure_dataset()
    loader.ensure_table(SPEC)
    return loader


def _rows(keys: list[str], n: int) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([T] * len(keys), pa.timestamp("us", tz="UTC")),
            "source_object": pa.array(keys, pa.string()),
            "n": pa.array([n] * len(keys), pa.int64()),
        }
    )


def _stored(loader: BigQueryLoader) -> dict[str, int]:
    rows = loader.query_rows(f"SELECT source_object, n FROM {loader.table_sql('objects')}")
    return {r["source_object"]: r["n"] for r in rows}


def test_key_scope_replaces_exactly_the_hostile_keys(loader):
    everything = [*HOSTILE_KEYS, "s3://b/q/other.gz"]
    loader.replace([Replacement(SPEC, _rows(everything, 1), in_scope("source_object", everything))])
    assert _stored(loader) == dict.fromkeys(everything, 1)
    # Parameterized count sees every hostile key.
    assert loader.count("objects", in_scope("source_object", HOSTILE_KEYS)) == len(HOSTILE_KEYS)
    # A script scoped by the staged keys replaces exactly those rows, nothing else.
    loader.replace([Replacement(SPEC, _rows(HOSTILE_KEYS, 2), in_scope("source_object", HOSTILE_KEYS))])
    assert _stored(loader) == {**dict.fromkeys(HOSTILE_KEYS, 2), "s3://b/q/other.gz": 1}
    # The staged scope table is dropped afterwards.
    staged = [t.table_id for t in loader.client.list_tables(loader.staging_dataset)]
    assert not [t for t in staged if t.startswith("_scope_")]


def test_prefix_scope_with_exclusions(loader):
    keys = ["s3://b/p'x/1", "s3://b/p'x/2\n", "s3://b/p'x/bad", "s3://b/p'y/1"]
    loader.replace([Replacement(SPEC, _rows(keys, 1), in_scope("source_object", keys))])
    scope = prefix_scope("source_object", "s3://b/p'x/", excluding=["s3://b/p'x/bad"])
    assert loader.count("objects", scope) == 2
    assert loader.count("objects", prefix_scope("source_object", "s3://b/p'x/")) == 3
    loader.replace([Replacement(SPEC, _rows(["s3://b/p'x/1"], 5), scope)])
    assert _stored(loader) == {"s3://b/p'x/1": 5, "s3://b/p'x/bad": 1, "s3://b/p'y/1": 1}


def test_select_and_duplicates_take_parameters(loader):
    keys = ["s3://b/k'1", "s3://b/k'1", "s3://b/k\\2"]
    loader.replace([Replacement(SPEC, _rows(keys, 1), in_scope("source_object", keys))])
    selected = loader.select("objects", ["source_object"], in_scope("source_object", ["s3://b/k'1"]))
    assert [r["source_object"] for r in selected] == ["s3://b/k'1", "s3://b/k'1"]
    assert loader.duplicate_ids("objects", in_scope("source_object", keys), id_column="source_object") == 1


def test_iter_select_fetches_page_by_page_in_order(loader):
    keys = [f"s3://b/k'{i:02d}" for i in range(7)]
    loader.replace([Replacement(SPEC, _rows(keys[::-1], 1), in_scope("source_object", keys))])
    rows = loader.iter_select(
        "objects",
        ["source_object", "n"],
        in_scope("source_object", keys[1:]),
        order_by=["source_object"],
        page_size=2,
    )
    first = next(rows)  # a generator: nothing beyond the first page is fetched yet
    assert first == {"source_object": keys[1], "n": 1}
    assert [r["source_object"] for r in rows] == keys[2:]


def test_time_ranges_scope_merges_touching_ranges_and_renders_both_forms():
    hour = timedelta(hours=1)
    scope = time_ranges_scope(
        "timestamp", [(T + 3 * hour, T + 4 * hour), (T, T + hour), (T + hour, T + 2 * hour)]
    )
    assert scope.ranges == ((T, T + 2 * hour), (T + 3 * hour, T + 4 * hour))
    assert scope.in_script() == (
        "((`timestamp` >= TIMESTAMP '2026-11-20 10:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-20 12:00:00.000000+00') OR "
        "(`timestamp` >= TIMESTAMP '2026-11-20 13:00:00.000000+00' "
        "AND `timestamp` < TIMESTAMP '2026-11-20 14:00:00.000000+00'))"
    )
    sql, params = scope.with_parameters()
    assert [p.name for p in params] == [
        "scope_range_0_start",
        "scope_range_0_end",
        "scope_range_1_start",
        "scope_range_1_end",
    ]
    assert " OR " in sql and scope.scope_rows() == []
    assert time_ranges_scope("timestamp", []).in_script() == "FALSE"


def test_select_marks_the_rows_of_a_narrower_scope(loader):
    """What a load reads before it writes: the copies in the hours of its events, marked when
    they are its own (here: from its objects)."""
    hour = timedelta(hours=1)
    mine, theirs = ["s3://b/mine'1"], ["s3://b/theirs"]
    loader.replace([Replacement(SPEC, _rows(mine + theirs, 1), in_scope("source_object", mine + theirs))])
    hours = time_ranges_scope("timestamp", [(T, T + hour), (T + 5 * hour, T + 6 * hour)])
    selected = loader.select("objects", ["source_object"], hours, marking=in_scope("source_object", mine))
    assert sorted((r["source_object"], r["marked"]) for r in selected) == [
        ("s3://b/mine'1", True),
        ("s3://b/theirs", False),
    ]
    elsewhere = time_ranges_scope("timestamp", [(T + hour, T + 2 * hour)])
    assert loader.select("objects", ["source_object"], elsewhere) == []

"""Replacement scopes on source_object: literals are escaped, empty scopes match nothing."""

from __future__ import annotations

from cwl_pipeline.adapters.sql_scopes import in_scope, prefix_scope, sql_string


def test_string_literals_escape_every_special_character():
    assert sql_string("s3://b/k") == "'s3://b/k'"
    assert sql_string("it's a \\ path\nwith\x01") == "'it\\'s a \\\\ path\\nwith\\x01'"


def test_scopes():
    assert in_scope("source_object", []) == "FALSE"
    assert in_scope("source_object", ["b", "a", "a"]) == "`source_object` IN ('a', 'b')"
    assert prefix_scope("source_object", "s3://b/p/t/") == "STARTS_WITH(`source_object`, 's3://b/p/t/')"
    assert prefix_scope("source_object", "s3://b/p/", ["s3://b/p/x"]) == (
        "STARTS_WITH(`source_object`, 's3://b/p/') AND NOT (`source_object` IN ('s3://b/p/x'))"
    )

"""The vpc_flow parser: the default version-2 format, custom formats, NODATA/SKIPDATA, bad lines."""

from __future__ import annotations

import pytest

from cwl_pipeline.core.parsers import ParserError, parser_from_config
from cwl_pipeline.core.parsers.vpc_flow import vpc_flow_parser
from cwl_pipeline.core.schema import VPC_FLOW_SCHEMA, TableSchema
from cwl_pipeline_tests.core.parsers import samples as s
from cwl_pipeline_tests.core.parsers.normalized import reasons, rows, run


def test_default_format_record_is_typed():
    assert vpc_flow_parser()(s.VPC_ACCEPT) == {
        "version": 2,
        "account_id": "123456789010",
        "interface_id": "eni-1235b8ca123456789",
        "srcaddr": "172.31.16.139",
        "dstaddr": "172.31.16.21",
        "srcport": 20641,
        "dstport": 22,
        "protocol": 6,
        "packets": 20,
        "bytes": 4249,
        "start": 1418530010,
        "end": 1418530070,
        "action": "ACCEPT",
        "log_status": "OK",
    }


def test_builtin_schema_rows_with_nodata_and_skipdata_as_nulls():
    batch = run([s.VPC_ACCEPT, s.VPC_REJECT, s.VPC_NODATA, s.VPC_SKIPDATA], VPC_FLOW_SCHEMA)
    assert batch.rows_rejected == 0
    loaded = rows(batch)
    assert [(r["action"], r["log_status"]) for r in loaded] == [
        ("ACCEPT", "OK"),
        ("REJECT", "OK"),
        (None, "NODATA"),
        (None, "SKIPDATA"),
    ]
    nodata = loaded[2]
    assert [nodata[c] for c in ("srcaddr", "srcport", "packets", "bytes")] == [None, None, None, None]
    assert (nodata["start_time"], nodata["end_time"]) == (1_431_280_876_000, 1_431_280_934_000)
    assert loaded[0]["dstport"] == 22 and loaded[0]["account_id"] == "123456789010"


def test_tabs_and_repeated_spaces_separate_fields_and_account_ids_keep_leading_zeros():
    line = s.VPC_ACCEPT.replace(" 123456789010 ", "\t012345678901\t").replace(" ACCEPT", "   ACCEPT")
    record = vpc_flow_parser()(line)
    assert (record["account_id"], record["action"]) == ("012345678901", "ACCEPT")


def test_custom_format_from_a_log_format_string():
    spec = parser_from_config(
        {
            "type": "vpc_flow",
            "format": "${version} ${vpc-id} ${subnet-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${tcp-flags} "
            "${flow-direction} ${traffic-path}",
        }
    )
    record = spec.build()("5 vpc-0a1b2c3d subnet-9f8e7d6c 10.0.1.5 10.0.2.9 203.0.113.7 19 ingress -")
    assert record == {
        "version": 5,
        "vpc_id": "vpc-0a1b2c3d",
        "subnet_id": "subnet-9f8e7d6c",
        "srcaddr": "10.0.1.5",
        "dstaddr": "10.0.2.9",
        "pkt_srcaddr": "203.0.113.7",
        "tcp_flags": 19,
        "flow_direction": "ingress",
        "traffic_path": None,
    }


def test_custom_field_list_through_a_schema():
    schema = TableSchema.from_dict(
        "flows",
        {
            "parser": {"type": "vpc_flow", "fields": ["interface-id", "srcaddr", "bytes", "start"]},
            "columns": [
                {"name": "timestamp", "type": "TIMESTAMP", "source": "event_timestamp"},
                {"name": "interface_id", "type": "STRING", "required": True},
                {"name": "bytes", "type": "INT64"},
                {"name": "started", "type": "TIMESTAMP", "path": "start", "format": "epoch_s"},
            ],
        },
    )
    batch = run(
        ["eni-01 10.0.0.1 512 1418530010", "eni-02 10.0.0.2 many 1418530010", "eni-03 10.0.0.3"], schema
    )
    assert [(r["interface_id"], r["bytes"], r["started"]) for r in rows(batch)] == [
        ("eni-01", 512, 1_418_530_010_000)
    ]
    assert reasons(batch) == ["invalid_type:bytes", "field_count"]
    detail = batch.rejects_table.column("detail").to_pylist()[1]
    assert "expected 4 space-separated fields (interface-id srcaddr bytes start), got 2" in detail


@pytest.mark.parametrize("message", ["", "   ", s.VPC_ACCEPT + " extra", "version account-id"])
def test_wrong_field_counts_are_rejects(message):
    batch = run([message], VPC_FLOW_SCHEMA)
    assert reasons(batch) == ["field_count"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"type": "vpc_flow", "fields": []}, "non-empty list"),
        ({"type": "vpc_flow", "fields": ["srcaddr", "srcaddr"]}, "listed twice"),
        ({"type": "vpc_flow", "format": "${version} srcaddr"}, "must be '\\$\\{field\\}' names"),
        ({"type": "vpc_flow", "format": "${version}", "fields": ["version"]}, "either 'fields' or 'format'"),
        ({"type": "vpc_flow", "pattern": "x"}, "unknown key"),
    ],
)
def test_invalid_custom_formats_are_named(spec, error):
    with pytest.raises(ParserError, match=error):
        parser_from_config(spec)

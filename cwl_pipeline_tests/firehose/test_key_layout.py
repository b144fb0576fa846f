"""Key templates: Firehose's default layout, custom prefixes, dynamic partitioning, error output."""

from datetime import UTC, datetime, timedelta

import pytest

from cwl_pipeline.firehose.key_layout import DAY, HOUR, KeyLayout, KeyTemplateError, firehose_layout
from cwl_pipeline.firehose.windows import (
    FirehoseCursor,
    delivery_window,
    is_late,
    listing_start_after,
    plan_firehose_requests,
)
from cwl_pipeline.s3_objects.stored import StoredObject

H = datetime(2026, 11, 20, 10, tzinfo=UTC)
NAME = "cwl-delivery-1-2026-11-20-10-05-00-0b7a4f3e-4b9c-4a57-9a56-2f0c1d8e9a11"


def test_default_layout_is_the_prefix_then_the_arrival_hour():
    layout = firehose_layout("fh/")
    assert layout.match(f"fh/2026/11/20/10/{NAME}").period == H
    assert layout.match("fh/README") is None
    assert layout.match(f"fh/2026/13/20/10/{NAME}") is None  # no 13th month
    assert layout.listing_prefixes(H, H + 2 * HOUR) == ["fh/2026/11/20/10/", "fh/2026/11/20/11/"]


def test_custom_prefix_with_quoted_literals_and_several_timestamps():
    layout = KeyLayout.parse("logs/dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/")
    assert layout.match(f"logs/dt=2026-11-20/h=10/{NAME}").period == H
    assert layout.resolution == HOUR
    assert layout.listing_prefixes(H, H + HOUR) == ["logs/dt=2026-11-20/h=10/"]
    # A day-resolution prefix: objects of a day share its folder.
    daily = KeyLayout.parse("logs/!{timestamp:yyyy/MM/dd}/")
    assert daily.resolution == DAY
    assert daily.match(f"logs/2026/11/20/{NAME}").period == H.replace(hour=0)


def test_dynamic_partitioning_keys_before_the_time_list_the_static_head():
    layout = KeyLayout.parse("cwl/!{partitionKeyFromQuery:group}/!{timestamp:yyyy/MM/dd/HH}/")
    match = layout.match(f"cwl/payments/2026/11/20/10/{NAME}")
    assert match.period == H and match.values == {"group": "payments"}
    assert not layout.time_before_dynamic()
    assert layout.listing_prefixes(H, H + HOUR) == ["cwl/"]
    assert listing_start_after(layout, FirehoseCursor(), H, H) is None


def test_a_leading_dynamic_folder_is_filled_in_and_then_listed_by_time():
    layout = KeyLayout.parse("cwl/!{partitionKeyFromQuery:group}/!{timestamp:yyyy/MM/dd/HH}/")
    assert layout.leading_dynamic() == ("cwl/", "group")
    payments = layout.with_value("group", "payments")
    assert payments.template == "cwl/payments/!{timestamp:yyyy/MM/dd/HH}/"
    assert payments.leading_dynamic() is None and payments.time_before_dynamic()
    assert payments.static_head == "cwl/payments/"
    assert payments.listing_prefixes(H, H + HOUR) == ["cwl/payments/2026/11/20/10/"]
    assert listing_start_after(payments, FirehoseCursor(), H, H) == "cwl/payments/2026/11/19/09"
    # The filled-in layout matches its keys as the template does, at the same period.
    key = f"cwl/payments/2026/11/20/10/{NAME}"
    assert payments.match(key).period == layout.match(key).period == H
    assert payments.match(f"cwl/orders/2026/11/20/10/{NAME}") is None
    # A value is literal text, regular-expression characters included.
    odd = layout.with_value("group", "a.b+c")
    assert odd.match(f"cwl/a.b+c/2026/11/20/10/{NAME}") and not odd.match(f"cwl/aXb+c/2026/11/20/10/{NAME}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("!{partitionKeyFromQuery:a}/!{timestamp:yyyy/MM/dd}/", ("", "a")),
        ("e/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", ("e/", "error-output-type")),
        ("e/!{firehose:random-string}/!{timestamp:yyyy/MM/dd/HH}/", None),  # one folder per object
        ("e/a-!{partitionKeyFromQuery:a}/!{timestamp:yyyy/MM/dd}/", None),  # not a whole folder
        ("e/!{partitionKeyFromQuery:a}-x/!{timestamp:yyyy/MM/dd}/", None),
        ("e/!{timestamp:yyyy}/!{partitionKeyFromQuery:a}/!{timestamp:MM/dd}/", None),  # time first
        ("e/!{timestamp:yyyy/MM/dd}/!{partitionKeyFromQuery:a}/", None),
    ],
)
def test_which_dynamic_values_can_be_listed_as_folders(template, expected):
    assert KeyLayout.parse(template).leading_dynamic() == expected


def test_nested_dynamic_folders_are_filled_in_one_by_one():
    layout = KeyLayout.parse(
        "l/!{partitionKeyFromQuery:a}/!{partitionKeyFromLambda:b}/!{timestamp:yyyy/MM/dd/HH}/"
    )
    first = layout.with_value("a", "x")
    assert first.leading_dynamic() == ("l/x/", "b")
    both = first.with_value("b", "y")
    assert both.static_head == "l/x/y/" and both.listing_prefixes(H, H + HOUR) == ["l/x/y/2026/11/20/10/"]


def test_error_output_prefix_gives_the_error_type():
    layout = KeyLayout.parse("errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/")
    match = layout.match(f"errors/processing-failed/2026/11/20/10/{NAME}")
    assert match.values == {"error-output-type": "processing-failed"} and match.period == H


def test_a_template_without_time_gets_the_default_hour_appended():
    assert KeyLayout.parse("raw/").template == "raw/!{timestamp:yyyy/MM/dd/HH}/"


@pytest.mark.parametrize(
    "template",
    ["x/!{timestamp:yyyy/MM}/", "x/!{nope:a}/", "x/!{firehose:other}/", "x/!{timestamp:yyyy/MM/dd/HH/ss}"],
)
def test_unusable_templates_are_refused(template):
    with pytest.raises(KeyTemplateError):
        KeyLayout.parse(template)


def obj(key: str, modified: datetime) -> StoredObject:
    return StoredObject(key=key, etag=key, size=1, last_modified=modified)


def test_windows_follow_the_template_and_late_objects_wait_for_the_deep_listing():
    layout = KeyLayout.parse("logs/h=!{timestamp:yyyy-MM-dd-HH}/")
    on_time = obj(f"logs/h=2026-11-20-10/{NAME}", H + timedelta(minutes=20))
    assert delivery_window(on_time, layout, timedelta(minutes=15)) == H + timedelta(minutes=15)
    late = obj(f"logs/h=2026-11-20-08/{NAME}", H + timedelta(minutes=21))
    assert is_late(late, layout) and not is_late(on_time, layout)
    cursor = FirehoseCursor(watermark=H + timedelta(minutes=10), deep_listed_at=H)
    common = dict(
        prefix=layout,
        cursor=cursor,
        now=H + timedelta(minutes=25),
        size=timedelta(minutes=15),
        begin=H - timedelta(days=1),
        partitions_start=H - timedelta(days=2),
        max_windows=96,
    )
    quick = plan_firehose_requests([on_time, late], deep=False, **common)
    assert [r.first for r in quick.ranges] == [H + timedelta(minutes=15)]
    assert quick.cursor.late_watermark is None  # the late object is still to be looked for
    deep = plan_firehose_requests([on_time, late], deep=True, **common)
    assert [r.first for r in deep.ranges] == [
        H - timedelta(hours=2) + timedelta(minutes=45),
        H + timedelta(minutes=15),
    ]
    after = plan_firehose_requests([on_time, late], deep=True, **{**common, "cursor": deep.cursor})
    assert after.ranges == []  # neither is requested twice


def test_quick_listing_starts_near_the_watermark_deep_listing_a_day_back():
    cursor = FirehoseCursor(watermark=H + timedelta(minutes=30), deep_listed_at=H)
    assert listing_start_after("fh/", cursor, H, H, deep=False) == "fh/2026/11/20/09"
    assert listing_start_after("fh/", cursor, H, H, deep=True) == "fh/2026/11/19/09"
    assert not cursor.deep_due(H + timedelta(minutes=29)) and cursor.deep_due(H + timedelta(minutes=30))


def test_keys_outside_the_layout_are_named_once():
    layout = firehose_layout("fh/")
    stray = obj("fh/manual-upload.json", H + timedelta(minutes=5))
    plan = plan_firehose_requests(
        [stray],
        prefix=layout,
        cursor=FirehoseCursor(watermark=H, deep_listed_at=H),
        now=H + timedelta(minutes=10),
        size=timedelta(minutes=15),
        begin=H,
        partitions_start=H,
        max_windows=96,
        deep=False,
    )
    assert plan.outside_keys == ["fh/manual-upload.json"]
    again = plan_firehose_requests(
        [stray],
        prefix=layout,
        cursor=plan.cursor,
        now=H + timedelta(minutes=11),
        size=timedelta(minutes=15),
        begin=H,
        partitions_start=H,
        max_windows=96,
        deep=False,
    )
    assert again.outside_keys == []

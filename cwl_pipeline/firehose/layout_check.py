"""The ``keys_in_layout`` check of a Firehose stream: no object under its prefix is ignored silently.

An object whose key the stream's key template (or error output prefix) does not match has no
delivery window, so no run loads it. The sensor reports such keys as soon as it lists them, as
a failed evaluation of this check naming the keys; run by hand, the check lists the key periods
of the last :data:`~cwl_pipeline.firehose.windows.MAX_DELIVERY_DELAY` again and passes once
none is left there (the object moved or deleted, or the template corrected).
"""

from datetime import UTC, datetime

import dagster as dg

from cwl_pipeline.adapters.s3 import S3ObjectStore
from cwl_pipeline.config import S3Source
from cwl_pipeline.firehose.key_layout import KeyLayout, firehose_layout
from cwl_pipeline.firehose.listing import list_layout
from cwl_pipeline.firehose.windows import FirehoseCursor, listing_start_after
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.tables import events_key

KEYS_IN_LAYOUT = "keys_in_layout"
_SHOWN = 50  # keys named in the metadata


def stream_layouts(source: S3Source) -> list[KeyLayout]:
    """The stream's key layout, then its error output layout if it has one."""
    layouts = [firehose_layout(source.prefix, source.key_template)]
    if source.error_template is not None:
        layouts.append(KeyLayout.parse(source.error_template))
    return layouts


def outside_layout(keys: list[str], layouts: list[KeyLayout]) -> list[str]:
    """The keys no layout matches."""
    return [key for key in keys if all(layout.match(key) is None for layout in layouts)]


def layout_evaluation(tables: StreamTables, keys: list[str]) -> dg.AssetCheckEvaluation:
    """A failed ``keys_in_layout`` evaluation naming ``keys`` (passed without any)."""
    source = tables.stream.source
    assert isinstance(source, S3Source)
    return dg.AssetCheckEvaluation(
        asset_key=events_key(tables),
        check_name=KEYS_IN_LAYOUT,
        passed=not keys,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "objects_outside_layout": len(keys),
            "keys": ", ".join(keys[:_SHOWN]) or "none",
            "key_template": source.key_template or f"{source.prefix}!{{timestamp:yyyy/MM/dd/HH}}/",
        },
        description=(
            f"{len(keys)} object(s) under s3://{source.bucket}/ match neither the key template nor the "
            f"error output prefix, so no run loads them: {', '.join(keys[:5])}"
            if keys
            else "Every object listed is in the stream's key layout."
        ),
    )


def build_layout_check(tables: StreamTables) -> dg.AssetChecksDefinition:
    """The executable ``keys_in_layout`` check (the sensor also reports it as it lists)."""
    source = tables.stream.source
    assert isinstance(source, S3Source)
    layouts = stream_layouts(source)

    @dg.asset_check(
        asset=events_key(tables),
        name=KEYS_IN_LAYOUT,
        description="Every object under the stream's prefixes is in its key layout (none is left unloaded).",
        required_resource_keys={tables.project.aws},
    )
    def keys_in_layout(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        store = S3ObjectStore(tables.project.aws_resource(context).client("s3"))
        now = datetime.now(UTC)
        keys: list[str] = []
        for layout in layouts:
            listed = list_layout(
                store,
                source.bucket,
                layout,
                lambda concrete: listing_start_after(concrete, FirehoseCursor(), now, now),
            )
            keys += [o.key for o in listed]
        evaluation = layout_evaluation(tables, outside_layout(keys, layouts))
        return dg.AssetCheckResult(
            passed=evaluation.passed,
            severity=evaluation.severity,
            metadata=evaluation.metadata,
            description=evaluation.description,
        )

    return keys_in_layout

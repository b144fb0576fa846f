"""Asset checks on every events table, evaluated for the windows a run wrote.

* ``completeness`` (blocking): the events the source yielded (FilterLogEvents' events, the
  records decoded from S3 objects), less those delivered twice within the read and those
  another load already stored (another delivery window or export folder), equal the rows and
  rejects BigQuery holds in the load's scope afterwards. Both sides are counted independently:
  the source count as the reader yields events, the other with a query. On a stream's last
  late-data sweep it also flags drift: events that arrived after the previous load's horizon
  (a warning, not a failure).
* ``no_duplicate_event_ids`` (blocking): no event id appears twice in the windows.

A load that wrote nothing (a sweep that found nothing new: no transaction) is checked against
the counts of its scope it made in BigQuery just before deciding so, with no further query;
it added no row, so it added no duplicate either.
* ``reject_rate`` (warning): rejected / read stays under the configured threshold.
* ``schema_matches`` (blocking): every declared column is on the live table with its type and
  a compatible mode. Columns the table keeps but the config no longer declares, a column
  declared REQUIRED that the table holds as NULLABLE (added later) and another column order
  pass, listed in the metadata.
* ``latest_window_loaded``: the newest window that should be settled (now minus settle lag)
  was loaded after it closed. Runs on its own every few minutes, because a freshness policy
  sees only the latest materialization of any partition (an open-window refresh counts).

Blocking checks hold back the rollups (their automation condition requires them to pass).
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.core.windows import floor_to_window, partition_key
from cwl_pipeline.load.service import LoadFacts
from cwl_pipeline.load.tables import StreamTables
from cwl_pipeline.orchestration.tables import events_key

COMPLETENESS = "completeness"
NO_DUPLICATES = "no_duplicate_event_ids"
REJECT_RATE = "reject_rate"
SCHEMA = "schema_matches"
LATEST_WINDOW = "latest_window_loaded"


def load_check_specs(tables: StreamTables) -> list[dg.AssetCheckSpec]:
    """The checks every load of the events table evaluates."""
    key = events_key(tables)
    return [
        dg.AssetCheckSpec(
            COMPLETENESS,
            asset=key,
            blocking=True,
            description=(
                "Events counted at the source (less duplicates and events other loads stored) = "
                "rows + rejects BigQuery holds for the load."
            ),
        ),
        dg.AssetCheckSpec(
            NO_DUPLICATES, asset=key, blocking=True, description="No event_id twice in the loaded windows."
        ),
        dg.AssetCheckSpec(
            REJECT_RATE,
            asset=key,
            description=f"Rejected / read at most {tables.stream.max_reject_rate:.1%}.",
        ),
        dg.AssetCheckSpec(
            SCHEMA,
            asset=key,
            blocking=True,
            description="Every declared column is on the table with its type and a compatible mode.",
        ),
    ]


def evaluate_load_checks(
    loader: BigQueryLoader, tables: StreamTables, facts: LoadFacts
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the load checks against BigQuery after a load."""
    key = events_key(tables)
    # A load that wrote nothing counted its scope in BigQuery just before: that count stands.
    unchanged = facts.stored_unchanged is not None
    before_table, before_rejects = facts.stored_unchanged or (None, None)
    in_table = (
        before_table if before_table is not None else loader.count(tables.events.table, facts.scope.events)
    )
    in_rejects = (
        before_rejects
        if before_rejects is not None
        else loader.count(tables.rejects.table, facts.scope.rejects)
    )
    stored = in_table + in_rejects
    late = stored - facts.rows_before
    # The normalizer's own sums: a difference here is a decoding or normalization bug.
    normalized = facts.rows_loaded + facts.rows_rejected + facts.duplicates_dropped + facts.events_filtered
    metadata = {
        "events_at_source": facts.events_at_source,
        "duplicates_within_read": facts.duplicates_dropped,
        "events_stored_elsewhere": facts.stored_elsewhere,
        "events_filtered": facts.events_filtered,
        "events_expected": facts.events_read,
        "rows_in_table": in_table,
        "rows_in_rejects_table": in_rejects,
        "rows_normalized": facts.rows_loaded,
        "rows_rejected": facts.rows_rejected,
        "new_rows_since_previous_load": late,
        "counted": "before the load, which then wrote nothing" if unchanged else "after the load",
    }
    failure = None
    if stored != facts.events_read:
        missing = facts.events_read - stored
        what = f"{missing} events read are not" if missing > 0 else f"{-missing} rows more than read are"
        failure = (
            f"{what} in BigQuery: the source yielded {facts.events_at_source} events "
            f"({facts.duplicates_dropped} duplicates, {facts.stored_elsewhere} stored by other loads, "
            f"{facts.events_filtered} filtered), "
            f"the scope holds {in_table} rows and {in_rejects} rejects"
        )
    elif normalized != facts.events_at_source:
        failure = (
            f"normalization accounted for {normalized} of {facts.events_at_source} events read "
            "(rows + rejects + duplicates + filtered)"
        )
    if failure:
        yield dg.AssetCheckResult(
            asset_key=key, check_name=COMPLETENESS, passed=False, metadata=metadata, description=failure
        )
    elif facts.final_sweep and late > 0:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=COMPLETENESS,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=f"{late} events arrived after the previous sweep horizon (now loaded)",
        )
    else:
        yield dg.AssetCheckResult(asset_key=key, check_name=COMPLETENESS, passed=True, metadata=metadata)

    if unchanged:
        # Only a write can add a copy: the load that last wrote these windows checked them.
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=NO_DUPLICATES,
            passed=True,
            metadata={"duplicate_rows_added": 0},
            description="this load wrote no row; the windows are as their last load left and checked them",
        )
    else:
        duplicates = loader.duplicate_ids(tables.events.table, facts.scope.events)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=NO_DUPLICATES,
            passed=duplicates == 0,
            metadata={"duplicate_rows": duplicates},
        )

    rate = facts.rows_rejected / facts.events_read if facts.events_read else 0.0
    threshold = tables.stream.max_reject_rate
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name=REJECT_RATE,
        passed=rate <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "reject_rate": round(rate, 6),
            "threshold": threshold,
            "rows_rejected": facts.rows_rejected,
        },
    )

    # Compatible differences (a column added as NULLABLE but declared REQUIRED, columns no
    # longer declared, another column order) pass with a note. Failing on them would hold the
    # rollups back for good: BigQuery cannot make a column REQUIRED again, and dropping a
    # column would drop its data.
    schema = loader.compare_schema(tables.events)
    differences, notes = schema.differences(), schema.notes()
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA,
        passed=not differences,
        metadata={
            "differences": "; ".join(differences) or "none",
            "compatible_differences": "; ".join(notes) or "none",
            "declared_required_nullable_on_table": ", ".join(c.name for c in schema.relaxed) or "none",
            "undeclared_columns_kept": ", ".join(name for name, _, _ in schema.undeclared) or "none",
        },
        description=(
            "the table does not match the declared schema: " + "; ".join(differences)
            if differences
            else "; ".join(notes) or None
        ),
    )


def build_latest_window_check(tables: StreamTables) -> dg.AssetChecksDefinition:
    """A check, run every 5 minutes, that the newest settled window was loaded after it closed."""
    stream = tables.stream

    @dg.asset_check(
        asset=events_key(tables),
        name=LATEST_WINDOW,
        description=(
            f"The newest window that should be settled (now - {stream.settle_lag}) was loaded "
            "after it closed."
        ),
        automation_condition=dg.AutomationCondition.cron_tick_passed("*/5 * * * *"),
    )
    def latest_window_loaded(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        return latest_window_result(context.instance, tables, now)

    return latest_window_loaded


def latest_window_result(
    instance: dg.DagsterInstance, tables: StreamTables, now: datetime
) -> dg.AssetCheckResult:
    """The ``latest_window_loaded`` verdict at ``now``."""
    stream = tables.stream
    window_end = floor_to_window(now - stream.settle_lag, stream.window)
    window_start = window_end - stream.window
    key = partition_key(window_start)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=events_key(tables), asset_partitions=[key]), limit=1
    ).records
    loaded_at = datetime.fromtimestamp(records[0].timestamp, tz=UTC) if records else None
    passed = loaded_at is not None and loaded_at >= window_end
    return dg.AssetCheckResult(
        asset_key=events_key(tables),
        check_name=LATEST_WINDOW,
        passed=passed,
        metadata={
            "expected_window": key,
            "window_closed_at": window_end.isoformat(),
            "last_loaded_at": loaded_at.isoformat() if loaded_at else "never",
        },
        description=None if passed else f"window {key} has not been loaded since it closed",
    )

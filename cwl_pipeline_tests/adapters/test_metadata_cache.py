"""The loader's process-level metadata cache against the emulator: what it remembers, and
that a Not Found makes it read and create again."""

from __future__ import annotations

import pytest

from cwl_pipeline.adapters.bigquery_loader import BigQueryLoader
from cwl_pipeline.adapters.bigquery_metadata import METADATA
from cwl_pipeline.adapters.bigquery_schema import TableSpec
from cwl_pipeline.adapters.errors import DestinationError
from cwl_pipeline.core.schema import Column

TS = Column("ts", "TIMESTAMP", source="event_timestamp", required=True)
SPEC = TableSpec(table="t", columns=(TS, Column("n", "INT64")), partition_column="ts")


def test_a_table_deleted_behind_the_process_is_created_again_after_not_found(bq_client, unique_name):
    loader = BigQueryLoader(bq_client, f"ds_cache_{unique_name}", location="US")
    loader.ensure_dataset()
    loader.ensure_table(SPEC)
    assert METADATA.table_spec(loader.place(), loader.dataset, "t") == SPEC
    assert METADATA.has_dataset(loader.place(), loader.dataset)

    bq_client.delete_table(loader.table_id("t"))
    loader.ensure_table(SPEC)  # remembered: not read, so not noticed yet
    with pytest.raises(DestinationError, match="not found"):
        loader.schema_differences(SPEC)  # the schema check reads the table: 404
    # The Not Found made the process forget the dataset's tables: the next ensure creates it.
    assert METADATA.table_spec(loader.place(), loader.dataset, "t") is None
    loader.ensure_dataset()
    loader.ensure_table(SPEC)
    assert loader.schema_differences(SPEC) == []


def test_another_spec_of_a_remembered_table_is_reconciled(bq_client, unique_name):
    loader = BigQueryLoader(bq_client, f"ds_cache_{unique_name}", location="US")
    loader.ensure_dataset()
    loader.ensure_table(SPEC)
    wider = TableSpec(table="t", columns=(*SPEC.columns, Column("label", "STRING")), partition_column="ts")
    loader.ensure_table(wider)
    assert [f.name for f in bq_client.get_table(loader.table_id("t")).schema][-1] == "label"
    assert METADATA.table_spec(loader.place(), loader.dataset, "t") == wider

"""Arrow tables from per-column Python lists: how rejects and raw rows are built outside
:func:`~cwl_pipeline.core.normalize.normalize`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa


def table_from_columns(columns: Mapping[str, Sequence[object]], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from one list per field; timestamp fields hold ms since the epoch."""
    arrays = []
    for schema_field in schema:
        values = columns[schema_field.name]
        if pa.types.is_timestamp(schema_field.type):
            arrays.append(pa.array(values, type=pa.int64()).cast(schema_field.type))
        else:
            arrays.append(pa.array(values, type=schema_field.type))
    return pa.Table.from_arrays(arrays, schema=schema)

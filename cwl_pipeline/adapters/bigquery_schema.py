"""What a destination table should look like, and how a live table compares with it.

:class:`TableSpec` declares a table (columns, partitioning, clustering). :func:`compare_schema`
compares a live table's fields with it (:class:`SchemaComparison`); the changes BigQuery allows
without losing a column or its data (columns added as NULLABLE, REQUIRED relaxed to NULLABLE)
are written here as DDL (:func:`schema_change_script`) and as the patched fields
(:func:`evolved_schema`). Nothing here calls BigQuery: :meth:`BigQueryClient.ensure_table
<cwl_pipeline.adapters.bigquery_client.BigQueryClient.ensure_table>` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.cloud import bigquery

from cwl_pipeline.core.schema import COLUMN_TYPES, Column
from cwl_pipeline.core.sql_identifiers import quote_identifier

__all__ = [
    "COERCIBLE_TYPES",
    "LOADED_AT",
    "Retype",
    "SchemaComparison",
    "TableSpec",
    "compare_schema",
    "evolved_schema",
    "retype_message",
    "schema_change_script",
    "table_field",
]

LOADED_AT = Column("loaded_at", "TIMESTAMP", description="When the pipeline loaded the row")


@dataclass(frozen=True)
class TableSpec:
    """A destination table: columns in order, partition column, clustering."""

    table: str
    columns: tuple[Column, ...]
    partition_column: str
    clustering: tuple[str, ...] = ()
    description: str = ""
    partition_expiration: timedelta | None = None  # partitions dropped this long after their day

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Declared columns plus the ``loaded_at`` column the loader fills."""
        return (*self.columns, LOADED_AT)


def table_field(column: Column) -> bigquery.SchemaField:
    """The BigQuery field of a declared column."""
    return bigquery.SchemaField(
        column.name, column.type, mode=column.mode, description=column.description or None
    )


def _canonical_type(field_type: str) -> str:
    # The API reports legacy names; the schema declares GoogleSQL names.
    legacy = {
        "INTEGER": "INT64",
        "FLOAT": "FLOAT64",
        "BOOLEAN": "BOOL",
        "DECIMAL": "NUMERIC",
        "BIGDECIMAL": "BIGNUMERIC",
        "RECORD": "STRUCT",
    }
    return legacy.get(field_type.upper(), field_type.upper())


# In-place type changes BigQuery allows (ALTER COLUMN ... SET DATA TYPE to a less restrictive
# type: the "coerce to" column of GoogleSQL's conversion rules for these types).
COERCIBLE_TYPES: dict[str, tuple[str, ...]] = {
    "INT64": ("NUMERIC", "BIGNUMERIC", "FLOAT64"),
    "NUMERIC": ("BIGNUMERIC", "FLOAT64"),
    "BIGNUMERIC": ("FLOAT64",),
}
_COERCIONS_TEXT = "; ".join(f"{k} to {' or '.join(v)}" for k, v in COERCIBLE_TYPES.items())
_DESCRIPTION_MAX = 1024  # BigQuery's limit for a column description


@dataclass(frozen=True)
class Retype:
    """A declared column whose table column has another type (or is REPEATED)."""

    column: Column
    table_type: str
    repeated: bool = False

    @property
    def table_type_text(self) -> str:
        """The table column's type as GoogleSQL writes it."""
        return f"ARRAY<{self.table_type}>" if self.repeated else self.table_type

    @property
    def coercible(self) -> bool:
        """BigQuery can change the table column to the declared type in place."""
        return not self.repeated and self.column.type in COERCIBLE_TYPES.get(self.table_type, ())


@dataclass(frozen=True)
class SchemaComparison:
    """How a table's columns compare with a :class:`TableSpec` (names match case-insensitively).

    * ``missing``: declared, not on the table. Added as NULLABLE: BigQuery adds only NULLABLE
      columns to an existing table; the pipeline enforces REQUIRED itself when it normalizes.
    * ``retyped``: declared with another type. Refused; never changed by the pipeline.
    * ``relaxed``: declared REQUIRED, NULLABLE on the table (added after the table was made,
      or declared REQUIRED later). Compatible: a NULLABLE column accepts every row a REQUIRED
      one would.
    * ``to_relax``: REQUIRED on the table but declared NULLABLE or no longer declared: an
      INSERT leaving it NULL would fail, so it is relaxed to NULLABLE.
    * ``undeclared``: on the table, no longer declared, ``(name, type, mode)``. Kept with its
      data; new rows hold NULL there (every INSERT of the loader names its columns).
    * ``reordered``: the table's columns are in another order than declared. Harmless.
    """

    missing: tuple[Column, ...] = ()
    retyped: tuple[Retype, ...] = ()
    relaxed: tuple[Column, ...] = ()
    to_relax: tuple[str, ...] = ()
    undeclared: tuple[tuple[str, str, str], ...] = ()
    reordered: bool = False
    declared: frozenset[str] = frozenset()

    @property
    def changes_needed(self) -> bool:
        """The table needs columns added or relaxed before the pipeline can load it."""
        return bool(self.missing or self.to_relax)

    def differences(self) -> list[str]:
        """What would make a load fail or leave the table unlike the declaration."""
        out = [f"missing column {c.name} {c.type} {c.mode}" for c in self.missing]
        out += [
            f"column {r.column.name} is {r.table_type_text} on the table but declared {r.column.type}"
            for r in self.retyped
        ]
        out += [
            f"column {name} is REQUIRED on the table but declared NULLABLE"
            if name.lower() in self.declared
            else f"undeclared column {name} is REQUIRED on the table (the loader leaves it NULL)"
            for name in self.to_relax
        ]
        return out

    def notes(self) -> list[str]:
        """Compatible differences, each with why it is compatible."""
        out = [
            f"{c.name} is declared REQUIRED but NULLABLE on the table (BigQuery adds only NULLABLE "
            "columns to an existing table, and cannot make a column REQUIRED later): the pipeline "
            "still gives every new row a value (its default, or the event is rejected); rows loaded "
            "before it was declared REQUIRED may hold NULL"
            for c in self.relaxed
        ]
        out += [
            f"{name} {type_} {mode} is no longer declared: the table keeps it and its data, "
            "new rows hold NULL there"
            for name, type_, mode in self.undeclared
        ]
        if self.reordered:
            out.append(
                "the table's columns are in another order than declared (added columns come last): "
                "harmless, every INSERT names its columns"
            )
        return out

    def change_notes(self) -> list[str]:
        """What :meth:`BigQueryClient.ensure_table` changes on the table, and why."""
        out = [
            f"added column {c.name} {c.type} as NULLABLE"
            + (
                " although declared REQUIRED: BigQuery adds only NULLABLE columns to an existing "
                "table; the pipeline enforces REQUIRED on every new row, rows loaded before hold NULL"
                if c.required
                else "; rows loaded before hold NULL"
            )
            for c in self.missing
        ]
        out += [
            f"relaxed column {name} from REQUIRED to NULLABLE: "
            + (
                "declared NULLABLE"
                if name.lower() in self.declared
                else "no longer declared, so new rows hold NULL there; the column and its data are kept"
            )
            for name in self.to_relax
        ]
        return out


def compare_schema(fields: Sequence[bigquery.SchemaField], spec: TableSpec) -> SchemaComparison:
    """Compare a table's ``fields`` with ``spec.all_columns``."""
    have = {f.name.lower(): f for f in fields}
    declared = {c.name.lower(): c for c in spec.all_columns}
    missing, retyped, relaxed, to_relax = [], [], [], []
    for key, column in declared.items():
        field_ = have.get(key)
        if field_ is None:
            missing.append(column)
            continue
        table_type, mode = _canonical_type(field_.field_type), field_.mode or "NULLABLE"
        if table_type != column.type or mode == "REPEATED":
            retyped.append(Retype(column, table_type, repeated=mode == "REPEATED"))
        elif mode == "NULLABLE" and column.required:
            relaxed.append(column)
        elif mode == "REQUIRED" and not column.required:
            to_relax.append(field_.name)
    undeclared = [
        (f.name, _canonical_type(f.field_type), f.mode or "NULLABLE")
        for f in fields
        if f.name.lower() not in declared
    ]
    to_relax += [name for name, _, mode in undeclared if mode == "REQUIRED"]
    present = [f.name.lower() for f in fields if f.name.lower() in declared]
    return SchemaComparison(
        missing=tuple(missing),
        retyped=tuple(retyped),
        relaxed=tuple(relaxed),
        to_relax=tuple(to_relax),
        undeclared=tuple(u for u in undeclared if u[2] != "REQUIRED"),
        reordered=present != [k for k in declared if k in have],
        declared=frozenset(declared),
    )


def retype_message(table_id: str, retype: Retype) -> str:
    """Why loads of ``table_id`` are refused for ``retype``, and what to do about it."""
    name, declared, have = retype.column.name, retype.column.type, retype.table_type_text
    head = f"Column {name} is {have} on the table but declared {declared}."
    if retype.coercible:
        return (
            f"{head} BigQuery can widen {have} to {declared} in place: check the queries that read "
            f"the column, run ALTER TABLE `{table_id}` ALTER COLUMN `{name}` SET DATA TYPE {declared}, "
            "then re-run the load (the pipeline never changes a column's type itself). Until then its "
            "loads are refused; nothing was changed."
        )
    return (
        f"{head} BigQuery cannot change {have} to {declared} in place (ALTER COLUMN ... SET DATA "
        f"TYPE only widens {_COERCIONS_TEXT}). Declare the new type under a new column name (the "
        "table keeps the old column, NULL in new rows), or give the stream a new table, or rewrite "
        "this table with a query that CASTs the column. Until then its loads are refused; nothing "
        "was changed."
    )


def _ddl_type(column_type: str) -> str:
    # The type is written into DDL text: only the declared schema types are accepted.
    if column_type not in COLUMN_TYPES:
        raise ValueError(f"{column_type!r} is not one of {COLUMN_TYPES}")
    return column_type


def schema_change_script(target: str, comparison: SchemaComparison) -> str:
    """The DDL that adds ``comparison.missing`` and relaxes ``comparison.to_relax`` on the
    table ``target`` (its id in backticks)."""
    # ADD COLUMN adds a NULLABLE column; DROP NOT NULL is BigQuery's documented REQUIRED ->
    # NULLABLE relaxation; one ALTER per statement, in one script.
    statements = [
        f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS "
        f"{quote_identifier('column', c.name)} {_ddl_type(c.type)};"
        for c in comparison.missing
    ] + [
        f"ALTER TABLE {target} ALTER COLUMN {quote_identifier('column', name)} DROP NOT NULL;"
        for name in comparison.to_relax
    ]
    return "\n".join(statements)


def evolved_schema(
    fields: Sequence[bigquery.SchemaField], comparison: SchemaComparison, now: datetime
) -> list[bigquery.SchemaField]:
    """``fields`` with the added columns (and their descriptions) and relaxed modes applied."""
    added = {c.name.lower(): c for c in comparison.missing}
    relax = {name.lower() for name in comparison.to_relax}
    out = []
    for field_ in fields:
        key = field_.name.lower()
        if key in added:
            out.append(_added_field(added.pop(key), now))
        elif key in relax and field_.mode == "REQUIRED":
            out.append(bigquery.SchemaField.from_api_repr({**field_.to_api_repr(), "mode": "NULLABLE"}))
        else:
            out.append(field_)
    return out + [_added_field(c, now) for c in added.values()]


def _added_field(column: Column, now: datetime) -> bigquery.SchemaField:
    note = f"(Added on {now:%Y-%m-%d} as NULLABLE: rows loaded before hold NULL."
    note += " Declared REQUIRED: the pipeline gives every new row a value.)" if column.required else ")"
    room = _DESCRIPTION_MAX - len(note) - 1
    description = f"{column.description[:room]} {note}" if column.description else note
    return bigquery.SchemaField(column.name, column.type, mode="NULLABLE", description=description)

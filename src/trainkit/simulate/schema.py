"""Declarations of the truth tables: one declaration per table, read by the writer and codebook.

Each simulation module declares the tables it produces with :class:`Table`. The engine casts every
DataFrame a module returns to its declared Arrow schema (so a missing or extra column fails loudly),
and :mod:`trainkit.codebook` renders the same declarations as Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

TYPES = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "string": pa.string(),
}


@dataclass(frozen=True)
class Column:
    """A column: its name, type (a key of ``TYPES``), description, and allowed codes if coded."""

    name: str
    type: str
    description: str
    codes: dict[str, str] | None = None  # code -> meaning
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """A truth table written to ``DIR/truth/{name}.parquet``."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, TYPES[c.type], nullable=c.nullable) for c in self.columns]
        )

"""The dataset modules of the record layer, and how their parts become files.

``MODULES`` lists the dataset modules in the order they run for a shard. Each contributes
``TABLES`` and ``record(ctx)`` (see :mod:`trainkit.datasets.record`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..simulate.schema import Column, Table
from . import cin, hes, identity, npd, ssda903
from .record import RecordContext, partitions
from .schema import OutputTable

MODULES: tuple = (identity, ssda903, cin, npd, hes)

DATASETS = {
    "ssda903": "SSDA903 children looked after return",
    "cin": "Children in need census",
    "npd": "National Pupil Database research extract",
    "hes": "Hospital Episode Statistics admitted patient care research extract",
    "bridging": "ECHILD bridging file (PMR to HES token person ID)",
    "pupils": "DfE pupil identifiers, as held before pseudonymisation",
    "pds": "NHS England demographics (PDS), as held before pseudonymisation",
}


class NullableIntTable(Table):
    """A truth table whose nullable whole-number columns read back as pandas' nullable integer
    dtypes (``Int16``...), not as floats.

    Parquet holds them as integers with nulls either way; pandas turns such a column into
    float64 unless the file's ``pandas`` schema metadata names the nullable dtype, so the schema
    carries that metadata (for those columns only; the rest read as they would without it).
    """

    def arrow_schema(self) -> pa.Schema:
        schema = super().arrow_schema()
        columns = [
            {
                "name": c.name,
                "field_name": c.name,
                "pandas_type": c.type,
                "numpy_type": c.type.capitalize(),  # int16 -> Int16
                "metadata": None,
            }
            for c in self.columns
            if c.nullable and c.type.startswith("int")
        ]
        meta = {"index_columns": [], "column_indexes": [], "columns": columns}
        return schema.with_metadata({b"pandas": json.dumps(meta, sort_keys=True).encode()})


TRUTH_TABLES = (
    NullableIntTable(
        "links",
        "Every recorded identifier value in each dataset, with its true person.",
        (
            Column("dataset", "string", "Dataset the identifier is recorded in.", DATASETS),
            Column("la_code", "int16", "DfE LA number where the identifier is LA-specific."),
            Column("source_id", "string", "The identifier as recorded (CHILD, LAchildID, PMR...)."),
            Column("person_id", "int64", "The true person.", nullable=False),
        ),
    ),
    Table(
        "error_log",
        "Every error injected into the records: where, what kind, value before and after.",
        (
            Column("dataset", "string", "Dataset.", DATASETS),
            Column("file", "string", "File relative to the dataset folder."),
            Column("record_id", "string", "Identifier of the record (e.g. CHILD, LAchildID)."),
            Column("field", "string", "Field changed."),
            Column("error_type", "string", "Kind of error (see docs/messiness.md)."),
            Column("value_before", "string", "True value."),
            Column("value_after", "string", "Value as recorded."),
        ),
    ),
)


def output_tables() -> tuple[OutputTable, ...]:
    """Every output table of every dataset module."""
    return tuple(t for m in MODULES for t in m.TABLES)


def record_shard(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """Run every dataset module on one shard."""
    out: dict[str, pd.DataFrame] = {}
    for module in MODULES:
        out.update(module.record(ctx))
    return out


def write_parts(records: dict[str, pd.DataFrame], parts_dir: Path, shard: int) -> None:
    """Store one shard's record tables as Parquet parts (values as the file will hold them)."""
    for table in output_tables():
        frame = records.get(table.name)
        if frame is None:
            raise RuntimeError(f"dataset module returned no frame for {table.name}")
        expected = table.field_names + [
            c for c in ("_year", "_la") if "{" in table.path and c in frame
        ]
        if list(frame.columns) != expected:
            raise RuntimeError(
                f"{table.name}: columns {list(frame.columns)} differ from the declaration "
                f"{expected}"
            )
        path = parts_dir / table.name / f"part-{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _module_of(table: OutputTable):
    for m in MODULES:
        if table in m.TABLES:
            return m
    raise KeyError(table.name)


def write_csv(table: OutputTable, frame: pd.DataFrame, path: Path) -> int:
    """Write a CSV file as LAs submit them: a header row, then one row per record."""
    buf = io.StringIO()
    frame[table.field_names].to_csv(
        buf, index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return len(frame)


def assemble(parts_dir: Path, root: Path, n_shards: int) -> dict[str, int]:
    """Turn the shards' parts into the dataset files, in a fixed order. Returns records written."""
    counts: dict[str, int] = {}
    for table in output_tables():
        parts = [parts_dir / table.name / f"part-{i:05d}.parquet" for i in range(n_shards)]
        module = _module_of(table)
        if "{" not in table.path:
            target = root / table.path
            target.parent.mkdir(parents=True, exist_ok=True)
            schema = pq.read_schema(parts[0])
            with pq.ParquetWriter(target, schema, compression="zstd") as writer:
                for part in parts:
                    t = pq.read_table(part)
                    if t.num_rows:
                        writer.write_table(t)
            counts[table.name] = sum(pq.read_metadata(p).num_rows for p in parts)
            continue
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        if hasattr(module, "write_partitions"):
            counts[table.name] = module.write_partitions(table, frame, root)
            continue
        total = 0
        fields = frame.drop(columns=["_year", "_la"])
        for year, la, rows in partitions(frame):
            path = root / table.path.format(year=year, la=la)
            group = fields.iloc[rows]
            if hasattr(module, "write_partition"):
                total += module.write_partition(table, group, path)
            elif table.format == "csv":
                total += write_csv(table, group, path)
            else:
                raise RuntimeError(f"{table.name}: no writer for format {table.format}")
        counts[table.name] = total
    return counts

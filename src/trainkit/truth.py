"""Read the truth tables of a generated dataset (``DIR/truth/*.parquet``) into pandas.

Dates come back as ``datetime64`` columns (not Python ``date`` objects), so they compare with
``pandas.Timestamp`` and support ``.dt``. Notebooks use this only to *check* answers.

Example:
    >>> from trainkit import read_truth
    >>> persons = read_truth("synthetic/sample", "persons", columns=["person_id", "date_of_birth"])
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataError


def read_manifest(data_dir: str | Path) -> dict:
    """The dataset's ``manifest.json`` (config, seed, row counts, checksums)."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise DataError(
            f"{path} not found: {data_dir} is not a trainkit dataset; create one with "
            f"`trainkit generate --out {data_dir}`"
        )
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); regenerate the dataset") from None


def read_truth(data_dir: str | Path, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """One truth table as a DataFrame, dates as ``datetime64``.

    Raises:
        DataError: if the table file is missing or unreadable, naming the path and the fix.
    """
    path = Path(data_dir) / "truth" / f"{table}.parquet"
    if not path.is_file():
        raise DataError(
            f"{path} not found; generate a dataset with `trainkit generate --out {data_dir}` "
            "or check DATA_DIR"
        )
    try:
        t = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path} is not a readable Parquet file ({e}); regenerate it") from None
    return t.to_pandas(date_as_object=False)

"""The registry's fast writers give the same files as writing each LA-year on its own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainkit.config import make_config
from trainkit.datasets import cin, registry, ssda903
from trainkit.simulate.engine import plan_shards, record_context


@pytest.fixture(scope="module")
def records():
    cfg = make_config({"children": 6000, "seed": 11, "local_authorities": [886, 202, 330]})
    ctx = record_context(cfg, plan_shards(cfg)[0])
    return {**ssda903.record(ctx), **cin.record(ctx)}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_partitions_cover_every_row_once_in_file_order():
    frame = pd.DataFrame(
        {"_year": [2024, 2023, 2024, 2023, 2024], "_la": [886, 886, 202, 886, 886]}
    )
    got = [(y, la, rows.tolist()) for y, la, rows in registry.partitions(frame)]
    assert got == [(2023, 886, [1, 3]), (2024, 202, [2]), (2024, 886, [0, 4])]
    assert list(registry.partitions(frame.iloc[0:0])) == []


@pytest.mark.parametrize("module", [ssda903, cin], ids=["ssda903", "cin"])
def test_write_partitions_equals_one_file_at_a_time(records, module, tmp_path, monkeypatch):
    monkeypatch.setattr(cin, "WRITE_BATCH_ROWS", 50)  # many batches, files across their edges
    one, fast = tmp_path / "one", tmp_path / "fast"
    for table in module.TABLES:
        frame = records[table.name]
        for (year, la), part in frame.groupby(["_year", "_la"], sort=True):
            path = one / table.path.format(year=year, la=la)
            module.write_partition(table, part.drop(columns=["_year", "_la"]), path)
        module.write_partitions(table, frame, fast)
    files = _files(one)
    assert len(files) > 20
    assert _files(fast) == files

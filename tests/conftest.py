"""Shared fixtures: one small generated dataset per test session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainkit.config import make_config
from trainkit.simulate.engine import generate
from trainkit.truth import read_truth

SMALL = {"children": 6000, "seed": 11, "shard_size": 2000}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A 6,000-person dataset in three shards (generated once per session)."""
    out = tmp_path_factory.mktemp("run") / "data"
    generate(make_config(SMALL), out, workers=1)
    return out


@pytest.fixture(scope="session")
def truth(small_run):
    """Read a truth table of the small run by name (cached)."""
    cache: dict[str, pd.DataFrame] = {}

    def read(name: str) -> pd.DataFrame:
        if name not in cache:
            cache[name] = read_truth(small_run, name)
        return cache[name]

    return read

"""Run the simulation shard by shard and write the truth tables, atomically.

Determinism: the people are split into shards of ``config.shard_size`` (a config value, so the same
config always gives the same shards); shard ``i`` draws from ``SeedSequence(seed).spawn(n)[i]``
whatever process runs it, and shards are merged in order. So ``--workers`` changes the speed, never
the bytes. Memory: a worker holds one shard at a time; the merge streams one part file at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..config import Config
from ..datasets import registry
from ..datasets.record import RecordContext
from ..errors import ConfigError
from ..parameters import load_parameters
from . import care, education, health, population, social_care
from .geography import load_geography
from .schema import Table

SIMULATED_TABLES: tuple[Table, ...] = (
    population.TABLES + social_care.TABLES + care.TABLES + education.TABLES + health.TABLES
)
TRUTH_TABLES: tuple[Table, ...] = SIMULATED_TABLES + registry.TRUTH_TABLES
TABLES_BY_NAME = {t.name: t for t in TRUTH_TABLES}


@dataclass(frozen=True)
class ShardPlan:
    index: int
    first_person_id: int
    n_births: int
    n_arrivals: int


@dataclass
class GenerationResult:
    out_dir: Path
    rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def plan_shards(config: Config) -> list[ShardPlan]:
    """Split the population into shards: sizes, first person ids and UASC arrivals per shard."""
    params = load_parameters(config.parameters)
    geo = load_geography()
    share = population.uasc_share(
        params, np.datetime64(config.birth_start), np.datetime64(config.last_birth), geo
    )
    n = config.children
    n_shards = math.ceil(n / config.shard_size)
    plans, first = [], 1
    for i in range(n_shards):
        size = min(config.shard_size, n - i * config.shard_size)
        lo, hi = i * config.shard_size, i * config.shard_size + size
        arrivals = math.floor(hi * share) - math.floor(lo * share)
        plans.append(ShardPlan(i, first, size - arrivals, arrivals))
        first += size
    return plans


def record_context(config: Config, plan: ShardPlan) -> RecordContext:
    """Simulate one shard's truth and wrap it for the record layer (used by tests too).

    Example:
        >>> from trainkit.config import make_config
        >>> cfg = make_config({"children": 2000, "seed": 1, "messiness": "clean"})
        >>> ctx = record_context(cfg, plan_shards(cfg)[0])
        >>> sorted(ctx.truth)[:3]
        ['absence', 'addresses', 'admissions']
    """
    params = load_parameters(config.parameters)
    geo = load_geography()
    shard_seq = np.random.SeedSequence(config.seed).spawn(plan.index + 1)[plan.index]
    rng_pop, rng_sc, rng_care, rng_edu, rng_health = (
        np.random.default_rng(s) for s in shard_seq.spawn(5)
    )
    las = np.array(config.local_authorities) if config.local_authorities else None
    cohort, tables = population.simulate_population(
        plan.n_births,
        plan.n_arrivals,
        plan.first_person_id,
        np.datetime64(config.birth_start),
        np.datetime64(config.last_birth),
        np.datetime64(config.census_date),
        geo,
        params,
        rng_pop,
        las,
    )
    social = social_care.simulate_social_care(cohort, geo, params, rng_sc)
    tables.update(social)
    tables.update(care.simulate_care(cohort, social, geo, params, rng_care))
    tables.update(education.simulate_education(cohort, social, params, rng_edu))
    tables.update(health.simulate_health(cohort, social, params, rng_health))
    return RecordContext(
        cohort=cohort,
        truth=tables,
        params=params,
        seed=config.seed,
        shard=plan.index,
        messiness=config.messiness,
        years=config.years,
        census_date=np.datetime64(config.census_date),
        population=config.children,
    )


def simulate_shard(
    config: Config, plan: ShardPlan
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """All truth tables and all record tables of one shard (deterministic given config and plan)."""
    ctx = record_context(config, plan)
    records = registry.record_shard(ctx)
    tables = dict(ctx.truth)
    tables["links"] = ctx.links.frame()
    tables["error_log"] = ctx.errors.frame()
    return tables, records


def to_arrow(table: Table, frame: pd.DataFrame) -> pa.Table:
    """Cast a module's DataFrame to its declared schema; a missing or extra column fails."""
    if list(frame.columns) != table.column_names:
        missing = set(table.column_names) - set(frame.columns)
        extra = set(frame.columns) - set(table.column_names)
        raise RuntimeError(
            f"table {table.name}: columns differ from its declaration "
            f"(missing {sorted(missing)}, extra {sorted(extra)}, or out of order)"
        )
    schema = table.arrow_schema()
    arrays = []
    for col, fld in zip(table.columns, schema, strict=True):
        values = frame[col.name]
        if col.type == "date":
            values = pd.to_datetime(values).astype("datetime64[s]")
            arr = pa.array(values, type=pa.timestamp("s"), from_pandas=True).cast(pa.date32())
        else:
            arr = pa.array(values, from_pandas=True)
            if arr.type != fld.type:
                arr = arr.cast(fld.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_shard(args: tuple[Config, ShardPlan, str]) -> dict[str, int]:
    config, plan, parts_dir = args
    frames, records = simulate_shard(config, plan)
    rows = {}
    for table in TRUTH_TABLES:
        arrow = to_arrow(table, frames[table.name])
        path = Path(parts_dir) / table.name / f"part-{plan.index:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow, path, compression="zstd")
        rows[table.name] = arrow.num_rows
    registry.write_parts(records, Path(parts_dir) / "records", plan.index)
    return rows


def _merge(parts_dir: Path, truth_dir: Path, n_shards: int) -> None:
    truth_dir.mkdir(parents=True, exist_ok=True)
    for table in TRUTH_TABLES:
        schema = table.arrow_schema()
        with pq.ParquetWriter(truth_dir / f"{table.name}.parquet", schema, compression="zstd") as w:
            for i in range(n_shards):
                part = parts_dir / table.name / f"part-{i:05d}.parquet"
                t = pq.read_table(part)
                if t.num_rows:
                    w.write_table(t, row_group_size=1_000_000)
        shutil.rmtree(parts_dir / table.name)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare_out_dir(out: Path, force: bool) -> None:
    """Refuse a non-empty output folder unless ``force``; fail before any work is done."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"--out: {out} is not empty; choose an empty folder or add --force to replace it"
        )


def generate(
    config: Config,
    out: str | Path,
    workers: int = 1,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Simulate the population and write ``out/truth/*.parquet`` and ``out/manifest.json``.

    Output is written to a temporary folder beside ``out`` and moved into place at the end, so an
    error or interruption leaves no half-written dataset.

    Example:
        >>> from trainkit.config import make_config
        >>> result = generate(make_config({"children": 2000, "seed": 1}), "/tmp/tk", force=True)
        >>> result.rows["persons"]
        2000
    """
    out = Path(out)
    prepare_out_dir(out, force)
    started = time.perf_counter()
    plans = plan_shards(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        parts = tmp / "parts"
        rows = {t.name: 0 for t in TRUTH_TABLES}
        jobs = [(config, p, str(parts)) for p in plans]
        if workers > 1 and len(plans) > 1:
            ctx = get_context("fork" if os.name == "posix" else "spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                results = pool.map(_write_shard, jobs)
                for done, r in enumerate(results, 1):
                    _add(rows, r)
                    if progress:
                        progress(done, len(plans))
        else:
            for done, job in enumerate(jobs, 1):
                _add(rows, _write_shard(job))
                if progress:
                    progress(done, len(plans))
        _merge(parts, tmp / "truth", len(plans))
        rows.update(registry.assemble(parts / "records", tmp, len(plans)))
        shutil.rmtree(parts)
        _write_manifest(tmp, config, rows)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(trash / "old")
            tmp.rename(out)
            shutil.rmtree(trash)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GenerationResult(out, rows, time.perf_counter() - started)


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for k, v in part.items():
        total[k] += v


def _write_manifest(root: Path, config: Config, rows: dict[str, int]) -> None:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    manifest = {
        "generator": "trainkit",
        "version": __version__,
        "seed": config.seed,
        "config": config.to_dict(),
        "rows": rows,
        "files": {p.relative_to(root).as_posix(): sha256(p) for p in files},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

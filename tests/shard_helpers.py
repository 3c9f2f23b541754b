"""Helpers shared by test modules (not a test module itself)."""

from __future__ import annotations

import numpy as np

from trainkit.config import make_config
from trainkit.parameters import Parameters, load_parameters
from trainkit.simulate.context import Cohort
from trainkit.simulate.engine import plan_shards
from trainkit.simulate.geography import load_geography
from trainkit.simulate.population import simulate_population
from trainkit.simulate.social_care import simulate_social_care


def population_and_social_care(
    children: int, seed: int, overrides: dict | None = None
) -> tuple[Cohort, dict, Parameters]:
    """One shard of ``children`` people simulated up to social care only (the streams the engine
    gives its first shard), for tests that need many people but not schooling or health.

    Returns:
        The cohort, the social-care truth tables and the parameters used.
    """
    cfg = make_config({"children": children, "seed": seed, "shard_size": children})
    plan = plan_shards(cfg)[0]
    params, geo = load_parameters(overrides), load_geography()
    seq = np.random.SeedSequence(cfg.seed).spawn(1)[0]
    rng_pop, rng_sc, *_ = (np.random.default_rng(s) for s in seq.spawn(5))
    cohort, _ = simulate_population(
        plan.n_births, plan.n_arrivals, plan.first_person_id, np.datetime64(cfg.birth_start),
        np.datetime64(cfg.last_birth), np.datetime64(cfg.census_date), geo, params, rng_pop,
    )  # fmt: skip
    return cohort, simulate_social_care(cohort, geo, params, rng_sc), params

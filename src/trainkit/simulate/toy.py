"""A small, crude cohort and social-care history for unit tests of the downstream modules.

Not a model: only shaped like the real thing so that education and health modules can be tested in
isolation from the population and social-care modules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .context import NAT, Cohort, uniform_dates


def toy_cohort(n: int = 2000, seed: int = 1, census_date: str = "2024-03-31") -> Cohort:
    rng = np.random.default_rng(seed)
    census = np.datetime64(census_date, "D")
    dob = uniform_dates(rng, np.full(n, np.datetime64("1998-04-01")), np.full(n, census))
    fam = np.arange(n) // 2
    adversity = rng.standard_normal(n // 2 + 1)[fam]
    dep = np.clip(np.round(5.5 - 2.0 * adversity + rng.normal(0, 1.5, n)), 1, 10).astype(np.int8)
    k = 2
    move = np.full((n, k), NAT)
    has_move = rng.random(n) < 0.3
    move[has_move, 0] = uniform_dates(rng, dob[has_move], np.full(has_move.sum(), census))
    las = np.array([202, 330, 886, 940], dtype=np.int16)
    la_codes = las[rng.integers(0, len(las), (n, k + 1))]
    postcodes = np.array(["SW1A 1AA"] * 3 * n, dtype="<U8").reshape(n, k + 1)
    areas = np.array(["TKA000001"] * 3 * n, dtype="<U9").reshape(n, k + 1)
    deps = np.repeat(dep[:, None], k + 1, axis=1)
    death = np.full(n, NAT)
    dies = rng.random(n) < 0.004
    death[dies] = dob[dies] + 30
    return Cohort(
        person_id=np.arange(1, n + 1, dtype=np.int64),
        family_id=fam.astype(np.int64),
        mother_id=(fam + 10_000_000).astype(np.int64),
        sex=np.where(rng.random(n) < 0.512, "M", "F"),
        date_of_birth=dob,
        ethnicity=rng.choice(np.array(["WBRI", "APKN", "BAFR", "MWBC"]), n, p=[0.7, 0.1, 0.1, 0.1]),
        uasc=np.zeros(n, bool),
        date_arrived=np.full(n, NAT),
        date_of_death=death,
        date_emigrated=np.full(n, NAT),
        follow_up_end=np.where(dies, death, census),
        deprivation=dep,
        adversity=adversity,
        child_risk=rng.standard_normal(n),
        move_dates=move,
        la_codes=la_codes,
        postcodes=postcodes,
        area_codes=areas,
        deprivations=deps,
        census_date=census,
    )


def toy_social_care(cohort: Cohort, seed: int = 2) -> dict[str, pd.DataFrame]:
    """Referrals, CP plans and periods of care for a toy cohort, riskier children more often."""
    rng = np.random.default_rng(seed)
    n = len(cohort)
    risk = 1 / (1 + np.exp(-(cohort.adversity * 1.2 - 2.0)))
    referred = np.flatnonzero(rng.random(n) < risk)
    ref_date = uniform_dates(rng, cohort.start[referred], cohort.follow_up_end[referred])
    in_need = rng.random(len(referred)) < 0.65
    close = ref_date + rng.integers(30, 900, len(referred))
    close = np.where(close > cohort.census_date, NAT, close)
    referrals = pd.DataFrame(
        {
            "referral_id": np.arange(len(referred), dtype=np.int64),
            "person_id": cohort.person_id[referred],
            "la_code": cohort.la_at(referred, ref_date),
            "referral_date": ref_date,
            "assessed": True,
            "in_need": in_need,
            "closure_date": close,
        }
    )
    cp = referrals[referrals.in_need & (rng.random(len(referrals)) < 0.2)]
    cp_plans = pd.DataFrame(
        {
            "person_id": cp.person_id.to_numpy(),
            "referral_id": cp.referral_id.to_numpy(),
            "la_code": cp.la_code.to_numpy(),
            "start_date": cp.referral_date.to_numpy("datetime64[D]") + 40,
            "end_date": cp.referral_date.to_numpy("datetime64[D]") + 300,
            "category": rng.choice(["NEG", "EMO", "PHY", "SAB", "MUL"], len(cp)),
        }
    )
    cla = referrals[referrals.in_need & (rng.random(len(referrals)) < 0.12)]
    care_periods = pd.DataFrame(
        {
            "period_id": np.arange(len(cla), dtype=np.int64),
            "person_id": cla.person_id.to_numpy(),
            "la_code": cla.la_code.to_numpy(),
            "start_date": cla.referral_date.to_numpy("datetime64[D]") + 60,
            "end_date": cla.referral_date.to_numpy("datetime64[D]")
            + rng.integers(100, 2500, len(cla)),
            "reason_ended": "E4A",
            "uasc": False,
        }
    )
    return {"referrals": referrals, "cp_plans": cp_plans, "care_periods": care_periods}

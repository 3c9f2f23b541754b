"""Who the children are and where they live: births, families, arrivals, moves, deaths.

One call builds the :class:`~trainkit.simulate.context.Cohort` of a shard plus the ``persons`` and
``addresses`` truth tables. Families are the unit of shared circumstance: siblings share a mother,
an ethnicity, a household (so its moves and area deprivation) and the family's adversity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parameters import Parameters
from .context import (
    DECILE_MEAN,
    DECILE_SD,
    DECILE_SPAN,
    NAT,
    Cohort,
    add_years,
    earliest,
    uniform_dates,
)
from .geography import ETHNICITY_CODES, Geography
from .names import draw_forenames, draw_surnames
from .schema import Column, Table

DAYS_PER_YEAR = 365.25
MOTHER_ID_OFFSET = 1_000_000_000  # mothers' ids: 1e9 + family id, never a person id
SEX_CODES = {"M": "male", "F": "female"}
CHILDHOOD_YEARS = 18.0
"""Years of childhood (0 to 17): a year's births are about the child population / 18."""
FAMILY_BATCH_MIN = 64
CHILDREN_PER_FAMILY_GUESS = 1.2
"""Families are drawn in batches until the span holds enough births: each batch has
(births still wanted) / CHILDREN_PER_FAMILY_GUESS families, at least FAMILY_BATCH_MIN. Sizing only:
the families kept do not depend on it beyond which random draws they take."""
NEONATAL_DAYS = 28
INFANT_DAYS = 365
"""A neonatal death is in the first 28 days of life, an infant death in the first year (ONS,
Child and infant mortality in England and Wales: definitions)."""
DEATH_DAY_CAP = 40 * 365
"""Death draws are capped at 40 years after birth, to keep dates in range."""
DEATH_HORIZON_YEARS = 21
"""Deaths later than this many years after birth are not kept (care leavers are followed to 21)."""

TABLES = (
    Table(
        "persons",
        "Every simulated person: children born in England in the covered cohorts, and children "
        "who arrived later (unaccompanied asylum-seeking children). One row per person.",
        (
            Column("person_id", "int64", "Unique person identifier (truth only).", nullable=False),
            Column("forename", "string", "True first name."),
            Column("middle_names", "string", "True middle name(s), empty if none."),
            Column("surname", "string", "True surname."),
            Column("sex", "string", "Sex.", SEX_CODES),
            Column("date_of_birth", "date", "True date of birth."),
            Column("ethnicity", "string", "Ethnicity, DfE code.", {c: c for c in ETHNICITY_CODES}),
            Column(
                "birth_la_code", "int16", "DfE LA number of residence at birth; empty for arrivals."
            ),
            Column("date_arrived", "date", "Date of arrival in England; empty for births."),
            Column("uasc", "bool", "Unaccompanied asylum-seeking child."),
            Column(
                "mother_id", "int64", "Mother's identifier (siblings share it); empty for UASC."
            ),
            Column("family_id", "int64", "Household identifier shared by siblings."),
            Column(
                "date_of_death", "date", "Date of death, if the child died before follow-up ended."
            ),
            Column("date_emigrated", "date", "Date the child left England, if they did."),
            Column("follow_up_end", "date", "Last day observed: death, emigration or census date."),
            Column(
                "deprivation_decile",
                "int8",
                "Deprivation decile of the first address (1 = most deprived).",
            ),
            Column(
                "family_adversity",
                "float32",
                "Latent family adversity (standard normal, higher = worse).",
            ),
            Column("child_risk", "float32", "Latent individual risk (standard normal)."),
        ),
        key=("person_id",),
    ),
    Table(
        "addresses",
        "Address history: one row per person per address spell, from birth or arrival.",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("spell", "int8", "0 for the first address, then 1, 2, ..."),
            Column("start_date", "date", "First day at this address."),
            Column("end_date", "date", "Last day at this address; empty if current at the end."),
            Column("postcode", "string", "Real postcode (never tied to a real person's record)."),
            Column("area_code", "string", "Synthetic small area (TKA...), not a real LSOA."),
            Column("la_code", "int16", "DfE LA number."),
            Column(
                "deprivation_decile",
                "int8",
                "Synthetic area deprivation decile (1 = most deprived).",
            ),
        ),
        key=("person_id", "spell"),
    ),
)


def uasc_share(params: Parameters, birth_start, birth_end, geo: Geography) -> float:
    """Share of the simulated people who are UASC arrivals rather than births in the span."""
    rates = params["population.uasc_arrivals_per_10k"]
    start_year = int(str(birth_start)[:4]) + 1
    end_year = int(str(birth_end)[:4]) + (1 if str(birth_end)[5:] > "03-31" else 0)
    arrivals_per_child = sum(
        float(r) / 10_000 for y, r in rates.items() if start_year <= int(y) <= end_year
    )
    span_years = (np.datetime64(birth_end) - np.datetime64(birth_start)).astype(int) / DAYS_PER_YEAR
    births_per_child = span_years / CHILDHOOD_YEARS
    return arrivals_per_child / (arrivals_per_child + births_per_child)


def simulate_population(
    n_births: int,
    n_arrivals: int,
    first_person_id: int,
    birth_start: np.datetime64,
    birth_end: np.datetime64,
    census_date: np.datetime64,
    geo: Geography,
    params: Parameters,
    rng: np.random.Generator,
    la_subset: np.ndarray | None = None,
) -> tuple[Cohort, dict[str, pd.DataFrame]]:
    """Simulate one shard's people: ``n_births`` births then ``n_arrivals`` UASC arrivals."""
    births = _births(n_births, birth_start, birth_end, census_date, geo, params, rng, la_subset)
    arrivals = _arrivals(n_arrivals, birth_start, census_date, geo, params, rng, la_subset)
    k = int(params["population.max_moves"])
    parts = [births, arrivals]
    names = [
        np.concatenate([b, a])
        for b, a in zip(births.pop("names"), arrivals.pop("names"), strict=True)
    ]
    cols = {key: np.concatenate([p[key] for p in parts]) for key in births}
    cols["names"] = names
    # a death abroad after emigrating, or after the census date, is not observed
    emigrated_first = cols["date_emigrated"] < cols["date_of_death"]
    death_seen = (cols["date_of_death"] <= census_date) & ~emigrated_first
    cols["date_of_death"] = np.where(death_seen, cols["date_of_death"], NAT)
    n = n_births + n_arrivals
    person_id = np.arange(first_person_id, first_person_id + n, dtype=np.int64)
    # family ids share the person-id range of the shard (a shard has fewer families than people);
    # each UASC is a household of one. Mothers have ids of their own, in a separate range.
    fam = cols["family_id"]
    n_fam = int(fam.max()) + 1 if n_births else 0
    fam = np.where(cols["uasc"], n_fam + np.cumsum(cols["uasc"]) - 1, fam)
    cols["family_id"] = first_person_id + fam
    mother_id = np.where(cols["uasc"], -1, MOTHER_ID_OFFSET + cols["family_id"])

    follow = earliest(cols["date_of_death"], cols["date_emigrated"], np.full(n, census_date))

    cohort = Cohort(
        person_id=person_id,
        family_id=cols["family_id"],
        mother_id=mother_id,
        sex=cols["sex"],
        date_of_birth=cols["dob"],
        ethnicity=cols["ethnicity"],
        uasc=cols["uasc"],
        date_arrived=cols["date_arrived"],
        date_of_death=cols["date_of_death"],
        date_emigrated=cols["date_emigrated"],
        follow_up_end=follow,
        deprivation=cols["deprivations"][:, 0],
        adversity=cols["adversity"],
        child_risk=rng.standard_normal(n),
        move_dates=cols["move_dates"][:, :k],
        la_codes=cols["la_codes"],
        postcodes=cols["postcodes"],
        area_codes=cols["area_codes"],
        deprivations=cols["deprivations"],
        census_date=census_date,
    )
    return cohort, {"persons": _persons_table(cohort, cols), "addresses": _addresses_table(cohort)}


def _family_sizes(rng, n_fam, shares):
    shares = np.asarray(shares, float)
    return rng.choice(np.arange(1, len(shares) + 1), size=n_fam, p=shares / shares.sum())


def _births(n, birth_start, birth_end, census_date, geo, params, rng, la_subset):
    """Families and their children born in [birth_start, birth_end]."""
    interval = params["population.sibling_interval_years"]
    shares = params["population.family_size_shares"]
    lookback = int(params["population.first_birth_lookback_years"])
    kept_fam, kept_dob = [], []
    total, fam_offset = 0, 0
    while total < n:
        n_fam = max(FAMILY_BATCH_MIN, int((n - total) / CHILDREN_PER_FAMILY_GUESS))
        size = _family_sizes(rng, n_fam, shares)
        first = uniform_dates(
            rng,
            np.full(n_fam, add_years(np.array([birth_start]), -lookback)[0]),
            np.full(n_fam, birth_end),
        )
        fam = np.repeat(np.arange(n_fam), size)
        order = np.concatenate([np.arange(s) for s in size]) if n_fam else np.array([], int)
        shape = interval["shape"]
        gaps = interval["min"] + rng.gamma(
            shape, (interval["mean"] - interval["min"]) / shape, len(fam)
        )
        gaps[order == 0] = 0.0
        # years since the family's first birth: cumulative gaps within the family
        csum = np.cumsum(gaps)
        offs = csum - csum[np.repeat(np.cumsum(size) - size, size)]
        dob = first[fam] + np.round(offs * DAYS_PER_YEAR).astype(np.int64)
        inside = (dob >= birth_start) & (dob <= birth_end)
        kept_fam.append(fam[inside] + fam_offset)
        kept_dob.append(dob[inside])
        total += int(inside.sum())
        fam_offset += n_fam
    fam = np.concatenate(kept_fam)[:n]
    dob = np.concatenate(kept_dob)[:n]
    # renumber families densely in order of appearance
    uniq, fam = np.unique(fam, return_inverse=True)
    n_fam = len(uniq)

    # family attributes
    las = _choose_las(rng, n_fam, geo, geo.population, la_subset)
    eth_u = rng.random(n_fam)
    ethnicity_idx = (eth_u[:, None] > geo.ethnicity_cdf[las]).sum(axis=1)
    fam_eth = np.array(ETHNICITY_CODES)[np.minimum(ethnicity_idx, len(ETHNICITY_CODES) - 1)]
    pc_row = geo.sample_postcodes(rng, las)
    fam_dec = geo.decile[pc_row]
    rho = params["population.deprivation_adversity_correlation"]
    z_dep = (DECILE_MEAN - fam_dec) / DECILE_SD
    adversity = rho * z_dep + np.sqrt(1 - rho**2) * rng.standard_normal(n_fam)

    # family address history: moves from the first child's birth to the census date
    fam_start = np.full(n_fam, np.datetime64("2262-01-01", "D"))
    np.minimum.at(fam_start, fam, dob)
    fam_last_birth = np.full(n_fam, np.datetime64("1677-01-01", "D"))
    np.maximum.at(fam_last_birth, fam, dob)
    k = int(params["population.max_moves"])
    move_dates, las_s, pcs_s = _moves(
        rng, fam_start, census_date, las, pc_row, fam_dec, geo, params, k
    )

    # emigration (whole family, after the last birth) and each child's death
    emig_gap = rng.exponential(1 / params["population.emigration_rate"], n_fam)
    fam_emig = fam_last_birth + np.round(emig_gap * DAYS_PER_YEAR).astype(np.int64)
    fam_emig = np.where(fam_emig <= census_date, fam_emig, NAT)

    sex = np.where(rng.random(n) < params["population.sex_ratio_male"], "M", "F")
    death = _deaths(rng, dob, fam_dec[fam], params)

    # each child's address spells start at the family spell current at birth
    with np.errstate(invalid="ignore"):
        s0 = (move_dates[fam] <= dob[:, None]).sum(axis=1)
    idx = np.minimum(s0[:, None] + np.arange(k + 1), k)
    valid_spell = (s0[:, None] + np.arange(k + 1)) <= k
    child_moves = np.full((n, k + 1), NAT)
    mi = s0[:, None] + np.arange(k)
    ok = mi < k
    child_moves[:, :k][ok] = move_dates[fam[:, None].repeat(k, 1)[ok], mi[ok]]
    la_codes = np.where(valid_spell, geo.la_code[las_s[fam[:, None], idx]], -1).astype(np.int16)
    rows = pcs_s[fam[:, None], idx]
    postcodes = np.where(valid_spell, geo.postcode[rows], "")
    areas = np.where(valid_spell, geo.area_code[rows], "")
    deciles = np.where(valid_spell, geo.decile[rows], 0).astype(np.int8)
    # fill invalid trailing spells with the last valid one (never reached: their move is NaT)
    last = np.minimum(k - s0, k)
    for arr in (la_codes, postcodes, areas, deciles):
        fill = arr[np.arange(n), last]
        arr[~valid_spell] = np.repeat(fill, (~valid_spell).sum(axis=1))

    return {
        "family_id": fam.astype(np.int64),
        "sex": sex,
        "dob": dob,
        "ethnicity": fam_eth[fam],
        "uasc": np.zeros(n, bool),
        "date_arrived": np.full(n, NAT),
        "date_of_death": death,
        "date_emigrated": np.where(fam_emig[fam] > dob, fam_emig[fam], NAT),
        "adversity": adversity[fam],
        "move_dates": child_moves,
        "la_codes": la_codes,
        "postcodes": postcodes.astype("<U8"),
        "area_codes": areas.astype("<U9"),
        "deprivations": deciles,
        "names": _names(rng, sex, fam_eth[fam], fam, params),
    }


def _choose_las(rng, n, geo, weights, la_subset):
    w = np.asarray(weights, float).copy()
    if la_subset is not None:
        w[~np.isin(geo.la_code, la_subset)] = 0.0
    cdf = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(w) - 1)


def _moves(rng, fam_start, census_date, las, pc_row, dec, geo, params, k):
    """Up to ``k`` moves per family: dates, and the LA index and postcode row of each spell."""
    n_fam = len(fam_start)
    rate = params["population.household_move_rate"]
    ratio = params["population.household_move_deprivation_ratio"]
    fam_rate = rate * ratio ** ((DECILE_MEAN - dec) / DECILE_SPAN)
    gaps = rng.exponential(1.0, (n_fam, k)) / fam_rate[:, None]
    when = fam_start[:, None] + np.round(np.cumsum(gaps, axis=1) * DAYS_PER_YEAR).astype(np.int64)
    when = np.where(when <= census_date, when, NAT)
    las_s = np.empty((n_fam, k + 1), np.int64)
    pcs_s = np.empty((n_fam, k + 1), np.int64)
    las_s[:, 0], pcs_s[:, 0] = las, pc_row
    within_la = params["population.move_within_la_share"]
    within_region = params["population.move_within_region_share"]
    decile_sd = params["population.move_decile_change_sd"]
    region_codes, region_idx = np.unique(geo.region, return_inverse=True)
    for j in range(k):
        cur_la = las_s[:, j]
        cur_dec = geo.decile[pcs_s[:, j]].astype(np.int64)
        u = rng.random(n_fam)
        stay = u < within_la
        same_region = (~stay) & (rng.random(n_fam) < within_region)
        new_la = cur_la.copy()
        # anywhere in England, by child population
        anywhere = np.flatnonzero(~stay & ~same_region)
        new_la[anywhere] = _choose_las(rng, len(anywhere), geo, geo.population, None)
        # another LA in the same region, by child population
        for r in range(len(region_codes)):
            movers = np.flatnonzero(same_region & (region_idx[cur_la] == r))
            if len(movers):
                w = np.where(region_idx == r, geo.population, 0.0)
                new_la[movers] = _choose_las(rng, len(movers), geo, w, None)
        target = np.clip(
            cur_dec + np.round(rng.normal(0, decile_sd, n_fam)).astype(np.int64), 1, 10
        )
        rows = geo.sample_postcodes(rng, new_la, target)
        moved = ~np.isnat(when[:, j])
        las_s[:, j + 1] = np.where(moved, new_la, cur_la)
        pcs_s[:, j + 1] = np.where(moved, rows, pcs_s[:, j])
    return when, las_s, pcs_s


def _deaths(rng, dob, dec, params):
    n = len(dob)
    dep = params["population.mortality_deprivation_ratio"] ** ((DECILE_MEAN - dec) / DECILE_SPAN)
    infant = rng.random(n) < params["population.infant_mortality_rate"] * dep
    neonatal = rng.random(n) < params["population.infant_deaths_neonatal_share"]
    age_days = np.where(
        neonatal, rng.integers(0, NEONATAL_DAYS, n), rng.integers(NEONATAL_DAYS, INFANT_DAYS, n)
    )
    later = rng.exponential(1.0, n) / (params["population.child_mortality_rate"] * dep)
    later_days = INFANT_DAYS + np.round(later * DAYS_PER_YEAR).astype(np.int64)
    days = np.where(infant, age_days, later_days)
    death = dob + np.minimum(days, DEATH_DAY_CAP)
    return np.where(days < DEATH_HORIZON_YEARS * DAYS_PER_YEAR, death, NAT)


def _names(rng, sex, ethnicity, fam, params):
    n = len(sex)
    fam_surname = draw_surnames(rng, ethnicity)  # one draw per child; siblings take the family's
    first_of_fam = np.r_[0, np.flatnonzero(fam[1:] != fam[:-1]) + 1]
    fam_first_row = np.repeat(first_of_fam, np.diff(np.r_[first_of_fam, n]))
    other_father = rng.random(n) < params["population.sibling_other_father_share"]
    other_father[first_of_fam] = False
    surname = np.where(other_father, fam_surname, fam_surname[fam_first_row])
    forename = draw_forenames(rng, sex, ethnicity)
    has_middle = rng.random(n) < params["population.middle_name_share"]
    middle = np.where(has_middle, draw_forenames(rng, sex, ethnicity), "")
    return forename, middle, surname


def _arrivals(n, span_start, census_date, geo, params, rng, la_subset):
    """UASC arriving in the span: age, sex, ethnicity, LA, arrival date."""
    k = int(params["population.max_moves"])
    rates = params["population.uasc_arrivals_per_10k"]
    first_year = int(str(span_start)[:4]) + 1
    years = np.array([int(y) for y in rates if int(y) >= first_year], dtype=np.int64)
    w = np.array([float(rates[y]) for y in rates if int(y) >= first_year])
    year = rng.choice(years, size=n, p=w / w.sum()) if n else np.array([], np.int64)
    year_start = np.array([np.datetime64(f"{y - 1}-04-01") for y in year], dtype="datetime64[D]")
    year_end = np.minimum(
        np.array([np.datetime64(f"{y}-03-31") for y in year], dtype="datetime64[D]"), census_date
    )
    arrived = uniform_dates(rng, year_start, year_end) if n else np.array([], "datetime64[D]")
    ages = params["population.uasc_age_on_arrival_shares"]
    age_vals = np.array([int(a) for a in ages])
    age_p = np.array([float(ages[a]) for a in ages])
    age = rng.choice(age_vals, size=n, p=age_p / age_p.sum())
    dob = add_years(arrived, -age) - rng.integers(0, INFANT_DAYS, n)  # any day of the year of age
    sex = np.where(rng.random(n) < params["population.uasc_male_share"], "M", "F")
    eth_shares = params["population.uasc_ethnicity_shares"]
    codes = np.array(list(eth_shares))
    p = np.array([float(v) for v in eth_shares.values()])
    ethnicity = rng.choice(codes, size=n, p=p / p.sum()).astype("<U4")
    weights = geo.population.copy()
    for code, factor in params["population.uasc_port_las"].items():
        weights[geo.la_code == int(code)] *= float(factor)
    las = _choose_las(rng, n, geo, weights, la_subset)
    pc = geo.sample_postcodes(rng, las)
    uasc_adv = params["population.uasc_adversity"]
    spells = lambda a: np.repeat(a[:, None], k + 1, axis=1)  # noqa: E731
    death = np.full(n, NAT)
    return {
        "family_id": np.full(n, -1, np.int64),
        "sex": sex,
        "dob": dob,
        "ethnicity": ethnicity,
        "uasc": np.ones(n, bool),
        "date_arrived": arrived,
        "date_of_death": death,
        "date_emigrated": np.full(n, NAT),
        "adversity": uasc_adv["mean"] + rng.standard_normal(n) * uasc_adv["sd"],
        "move_dates": np.full((n, k + 1), NAT),
        "la_codes": spells(geo.la_code[las]).astype(np.int16),
        "postcodes": spells(geo.postcode[pc]).astype("<U8"),
        "area_codes": spells(geo.area_code[pc]).astype("<U9"),
        "deprivations": spells(geo.decile[pc]).astype(np.int8),
        "names": (
            draw_forenames(rng, sex, ethnicity),
            np.full(n, "", dtype=object),
            draw_surnames(rng, ethnicity),
        ),
    }


def _persons_table(c: Cohort, cols: dict) -> pd.DataFrame:
    forename, middle, surname = cols["names"]
    return pd.DataFrame(
        {
            "person_id": c.person_id,
            "forename": forename,
            "middle_names": middle,
            "surname": surname,
            "sex": c.sex,
            "date_of_birth": c.date_of_birth,
            "ethnicity": c.ethnicity,
            "birth_la_code": pd.array(np.where(c.uasc, -1, c.la_codes[:, 0]), dtype="Int16"),
            "date_arrived": c.date_arrived,
            "uasc": c.uasc,
            "mother_id": pd.array(c.mother_id, dtype="Int64"),
            "family_id": c.family_id,
            "date_of_death": c.date_of_death,
            "date_emigrated": c.date_emigrated,
            "follow_up_end": c.follow_up_end,
            "deprivation_decile": c.deprivation,
            "family_adversity": c.adversity.astype(np.float32),
            "child_risk": c.child_risk.astype(np.float32),
        }
    ).assign(
        birth_la_code=lambda d: d.birth_la_code.mask(d.uasc),
        mother_id=lambda d: d.mother_id.mask(d.uasc),
    )


def _addresses_table(c: Cohort) -> pd.DataFrame:
    n, k1 = c.la_codes.shape
    start = np.concatenate([c.start[:, None], c.move_dates], axis=1)[:, :k1]
    end = np.concatenate([c.move_dates - 1, np.full((n, 1), NAT)], axis=1)[:, :k1]
    exists = np.ones((n, k1), bool)
    exists[:, 1:] = ~np.isnat(c.move_dates[:, : k1 - 1])
    exists &= ~(start > c.follow_up_end[:, None])
    spell = np.broadcast_to(np.arange(k1, dtype=np.int8), (n, k1))
    pid = np.broadcast_to(c.person_id[:, None], (n, k1))
    m = exists.ravel()
    return pd.DataFrame(
        {
            "person_id": pid.ravel()[m],
            "spell": spell.ravel()[m],
            "start_date": start.ravel()[m],
            "end_date": end.ravel()[m],
            "postcode": c.postcodes.ravel()[m],
            "area_code": c.area_codes.ravel()[m],
            "la_code": c.la_codes.ravel()[m],
            "deprivation_decile": c.deprivations.ravel()[m],
        }
    )

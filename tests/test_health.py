"""Tests of the health module: tables, codes, follow-up, calibration and the planted effects.

The planted effects are checked with Poisson regressions on the truth (statsmodels GLM with the
person-time as offset) and must be recovered within three standard errors. The cohort is the toy
one from :mod:`trainkit.simulate.toy`, with some arrivals added, extra periods of care in
adolescence and extra child protection plans in early childhood, so that the windows in which the
planted effects act hold enough person-time to test them.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.api as sm

from trainkit.parameters import load_parameters
from trainkit.simulate.context import NAT, add_years, uniform_dates
from trainkit.simulate.health import (
    ADMISSION_METHODS,
    CAUSE_GROUPS,
    LOW_BIRTH_WEIGHT_G,
    MVR_CAUSE_GROUPS,
    PRETERM_WEEKS,
    RATE_GROUPS,
    TABLES,
    HealthModel,
    is_injury_indicator,
    simulate_health,
)
from trainkit.simulate.toy import toy_cohort, toy_social_care

N_CHILDREN = 150_000
MAX_AGE = 18
DAYS_PER_YEAR = 365.25
ICD10 = re.compile(r"^[A-Z][0-9]{2}[0-9X]$")
TOLERANCE_SE = 3.0


# ---------------------------------------------------------------------------------------------
# Fixtures: one toy shard with arrivals and extra adolescent care, simulated once
# ---------------------------------------------------------------------------------------------


def _with_arrivals(cohort, share: float, seed: int):
    """Turn a share of older children into arrivals (UASC) who came after their 10th birthday."""
    rng = np.random.default_rng(seed)
    n = len(cohort)
    tenth = add_years(cohort.date_of_birth, 10)
    eligible = (tenth < cohort.census_date) & np.isnat(cohort.date_of_death)
    chosen = np.flatnonzero(eligible & (rng.random(n) < share))
    arrived = cohort.date_arrived.copy()
    arrived[chosen] = uniform_dates(rng, tenth[chosen], np.full(len(chosen), cohort.census_date))
    uasc = cohort.uasc.copy()
    uasc[chosen] = True
    return dataclasses.replace(cohort, date_arrived=arrived, uasc=uasc)


def _early_protection(cohort, share: float, seed: int) -> pd.DataFrame:
    """Extra child protection plans starting before the age of 3 (high adversity more often)."""
    rng = np.random.default_rng(seed)
    n = len(cohort)
    p = share * 2 / (1 + np.exp(-(cohort.adversity - cohort.adversity.mean())))
    rows = np.flatnonzero(rng.random(n) < p)
    start = cohort.date_of_birth[rows] + rng.integers(30, 3 * 365, len(rows))
    ok = start < cohort.follow_up_end[rows]
    rows, start = rows[ok], start[ok]
    return pd.DataFrame(
        {
            "person_id": cohort.person_id[rows],
            "referral_id": np.arange(len(rows), dtype=np.int64) + 1_000_000,
            "la_code": cohort.la_codes[rows, 0],
            "start_date": start,
            "end_date": start + 300,
            "category": rng.choice(["NEG", "PHY", "EMO", "MUL"], len(rows)),
        }
    )


def _adolescent_care(cohort, share: float, seed: int) -> pd.DataFrame:
    """Extra periods of care starting at 12-15 (children with high adversity more often)."""
    rng = np.random.default_rng(seed)
    n = len(cohort)
    p = share * 2 / (1 + np.exp(-(cohort.adversity - cohort.adversity.mean())))
    rows = np.flatnonzero(rng.random(n) < p)
    start = add_years(cohort.date_of_birth[rows], 12) + rng.integers(0, 3 * 365, len(rows))
    end = start + rng.integers(180, 4 * 365, len(rows))
    ok = start < cohort.follow_up_end[rows]
    rows, start, end = rows[ok], start[ok], end[ok]
    end = np.where(end < cohort.census_date, end, NAT)
    return pd.DataFrame(
        {
            "period_id": np.arange(len(rows), dtype=np.int64) + 1_000_000,
            "person_id": cohort.person_id[rows],
            "la_code": cohort.la_codes[rows, 0],
            "start_date": start,
            "end_date": end,
            "reason_ended": "E8",
            "uasc": False,
        }
    )


@pytest.fixture(scope="module")
def params():
    return load_parameters()


def make_shard(params):
    """The toy shard of these tests: cohort, social-care frames and the health tables."""
    cohort = _with_arrivals(toy_cohort(N_CHILDREN, seed=21), share=0.02, seed=22)
    social = toy_social_care(cohort, seed=23)
    social["care_periods"] = pd.concat(
        [social["care_periods"], _adolescent_care(cohort, share=0.06, seed=24)], ignore_index=True
    )
    social["cp_plans"] = pd.concat(
        [social["cp_plans"], _early_protection(cohort, share=0.03, seed=26)], ignore_index=True
    )
    out = simulate_health(cohort, social, params, np.random.default_rng(25))
    return cohort, social, out


@pytest.fixture(scope="module")
def shard(params):
    return make_shard(params)


def _rows(cohort, person_id) -> np.ndarray:
    return pd.Series(np.arange(len(cohort)), index=cohort.person_id)[person_id].to_numpy()


def _observation(cohort, births):
    """First and last day each child can be admitted: after the birth spell (or arrival)."""
    start = cohort.date_arrived.copy()
    rows = _rows(cohort, births.person_id)
    start[rows] = births.discharge_date.to_numpy().astype("datetime64[D]") + 1
    end = np.minimum(cohort.follow_up_end, add_years(cohort.date_of_birth, MAX_AGE) - 1)
    return start, end


def _child_years(cohort, births) -> pd.DataFrame:
    """Person-time cut at birthdays: one row per child and year of age."""
    start, end = _observation(cohort, births)
    birthdays = add_years(cohort.date_of_birth[:, None], np.arange(MAX_AGE + 1)[None, :])
    with np.errstate(invalid="ignore"):
        s = np.maximum(start[:, None], birthdays[:, :-1])
        e = np.minimum(end[:, None], birthdays[:, 1:] - 1)
        valid = e >= s
    row, age = np.nonzero(valid)
    s, e = s[valid], e[valid]
    return pd.DataFrame(
        {
            "row": row,
            "age": age,
            "start": s,
            "end": e,
            "mid": s + (e - s).astype(np.int64) // 2,
            "years": ((e - s).astype(np.int64) + 1) / DAYS_PER_YEAR,
        }
    )


def _financial_year(dates) -> np.ndarray:
    d = pd.DatetimeIndex(dates)
    return np.where(d.month >= 4, d.year, d.year - 1)


# ---------------------------------------------------------------------------------------------
# Structure and validity
# ---------------------------------------------------------------------------------------------


def test_columns_match_declared_tables(shard):
    _, _, out = shard
    assert set(out) == {t.name for t in TABLES}
    for table in TABLES:
        frame = out[table.name]
        assert list(frame.columns) == table.column_names, table.name
        assert len(frame) > 0
        for col, field in zip(table.columns, table.arrow_schema(), strict=True):
            values = frame[col.name]
            if col.type == "date":
                arr = pa.array(pd.to_datetime(values).astype("datetime64[s]"), from_pandas=True)
                arr = arr.cast(pa.date32())
            else:
                arr = pa.array(values, from_pandas=True).cast(field.type)
            if not col.nullable:
                assert arr.null_count == 0, f"{table.name}.{col.name} has missing values"
            if col.codes is not None:
                present = set(values.dropna().astype(str))
                assert present <= set(col.codes), (
                    f"{table.name}.{col.name}: {present - set(col.codes)}"
                )


def test_diagnosis_and_method_codes_are_valid(shard):
    _, _, out = shard
    adm = out["admissions"]
    assert adm.diagnosis_primary.str.fullmatch(ICD10.pattern).all()
    secondary = adm.diagnosis_secondary[adm.diagnosis_secondary != ""].str.split(";").explode()
    assert secondary.str.fullmatch(ICD10.pattern).all()
    assert set(adm.admission_method) <= set(ADMISSION_METHODS)
    assert not adm.admission_method.isin(["82", "83", "2C"]).any()  # births are in `births`
    assert set(adm.cause_group) == set(CAUSE_GROUPS)  # every group occurs in the shard
    injuries = adm[adm.cause_group == "injury_unintentional"]
    assert is_injury_indicator(
        injuries.diagnosis_primary, injuries.diagnosis_secondary, injuries.admission_method
    ).all()
    assert adm.admission_id.is_unique


def test_admissions_only_while_observed_and_never_overlap(shard):
    cohort, _, out = shard
    adm, births = out["admissions"], out["births"]
    start, end = _observation(cohort, births)
    rows = _rows(cohort, adm.person_id)
    a = adm.admission_date.to_numpy().astype("datetime64[D]")
    d = adm.discharge_date.to_numpy().astype("datetime64[D]")
    assert (a >= start[rows]).all()  # after birth discharge or arrival
    assert (a <= end[rows]).all()  # before the 18th birthday, death, emigration, census
    assert (d >= a).all()
    assert (d <= cohort.follow_up_end[rows]).all()
    assert adm.age_at_admission.between(0, MAX_AGE - 1).all()
    same = adm.person_id.to_numpy()[1:] == adm.person_id.to_numpy()[:-1]
    assert (a[1:][same] > d[:-1][same]).all(), "spells of one child overlap"
    died = adm[adm.died_in_hospital]
    dod = cohort.date_of_death[_rows(cohort, died.person_id)]
    assert (died.discharge_date.to_numpy().astype("datetime64[D]") == dod).all()
    assert len(died) > 0


def test_births_only_for_children_born_in_england(shard):
    cohort, _, out = shard
    births = out["births"]
    born_here = cohort.person_id[np.isnat(cohort.date_arrived)]
    assert cohort.uasc.sum() > 100
    assert set(births.person_id) == set(born_here)
    assert (
        births.delivery_date.to_numpy() == cohort.date_of_birth[_rows(cohort, births.person_id)]
    ).all()
    discharged = births.discharge_date.dropna()
    assert (discharged >= births.delivery_date[discharged.index]).all()


def test_birth_characteristics_near_published_shares(shard, params):
    cohort, _, out = shard
    births = out["births"]
    preterm = (births.gestation_weeks < PRETERM_WEEKS).mean()
    low_weight = (births.birth_weight_g < LOW_BIRTH_WEIGHT_G).mean()
    assert preterm == pytest.approx(params["health.preterm_share"], abs=0.005)
    assert 0.06 <= low_weight <= 0.08  # ONS: about 7% of live births under 2,500 g
    assert 3250 <= births.birth_weight_g.mean() <= 3450
    assert births.gestation_weeks.between(22, 44).all()
    assert births.mother_age.between(15, 45).all()
    dep = cohort.deprivation[_rows(cohort, births.person_id)]
    by_dep = births.groupby(dep).mother_age.mean()
    assert by_dep[[1, 2]].mean() < by_dep[[9, 10]].mean() - 2  # younger mothers where deprived
    lbw = births.birth_weight_g.lt(LOW_BIRTH_WEIGHT_G).groupby(dep).mean()
    assert lbw[[1, 2]].mean() > lbw[[9, 10]].mean()
    very_preterm = births.gestation_weeks < 32
    assert births.neonatal_care[very_preterm].mean() > births.neonatal_care[~very_preterm].mean()


def test_admission_rates_by_age(shard):
    cohort, _, out = shard
    cy = _child_years(cohort, out["births"])
    years = cy.groupby("age").years.sum()
    rate = out["admissions"].groupby("age_at_admission").size() / years * 10_000
    assert rate[0] > 2500  # infants: Nath et al. 2022
    assert rate[[5, 6, 7, 8, 9, 10, 11, 12]].max() < rate[[1, 2, 3, 4]].min()
    overall = len(out["admissions"]) / years.sum() * 10_000
    assert 750 <= overall <= 1200


# ---------------------------------------------------------------------------------------------
# Calibration to the OHID injury indicator
# ---------------------------------------------------------------------------------------------


def test_injury_admissions_match_the_indicator(shard, params):
    """Injury admissions 0-14: 72.7 per 10,000 in 2023/24 and the 2010/11-2023/24 series."""
    cohort, _, out = shard
    adm = out["admissions"]
    model = HealthModel.from_params(params)
    start, end = _observation(cohort, out["births"])
    end = np.minimum(end, add_years(cohort.date_of_birth, 15) - 1)  # ages 0-14
    la_ratio = model.la_ratio[cohort.la_codes[:, 0]]
    counted = is_injury_indicator(
        adm.diagnosis_primary, adm.diagnosis_secondary, adm.admission_method
    ) & (adm.age_at_admission <= 14)
    fy = _financial_year(adm.admission_date)
    observed, expected = {}, {}
    for year, target in params["health.injury_indicator_by_year"].items():
        first, last = np.datetime64(f"{year}-04-01"), np.datetime64(f"{year + 1}-03-31")
        with np.errstate(invalid="ignore"):
            s, e = np.maximum(start, first), np.minimum(end, last)
            days = np.where(e >= s, (e - s).astype(np.int64) + 1, 0)
        person_years = days.sum() / DAYS_PER_YEAR
        # the LA injury ratios of the toy LAs, weighted by person-time
        expected[year] = target * np.average(la_ratio, weights=days) * person_years / 10_000
        observed[year] = int((counted & (fy == year)).sum())
    o, e = observed[2023], expected[2023]
    assert abs(o - e) < TOLERANCE_SE * 1.3 * np.sqrt(e), (o, e)  # 1.3: frailty overdispersion
    ratio = sum(observed.values()) / sum(expected.values())
    assert ratio == pytest.approx(1.0, abs=0.06)


# ---------------------------------------------------------------------------------------------
# Planted effects
# ---------------------------------------------------------------------------------------------


def test_deprivation_rate_ratio_of_unintentional_injury(shard, params):
    """Poisson GLM per child, offset = log expected admissions from the published rates.

    The expected count standardises for age, sex, calendar year and LA (indirect
    standardisation with the catalogue rates); deprivation decile, family adversity and the child's
    own risk are estimated together, so the deprivation coefficient is the planted direct effect.
    """
    cohort, _, out = shard
    model = HealthModel.from_params(params)
    g = RATE_GROUPS.index("injury_unintentional")
    cy = _child_years(cohort, out["births"])
    rows = cy.row.to_numpy()
    sex = (cohort.sex[rows] == "F").astype(int)
    fy = _financial_year(cy.mid)
    la = cohort.la_at(rows, cy.mid.to_numpy().astype("datetime64[D]"))
    base = model.group_base()[g, cy.age.to_numpy(), sex]
    trend = model.trend(fy)[g]
    expected = base * trend * model.la_ratio[la] * cy.years.to_numpy() / 10_000
    exp_person = np.bincount(rows, expected, len(cohort))
    adm = out["admissions"]
    injuries = adm[adm.cause_group == "injury_unintentional"]
    y = np.bincount(_rows(cohort, injuries.person_id), minlength=len(cohort))
    keep = exp_person > 0
    x = pd.DataFrame(
        {
            "const": 1.0,
            "decile": cohort.deprivation.astype(float),
            "adversity": cohort.adversity,
            "child_risk": cohort.child_risk,
        }
    )[keep]
    fit = sm.GLM(y[keep], x, family=sm.families.Poisson(), offset=np.log(exp_person[keep])).fit(
        cov_type="HC0"
    )
    truth = -np.log(params["health.deprivation_rr"]["injury_unintentional"]) / 9
    se = fit.bse["decile"]
    assert se < abs(truth) / 2, "too little data to detect the planted effect"
    assert abs(fit.params["decile"] - truth) < TOLERANCE_SE * se, (fit.params["decile"], truth)
    truth_adv = np.log(params["health.adversity_rr"]["injury_unintentional"])
    assert abs(fit.params["adversity"] - truth_adv) < TOLERANCE_SE * fit.bse["adversity"]


def _merge_periods(periods: pd.DataFrame, cohort) -> pd.DataFrame:
    p = periods[["person_id", "start_date", "end_date"]].copy()
    p["start_date"] = pd.to_datetime(p.start_date)
    follow = pd.Series(cohort.follow_up_end, index=cohort.person_id)
    p["end_date"] = pd.to_datetime(p.end_date).fillna(
        pd.Series(pd.to_datetime(follow[p.person_id].to_numpy()), index=p.index)
    )
    p = p.sort_values(["person_id", "start_date"])
    reach = p.groupby("person_id").end_date.cummax().groupby(p.person_id).shift()
    p["block"] = (p.start_date > reach + pd.Timedelta(days=1)) | reach.isna()
    p["block"] = p.block.cumsum()
    return p.groupby("block").agg(
        person_id=("person_id", "first"), start=("start_date", "min"), end=("end_date", "max")
    )


def test_self_harm_rate_ratio_looked_after_teenagers(shard, params):
    """Self-harm at 13-17, in care vs not, given age, sex, deprivation and the latent risks."""
    cohort, social, out = shard
    cy = _child_years(cohort, out["births"])
    cy = cy[cy.age.between(13, 17)].reset_index(drop=True)
    cy["person_id"] = cohort.person_id[cy.row]
    cy["cy"] = np.arange(len(cy))
    care = _merge_periods(social["care_periods"], cohort)
    care = care.rename(columns={"start": "care_start", "end": "care_end"})
    pairs = cy.merge(care, on="person_id")

    def days(col):
        return pairs[col].to_numpy().astype("datetime64[D]")

    s = np.maximum(days("start"), days("care_start"))
    e = np.minimum(days("end"), days("care_end"))
    overlap = np.maximum((e - s).astype(np.int64) + 1, 0)
    in_care_years = np.bincount(pairs.cy, overlap, len(cy)) / DAYS_PER_YEAR

    adm = out["admissions"]
    sh = adm[(adm.cause_group == "self_harm") & adm.age_at_admission.between(13, 17)]
    sh = sh.merge(
        cy[["person_id", "age", "cy"]],
        left_on=["person_id", "age_at_admission"],
        right_on=["person_id", "age"],
    )
    inside = sh.merge(care, on="person_id")
    inside = inside[
        (inside.admission_date >= inside.care_start) & (inside.admission_date <= inside.care_end)
    ]
    in_care = sh.admission_id.isin(inside.admission_id).to_numpy()
    y_in = np.bincount(sh.cy[in_care], minlength=len(cy))
    y_out = np.bincount(sh.cy[~in_care], minlength=len(cy))

    r = np.r_[cy.row, cy.row]
    data = pd.DataFrame(
        {
            "y": np.r_[y_in, y_out],
            "years": np.r_[in_care_years, cy.years - in_care_years],
            "in_care": np.r_[np.ones(len(cy)), np.zeros(len(cy))],
            "decile": cohort.deprivation[r].astype(float),
            "adversity": cohort.adversity[r],
            "child_risk": cohort.child_risk[r],
        }
    )
    strata = pd.get_dummies(
        np.r_[cy.age, cy.age].astype(str) + cohort.sex[r], drop_first=True, dtype=float
    )
    keep = data.years.to_numpy() > 1e-9
    x = pd.concat([data.drop(columns=["y", "years"]), strata], axis=1).assign(const=1.0)[keep]
    fit = sm.GLM(
        data.y[keep], x, family=sm.families.Poisson(), offset=np.log(data.years[keep])
    ).fit(cov_type="cluster", cov_kwds={"groups": r[keep]})
    truth = np.log(params["health.in_care_rr"]["self_harm"])
    se = fit.bse["in_care"]
    assert se < truth / 3, "too little in-care time to detect the planted effect"
    assert abs(fit.params["in_care"] - truth) < TOLERANCE_SE * se, (fit.params["in_care"], truth)


def test_maltreatment_admissions_cluster_before_protection(shard, params):
    """MVR admissions are far more frequent in the year before a CP plan or care than outside it."""
    cohort, social, out = shard
    start, end = _observation(cohort, out["births"])
    plans = social["cp_plans"]
    plans = plans[plans.category.isin(params["health.pre_protection_categories"])]
    starts = pd.concat(
        [plans[["person_id", "start_date"]], social["care_periods"][["person_id", "start_date"]]]
    )
    window = pd.DataFrame(
        {
            "person_id": starts.person_id.to_numpy(),
            "start_date": pd.to_datetime(starts.start_date) - pd.Timedelta(days=365),
            "end_date": pd.to_datetime(starts.start_date) - pd.Timedelta(days=1),
        }
    )
    merged = _merge_periods(window, cohort)
    rows = _rows(cohort, merged.person_id)
    s = np.maximum(merged.start.to_numpy().astype("datetime64[D]"), start[rows])
    e = np.minimum(merged.end.to_numpy().astype("datetime64[D]"), end[rows])
    with np.errstate(invalid="ignore"):
        in_days = np.where(e >= s, (e - s).astype(np.int64) + 1, 0).sum()
        all_days = np.where(end >= start, (end - start).astype(np.int64) + 1, 0).sum()
    adm = out["admissions"]
    mvr = adm[adm.cause_group.isin(MVR_CAUSE_GROUPS)]
    m = mvr.merge(merged, on="person_id")
    inside = m[(m.admission_date >= m.start) & (m.admission_date <= m.end)].admission_id.nunique()
    rate_in = inside / in_days
    rate_out = (len(mvr) - inside) / (all_days - in_days)
    assert inside >= 25
    assert rate_in / rate_out > 10, (inside, len(mvr), rate_in / rate_out)


def test_deterministic_given_seed(params):
    cohort = toy_cohort(3000, seed=5)
    social = toy_social_care(cohort)
    a = simulate_health(cohort, social, params, np.random.default_rng(9))
    b = simulate_health(cohort, social, params, np.random.default_rng(9))
    c = simulate_health(cohort, social, params, np.random.default_rng(10))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["admissions"].equals(c["admissions"])


def test_empty_social_care_and_tiny_cohort(params):
    cohort = toy_cohort(50, seed=3)
    out = simulate_health(cohort, {}, params, np.random.default_rng(1))
    for table in TABLES:
        assert list(out[table.name].columns) == table.column_names


def test_a_birth_spell_is_open_only_for_a_baby_in_hospital_on_the_census_date():
    from trainkit.config import make_config
    from trainkit.simulate.engine import plan_shards, record_context

    # the make-run dataset's third shard has babies who left England before their discharge
    cfg = make_config({"children": 50_000, "seed": 20240331})
    ctx = record_context(cfg, plan_shards(cfg)[2])
    cohort, births = ctx.cohort, ctx.truth["births"]
    rows = _rows(cohort, births.person_id)
    end = cohort.follow_up_end[rows]
    discharge = births.discharge_date.to_numpy().astype("datetime64[D]")
    open_ = np.isnat(discharge)
    # a baby who died or left England before discharge ends the spell that day (else HES would
    # show a spell open for years); only babies still in hospital at the census date are open
    assert (end[open_] == cohort.census_date).all()
    assert (discharge[~open_] <= end[~open_]).all()
    early = discharge[~open_] - births.delivery_date.to_numpy().astype("datetime64[D]")[~open_]
    assert ((end[~open_] < cohort.census_date) & (discharge[~open_] == end[~open_])).any(), early

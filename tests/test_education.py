"""Tests of the education module: schema, coherence, calibration and the planted effects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.formula.api as smf
from scipy.optimize import minimize
from scipy.special import log_ndtr

from trainkit.parameters import load_parameters
from trainkit.simulate import education
from trainkit.simulate.context import Cohort, add_years, uniform_dates
from trainkit.simulate.schema import TYPES
from trainkit.simulate.toy import toy_cohort, toy_social_care

N = 60_000
CENSUS_YEAR = 2024  # toy census date 2024-03-31 is in academic year 2023/24
TABLES = {t.name: t for t in education.TABLES}


def social_care_for_tests(cohort: Cohort, seed: int) -> dict[str, pd.DataFrame]:
    """The toy social-care frames, with enough children looked after to estimate their effect.

    ``toy_social_care`` adds integer offsets to dates that pandas 3 stores as ``datetime64[s]``,
    so its plans and periods of care last seconds; the offsets were meant as days, and are read
    as days here (a no-op once the toy stores whole days). Extra periods of care in late childhood,
    more likely for children with high adversity and child_risk, give a few hundred children looked
    after in year 11.
    """
    frames = toy_social_care(cohort, seed=seed)
    for name in ("cp_plans", "care_periods"):
        frame = frames[name].copy()
        for col in ("start_date", "end_date"):
            stamp = pd.to_datetime(frame[col])
            day = stamp.dt.floor("D")
            if (stamp != day).any():
                stamp = day + pd.to_timedelta((stamp - day).dt.total_seconds(), unit="D")
            frame[col] = stamp
        frames[name] = frame
    rng = np.random.default_rng(seed + 1)
    n = len(cohort)
    risk = 1 / (1 + np.exp(-(1.3 * cohort.adversity + 0.5 * cohort.child_risk - 4.0)))
    who = np.flatnonzero(rng.random(n) < risk)
    dob = cohort.date_of_birth[who]
    start = uniform_dates(rng, add_years(dob, 8), add_years(dob, 16))
    end = start + rng.integers(200, 2500, who.size)
    ok = (start >= cohort.start[who]) & (start <= cohort.follow_up_end[who])
    extra = pd.DataFrame(
        {
            "period_id": 1_000_000 + np.arange(ok.sum()),
            "person_id": cohort.person_id[who][ok],
            "la_code": np.int16(202),
            "start_date": start[ok],
            "end_date": np.where(end[ok] > cohort.census_date, np.datetime64("NaT"), end[ok]),
            "reason_ended": "E4A",
            "uasc": False,
        }
    )
    frames["care_periods"] = pd.concat([frames["care_periods"], extra], ignore_index=True)
    return frames


def national_deciles(cohort: Cohort, seed: int) -> Cohort:
    """The toy cohort with deprivation deciles uniform, as nationally, correlated with adversity.

    The toy derives deciles from adversity plus noise, which piles them up in the middle; the
    module's calibration assumes national deciles (a tenth of children in each, before moves).
    """
    rng = np.random.default_rng(seed)
    n = len(cohort)
    score = 0.4 * cohort.adversity + np.sqrt(1 - 0.4**2) * rng.standard_normal(n)
    rank = np.argsort(np.argsort(-score))  # 0 = most deprived
    decile = (1 + rank * 10 // n).astype(np.int8)
    spells = np.repeat(decile[:, None], cohort.deprivations.shape[1], axis=1)
    return dataclasses.replace(cohort, deprivation=decile, deprivations=spells)


@pytest.fixture(scope="module")
def world():
    cohort = national_deciles(toy_cohort(N, seed=11), seed=13)
    care = social_care_for_tests(cohort, seed=12)
    params = load_parameters()
    out = education.simulate_education(cohort, care, params, np.random.default_rng(5))
    return cohort, care, params, out


def person(cohort: Cohort, ids: pd.Series) -> np.ndarray:
    """Row of each person id in the cohort."""
    rows = pd.Index(cohort.person_id).get_indexer(ids.to_numpy())
    assert (rows >= 0).all()
    return rows


def status_on(cohort: Cohort, care: dict, ids: pd.Series, years: pd.Series) -> np.ndarray:
    """Hierarchical social-care status (0 none, 1 cin, 2 cpp, 3 cla) at 31 March of ``years``."""
    index = education._SocialCareIndex(cohort, care)
    rows, years = person(cohort, ids), years.to_numpy()
    out = np.zeros(len(rows), np.int8)
    for year in np.unique(years):
        at = years == year
        out[at] = index.status(np.datetime64(f"{year}-03-31"))[rows[at]]
    return out


def reception_year(cohort: Cohort, rows: np.ndarray) -> np.ndarray:
    dob = cohort.date_of_birth[rows]
    months = dob.astype("datetime64[M]").astype(np.int64)
    return months // 12 + 1970 + (months % 12 >= 8) + 5


# --- schema -----------------------------------------------------------------------------------


def test_tables_have_declared_columns_and_cast_to_their_schema(world):
    *_, out = world
    assert set(out) == set(TABLES)
    for name, table in TABLES.items():
        frame = out[name]
        assert list(frame.columns) == table.column_names, name
        assert len(frame) > 0, name
        for col in table.columns:
            values = frame[col.name]
            if col.type == "date":
                stamps = pd.to_datetime(values).astype("datetime64[s]")
                arr = pa.array(stamps, type=pa.timestamp("s"), from_pandas=True).cast(pa.date32())
            else:
                arr = pa.array(values, from_pandas=True).cast(TYPES[col.type])
            if not col.nullable:
                assert arr.null_count == 0, f"{name}.{col.name} has nulls"


def test_coded_columns_use_declared_codes(world):
    *_, out = world
    for name, table in TABLES.items():
        for col in table.columns:
            if col.codes:
                used = set(out[name][col.name].dropna().unique())
                assert used <= set(col.codes), f"{name}.{col.name}: {used - set(col.codes)}"


def test_school_ids_follow_laestab_convention(world):
    *_, out = world
    enrolments = out["school_enrolments"]
    estab = enrolments.school_id % 10_000
    assert (enrolments.school_id // 10_000 == enrolments.la_code).all()
    ranges = {"primary": (2000, 3999), "secondary": (4000, 5999), "special": (7000, 7999)}
    ranges["ap"] = (1100, 1199)
    for phase, (lo, hi) in ranges.items():
        assert estab[enrolments.phase == phase].between(lo, hi).all(), phase


# --- coherence with the cohort -----------------------------------------------------------------


def test_nc_years_follow_date_of_birth(world):
    cohort, _, _, out = world
    census = out["pupil_census"]
    reception = reception_year(cohort, person(cohort, census.person_id))
    assert (census.nc_year.to_numpy() == census.academic_year.to_numpy() - reception).all()
    assert census.nc_year.between(0, 11).all()
    for name, nc in (("ks2", 6), ("ks4", 11)):
        frame = out[name]
        reception = reception_year(cohort, person(cohort, frame.person_id))
        assert (frame.academic_year.to_numpy() == reception + nc).all(), name
        assert not frame.person_id.duplicated().any(), name


def test_no_records_outside_observation_or_after_census(world):
    cohort, _, _, out = world
    census_date = pd.Timestamp(cohort.census_date)
    start = pd.Series(cohort.start, index=cohort.person_id)
    end = pd.Series(cohort.follow_up_end, index=cohort.person_id)

    def within(ids: pd.Series, dates: pd.Series) -> bool:
        dates = pd.to_datetime(dates).to_numpy()
        lo, hi = start.loc[ids].to_numpy(), end.loc[ids].to_numpy()
        return bool(((dates >= lo) & (dates <= hi) & (dates <= census_date)).all())

    census, enrolments = out["pupil_census"], out["school_enrolments"]
    assert within(census.person_id, census.census_date)
    assert within(out["exclusions"].person_id, out["exclusions"].start_date)
    assert within(enrolments.person_id, enrolments.entry_date)
    left = enrolments.dropna(subset=["leaving_date"])
    assert within(left.person_id, left.leaving_date)
    absence = out["absence"]
    assert absence.academic_year.max() == CENSUS_YEAR
    assert not ((absence.academic_year == CENSUS_YEAR) & (absence.term == "summer")).any()
    for name, month_day in (("ks2", "05-13"), ("ks4", "06-15")):
        test_day = pd.to_datetime(out[name].academic_year.astype(str) + "-" + month_day)
        assert within(out[name].person_id, test_day), name


def test_enrolment_spells_are_contiguous_and_match_the_census(world):
    *_, out = world
    spells = out["school_enrolments"].sort_values(["person_id", "entry_date"])
    same = spells.person_id.to_numpy()[1:] == spells.person_id.to_numpy()[:-1]
    entry = spells.entry_date.to_numpy()
    leave = spells.leaving_date.to_numpy()
    assert (entry[1:][same] == leave[:-1][same] + np.timedelta64(1, "D")).all()
    assert not np.isnat(leave[:-1][same]).any()  # only a pupil's last spell can be open
    closed = ~np.isnat(leave)
    assert (leave[closed] >= entry[closed]).all()
    census = out["pupil_census"].sort_values("census_date")
    matched = pd.merge_asof(
        census,
        spells.sort_values("entry_date")[["person_id", "entry_date", "leaving_date", "school_id"]],
        left_on="census_date",
        right_on="entry_date",
        by="person_id",
        suffixes=("", "_spell"),
    )
    assert (matched.school_id == matched.school_id_spell).all()
    on_roll = matched.leaving_date.isna() | (matched.leaving_date >= matched.census_date)
    assert on_roll.all()


def test_about_seven_percent_never_attend_a_state_school(world):
    cohort, *_, out = world
    seen = set(out["school_enrolments"].person_id)
    dob = cohort.date_of_birth
    old_enough = dob < np.datetime64("2012-09-01")  # reached year 6 by the census
    observed = cohort.follow_up_end == cohort.census_date
    ids = cohort.person_id[old_enough & observed]
    share = np.isin(ids, list(seen)).mean()
    assert 0.91 < share < 0.95


def test_arrivals_join_their_age_group_unless_too_old():
    cohort = toy_cohort(4000, seed=3)
    rng = np.random.default_rng(4)
    arrived = np.full(len(cohort), np.datetime64("NaT"), dtype="datetime64[D]")
    chosen = rng.choice(len(cohort), 600, replace=False)
    arrived[chosen] = uniform_dates(
        rng,
        np.maximum(cohort.date_of_birth[chosen], np.datetime64("2015-01-01")),
        np.full(chosen.size, np.datetime64("2024-01-31")),
    )
    arrivals = dataclasses.replace(cohort, date_arrived=arrived, uasc=~np.isnat(arrived))
    out = education.simulate_education(
        arrivals, toy_social_care(arrivals), load_parameters(), np.random.default_rng(1)
    )
    first = out["school_enrolments"].groupby("person_id").entry_date.min()
    rows = person(arrivals, pd.Series(first.index))
    was_arrival = ~np.isnat(arrived[rows])
    assert was_arrival.sum() > 50
    assert (first.to_numpy()[was_arrival] >= arrived[rows][was_arrival]).all()
    age = (arrived[chosen] - arrivals.date_of_birth[chosen]).astype(int) / 365.25
    too_old = chosen[age >= 16.05]
    assert too_old.size > 20
    assert not np.isin(arrivals.person_id[too_old], first.index).any()


def test_same_seed_same_tables():
    cohort = toy_cohort(3000, seed=8)
    care = toy_social_care(cohort)
    params = load_parameters()
    a = education.simulate_education(cohort, care, params, np.random.default_rng(9))
    b = education.simulate_education(cohort, care, params, np.random.default_rng(9))
    c = education.simulate_education(cohort, care, params, np.random.default_rng(10))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["absence"].equals(c["absence"])


# --- calibration -------------------------------------------------------------------------------


def test_fsm_and_sen_shares_at_the_2024_census(world):
    *_, out = world
    census = out["pupil_census"]
    now = census[census.academic_year == CENSUS_YEAR]
    assert now.fsm_eligible.mean() * 100 == pytest.approx(24.6, abs=1.5)
    provision = now.sen_provision.value_counts(normalize=True) * 100
    assert provision["K"] == pytest.approx(13.6, abs=1.5)
    assert provision["E"] == pytest.approx(4.8, abs=1.0)
    assert census[census.academic_year == 2018].fsm_eligible.mean() * 100 == pytest.approx(
        13.6, abs=1.5
    )
    need = now.sen_primary_need
    assert need.isna().equals(now.sen_provision == "N")
    assert need[now.sen_provision == "E"].value_counts().index[0] == "ASD"


def test_fsm_and_sen_persist_from_year_to_year(world):
    *_, out = world
    census = out["pupil_census"][["person_id", "academic_year", "fsm_eligible", "sen_provision"]]
    prev = census.assign(academic_year=census.academic_year + 1)
    pairs = census.merge(prev, on=["person_id", "academic_year"], suffixes=("", "_prev"))
    assert pairs[pairs.fsm_eligible_prev].fsm_eligible.mean() > 0.75
    assert pairs[~pairs.fsm_eligible_prev].fsm_eligible.mean() < 0.1
    ehc = pairs[pairs.sen_provision_prev == "E"]
    assert (ehc.sen_provision == "E").mean() > 0.9


def test_sen_codes_follow_the_2014_reforms(world):
    *_, out = world
    census = out["pupil_census"]
    old = census.academic_year <= 2014
    assert set(census[old].sen_provision) <= {"N", "A", "P", "S"}
    assert set(census[~old].sen_provision) <= {"N", "K", "E"}
    assert census[old & (census.sen_provision == "A")].sen_primary_need.isna().all()
    assert (census[~old].sen_primary_need == "NSA").any()


def test_absence_rates_and_persistent_absence(world):
    *_, out = world
    absence = out["absence"]
    assert not ((absence.academic_year == 2020) & (absence.term == "summer")).any()
    yearly = absence.groupby(["academic_year", "person_id"]).sum(numeric_only=True).astype(float)
    absent = yearly.authorised_absence + yearly.unauthorised_absence
    rate = (
        absent.groupby("academic_year").sum()
        / yearly.sessions_possible.groupby("academic_year").sum()
    )
    assert rate[2023] * 100 == pytest.approx(7.4, abs=0.5)
    assert rate[2019] * 100 == pytest.approx(4.7, abs=0.5)
    persistent = (absent / yearly.sessions_possible >= 0.1).groupby("academic_year").mean()
    assert persistent[2023] * 100 == pytest.approx(21.2, abs=4)
    assert persistent[2019] * 100 == pytest.approx(10.9, abs=3)
    assert absence.sessions_possible.max() <= 146


def test_absence_is_higher_for_children_in_need_and_on_plans(world):
    cohort, care, _, out = world
    absence = out["absence"]
    absence = absence[absence.academic_year.isin([2022, 2023])]
    status = status_on(cohort, care, absence.person_id, absence.academic_year)
    grouped = absence.groupby(status)[["sessions_possible", "authorised_absence"]].sum()
    unauth = absence.groupby(status).unauthorised_absence.sum()
    rate = (grouped.authorised_absence + unauth) / grouped.sessions_possible
    assert rate[1] > 1.7 * rate[0]  # children in need: published 17.4% against about 7%
    assert rate[3] < rate[1]  # looked after: 8.8%, below children in need


def test_exclusion_rates_codes_and_lengths(world):
    *_, out = world
    exclusions, census = out["exclusions"], out["pupil_census"]
    pupils = census.groupby("academic_year").size()
    per_100 = exclusions.groupby(["academic_year", "category"]).size().unstack().div(pupils, axis=0)
    per_100 = per_100 * 100
    assert per_100.loc[[2022, 2023], "SUSP"].mean() == pytest.approx((6.91 + 9.33) / 2, rel=0.2)
    assert per_100.loc[2017:2023, "PERM"].mean() == pytest.approx(0.09, rel=0.4)
    perm = exclusions.category == "PERM"
    assert exclusions.sessions[perm].isna().all()
    assert (exclusions.sessions[~perm] >= 1).all()
    old = exclusions.academic_year < 2021
    assert "DB" not in set(exclusions[old].reason) and "PD" in set(exclusions[old].reason)
    assert not set(exclusions[~old].reason) & {"PD", "OT"}
    weekday = pd.to_datetime(exclusions.start_date).dt.day_of_week
    assert (weekday < 5).mean() > 0.95
    excluded = exclusions[perm].person_id
    ap = out["school_enrolments"].query("phase == 'ap'").person_id
    assert ap.isin(excluded).all() and excluded.isin(ap).mean() > 0.8


def test_key_stage_2_calibration_and_covid_gap(world):
    *_, out = world
    ks2 = out["ks2"]
    years = set(ks2.academic_year)
    assert not years & {2020, 2021} and {2019, 2022} <= years
    recent = ks2[ks2.academic_year.isin([2018, 2019, 2022, 2023])]
    assert recent.read_expected.mean() * 100 == pytest.approx(74.25, abs=2.5)
    assert recent.mat_expected.mean() * 100 == pytest.approx(74.75, abs=2.5)
    assert ks2.read_scaled.between(80, 120).all() and ks2.mat_scaled.between(80, 120).all()
    assert (ks2.read_expected == (ks2.read_scaled >= 100)).all()


def test_attainment8_calibration_and_raw_gaps(world):
    cohort, care, _, out = world
    ks4 = out["ks4"]
    assert ks4.attainment8.between(0, 90).all()
    pre_covid = ks4[ks4.academic_year.between(2017, 2019)].attainment8.mean()
    assert pre_covid == pytest.approx(46.5, abs=1.5)
    assert ks4[ks4.academic_year.isin([2020, 2021])].attainment8.mean() > pre_covid + 2
    assert ks4.attainment8.std() == pytest.approx(19.5, abs=2.5)
    female = cohort.sex[person(cohort, ks4.person_id)] == "F"
    gap = ks4.attainment8[female].mean() - ks4.attainment8[~female].mean()
    assert 3 < gap < 8
    cla = status_on(cohort, care, ks4.person_id, ks4.academic_year) == 3
    raw_gap = ks4.attainment8[cla].mean() - ks4.attainment8[~cla].mean()
    assert raw_gap < -15  # far larger than the planted -6: confounding


# --- the planted effect ------------------------------------------------------------------------


def ks4_analysis_frame(cohort: Cohort, care: dict, out: dict) -> pd.DataFrame:
    """One row per KS4 pupil with the terms of the documented model (docs/planted_effects.md)."""
    ks4, census, absence = out["ks4"], out["pupil_census"], out["absence"]
    y11 = census[census.nc_year == 11][
        ["person_id", "academic_year", "fsm_eligible", "sen_provision", "idaci_decile"]
    ]
    frame = ks4.merge(y11, on=["person_id", "academic_year"], validate="one_to_one")
    years = absence.merge(
        frame[["person_id", "academic_year"]], on="person_id", suffixes=("", "_4")
    )
    counted = (years.academic_year == years.academic_year_4 - 1) | (
        (years.academic_year == years.academic_year_4) & years.term.isin(["autumn", "spring"])
    )
    terms = ["authorised_absence", "unauthorised_absence", "sessions_possible"]
    sums = years[counted].groupby("person_id")[terms].sum().astype(float)  # int16 would overflow
    absence_pct = 100 * (sums.authorised_absence + sums.unauthorised_absence)
    frame = frame.join((absence_pct / sums.sessions_possible).rename("absence_pct"), on="person_id")
    rows = person(cohort, frame.person_id)
    status = status_on(cohort, care, frame.person_id, frame.academic_year)
    return frame.assign(
        cla=status == 3,
        cpp=status == 2,
        cin=status == 1,
        fsm=frame.fsm_eligible,
        sen_support=frame.sen_provision.isin(["K", "A", "P"]),
        ehc_plan=frame.sen_provision.isin(["E", "S"]),
        female=cohort.sex[rows] == "F",
        ethnicity=cohort.ethnicity[rows],
        adversity=cohort.adversity[rows],
        child_risk=cohort.child_risk[rows],
    )


KS4_MODEL = (
    "attainment8 ~ cla + cpp + cin + fsm + sen_support + ehc_plan + female + C(ethnicity)"
    " + idaci_decile + adversity + child_risk + absence_pct + C(academic_year)"
)


def tobit(fit, lower: float = 0.0, upper: float = 90.0) -> tuple[pd.Series, pd.Series]:
    """Refit an OLS model as a linear model censored at ``lower`` and ``upper`` (Tobit).

    Returns the coefficients and their standard errors (outer product of the scores).
    """
    x, y = np.ascontiguousarray(fit.model.exog), fit.model.endog
    low, high = y <= lower, y >= upper
    mid = ~(low | high)

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log-likelihood and its derivatives by the mean and by log(sigma), per pupil."""
        beta, sigma = theta[:-1], np.exp(theta[-1])
        mean = x @ beta
        r = (y - mean) / sigma
        c, d = (lower - mean) / sigma, (upper - mean) / sigma
        loglik = np.where(mid, -np.log(sigma) - r**2 / 2, 0.0)
        loglik = np.where(low, log_ndtr(c), np.where(high, log_ndtr(-d), loglik))
        mills_low = np.exp(-(c**2) / 2 - 0.5 * np.log(2 * np.pi) - log_ndtr(c))
        mills_high = np.exp(-(d**2) / 2 - 0.5 * np.log(2 * np.pi) - log_ndtr(-d))
        d_mean = np.where(mid, r / sigma, np.where(low, -mills_low / sigma, mills_high / sigma))
        d_log_sigma = np.where(mid, r**2 - 1, np.where(low, -c * mills_low, d * mills_high))
        return loglik, d_mean, d_log_sigma

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loglik, d_mean, d_log_sigma = parts(theta)
        return -loglik.sum(), -np.append(x.T @ d_mean, d_log_sigma.sum())

    start = np.append(fit.params.to_numpy(), np.log(np.sqrt(fit.scale)))
    result = minimize(objective, start, jac=True, method="L-BFGS-B")
    assert result.success, result.message
    _, d_mean, d_log_sigma = parts(result.x)
    g = np.column_stack([x * d_mean[:, None], d_log_sigma])
    se = np.sqrt(np.diag(np.linalg.inv(g.T @ g)))[:-1]
    return pd.Series(result.x[:-1], fit.params.index), pd.Series(se, fit.params.index)


def test_documented_model_recovers_the_planted_cla_effect(world):
    cohort, care, params, out = world
    frame = ks4_analysis_frame(cohort, care, out)
    assert frame.absence_pct.notna().all()
    assert frame.cla.sum() > 300
    fit = smf.ols(KS4_MODEL, frame).fit()
    planted = params["education.ks4_att8_cla"]
    estimate, se = fit.params["cla[T.True]"], fit.bse["cla[T.True]"]
    # OLS on the score clipped at 0 is attenuated (by about 15% here), hence the wide bound
    assert abs(estimate - planted) < 3 * se
    assert abs(estimate - planted) < 2.0
    assert estimate < planted / 2  # and clearly not the raw gap, nor zero

    # the same design as a censored (Tobit) model recovers every planted coefficient
    coefficients, errors = tobit(fit)
    terms = {"cla[T.True]": "cla", "cin[T.True]": "cin", "fsm[T.True]": "fsm"}
    terms |= {"sen_support[T.True]": "sen_support", "ehc_plan[T.True]": "ehc_plan"}
    terms |= {"absence_pct": "absence_pct", "female[T.True]": "female"}
    terms |= {"idaci_decile": "deprivation_decile", "adversity": "adversity"}
    terms |= {"child_risk": "child_risk"}
    for term, name in terms.items():
        truth = params[f"education.ks4_att8_{name}"]
        assert abs(coefficients[term] - truth) < 3 * errors[term], (term, coefficients[term])
    assert abs(coefficients["cla[T.True]"] - planted) < 1.5

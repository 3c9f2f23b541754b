"""Children's social care as one pathway: referral, assessment, need, s47, protection, care.

Referrals arrive as a Poisson process whose rate depends on age, calendar year, the LA and the
child's risk (family adversity, own risk, area deprivation, ethnicity). A referral cannot start
while the child's case is open, so referrals are processed in rounds by rank within child: each
round is vectorised over every child with that many candidate referrals. Each referral runs
through the funnel; children in need may have a section 47 enquiry, a conference, a protection
plan, and a period of care whose route out (adoption, special guardianship, home, 18th
birthday...) and length depend on the age at entry.

An adoption order ends the birth family's part: no later referral takes the child into care,
except the breakdown of the adoption itself, drawn at the order from a yearly hazard by age
(``care.adoption_breakdown_hazard``) and run through the funnel as a referral that ends in care
(deferred past any case still open then).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..parameters import Parameters
from .context import DECILE_MEAN, DECILE_SD, NAT, Cohort, add_years, age_in_years
from .geography import ETHNICITY_CODES, Geography
from .schema import Column, Table
from .working_days import add_working_days, england_bank_holidays, previous_working_day

DAYS = 365.25
FAR_PAST = np.datetime64("1900-01-01", "D")
FAR_FUTURE = np.datetime64("2262-01-01", "D")
ADOPTION_ORDERS = ("E11", "E12")
"""Reasons a period of care ends with an adoption order."""
REREFERRAL_DAYS = 365
"""A re-referral is a referral within 12 months of the child's previous referral (DfE,
Characteristics of children in need: definition of re-referrals)."""

CATEGORY_CODES = {
    "NEG": "Neglect",
    "PHY": "Physical abuse",
    "SAB": "Sexual abuse",
    "EMO": "Emotional abuse",
    "MUL": "Multiple/not recommended",
}
CLOSURE_CODES = {
    "RC1": "Adopted",
    "RC2": "Died",
    "RC3": "Child arrangements order",
    "RC4": "Special guardianship order",
    "RC5": "Transferred to another LA",
    "RC6": "Transferred to adult social care",
    "RC7": "Services ceased for any other reason",
    "RC8": "Case closed after assessment, no further action",
    "RC9": "Case closed after assessment, referred to early help",
}
NEED_CODES = {
    "N1": "Abuse or neglect",
    "N2": "Child's disability",
    "N3": "Parental illness/disability",
    "N4": "Family in acute stress",
    "N5": "Family dysfunction",
    "N6": "Socially unacceptable behaviour",
    "N7": "Low income",
    "N8": "Absent parenting",
}
REC_CODES = {
    "E11": "Adopted - unopposed",
    "E12": "Adopted - consent dispensed with",
    "E13": "Left care to live with person(s) without parental responsibility",
    "E14": "Remand ended",
    "E15": "Age assessment determined aged 18 or over",
    "E16": "Child moved abroad",
    "E17": "Aged 18 (or over) and remained with current carers",
    "E2": "Died",
    "E3": "Care taken by another LA",
    "E4A": "Returned home, part of care planning",
    "E4B": "Returned home, not part of care planning",
    "E41": "Residence / child arrangements order",
    "E45": "SGO - former foster carer, relative or friend",
    "E46": "SGO - former foster carer, not relative or friend",
    "E47": "SGO - not former foster carer, relative or friend",
    "E48": "SGO - not former foster carer, not relative or friend",
    "E5": "Independent living with supportive accommodation",
    "E6": "Independent living, no formalised support",
    "E7": "Transferred to residential care funded by adult social services",
    "E8": "Other reason",
    "E9": "Sentenced to custody",
}
ROUTE_CLOSURE = {
    "adopted": "RC1",
    "sgo": "RC4",
    "cao": "RC3",
    "home": "RC7",
    "other_person": "RC7",
    "independent": "RC7",
    "custody": "RC7",
    "remand": "RC7",
    "transfer": "RC5",
    "other": "RC7",
    "age_assessment": "RC7",
}
"""CIN reason for closure of the case when care ends by each route (CLOSURE_CODES); the reasons
for leaving care each route gives are ``social_care.exit_route_reasons``."""

TABLES = (
    Table(
        "referrals",
        "Referrals to children's social care and what followed: assessment, need, CIN plan, "
        "closure. "
        "One row per referral (a CIN episode when the child is in need).",
        (
            Column(
                "referral_id", "int64", "Unique referral identifier (truth only).", nullable=False
            ),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("la_code", "int16", "DfE number of the LA that received the referral."),
            Column("referral_date", "date", "Date the referral was received (may precede birth)."),
            Column("referral_source", "string", "Source of referral, CIN census code (1A ... 10)."),
            Column(
                "primary_need", "string", "Primary need code, for children in need.", NEED_CODES
            ),
            Column("nfa", "bool", "Closed with no further action at referral (no assessment)."),
            Column("assessed", "bool", "A completed assessment followed."),
            Column("assessment_start", "date", "Assessment actual start date."),
            Column("assessment_authorised", "date", "Assessment authorisation date."),
            Column(
                "in_need",
                "bool",
                "Assessed as a child in need (not closed with no further action).",
            ),
            Column("factors", "string", "Factors identified at assessment, comma-separated codes."),
            Column("cin_plan_start", "date", "CIN plan start, if any."),
            Column("cin_plan_end", "date", "CIN plan end; empty if open at the census date."),
            Column("closure_date", "date", "Case closure; empty if open at the census date."),
            Column("closure_reason", "string", "Reason for closure.", CLOSURE_CODES),
            Column("rereferral", "bool", "Within 12 months of the child's previous referral."),
            Column("uasc", "bool", "Referral of an unaccompanied asylum-seeking child on arrival."),
        ),
        key=("referral_id",),
    ),
    Table(
        "section47",
        "Section 47 enquiries and initial child protection conferences.",
        (
            Column("person_id", "int64", "Child.", nullable=False),
            Column("referral_id", "int64", "Referral (CIN episode) the enquiry belongs to."),
            Column("la_code", "int16", "DfE LA number."),
            Column("s47_start_date", "date", "Date the section 47 enquiry started."),
            Column(
                "icpc_date",
                "date",
                "Date of the initial child protection conference; empty if none.",
            ),
        ),
    ),
    Table(
        "cp_plans",
        "Child protection plans.",
        (
            Column("person_id", "int64", "Child.", nullable=False),
            Column("referral_id", "int64", "Referral (CIN episode) the plan belongs to."),
            Column("la_code", "int16", "DfE LA number."),
            Column("start_date", "date", "Plan start (the initial conference date)."),
            Column("end_date", "date", "Plan end; empty if open at the census date."),
            Column("category", "string", "Initial category of abuse.", CATEGORY_CODES),
            Column("latest_category", "string", "Latest category of abuse.", CATEGORY_CODES),
            Column(
                "number_of_previous_plans", "int16", "Child protection plans the child had before."
            ),
        ),
    ),
    Table(
        "care_periods",
        "Periods of care: continuous time looked after by one LA, across episodes.",
        (
            Column("period_id", "int64", "Unique period identifier (truth only).", nullable=False),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("referral_id", "int64", "Referral (CIN episode) during which care started."),
            Column("la_code", "int16", "DfE number of the LA looking after the child."),
            Column("start_date", "date", "First day looked after."),
            Column("end_date", "date", "Day care ended; empty if looked after at the census date."),
            Column("reason_ended", "string", "REC code of the last episode.", REC_CODES),
            Column("route", "string", "Route out of care planned at entry (truth only)."),
            Column("uasc", "bool", "Unaccompanied asylum-seeking child."),
            Column("age_at_start", "int8", "Age in years on starting care."),
            Column(
                "after_cp_plan", "bool", "Care followed a child protection plan in this episode."
            ),
        ),
        key=("period_id",),
    ),
)


def _choice(rng: np.random.Generator, shares: dict, n: int) -> np.ndarray:
    codes = np.array(list(shares))
    p = np.array([float(v) for v in shares.values()])
    return codes[
        np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").clip(0, len(codes) - 1)
    ]


def _fiscal_year(dates: np.ndarray) -> np.ndarray:
    """Year ending 31 March that each date falls in."""
    m = dates.astype("datetime64[M]").astype(int)
    return m // 12 + 1970 + (m % 12 >= 3)


class _Risk:
    """Each child's relative referral rate (population mean 1) and its log score."""

    def __init__(self, cohort: Cohort, geo: Geography, params: Parameters):
        b = params["social_care.risk_log_rr"]
        rho = params["population.deprivation_adversity_correlation"]
        eth_rr = params["social_care.ethnicity_rate_ratio"]
        national = np.diff(np.r_[0.0, (geo.ethnicity_cdf * geo.population[:, None]).sum(0)])
        national = national / national.sum()
        eth_mean = sum(float(eth_rr[c]) * s for c, s in zip(ETHNICITY_CODES, national, strict=True))
        z = (DECILE_MEAN - cohort.deprivation.astype(float)) / DECILE_SD
        score = b["adversity"] * cohort.adversity + b["child_risk"] * cohort.child_risk
        score = score + b["deprivation"] * z
        # analytic mean of exp(score): deciles uniform, normal components independent
        c = b["adversity"] * rho + b["deprivation"]
        zs = (DECILE_MEAN - np.arange(1, 11)) / DECILE_SD
        norm = np.mean(np.exp(c * zs)) * np.exp(
            (b["adversity"] ** 2 * (1 - rho**2) + b["child_risk"] ** 2) / 2
        )
        eth = np.vectorize(lambda e: float(eth_rr[e]))(cohort.ethnicity) / eth_mean
        self.score = score - np.log(norm)  # centred log relative risk (without ethnicity)
        self.rr = np.exp(self.score) * eth
        la_idx = geo.index_of(cohort.la_codes[:, 0])
        self.need = geo.need_index[la_idx]


class _Adoptions:
    """Each child's latest adoption order, and the day the adoption breaks down if it does.

    ``breakdown`` is FAR_FUTURE when none is due (never adopted, the draw fell after the 18th
    birthday, or the breakdown has happened: a child's adoption breaks down at most once).
    """

    def __init__(self, n: int):
        self.order = np.full(n, FAR_FUTURE)
        self.breakdown = np.full(n, FAR_FUTURE)
        self.broken = np.zeros(n, bool)


def breakdown_dates(params: Parameters, dob, order, draws) -> np.ndarray:
    """The day each adoption made on ``order`` breaks down (FAR_FUTURE if not before 18).

    The hazard is piecewise constant by year of age (``care.adoption_breakdown_hazard``); with
    ``draws`` unit exponentials, the breakdown comes when the cumulative hazard since the order
    reaches the draw.
    """
    hz = _breakdown_hazard_by_age(params)
    cum = np.r_[0.0, np.cumsum(hz)]  # cumulative hazard at exact ages 0..18
    dob = np.asarray(dob, "datetime64[D]")
    age0 = (np.asarray(order, "datetime64[D]") - dob).astype(np.int64) / DAYS
    target = np.interp(age0, np.arange(len(cum)), cum) + draws
    k = np.searchsorted(cum, target, side="right") - 1
    inside = k < len(hz)
    kk = np.minimum(k, len(hz) - 1)
    age = kk + (target - cum[kk]) / np.where(inside, hz[kk], 1.0)
    when = dob + np.ceil(np.where(inside, age, 0.0) * DAYS).astype(np.int64)
    when = np.maximum(when, np.asarray(order, "datetime64[D]") + 1)
    return np.where(inside & (when < add_years(dob, 18)), when, FAR_FUTURE)


def _breakdown_hazard_by_age(params: Parameters) -> np.ndarray:
    """Yearly hazard of adoption breakdown at each year of age 0 to 17."""
    h = params["care.adoption_breakdown_hazard"]
    age = np.arange(18)
    return np.select(
        [age < 4, age < 11], [float(h["under4"]), float(h["age4to10"])], float(h["age11to17"])
    )


def simulate_social_care(
    cohort: Cohort, geo: Geography, params: Parameters, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Referrals, section 47 enquiries, CP plans and periods of care for one shard."""
    risk = _Risk(cohort, geo, params)
    census_year = int(np.datetime64(cohort.census_date, "Y").astype(np.int64)) + 1970
    first_year = census_year
    if len(cohort):
        first_year = int(cohort.start.min().astype("datetime64[Y]").astype(np.int64)) + 1970
    # pre-birth referrals come up to a year before birth; conferences and plans run past the census
    holidays = england_bank_holidays(min(first_year, census_year) - 1, census_year + 5)
    cand_row, cand_date = _candidate_referrals(cohort, risk, params, rng)
    state = _Shard(cohort, risk, params, rng, holidays)
    out, case_end, adoptions = state.out, state.case_end, state.adoptions

    def funnel(rows, dates, uasc=False, breakdown=False):
        _funnel(state, rows, dates, uasc, breakdown)

    def breakdowns(rows, before):
        """Adoptions of ``rows`` that break down before ``before``: a referral into care on
        the breakdown day, or the day after the case then open closes."""
        due = adoptions.breakdown[rows]
        when = np.maximum(due, case_end[rows] + 1)
        go = (due < FAR_FUTURE) & (when < before)
        rows, when = rows[go], when[go]
        adoptions.breakdown[rows] = FAR_FUTURE
        adoptions.broken[rows] = True
        # one deferred past the 18th birthday, death or emigration does not happen
        limit = np.minimum(add_years(cohort.date_of_birth[rows], 18), cohort.follow_up_end[rows])
        ok = when < limit
        funnel(rows[ok], when[ok], breakdown=True)

    # UASC: one referral on arrival, straight into care
    uasc_rows = np.flatnonzero(cohort.uasc)
    funnel(uasc_rows, cohort.date_arrived[uasc_rows], uasc=True)

    order = np.lexsort((cand_date, cand_row))
    cand_row, cand_date = cand_row[order], cand_date[order]
    first = np.r_[0, np.flatnonzero(np.diff(cand_row)) + 1] if len(cand_row) else np.array([], int)
    rank = np.arange(len(cand_row)) - np.repeat(first, np.diff(np.r_[first, len(cand_row)]))
    for r in range(int(rank.max()) + 1 if len(rank) else 0):
        sel = rank == r
        rows, dates = cand_row[sel], cand_date[sel]
        breakdowns(rows, dates)
        keep = dates > case_end[rows]
        funnel(rows[keep], dates[keep])
    breakdowns(np.flatnonzero(adoptions.breakdown < FAR_FUTURE), FAR_FUTURE)
    return out.frames()


def _candidate_referrals(cohort, risk, params, rng):
    """Poisson referral candidates for each child and year of age, before the open-case rule."""
    rates = params["social_care.referral_rate_per_10k"]
    first_year = min(int(y) for y in rates)
    last_year = max(int(y) for y in rates)
    rate_by_year = np.array(
        [float(rates.get(y, rates.get(str(y), np.nan))) for y in range(first_year, last_year + 1)]
    )
    profile = np.asarray(params["social_care.referral_age_profile"], float)
    profile = profile / profile.mean()
    inflation = params["social_care.referral_open_case_inflation"]
    prebirth = params["social_care.prebirth_referral_share"]
    pre_lo, pre_hi = params["social_care.prebirth_referral_days"]
    births = np.flatnonzero(~cohort.uasc)
    dob = cohort.date_of_birth[births]
    start, end = cohort.start[births], cohort.follow_up_end[births]
    rows_out, dates_out = [], []
    for age in range(18):
        lo = np.maximum(add_years(dob, age), start)
        hi = np.minimum(add_years(dob, age + 1) - 1, end)
        exposure = (hi - lo).astype(np.int64) + 1
        ok = exposure > 0
        mid = lo + exposure // 2
        fy = np.clip(_fiscal_year(mid), first_year, last_year) - first_year
        lam = (
            rate_by_year[fy]
            / 10_000
            * profile[age]
            * inflation
            * (exposure / DAYS)
            * risk.rr[births]
            * risk.need[births]
        )
        lam = np.where(ok, lam, 0.0)
        k = rng.poisson(lam)
        idx = np.repeat(np.arange(len(births)), k)
        d = lo[idx] + (rng.random(len(idx)) * exposure[idx]).astype(np.int64)
        if age == 0:
            unborn = rng.random(len(idx)) < prebirth
            d = np.where(unborn, dob[idx] - rng.integers(pre_lo, pre_hi, len(idx)), d)
        rows_out.append(births[idx])
        dates_out.append(d)
    rows, dates = np.concatenate(rows_out), np.concatenate(dates_out)
    # repeat referrals cluster in time: each referral may bring a follow-up one within months,
    # which becomes a re-referral when the first case closed quickly
    rc = params["social_care.rereferral_cluster"]
    follow_up = rng.random(len(rows)) < rc["probability"]
    lo, hi = rc["window_days"]
    extra_dates = dates[follow_up] + rng.integers(lo, hi, follow_up.sum())
    extra_rows = rows[follow_up]
    in_time = extra_dates <= cohort.follow_up_end[extra_rows]
    in_age = extra_dates < add_years(cohort.date_of_birth[extra_rows], 18)
    keep = in_time & in_age
    return np.r_[rows, extra_rows[keep]], np.r_[dates, extra_dates[keep]]


class _Accumulator:
    def __init__(self):
        self.parts: dict[str, list[pd.DataFrame]] = {t.name: [] for t in TABLES}

    def add(self, name: str, frame: pd.DataFrame) -> None:
        if len(frame):
            self.parts[name].append(frame)

    def frames(self) -> dict[str, pd.DataFrame]:
        out = {}
        for t in TABLES:
            parts = self.parts[t.name]
            df = (
                pd.concat(parts, ignore_index=True)
                if parts
                else pd.DataFrame(columns=t.column_names)
            )
            key = [
                c for c in ("person_id", "referral_date", "start_date", "s47_start_date") if c in df
            ]
            out[t.name] = df.sort_values(key[:2], kind="stable").reset_index(drop=True)[
                t.column_names
            ]
        return out


def _factors(rng, params, in_need, assessed, uasc):
    """Factors identified at assessment, as comma-separated CIN codes (empty if not assessed)."""
    n = len(in_need)
    counts = params["social_care.assessment_factor_counts"]
    codes = np.array(list(counts))
    w = np.array([float(v) for v in counts.values()])
    fp = params["social_care.factors_per_assessment"]
    k = np.where(in_need, 1 + rng.poisson(fp["extra_mean"], n), 1)
    k_max = int(k.max()) if n else 0
    drawn = np.searchsorted(np.cumsum(w / w.sum()), rng.random((n, k_max)), side="right")
    drawn = np.minimum(drawn, len(codes) - 1)
    drawn = np.where(np.arange(k_max) < k[:, None], drawn, len(codes))  # pad beyond k
    drawn.sort(axis=1)
    dup = np.zeros_like(drawn, bool)
    dup[:, 1:] = drawn[:, 1:] == drawn[:, :-1]
    drawn[dup] = len(codes)
    drawn.sort(axis=1)
    labels = np.append(codes, "")
    out = labels[drawn[:, 0]].astype(object) if k_max else np.full(n, "", object)
    for j in range(1, k_max):
        nxt = labels[drawn[:, j]]
        out = np.where(nxt != "", out + "," + nxt, out)
    none = ~in_need & (rng.random(n) < fp["no_factor_share_not_in_need"])
    out = np.where(none, "21", out)
    out = np.where(uasc, "9A", out)
    return np.where(assessed, out, None)


class _Shard:
    """What the social-care pathway of one shard reads, and the per-child state it carries from
    one batch of referrals to the next (all arrays indexed by cohort row)."""

    def __init__(self, cohort: Cohort, risk, params: Parameters, rng, holidays):
        self.cohort, self.risk, self.params, self.rng = cohort, risk, params, rng
        self.holidays = holidays
        self.out = _Accumulator()
        self.case_end = np.full(len(cohort), FAR_PAST)  # the day each child's last case closed
        self.cp_count = np.zeros(len(cohort), np.int16)  # protection plans so far
        self.last_ref = np.full(len(cohort), FAR_PAST)  # the day of the last referral
        self.seq = np.zeros(len(cohort), np.int64)  # referrals so far (for referral ids)
        self.adoptions = _Adoptions(len(cohort))


def _funnel(state: _Shard, rows, dates, uasc, breakdown=False):
    """Run referrals (``rows[i]`` referred on ``dates[i]``) through the social-care pathway.

    A referral of a child adopted before it never leads to care, unless it is the breakdown of
    the adoption (``breakdown``): the child is in need and starts a period of care that day.

    Every date is one a local authority's case system could hold: the assessment that carries a
    section 47 enquiry starts by the enquiry's start and is authorised no earlier than its
    outcome (the initial conference); conferences, and the protection plans they start, are on
    working days; an assessment still open at a 31 March is within 45 working days of its start;
    nothing starts after the case closes, and a case closes no earlier than its last assessment,
    enquiry, plan or period of care ends.
    """
    n = len(rows)
    if n == 0:
        return
    cohort, risk, params, rng = state.cohort, state.risk, state.params, state.rng
    case_end, cp_count, last_ref, seq = state.case_end, state.cp_count, state.last_ref, state.seq
    out, holidays, adoptions = state.out, state.holidays, state.adoptions
    is_uasc = uasc
    uasc = np.full(n, is_uasc)
    breakdown = np.full(n, breakdown)
    census = cohort.census_date
    follow = cohort.follow_up_end[rows]
    dob = cohort.date_of_birth[rows]
    la = cohort.la_at(rows, np.maximum(dates, dob))
    score = risk.score[rows]
    seq[rows] += 1
    ref_id = cohort.person_id[rows] * 1000 + seq[rows]
    rereferral = (dates - last_ref[rows]).astype(np.int64) <= REREFERRAL_DAYS
    last_ref[rows] = dates

    # referral outcome: NFA, assessed not in need, or in need
    p_nfa = params["social_care.nfa_share"]
    p_nin = params["social_care.not_in_need_share"] / (1 - p_nfa)
    forced = uasc | breakdown  # straight into care
    nfa = (rng.random(n) < p_nfa) & ~forced
    logit = np.log((1 - p_nin) / p_nin) + params["social_care.in_need_risk_log_or"] * score
    in_need = forced | (~nfa & (rng.random(n) < 1 / (1 + np.exp(-logit))))
    assessed = ~nfa
    ad = params["social_care.assessment_days"]
    a_start = dates + rng.geometric(1 / (1 + ad["start_mean"]), n) - 1
    shape = ad["duration_shape"]
    a_working_days = np.minimum(
        rng.gamma(shape, ad["duration_mean"] / shape, n).astype(np.int64) + 1, ad["duration_max"]
    )

    source = _choice(rng, params["social_care.referral_source_shares"], n)
    need = _choice(rng, params["social_care.primary_need_shares"], n)
    if is_uasc:
        source[:] = "8"
        need[:] = "N8"
    else:
        dis = params["social_care.disability_need"]
        disabled = (cohort.child_risk[rows] > dis["child_risk_above"]) & (
            rng.random(n) < dis["share"]
        )
        need = np.where(disabled, "N2", need)
    need = np.where(in_need, need, None)

    # section 47 enquiry (from a strategy discussion on a working day), its outcome (the initial
    # conference, or the decision that none is needed) within the conference timescale, and the
    # child protection plan the conference starts
    p_s47 = params["social_care.s47_share_of_in_need"]
    p_s47 = p_s47 * np.where(cp_count[rows] > 0, params["social_care.previous_plan_s47_ratio"], 1.0)
    s47_risk = params["social_care.s47_risk"]
    p_s47 = p_s47 * np.exp(s47_risk["log_rr"] * score) / s47_risk["normaliser"]
    s47 = in_need & ~uasc & (need != "N2") & (rng.random(n) < p_s47)
    s47_delay = int(params["social_care.s47_start_days"])
    s47_date = add_working_days(np.maximum(dates + rng.integers(0, s47_delay, n), dob), 0, holidays)
    lo, hi = params["social_care.icpc_working_days"]
    s47_outcome = add_working_days(s47_date, rng.integers(lo, hi + 1, n), holidays)
    icpc = s47 & (rng.random(n) < params["social_care.icpc_share_of_s47"])
    icpc_date = s47_outcome
    cp = icpc & (rng.random(n) < params["social_care.cp_share_of_icpc"])
    cpd = params["social_care.cp_duration_years"]
    cp_len = np.maximum(
        rng.gamma(cpd["shape"], cpd["mean"] / cpd["shape"], n) * DAYS, cpd["min_days"]
    ).astype(np.int64)
    cp_start = icpc_date
    cp_end = cp_start + cp_len

    # the assessment: an enquiry is carried out by undertaking or continuing an assessment
    # (Working together 2018), which starts by the enquiry and concludes with its outcome
    lead = ad["s47_lead_max"]
    a_start = np.where(s47, np.minimum(np.maximum(a_start, s47_date - lead), s47_date), a_start)
    a_auth = add_working_days(a_start, a_working_days, holidays)
    a_auth = np.where(s47, np.maximum(a_auth, s47_outcome), a_auth)
    a_auth = _authorised_by_year_end(rng, params, a_start, a_auth, holidays)
    a_start = np.where(assessed, a_start, NAT)
    a_auth = np.where(assessed, a_auth, NAT)

    # entry to care
    age_ref = age_in_years(dob, np.maximum(dates, dob))
    band = np.select(
        [age_ref < 1, age_ref < 5, age_ref < 10, age_ref < 16, age_ref < 17], [0, 1, 2, 3, 4], 5
    )
    p_care = np.asarray(params["social_care.care_share_of_in_need"], float)[band]
    p_care = (
        p_care
        * np.exp(params["social_care.care_risk_log_rr"] * score)
        / params["social_care.care_risk_normaliser"]
    )
    male = cohort.sex[rows] == "M"
    p_care = p_care * np.where(male, params["social_care.care_male_rate_ratio"], 1.0)
    adopted = adoptions.order[rows] < dates
    p_care = np.minimum(p_care, params["social_care.care_share_cap"])
    care = forced | (in_need & ~adopted & (rng.random(n) < p_care))
    p_after_cp = (
        params["social_care.care_after_cp_share"] * params["social_care.care_after_cp_scale"]
    )
    after_cp = care & cp & (rng.random(n) < p_after_cp)
    after_cp &= ~breakdown
    care_delay = int(params["social_care.care_start_days"])
    uasc_delay = int(params["social_care.uasc_care_start_days"])
    care_start = np.where(
        uasc,
        dates + rng.integers(0, uasc_delay, n),
        np.where(
            after_cp,
            cp_start + (rng.random(n) * cp_len).astype(np.int64),
            np.maximum(dates, dob) + np.where(breakdown, 0, rng.integers(0, care_delay, n)),
        ),
    )
    eighteen = add_years(dob, 18)
    care &= (care_start < eighteen) & (care_start <= follow)
    cp_end = np.where(after_cp & care, np.minimum(cp_end, care_start), cp_end)

    # CIN plan: for children in need with neither a protection plan nor care, from soon after
    # the assessment, for at least the plan's shortest length
    cin_plan = in_need & ~cp & ~care & (rng.random(n) < params["social_care.cin_plan_share"])
    plan_start = a_auth + rng.integers(0, int(params["social_care.cin_plan_start_days"]), n)
    plan_min = params["social_care.cin_plan_min_days"]

    # CIN episode length by route
    dur = params["social_care.cin_duration_years"]
    base_len = np.where(need == "N2", dur["disability_mean"], dur["other_mean"])
    close = a_auth + (rng.exponential(1.0, n) * base_len * DAYS).astype(np.int64)
    close = np.where(
        cp,
        np.maximum(
            close, cp_end + (rng.exponential(dur["after_cp_mean"], n) * DAYS).astype(np.int64)
        ),
        close,
    )
    close = np.where(in_need, close, np.where(nfa, dates, a_auth))
    reason = np.where(nfa, "RC8", np.where(in_need, "RC7", "RC8")).astype(object)
    early = (
        ~nfa & ~in_need & (rng.random(n) < params["social_care.early_help_share_of_not_in_need"])
    )
    reason[early] = "RC9"

    # care periods
    ci = np.flatnonzero(care)
    if len(ci):
        periods = _care_periods(
            cohort, params, rng, rows[ci], care_start[ci], is_uasc, ref_id[ci], la[ci], after_cp[ci]
        )
        end_or_far = periods["end_date"].to_numpy("datetime64[D]").copy()
        open_ = np.isnat(end_or_far)
        # the case stays open a while after care ends (support after a return home), but a
        # young person's case closes at 18, when children's services' duty as for a child ends
        after = (rng.exponential(dur["after_care_mean"], len(ci)) * DAYS).astype(np.int64)
        closes = np.minimum(end_or_far + after, np.maximum(end_or_far, eighteen[ci]))
        close[ci] = np.where(open_, np.datetime64("2262-01-01"), closes)
        reason[ci] = periods["closure_reason"].to_numpy()
        out.add("care_periods", periods.drop(columns="closure_reason"))
        # an adoption order: the day the adoption breaks down, if it does (once per child)
        a = np.flatnonzero(np.isin(periods["reason_ended"].to_numpy(object), ADOPTION_ORDERS))
        who, order = rows[ci[a]], end_or_far[a]
        adoptions.order[who] = order
        draws = rng.exponential(1.0, len(a))
        due = breakdown_dates(params, cohort.date_of_birth[who], order, draws)
        adoptions.breakdown[who] = np.where(adoptions.broken[who], FAR_FUTURE, due)

    # a case closes no earlier than the work on it ends: the assessment, the enquiry's outcome,
    # the protection plan, the CIN plan's shortest length
    last = np.where(assessed, a_auth, dates)
    last = np.where(s47, np.maximum(last, s47_outcome), last)
    last = np.where(cp, np.maximum(last, cp_end), last)
    last = np.where(cin_plan, np.maximum(last, plan_start + plan_min), last)
    close = np.where(in_need, np.maximum(close, last), close)

    # death or emigration ends everything; the census date leaves cases open
    died = ~np.isnat(cohort.date_of_death[rows]) & (close > follow)
    reason[died] = "RC2"
    case_end[rows] = np.maximum(close, dates)
    # (a case closing on the census date itself, such as a referral closed with no further
    # action that day, is closed at the census)
    open_case = (np.minimum(close, follow) >= census) & (close > census)
    close = np.minimum(close, follow)
    # work cut short by death or emigration ends with the case
    ended = ~open_case
    a_start = np.where(ended & assessed, np.minimum(a_start, close), a_start)
    a_auth = np.where(ended & assessed, np.minimum(a_auth, close), a_auth)
    cin_plan &= plan_start < close
    close = np.where(open_case, NAT, close)
    reason = np.where(open_case, None, reason)
    plan_start = np.where(cin_plan, plan_start, NAT)

    out.add(
        "referrals",
        pd.DataFrame(
            {
                "referral_id": ref_id,
                "person_id": cohort.person_id[rows],
                "la_code": la,
                "referral_date": dates,
                "referral_source": source,
                "primary_need": need,
                "nfa": nfa,
                "assessed": assessed,
                "assessment_start": a_start,
                "assessment_authorised": a_auth,
                "in_need": in_need,
                "factors": _factors(rng, params, in_need, assessed, uasc),
                "cin_plan_start": plan_start,
                "cin_plan_end": np.where(cin_plan, close, NAT),
                "closure_date": close,
                "closure_reason": reason,
                "rereferral": rereferral,
                "uasc": uasc,
            }
        ),
    )

    s = np.flatnonzero(s47 & (s47_date <= follow))
    out.add(
        "section47",
        pd.DataFrame(
            {
                "person_id": cohort.person_id[rows[s]],
                "referral_id": ref_id[s],
                "la_code": la[s],
                "s47_start_date": s47_date[s],
                "icpc_date": np.where(icpc[s] & (icpc_date[s] <= follow[s]), icpc_date[s], NAT),
            }
        ),
    )

    c = np.flatnonzero(cp & (cp_start <= follow))
    cat = _choice(rng, params["social_care.cp_category_shares"], len(c))
    latest = np.where(
        rng.random(len(c)) < params["social_care.cp_latest_category_same_share"],
        cat,
        _choice(rng, params["social_care.cp_category_shares"], len(c)),
    )
    end_c = np.minimum(cp_end[c], follow[c])  # a plan cut short by death or emigration
    out.add(
        "cp_plans",
        pd.DataFrame(
            {
                "person_id": cohort.person_id[rows[c]],
                "referral_id": ref_id[c],
                "la_code": la[c],
                "start_date": cp_start[c],
                "end_date": np.where(end_c >= census, NAT, end_c),
                "category": cat,
                "latest_category": latest,
                "number_of_previous_plans": cp_count[rows[c]],
            }
        ),
    )
    cp_count[rows[c]] += 1


def _march_31_ending(dates: np.ndarray) -> np.ndarray:
    """The 31 March that ends the year (1 April to 31 March) each date falls in."""
    years = (_fiscal_year(dates) - 1970).astype("datetime64[Y]")
    april = years.astype("datetime64[M]") + 3
    return april.astype("datetime64[D]") - 1


def _authorised_by_year_end(rng, params, start, authorised, holidays):
    """Authorisation dates, with no assessment still open at a 31 March past the time limit.

    An assessment that would still be open at the 31 March after its start, having started
    more than ``limit_working_days`` working days before it (counted as the DfE's query 8670Q
    counts them), is authorised instead in the last ``window_working_days`` working days of
    March.
    """
    ye = params["social_care.assessment_year_end"]
    ref = _march_31_ending(start)
    limit = add_working_days(ref, -(int(ye["limit_working_days"]) - 1), holidays)
    late = (authorised > ref) & (start < limit)
    back = rng.integers(0, int(ye["window_working_days"]) + 1, len(start))
    year_end = add_working_days(previous_working_day(ref, holidays), -back, holidays)
    return np.where(late, np.maximum(year_end, start), authorised)


def _care_periods(cohort, params, rng, rows, start, uasc, ref_id, la, after_cp):
    """A period of care from ``start`` for each child: route out, end date and reason."""
    n = len(rows)
    dob = cohort.date_of_birth[rows]
    age = age_in_years(dob, start)
    er = params["social_care.exit_routes"]
    routes = np.array(er["routes"] + ["age_assessment"])
    if uasc:
        probs = np.tile(np.r_[er["uasc"], 0.0], (n, 1))
        aa = params["social_care.uasc_age_assessment_share"]
        probs[:, -1] = aa
    else:
        bands = np.select([age < 1, age < 5, age < 10, age < 16], [0, 1, 2, 3], 4)
        table = np.array(
            [er[k] + [0.0] for k in ("under1", "age1to4", "age5to9", "age10to15", "age16plus")]
        )
        probs = table[bands]
    probs = probs / probs.sum(axis=1, keepdims=True)
    route = routes[
        (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, len(routes) - 1)
    ]

    eighteen = add_years(dob, 18)
    dur = params["social_care.exit_duration_years"]
    years = np.zeros(n)
    for r, (mean, sigma) in dur.items():
        m = route == r
        mu = np.log(mean) - sigma**2 / 2
        years[m] = rng.lognormal(mu, sigma, m.sum())
    end = start + np.maximum((years * DAYS).astype(np.int64), 1)
    indep = route == "independent"
    il = params["social_care.independent_living"]
    lo_age, hi_age = il["age"]
    indep_age = add_years(dob, lo_age) + (rng.random(n) * (hi_age - lo_age) * DAYS).astype(np.int64)
    end = np.where(indep, np.maximum(indep_age, start + il["min_days_in_care"]), end)
    aa = route == "age_assessment"
    aa_lo, aa_hi = params["social_care.uasc_age_assessment_days"]
    end = np.where(aa, start + rng.integers(aa_lo, aa_hi, n), end)
    at18 = (route == "age18") | (end >= eighteen)
    end = np.where(at18, eighteen, end)
    route = np.where(at18 & ~aa, "age18", route)

    reason = np.empty(n, dtype=object)
    closure = np.empty(n, dtype=object)
    route_reasons = params["social_care.exit_route_reasons"]
    for r, rc in ROUTE_CLOSURE.items():
        m = route == r
        reason[m] = _choice(rng, route_reasons[r], m.sum())
        closure[m] = rc
    m = route == "age18"
    reason[m] = _choice(rng, params["social_care.age18_reasons"], m.sum())
    to_adults = rng.random(m.sum()) < params["social_care.age18_adult_services_share"]
    closure[m] = np.where(to_adults, "RC6", "RC7")

    follow = cohort.follow_up_end[rows]
    cut = end > follow
    died = cut & (follow == cohort.date_of_death[rows])
    emig = cut & (follow == cohort.date_emigrated[rows])
    reason[died], closure[died] = "E2", "RC2"
    reason[emig], closure[emig] = "E16", "RC7"
    end = np.minimum(end, follow)
    open_ = end >= cohort.census_date
    return pd.DataFrame(
        {
            "period_id": cohort.person_id[rows] * 100 + (ref_id % 1000),
            "person_id": cohort.person_id[rows],
            "referral_id": ref_id,
            "la_code": la,
            "start_date": start,
            "end_date": np.where(open_, NAT, end),
            "reason_ended": np.where(open_, None, reason),
            "route": route,
            "uasc": np.full(n, uasc),
            "age_at_start": age.astype(np.int8),
            "after_cp_plan": after_cp,
            "closure_reason": np.where(open_, None, closure),
        }
    )

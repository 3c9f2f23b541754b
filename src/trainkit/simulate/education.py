"""Schooling in state schools: enrolments, January censuses, absence, exclusions, KS2 and KS4.

One call of :func:`simulate_education` gives the education truth tables of a shard. The child's
school career runs from the September after their fourth birthday (reception, NC year 0) to the end
of year 11, within their observation (birth or arrival to ``follow_up_end``) and up to the census
date; children who never attend a state school (independent schools) have no records, and a few
leave for elective home education.

The module works year by year over academic years (never child by child). Each year it updates the
latent processes behind free school meals (FSM) and special educational needs (SEN), draws absence
per term and suspensions and permanent exclusions, and moves children between schools. Key stage 2
and 4 results come from explicit linear models whose planted coefficients live in
``params/education.yaml`` and are documented in ``docs/planted_effects.md``.

Calibration: FSM and SEN are latent thresholds whose cut-offs are set so that a national population
(deprivation deciles uniform, latents standard normal) meets each year's published share; absence
and exclusion intercepts are solved the same way. The spread of the latents is measured on the
shard's own cohort, their mean is not: a shard of a deprived LA keeps its higher FSM, SEN and
absence.
Social-care terms are left out of that calibration (they touch 1-4% of pupils).

Social-care status on a date is hierarchical, as in DfE's Outcomes for children in need: looked
after (``cla``) if a period of care is open; else on a child protection plan (``cpp``); else in
need (``cin``) if an in-need referral is open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from ..parameters import Parameters
from .context import DECILE_MEAN, DECILE_SD, Cohort, age_in_years, uniform_dates
from .schema import Column, Table

SECTION = "education"
FAR = np.datetime64("2200-01-01", "D")  # "never" for internal date arithmetic
TERMS = ("autumn", "spring", "summer")
SETTINGS = ("primary", "secondary", "special", "ap")
PRIMARY, SECONDARY, SPECIAL, AP = range(4)
N_YEAR_GROUPS = 12  # reception (0) to year 11
SOCIAL_CARE_GROUPS = ("cin", "cpp", "cla")  # status codes 1, 2, 3 (0 = none)
SEN_PROVISION_CODES = ("N", "K", "E", "A", "P", "S")
NEED_CODES = tuple("SPLD MLD SLD PMLD SEMH SLCN HI VI MSI PD ASD OTH NSA".split())
ENTRY_REASONS = ("start", "transition", "move", "la_move", "care", "special", "exclusion", "return")
# when two events fall on one day for a pupil, the one with the highest priority is kept
EVENT_PRIORITY = {
    "start": 0,
    "move": 1,
    "la_move": 2,
    "care": 3,
    "transition": 4,
    "return": 5,
    "exclusion": 6,
    "special": 7,
}
# structure of the school year (definitions, not parameters)
YEAR_START_MONTH = 9  # academic years run 1 September to 31 August
FIRST_SECONDARY_YEAR = 7  # NC year in which secondary school starts
KS2_YEAR = 6  # KS2 tests at the end of year 6 (KS4 exams at the end of education.final_nc_year)
LAESTAB_LA_FACTOR = 10_000  # LAESTAB = LA number * 10000 + establishment number
MAX_SHARE = 0.95  # numerical guard on shares built from products of parameters
SESSIONS_PER_DAY = 2  # a school day is two sessions (morning and afternoon) in the absence data
ATTAINMENT8_MAX = 90.0  # Attainment 8: ten slots, English and maths double-weighted, grade 9 top

_NEEDS = {
    "SPLD": "Specific learning difficulty",
    "MLD": "Moderate learning difficulty",
    "SLD": "Severe learning difficulty",
    "PMLD": "Profound and multiple learning difficulty",
    "SEMH": "Social, emotional and mental health",
    "SLCN": "Speech, language and communication needs",
    "HI": "Hearing impairment",
    "VI": "Visual impairment",
    "MSI": "Multi-sensory impairment",
    "PD": "Physical disability",
    "ASD": "Autistic spectrum disorder",
    "OTH": "Other difficulty or disability",
    "NSA": "SEN support but no specialist assessment of type of need (from 2015)",
}
_REASONS = {
    "PP": "Physical assault against a pupil",
    "PA": "Physical assault against an adult",
    "VP": "Verbal abuse or threatening behaviour against a pupil",
    "VA": "Verbal abuse or threatening behaviour against an adult",
    "OW": "Use or threat of use of an offensive weapon or prohibited item (from 2020/21)",
    "BU": "Bullying",
    "RA": "Racist abuse",
    "LG": "Abuse against sexual orientation and gender identity (from 2020/21)",
    "DS": "Abuse relating to disability (from 2020/21)",
    "SM": "Sexual misconduct",
    "DA": "Drug and alcohol related",
    "DM": "Damage",
    "TH": "Theft",
    "DB": "Persistent or general disruptive behaviour (from 2020/21)",
    "MT": "Inappropriate use of social media or online technology (from 2020/21)",
    "PD": "Persistent disruptive behaviour (before 2020/21)",
    "OT": "Other (before 2020/21)",
}

TABLES = (
    Table(
        "school_enrolments",
        "State-school enrolments: one row per pupil per school spell (a new row at each change of "
        "school). Spells of one pupil are contiguous: each starts the day after the last ended.",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("school_id", "int32", "LAESTAB-style school number: LA number * 10000 + "
                   "establishment number (2xxx primary, 4xxx secondary, 7xxx special, 11xx AP).",
                   nullable=False),
            Column("la_code", "int16", "DfE LA number of the school."),
            Column("phase", "string", "Phase of the school.",
                   {"primary": "Primary school", "secondary": "Secondary school",
                    "special": "Special school",
                    "ap": "Alternative provision / pupil referral unit"}),
            Column("entry_date", "date", "First day on roll.", nullable=False),
            Column("leaving_date", "date",
                   "Last day on roll; empty if on roll at the census date."),
            Column("entry_reason", "string", "Why the pupil joined this school (truth only).",
                   {"start": "Started school (reception, or first school after arriving)",
                    "transition": "Moved to secondary school at the start of year 7",
                    "move": "Moved school within the phase (pupil or family mobility)",
                    "la_move": "Moved school after the family moved to another LA",
                    "care": "Moved school on entering care",
                    "special": "Moved to a special school (EHC plan)",
                    "exclusion": "Placed in alternative provision after a permanent exclusion",
                    "return": "Returned to a mainstream school from alternative provision"}),
        ),
        key=("person_id", "entry_date"),
    ),
    Table(
        "pupil_census",
        "January (spring) school census: one row per pupil on roll on census day, per year.",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("academic_year", "int16", "Academic year by its ending year (2024 = 2023/24).",
                   nullable=False),
            Column("census_date", "date", "Census day: the third Thursday in January."),
            Column("school_id", "int32", "School on roll on census day (LAESTAB-style)."),
            Column("la_code", "int16", "DfE LA number of the school."),
            Column("nc_year", "int8", "National curriculum year (0 = reception, 1-11)."),
            Column("fsm_eligible", "bool", "Known to be eligible for free school meals."),
            Column("sen_provision", "string",
                   "SEN provision. A, P and S are used up to 2013/14 and K and E from 2014/15.",
                   {"N": "No special educational need", "K": "SEN support (from 2015)",
                    "E": "Education, health and care plan (from 2015)",
                    "A": "School Action (before 2015)", "P": "School Action Plus (before 2015)",
                    "S": "Statement of SEN (before 2015)"}),
            Column("sen_primary_need", "string",
                   "Primary type of SEN; empty with no SEN and, before 2015, at School Action.",
                   _NEEDS),
            Column("idaci_decile", "int8",
                   "Deprivation decile of the home area on census day (1 = most deprived)."),
        ),
        key=("person_id", "academic_year"),
    ),
    Table(
        "absence",
        "Termly absence: one row per pupil per term on roll (summer term 2020 not collected).",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("academic_year", "int16", "Academic year by its ending year.", nullable=False),
            Column("term", "string", "Term.", {t: f"{t.title()} term" for t in TERMS}),
            Column("school_id", "int32", "School on roll at the pupil's last day in the term."),
            Column("sessions_possible", "int16", "Possible sessions (half days) on roll."),
            Column("authorised_absence", "int16", "Sessions of authorised absence."),
            Column("unauthorised_absence", "int16", "Sessions of unauthorised absence."),
        ),
        key=("person_id", "academic_year", "term"),
    ),
    Table(
        "exclusions",
        "Suspensions (fixed-period exclusions) and permanent exclusions.",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("academic_year", "int16", "Academic year by its ending year.", nullable=False),
            Column("school_id", "int32", "Excluding school."),
            Column("start_date", "date", "First day of the exclusion."),
            Column("category", "string", "Kind of exclusion.",
                   {"SUSP": "Suspension (fixed period)", "PERM": "Permanent exclusion"}),
            Column("sessions", "int16", "Length of a suspension in sessions; empty if permanent."),
            Column("reason", "string", "DfE reason code (2020/21 codes from 2020/21).", _REASONS),
        ),
    ),
    Table(
        "ks2",
        "Key stage 2 test results: pupils on the year 6 January census and on roll at the May "
        "tests. None in 2020 and 2021 (cancelled). Scaled scores are given for every year as if "
        "the 2016 scale applied (before 2016 results were reported as levels).",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("academic_year", "int16", "Academic year of the tests.", nullable=False),
            Column("school_id", "int32", "School on roll at the tests."),
            Column("la_code", "int16", "DfE LA number of the school."),
            Column("read_scaled", "int16", "Reading scaled score, 80-120."),
            Column("mat_scaled", "int16", "Mathematics scaled score, 80-120."),
            Column("read_expected", "bool", "Reading at the expected standard (100+)."),
            Column("mat_expected", "bool", "Mathematics at the expected standard (100+)."),
        ),
        key=("person_id",),
    ),
    Table(
        "ks4",
        "Key stage 4 (GCSE) results: pupils on the year 11 January census and on roll at the June "
        "exams. Attainment 8 is given on the post-2017 scale for every year.",
        (
            Column("person_id", "int64", "Person.", nullable=False),
            Column("academic_year", "int16", "Academic year of the exams.", nullable=False),
            Column("school_id", "int32", "School on roll at the exams."),
            Column("la_code", "int16", "DfE LA number of the school."),
            Column("attainment8", "float32", "Attainment 8 score, 0-90, one decimal."),
            Column("basics_94", "bool", "Grade 4 or above in English and mathematics."),
            Column("ebacc_entered", "bool", "Entered for the English Baccalaureate."),
        ),
        key=("person_id",),
    ),
)  # fmt: skip


def simulate_education(
    cohort: Cohort,
    social_care: dict[str, pd.DataFrame],
    params: Parameters,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    """Simulate the state-school careers of a shard's children.

    Args:
        cohort: the shard's people.
        social_care: at least ``referrals`` (person_id, referral_date, in_need, closure_date),
            ``cp_plans`` (person_id, start_date, end_date) and ``care_periods`` (person_id,
            start_date, end_date); open episodes have NaT end dates.
        params: the model's parameters (section ``education``).
        rng: this module's random generator for the shard.

    Returns:
        One DataFrame per table of :data:`TABLES`, with the declared columns in order.

    Example:
        >>> from trainkit.parameters import load_parameters
        >>> from trainkit.simulate.toy import toy_cohort, toy_social_care
        >>> c = toy_cohort(500, seed=3)
        >>> out = simulate_education(c, toy_social_care(c), load_parameters(),
        ...                          np.random.default_rng(0))
        >>> sorted(out) == sorted(t.name for t in TABLES)
        True
    """
    return _EducationRun(cohort, social_care, _EducationParameters(params), rng).run()


# --------------------------------------------------------------------------------------------------
# parameters


class _EducationParameters:
    """Typed access to ``education.*`` parameters, with year series merged and profiles rescaled."""

    def __init__(self, params: Parameters):
        self._params = params

    def __getitem__(self, name: str):
        return self._params[f"{SECTION}.{name}"]

    def by_year(self, years: np.ndarray, *names: str) -> np.ndarray:
        """Values of year-indexed parameters (merged) for ``years``, interpolated, ends held."""
        merged: dict[int, float] = {}
        for name in names:
            merged.update({int(k): float(v) for k, v in self[name].items()})
        keys = np.array(sorted(merged))
        return np.interp(years, keys, np.array([merged[k] for k in keys]))

    def profile(self, name: str) -> np.ndarray:
        """A relative profile over NC years R..11, rescaled to mean 1."""
        values = np.asarray(self[name], dtype=float)
        if values.shape != (N_YEAR_GROUPS,):
            raise ValueError(f"parameter {SECTION}.{name} needs {N_YEAR_GROUPS} values (R..11)")
        return values / values.mean()

    def social_care(self, name: str) -> np.ndarray:
        """A per-status array indexed by status code (0 none, 1 cin, 2 cpp, 3 cla)."""
        values = self[name]
        return np.array([0.0] + [float(values[g]) for g in SOCIAL_CARE_GROUPS])

    def month_day(self, name: str) -> tuple[int, int]:
        month, day = str(self[name]).split("-")
        return int(month), int(day)


# --------------------------------------------------------------------------------------------------
# helpers


def _date(year, month, day) -> np.ndarray:
    """Dates from (array-like) year, month and day."""
    months = (np.asarray(year, dtype=np.int64) - 1970) * 12 + (np.asarray(month) - 1)
    return months.astype("datetime64[M]").astype("datetime64[D]") + (np.asarray(day) - 1)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> np.datetime64:
    """The ``nth`` ``weekday`` (Monday = 0) of ``month`` in ``year``."""
    first = _date(year, month, 1)
    first_weekday = (first.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return first + (weekday - first_weekday) % 7 + 7 * (nth - 1)


def _academic_year(dates: np.ndarray) -> np.ndarray:
    """Academic year (by its ending year) containing each date."""
    months = dates.astype("datetime64[M]").astype(np.int64)
    return months // 12 + 1970 + (months % 12 >= YEAR_START_MONTH - 1)


def _year_start(academic_year) -> np.ndarray:
    """First day (1 September) of an academic year given by its ending year."""
    return _date(np.asarray(academic_year) - 1, YEAR_START_MONTH, 1)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p / (1.0 - p))


_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / np.sqrt(2.0 * np.pi)


def _bisect(f, target: np.ndarray, lo: float = -20.0, hi: float = 20.0) -> np.ndarray:
    """Element-wise root of increasing ``f(x) = target`` by bisection."""
    target = np.asarray(target, dtype=float)
    lo_a, hi_a = np.full(target.shape, lo), np.full(target.shape, hi)
    for _ in range(60):
        mid = (lo_a + hi_a) / 2
        below = f(mid) < target
        lo_a, hi_a = np.where(below, mid, lo_a), np.where(below, hi_a, mid)
    return (lo_a + hi_a) / 2


def _logit_normal_intercept(mean: np.ndarray, sd: float) -> np.ndarray:
    """``a`` such that E[expit(a + sd * Z)] = mean, Z standard normal."""
    nodes = sd * _HERMITE_NODES
    return _bisect(lambda a: _expit(a[..., None] + nodes) @ _HERMITE_WEIGHTS, mean)


def _unauthorised_intercept(alpha: np.ndarray, sd: float, slope: float, share) -> np.ndarray:
    """``g`` such that the session-weighted mean of expit(g + slope * dev) equals ``share``."""
    nodes = sd * _HERMITE_NODES
    p = _expit(alpha[..., None] + nodes) * _HERMITE_WEIGHTS
    denominator = p.sum(axis=-1)
    return _bisect(
        lambda g: (p * _expit(g[..., None] + slope * nodes)).sum(axis=-1) / denominator,
        np.broadcast_to(share, alpha.shape),
    )


_ERF = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _ERF(np.asarray(x, dtype=float) / np.sqrt(2.0)).astype(float))


def _capped_lognormal_intercept(mean: np.ndarray, sd: float, cap: float) -> np.ndarray:
    """``a`` such that E[min(exp(a + sd * Z), cap)] = mean, Z standard normal."""
    log_cap = np.log(cap)

    def capped_mean(a: np.ndarray) -> np.ndarray:
        below = np.exp(a + sd**2 / 2) * _normal_cdf((log_cap - a - sd**2) / sd)
        return below + cap * (1 - _normal_cdf((log_cap - a) / sd))

    return _bisect(capped_mean, mean, lo=-40.0, hi=np.log(cap))


def _inverse_normal(p: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    flat = np.clip(np.asarray(p, dtype=float).ravel(), 1e-9, 1 - 1e-9)
    return np.array([inv(x) for x in flat]).reshape(np.shape(p))


def _lookup(codes: np.ndarray, mapping: dict, default: float = 0.0) -> np.ndarray:
    """``mapping[code]`` for each code (default for codes not in the mapping)."""
    unique, inverse = np.unique(codes, return_inverse=True)
    return np.array([float(mapping.get(str(u), default)) for u in unique])[inverse]


def _choice(rng: np.random.Generator, shares: dict, n: int, codes: tuple[str, ...]) -> np.ndarray:
    """Indices into ``codes`` drawn with the (normalised) ``shares``."""
    p = np.array([float(shares.get(c, 0.0)) for c in codes])
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(codes) - 1)


def _spell_key(rows: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Sortable key of (pupil, date) for the spell lookup."""
    offset = 1_000_000  # days are within +-1e6 of 1970, so the key is monotone in (row, day)
    day = days.astype("datetime64[D]").astype(np.int64) + offset
    return rows.astype(np.int64) * 2 * offset + day


def _school_day(day: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Move Saturdays to Friday and Sundays to Monday, staying within ``[lo, hi]``."""
    weekday = (day.astype(np.int64) + 3) % 7  # Monday = 0; 1970-01-01 was a Thursday
    shifted = day + np.where(weekday == 5, -1, np.where(weekday == 6, 1, 0))
    return np.clip(shifted, lo, np.maximum(lo, hi))


def _z_deprivation(decile: np.ndarray) -> np.ndarray:
    """Standardised deprivation, higher = more deprived."""
    return (DECILE_MEAN - decile.astype(float)) / DECILE_SD


class _SocialCareIndex:
    """Social-care status of every cohort member on a date (0 none, 1 cin, 2 cpp, 3 cla)."""

    def __init__(self, cohort: Cohort, frames: dict[str, pd.DataFrame]):
        self.n = len(cohort)
        index = pd.Index(cohort.person_id)
        referrals = frames["referrals"]
        referrals = referrals[referrals["in_need"].astype(bool)]
        self.spans = [
            self._spans(index, referrals, "referral_date", "closure_date"),
            self._spans(index, frames["cp_plans"], "start_date", "end_date"),
            self._spans(index, frames["care_periods"], "start_date", "end_date"),
        ]
        self.care_starts = self.spans[2][:2]

    @staticmethod
    def _spans(index: pd.Index, frame: pd.DataFrame, start: str, end: str):
        rows = index.get_indexer(frame["person_id"].to_numpy())
        starts = frame[start].to_numpy(dtype="datetime64[D]")
        ends = frame[end].to_numpy(dtype="datetime64[D]")
        ends = np.where(np.isnat(ends), FAR, ends)
        keep = (rows >= 0) & ~np.isnat(starts)
        return rows[keep], starts[keep], ends[keep]

    def status(self, on: np.datetime64) -> np.ndarray:
        """Hierarchical status of everyone on ``on``: cla > cpp > cin > none."""
        out = np.zeros(self.n, np.int8)
        for code, (rows, starts, ends) in enumerate(self.spans, start=1):
            open_ = (starts <= on) & (on < ends)
            out[rows[open_]] = code  # later (higher) codes overwrite lower ones
        return out


@dataclass
class _Rows:
    """Columns collected year by year, concatenated at the end."""

    parts: dict[str, list[np.ndarray]]

    @classmethod
    def of(cls, *names: str) -> _Rows:
        return cls({n: [] for n in names})

    def add(self, **columns: np.ndarray) -> None:
        for name, values in columns.items():
            self.parts[name].append(np.asarray(values))

    def get(self, name: str, dtype=None) -> np.ndarray:
        parts = self.parts[name]
        if not parts:
            return np.array([], dtype=dtype or float)
        out = np.concatenate(parts)
        return out.astype(dtype) if dtype is not None else out


# --------------------------------------------------------------------------------------------------
# the simulation


class _EducationRun:
    """State of one shard's education simulation, advanced one academic year at a time."""

    def __init__(
        self,
        cohort: Cohort,
        social_care: dict[str, pd.DataFrame],
        p: _EducationParameters,
        rng: np.random.Generator,
    ):
        self.c, self.p, self.rng = cohort, p, rng
        self.n = n = len(cohort)
        self.census = np.datetime64(cohort.census_date, "D")
        self.census_ay = int(_academic_year(np.array([self.census]))[0])
        self.sc = _SocialCareIndex(cohort, social_care)
        self.male = cohort.sex == "M"
        self.adv = cohort.adversity.astype(float)
        self.risk = cohort.child_risk.astype(float)
        z0 = _z_deprivation(cohort.deprivation)
        self.latent_cov = np.cov(np.vstack([z0, self.adv, self.risk])) if n > 1 else np.eye(3)

        # per-person state
        self.ability = rng.standard_normal(n)
        self.u_fsm = rng.standard_normal(n)
        self.v_sen = rng.standard_normal(n)
        self.absence_child = rng.standard_normal(n) * p["absence_logit_sd"]["child"]
        self.exclusion_child = rng.standard_normal(n) * p["exclusion_frailty_sd"]["child"]
        self.e_need = _choice(rng, p["sen_need_shares_ehc"], n, NEED_CODES)
        self.k_need = _choice(rng, p["sen_need_shares_support"], n, NEED_CODES)
        self.u_special = rng.random(n)
        self.special_start = np.full(n, FAR)
        self.ap_start = np.full(n, FAR)
        self.ap_end = np.full(n, FAR)
        self.excluded_permanently = np.zeros(n, bool)
        self._schooling_window()

        # key-stage snapshots (filled in the years of NC years 5, 6, 10 and 11)
        self.snap = {
            ks: {
                "on_census": np.zeros(n, bool),
                "fsm": np.zeros(n, bool),
                "sen": np.zeros(n, np.int8),
                "dep": np.zeros(n, np.int8),
                "status": np.zeros(n, np.int8),
                "possible": np.zeros(n),
                "absent": np.zeros(n),
            }
            for ks in (2, 4)
        }
        self.census_rows = _Rows.of("row", "year", "day", "nc", "fsm", "prov", "need", "dep")
        self.absence_rows = _Rows.of("row", "year", "term", "day", "possible", "auth", "unauth")
        self.exclusion_rows = _Rows.of("row", "year", "day", "perm", "sessions", "reason")
        self.move_events = _Rows.of("row", "day")

    # -- who is in a state school, and when ------------------------------------------------------

    def _schooling_window(self) -> None:
        """First and last day on a state-school roll (``in_state`` False for never)."""
        c, p, rng, n = self.c, self.p, self.rng, self.n
        dob = np.asarray(c.date_of_birth, dtype="datetime64[D]")
        born_ay = _academic_year(dob)
        self.reception_ay = born_ay + p["school_start_age"] + 1
        self.final_ay = self.reception_ay + p["final_nc_year"]
        reception_start = _year_start(self.reception_ay)
        start = np.asarray(c.start, dtype="datetime64[D]")
        late = start > reception_start
        lo, hi = p["mid_year_entry_delay_days"]
        delay = rng.integers(lo, hi + 1, n)
        self.first_day = np.where(late, start + delay, reception_start)
        self.y11_leave = _date(self.final_ay, *p.month_day("year11_leaving_day"))
        self.last_day = np.minimum(self.y11_leave, np.asarray(c.follow_up_end, "datetime64[D]"))
        young_enough = ~late | (age_in_years(dob, start) < p["max_entry_age"])
        shares = np.asarray(p["independent_share_by_deprivation_decile"], dtype=float)
        born_here = np.isnat(np.asarray(c.date_arrived, dtype="datetime64[D]"))
        independent = born_here & (rng.random(n) < shares[c.deprivation.astype(int) - 1])
        self.in_state = (
            young_enough
            & ~independent
            & (self.first_day <= self.last_day)
            & (self.first_day <= self.census)
        )

    def _setting(self, rows: np.ndarray, nc: np.ndarray, on: np.ndarray) -> np.ndarray:
        """Setting code (primary, secondary, special, AP) of ``rows`` on dates ``on``."""
        code = np.where(nc >= FIRST_SECONDARY_YEAR, SECONDARY, PRIMARY)
        code = np.where(self.special_start[rows] <= on, SPECIAL, code)
        in_ap = (self.ap_start[rows] <= on) & (on < self.ap_end[rows])
        return np.where(in_ap, AP, code)

    # -- calibration tables ----------------------------------------------------------------------

    def _latent_sd(self, weights: dict, extra_variance: float = 0.0) -> float:
        """SD of ``w_dep * z_dep + w_adv * adversity + w_risk * child_risk`` plus extra variance."""
        w = np.array(
            [
                weights.get("deprivation", 0.0),
                weights.get("adversity", 0.0),
                weights.get("child_risk", 0.0),
            ]
        )
        return float(np.sqrt(w @ self.latent_cov @ w + extra_variance))

    def _state_school_threshold(
        self, weights: dict, extra_variance: float, share: np.ndarray
    ) -> np.ndarray:
        """Threshold ``t`` with P(latent > t) = ``share`` among state-school pupils nationally.

        Deprivation deciles are uniform nationally (thinned by the independent-school shares);
        within a decile the rest of the latent is normal, with moments from the cohort's
        covariance. The shard's own deciles do not enter, so a deprived LA keeps a higher share.
        """
        w = np.array([weights.get(k, 0.0) for k in ("deprivation", "adversity", "child_risk")])
        cov = self.latent_cov
        beta = w[1:] @ cov[1:, 0] / cov[0, 0]  # regression of the rest of the latent on z_dep
        sd = np.sqrt(w[1:] @ cov[1:, 1:] @ w[1:] - beta**2 * cov[0, 0] + extra_variance)
        mean = (w[0] + beta) * _z_deprivation(np.arange(1, 11))
        weight = 1 - np.asarray(self.p["independent_share_by_deprivation_decile"], dtype=float)
        weight = weight / weight.sum()

        def below(t: np.ndarray) -> np.ndarray:
            return _normal_cdf((t[..., None] - mean) / sd) @ weight

        return _bisect(below, 1 - np.asarray(share, dtype=float))

    def _calibrate(self, years: np.ndarray) -> None:
        p = self.p
        self.years = years
        # FSM: eligible when the propensity exceeds the year's threshold
        # (the published shares are of state-school pupils, who are more deprived than all children)
        wf = p["fsm_weights"]
        fsm_share = p.by_year(years, "fsm_share_before_2015", "fsm_share_by_year") / 100
        self.fsm_threshold = self._state_school_threshold(wf, wf["transient"] ** 2, fsm_share)

        # SEN: thresholds by year, NC year and sex (0 girls, 1 boys)
        ws = p["sen_weights"]
        sen_sd = self._latent_sd(ws, ws["transient"] ** 2)
        ehc = p.by_year(years, "sen_ehc_share_by_year") / 100
        support = p.by_year(years, "sen_without_statement_before_2015", "sen_support_share_by_year")
        support = support / 100
        male_share = p["male_share_of_pupils"]

        def by_sex(boys_share: float) -> np.ndarray:
            return np.array([(1 - boys_share) / (1 - male_share), boys_share / male_share])

        boys = p["sen_boys_share"]
        p_ehc = (
            ehc[:, None, None]
            * p.profile("sen_ehc_age_profile")[None, :, None]
            * by_sex(boys["ehc"])[None, None, :]
        )
        p_support = (
            support[:, None, None]
            * p.profile("sen_support_age_profile")[None, :, None]
            * by_sex(boys["support"])[None, None, :]
        )
        p_any = np.minimum(p_ehc + p_support, MAX_SHARE)
        plus = p["school_action_plus_share"]
        self.sen_t_ehc = sen_sd * _inverse_normal(1 - p_ehc)
        self.sen_t_any = sen_sd * _inverse_normal(1 - p_any)
        p_plus = np.minimum(p_ehc + plus * p_support, MAX_SHARE)
        self.sen_t_plus = sen_sd * _inverse_normal(1 - p_plus)
        self.sen_share = {"ehc": p_ehc, "support": p_any - p_ehc}

        # absence: logit intercepts by year and NC year, unauthorised-share intercepts
        wa, sda = p["absence_weights"], p["absence_logit_sd"]
        self.absence_sd = self._latent_sd(
            wa, sda["child"] ** 2 + sda["year"] ** 2 + sda["term"] ** 2
        )
        rate = p.by_year(years, "absence_rate_other_years", "absence_rate_by_year") / 100
        self.absence_rate = rate[:, None] * p.profile("absence_year_group_ratio")[None, :]
        self.absence_alpha = _logit_normal_intercept(self.absence_rate, self.absence_sd)
        share = p.by_year(years, "unauthorised_share_of_absence")[:, None]
        self.absence_gamma = _unauthorised_intercept(
            self.absence_alpha, self.absence_sd, p["unauthorised_slope"], share
        )

        # exclusions: suspension log-rate intercepts (mean of a capped lognormal) and permanent
        # exclusion intercepts (mean of 1 - exp(-rate)), by year and NC year
        we, sde = p["exclusion_weights"], p["exclusion_frailty_sd"]
        self.exclusion_sd = self._latent_sd(we, sde["child"] ** 2 + sde["year"] ** 2)
        susp = p.by_year(years, "suspension_rate_other_years", "suspension_rate_by_year") / 100
        perm_years = ("permanent_exclusion_rate_other_years", "permanent_exclusion_rate_by_year")
        perm = p.by_year(years, *perm_years) / 100
        gamma = p["permanent_exclusion_risk_exponent"]
        self.suspension_cap = float(p["suspension_max_per_year"])
        self.suspension_log_rate = _capped_lognormal_intercept(
            susp[:, None] * p.profile("suspension_year_group_ratio")[None, :],
            self.exclusion_sd,
            self.suspension_cap,
        )
        perm_sd = gamma * self.exclusion_sd
        nodes = perm_sd * _HERMITE_NODES
        self.permanent_log_rate = _bisect(
            lambda b: -np.expm1(-np.exp(b[..., None] + nodes)) @ _HERMITE_WEIGHTS,
            perm[:, None] * p.profile("permanent_exclusion_year_group_ratio")[None, :],
            lo=-40.0,
        )
        ratios = p["exclusion_boys_rate_ratio"]
        self.exclusion_sex_log = {
            kind: np.log(by_sex(r * male_share / (r * male_share + 1 - male_share)))
            for kind, r in ratios.items()
        }

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> dict[str, pd.DataFrame]:
        first_year = int(self.reception_ay[self.in_state].min()) if self.in_state.any() else 0
        years = np.arange(min(first_year, self.census_ay), self.census_ay + 1)
        self._calibrate(years)
        for i, year in enumerate(years):
            self._year(i, int(year))
        self.ap_end = np.minimum(
            self.ap_end, np.where(self.special_start > self.ap_start, self.special_start, FAR)
        )
        self._enrolments()
        return {
            "school_enrolments": self._enrolment_table(),
            "pupil_census": self._census_table(),
            "absence": self._absence_table(),
            "exclusions": self._exclusion_table(),
            "ks2": self._ks2_table(),
            "ks4": self._ks4_table(),
        }

    def _year(self, i: int, year: int) -> None:
        """Simulate academic year ``year`` for every child on roll at some time in it."""
        p, rng = self.p, self.rng
        rho_f, rho_s = p["fsm_persistence"], p["sen_persistence"]
        self.u_fsm = rho_f * self.u_fsm + np.sqrt(1 - rho_f**2) * rng.standard_normal(self.n)
        self.v_sen = rho_s * self.v_sen + np.sqrt(1 - rho_s**2) * rng.standard_normal(self.n)

        year_start, year_end = _year_start(year), _year_start(year + 1) - 1
        active = self.in_state & (self.first_day <= min(year_end, self.census))
        active &= self.last_day >= year_start
        rows = np.flatnonzero(active)
        if rows.size == 0:
            return
        nc = year - self.reception_ay[rows]

        # leaving for elective home education
        hazard = p["elective_home_education_annual_rate"]
        rate = np.where(nc >= FIRST_SECONDARY_YEAR, hazard["secondary"], hazard["primary"])
        leaves = rng.random(rows.size) < rate
        lo = np.maximum(self.first_day[rows[leaves]], year_start)
        hi = np.minimum(self.last_day[rows[leaves]], year_end)
        self.last_day[rows[leaves]] = uniform_dates(rng, lo, np.maximum(lo, hi))

        first, last = self.first_day[rows], np.minimum(self.last_day[rows], self.census)
        spec = p["spring_census_day"]
        census_day = _nth_weekday(year, spec["month"], spec["weekday"], spec["nth"])
        on_census = (first <= census_day) & (census_day <= last)
        terms = self._terms(year)
        mid_spring = terms[1][0] + (terms[1][1] - terms[1][0]) // 2
        status_spring = self.sc.status(mid_spring)[rows]

        # deprivation, FSM and SEN at the January census
        dep = self.c.deprivation_at(rows, np.full(rows.size, census_day))
        z = _z_deprivation(dep)
        wf = p["fsm_weights"]
        fsm_s = wf["deprivation"] * z + wf["adversity"] * self.adv[rows]
        fsm = fsm_s + wf["transient"] * self.u_fsm[rows] > self.fsm_threshold[i]
        ws = p["sen_weights"]
        sen_s = (
            ws["child_risk"] * self.risk[rows]
            + ws["adversity"] * self.adv[rows]
            + ws["deprivation"] * z
            + ws["transient"] * self.v_sen[rows]
            + p.social_care("sen_social_care_shift")[status_spring]
        )
        male = self.male[rows].astype(int)
        prov = (sen_s > self.sen_t_any[i, nc, male]).astype(np.int8)
        prov += sen_s > self.sen_t_ehc[i, nc, male]
        prov[self.special_start[rows] <= census_day] = 2  # special-school places come with a plan
        self._record_census(rows, year, census_day, nc, fsm, prov, sen_s, dep, on_census, i, male)

        # EHC plans for needs usually met in special schools: move at the next September
        destined = self.u_special[rows] < _lookup(
            np.array(NEED_CODES)[self.e_need[rows]], p["special_school_share_of_ehc_by_need"]
        )
        new_special = (prov == 2) & destined & (self.special_start[rows] == FAR)
        new_special &= nc < p["final_nc_year"]
        self.special_start[rows[new_special]] = _year_start(year + 1)

        status_march = self.sc.status(_date(year, 3, 31))[rows]
        for ks, final_nc in ((2, KS2_YEAR), (4, p["final_nc_year"])):
            at = on_census & (nc == final_nc)
            snap = self.snap[ks]
            snap["on_census"][rows[at]] = True
            snap["fsm"][rows[at]] = fsm[at]
            snap["sen"][rows[at]] = prov[at]
            snap["dep"][rows[at]] = dep[at]
            snap["status"][rows[at]] = status_march[at]

        self._absence(i, year, rows, nc, first, last, z, terms)
        self._exclusions(i, year, rows, nc, first, last, z, status_spring, terms)
        self._mobility(year, rows, first, last, z, status_spring, terms)

    def _terms(self, year: int) -> list[tuple[np.datetime64, np.datetime64]]:
        out = []
        for term in TERMS:
            (m0, d0), (m1, d1) = (
                tuple(int(x) for x in s.split("-")) for s in self.p["term_dates"][term]
            )
            y0 = year - 1 if m0 >= 9 else year
            y1 = year - 1 if m1 >= 9 else year
            out.append((_date(y0, m0, d0), _date(y1, m1, d1)))
        return out

    def _record_census(self, rows, year, census_day, nc, fsm, prov, sen_s, dep, on_census, i, male):
        """Store the census rows of the year, with era-appropriate SEN codes."""
        p = self.p
        old = year <= p["sen_last_year_of_old_codes"]
        code = prov.astype(np.int8)  # 0 N, 1 K, 2 E
        need = np.where(prov == 2, self.e_need[rows], np.where(prov == 1, self.k_need[rows], -1))
        if old:
            plus = sen_s > self.sen_t_plus[i, nc, male]
            code = np.where(prov == 2, 5, np.where(prov == 1, np.where(plus, 4, 3), 0))
            need = np.where(code == 3, -1, need)  # no need type recorded at School Action
            nsa = NEED_CODES.index("NSA")
            need = np.where(need == nsa, NEED_CODES.index("OTH"), need)
        keep = on_census
        self.census_rows.add(
            row=rows[keep],
            year=np.full(keep.sum(), year),
            day=np.full(keep.sum(), census_day),
            nc=nc[keep],
            fsm=fsm[keep],
            prov=code[keep],
            need=need[keep],
            dep=dep[keep],
        )

    def _absence(self, i, year, rows, nc, first, last, z, terms) -> None:
        """Sessions possible and absent per term (binomial with a logit-normal rate)."""
        p, rng = self.p, self.rng
        wa, sda = p["absence_weights"], p["absence_logit_sd"]
        child = (
            wa["deprivation"] * z
            + wa["adversity"] * self.adv[rows]
            + wa["child_risk"] * self.risk[rows]
            + self.absence_child[rows]
            + sda["year"] * rng.standard_normal(rows.size)
            + _lookup(self.c.ethnicity[rows], p["absence_ethnicity_logit"])
        )
        not_collected = [str(t) for t in p["absence_terms_not_collected"].get(year, [])]
        sc_abs = p.social_care("absence_social_care_logit")
        sc_unauth = p.social_care("unauthorised_social_care_logit")
        setting_logit = np.array(
            [0.0, 0.0, p["absence_setting_logit"]["special"], p["absence_setting_logit"]["ap"]]
        )
        for t, (term, (start, end)) in enumerate(zip(TERMS, terms, strict=True)):
            lo, hi = np.maximum(first, start), np.minimum(last, end)
            days = (hi - lo).astype(np.int64) + 1
            full_days = int((end - start).astype(np.int64)) + 1
            base_lo, base_hi = p["sessions_possible_per_term"][term]
            base = rng.integers(base_lo, base_hi + 1)
            possible = np.rint(base * np.clip(days, 0, None) / full_days).astype(np.int64)
            tau = sda["term"] * rng.standard_normal(rows.size)
            if term in not_collected:
                continue
            on = possible > 0
            r = rows[on]
            mid = start + (end - start) // 2
            status = self.sc.status(mid)[r]
            setting = self._setting(r, nc[on], np.full(r.size, mid))
            dev = child[on] + tau[on] + sc_abs[status] + setting_logit[setting]
            rate = _expit(self.absence_alpha[i, nc[on]] + dev)
            absent = rng.binomial(possible[on], rate)
            q = _expit(
                self.absence_gamma[i, nc[on]] + p["unauthorised_slope"] * dev + sc_unauth[status]
            )
            unauth = rng.binomial(absent, q)
            self.absence_rows.add(
                row=r,
                year=np.full(r.size, year),
                term=np.full(r.size, t),
                day=hi[on],
                possible=possible[on],
                auth=absent - unauth,
                unauth=unauth,
            )
            for ks, final_nc in ((2, KS2_YEAR), (4, p["final_nc_year"])):
                # the whole of the year before and the autumn and spring terms of the final year
                counted = (nc[on] == final_nc - 1) | ((nc[on] == final_nc) & (t < 2))
                np.add.at(self.snap[ks]["possible"], r[counted], possible[on][counted])
                np.add.at(self.snap[ks]["absent"], r[counted], absent[counted])

    def _exclusions(self, i, year, rows, nc, first, last, z, status, terms) -> None:
        """Suspensions (Poisson with a lognormal frailty) and at most one permanent exclusion."""
        p, rng = self.p, self.rng
        term_start, term_end = terms[0][0], terms[2][1]
        lo, hi = np.maximum(first, term_start), np.minimum(last, term_end)
        days = np.clip((hi - lo).astype(np.int64) + 1, 0, None)
        share = days / (int((term_end - term_start).astype(np.int64)) + 1)
        we = p["exclusion_weights"]
        eta = (
            we["deprivation"] * z
            + we["adversity"] * self.adv[rows]
            + we["child_risk"] * self.risk[rows]
            + self.exclusion_child[rows]
            + p["exclusion_frailty_sd"]["year"] * rng.standard_normal(rows.size)
        )
        male = self.male[rows].astype(int)
        setting = self._setting(rows, nc, np.maximum(lo, np.minimum(hi, terms[1][0])))
        setting_log = np.array(
            [
                0.0,
                0.0,
                p["exclusion_setting_log_ratio"]["special"],
                p["exclusion_setting_log_ratio"]["ap"],
            ]
        )
        log_rate = (
            self.suspension_log_rate[i, nc]
            + self.exclusion_sex_log["suspension"][male]
            + eta
            + p.social_care("exclusion_social_care_log_ratio")[status]
            + setting_log[setting]
        )
        count = rng.poisson(np.minimum(np.exp(log_rate), self.suspension_cap) * share)
        who = np.repeat(np.arange(rows.size), count)
        day = _school_day(
            uniform_dates(rng, lo[who], np.maximum(lo[who], hi[who])), lo[who], hi[who]
        )
        lengths = p["suspension_length_days"]
        length_i = _choice(
            rng,
            dict(zip(map(str, lengths["days"]), lengths["shares"], strict=True)),
            who.size,
            tuple(map(str, lengths["days"])),
        )
        length = np.asarray(lengths["days"], dtype=float)[length_i]
        sessions = np.rint(SESSIONS_PER_DAY * length).astype(np.int64)
        reasons = tuple(_REASONS)
        reason = _choice(rng, p["suspension_reason_shares"], who.size, reasons)
        self.exclusion_rows.add(
            row=rows[who],
            year=np.full(who.size, year),
            day=day,
            perm=np.zeros(who.size, bool),
            sessions=sessions,
            reason=reason,
        )

        gamma = p["permanent_exclusion_risk_exponent"]
        log_perm = (
            self.permanent_log_rate[i, nc]
            + self.exclusion_sex_log["permanent"][male]
            + gamma * eta
            + p.social_care("permanent_exclusion_social_care_log_ratio")[status]
        )
        prob = 1 - np.exp(-np.exp(log_perm) * share)
        perm = (rng.random(rows.size) < prob) & ~self.excluded_permanently[rows] & (days > 0)
        perm &= setting != AP
        r = rows[perm]
        day = _school_day(uniform_dates(rng, lo[perm], hi[perm]), lo[perm], hi[perm])
        reason = _choice(rng, p["permanent_exclusion_reason_shares"], r.size, reasons)
        self.exclusion_rows.add(
            row=r,
            year=np.full(r.size, year),
            day=day,
            perm=np.ones(r.size, bool),
            sessions=np.zeros(r.size, np.int64),
            reason=reason,
        )
        self.excluded_permanently[r] = True
        self.ap_start[r] = day + p["ap_start_delay_days"]
        returns = rng.random(r.size) < p["ap_return_to_mainstream_probability"]
        self.ap_end[r] = np.where(returns, _year_start(year + 1), FAR)

    def _mobility(self, year, rows, first, last, z, status, terms) -> None:
        """Mid-phase school moves not caused by an address move."""
        p, rng = self.p, self.rng
        lo, hi = np.maximum(first, terms[0][0]), np.minimum(last, terms[2][1])
        days = np.clip((hi - lo).astype(np.int64) + 1, 0, None)
        share = days / (int((terms[2][1] - terms[0][0]).astype(np.int64)) + 1)
        w = p["school_move_weights"]
        logit = (
            _logit(p["school_move_annual_probability"])
            + w["adversity"] * self.adv[rows]
            + w["deprivation"] * z
            + p.social_care("school_move_social_care_log_odds")[status]
        )
        moves = rng.random(rows.size) < _expit(logit) * share
        day = uniform_dates(rng, lo[moves], np.maximum(lo[moves], hi[moves]))
        self.move_events.add(row=rows[moves], day=day)

    # -- enrolments ------------------------------------------------------------------------------

    def _enrolments(self) -> None:
        """Turn the school-changing events into spells and a (row, date) -> school lookup."""
        p, rng, c = self.p, self.rng, self.c
        end = np.minimum(self.last_day, self.census)
        state = self.in_state
        events: list[tuple[np.ndarray, np.ndarray, int]] = []

        def add(mask: np.ndarray, days: np.ndarray, reason: str) -> None:
            ok = mask & state & (days > self.first_day) & (days <= end)
            events.append((np.flatnonzero(ok), days[ok], ENTRY_REASONS.index(reason)))

        everyone = np.arange(self.n)
        events.append((everyone[state], self.first_day[state], ENTRY_REASONS.index("start")))
        y7 = _year_start(self.reception_ay + FIRST_SECONDARY_YEAR)
        in_ap_y7 = (self.ap_start <= y7) & (y7 < self.ap_end)
        add((self.special_start > y7) & ~in_ap_y7, y7, "transition")
        add(self.special_start < FAR, self.special_start, "special")
        add(self.ap_start < FAR, self.ap_start, "exclusion")
        add(self.ap_end < FAR, self.ap_end, "return")

        # address moves: a new school with a probability that depends on whether the LA changed
        lo, hi = p["school_move_delay_days"]
        for k in range(c.move_dates.shape[1]):
            moved = np.asarray(c.move_dates[:, k], dtype="datetime64[D]")
            has = ~np.isnat(moved)
            changed = c.la_codes[:, k] != c.la_codes[:, k + 1]
            prob = np.where(
                changed,
                p["school_move_on_la_change_probability"],
                p["school_move_on_local_address_move_probability"],
            )
            take = has & (rng.random(self.n) < prob)
            day = np.where(has, moved, FAR) + rng.integers(lo, hi + 1, self.n)
            day = self._out_of_august(day)
            add(take & changed, day, "la_move")
            add(take & ~changed, day, "move")

        # entering care
        care_rows, care_start = self.sc.care_starts
        take = rng.random(care_rows.size) < p["school_move_on_care_entry_probability"]
        day = self._out_of_august(care_start + rng.integers(lo, hi + 1, care_rows.size))
        ok = take & state[care_rows] & (day > self.first_day[care_rows]) & (day <= end[care_rows])
        events.append((care_rows[ok], day[ok], ENTRY_REASONS.index("care")))

        moves_row, moves_day = self.move_events.get("row", np.int64), self.move_events.get("day")
        if moves_row.size:
            moves_day = moves_day.astype("datetime64[D]")
            ok = (moves_day > self.first_day[moves_row]) & (moves_day <= end[moves_row])
            events.append((moves_row[ok], moves_day[ok], ENTRY_REASONS.index("move")))

        row = np.concatenate([e[0] for e in events]).astype(np.int64)
        day = np.concatenate([e[1] for e in events]).astype("datetime64[D]")
        reason = np.concatenate([np.full(e[0].size, e[2]) for e in events]).astype(np.int8)
        priority = np.array([EVENT_PRIORITY[r] for r in ENTRY_REASONS])[reason]
        order = np.lexsort((priority, day, row))
        row, day, reason = row[order], day[order], reason[order]
        # one event per pupil and day: keep the last (the structural ones sort later)
        last_of_day = np.ones(row.size, bool)
        last_of_day[:-1] = (row[1:] != row[:-1]) | (day[1:] != day[:-1])
        row, day, reason = row[last_of_day], day[last_of_day], reason[last_of_day]

        nc = _academic_year(day) - self.reception_ay[row]
        setting = self._setting(row, nc, day)
        la = c.la_at(row, day).astype(np.int64)
        counts = p["schools_per_la"]
        starts = p["estab_number_start"]
        n_schools = np.array([counts[s] for s in SETTINGS])[setting]
        first_number = np.array([starts[s] for s in SETTINGS])[setting]
        k = rng.integers(0, np.iinfo(np.int64).max, row.size) % n_schools
        school = la * LAESTAB_LA_FACTOR + first_number + k
        same_pupil = np.zeros(row.size, bool)
        same_pupil[1:] = row[1:] == row[:-1]
        prev_school = np.roll(school, 1)
        clash = same_pupil & (school == prev_school) & (n_schools > 1)
        shift = 1 + rng.integers(0, np.iinfo(np.int64).max, row.size) % np.maximum(n_schools - 1, 1)
        other = la * LAESTAB_LA_FACTOR + first_number + (k + shift) % n_schools
        school = np.where(clash, other, school)

        next_same = np.zeros(row.size, bool)
        next_same[:-1] = row[1:] == row[:-1]
        leave = np.where(next_same, np.roll(day, -1) - 1, self.last_day[row])
        on_roll_at_census = ~next_same & (self.last_day[row] >= self.census)
        leave = np.where(on_roll_at_census, np.datetime64("NaT"), leave)
        self.spells = {
            "row": row,
            "school": school,
            "la": la,
            "setting": setting,
            "entry": day,
            "leave": leave,
            "reason": reason,
        }
        self._spell_key = _spell_key(row, day)

    @staticmethod
    def _out_of_august(day: np.ndarray) -> np.ndarray:
        """Moves in the summer holiday (August) take effect on 1 September."""
        august = YEAR_START_MONTH - 2  # month index, January = 0
        in_august = (day.astype("datetime64[M]").astype(np.int64) % 12) == august
        return np.where(in_august & (day < FAR), day.astype("datetime64[M]") + 1, day).astype(
            "datetime64[D]"
        )

    def school_on(self, rows: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Index of the spell of ``rows[i]`` on ``days[i]`` (the pupil must be on roll)."""
        key = _spell_key(rows, days)
        return np.searchsorted(self._spell_key, key, side="right") - 1

    # -- tables ----------------------------------------------------------------------------------

    def _enrolment_table(self) -> pd.DataFrame:
        s = self.spells
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[s["row"]],
                "school_id": s["school"].astype(np.int32),
                "la_code": s["la"].astype(np.int16),
                "phase": np.array(SETTINGS)[s["setting"]],
                "entry_date": s["entry"],
                "leaving_date": s["leave"],
                "entry_reason": np.array(ENTRY_REASONS)[s["reason"]],
            }
        )

    def _census_table(self) -> pd.DataFrame:
        r = self.census_rows
        row, day = r.get("row", np.int64), r.get("day").astype("datetime64[D]")
        spell = self.school_on(row, day)
        need = r.get("need", np.int64)
        need_code = np.where(need >= 0, np.array(NEED_CODES, dtype=object)[need], None)
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[row],
                "academic_year": r.get("year", np.int16),
                "census_date": day,
                "school_id": self.spells["school"][spell].astype(np.int32),
                "la_code": self.spells["la"][spell].astype(np.int16),
                "nc_year": r.get("nc", np.int8),
                "fsm_eligible": r.get("fsm", bool),
                "sen_provision": np.array(SEN_PROVISION_CODES)[r.get("prov", np.int64)],
                "sen_primary_need": need_code,
                "idaci_decile": r.get("dep", np.int8),
            }
        )

    def _absence_table(self) -> pd.DataFrame:
        r = self.absence_rows
        row = r.get("row", np.int64)
        spell = self.school_on(row, r.get("day").astype("datetime64[D]"))
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[row],
                "academic_year": r.get("year", np.int16),
                "term": np.array(TERMS)[r.get("term", np.int64)],
                "school_id": self.spells["school"][spell].astype(np.int32),
                "sessions_possible": r.get("possible", np.int16),
                "authorised_absence": r.get("auth", np.int16),
                "unauthorised_absence": r.get("unauth", np.int16),
            }
        )

    def _exclusion_table(self) -> pd.DataFrame:
        r = self.exclusion_rows
        row, day = r.get("row", np.int64), r.get("day").astype("datetime64[D]")
        year, perm = r.get("year", np.int16), r.get("perm", bool)
        order = np.lexsort((day, row))
        row, day, year, perm = row[order], day[order], year[order], perm[order]
        spell = self.school_on(row, day)
        reason = r.get("reason", np.int64)[order]
        old_codes = self.p["exclusion_reason_codes_before_2021"]
        new_table = np.array(tuple(_REASONS))
        old_table = np.array([old_codes.get(code, code) for code in _REASONS])
        old = year < self.p["first_year_of_new_reason_codes"]
        codes = np.where(old, old_table[reason], new_table[reason])
        sessions = pd.array(r.get("sessions", np.int64)[order], dtype="Int16")
        sessions[perm] = pd.NA
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[row],
                "academic_year": year,
                "school_id": self.spells["school"][spell].astype(np.int32),
                "start_date": day,
                "category": np.where(perm, "PERM", "SUSP"),
                "sessions": sessions,
                "reason": codes,
            }
        )

    # -- key stages --------------------------------------------------------------------------

    def _key_stage_rows(self, ks: int, nc_year: int, day_param: str) -> tuple[np.ndarray, ...]:
        """Pupils with a result: on the January census of the year and on roll on the test day."""
        year = self.reception_ay + nc_year
        month, day = self.p.month_day(day_param)
        test_day = _date(year, month, day)
        ok = self.snap[ks]["on_census"] & (self.first_day <= test_day)
        ok &= (test_day <= self.last_day) & (test_day <= self.census)
        rows = np.flatnonzero(ok)
        return rows, year[rows], test_day[rows]

    def _covariates(self, ks: int, rows: np.ndarray, years: np.ndarray, nc_last: int) -> dict:
        """Terms of the key-stage models, as recorded (absence in percent of possible sessions)."""
        snap = self.snap[ks]
        possible = snap["possible"][rows]
        absence = 100 * snap["absent"][rows] / np.maximum(possible, 1)
        i = years - self.years[0]
        expected = np.where(possible > 0, absence, 100 * self.absence_rate[i, nc_last])
        status = snap["status"][rows]
        sen = snap["sen"][rows]
        return {
            "female": ~self.male[rows],
            "deprivation_decile": snap["dep"][rows].astype(float),
            "adversity": self.adv[rows],
            "child_risk": self.risk[rows],
            "fsm": snap["fsm"][rows],
            "sen_support": sen == 1,
            "ehc_plan": sen == 2,
            "absence_pct": expected,
            "cin": status == 1,
            "cpp": status == 2,
            "cla": status == 3,
            "ability": self.ability[rows],
        }

    def _centres(self, years: np.ndarray, nc_last: int) -> dict:
        """National means of the recorded terms, so that the intercept is the national mean."""
        i = years - self.years[0]
        male = self.p["male_share_of_pupils"]
        sen = {k: v[i, nc_last] @ np.array([1 - male, male]) for k, v in self.sen_share.items()}
        fsm_share = self.p.by_year(years, "fsm_share_before_2015", "fsm_share_by_year") / 100
        absence = 100 * (self.absence_rate[i, nc_last] + self.absence_rate[i, nc_last - 1]) / 2
        return {
            "female": 1 - male,
            "deprivation_decile": DECILE_MEAN,
            "fsm": fsm_share,
            "sen_support": sen["support"],
            "ehc_plan": sen["ehc"],
            "absence_pct": absence,
        }

    def _linear(self, coefficients: dict, x: dict, centres: dict) -> np.ndarray:
        out = np.zeros(len(x["female"]))
        for name, value in x.items():
            out += float(coefficients[name]) * (value - centres.get(name, 0.0))
        return out

    def _ks2_table(self) -> pd.DataFrame:
        p, rng = self.p, self.rng
        rows, years, test_day = self._key_stage_rows(2, KS2_YEAR, "ks2_test_day")
        keep = ~np.isin(years, np.asarray(p["ks2_cancelled_years"], dtype=int))
        rows, years, test_day = rows[keep], years[keep], test_day[keep]
        x = self._covariates(2, rows, years, KS2_YEAR)
        centres = self._centres(years, KS2_YEAR)
        lo, hi = p["ks2_scaled_score_range"]
        expected = p["ks2_expected_standard"]
        eth = _lookup(self.c.ethnicity[rows], p["ks4_att8_ethnicity"]) * p["ks2_ethnicity_scale"]
        scores = {}
        models = (("read", "ks2_reading_coefficients"), ("mat", "ks2_maths_coefficients"))
        for subject, name in models:
            coefficients = p[name]
            uniq, inverse = np.unique(years, return_inverse=True)
            share = self._ks2_share(subject, uniq)
            # scores are rounded, so a raw score from expected - 0.5 up meets the standard
            mean = (expected - 0.5 + p["ks2_scaled_score_sd"] * _inverse_normal(share))[inverse]
            raw = mean + self._linear(coefficients, x, centres) + eth
            raw += coefficients["noise_sd"] * rng.standard_normal(rows.size)
            scores[subject] = np.clip(np.rint(raw), lo, hi).astype(np.int16)
        spell = self.school_on(rows, test_day)
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[rows],
                "academic_year": years.astype(np.int16),
                "school_id": self.spells["school"][spell].astype(np.int32),
                "la_code": self.spells["la"][spell].astype(np.int16),
                "read_scaled": scores["read"],
                "mat_scaled": scores["mat"],
                "read_expected": scores["read"] >= expected,
                "mat_expected": scores["mat"] >= expected,
            }
        )

    def _ks2_share(self, subject: str, years: np.ndarray) -> np.ndarray:
        series = self.p["ks2_expected_by_year"][subject]
        keys = np.array(sorted(int(k) for k in series))
        values = np.array([float(series[k]) for k in sorted(series, key=int)])
        return np.interp(years, keys, values) / 100

    def _ks4_table(self) -> pd.DataFrame:
        p, rng = self.p, self.rng
        final = p["final_nc_year"]
        rows, years, exam_day = self._key_stage_rows(4, final, "ks4_exam_day")
        x = self._covariates(4, rows, years, final)
        coefficients = {name: p[f"ks4_att8_{name}"] for name in x}
        raw = (
            p.by_year(years, "attainment8_by_year")
            + self._linear(coefficients, x, self._centres(years, final))
            + _lookup(self.c.ethnicity[rows], p["ks4_att8_ethnicity"])
            + p["ks4_att8_noise_sd"] * rng.standard_normal(rows.size)
        )
        att8 = np.clip(np.round(raw, 1), 0.0, ATTAINMENT8_MAX)
        basics = p["ks4_basics_logistic"]
        basics_94 = rng.random(rows.size) < _expit((att8 - basics["midpoint"]) / basics["scale"])
        eb = p["ks4_ebacc_logistic"]
        ebacc = rng.random(rows.size) < _expit(
            eb["intercept"] + eb["per_10_points"] * (att8 - eb["centre"]) / 10
        )
        spell = self.school_on(rows, exam_day)
        return pd.DataFrame(
            {
                "person_id": self.c.person_id[rows],
                "academic_year": years.astype(np.int16),
                "school_id": self.spells["school"][spell].astype(np.int32),
                "la_code": self.spells["la"][spell].astype(np.int16),
                "attainment8": att8.astype(np.float32),
                "basics_94": basics_94,
                "ebacc_entered": ebacc,
            }
        )

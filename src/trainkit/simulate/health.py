"""Health: birth records and hospital admissions over childhood, the truth behind HES APC.

Two truth tables per shard:

- ``births``: one row per child born in England (arrivals have none): gestation, birth weight,
  mother's age, neonatal care, delivery method and the birth spell's discharge date.
- ``admissions``: admitted-patient-care *spells* from the end of the birth spell (or arrival) to the
  18th birthday, death or the census date. The HES episode-level extract is derived from these.

How admissions are generated (all vectorised, no loop over children):

1. Each child's observed time is cut into child-years (one per year of age). In each, the expected
   number of admissions of each *rate group* (unintentional injury, maltreatment, assault,
   undetermined intent, self-harm, other adversity-related, mental health, emergency medical,
   elective) is the catalogue rate for the age and sex, times a calendar trend, times the child's
   relative risk: ``deprivation_rr`` (current address), ``adversity_rr`` (family), ``child_risk_rr``
   (own), the LA's injury ratio (unintentional injuries) and a preterm-birth ratio (emergency
   medical, infancy). A person-level gamma frailty makes admissions cluster within children.
2. Windows from social care add admissions on top: the 12 months before a child protection plan
   (physical abuse, neglect, sexual abuse, multiple) or an entry to care (``pre_protection_rr``),
   and time looked after (``in_care_rr``). The extra rate is ``(rr - 1)`` times the child's rate,
   so the rate inside a window is exactly ``rr`` times the rate outside it.
3. Relative risks are normalised so that the England-wide average equals the catalogue rate:
   deprivation, adversity and the child's risk analytically against the reference population
   (uniform deprivation deciles, standard-normal latents with the population module's
   deprivation-adversity correlation), the social-care windows from the shard itself. Unintentional
   injuries are rescaled each financial year so that all admissions meeting the OHID injury
   indicator's definition match the published rate (``injury_indicator_by_year``).
4. Counts are Poisson; each admission then gets a rate group and catalogue entry (diagnoses, kind of
   admission), a date (uniform within the child-year, seasonal for some diagnoses, within days of
   the birth spell for neonatal readmissions), a length of stay, an ADMIMETH code and, for some, an
   adverse-social-circumstance Z code as a further secondary diagnosis.
5. Deaths after 28 days of age are often preceded by a final admission. Spells never overlap:
   an admission starting before the previous one ended is dropped; one still open at the census
   date is dropped; one open at death ends on the day of death (``died_in_hospital``).

Every rate, share and ratio is in ``params/health.yaml`` with its source; the planted effects are
described in ``docs/planted_effects.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..parameters import Parameters
from .context import NAT, Cohort, add_years, age_in_years, uniform_dates
from .schema import Column, Table

# Definitions, not parameters: WHO gestation bands, the decile scale, HES code lists.
PRETERM_WEEKS = 37  # born before 37 completed weeks
VERY_PRETERM_WEEKS = 32
EXTREMELY_PRETERM_WEEKS = 28
LOW_BIRTH_WEIGHT_G = 2500
FIRST_GESTATION_WEEK = 22
LAST_GESTATION_WEEK = 44
DECILES = np.arange(1, 11)
INJURY_INDICATOR_MAX_AGE = 14  # OHID indicator 90284 covers children aged 0-14
YOUNG_MOTHER_AGE = 20  # the "under 20" and "over 39" maternal-age groups of preterm_maternal_age_or
OLDER_MOTHER_AGE = 39
PER_10K = 10_000.0
FIRST_FY_MONTH = 4  # financial years start in April
MONTHS = 12
SEXES = ("M", "F")

RATE_GROUPS = (
    "injury_unintentional", "maltreatment", "assault", "undetermined_intent", "self_harm",
    "adversity_other", "mental_health", "medical_emergency", "elective",
)  # fmt: skip
CAUSE_GROUPS = {
    "injury_unintentional": "Unintentional injury (S00-T98 with external cause V01-X59, W, X)",
    "maltreatment": "Maltreatment (T73-T74, Y06-Y07; González-Izquierdo et al. 2010)",
    "assault": "Assault (X85-Y09 except Y06-Y07)",
    "undetermined_intent": "Injury of undetermined intent (Y20-Y34, Z04.5, Z04.8)",
    "self_harm": "Self-harm (X60-X84)",
    "adversity_other": "Other adversity-related: adverse social circumstances, alcohol, substances",
    "mental_health": "Mental and behavioural disorders (F00-F99 primary)",
    "other": "Other emergency and elective admissions",
}
MVR_CAUSE_GROUPS = ("maltreatment", "assault", "undetermined_intent")
_OTHER_GROUPS = ("medical_emergency", "elective")
_CAUSE_OF_GROUP = {g: ("other" if g in _OTHER_GROUPS else g) for g in RATE_GROUPS}
_TREND_OF_GROUP = {
    "injury_unintentional": "injury",
    "medical_emergency": "medical",
    "elective": "medical",
}
METHOD_CLASSES = ("emergency", "emergency_mental_health", "elective")
EMERGENCY_METHODS = ("21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D")
ADMISSION_METHODS = {
    "11": "Elective: from waiting list", "12": "Elective: booked", "13": "Elective: planned",
    "21": "Emergency: via A&E", "22": "Emergency: via general practitioner",
    "23": "Emergency: via bed bureau", "24": "Emergency: via consultant outpatient clinic",
    "25": "Emergency: via mental health crisis resolution team",
    "28": "Emergency: other means", "2A": "Emergency: A&E of another provider",
    "2B": "Emergency: transfer from another provider", "2C": "Emergency: baby born at home",
    "2D": "Emergency: other",
}  # fmt: skip
NEOCARE_CODES = {
    "0": "Normal care", "1": "Special care", "2": "Level 2 intensive care (high dependency)",
    "3": "Level 1 intensive care (maximal)",
}  # fmt: skip
DELIVERY_METHOD_CODES = {
    "0": "Spontaneous vertex", "1": "Spontaneous other cephalic", "2": "Low forceps",
    "3": "Other forceps", "4": "Ventouse", "5": "Breech", "6": "Breech extraction",
    "7": "Elective caesarean section", "8": "Emergency caesarean section", "9": "Other",
}  # fmt: skip
_NEOCARE_BANDS = (
    ("under_28", EXTREMELY_PRETERM_WEEKS), ("weeks_28_31", VERY_PRETERM_WEEKS),
    ("weeks_32_33", 34), ("weeks_34_36", PRETERM_WEEKS), ("term", LAST_GESTATION_WEEK + 1),
)  # fmt: skip

_MAX_ADMISSIONS_PER_PERSON = 1000  # admission_id = person_id * 1000 + sequence number
_MAX_REJECTION_ROUNDS = 60  # seasonal date draws: accept whatever is left after this many
_NEWTON_STEPS = 30
_CENTRING_ROUNDS = 4
_DAY_KEY = 1 << 22  # row * _DAY_KEY + (day + _DAY_OFFSET) orders (child, day) as one int64
_DAY_OFFSET = 1 << 21
_LA_CODE_LIMIT = 1000  # DfE LA numbers have three digits

TABLES = (
    Table(
        "births",
        "Birth records of children born in England (HES birth fields). Arrivals have none.",
        (
            Column("person_id", "int64", "Child.", nullable=False),
            Column(
                "delivery_date", "date", "Date of birth (the birth spell's start).", nullable=False
            ),
            Column(
                "discharge_date",
                "date",
                "End of the birth spell; empty if still in hospital at the census date.",
            ),
            Column("la_code", "int16", "DfE number of the LA of residence at birth."),
            Column("gestation_weeks", "int8", "Completed weeks of gestation, 22-44 (GESTAT)."),
            Column("birth_weight_g", "int16", "Birth weight in grams (BIRWEIT)."),
            Column(
                "multiple_birth",
                "bool",
                "One of twins (a sibling shares the mother and date of birth).",
            ),
            Column("birth_order", "int8", "Order within the delivery: 1 for singletons (BIRORDR)."),
            Column("mother_age", "int8", "Mother's age in years at delivery, 15-45 (MATAGE)."),
            Column(
                "neonatal_care", "int8", "Highest level of neonatal care (NEOCARE).", NEOCARE_CODES
            ),
            Column(
                "delivery_method", "string", "Method of delivery (DELMETH).", DELIVERY_METHOD_CODES
            ),
        ),
        key=("person_id",),
    ),
    Table(
        "admissions",
        "Hospital admitted-patient-care spells from the end of the birth spell (or arrival) to the "
        "18th birthday, death or the census date. Birth spells are in `births`.",
        (
            Column(
                "admission_id",
                "int64",
                "Spell identifier: person_id x 1000 + sequence (truth only).",
                nullable=False,
            ),
            Column("person_id", "int64", "Child.", nullable=False),
            Column("admission_date", "date", "Date of admission (ADMIDATE).", nullable=False),
            Column(
                "discharge_date",
                "date",
                "Date of discharge (DISDATE), or of death in hospital.",
                nullable=False,
            ),
            Column(
                "admission_method", "string", "Method of admission (ADMIMETH).", ADMISSION_METHODS
            ),
            Column(
                "diagnosis_primary",
                "string",
                "Primary diagnosis, ICD-10, 4 characters without the dot.",
            ),
            Column(
                "diagnosis_secondary",
                "string",
                "Further diagnoses and external causes, ';'-separated; may be empty.",
            ),
            Column("cause_group", "string", "Cause group of the admission (truth).", CAUSE_GROUPS),
            Column("la_code", "int16", "DfE number of the LA of residence on the admission date."),
            Column("age_at_admission", "int8", "Age in completed years on the admission date."),
            Column("died_in_hospital", "bool", "The spell ended with the child's death."),
        ),
        key=("admission_id",),
    ),
)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def simulate_health(
    cohort: Cohort,
    social_care: dict[str, pd.DataFrame],
    params: Parameters,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    """Simulate birth records and hospital admissions for one shard.

    Args:
        cohort: The shard's people.
        social_care: Truth frames from the social-care module; ``cp_plans`` (start_date, category)
            and ``care_periods`` (start_date, end_date) are used. Missing frames mean no windows.
        params: All parameters; the ``health.*`` entries are used (and
            ``population.deprivation_adversity_correlation`` if present).
        rng: The shard's generator for this module.

    Returns:
        ``{"births": ..., "admissions": ...}`` with the columns declared in :data:`TABLES`.

    Example:
        >>> from trainkit.parameters import load_parameters
        >>> from trainkit.simulate.toy import toy_cohort, toy_social_care
        >>> c = toy_cohort(500)
        >>> rng = np.random.default_rng(1)
        >>> out = simulate_health(c, toy_social_care(c), load_parameters(), rng)
        >>> sorted(out)
        ['admissions', 'births']
    """
    model = HealthModel.from_params(params)
    births, gestation, birth_discharge = _simulate_births(cohort, model, rng)
    admissions = _simulate_admissions(cohort, social_care, model, gestation, birth_discharge, rng)
    return {"births": births, "admissions": admissions}


def is_injury_indicator(
    diagnosis_primary: np.ndarray, diagnosis_secondary: np.ndarray, admission_method: np.ndarray
) -> np.ndarray:
    """Admissions counted by the OHID injury indicator (90284) definition.

    Emergency admission, primary diagnosis S00-T79 and an external cause V01-Y36 among the
    secondary codes. (The age condition, 0-14, is left to the caller.)
    """
    primary = np.asarray(diagnosis_primary, dtype=str)
    secondary = np.asarray(diagnosis_secondary, dtype=str)
    method = np.asarray(admission_method, dtype=str)
    letter, num = _code_parts(primary)
    injury = (letter == "S") | ((letter == "T") & (num <= _T_INJURY_LAST))
    external = np.zeros(len(primary), bool)
    if len(primary):
        parts = pd.Series(secondary).str.split(";").explode()
        codes = parts.fillna("").to_numpy(dtype=str)
        ok = _is_external_cause(codes)
        external = pd.Series(ok, index=parts.index).groupby(level=0).any().to_numpy()
    return injury & external & np.isin(method, EMERGENCY_METHODS)


_T_INJURY_LAST = 79  # S00-T79
_Y_EXTERNAL_LAST = 36  # V01-Y36


def _code_parts(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First letter and the two digits after it (-1 where not digits) of ICD-10 codes."""
    c = np.ascontiguousarray(np.asarray(codes, dtype="<U4"))
    chars = c.view("<U1").reshape(len(c), 4)
    d1, d2 = chars[:, 1], chars[:, 2]
    ok = np.char.isdigit(d1) & np.char.isdigit(d2)
    num = np.full(len(c), -1, np.int64)
    num[ok] = d1[ok].astype(np.int64) * 10 + d2[ok].astype(np.int64)
    return chars[:, 0], num


def _is_external_cause(codes: np.ndarray) -> np.ndarray:
    letter, num = _code_parts(codes)
    y_external = (letter == "Y") & (num >= 0) & (num <= _Y_EXTERNAL_LAST)
    return np.isin(letter, ["V", "W", "X"]) | y_external


# ---------------------------------------------------------------------------------------------
# Parameters, parsed once per shard into arrays
# ---------------------------------------------------------------------------------------------


@dataclass
class HealthModel:
    """The health parameters as arrays (built by :meth:`from_params`)."""

    params: Parameters
    max_age: int
    days_per_year: float
    # regular catalogue: T entries
    rate: np.ndarray  # (T, A, 2) per 10,000 per year
    t_group: np.ndarray  # (T,) rate-group index
    t_method: np.ndarray  # (T,) method-class index
    t_primary: np.ndarray  # (T,) <U4
    t_secondary: list  # (T,) list of alternative secondary strings
    t_same_day: np.ndarray
    t_mean_nights: np.ndarray
    t_season: np.ndarray  # (T, 2) amplitude, peak month
    # neonatal readmissions: N entries
    neo_rate: np.ndarray  # per 10,000 births
    neo_days: np.ndarray
    neo_template: np.ndarray  # index into the shared per-entry arrays (after the regular ones)
    # per rate group
    log_dep: np.ndarray  # (G,) log rate ratio per decile step towards deprivation
    log_adv: np.ndarray
    log_risk: np.ndarray
    pre_rr: np.ndarray
    care_rr: np.ndarray
    injury_scale: dict  # financial year -> multiplier on the unintentional-injury shape
    medical_knots: tuple  # (years, values)
    la_ratio: np.ndarray  # indexed by DfE LA code
    _entry_cum: np.ndarray | None = None

    @classmethod
    def from_params(cls, params: Parameters) -> HealthModel:
        """Parse ``health.*`` parameters, checking the catalogue."""
        p = params
        max_age = int(p["health.max_age_years"])
        ages = np.arange(max_age)
        band_starts = np.asarray(p["health.age_bands"])
        band_of_age = np.searchsorted(band_starts, ages, side="right") - 1
        male_default = p["health.male_rr_default"]
        los_default = p["health.length_of_stay_default"]
        groups = {g: i for i, g in enumerate(RATE_GROUPS)}

        regular, neonatal = [], []
        for entry in p["health.admission_catalogue"]:
            (neonatal if entry.get("timing") == "neonatal" else regular).append(entry)
        entries = regular + neonatal
        n_t = len(entries)
        rate = np.zeros((n_t, max_age, 2))
        for i, e in enumerate(regular):
            rate[i] = _entry_rates(e, p, band_of_age, male_default, max_age)
        t_group = np.array([groups[e["group"]] for e in entries], np.int64)
        t_method = np.array([METHOD_CLASSES.index(e["method"]) for e in entries], np.int64)
        t_primary = np.array([e["primary"] for e in entries], dtype="<U4")
        t_secondary = [_alternatives(e.get("secondary", "")) for e in entries]
        los = np.array([e.get("los", los_default[e["method"]]) for e in entries], float)
        if np.any(los[:, 1] < 1):
            raise ValueError("params/health.yaml: admission_catalogue los mean nights must be >= 1")
        season = np.array([e.get("season", [0.0, 1]) for e in entries], float)

        injury_scale = _injury_scale(p, rate, t_group, t_method, t_primary, t_secondary, ages)
        trend = p["health.medical_trend_by_year"]
        knots = (np.array(sorted(trend), float), np.array([trend[k] for k in sorted(trend)], float))

        la_ratio = np.ones(_LA_CODE_LIMIT)
        for code, r in p["health.la_injury_ratio"].items():
            la_ratio[int(code)] = float(r)

        steps = len(DECILES) - 1

        def logs(name):
            values = p[f"health.{name}"]
            return np.log(np.array([float(values[g]) for g in RATE_GROUPS]))

        return cls(
            params=p,
            max_age=max_age,
            days_per_year=float(p["health.days_per_year"]),
            rate=rate,
            t_group=t_group,
            t_method=t_method,
            t_primary=t_primary,
            t_secondary=t_secondary,
            t_same_day=los[:, 0],
            t_mean_nights=los[:, 1],
            t_season=season,
            neo_rate=np.array([float(e["rate"]) for e in neonatal]),
            neo_days=np.array([float(e["days_mean"]) for e in neonatal]),
            neo_template=np.arange(len(regular), n_t),
            log_dep=logs("deprivation_rr") / steps,
            log_adv=logs("adversity_rr"),
            log_risk=logs("child_risk_rr"),
            pre_rr=np.exp(logs("pre_protection_rr")),
            care_rr=np.exp(logs("in_care_rr")),
            injury_scale=injury_scale,
            medical_knots=knots,
            la_ratio=la_ratio,
        )

    # -- derived quantities ---------------------------------------------------------------------

    def group_base(self) -> np.ndarray:
        """(G, A, 2) catalogue rate of each rate group by age and sex (per 10,000 per year)."""
        out = np.zeros((len(RATE_GROUPS), self.max_age, 2))
        np.add.at(out, self.t_group, self.rate)
        return out

    def entry_cumulative(self) -> np.ndarray:
        """(G, A, 2, T) cumulative rates of each group's entries (other groups' entries add 0)."""
        if self._entry_cum is None:
            member = self.t_group[None, :] == np.arange(len(RATE_GROUPS))[:, None]  # (G, T)
            r = self.rate.transpose(1, 2, 0)[None, :, :, :] * member[:, None, None, :]
            self._entry_cum = np.cumsum(r, axis=-1)
        return self._entry_cum

    def trend(self, fy: np.ndarray) -> np.ndarray:
        """(G, len(fy)) calendar multipliers for financial years ``fy`` (April start year)."""
        out = np.ones((len(RATE_GROUPS), len(fy)))
        years = np.array(sorted(self.injury_scale))
        scale = np.array([self.injury_scale[y] for y in years])
        inj = scale[np.clip(np.searchsorted(years, fy), 0, len(years) - 1)]
        inj = np.where(fy < years[0], scale[0], inj)
        med = np.interp(fy, *self.medical_knots)
        for g, name in enumerate(RATE_GROUPS):
            kind = _TREND_OF_GROUP.get(name)
            if kind == "injury":
                out[g] = inj
            elif kind == "medical":
                out[g] = med
        return out

    def log_norm(self) -> np.ndarray:
        """(G,) log of the mean person multiplier in the reference population.

        Deprivation deciles uniform; adversity standard normal with correlation ``rho`` with the
        standardised deprivation score; the child's own risk independent standard normal.
        """
        rho = float(self.params.get("population.deprivation_adversity_correlation", 0.0))
        centre = DECILES.mean()
        sd = DECILES.std()
        slope = self.log_dep[:, None] + self.log_adv[:, None] * rho / sd
        dep = np.log(np.mean(np.exp(slope * (centre - DECILES[None, :])), axis=1))
        return dep + self.log_adv**2 * (1 - rho**2) / 2 + self.log_risk**2 / 2


def _alternatives(secondary) -> list[str]:
    if isinstance(secondary, list):
        return [str(s) for s in secondary] or [""]
    return [str(secondary or "")]


def _entry_rates(entry: dict, p: Parameters, band_of_age, male_default, max_age) -> np.ndarray:
    """(A, 2) rates of one catalogue entry by single year of age and sex (M, F)."""

    def by_age(values) -> np.ndarray:
        values = np.asarray(values, float)
        if len(values) == max_age:
            return values
        if len(values) == band_of_age.max() + 1:
            return values[band_of_age]
        raise ValueError(
            f"params/health.yaml: {entry['primary']} rate needs {band_of_age.max() + 1} age bands "
            f"or {max_age} single years, got {len(values)}"
        )

    out = np.zeros((max_age, 2))
    if "share" in entry:
        table = p[f"health.{entry['group']}_rate_by_age"]
        out[:, 0] = float(entry["share"]) * by_age(table["M"])
        out[:, 1] = float(entry["share"]) * by_age(table["F"])
    elif isinstance(entry["rate"], dict):
        out[:, 0] = by_age(entry["rate"]["M"])
        out[:, 1] = by_age(entry["rate"]["F"])
    else:
        persons = by_age(entry["rate"])
        mrr = float(entry.get("male_rr", male_default[entry["group"]]))
        out[:, 0] = persons * 2 * mrr / (1 + mrr)
        out[:, 1] = persons * 2 / (1 + mrr)
    if entry.get("sex") in SEXES:
        keep = SEXES.index(entry["sex"])
        persons = by_age(entry["rate"])
        out[:] = 0.0
        out[:, keep] = persons
    return out


def _injury_scale(p, rate, t_group, t_method, t_primary, t_secondary, ages) -> dict:
    """Financial year -> multiplier on the unintentional-injury catalogue rates.

    Chosen so that all catalogue admissions meeting the injury indicator's definition average the
    published rate over ages 0-14 (sexes weighted by the indicator's denominators).
    """
    indicator_ages = ages <= INJURY_INDICATOR_MAX_AGE
    male = float(p["health.injury_indicator_male_share"])
    sex_w = np.array([male, 1 - male])
    mean_rate = (rate[:, indicator_ages, :].mean(axis=1) * sex_w).sum(axis=1)  # (T,)
    emergency = np.array([METHOD_CLASSES[m].startswith("emergency") for m in t_method])
    owner = np.repeat(np.arange(len(t_secondary)), [len(a) for a in t_secondary])
    each = is_injury_indicator(
        t_primary[owner],
        np.array([s for alts in t_secondary for s in alts], dtype=str),
        np.where(emergency[owner], EMERGENCY_METHODS[0], "11"),
    )
    qualifies = np.bincount(owner, each, len(t_secondary)) / np.bincount(
        owner, None, len(t_secondary)
    )
    unintentional = t_group == RATE_GROUPS.index("injury_unintentional")
    bad = unintentional & (qualifies < 1)
    if bad.any():
        raise ValueError(
            "params/health.yaml: unintentional-injury entries must meet the injury indicator "
            f"definition (S00-T79 with V01-Y36, emergency): {', '.join(t_primary[bad])}"
        )
    shape = mean_rate[unintentional].sum()
    deliberate = (mean_rate * qualifies)[~unintentional].sum()
    out = {}
    for year, target in p["health.injury_indicator_by_year"].items():
        if target <= deliberate:
            raise ValueError(
                f"params/health.yaml: injury_indicator_by_year {year} ({target}) is below the "
                f"deliberate-injury rate of the catalogue ({deliberate:.1f})"
            )
        out[int(year)] = (float(target) - deliberate) / shape
    return out


# ---------------------------------------------------------------------------------------------
# Births
# ---------------------------------------------------------------------------------------------


def _simulate_births(
    cohort: Cohort, model: HealthModel, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Birth records; also each person's gestation (-1 if none) and birth-spell discharge date."""
    p = model.params
    n = len(cohort)
    gestation_all = np.full(n, -1, np.int64)
    discharge_all = np.full(n, NAT)
    rows = np.flatnonzero(np.isnat(cohort.date_arrived))
    m = len(rows)
    dob = cohort.date_of_birth[rows]
    dep = cohort.deprivation[rows].astype(float)
    adv = cohort.adversity[rows]
    centre = DECILES.mean()
    steps = len(DECILES) - 1

    multiple, order = _twins(cohort.mother_id[rows], dob, cohort.person_id[rows])
    mother_age = _mother_age(cohort, rows, model, rng)

    # preterm birth: logistic, intercept solved so the shard's mean hits the published share
    age_or = p["health.preterm_maternal_age_or"]
    lp = (
        np.log(p["health.preterm_deprivation_or"]) / steps * (centre - dep)
        + np.log(p["health.preterm_adversity_or"]) * adv
        + np.log(age_or["under_20"]) * (mother_age < YOUNG_MOTHER_AGE)
        + np.log(age_or["over_39"]) * (mother_age > OLDER_MOTHER_AGE)
        + p["health.preterm_multiple_logit"] * multiple
    )
    prob = _expit(lp + _solve_intercept(lp, float(p["health.preterm_share"])))
    preterm = rng.random(m) < prob
    w_pre = np.asarray(p["health.gestation_week_weights_preterm"], float)
    w_term = np.asarray(p["health.gestation_week_weights_term"], float)
    week_pre = FIRST_GESTATION_WEEK + _categorical(rng, w_pre / w_pre.sum(), m)
    week_term = PRETERM_WEEKS + _categorical(rng, w_term / w_term.sum(), m)
    week = np.where(preterm, week_pre, week_term)

    # birth weight given gestation, sex, deprivation, adversity, twin
    mean_w = np.asarray(p["health.birth_weight_mean_by_week"], float)[week - FIRST_GESTATION_WEEK]
    half_sex = p["health.birth_weight_sex_difference_g"] / 2
    mean_w = mean_w + np.where(cohort.sex[rows] == "M", half_sex, -half_sex)
    mean_w = mean_w - p["health.birth_weight_deprivation_difference_g"] * (centre - dep) / steps
    mean_w = mean_w + p["health.birth_weight_adversity_g"] * adv
    mean_w = mean_w * np.where(multiple, p["health.birth_weight_multiple_factor"], 1.0)
    weight = rng.normal(mean_w, p["health.birth_weight_cv"] * mean_w)
    lo_w, hi_w = p["health.birth_weight_limits_g"]
    weight = np.clip(np.round(weight), lo_w, hi_w).astype(np.int16)

    # neonatal care by gestation band, then the birth spell's length
    care_table = p["health.neonatal_care_by_gestation"]
    band = np.searchsorted(np.array([edge for _, edge in _NEOCARE_BANDS]), week, side="right")
    probs = np.array([care_table[name] for name, _ in _NEOCARE_BANDS], float)
    probs = probs / probs.sum(axis=1, keepdims=True)
    cum = np.cumsum(probs, axis=1)[band]
    neocare = (rng.random(m)[:, None] >= cum[:, :-1]).sum(axis=1)
    stay_mean = np.asarray(p["health.birth_stay_mean_days"], float)[neocare]
    extra = np.maximum(PRETERM_WEEKS - week, 0) * p["health.birth_stay_days_per_preterm_week"]
    stay = np.round(extra).astype(np.int64) + rng.geometric(1 / (stay_mean + 1)) - 1
    discharge = dob + stay
    end = cohort.follow_up_end[rows]
    # a baby who dies or leaves England before discharge ends the spell that day; only a baby
    # still in hospital on the census date has no discharge date
    discharge = np.where(discharge <= end, discharge, np.where(end < cohort.census_date, end, NAT))

    shares = p["health.delivery_method_shares"]
    codes = np.array(list(shares), dtype=str)
    w = np.array([shares[c] for c in codes], float)
    delivery = codes[_categorical(rng, w / w.sum(), m)]

    gestation_all[rows] = week
    discharge_all[rows] = discharge
    births = pd.DataFrame(
        {
            "person_id": cohort.person_id[rows],
            "delivery_date": dob,
            "discharge_date": discharge,
            "la_code": cohort.la_at(rows, dob).astype(np.int16),
            "gestation_weeks": week.astype(np.int8),
            "birth_weight_g": weight,
            "multiple_birth": multiple,
            "birth_order": order.astype(np.int8),
            "mother_age": mother_age.astype(np.int8),
            "neonatal_care": neocare.astype(np.int8),
            "delivery_method": delivery,
        }
    )
    return births, gestation_all, discharge_all


def _twins(mother: np.ndarray, dob: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twins are children of one mother born on one day; their order follows person_id."""
    m = len(mother)
    order = np.lexsort((pid, dob, mother))
    mo, do = mother[order], dob[order]
    same = (mo[1:] == mo[:-1]) & (do[1:] == do[:-1]) & (mo[1:] >= 0)
    multiple_sorted = np.zeros(m, bool)
    multiple_sorted[1:] |= same
    multiple_sorted[:-1] |= same
    start = np.r_[True, ~same]
    idx = np.arange(m)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    rank_sorted = idx - first + 1
    multiple = np.empty(m, bool)
    rank = np.empty(m, np.int64)
    multiple[order] = multiple_sorted
    rank[order] = rank_sorted
    return multiple, rank


def _mother_age(cohort: Cohort, rows: np.ndarray, model: HealthModel, rng) -> np.ndarray:
    """Mother's age at each birth, consistent across siblings (one birth date per mother)."""
    p = model.params
    lo, hi = p["health.mother_age_limits"]
    dob = cohort.date_of_birth[rows]
    dep = cohort.deprivation[rows].astype(float)
    days = model.days_per_year
    mother_dob = cohort.extra.get("mother_date_of_birth")
    if mother_dob is not None:
        age = (dob - np.asarray(mother_dob, "datetime64[D]")[rows]).astype(np.int64) / days
        return np.clip(np.floor(age), lo, hi).astype(np.int64)
    centre = DECILES.mean()
    steps = len(DECILES) - 1
    mother = np.where(cohort.mother_id[rows] >= 0, cohort.mother_id[rows], -1 - rows)
    uniq, inv = np.unique(mother, return_inverse=True)
    k = len(uniq)
    day = dob.astype(np.int64)
    first = np.full(k, np.iinfo(np.int64).max)
    last = np.full(k, np.iinfo(np.int64).min)
    np.minimum.at(first, inv, day)
    np.maximum.at(last, inv, day)
    # the mother's characteristics are those at her first birth in the shard
    order = np.lexsort((day, inv))
    head = order[np.r_[True, inv[order][1:] != inv[order][:-1]]]
    mean_first = (
        -p["health.mother_age_deprivation_difference"] * (centre - dep[head]) / steps
        + p["health.mother_age_adversity_years"] * cohort.adversity[rows][head]
    )
    age_first = mean_first + rng.normal(0.0, p["health.mother_age_sd"], k)
    gap = (day - first[inv]) / days
    # keep every birth of one mother within the limits, moving her whole history together, and
    # centre on the published mean age of mothers at birth (a few rounds: clipping moves the mean)
    span = (last - first)[inv] / days
    first_age = age_first[inv]
    for _ in range(_CENTRING_ROUNDS):
        if len(first_age) == 0:
            break
        shift = p["health.mother_age_mean"] - float(np.mean(first_age + gap))
        first_age = np.clip(first_age + shift, lo, np.maximum(hi - span, lo))
    age = first_age + gap
    return np.clip(np.floor(age), lo, hi).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Admissions
# ---------------------------------------------------------------------------------------------


def _simulate_admissions(
    cohort: Cohort,
    social_care: dict[str, pd.DataFrame],
    model: HealthModel,
    gestation: np.ndarray,
    birth_discharge: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    n = len(cohort)
    dob = cohort.date_of_birth
    born_here = np.isnat(cohort.date_arrived)
    obs_start = np.where(born_here, birth_discharge + 1, cohort.date_arrived)
    obs_end = np.minimum(cohort.follow_up_end, add_years(dob, model.max_age) - 1)
    frailty = _frailty(rng, float(model.params["health.frailty_variance"]), n)

    cy = _child_years(cohort, obs_start, obs_end, model.max_age, model.days_per_year)
    windows = _windows(cohort, social_care, model, obs_start, obs_end)
    pre, care = windows["pre"], windows["care"]

    base = model.group_base()
    log_norm = model.log_norm()

    inj = RATE_GROUPS.index("injury_unintentional")
    med = RATE_GROUPS.index("medical_emergency")

    def weights(rows, ages, sexes, dates):
        """(len, G) rate of each group per 10,000 per year, before frailty and windows."""
        if len(rows) == 0:
            return np.zeros((0, len(RATE_GROUPS)))
        fy = _financial_year(dates)
        fy0 = fy.min()
        table = base[:, None, :, :] * model.trend(np.arange(fy0, fy.max() + 1))[:, :, None, None]
        table = np.moveaxis(table, 0, -1)  # (years, ages, sexes, groups)
        spell = cohort.spell_index(rows, dates)
        dep = cohort.deprivations[rows, spell].astype(float)
        la = cohort.la_codes[rows, spell].astype(np.int64)
        log_m = (
            np.outer(DECILES.mean() - dep, model.log_dep)
            + np.outer(cohort.adversity[rows], model.log_adv)
            + np.outer(cohort.child_risk[rows], model.log_risk)
        )
        log_m -= log_norm
        log_m[:, inj] += np.log(model.la_ratio[np.clip(la, 0, len(model.la_ratio) - 1)])
        log_m[:, med] += _log_preterm_rr(model, gestation[rows], ages)
        return table[fy - fy0, ages, sexes] * np.exp(log_m)

    sex_idx = (cohort.sex != SEXES[0]).astype(np.int64)

    def span_weights(span):
        return weights(span["row"], span["age"], sex_idx[span["row"]], span["mid"])

    w_cy = span_weights(cy)
    w_pre = span_weights(pre) * (model.pre_rr - 1)
    w_care = span_weights(care) * (model.care_rr - 1)

    # normalise the window extras so the population average stays at the catalogue rate
    def person_years(w, span):
        return (w * span["years"][:, None]).sum(axis=0)

    expected = person_years(w_cy, cy)
    extra = person_years(w_pre, pre) + person_years(w_care, care)
    norm = 1 + np.divide(extra, expected, out=np.zeros_like(extra), where=expected > 0)
    parts = []
    for w, span in ((w_cy, cy), (w_pre, pre), (w_care, care)):
        parts.append(_draw_spans(rng, model, w / norm, span, frailty, sex_idx))
    parts.append(_draw_neonatal(rng, model, cohort, gestation, obs_start, obs_end, frailty, norm))
    rows, dates, template = (np.concatenate(x) for x in zip(*parts, strict=True))

    adm = _finish(rng, model, cohort, rows, dates, template, care, obs_start, obs_end)
    return adm


def _frailty(rng: np.random.Generator, variance: float, n: int) -> np.ndarray:
    if variance <= 0:
        return np.ones(n)
    shape = 1.0 / variance
    return rng.gamma(shape, 1.0 / shape, n)


def _financial_year(dates: np.ndarray) -> np.ndarray:
    months = dates.astype("datetime64[M]").astype(np.int64)
    year = months // MONTHS + 1970
    return np.where(months % MONTHS + 1 >= FIRST_FY_MONTH, year, year - 1)


def _log_preterm_rr(model: HealthModel, gestation: np.ndarray, ages: np.ndarray) -> np.ndarray:
    p = model.params
    rr = p["health.preterm_admission_rr"]
    w_pre = np.asarray(p["health.gestation_week_weights_preterm"], float)
    weeks = FIRST_GESTATION_WEEK + np.arange(len(w_pre))
    share = float(p["health.preterm_share"])
    p_very = share * w_pre[weeks < VERY_PRETERM_WEEKS].sum() / w_pre.sum()
    p_mod = share - p_very
    mean = 1 + p_very * (rr["very_preterm"] - 1) + p_mod * (rr["moderate_late_preterm"] - 1)
    ratio = np.where(
        (gestation >= 0) & (gestation < VERY_PRETERM_WEEKS),
        rr["very_preterm"],
        np.where((gestation >= 0) & (gestation < PRETERM_WEEKS), rr["moderate_late_preterm"], 1.0),
    )
    return np.where(ages < rr["max_age"], np.log(ratio / mean), 0.0)


def _child_years(
    cohort: Cohort, obs_start, obs_end, max_age: int, days_per_year: float
) -> dict[str, np.ndarray]:
    """Observed time cut at birthdays: one span per child and year of age."""
    birthdays = add_years(cohort.date_of_birth[:, None], np.arange(max_age + 1)[None, :])
    with np.errstate(invalid="ignore"):
        start = np.maximum(obs_start[:, None], birthdays[:, :-1])
        end = np.minimum(obs_end[:, None], birthdays[:, 1:] - 1)
        valid = (end >= start) & ~np.isnat(start) & ~np.isnat(end)
    row, age = np.nonzero(valid)
    return _spans(row, start[valid], end[valid], age, days_per_year)


def _spans(row, start, end, age, days_per_year: float) -> dict[str, np.ndarray]:
    """Spans of observed time with their midpoint, age and length in years."""
    days = (end - start).astype(np.int64) + 1
    mid = start + (end - start).astype(np.int64) // 2
    return {
        "row": row.astype(np.int64),
        "start": start,
        "end": end,
        "mid": mid,
        "age": age.astype(np.int64),
        "years": days / days_per_year,
    }


def _windows(cohort, social_care, model, obs_start, obs_end) -> dict[str, dict[str, np.ndarray]]:
    """Merged, observed windows: before protection or care (``pre``); looked after (``care``)."""
    p = model.params
    n_days = int(p["health.pre_protection_window_days"])
    cats = list(p["health.pre_protection_categories"])
    plans = social_care.get("cp_plans")
    periods = social_care.get("care_periods")
    pid_pre, s_pre = [], []
    if plans is not None and len(plans):
        keep = plans["category"].isin(cats).to_numpy()
        pid_pre.append(plans["person_id"].to_numpy()[keep])
        s_pre.append(_as_days(plans["start_date"])[keep])
    pid_care, s_care, e_care = [], [], []
    if periods is not None and len(periods):
        start = _as_days(periods["start_date"])
        pid_pre.append(periods["person_id"].to_numpy())
        s_pre.append(start)
        pid_care.append(periods["person_id"].to_numpy())
        s_care.append(start)
        e_care.append(_as_days(periods["end_date"]))
    out = {}
    for name, pids, starts, ends in (
        ("pre", pid_pre, s_pre, None),
        ("care", pid_care, s_care, e_care),
    ):
        if pids:
            rows = _rows_of(cohort, np.concatenate(pids))
            s = np.concatenate(starts)
            if ends is None:
                s, e = s - n_days, s - 1
            else:
                e = np.concatenate(ends)
                e = np.where(np.isnat(e), cohort.follow_up_end[rows], e)
            ok = (rows >= 0) & ~np.isnat(s)
            rows, s, e = rows[ok], s[ok], e[ok]
            rows, s, e = _merge(rows, s, e)
            s = np.maximum(s, obs_start[rows])
            e = np.minimum(e, obs_end[rows])
            ok = ~np.isnat(s) & ~np.isnat(e) & (e >= s)
            rows, s, e = rows[ok], s[ok], e[ok]
        else:
            rows = np.zeros(0, np.int64)
            s = e = np.zeros(0, "datetime64[D]")
        span = _split_at_birthdays(cohort, rows, s, e, model)
        out[name] = span
    return out


def _split_at_birthdays(cohort, rows, start, end, model) -> dict[str, np.ndarray]:
    """Cut windows at birthdays, so that each piece has one age (as child-years do)."""
    dob = cohort.date_of_birth[rows]
    a0 = age_in_years(dob, start)
    pieces = age_in_years(dob, end) - a0 + 1
    idx = np.repeat(np.arange(len(rows)), pieces)
    age = a0[idx] + (np.arange(len(idx)) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    s = np.maximum(start[idx], add_years(dob[idx], age))
    e = np.minimum(end[idx], add_years(dob[idx], age + 1) - 1)
    age = np.clip(age, 0, model.max_age - 1)
    return _spans(rows[idx], s, e, age, model.days_per_year)


def _as_days(col: pd.Series) -> np.ndarray:
    return pd.to_datetime(col).to_numpy().astype("datetime64[D]")


def _rows_of(cohort: Cohort, person_id: np.ndarray) -> np.ndarray:
    """Row of each person_id in the cohort, -1 if absent."""
    if len(cohort) == 0:
        return np.full(len(person_id), -1, np.int64)
    order = np.argsort(cohort.person_id, kind="stable")
    ids = cohort.person_id[order]
    pos = np.clip(np.searchsorted(ids, person_id), 0, len(ids) - 1)
    return np.where(ids[pos] == person_id, order[pos], -1)


def _day_key(rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
    return rows.astype(np.int64) * _DAY_KEY + dates.astype(np.int64) + _DAY_OFFSET


def _merge(rows, start, end):
    """Union of intervals per row (vectorised): overlapping or touching intervals are joined."""
    if len(rows) == 0:
        return rows, start, end
    order = np.lexsort((start, rows))
    rows, start, end = rows[order], start[order], end[order]
    ks, ke = _day_key(rows, start), _day_key(rows, end)
    reach = np.maximum.accumulate(ke)
    new = np.r_[True, ks[1:] > reach[:-1] + 1]
    block = np.cumsum(new) - 1
    last_end = np.full(block[-1] + 1, np.iinfo(np.int64).min)
    np.maximum.at(last_end, block, ke)
    r = rows[new]
    e = (last_end - r * _DAY_KEY - _DAY_OFFSET).astype("datetime64[D]")
    return r, start[new], e


def _draw_spans(rng, model, w, span, frailty, sex_idx):
    """Poisson admissions in spans with group weights ``w``; rate group and entry for each."""
    total = w.sum(axis=1)
    lam = total * span["years"] * frailty[span["row"]] / PER_10K
    counts = rng.poisson(lam)
    idx = np.repeat(np.arange(len(lam)), counts)
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, "datetime64[D]"), np.zeros(0, np.int64)
    cum = np.cumsum(w[idx], axis=1)
    u = rng.random(len(idx)) * cum[:, -1]
    group = np.minimum((cum <= u[:, None]).sum(axis=1), len(RATE_GROUPS) - 1)
    rows = span["row"][idx]
    ages = span["age"][idx]
    template = _pick_entry(rng, model, group, ages, sex_idx[rows])
    dates = _dates(rng, span["start"][idx], span["end"][idx], model.t_season[template])
    return rows, dates, template


def _pick_entry(rng, model, group, ages, sexes) -> np.ndarray:
    """Catalogue entry for each admission, in proportion to the entries' rates at that age/sex."""
    cum = model.entry_cumulative()[group, ages, sexes]  # (events, entries)
    u = rng.random(len(group)) * cum[:, -1]
    pick = (cum <= u[:, None]).sum(axis=1)
    # a group with no rate at this age (window spanning a birthday): take the group's first entry
    fallback = np.argmax(model.t_group[None, :] == group[:, None], axis=1)
    return np.where(cum[:, -1] > 0, np.minimum(pick, len(model.t_group) - 1), fallback)


def _dates(rng, start, end, season) -> np.ndarray:
    """Uniform dates in [start, end]; seasonal entries by rejection with a cosine month profile."""
    dates = uniform_dates(rng, start, end)
    amp, peak = season[:, 0], season[:, 1]
    todo = np.flatnonzero(amp > 0)
    for _ in range(_MAX_REJECTION_ROUNDS):
        if len(todo) == 0:
            break
        month = dates[todo].astype("datetime64[M]").astype(np.int64) % MONTHS + 1
        wave = np.cos(2 * np.pi * (month - peak[todo]) / MONTHS)
        accept_p = (1 + amp[todo] * wave) / (1 + amp[todo])
        redo = todo[rng.random(len(todo)) >= accept_p]
        dates[redo] = uniform_dates(rng, start[redo], end[redo])
        todo = redo
    return dates


def _draw_neonatal(rng, model, cohort, gestation, obs_start, obs_end, frailty, norm):
    """Readmissions within days of the birth spell (rate per birth, not per year)."""
    rows = np.flatnonzero((gestation >= 0) & ~np.isnat(obs_start))
    first_birthday = add_years(cohort.date_of_birth[rows], 1) - 1
    end = np.minimum(obs_end[rows], first_birthday)
    ok = end >= obs_start[rows]
    rows, end = rows[ok], end[ok]
    k = len(model.neo_rate)
    if len(rows) == 0 or k == 0:
        return np.zeros(0, np.int64), np.zeros(0, "datetime64[D]"), np.zeros(0, np.int64)
    groups = model.t_group[model.neo_template]
    start = obs_start[rows]
    dep = cohort.deprivation_at(rows, start).astype(float)
    log_m = (
        model.log_dep[groups][None, :] * (DECILES.mean() - dep)[:, None]
        + model.log_adv[groups][None, :] * cohort.adversity[rows][:, None]
        + model.log_risk[groups][None, :] * cohort.child_risk[rows][:, None]
        - model.log_norm()[groups][None, :]
    )
    trend = model.trend(_financial_year(start))[groups].T
    lam = model.neo_rate[None, :] / PER_10K * trend * np.exp(log_m) / norm[groups][None, :]
    counts = rng.poisson(lam * frailty[rows][:, None])
    b, t = np.nonzero(counts)
    reps = counts[b, t]
    b, t = np.repeat(b, reps), np.repeat(t, reps)
    delay = rng.geometric(1 / model.neo_days[t]) - 1
    dates = start[b] + delay
    keep = dates <= end[b]
    return rows[b][keep], dates[keep], model.neo_template[t][keep]


def _finish(rng, model, cohort, rows, dates, template, care, obs_start, obs_end) -> pd.DataFrame:
    """Lengths of stay, deaths, overlaps, codes and identifiers; the admissions frame."""
    p = model.params
    same_day = rng.random(len(rows)) < model.t_same_day[template]
    nights = np.where(same_day, 0, rng.geometric(1 / model.t_mean_nights[template]))
    discharge = dates + nights
    primary = model.t_primary[template]
    secondary = _pick_secondary(rng, model, template)
    method_class = model.t_method[template]
    group = model.t_group[template]
    terminal = np.zeros(len(rows), bool)

    t_rows, t_adm, t_prim, t_sec, t_group = _terminal(rng, model, cohort, obs_start, obs_end)
    if len(t_rows):
        term_start = np.full(len(cohort), np.datetime64("2262-01-01", "D"))
        term_start[t_rows] = t_adm
        clash = discharge >= term_start[rows]
        rows, dates, discharge = rows[~clash], dates[~clash], discharge[~clash]
        primary, secondary = primary[~clash], secondary[~clash]
        method_class, group, terminal = method_class[~clash], group[~clash], terminal[~clash]
        rows = np.r_[rows, t_rows]
        dates = np.r_[dates, t_adm]
        discharge = np.r_[discharge, cohort.date_of_death[t_rows]]
        primary = np.r_[primary, t_prim]
        secondary = np.r_[secondary, t_sec]
        method_class = np.r_[method_class, np.zeros(len(t_rows), np.int64)]
        group = np.r_[group, t_group]
        terminal = np.r_[terminal, np.ones(len(t_rows), bool)]

    # spells open at the census date are not in the data; at death they end on the day
    end = cohort.follow_up_end[rows]
    died = cohort.date_of_death[rows] == end
    over = discharge > end
    keep = ~over | died
    discharge = np.where(over, end, discharge)
    keep &= (dates >= obs_start[rows]) & (dates <= obs_end[rows])
    sel = np.flatnonzero(keep)
    order = sel[np.lexsort((terminal[sel], dates[sel], rows[sel]))]
    # no overlapping spells: drop an admission that starts before an earlier one has ended
    ka = _day_key(rows[order], dates[order])
    kd = _day_key(rows[order], discharge[order])
    reach = np.r_[np.iinfo(np.int64).min, np.maximum.accumulate(kd)[:-1]]
    order = order[(ka > reach) | terminal[order]]
    rows, dates, discharge = rows[order], dates[order], discharge[order]
    primary, secondary = primary[order], secondary[order]
    method_class, group = method_class[order], group[order]

    seq = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    ok = seq < _MAX_ADMISSIONS_PER_PERSON
    rows, dates, discharge, seq = rows[ok], dates[ok], discharge[ok], seq[ok]
    primary, secondary = primary[ok], secondary[ok]
    method_class, group = method_class[ok], group[ok]

    secondary = _add_social_codes(rng, p, cohort, rows, dates, secondary, care)
    methods = _methods(rng, p, method_class)
    dod = cohort.date_of_death[rows]
    return pd.DataFrame(
        {
            "admission_id": cohort.person_id[rows] * _MAX_ADMISSIONS_PER_PERSON + seq,
            "person_id": cohort.person_id[rows],
            "admission_date": dates,
            "discharge_date": discharge,
            "admission_method": methods,
            "diagnosis_primary": primary.astype(str),
            "diagnosis_secondary": secondary.astype(str),
            "cause_group": np.array([_CAUSE_OF_GROUP[g] for g in RATE_GROUPS])[group],
            "la_code": cohort.la_at(rows, dates).astype(np.int16),
            "age_at_admission": cohort.age_on(rows, dates).astype(np.int8),
            "died_in_hospital": ~np.isnat(dod) & (discharge == dod),
        }
    )


def _pick_secondary(rng, model, template) -> np.ndarray:
    alts = model.t_secondary
    counts = np.array([len(a) for a in alts])
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    flat = np.array([s for a in alts for s in a], dtype=object)
    k = (rng.random(len(template)) * counts[template]).astype(np.int64)
    return flat[offsets[template] + k].astype(str)


def _terminal(rng, model, cohort, obs_start, obs_end):
    """Final admissions ending in death, for a share of deaths after the neonatal period."""
    p = model.params
    spec = p["health.terminal_admission"]
    catalogue = p["health.terminal_catalogue"]
    dod = cohort.date_of_death
    age_days = (dod - cohort.date_of_birth).astype(np.int64)
    with np.errstate(invalid="ignore"):
        eligible = (
            ~np.isnat(dod)
            & (age_days >= spec["min_age_days"])
            & (dod >= obs_start)
            & (dod <= obs_end)
        )
    rows = np.flatnonzero(eligible)
    rows = rows[rng.random(len(rows)) < spec["share"]]
    empty = np.zeros(0, np.int64)
    if len(rows) == 0 or not catalogue:
        return empty, np.zeros(0, "datetime64[D]"), np.zeros(0, "<U4"), np.zeros(0, str), empty
    band_starts = np.asarray(p["health.age_bands"])
    band = np.searchsorted(band_starts, cohort.age_on(rows, dod[rows]), side="right") - 1
    weight = np.array([c["weight"] for c in catalogue], float).T  # (bands, entries)
    cum = np.cumsum(weight[band], axis=1)
    u = rng.random(len(rows)) * cum[:, -1]
    pick = np.minimum((cum <= u[:, None]).sum(axis=1), len(catalogue) - 1)
    stay = rng.geometric(1 / spec["mean_days"], len(rows)) - 1
    adm = np.maximum(dod[rows] - stay, obs_start[rows])
    prim = np.array([c["primary"] for c in catalogue], dtype="<U4")[pick]
    sec = np.array([c.get("secondary", "") for c in catalogue], dtype=object)[pick].astype(str)
    grp = np.array([RATE_GROUPS.index(c["group"]) for c in catalogue], np.int64)[pick]
    return rows, adm, prim, sec, grp


def _add_social_codes(rng, p, cohort, rows, dates, secondary, care) -> np.ndarray:
    """Append an adverse-social-circumstance Z code to some admissions (high adversity, in care)."""
    spec = p["health.social_secondary_codes"]
    in_care = _in_windows(rows, dates, care)
    prob = spec["base_share"] * spec["adversity_rr"] ** cohort.adversity[rows]
    prob = np.minimum(prob * np.where(in_care, spec["in_care_rr"], 1.0), spec["max_share"])
    add = rng.random(len(rows)) < prob
    codes = np.asarray(spec["codes"], dtype=str)
    z = codes[rng.integers(0, len(codes), len(rows))]
    add &= np.char.find(secondary, z) < 0
    joined = np.where(secondary == "", z, np.char.add(np.char.add(secondary, ";"), z))
    return np.where(add, joined, secondary)


def _in_windows(rows, dates, span) -> np.ndarray:
    """True where ``dates[i]`` falls in one of the (merged, sorted) windows of ``rows[i]``."""
    if len(span["row"]) == 0 or len(rows) == 0:
        return np.zeros(len(rows), bool)
    ks = _day_key(span["row"], span["start"])
    order = np.argsort(ks, kind="stable")
    ks = ks[order]
    w_row, w_end = span["row"][order], span["end"][order]
    key = _day_key(rows, dates)
    i = np.searchsorted(ks, key, side="right") - 1
    j = np.maximum(i, 0)
    return (i >= 0) & (w_row[j] == rows) & (dates <= w_end[j])


def _methods(rng, p, method_class) -> np.ndarray:
    shares = p["health.admission_method_shares"]
    out = np.empty(len(method_class), dtype="<U2")
    for k, name in enumerate(METHOD_CLASSES):
        sel = np.flatnonzero(method_class == k)
        codes = np.array(list(shares[name]), dtype=str)
        w = np.array([shares[name][c] for c in codes], float)
        out[sel] = codes[_categorical(rng, w / w.sum(), len(sel))]
    return out


# ---------------------------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------------------------


def _categorical(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    cum = np.cumsum(probs)
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(probs) - 1)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(lp: np.ndarray, target: float) -> float:
    """Intercept ``a`` with mean(expit(a + lp)) == target (Newton's method)."""
    if len(lp) == 0:
        return 0.0
    a = np.log(target / (1 - target)) - float(np.mean(lp))
    for _ in range(_NEWTON_STEPS):
        pr = _expit(a + lp)
        step = (pr.mean() - target) / max(float(np.mean(pr * (1 - pr))), 1e-12)
        a -= step
        if abs(step) < 1e-12:
            break
    return a

"""HES admitted patient care and the ECHILD bridging file, as researchers receive them in a TRE.

- ``research/hes/hes_apc.parquet``: one row per consultant episode, from the truth's birth spells
  (``births``) and admission spells (``admissions``). Most spells have one episode; babies moved
  to neonatal care and long stays have more (``params/research.yaml``). In the TRE each financial
  year is its own table (``FILE0184861_HES_APC_2019`` style); we stack them. Field names and
  codes as in the ECHILD how-to scripts (HT ``01b_identify_hes_cohort.r``) and UCL's
  ECHILD_Synthetic: TOKEN_PERSON_ID, EPIKEY, MYDOB (mmyyyy), STARTAGE (7001-7007 under one),
  ADMIMETH, EPITYPE, CLASSPAT, DIAG_01-DIAG_20 (ICD-10 without the dot, 4 characters; a fifth
  character D or A marks a dagger or asterisk code), OPERTN_01-OPERTN_24 ('-' where none; the
  truth holds no procedures), the birth "baby tail" (GESTAT_1, BIRWEIT_1, NUMBABY, BIRORDR_1,
  MATAGE, NEOCARE...) on birth episodes only.
- ``research/bridging/echild_bridging.parquet``: one row per PMR and token person ID linked
  (many-to-many now and then), plus one row with an empty token for each pupil not linked, with
  the match step of each stage (codes from UCL's ECHILD linkage evaluation, LE).

Identities: a child's token person ID is fixed by a salt (so the same in every shard). Adopted
children are normally issued a new NHS number, so their hospital records after the adoption order
carry a second token, and the bridge links their (post-adoption) school identity to it; a few
children have some admissions under a duplicate token. Linkage fails more often for ethnic
minorities, deprived areas, adopted children and UASC; each birth cohort's overall rate is held at
the published one (Libuy et al. 2021).

ETHNOS (HES ethnic category, 2001 census groups) from the DfE code: WBRI A, WIRI B,
WOTH/WIRT/WROM C, MWBC D, MWBA E, MWAS F, MOTH G, AIND H, APKN J, ABAN K, AOTH L, BCRB M, BAFR N,
BOTH P, CHNE R, OOTH S, REFU Z (not stated), NOBT X (not known); as UCL's ECHILD_Synthetic maps
its groups (Gypsy/Roma and Traveller of Irish heritage go to C, Any other White background).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import reference
from ..simulate.context import age_in_years
from ..simulate.health import EXTREMELY_PRETERM_WEEKS, LOW_BIRTH_WEIGHT_G, PRETERM_WEEKS
from . import identifiers
from .npd import (
    ETHNICITY_CODES,
    NEVER,
    NO_DATE,
    SALT_EPIKEY,
    SALT_TOKEN,
    SALT_TOKEN_NEW,
    Coded,
    PupilIdentity,
    anomaly_rate,
    census_day,
    census_rows,
    cohort_rows,
    days,
    frame,
    log,
    lookup,
    march31,
    pick,
    pupil_identity,
    register_pmrs,
    research_parameters,
    salt,
    year_of,
)
from .record import RecordContext
from .schema import Field, OutputTable, codes_from

DATASET = "hes"
N_DIAG = 20
N_OPERTN = 24

ETHNOS: dict[str, str] = {
    "WBRI": "A", "WIRI": "B", "WOTH": "C", "WIRT": "C", "WROM": "C",
    "MWBC": "D", "MWBA": "E", "MWAS": "F", "MOTH": "G",
    "AIND": "H", "APKN": "J", "ABAN": "K", "AOTH": "L",
    "BCRB": "M", "BAFR": "N", "BOTH": "P", "CHNE": "R", "OOTH": "S",
    "REFU": "Z", "NOBT": "X",
}  # fmt: skip
"""HES ETHNOS from the DfE ethnicity code (see the module docstring)."""

ETHNOS_CODES = codes_from(
    ("A", "White: British"),
    ("B", "White: Irish"),
    ("C", "White: any other White background"),
    ("D", "Mixed: White and Black Caribbean"),
    ("E", "Mixed: White and Black African"),
    ("F", "Mixed: White and Asian"),
    ("G", "Mixed: any other mixed background"),
    ("H", "Asian or Asian British: Indian"),
    ("J", "Asian or Asian British: Pakistani"),
    ("K", "Asian or Asian British: Bangladeshi"),
    ("L", "Asian or Asian British: any other Asian background"),
    ("M", "Black or Black British: Caribbean"),
    ("N", "Black or Black British: African"),
    ("P", "Black or Black British: any other Black background"),
    ("R", "Other ethnic groups: Chinese"),
    ("S", "Other ethnic groups: any other ethnic group"),
    ("Z", "Not stated"),
    ("X", "Not known"),
)
IMD_LABELS = (
    "Most Deprived 10%",
    "More Deprived 10% - 20%",
    "More Deprived 20% - 30%",
    "More Deprived 30% - 40%",
    "More Deprived 40% - 50%",
    "Less Deprived 40% - 50%",
    "Less Deprived 30% - 40%",
    "Less Deprived 20% - 30%",
    "Less Deprived 10% - 20%",
    "Least Deprived 10%",
)
"""IMD04_DECILE labels by decile 1-10 (as in UCL's ECHILD_Synthetic ``4_create_HES.R``)."""

RESGOR: dict[str, str] = {
    "North East": "A",
    "North West": "B",
    "Yorkshire and The Humber": "D",
    "East Midlands": "E",
    "West Midlands": "F",
    "East of England": "G",
    "London": "H",
    "South East": "J",
    "South West": "K",
}
"""RESGOR (government office region of residence) by region name (SY ``4_create_HES.R``)."""

STARTAGE_DAYS = (0, 1, 7, 29, 91, 182, 273)
"""First day of age of each STARTAGE code 7001-7007 (under one year)."""

STARTAGE_CODES = codes_from(
    ("7001", "Less than 1 day"),
    ("7002", "1 to 6 days"),
    ("7003", "7 to 28 days"),
    ("7004", "29 to 90 days"),
    ("7005", "91 to 181 days"),
    ("7006", "182 to 272 days"),
    ("7007", "273 to 365 days"),
    *((str(a), f"{a} years") for a in range(1, 20)),
)
ADMIMETH_CODES = codes_from(
    ("11", "Elective: from waiting list"),
    ("12", "Elective: booked"),
    ("13", "Elective: planned"),
    ("21", "Emergency: via A&E"),
    ("22", "Emergency: via general practitioner"),
    ("23", "Emergency: via bed bureau"),
    ("24", "Emergency: via consultant outpatient clinic"),
    ("25", "Emergency: via mental health crisis resolution team"),
    ("28", "Emergency: other means"),
    ("2A", "Emergency: A&E of another provider"),
    ("2B", "Emergency: transfer from another provider"),
    ("2C", "Emergency: baby born at home as intended"),
    ("2D", "Emergency: other"),
    ("82", "Birth of a baby in this provider"),
    ("83", "Baby born outside the provider, except at home as intended"),
)
EPITYPE_CODES = codes_from(("1", "General episode"), ("3", "Birth episode"))
CLASSPAT_CODES = codes_from(
    ("1", "Ordinary admission"),
    ("2", "Day case admission"),
    ("5", "Mothers and babies using only delivery facilities"),
)
DISMETH_CODES = codes_from(
    ("1", "Discharged on clinical advice or with clinical consent"),
    ("4", "Patient died"),
    ("8", "Not applicable: patient still in hospital"),
)
EPISTAT_CODES = codes_from(("1", "Unfinished"), ("3", "Finished"))
SEX_CODES = codes_from(("1", "Male"), ("2", "Female"))
NEOCARE_CODES = codes_from(
    ("0", "Normal care"),
    ("1", "Special care"),
    ("2", "Level 2 intensive care (high dependency)"),
    ("3", "Level 1 intensive care (maximal)"),
)
DELMETH_CODES = codes_from(
    ("0", "Spontaneous vertex"),
    ("1", "Spontaneous other cephalic"),
    ("2", "Low forceps"),
    ("3", "Other forceps"),
    ("4", "Ventouse"),
    ("5", "Breech"),
    ("6", "Breech extraction"),
    ("7", "Elective caesarean section"),
    ("8", "Emergency caesarean section"),
    ("9", "Other"),
)
NUMBABY_CODES = codes_from(
    *((str(k), f"{k} babies") for k in range(1, 7)), ("9", "Not known"), ("X", "Not known")
)
DIAG_PATTERN = r"^[A-Z][0-9]{2}[0-9X][AD]?$"

_SOURCE_HES = (
    "NHS England HES APC as held in ECHILD (HT 01b_identify_hes_cohort.r; HT guide 05; "
    "UCL ECHILD_Synthetic 4_create_HES.R; HES data dictionary code lists)"
)


def _code(name: str, description: str, codes: dict[str, str], **kw) -> Field:
    return Field(name, "code", description, codes, **kw)


HES_APC = OutputTable(
    name="hes.apc",
    dataset=DATASET,
    path="research/hes/hes_apc.parquet",
    format="parquet",
    description=(
        "HES admitted patient care: one row per consultant episode (births and admissions), "
        "all years stacked (the TRE holds one table per financial year)."
    ),
    source=_SOURCE_HES,
    fields=(
        Field("TOKEN_PERSON_ID", "string", "Pseudonymised person id (NHS England token).",
              required=True, pattern=r"^0000[0-9A-Z]{11}$"),
        Field("EPIKEY", "string", "Episode key, unique per episode.", required=True,
              pattern=r"^[1-9][0-9]{11}$"),
        Field("EPISTART", "date", "Start of the episode.", required=True),
        Field("EPIEND", "date", "End of the episode; empty if unfinished."),
        _code("EPIORDER", "Order of the episode within its spell.",
              {str(k): f"Episode {k}" for k in range(1, 10)}),
        _code("EPISTAT", "Episode status.", EPISTAT_CODES),
        _code("EPITYPE", "Episode type.", EPITYPE_CODES),
        Field("ADMIDATE", "date", "Admission date of the spell."),
        Field("DISDATE", "date", "Discharge date, on the last episode of a finished spell only."),
        _code("ADMIMETH", "Method of admission.", ADMIMETH_CODES),
        _code("DISMETH", "Method of discharge (last episode only).", DISMETH_CODES),
        _code("CLASSPAT", "Patient classification.", CLASSPAT_CODES),
        Field("MYDOB", "string", "Month and year of birth, mmyyyy.", pattern=r"^\d{5,6}$"),
        _code("STARTAGE", "Age at the start of the episode: 7001-7007 under one year, "
              "then years.", STARTAGE_CODES),
        _code("SEX", "Sex.", SEX_CODES),
        _code("ETHNOS", "Ethnic category.", ETHNOS_CODES),
        Field("LSOA11", "string", "Small area of residence (synthetic TKA code standing in for "
              "the LSOA)."),
        _code("IMD04_DECILE", "Deprivation decile of the area of residence.",
              {label: label for label in IMD_LABELS}),
        _code("RESGOR", "Government office region of residence.",
              {v: k for k, v in RESGOR.items()}),
        _code("NEOCARE", "Neonatal level of care (birth episodes).", NEOCARE_CODES),
        _code("NUMBABY", "Number of babies delivered (birth episodes).", NUMBABY_CODES),
        _code("BIRORDR_1", "Birth order (birth episodes).", NUMBABY_CODES),
        _code("BIRSTAT_1", "Birth status (birth episodes).", codes_from(("1", "Live"))),
        Field("BIRWEIT_1", "int", "Birth weight in grams; 9999 not known (birth episodes).",
              minimum=200, maximum=9999),
        Field("GESTAT_1", "int", "Gestation in completed weeks; 99 not known (birth episodes).",
              minimum=10, maximum=99),
        Field("MATAGE", "int", "Mother's age at delivery (birth episodes).", minimum=10,
              maximum=60),
        _code("DELMETH_1", "Delivery method (birth episodes).", DELMETH_CODES),
        *(
            Field(f"DIAG_{k:02d}", "string", f"Diagnosis {k} (ICD-10, 4 characters; 5th D/A "
                  "for dagger/asterisk).", pattern=DIAG_PATTERN)
            for k in range(1, N_DIAG + 1)
        ),
        *(
            Field(f"OPERTN_{k:02d}", "string", f"Procedure {k} (OPCS-4); '-' where none.",
                  required=True)
            for k in range(1, N_OPERTN + 1)
        ),
    ),
    key=("EPIKEY",),
)  # fmt: skip

BRIDGING = OutputTable(
    name="bridging.echild",
    dataset="bridging",
    path="research/bridging/echild_bridging.parquet",
    format="parquet",
    description=(
        "ECHILD bridging file: one row per PMR and HES token person ID linked (many-to-many "
        "occasionally), and one row with empty tokenpersonid per pupil not linked."
    ),
    source=(
        "docs.echild.ac.uk/linkage.html; HT 01a_identify_npd_cohort.r (nic381972_echild_bridging"
        "); LE (version-1 bridge columns and match steps); Libuy et al. 2021"
    ),
    fields=(
        Field("PupilMatchingRefAnonymous", "string", "PMR of the pupil.", required=True,
              pattern=r"^[0-9A-F]{18}$"),
        Field("tokenpersonid", "string", "HES token person ID; empty if not linked.",
              pattern=r"^0000[0-9A-Z]{11}$"),
        Field("pds_matchstep", "int", "Stage 1 (NPD to PDS): step x 10000 + year of the NPD "
              "record matched (steps 1-8 as in LE), or 70/80 (step 7/8, year not recorded); "
              "empty if not matched to PDS."),
        Field("hes_matchstep", "int", "Stage 2 (PDS to HES): step 1-7 as in LE; empty if not "
              "linked to HES.", minimum=1, maximum=7),
        Field("spring", "int", "Pupil is in a spring census (1).", codes={"0": "No", "1": "Yes"}),
        Field("ks2", "int", "Pupil has a KS2 record (1).", codes={"0": "No", "1": "Yes"}),
        Field("ks4", "int", "Pupil has a KS4 record (1).", codes={"0": "No", "1": "Yes"}),
    ),
    key=("PupilMatchingRefAnonymous", "tokenpersonid"),
)  # fmt: skip

TABLES: tuple[OutputTable, ...] = (HES_APC, BRIDGING)

PDS_STEP_LABELS = {
    1: "first name exact, surname exact, dob exact, sex exact, postcode exact",
    2: "first name soundex, surname soundex, dob exact, sex exact, postcode exact",
    3: "first name 1st char, surname char 1-3, dob exact, sex exact, postcode exact",
    4: "first name 1st char, surname char 1-3, dob exact, sex any, postcode exact",
    5: "first name any, surname any, dob exact, sex exact, postcode exact",
    6: "first name any, surname any, dob partial, sex exact, postcode exact",
    7: "first name exact, surname exact, dob exact, sex exact, postcode any",
    8: "first name 1st char, surname char 1-3, dob exact, sex exact, postcode any",
}
"""Stage-1 match steps (LE ``4_create_ assign link status.do``)."""

HES_STEP_LABELS = {
    1: "NHS number exact, dob exact, sex exact, postcode exact",
    2: "NHS number exact, dob exact, sex exact, postcode any",
    3: "NHS number exact, dob partial, sex exact, postcode exact",
    4: "NHS number exact, dob partial, sex exact, postcode any",
    5: "NHS number exact, dob any, sex any, postcode exact",
    6: "NHS number does not contradict, dob exact but not 1 January, sex exact, postcode exact",
    7: "NHS number any, dob exact but not 1 January, sex exact, postcode exact",
}
"""Stage-2 match steps (LE ``4_create_ assign link status.do``)."""

# --------------------------------------------------------------------------------------------
# Identities in HES
# --------------------------------------------------------------------------------------------


@dataclass
class HesIdentity:
    """Token person IDs of the shard's people.

    Attributes:
        tokens: each person's token (cohort row ``i``), then a second token (row ``n + i``) for
            adopted children issued a new NHS number and for duplicate HES identities.
        split_from: for adopted children issued a new NHS number, the adoption order: hospital
            records starting later carry the second token (NaT otherwise).
        duplicate: children some of whose admissions carry the second token at random.
        adopted: children adopted from care (in the truth).
    """

    tokens: np.ndarray
    split_from: np.ndarray
    duplicate: np.ndarray
    adopted: np.ndarray


def hes_identity(ctx: RecordContext, p: Mapping[str, Any]) -> HesIdentity:
    """Each person's HES token(s) (kept on the context so the APC and bridge agree).

    A token follows an NHS number: it is a keyed function of the number
    (:func:`~trainkit.datasets.identifiers.token_person_ids` of the number, salt
    ``SALT_TOKEN``), and the numbers and the dates they apply from are those of PDS
    (:meth:`~trainkit.datasets.record.RecordContext.nhs_history`). So an adopted child issued a
    new NHS number has a second token for hospital records from the order. A duplicate HES
    identity (a second token for the same NHS number) is keyed by the person (``SALT_TOKEN_NEW``).
    """
    cached = getattr(ctx, "_research_hes_identity", None)
    if cached is not None:
        return cached
    c = ctx.cohort
    n = len(c)
    history = ctx.nhs_history()
    rows = cohort_rows(ctx, history["person_id"].to_numpy())
    second_number = history["person_id"].duplicated().to_numpy()
    number = history["nhs_number"].to_numpy(dtype=object).astype(np.int64)
    tokens = np.full(2 * n, None, dtype=object)
    tokens[rows + n * second_number] = identifiers.token_person_ids(number, salt(ctx, SALT_TOKEN))
    split_from = np.full(n, NO_DATE)
    split_from[rows[second_number]] = days(history["valid_from"].to_numpy()[second_number])
    adopted = np.zeros(n, dtype=bool)
    adopted[cohort_rows(ctx, ctx.adoption_orders().index.to_numpy())] = True
    rng = ctx.rng("hes.identity")
    duplicate = (rng.random(n) < p["hes_duplicate_person_share"]) & np.isnat(split_from)
    dup = np.flatnonzero(duplicate)
    tokens[n + dup] = identifiers.token_person_ids(c.person_id[dup], salt(ctx, SALT_TOKEN_NEW))
    ident = HesIdentity(tokens, split_from, duplicate, adopted)
    ctx._research_hes_identity = ident
    return ident


# --------------------------------------------------------------------------------------------
# Spells and episodes
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _region_letter_by_la() -> np.ndarray:
    """RESGOR letter by DfE LA number (index = LA number)."""
    las = reference.local_authorities()
    out = np.full(1000, None, dtype=object)
    out[las["dfe_la_code"].to_numpy()] = [RESGOR[r] for r in las["region"]]
    return out


EXTREMELY_LOW_BIRTH_WEIGHT_G = 1000  # ICD-10 P07.0: birth weight 999 g or less (P07.1 1000-2499 g)
MID_JANUARY_BEFORE_MARCH31 = 75  # days from the January census (mid-month) to 31 March
_BIRTH_SEQUENCE = 999  # spell number of the birth spell in the EPIKEY key (admissions < 999)


@dataclass
class Spells:
    """Birth spells, then admission spells, as aligned arrays."""

    rows: np.ndarray  # cohort row
    admit: np.ndarray
    disch: np.ndarray  # NaT while in hospital at the census date
    birth: np.ndarray  # bool
    sequence: np.ndarray  # spell number of the person (999 for the birth spell)
    admimeth: Coded
    died: np.ndarray
    diag_lut: np.ndarray  # distinct diagnosis codes (object)
    diag_index: np.ndarray  # (n, N_DIAG) positions in diag_lut, -1 empty
    births: pd.DataFrame  # truth births, aligned with the first rows


def _birth_diagnoses(births: pd.DataFrame, outside: np.ndarray):
    """Z38 (liveborn infant, by place of birth) then P07 codes for preterm or low weight:
    (row, position, code) triplets."""
    n = len(births)
    twin = births["multiple_birth"].to_numpy()
    z38 = np.where(twin, np.where(outside, "Z384", "Z383"), np.where(outside, "Z381", "Z380"))
    gest = births["gestation_weeks"].to_numpy()
    weight = births["birth_weight_g"].to_numpy()
    # ICD-10 P07.2 extreme immaturity (under 28 weeks), P07.3 other preterm (28 to 36 weeks)
    preterm = np.where(gest < EXTREMELY_PRETERM_WEEKS, "P072", "P073")
    low = np.where(weight < EXTREMELY_LOW_BIRTH_WEIGHT_G, "P070", "P071")
    is_pre, is_low = gest < PRETERM_WEEKS, weight < LOW_BIRTH_WEIGHT_G
    rows = np.arange(n)
    return (
        np.concatenate([rows, rows[is_pre], rows[is_low]]),
        np.concatenate([np.zeros(n, np.int64), np.ones(is_pre.sum(), np.int64),
                        1 + is_pre[is_low].astype(np.int64)]),
        np.concatenate([z38, preterm[is_pre], low[is_low]]).astype(object),
    )  # fmt: skip


def _admission_diagnoses(adm: pd.DataFrame, offset: int):
    """Primary then secondary diagnoses of each admission: (row, position, code) triplets."""
    n = len(adm)
    rows = np.arange(n) + offset
    primary = adm["diagnosis_primary"].to_numpy(dtype=object)
    secondary = adm["diagnosis_secondary"]
    has = np.flatnonzero(secondary.notna().to_numpy() & (secondary.to_numpy(object) != ""))
    parts = secondary.iloc[has].str.split(";").explode()
    which = has[np.repeat(np.arange(has.size), secondary.iloc[has].str.count(";").to_numpy() + 1)]
    position = 1 + pd.Series(which).groupby(which).cumcount().to_numpy()
    keep = position < N_DIAG
    return (
        np.concatenate([rows, which[keep] + offset]),
        np.concatenate([np.zeros(n, np.int64), position[keep]]),
        np.concatenate([primary, parts.to_numpy(dtype=object)[keep]]),
    )


def _spells(ctx: RecordContext, p: Mapping[str, Any], rng: np.random.Generator) -> Spells:
    births = ctx.truth["births"]
    adm = ctx.truth["admissions"]
    nb, na = len(births), len(adm)
    outside = rng.random(nb) < p["born_outside_hospital_share"]
    sequence = (adm["admission_id"].to_numpy() % 1000).astype(np.int64)
    if sequence.size and sequence.max() >= _BIRTH_SEQUENCE:
        raise ValueError("hes: a child has 999 or more admissions; EPIKEY keys would collide")
    b_rows, b_pos, b_code = _birth_diagnoses(births, outside)
    a_rows, a_pos, a_code = _admission_diagnoses(adm, nb)
    codes = np.concatenate([b_code, a_code])
    present = ~pd.isna(codes)
    codes_index, lut = pd.factorize(codes[present].astype(str))
    diag_index = np.full((nb + na, N_DIAG), -1, dtype=np.int64)
    diag_index[
        np.concatenate([b_rows, a_rows])[present], np.concatenate([b_pos, a_pos])[present]
    ] = codes_index
    diag_lut, diag_index = _dagger_asterisk(np.asarray(lut, dtype=object), diag_index, p)
    method = Coded.from_values(adm["admission_method"])
    return Spells(
        rows=cohort_rows(
            ctx, np.concatenate([births["person_id"].to_numpy(), adm["person_id"].to_numpy()])
        ),
        admit=np.concatenate([days(births["delivery_date"]), days(adm["admission_date"])]),
        disch=np.concatenate([days(births["discharge_date"]), days(adm["discharge_date"])]),
        birth=np.arange(nb + na) < nb,
        sequence=np.concatenate([np.full(nb, _BIRTH_SEQUENCE), sequence]),
        admimeth=Coded(
            np.concatenate([method.lut, ["82", "83"]]).astype(object),
            np.concatenate([method.lut.size + outside, method.index]),
        ),
        died=np.concatenate([np.zeros(nb, bool), adm["died_in_hospital"].to_numpy()]),
        diag_lut=diag_lut,
        diag_index=diag_index,
        births=births,
    )


def _dagger_asterisk(lut: np.ndarray, index: np.ndarray, p: Mapping[str, Any]):
    """Mark dagger codes with a 5th character D and put their asterisk code (5th character A) in
    the next free position (ICD-10 dagger and asterisk convention, HES DIAG fields)."""
    pairs = p["dagger_asterisk_pairs"]
    daggers = np.flatnonzero(np.isin(lut, list(pairs)))
    if not daggers.size:
        return lut, index
    r, j = np.nonzero(np.isin(index, daggers))
    r, first = np.unique(r, return_index=True)  # one pair per spell
    j = j[first]
    code = lut[index[r, j]].astype(str)
    marked = np.char.add(code, "D").astype(object)
    star = np.char.add(pd.Series(code).map(pairs).to_numpy(dtype=str), "A").astype(object)
    free = np.argmax(index[r] < 0, axis=1)
    room = (index[r, free] < 0) & (free > j)
    new = np.concatenate([marked, star[room]])
    new_lut, new_index = np.unique(new, return_inverse=True)
    index = index.copy()
    index[r, j] = lut.size + new_index[: r.size]
    index[r[room], free[room]] = lut.size + new_index[r.size :]
    return np.concatenate([lut, new_lut]).astype(object), index


def _episode_counts(s: Spells, nights: np.ndarray, p, rng) -> np.ndarray:
    """Number of consultant episodes of each spell."""
    spec = p["extra_episode_by_length_of_stay"]
    step = np.searchsorted(np.asarray(spec["nights"]), nights, side="right") - 1
    prob = np.asarray(spec["probability"])[np.maximum(step, 0)]
    neocare = s.births["neonatal_care"].to_numpy().astype(np.int64)
    by_level = p["birth_extra_episode_by_neocare"]
    prob[: neocare.size] = np.array([by_level[str(k)] for k in range(len(by_level))])[neocare]
    more = rng.random((nights.size, spec["max_extra"])) < prob[:, None]
    return 1 + np.cumprod(more, axis=1).sum(axis=1)


_STARTAGE_LUT = tuple(STARTAGE_CODES)  # 7001..7007, then 1, 2, ... years


def _startage(age_days: np.ndarray, age_years: np.ndarray) -> np.ndarray:
    """Position in ``_STARTAGE_LUT``."""
    under_one = np.searchsorted(np.asarray(STARTAGE_DAYS), age_days, side="right") - 1
    return np.where(age_years < 1, under_one, len(STARTAGE_DAYS) - 1 + age_years)


def reorder(cols: dict[str, Any], order: np.ndarray) -> dict[str, Any]:
    """Every column taken at ``order`` (rows may repeat: duplicated records)."""
    out: dict[str, Any] = {}
    for name, col in cols.items():
        if isinstance(col, Coded):
            out[name] = Coded(col.lut, col.index[order])
        elif isinstance(col, tuple):
            out[name] = (col[0][order], col[1][order])
        else:
            out[name] = np.asarray(col)[order]
    return out


def _hes_apc(ctx, p, hident) -> tuple[pd.DataFrame, np.ndarray]:
    """The APC table, and the positions in ``hident.tokens`` of the tokens it holds."""
    rng = ctx.rng("hes.apc")
    c = ctx.cohort
    s = _spells(ctx, p, rng)
    open_ = np.isnat(s.disch)
    nights = (np.where(open_, census_day(ctx), s.disch) - s.admit).astype(np.int64)
    k = _episode_counts(s, nights, p, rng)
    spell = np.repeat(np.arange(k.size), k)
    order = np.arange(spell.size) - np.repeat(np.cumsum(k) - k, k)  # 0 for the first episode
    last = order == k[spell] - 1
    # episode boundaries: k - 1 sorted change days within each spell
    width = max(int(k.max(initial=1)) - 1, 1)
    u = rng.random((k.size, width))
    u[np.arange(width)[None, :] >= (k - 1)[:, None]] = 1.0  # unused columns sort last
    cuts = np.floor(np.sort(u, axis=1) * (nights[:, None] + 1))
    cuts = np.minimum(cuts, nights[:, None]).astype(np.int64)
    start_off = np.where(order == 0, 0, cuts[spell, np.maximum(order - 1, 0)])
    end_off = np.where(last, nights[spell], cuts[spell, np.minimum(order, width - 1)])
    admit = s.admit[spell]
    epistart = admit + start_off
    epiend = np.where(last & open_[spell], NO_DATE, admit + end_off)
    rows = s.rows[spell]
    n = spell.size
    birth_ep = s.birth[spell] & (order == 0)
    # identity: second token after an adoption with a new NHS number, or for duplicate ids
    second = hident.split_from[rows] < epistart
    dup_spell = hident.duplicate[s.rows] & ~s.birth
    dup_spell &= rng.random(k.size) < p["hes_duplicate_spell_share"]
    token_index = rows + len(c) * (second | dup_spell[spell])
    keys = c.person_id[rows] * 10_000 + s.sequence[spell] * 10 + order
    dob = days(c.date_of_birth[rows])
    place = c.spell_index(rows, epistart)
    areas = c.area_codes
    elective = np.isin(s.admimeth.index, np.flatnonzero(np.char.startswith(
        s.admimeth.lut.astype(str), "1")))  # fmt: skip
    day_case = elective & (nights <= p["day_case_max_nights"])
    dismeth = np.where(s.died, 1, 0)[spell]
    dismeth = np.where(last, np.where(open_[spell], 2, dismeth), -1)
    month = dob.astype("datetime64[M]").astype(np.int64) % 12 + 1
    mydob_codes, mydob_keys = pd.factorize(year_of(dob) * 100 + month)
    b = s.births
    bi = np.where(birth_ep, spell, 0)  # row of the birth record for birth episodes
    not_birth = ~birth_ep
    cols: dict[str, Any] = {
        "TOKEN_PERSON_ID": Coded(hident.tokens, token_index),
        "EPIKEY": identifiers.epikeys(keys, salt(ctx, SALT_EPIKEY)),
        "EPISTART": epistart,
        "EPIEND": epiend,
        "EPIORDER": Coded.of([str(j) for j in range(1, 10)], order),
        "EPISTAT": Coded.of(["3", "1"], np.isnat(epiend)),
        "EPITYPE": Coded.of(["1", "3"], birth_ep),
        "ADMIDATE": admit,
        "DISDATE": np.where(last, s.disch[spell], NO_DATE),
        "ADMIMETH": Coded(s.admimeth.lut, s.admimeth.index[spell]),
        "DISMETH": Coded.of(["1", "4", "8"], dismeth),
        "CLASSPAT": Coded.of(["1", "2"], day_case[spell]),
        "MYDOB": Coded.of([f"{m % 100:02d}{m // 100}" for m in mydob_keys], mydob_codes),
        "STARTAGE": Coded.of(_STARTAGE_LUT, _startage((epistart - dob).astype(np.int64),
                                                      age_in_years(dob, epistart))),
        "SEX": Coded.of(["1", "2"], c.sex[rows] == "F"),
        "ETHNOS": Coded.of([ETHNOS[e] for e in ETHNICITY_CODES],
                           lookup(c.ethnicity[rows], ETHNICITY_CODES)),
        "LSOA11": Coded.of(areas.ravel(), rows * areas.shape[1] + place),
        "IMD04_DECILE": Coded.of(IMD_LABELS, c.deprivations[rows, place].astype(np.int64) - 1),
        "RESGOR": Coded.from_values(_region_letter_by_la()[c.la_codes[rows, place]]),
        "NEOCARE": Coded.of(["0", "1", "2", "3"], b["neonatal_care"].to_numpy()[bi], not_birth),
        "NUMBABY": Coded.of(["1", "2"], b["multiple_birth"].to_numpy()[bi], not_birth),
        "BIRORDR_1": Coded.of(["0", "1", "2"], b["birth_order"].to_numpy()[bi], not_birth),
        "BIRSTAT_1": Coded.of(["1"], np.zeros(n, np.int64), not_birth),
        "BIRWEIT_1": (b["birth_weight_g"].to_numpy()[bi], not_birth),
        "GESTAT_1": (b["gestation_weeks"].to_numpy()[bi], not_birth),
        "MATAGE": (b["mother_age"].to_numpy()[bi], not_birth),
        "DELMETH_1": Coded.of([str(m) for m in range(10)],
                              b["delivery_method"].to_numpy(dtype=object).astype(int)[bi],
                              not_birth),
    }  # fmt: skip
    diag = s.diag_index[spell]
    for j in range(N_DIAG):
        cols[f"DIAG_{j + 1:02d}"] = Coded(s.diag_lut, diag[:, j])
    dash = Coded.of(["-"], np.zeros(n, dtype=np.int64)).arrow()
    for j in range(N_OPERTN):
        cols[f"OPERTN_{j + 1:02d}"] = dash
    if ctx.messiness != "clean":
        cols = _apc_anomalies(ctx, p, rng, cols, birth_ep, last, dob)
    return frame(HES_APC, cols), token_index


def _apc_anomalies(ctx, p, rng, cols, birth_ep, last, dob) -> dict[str, Any]:
    t = HES_APC
    n = birth_ep.size
    ids = cols["EPIKEY"]

    def change(field, hit, after, error_type) -> None:
        col = cols[field]
        if isinstance(col, tuple):
            values, empty = col
            log(ctx, t, ids[hit], field, error_type, np.where(empty[hit], None, values[hit]),
                after)  # fmt: skip
            values, empty = values.copy(), empty.copy()
            values[hit], empty[hit] = after, False
            cols[field] = (values, empty)
        elif isinstance(col, Coded):
            log(ctx, t, ids[hit], field, error_type, col[hit], after)
            col.set(hit, after)
        else:
            log(ctx, t, ids[hit], field, error_type, col[hit], after)
            col[hit] = after

    # null and invalid dates submitted as 1800-01-01 / 1801-01-01
    rate = anomaly_rate(ctx, p, "hes_null_date")
    for field in ("EPIEND", "DISDATE"):
        hit = np.flatnonzero(~np.isnat(cols[field]))
        hit = hit[pick(rng, hit.size, rate)]
        null = rng.random(hit.size) < p["two_form_anomaly_shares"]["hes_null_date_1800"]
        after = np.where(null, np.datetime64("1800-01-01"),
                         np.datetime64("1801-01-01")).astype("datetime64[D]")  # fmt: skip
        change(field, hit, after, "null_date_1800")
    hit = np.flatnonzero(last & (cols["DISDATE"] > np.datetime64("1900-01-01")))
    hit = hit[pick(rng, hit.size, anomaly_rate(ctx, p, "hes_admidate_after_disdate"))]
    lo, hi = p["date_order_anomaly_days"]["hes_admidate_after_disdate"]
    change("ADMIDATE", hit, cols["DISDATE"][hit] + rng.integers(lo, hi, hit.size),
           "admidate_after_disdate")  # fmt: skip
    hit = np.flatnonzero(cols["EPIEND"] > np.datetime64("1900-01-01"))
    hit = hit[pick(rng, hit.size, anomaly_rate(ctx, p, "hes_epistart_after_epiend"))]
    lo, hi = p["date_order_anomaly_days"]["hes_epistart_after_epiend"]
    change("EPISTART", hit, cols["EPIEND"][hit] + rng.integers(lo, hi, hit.size),
           "epistart_after_epiend")  # fmt: skip
    births = np.flatnonzero(birth_ep)
    hit = births[pick(rng, births.size, anomaly_rate(ctx, p, "hes_gestat_missing"))]
    change("GESTAT_1", hit, 99, "gestat_99_not_known")
    hit = births[pick(rng, births.size, anomaly_rate(ctx, p, "hes_birweit_missing"))]
    change("BIRWEIT_1", hit, 9999, "birweit_9999_not_known")
    hit = births[pick(rng, births.size, anomaly_rate(ctx, p, "hes_numbaby_unknown"))]
    change("NUMBABY", hit, "X", "numbaby_x_not_known")
    change("BIRORDR_1", hit, "X", "numbaby_x_not_known")
    # months 01 to 09 have a leading zero to lose
    early = np.flatnonzero(dob.astype("datetime64[M]").astype(np.int64) % 12 < 9)
    hit = early[pick(rng, early.size, anomaly_rate(ctx, p, "hes_mydob_short"))]
    change("MYDOB", hit, np.char.lstrip(cols["MYDOB"][hit].astype(str), "0"),
           "mydob_leading_zero_lost")  # fmt: skip
    eth = cols["ETHNOS"]
    known = np.flatnonzero(~np.isin(eth.index, np.flatnonzero(np.isin(eth.lut, ["X", "Z"]))))
    hit = known[pick(rng, known.size, anomaly_rate(ctx, p, "hes_ethnos_not_known"))]
    code_x = rng.random(hit.size) < p["two_form_anomaly_shares"]["hes_ethnos_X"]
    change("ETHNOS", hit, np.where(code_x, "X", "Z"), "ethnos_not_known")
    hit = pick(rng, n, anomaly_rate(ctx, p, "hes_duplicate_episode"))
    if not hit.size:
        return cols
    ctx.errors.add_duplicates(DATASET, t.path, ids[hit], "duplicate_episode")
    dash = cols["OPERTN_01"]
    order = np.sort(np.concatenate([np.arange(n), hit]), kind="stable")
    out = reorder({k: v for k, v in cols.items() if not k.startswith("OPERTN")}, order)
    dash = dash.take(np.zeros(order.size, dtype=np.int64))
    out.update({f"OPERTN_{j + 1:02d}": dash for j in range(N_OPERTN)})
    return out


# --------------------------------------------------------------------------------------------
# The bridging file
# --------------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrated(x: np.ndarray, group: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Intercepts per group so that the mean of sigmoid(intercept + x) is the group's target."""
    g = group.max(initial=-1) + 1
    count = np.maximum(np.bincount(group, minlength=g), 1)
    t = np.clip(target, 1e-6, 1 - 1e-6)
    a = np.log(t / (1 - t)) - np.bincount(group, x, minlength=g) / count
    for _ in range(30):  # Newton steps on a smooth monotone function
        s = _sigmoid(a[group] + x)
        f = np.bincount(group, s, minlength=g) / count - t
        d = np.bincount(group, s * (1 - s), minlength=g) / count
        a = a - f / np.maximum(d, 1e-9)
    return a


def _identity_years(ctx, p, ident: PupilIdentity) -> tuple[np.ndarray, ...]:
    """First and last census year under each identity (positions of ``ident.pmrs``), and the
    first and last census day (NaT where the identity has no census record)."""
    pc = census_rows(ctx, p)
    rows = cohort_rows(ctx, pc["person_id"].to_numpy())
    day = days(pc["census_date"])
    index = ident.pmr_index(rows, day)
    last = np.full(ident.pmrs.size, -1, dtype=np.int64)
    np.maximum.at(last, index, pc["academic_year"].to_numpy().astype(np.int64))
    first = np.concatenate([ident.first_year1, ident.first_year2])
    never = np.iinfo(np.int64).max
    first_day = np.full(ident.pmrs.size, never)
    last_day = np.full(ident.pmrs.size, -never)
    np.minimum.at(first_day, index, day.astype(np.int64))
    np.maximum.at(last_day, index, day.astype(np.int64))
    first_day = np.where(first_day == never, NO_DATE, first_day.astype("datetime64[D]"))
    last_day = np.where(last_day == -never, NO_DATE, last_day.astype("datetime64[D]"))
    return first, last, first_day, last_day


def _surname_changed(ctx, rows, first_day, last_day, hident: HesIdentity) -> np.ndarray:
    """Whether the school records behind each identity disagree about the child's surname with
    themselves or with the PDS record they match.

    An adopted child takes the adopters' surname from the order. The records of one PMR that
    spans the order carry both surnames. A PMR whose records all predate the order matches the
    pre-adoptive PDS record (birth surname) when a new NHS number was issued, but otherwise the
    one PDS record, which now holds the adoptive surname. A PMR whose records all follow the
    order (a child adopted before school, or re-registered under a new PMR) agrees with the
    post-adoptive record.
    """
    orders = ctx.adoption_orders()
    order = np.full(len(ctx.cohort), NO_DATE)
    order[cohort_rows(ctx, orders.index.to_numpy())] = orders.to_numpy("datetime64[D]")
    order = order[rows]
    before = first_day < order  # NaT compares False
    spans = before & (last_day >= order)
    new_number = ~np.isnat(hident.split_from[rows])
    return spans | (before & ~new_number)


def _stage_steps(rng, shares: list[float], n: int) -> np.ndarray:
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.searchsorted(cdf, rng.random(n), side="right") + 1


def _bridging(ctx, p, ident: PupilIdentity, hident: HesIdentity) -> tuple[pd.DataFrame, Any]:
    rng = ctx.rng("hes.bridging")
    c = ctx.cohort
    n = len(c)
    first, last, first_day, last_day = _identity_years(ctx, p, ident)
    pupils = np.flatnonzero(first < NEVER)  # positions in ident.pmrs with census records
    rows = pupils % n
    dob = days(c.date_of_birth[rows])
    month = dob.astype("datetime64[M]").astype(np.int64) % 12 + 1
    cohort = year_of(dob) + (month >= 9)  # academic year of birth, by its ending year
    points = p["link_rate_by_birth_cohort"]
    years = np.array(sorted(int(y) for y in points))
    rates = np.array([points[str(y)] for y in years])
    lo = p["link_log_odds"]
    x = (
        lo["ethnic_minority"] * (c.ethnicity[rows] != "WBRI")
        + lo["per_deprivation_decile"] * (c.deprivation[rows].astype(np.float64) - 1)
        + lo["adopted"] * hident.adopted[rows]
        + lo["uasc"] * c.uasc[rows]
    )
    # each birth cohort's PDS-stage intercept keeps its overall link rate at the published one
    group, distinct = pd.factorize(cohort)
    pds_target = np.interp(distinct, years, rates) / p["hes_given_pds"]
    intercept = _calibrated(x, group, pds_target)
    pds = rng.random(pupils.size) < _sigmoid(intercept[group] + x)
    hes = pds & (rng.random(pupils.size) < p["hes_given_pds"])
    # stage 1 step and year; the names steps 1-4 and 7-8 compare fail where the surname changed
    changed = _surname_changed(ctx, rows, first_day[pupils], last_day[pupils], hident)
    step = np.where(
        changed,
        _stage_steps(rng, p["pds_step_shares_identity_changed"], pupils.size),
        _stage_steps(rng, p["pds_step_shares"], pupils.size),
    )
    span = last[pupils] - first[pupils] + 1
    year = first[pupils] + np.floor(rng.random(pupils.size) * span).astype(np.int64)
    shares = p["pds_step_shares"]
    undated_prob = p["pds_step_undated_share"] / (shares[6] + shares[7])
    undated = (step >= 7) & (rng.random(pupils.size) < undated_prob)
    pds_step = np.where(undated, step * 10, step * 10_000 + year)
    hes_step = _stage_steps(rng, p["hes_step_shares"], pupils.size)
    # which token: the identity NHS England held when the NPD record matched
    match_day = march31(year) - MID_JANUARY_BEFORE_MARCH31
    token = rows + n * (hident.split_from[rows] < match_day)
    # a duplicate HES identity is sometimes bridged too (many-to-many)
    extra = np.flatnonzero(
        hes & hident.duplicate[rows] & (rng.random(pupils.size) < p["hes_duplicate_person_bridged"])
    )
    flags = _module_flags(ctx, p, ident)
    all_pupils = np.concatenate([pupils, pupils[extra]])
    all_token = np.concatenate([np.where(hes, token, -1), rows[extra] + n])
    all_pds = np.concatenate([pds_step, pds_step[extra]])
    all_pds_ok = np.concatenate([pds, pds[extra]])
    all_hes = np.concatenate([hes_step, hes_step[extra]])
    all_hes_ok = np.concatenate([hes, hes[extra]])
    order = np.argsort(np.concatenate([np.arange(pupils.size), extra]), kind="stable")
    all_pupils, all_token = all_pupils[order], all_token[order]
    all_pds, all_pds_ok = all_pds[order], all_pds_ok[order]
    all_hes, all_hes_ok = all_hes[order], all_hes_ok[order]
    cols = {
        "PupilMatchingRefAnonymous": Coded(ident.pmrs, all_pupils),
        "tokenpersonid": Coded(hident.tokens, all_token),
        "pds_matchstep": (all_pds, ~all_pds_ok),
        "hes_matchstep": (all_hes, ~all_hes_ok),
        "spring": np.ones(all_pupils.size, dtype=np.int32),
        "ks2": flags["ks2"][all_pupils],
        "ks4": flags["ks4"][all_pupils],
    }
    register_pmrs(ctx, ident, all_pupils)
    return frame(BRIDGING, cols), all_token


def _module_flags(ctx, p, ident: PupilIdentity) -> dict[str, np.ndarray]:
    """Whether each identity (position in ``ident.pmrs``) has KS2 and KS4 records."""
    out = {}
    for stage, offset in p["key_stage_identity_day"].items():
        ks = ctx.truth[stage]
        rows = cohort_rows(ctx, ks["person_id"].to_numpy())
        year = ks["academic_year"].to_numpy().astype(np.int64)
        y = (year - 1970).astype("datetime64[Y]")
        day = (y.astype("datetime64[M]") + 2).astype("datetime64[D]") + 30 + offset
        flag = np.zeros(ident.pmrs.size, dtype=np.int32)
        flag[ident.pmr_index(rows, day)] = 1
        out[stage] = flag
    return out


# --------------------------------------------------------------------------------------------
# The module's entry point
# --------------------------------------------------------------------------------------------


def record(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """The HES APC extract and the bridging file of one shard."""
    p = research_parameters(ctx)
    ident = pupil_identity(ctx, p)
    hident = hes_identity(ctx, p)
    apc, apc_tokens = _hes_apc(ctx, p, hident)
    bridge, bridge_tokens = _bridging(ctx, p, ident, hident)
    used = pd.unique(np.concatenate([apc_tokens, bridge_tokens[bridge_tokens >= 0]]))
    ctx.links.add(DATASET, None, hident.tokens[used], ctx.cohort.person_id[used % len(ctx.cohort)])
    return {HES_APC.name: apc, BRIDGING.name: bridge}

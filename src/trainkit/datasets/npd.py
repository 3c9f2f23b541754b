"""The National Pupil Database research extract, as ECHILD researchers receive it in a TRE.

One Parquet file per table under ``DIR/research/npd/``, covering every year the population spans
(not only the collection years of the statutory returns):

- ``spring_census.parquet``: one row per pupil per January (spring) census, with a
  ``census_year`` column. (In the TRE each year is its own table, ``Spring_Census_YYYY`` with
  ``_SPRyy`` suffixes on the field names; we stack them and drop the suffixes.)
- ``ks2.parquet`` and ``ks4.parquet``: key stage results, ``KS2_``/``KS4_`` prefixed as in
  ``KS2Pupil_1996_to_2019_and_2022`` and ``KS4Pupil_2015_to_2021``.
- ``absence.parquet``: one row per pupil per school per academic year, termly columns.
- ``exclusions.parquet``: one row per suspension or permanent exclusion.
- ``cin.parquet``: the NPD children-in-need module (``CIN_`` prefixed), one row per referral per
  collection year in which it is open: a referral open for three years appears three times, the
  later rows more complete (closure date, CPP end), as in ``CIN_2009_to_2021``.
- ``cla.parquet``: the NPD children looked after module (``CLA_Data_Supplied`` columns), one row
  per episode; a one-third sample before 2003-04, as the DfE collected it.

Every table is keyed by the anonymised Pupil Matching Reference (PMR). Pupils on a census always
have one; CIN and CLA records carry it only when the DfE could match the child to a pupil record,
which needs the child to have been on a school census (so children under school age, never in a
state school, or UASC without school records mostly have none; see ``params/research.yaml``).
An adopted child's school records may carry a new PMR after the adoption order. Dates of birth are
month and year only. Values are typed Parquet columns (strings for codes, ``date32`` for dates,
32-bit integers, doubles); missing is null.

When messiness is not ``clean`` the documented anomalies of these extracts are injected at the
rates of ``params/research.yaml`` and logged to ``ctx.errors`` (dataset ``npd``, file = the
table's path, record id = PMR, or the anonymised LA child id where a record has no PMR). The
generic recording errors of :mod:`trainkit.datasets.messiness` act on names, dates of birth, UPNs
and postcodes (fields with a ``semantic``); these pseudonymised extracts hold none, so their
fields carry no semantic and only the extract-specific anomalies apply. See
``docs/research_extracts.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..parameters import _load_file
from ..simulate.context import age_in_years
from . import identifiers
from .record import RecordContext
from .schema import Field, OutputTable, codes_from

SECTION = "research"
DATASET = "npd"

# Salt offsets (salt = seed * 1000 + offset): one per identifier kind, shared by npd and hes.
SALT_PMR = 101
SALT_PMR_NEW = 102
SALT_TOKEN = 103
SALT_TOKEN_NEW = 104
SALT_EPIKEY = 105
SALT_CIN_CHILD = 106
SALT_CLA_CHILD = 107
SALT_CLA_CHILD_LA = 108
SALT_LAESTAB = 109

NEVER = 9999  # "year" of a first census that never happens
NO_DATE = np.datetime64("NaT", "D")

# --------------------------------------------------------------------------------------------
# Code lists
# --------------------------------------------------------------------------------------------

ETHNICITY_LABELS: dict[str, str] = {
    "WBRI": "British (White)",
    "WIRI": "Irish (White)",
    "WOTH": "Any other White background",
    "WIRT": "Traveller of Irish heritage",
    "WROM": "Gypsy / Romany",
    "MWBC": "White and Black Caribbean (Mixed)",
    "MWBA": "White and Black African (Mixed)",
    "MWAS": "White and Asian (Mixed)",
    "MOTH": "Any other mixed background",
    "AIND": "Indian (Asian or Asian British)",
    "APKN": "Pakistani (Asian or Asian British)",
    "ABAN": "Bangladeshi (Asian or Asian British)",
    "AOTH": "Any other Asian background",
    "BCRB": "Caribbean (Black or Black British)",
    "BAFR": "African (Black or Black British)",
    "BOTH": "Any other Black background",
    "CHNE": "Chinese (Other ethnic group)",
    "OOTH": "Any other ethnic group",
    "REFU": "Refused",
    "NOBT": "Information not obtained",
}
"""DfE ethnicity codes (as in the truth) and the full labels some NPD years hold instead (the
wording of the labels the ECHILD how-to scripts map back to codes)."""

ETHNICITY_CODES: tuple[str, ...] = tuple(ETHNICITY_LABELS)

ETHNIC_MAJOR: dict[str, str] = {
    "WBRI": "WHIT", "WIRI": "WHIT", "WOTH": "WHIT", "WIRT": "WHIT", "WROM": "WHIT",
    "MWBC": "MIXD", "MWBA": "MIXD", "MWAS": "MIXD", "MOTH": "MIXD",
    "AIND": "ASIA", "APKN": "ASIA", "ABAN": "ASIA", "AOTH": "ASIA",
    "BCRB": "BLAC", "BAFR": "BLAC", "BOTH": "BLAC",
    "CHNE": "CHIN", "OOTH": "AOEG", "REFU": "UNCL", "NOBT": "UNCL",
}  # fmt: skip
"""Minor to major ethnic group, as CC ``01_cin.R`` derives it (Gypsy/Roma and Traveller of Irish
heritage are White groups in the DfE's major grouping)."""

MAJOR_CODES = codes_from(
    ("WHIT", "White"),
    ("MIXD", "Mixed / dual background"),
    ("ASIA", "Asian or Asian British"),
    ("BLAC", "Black or Black British"),
    ("CHIN", "Chinese"),
    ("AOEG", "Any other ethnic group"),
    ("UNCL", "Unclassified (refused or not obtained)"),
)
LANGUAGE_CODES = codes_from(
    ("1_ENG", "English (first language known or believed to be English)"),
    ("2_OTH", "Other than English"),
    ("3_UNCL", "Unclassified"),
)
NC_YEAR_CODES = codes_from(
    ("R", "Reception"),
    *((str(y), f"Year {y}") for y in range(1, 12)),
    ("X", "National curriculum year not followed (e.g. some special-school pupils)"),
)
SEN_CODES = codes_from(
    ("N", "No special educational need"),
    ("A", "School Action (before 2015)"),
    ("P", "School Action Plus (before 2015)"),
    ("S", "Statement of SEN (before 2015)"),
    ("K", "SEN support (from 2015)"),
    ("E", "Education, health and care plan (from 2015)"),
)
SEN_TYPE_CODES = codes_from(
    ("SPLD", "Specific learning difficulty"),
    ("MLD", "Moderate learning difficulty"),
    ("SLD", "Severe learning difficulty"),
    ("PMLD", "Profound and multiple learning difficulty"),
    ("SEMH", "Social, emotional and mental health"),
    ("SLCN", "Speech, language and communication needs"),
    ("HI", "Hearing impairment"),
    ("VI", "Visual impairment"),
    ("MSI", "Multi-sensory impairment"),
    ("PD", "Physical disability"),
    ("ASD", "Autistic spectrum disorder"),
    ("OTH", "Other difficulty or disability"),
    ("NSA", "SEN support but no specialist assessment of type of need (from 2015)"),
)
GENDER_MF = codes_from(("M", "Male"), ("F", "Female"), ("0", "Not known"), ("9", "Not specified"))
GENDER_12 = codes_from(
    ("1", "Male"), ("2", "Female"), ("0", "Not recorded or unborn"), ("9", "Indeterminate")
)
FLAG_01 = codes_from(("0", "No"), ("1", "Yes"))
KS2_LEVELS = codes_from(
    ("B", "Working below the level of the test"),
    ("N", "Not awarded a level (below level 3 in the test)"),
    ("T", "Unable to access the test"),
    *((str(v), f"Level {v}") for v in range(2, 7)),
)
EXCLUSION_CATEGORY = codes_from(("FIXD", "Fixed period (suspension)"), ("PERM", "Permanent"))
EXCLUSION_REASONS = codes_from(
    ("PP", "Physical assault against a pupil"),
    ("PA", "Physical assault against an adult"),
    ("VP", "Verbal abuse or threatening behaviour against a pupil"),
    ("VA", "Verbal abuse or threatening behaviour against an adult"),
    ("OW", "Use or threat of use of an offensive weapon or prohibited item (from 2020/21)"),
    ("BU", "Bullying"),
    ("RA", "Racist abuse"),
    ("LG", "Abuse against sexual orientation and gender identity (from 2020/21)"),
    ("DS", "Abuse relating to disability (from 2020/21)"),
    ("SM", "Sexual misconduct"),
    ("DA", "Drug and alcohol related"),
    ("DM", "Damage"),
    ("TH", "Theft"),
    ("DB", "Persistent or general disruptive behaviour (from 2020/21)"),
    ("MT", "Inappropriate use of social media or online technology (from 2020/21)"),
    ("PD", "Persistent disruptive behaviour (before 2020/21)"),
    ("OT", "Other (before 2020/21)"),
)
NEED_CODES = codes_from(
    ("N1", "Abuse or neglect"),
    ("N2", "Child's disability"),
    ("N3", "Parental illness/disability"),
    ("N4", "Family in acute stress"),
    ("N5", "Family dysfunction"),
    ("N6", "Socially unacceptable behaviour"),
    ("N7", "Low income"),
    ("N8", "Absent parenting"),
    ("N9", "Cases other than children in need"),
    ("N0", "Not stated"),
)
CLOSURE_CODES = codes_from(
    ("RC1", "Adopted"),
    ("RC2", "Died"),
    ("RC3", "Child arrangements order"),
    ("RC4", "Special guardianship order"),
    ("RC5", "Transferred to another LA"),
    ("RC6", "Transferred to adult social care"),
    ("RC7", "Services ceased for any other reason"),
    ("RC8", "Case closed after assessment, no further action"),
    ("RC9", "Case closed after assessment, referred to early help"),
)
REFERRAL_SOURCES = codes_from(
    ("1A", "Individual: family member/relative/carer"),
    ("1B", "Individual: acquaintance"),
    ("1C", "Individual: self"),
    ("1D", "Individual: other"),
    ("2A", "Schools"),
    ("2B", "Education services"),
    ("3A", "Health: GP"),
    ("3B", "Health: health visitor"),
    ("3C", "Health: school nurse"),
    ("3D", "Health: other primary health services"),
    ("3E", "Health: A&E"),
    ("3F", "Health: other"),
    ("4", "Housing"),
    ("5A", "LA services: social care"),
    ("5B", "LA services: other internal"),
    ("5C", "LA services: external"),
    ("5D", "LA services: early help"),
    ("6", "Police"),
    ("7", "Other legal agency"),
    ("8", "Other"),
    ("9", "Anonymous"),
    ("10", "Unknown"),
)
ABUSE_CODES = codes_from(
    ("NEG", "Neglect"),
    ("PHY", "Physical abuse"),
    ("SAB", "Sexual abuse"),
    ("EMO", "Emotional abuse"),
    ("MUL", "Multiple (not recommended)"),
)
RNE_CODES = codes_from(
    ("S", "Started to be looked after"),
    ("L", "Change of legal status only"),
    ("P", "Change of placement and carer(s) only"),
    ("T", "Change of placement (same carer) only"),
    ("B", "Change of legal status and placement and carer(s) at the same time"),
    ("U", "Change of legal status and change of placement (same carer) at the same time"),
)
LEGAL_STATUS_CODES = codes_from(
    ("C1", "Interim care order"),
    ("C2", "Full care order"),
    ("D1", "Freeing order granted"),
    ("E1", "Placement order granted"),
    ("V2", "Single period of accommodation under section 20"),
    ("V3", "Accommodated under an agreed series of short-term breaks (episodes recorded)"),
    ("V4", "Accommodated under an agreed series of short-term breaks (agreements recorded)"),
    ("L1", "Under police protection"),
    ("L2", "Emergency protection order"),
    ("L3", "Child assessment order"),
    ("J1", "Remanded to LA accommodation or youth detention"),
    ("J2", "Detained under PACE"),
    ("J3", "Sentenced to a youth rehabilitation order with residence requirement"),
)
PLACEMENT_CODES = codes_from(
    ("A3", "Placed for adoption with consent with current foster carer(s)"),
    ("A4", "Placed for adoption with consent not with current foster carer(s)"),
    ("A5", "Placed for adoption with placement order with current foster carer(s)"),
    ("A6", "Placed for adoption with placement order not with current foster carer(s)"),
    ("H5", "Semi-independent living accommodation"),
    ("K1", "Secure children's home"),
    ("K2", "Children's home"),
    ("P1", "Placed with parent(s)"),
    ("P2", "Independent living"),
    ("P3", "Residential employment"),
    ("R1", "Residential care home"),
    ("R2", "NHS/health trust or other establishment providing medical or nursing care"),
    ("R3", "Family centre or mother and baby unit"),
    ("R5", "Young offender institution or prison"),
    ("S1", "Residential school"),
    ("T0", "Temporary placement"),
    ("T1", "Temporary: hospital"),
    ("T2", "Temporary: child's holiday"),
    ("T3", "Temporary: carer's holiday"),
    ("T4", "Temporary: other, 7 days or less"),
    ("U1", "Foster placement with relative or friend, long term"),
    ("U2", "Foster placement with relative or friend, fostering for adoption"),
    ("U3", "Foster placement with relative or friend, other"),
    ("U4", "Foster placement with other carer, long term"),
    ("U5", "Foster placement with other carer, fostering for adoption"),
    ("U6", "Foster placement with other carer, other"),
    ("Z1", "Other placement"),
)
REC_CODES = codes_from(
    ("X1", "Episode ceases, and new episode begins on same day"),
    ("E11", "Adopted: application unopposed"),
    ("E12", "Adopted: consent dispensed with"),
    ("E13", "Left care to live with someone without parental responsibility"),
    ("E14", "Accommodation on remand ended"),
    ("E15", "Age assessment found the child to be 18 or over"),
    ("E16", "Moved abroad"),
    ("E17", "Aged 18 or over and remained with current carers"),
    ("E2", "Died"),
    ("E3", "Care taken over by another LA"),
    ("E4A", "Returned home as part of the care planning process"),
    ("E4B", "Returned home not as part of the care planning process"),
    ("E41", "Residence order or child arrangements order granted"),
    ("E43", "Special guardianship order made to former foster carer(s) (before 2016)"),
    ("E44", "Special guardianship order made to other carer(s) (before 2016)"),
    ("E45", "Special guardianship order: former foster carers, relative or friend"),
    ("E46", "Special guardianship order: former foster carers, other"),
    ("E47", "Special guardianship order: carers other than former foster carers, relative"),
    ("E48", "Special guardianship order: carers other than former foster carers, other"),
    ("E5", "Moved into independent living with supportive accommodation"),
    ("E6", "Moved into independent living without formalised support"),
    ("E7", "Transferred to residential care funded by adult social care"),
    ("E8", "Period of being looked after ceased for any other reason"),
    ("E9", "Sentenced to custody"),
    ("-10", "Sentinel: episode not ceased (anomaly)"),
)
REASON_PLACE_CHANGE = codes_from(
    ("CARPL", "Change to/implementation of care plan"),
    ("CLOSE", "Resignation/closure of provision"),
    ("ALLEG", "Allegation (s47)"),
    ("STAND", "Standards of care concern"),
    ("APPRR", "Approval removed"),
    ("CREQB", "Carer(s) requests placement end due to child's behaviour"),
    ("CREQO", "Carer(s) requests placement end other than due to child's behaviour"),
    ("CHILD", "Child requests placement end"),
    ("LAREQ", "Responsible/area authority requests placement end"),
    ("PLACE", "Change in the status of placement only"),
    ("CUSTOD", "Custody arrangement"),
    ("OTHER", "Other"),
)

# --------------------------------------------------------------------------------------------
# Table declarations
# --------------------------------------------------------------------------------------------

PMR_PATTERN = r"^[0-9A-F]{18}$"
_SOURCE_NPD = "DfE National Pupil Database as held in the ECHILD TRE (HT scripts; FFT NPD scripts)"


def _pmr(name: str, required: bool = True) -> Field:
    what = "Anonymised pupil matching reference (PMR)"
    if not required:
        what += "; empty where the record could not be matched to a pupil record"
    return Field(name, "string", what + ".", required=required, pattern=PMR_PATTERN)


def _laestab(name: str) -> Field:
    return Field(name, "string", "Anonymised school (LA and establishment number).")


def _acadyr(name: str) -> Field:
    return Field(
        name,
        "string",
        "Academic year, e.g. '2018/2019'.",
        required=True,
        pattern=r"^\d{4}/\d{4}$",
    )


def _yob(name: str) -> Field:
    return Field(name, "int", "Year of birth.", minimum=1970, maximum=2100)


def _mob(name: str) -> Field:
    return Field(name, "int", "Month of birth (1-12).", minimum=1, maximum=12)


def _int(name: str, description: str, **kw) -> Field:
    return Field(name, "int", description, **kw)


SPRING_CENSUS = OutputTable(
    name="npd.spring_census",
    dataset=DATASET,
    path="research/npd/spring_census.parquet",
    format="parquet",
    description=(
        "Spring (January) school census: one row per pupil on roll on census day, per year. "
        "The TRE holds one table per year (Spring_Census_YYYY, PLASC_YYYY before 2006) with "
        "_SPRyy suffixes; here they are stacked with census_year."
    ),
    source=_SOURCE_NPD,
    fields=(
        _pmr("PupilMatchingRefAnonymous"),
        _int("census_year", "Year of the January census (2016 = spring 2016, 2015/16).",
             required=True),
        _int("LA", "DfE LA number of the school.", minimum=100, maximum=999),
        _laestab("LAESTAB_ANON"),
        _yob("YearOfBirth"),
        _mob("MonthOfBirth"),
        Field("Gender", "code", "Sex of the pupil.", GENDER_MF),
        _int("AgeAtStartOfAcademicYear", "Age in years on 31 August before the census."),
        Field("NCyearActual", "code", "National curriculum year.", NC_YEAR_CODES),
        Field("EthnicGroupMinor", "code", "Ethnicity, DfE 4-letter code.",
              codes_from(*ETHNICITY_LABELS.items())),
        Field("EthnicGroupMajor", "code", "Major ethnic group.", MAJOR_CODES),
        Field("LanguageGroupMajor", "code", "First language, major group.", LANGUAGE_CODES),
        _int("FSMeligible", "Known to be eligible for free school meals (1) or not (0).",
             codes=FLAG_01),
        Field("SENprovision", "code", "SEN provision.", SEN_CODES),
        Field("PrimarySENtype", "code", "Primary type of SEN need; empty without SEN.",
              SEN_TYPE_CODES),
        Field("LLSOA", "string", "Small area of the pupil's home (synthetic TKA code standing "
              "in for the LSOA)."),
        _int("IDACI_Decile", "Deprivation decile of the home area (1 = most deprived; the "
             "TRE holds IDACI rank and score).", minimum=1, maximum=10),
    ),
    key=("PupilMatchingRefAnonymous", "census_year"),
)  # fmt: skip

KS2 = OutputTable(
    name="npd.ks2",
    dataset=DATASET,
    path="research/npd/ks2.parquet",
    format="parquet",
    description=(
        "Key stage 2 results: one row per pupil (a few pupils have a second record in the same "
        "year). Levels before 2016, scaled scores and marks from 2016 (KS2Pupil_1996_to_2019_"
        "and_2022)."
    ),
    source=_SOURCE_NPD + "; field names as read by ECHILD pipelines (collateEduKSData)",
    fields=(
        _pmr("KS2_PupilMatchingRefAnonymous"),
        _acadyr("KS2_ACADYR"),
        _int("KS2_LA", "DfE LA number of the school."),
        _laestab("KS2_LAESTAB_ANON"),
        Field("KS2_GENDER", "code", "Sex.", GENDER_MF),
        _yob("KS2_YEAROFBIRTH"),
        _mob("KS2_MONTHOFBIRTH"),
        _int("KS2_NATRES", "Included in national results (1) or not (0).", codes=FLAG_01),
        Field("KS2_READLEV", "code", "Reading test level (before 2016).", KS2_LEVELS),
        Field("KS2_MATLEV", "code", "Mathematics test level (before 2016).", KS2_LEVELS),
        _int("KS2_READMRK", "Reading test mark, 0-50 (from 2016).", minimum=0, maximum=50),
        Field("KS2_READOUTCOME", "string", "Reading outcome: the scaled score 80-120 (from 2016)."),
        _int("KS2_READEXP", "Reading at the expected standard (from 2016).", codes=FLAG_01),
        _int("KS2_READHIGH", "Reading high score, 110+ (from 2016).", codes=FLAG_01),
        _int("KS2_MATMRK", "Mathematics test mark, 0-110 (from 2016).", minimum=0, maximum=110),
        Field("KS2_MATOUTCOME", "string", "Mathematics outcome: the scaled score (from 2016)."),
        _int("KS2_MATEXP", "Mathematics at the expected standard (from 2016).", codes=FLAG_01),
        _int("KS2_MATHIGH", "Mathematics high score, 110+ (from 2016).", codes=FLAG_01),
    ),
    key=("KS2_PupilMatchingRefAnonymous", "KS2_ACADYR"),
)

KS4 = OutputTable(
    name="npd.ks4",
    dataset=DATASET,
    path="research/npd/ks4.parquet",
    format="parquet",
    description="Key stage 4 (GCSE) results: one row per pupil (some pupils have two records).",
    source=_SOURCE_NPD + "; HT 10_exams.r (KS4Pupil_2015_to_2021)",
    fields=(
        _pmr("KS4_PupilMatchingRefAnonymous"),
        _acadyr("KS4_ACADYR"),
        _int("KS4_LA", "DfE LA number of the school."),
        _laestab("KS4_LAESTAB_ANON"),
        Field("KS4_GENDER", "code", "Sex.", GENDER_MF),
        _yob("KS4_YEAROFBIRTH"),
        _mob("KS4_MONTHOFBIRTH"),
        _int("KS4_NATRES", "Included in national results (1) or not (0).", codes=FLAG_01),
        Field("KS4_ATT8", "float", "Attainment 8 score (from 2016).", minimum=0, maximum=90),
        _int("KS4_LEVEL2_EM", "A*-C in English and maths (before 2017).", codes=FLAG_01),
        _int("KS4_LEVEL2_EM_94", "Grade 9-4 in English and maths (from 2017).", codes=FLAG_01),
        _int(
            "KS4_EBACC_E_PTQ_EE", "Entered for all English Baccalaureate subjects.", codes=FLAG_01
        ),
    ),
    key=("KS4_PupilMatchingRefAnonymous", "KS4_ACADYR"),
)

_TERMS = ("Autumn", "Spring", "Summer", "Summer6th")
_ABSENCE_MEASURES = (
    ("SessionsPossible", "Possible sessions (half days) on roll"),
    ("AuthorisedAbsence", "Sessions of authorised absence"),
    ("UnauthorisedAbsence", "Sessions of unauthorised absence"),
    ("OverallAbsence", "Sessions of absence (authorised and unauthorised)"),
    ("TermlyReasonI", "Sessions of authorised absence for illness"),
    ("TermlyReasonM", "Sessions of authorised absence for medical appointments"),
)
ABSENCE = OutputTable(
    name="npd.absence",
    dataset=DATASET,
    path="research/npd/absence.parquet",
    format="parquet",
    description=(
        "Pupil absence: one row per pupil per school per academic year, with termly columns "
        "(Summer = first half of the summer term, Summer6th = second half, from 2012/13). "
        "Empty where the pupil was not on roll at that school in the term, and in summer 2020."
    ),
    source=_SOURCE_NPD + "; HT 09_absence.r",
    fields=(
        _pmr("PupilMatchingRefAnonymous"),
        _acadyr("AcademicYear"),
        _int("LA", "DfE LA number of the school."),
        _laestab("LAESTAB_ANON"),
        *(
            _int(f"{m}_{t}", f"{d}, {t.lower()} term.", minimum=0)
            for m, d in _ABSENCE_MEASURES
            for t in _TERMS
        ),
    ),
    key=("PupilMatchingRefAnonymous", "AcademicYear", "LAESTAB_ANON"),
)

EXCLUSIONS = OutputTable(
    name="npd.exclusions",
    dataset=DATASET,
    path="research/npd/exclusions.parquet",
    format="parquet",
    description="One row per suspension (fixed-period exclusion) or permanent exclusion.",
    source=_SOURCE_NPD + "; HT 08_exclusion.r",
    fields=(
        _pmr("PupilMatchingRefAnonymous"),
        _acadyr("AcademicYear"),
        _int("LA", "DfE LA number of the school."),
        _laestab("LAESTAB_ANON"),
        Field("Category", "code", "Kind of exclusion.", EXCLUSION_CATEGORY, required=True),
        _int("Sessions", "Length of a suspension in sessions; empty if permanent.", minimum=1),
        Field("StartDate", "date", "First day of the exclusion.", required=True),
        Field("ExclusionReason", "code", "Reason for exclusion.", EXCLUSION_REASONS),
    ),
    key=("PupilMatchingRefAnonymous", "StartDate"),
)

CIN = OutputTable(
    name="npd.cin",
    dataset=DATASET,
    path="research/npd/cin.parquet",
    format="parquet",
    description=(
        "NPD children in need module (CIN_2009_to_2021 style): one row per referral per "
        "collection year in which it is open (a referral spanning years is repeated, later rows "
        "more complete). CPP fields describe the latest child protection plan of the referral "
        "started by 31 March."
    ),
    source="DfE NPD CIN module as held in ECHILD: CC 01_cin.R and its PDF; HT guide 12",
    fields=(
        Field("CIN_LAchildID_Anon", "string", "Anonymised LA child id (unique within an LA).",
              required=True),
        _pmr("CIN_PupilMatchingRefAnonymous", required=False),
        _int("CIN_LA", "DfE LA number.", required=True),
        _acadyr("CIN_ACADYR"),
        Field("CIN_CINreferralDate", "date", "Date of referral.", required=True),
        Field("CIN_CINclosureDate", "date", "Case closure; empty if open at 31 March."),
        _int("CIN_ReferralNFA", "Referral closed with no further action (1) or not (0).",
             codes=FLAG_01),
        Field("CIN_ReasonForClosure", "code", "Reason for closure.", CLOSURE_CODES),
        Field("CIN_ReferralSource", "code", "Source of referral.", REFERRAL_SOURCES),
        Field("CIN_PrimaryNeedCode", "code", "Primary need.", NEED_CODES),
        Field("CIN_EthnicGroupMinor", "code", "Ethnicity, DfE code.",
              codes_from(*ETHNICITY_LABELS.items())),
        Field("CIN_EthnicGroupMajor", "code", "Major ethnic group.", MAJOR_CODES),
        _int("CIN_Gender", "Gender (1 male, 2 female, 0 not recorded or unborn, 9 indeterminate).",
             codes=GENDER_12),
        _mob("CIN_MonthOfBirth"),
        _yob("CIN_YearOfBirth"),
        _int("CIN_AgeStartOfCINPeriod", "Age in years at referral; empty if unborn."),
        _int("CIN_AgeEndOfCINPeriod", "Age in years at closure, or at 31 March if open."),
        Field("CIN_DateOfInitialCPC", "date", "Initial child protection conference."),
        Field("CIN_CPPstartDate", "date", "Start of the (latest) child protection plan."),
        Field("CIN_CPPendDate", "date", "End of that plan; empty if open at 31 March."),
        Field("CIN_InitialCategoryOfAbuse", "code", "Initial category of abuse.", ABUSE_CODES),
        Field("CIN_LatestCategoryOfAbuse", "code", "Latest category of abuse.", ABUSE_CODES),
        _int("CIN_NumberOfPreviousCPP", "Number of previous child protection plans.", minimum=0),
        _int("CIN_CINat31March", "Open (a child in need) at 31 March (1) or not (0).",
             codes=FLAG_01),
    ),
    key=("CIN_LA", "CIN_LAchildID_Anon", "CIN_CINreferralDate", "CIN_ACADYR"),
)  # fmt: skip

CLA = OutputTable(
    name="npd.cla",
    dataset=DATASET,
    path="research/npd/cla.parquet",
    format="parquet",
    description=(
        "NPD children looked after module (CLA_Data_Supplied): one row per episode. Collection "
        "years 1999-2003 hold a one-third sample (day of birth divisible by 3, sample_flag 1); "
        "PMRs only from April 2005."
    ),
    source="DfE NPD CLA module as held in ECHILD: CC 02_cla.R and its PDF; HT guide 12",
    fields=(
        _int("la", "DfE LA number.", required=True),
        Field("cla_child_id_anon", "string", "Anonymised child id as the DfE holds it.",
              required=True),
        Field("cla_child_la_code_anon", "string", "Anonymised LA child id (CHILD), unique "
              "within an LA: la + this is the child key.", required=True),
        _pmr("cla_pupilmatchingrefanonymous", required=False),
        Field("date_epi_comm", "date", "Date the episode commenced (DECOM).", required=True),
        Field("date_epi_ceased", "date", "Date the episode ceased (DEC); empty if open."),
        Field("rec", "code", "Reason episode ceased (REC).", REC_CODES),
        Field("poc_start", "date", "Start of the period of care.", required=True),
        Field("reason_for_new_episode", "code", "Reason for new episode (RNE).", RNE_CODES),
        Field("cat_need", "code", "Category of need (CIN).",
              {k: v for k, v in NEED_CODES.items() if k not in ("N9", "N0")}),
        Field("placement", "code", "Placement type (PLACE).", PLACEMENT_CODES),
        Field("legal_status", "code", "Legal status (LS).", LEGAL_STATUS_CODES),
        Field("reason_for_placement_change", "code", "Reason for placement change.",
              REASON_PLACE_CHANGE),
        Field("ethnic", "code", "Ethnicity, DfE code.", codes_from(*ETHNICITY_LABELS.items())),
        _int("sex", "Sex (1 male, 2 female).", codes=codes_from(("1", "Male"), ("2", "Female"))),
        _yob("year_of_birth"),
        _mob("month_of_birth"),
        _int("uasc_status", "Unaccompanied asylum-seeking child (1) or not (0).", codes=FLAG_01),
        _int("sample_flag", "From the one-third sample years 1999-2003 (1) or not (0).",
             codes=FLAG_01),
    ),
    key=("la", "cla_child_la_code_anon", "date_epi_comm"),
)  # fmt: skip

TABLES: tuple[OutputTable, ...] = (SPRING_CENSUS, KS2, KS4, ABSENCE, EXCLUSIONS, CIN, CLA)

# --------------------------------------------------------------------------------------------
# Parameters, rates, Arrow columns
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _file_parameters() -> dict[str, Any]:
    return {k.split(".", 1)[1]: p.value for k, p in _load_file(SECTION).items()}


def research_parameters(ctx: RecordContext) -> dict[str, Any]:
    """The ``research.*`` parameters: from ``ctx.params`` (with any config overrides) when the
    loader holds them, else straight from ``params/research.yaml``."""
    names = _file_parameters()
    if f"{SECTION}.{next(iter(names))}" in ctx.params:
        return {name: ctx.params[f"{SECTION}.{name}"] for name in names}
    return dict(names)


def anomaly_rate(ctx: RecordContext, p: Mapping[str, Any], name: str) -> Any:
    """The rate of anomaly ``name`` at the context's messiness level (0 when clean)."""
    if ctx.messiness == "clean":
        return 0.0
    return p[f"anomaly_{name}"].get(ctx.messiness, 0.0)


def salt(ctx: RecordContext, offset: int) -> int:
    """The salt of one identifier kind for this run."""
    return ctx.seed * 1000 + offset


@dataclass
class Coded:
    """A text column held as positions in a table of distinct values (-1 = empty).

    Most columns of the extracts repeat a few values (codes, PMRs of a few thousand pupils), so
    they are built as positions and turned into Arrow strings with one ``take``.
    """

    lut: np.ndarray  # object array of distinct values
    index: np.ndarray  # int64 positions, -1 for empty

    @classmethod
    def of(cls, lut, index, empty: np.ndarray | None = None) -> Coded:
        index = np.array(index, dtype=np.int64)  # a copy: set() changes it in place
        if empty is not None:
            index = np.where(empty, -1, index)
        return cls(np.asarray(lut, dtype=object), index)

    @classmethod
    def from_values(cls, values: pd.Series | np.ndarray) -> Coded:
        """From a truth column or an object array of strings (None/NaN empty)."""
        if isinstance(values, np.ndarray):
            values = np.where(pd.isna(values), None, values)
        encoded = pa.array(values, type=pa.string(), from_pandas=True).dictionary_encode()
        index = pa.compute.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return cls.of(encoded.dictionary.to_numpy(zero_copy_only=False), index)

    def __len__(self) -> int:
        return self.index.size

    def __getitem__(self, rows) -> np.ndarray:
        """The values at ``rows`` (an object array, None where empty)."""
        i = self.index[rows]
        return np.where(i >= 0, self.lut[np.maximum(i, 0)], None)

    def equals(self, value: str) -> np.ndarray:
        hits = np.flatnonzero(self.lut == value)
        return np.isin(self.index, hits)

    def set(self, rows: np.ndarray, values) -> None:
        """Put new values (a string or an array of strings) at ``rows``."""
        values = np.broadcast_to(np.asarray(values, dtype=object), np.shape(rows))
        new, inverse = np.unique(values.astype(str), return_inverse=True)
        self.index[rows] = self.lut.size + inverse
        self.lut = np.concatenate([self.lut, new.astype(object)])

    def arrow(self) -> pa.Array:
        lut = pa.array(self.lut, type=pa.string())
        return lut.take(pa.array(self.index, mask=self.index < 0))


_ARROW_TYPES = {
    "string": pa.string(),
    "code": pa.string(),
    "int": pa.int32(),
    "float": pa.float64(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}
_NUMPY_TYPES = {"int": np.int32, "float": np.float64, "bool": np.bool_}


def arrow(values: Any, kind: str, mask: np.ndarray | None = None) -> pa.Array:
    """An Arrow array of a field's type from numpy values (NaT, None and ``mask`` are null)."""
    if isinstance(values, pa.Array):
        out = values
    elif isinstance(values, Coded):
        out = values.arrow()
    else:
        values = np.asarray(values)
        if values.dtype.kind == "M":
            values = values.astype("datetime64[D]")
        elif kind in _NUMPY_TYPES and values.dtype.kind in "iufb":
            values = values.astype(_NUMPY_TYPES[kind], copy=False)
        out = pa.array(values, mask=mask, from_pandas=values.dtype == object)
        mask = None
    if mask is not None:
        out = pa.compute.if_else(pa.array(mask), pa.nulls(len(out), out.type), out)
    target = _ARROW_TYPES[kind]
    return out if out.type == target else out.cast(target)


def frame(table: OutputTable, columns: Mapping[str, Any]) -> pd.DataFrame:
    """A record frame with the table's columns in order, each typed per its Field.

    A column is given as a numpy array, a :class:`Coded` column, or ``(values, empty)``.
    """
    data = {}
    for f in table.fields:
        value = columns[f.name]
        mask = None
        if isinstance(value, tuple):
            value, mask = value
        data[f.name] = pd.arrays.ArrowExtensionArray(arrow(value, f.kind, mask))
    return pd.DataFrame(data, copy=False)


def lookup(values: np.ndarray, codes: tuple[str, ...] | np.ndarray) -> np.ndarray:
    """Index of each value in ``codes`` (values must all be in it)."""
    codes = np.asarray(codes)
    order = np.argsort(codes)
    pos = np.searchsorted(codes[order], values)
    return order[np.minimum(pos, len(codes) - 1)]


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------


def days(series: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as ``datetime64[D]`` (NaT kept)."""
    return np.asarray(series, dtype="datetime64[D]")


def year_of(d: np.ndarray) -> np.ndarray:
    return d.astype("datetime64[Y]").astype(np.int64) + 1970


def month_of(d: np.ndarray) -> np.ndarray:
    """Month 1-12."""
    return d.astype("datetime64[M]").astype(np.int64) % 12 + 1


def collection_year(d: np.ndarray) -> np.ndarray:
    """The year ending 31 March that contains each date (meaningless for NaT)."""
    return year_of(d) + (month_of(d) >= 4)


def march31(year: np.ndarray) -> np.ndarray:
    """31 March of each year."""
    y = (np.asarray(year, dtype=np.int64) - 1970).astype("datetime64[Y]")
    return (y.astype("datetime64[M]") + 2).astype("datetime64[D]") + 30


def census_day(ctx: RecordContext) -> np.datetime64:
    return np.datetime64(ctx.census_date, "D")


def year_labels(year_end: np.ndarray) -> Coded:
    """'YYYY/YYYY' labels of academic (or collection) years given by their ending year."""
    year_end = np.asarray(year_end, dtype=np.int64)
    lo = int(year_end.min()) if year_end.size else 2000
    hi = int(year_end.max()) if year_end.size else 2000
    return Coded.of([f"{y - 1}/{y}" for y in range(lo, hi + 1)], year_end - lo)


# --------------------------------------------------------------------------------------------
# The people: rows, PMRs, demographics
# --------------------------------------------------------------------------------------------


def cohort_rows(ctx: RecordContext, person_ids: np.ndarray) -> np.ndarray:
    """Row of each person in the shard's cohort arrays."""
    return np.searchsorted(ctx.cohort.person_id, np.asarray(person_ids, dtype=np.int64))


@dataclass
class PupilIdentity:
    """The PMRs of the shard's people and when each identity is on a school census.

    Attributes:
        pmrs: the PMR of each person (cohort row ``i``), then a second PMR for each person
            (row ``n + i``), used by adopted children whose later school records start a new
            one (None for everyone else).
        new_from: date from which records use the second PMR (NaT for everyone else).
        first_year1, first_year2: first census year under each identity (NEVER if none).
        ethnic_index: position of each person's ethnicity in ``ETHNICITY_CODES``.
        year_of_birth, month_of_birth: of each person.
    """

    pmrs: np.ndarray
    new_from: np.ndarray
    first_year1: np.ndarray
    first_year2: np.ndarray
    ethnic_index: np.ndarray
    year_of_birth: np.ndarray
    month_of_birth: np.ndarray

    def second(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """True where the record of ``rows[i]`` on ``dates[i]`` is under the new identity."""
        return self.new_from[rows] < dates  # NaT compares False

    def pmr_index(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Position in ``pmrs`` of the PMR recorded for ``rows[i]`` on ``dates[i]``."""
        return rows + self.new_from.size * self.second(rows, dates)

    def pmr_column(self, index: np.ndarray) -> Coded:
        return Coded(self.pmrs, np.array(index, dtype=np.int64))

    def first_year_at(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        return np.where(self.second(rows, dates), self.first_year2[rows], self.first_year1[rows])


def pupil_identity(ctx: RecordContext, p: Mapping[str, Any] | None = None) -> PupilIdentity:
    """Each person's PMR(s), from a fixed salt, so the same child has the same PMR everywhere.

    Deterministic for a shard (and kept on the context, so ``npd`` and ``hes`` share it).
    """
    cached = getattr(ctx, "_research_identity", None)
    if cached is not None:
        return cached
    p = p or research_parameters(ctx)
    c = ctx.cohort
    n = len(c)
    pmrs = np.full(2 * n, None, dtype=object)
    pmrs[:n] = identifiers.pmrs(c.person_id, salt(ctx, SALT_PMR))
    new_from = np.full(n, NO_DATE)
    pc = census_rows(ctx, p)
    rows = cohort_rows(ctx, pc["person_id"].to_numpy())
    year = pc["academic_year"].to_numpy().astype(np.int64)
    census_date = days(pc["census_date"])
    first_census = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_census, rows, census_date.astype(np.int64))
    adoptions = ctx.truth["adoptions"]
    adoptions = adoptions[adoptions["date_adopted"].notna()]  # not those still under way
    if len(adoptions):
        # a pupil adopted after starting school gets a new UPN, and sometimes a new PMR
        first = adoptions.sort_values("date_adopted").drop_duplicates("person_id")
        adopted_rows = cohort_rows(ctx, first["person_id"].to_numpy())
        adopted_on = days(first["date_adopted"])
        rng = ctx.rng("npd.identity.new_pmr")
        new = (rng.random(adopted_rows.size) < p["adopted_new_pmr"]) & (
            first_census[adopted_rows] < adopted_on.astype(np.int64)
        )
        adopted_rows = adopted_rows[new]
        new_from[adopted_rows] = adopted_on[new]
        pmrs[n + adopted_rows] = identifiers.pmrs(
            c.person_id[adopted_rows], salt(ctx, SALT_PMR_NEW)
        )
    second = new_from[rows] < census_date
    first_year1 = np.full(n, NEVER, dtype=np.int64)
    first_year2 = np.full(n, NEVER, dtype=np.int64)
    np.minimum.at(first_year1, rows[~second], year[~second])
    np.minimum.at(first_year2, rows[second], year[second])
    dob = days(c.date_of_birth)
    ident = PupilIdentity(
        pmrs,
        new_from,
        first_year1,
        first_year2,
        lookup(c.ethnicity, ETHNICITY_CODES),
        year_of(dob),
        month_of(dob),
    )
    ctx._research_identity = ident
    return ident


def census_rows(ctx: RecordContext, p: Mapping[str, Any]) -> pd.DataFrame:
    """The truth's census rows that the NPD extract holds (pupil-level years only)."""
    pc = ctx.truth["pupil_census"]
    return pc[pc["academic_year"].to_numpy() >= p["npd_first_years"]["census"]]


def register_pmrs(ctx: RecordContext, ident: PupilIdentity, index: np.ndarray) -> None:
    """Register the PMRs at positions ``index`` of ``ident.pmrs`` (-1 = none), each once."""
    index = pd.unique(index[index >= 0])
    n = ident.new_from.size
    ctx.links.add(DATASET, None, ident.pmrs[index], ctx.cohort.person_id[index % n])


def _anon_school(ctx: RecordContext, school_id: np.ndarray) -> Coded:
    inverse, distinct = pd.factorize(np.asarray(school_id, dtype=np.int64))
    return Coded.of(identifiers.anon_ids(distinct, salt(ctx, SALT_LAESTAB)), inverse)


_SEX_LUT = np.array(["M", "F"], dtype=object)


def _sex_index(ctx: RecordContext, rows: np.ndarray) -> np.ndarray:
    return (ctx.cohort.sex[rows] == "F").astype(np.int64)


def pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Positions of the records an anomaly hits (each independently with ``rate``)."""
    if rate <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(rng.random(n) < rate)


def _text(values: Any) -> np.ndarray:
    """Values as text for the error log (None/NaT -> '')."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        out = np.datetime_as_string(values.astype("datetime64[D]")).astype(object)
        out[np.isnat(values)] = ""
        return out.astype(str)
    out = values.astype(object)
    out[pd.isna(out)] = ""
    return out.astype(str)


def log(
    ctx: RecordContext,
    table: OutputTable,
    record_id: np.ndarray,
    field: str,
    error_type: str,
    before: Any,
    after: Any,
) -> None:
    """Log one anomaly, for a whole column of records at once."""
    record_id = np.asarray(record_id, dtype=object)
    if not record_id.size:
        return
    ctx.errors.add(
        DATASET if table.dataset == "npd" else table.dataset,
        table.path,
        record_id,
        field,
        error_type,
        _text(np.broadcast_to(np.asarray(before), record_id.shape)),
        _text(np.broadcast_to(np.asarray(after), record_id.shape)),
    )


def eal_by_person(ctx: RecordContext, p: Mapping[str, Any], ident: PupilIdentity) -> np.ndarray:
    """Whether each person's first language is other than English (drawn once per person)."""
    share = np.array([p["eal_share_by_ethnic_major"][ETHNIC_MAJOR[e]] for e in ETHNICITY_CODES])
    u = ctx.rng("npd.census.language").random(len(ctx.cohort))
    return u < share[ident.ethnic_index]


_MAJOR_LIST = [ETHNIC_MAJOR[e] for e in ETHNICITY_CODES]
_LABEL_LIST = [ETHNICITY_LABELS[e] for e in ETHNICITY_CODES]


def _eth_minor(eth: np.ndarray) -> Coded:
    return Coded.of(ETHNICITY_CODES, eth)


def _eth_major(eth: np.ndarray) -> Coded:
    return Coded.of(_MAJOR_LIST, eth)


# --------------------------------------------------------------------------------------------
# Spring census
# --------------------------------------------------------------------------------------------

_NC_LUT = ["R", *(str(y) for y in range(1, 12)), "X"]


def _spring_census(ctx, p, ident) -> pd.DataFrame:
    pc = census_rows(ctx, p)
    c = ctx.cohort
    rows = cohort_rows(ctx, pc["person_id"].to_numpy())
    year = pc["academic_year"].to_numpy().astype(np.int64)
    cdate = days(pc["census_date"])
    n = len(pc)
    rng = ctx.rng("npd.census")
    pmr_index = ident.pmr_index(rows, cdate)
    yob, mob = ident.year_of_birth[rows], ident.month_of_birth[rows]
    age = year - 1 - yob - (mob >= 9)  # age on 31 August before the census
    school = pc["school_id"].to_numpy()
    special = (school % 10000) // 1000 == 7
    nc_index = pc["nc_year"].to_numpy().astype(np.int64)
    x = special & (rng.random(n) < p["nc_year_x_share_special"])
    nc_index = np.where(x, len(_NC_LUT) - 1, nc_index)
    eth = ident.ethnic_index[rows]
    eal = eal_by_person(ctx, p, ident)[rows]
    spell = c.spell_index(rows, cdate)
    areas = ctx.cohort.area_codes
    cols: dict[str, Any] = {
        "PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "census_year": year,
        "LA": pc["la_code"].to_numpy(),
        "LAESTAB_ANON": _anon_school(ctx, school),
        "YearOfBirth": yob,
        "MonthOfBirth": mob,
        "Gender": Coded.of(_SEX_LUT, _sex_index(ctx, rows)),
        "AgeAtStartOfAcademicYear": age,
        "NCyearActual": Coded.of(_NC_LUT, nc_index),
        "EthnicGroupMinor": _eth_minor(eth),
        "EthnicGroupMajor": _eth_major(eth),
        "LanguageGroupMajor": Coded.of(["1_ENG", "2_OTH"], eal),
        "FSMeligible": pc["fsm_eligible"].to_numpy(),
        "SENprovision": Coded.from_values(pc["sen_provision"]),
        "PrimarySENtype": Coded.from_values(pc["sen_primary_need"]),
        "LLSOA": Coded.of(areas.ravel(), rows * areas.shape[1] + spell),
        "IDACI_Decile": pc["idaci_decile"].to_numpy(),
    }
    if ctx.messiness != "clean":
        _census_anomalies(ctx, p, rng, cols, pc["la_code"].to_numpy(), year, eth)
    register_pmrs(ctx, ident, pmr_index)
    return frame(SPRING_CENSUS, cols)


def _census_anomalies(ctx, p, rng, cols, la, year, eth) -> None:
    t = SPRING_CENSUS
    pmr = cols["PupilMatchingRefAnonymous"]
    # ethnicity coded differently in some LA-years: full labels, or minor codes in the major field
    distinct, inverse = np.unique(la.astype(np.int64) * 10000 + year, return_inverse=True)
    u = rng.random(distinct.size)
    full = anomaly_rate(ctx, p, "census_ethnicity_full_label")
    minor = anomaly_rate(ctx, p, "census_ethnicity_minor_code")
    style = np.where(u < full, 1, np.where(u < full + minor, 2, 0))[inverse]
    major = cols["EthnicGroupMajor"]
    for code, lut, kind in ((1, _LABEL_LIST, "full_label"), (2, ETHNICITY_CODES, "minor_code")):
        hit = np.flatnonzero(style == code)
        after = np.asarray(lut, dtype=object)[eth[hit]]
        log(ctx, t, pmr[hit], "EthnicGroupMajor", f"ethnicity_{kind}", major[hit], after)
        major.set(hit, after)
    gender = cols["Gender"]
    hit = pick(rng, len(gender), anomaly_rate(ctx, p, "census_gender_unknown"))
    forms = p["two_form_anomaly_shares"]
    after = np.where(rng.random(hit.size) < forms["census_gender_0"], "0", "9")
    log(ctx, t, pmr[hit], "Gender", "gender_unknown_code", gender[hit], after)
    gender.set(hit, after)
    sen = cols["SENprovision"]
    e_rows = np.flatnonzero(sen.equals("E"))
    hit = e_rows[pick(rng, e_rows.size, anomaly_rate(ctx, p, "census_sen_lowercase"))]
    log(ctx, t, pmr[hit], "SENprovision", "sen_lowercase_code", sen[hit], "e")
    sen.set(hit, "e")


# --------------------------------------------------------------------------------------------
# Key stages
# --------------------------------------------------------------------------------------------


def _raw_mark(score: np.ndarray, spec: Mapping[str, int], lo: int, mid: int, hi: int):
    """Scaled score back to a test mark: piecewise linear through (lo, 0), (mid, expected),
    (hi, max)."""
    s = score.astype(np.float64)
    below = spec["expected"] * (s - lo) / (mid - lo)
    above = spec["expected"] + (spec["max"] - spec["expected"]) * (s - mid) / (hi - mid)
    return np.round(np.where(s < mid, below, above)).astype(np.int32)


_LEVEL_LUT = ("B", "N", "3", "4", "5", "6")


def _level(score: np.ndarray, year: np.ndarray, p, lo: int) -> np.ndarray:
    """KS2 test level (position in ``_LEVEL_LUT``) from a 2016-scale scaled score."""
    t = p["ks2_level_thresholds"]
    first6, last6 = p["ks2_level6_years"]
    level = np.ones(score.shape, dtype=np.int64)  # N
    level[score <= lo] = 0
    for i, name in enumerate(("3", "4", "5"), start=2):
        level[score >= t[name]] = i
    level[(score >= t["6"]) & (year >= first6) & (year <= last6)] = 5
    return level


def _ks2(ctx, p, ident) -> pd.DataFrame:
    ks = ctx.truth["ks2"]
    rows = cohort_rows(ctx, ks["person_id"].to_numpy())
    year = ks["academic_year"].to_numpy().astype(np.int64)
    test_day = march31(year) + p["key_stage_identity_day"]["ks2"]
    pmr_index = ident.pmr_index(rows, test_day)
    read = ks["read_scaled"].to_numpy().astype(np.int64)
    mat = ks["mat_scaled"].to_numpy().astype(np.int64)
    lo, hi = ctx.params["education.ks2_scaled_score_range"]
    mid = ctx.params["education.ks2_expected_standard"]
    old = year < p["ks2_first_scaled_score_year"]
    high = p["ks2_high_score"]
    marks = p["ks2_raw_marks"]
    score_lut = [str(s) for s in range(lo, hi + 1)]
    cols = {
        "KS2_PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "KS2_ACADYR": year_labels(year),
        "KS2_LA": ks["la_code"].to_numpy(),
        "KS2_LAESTAB_ANON": _anon_school(ctx, ks["school_id"].to_numpy()),
        "KS2_GENDER": Coded.of(_SEX_LUT, _sex_index(ctx, rows)),
        "KS2_YEAROFBIRTH": ident.year_of_birth[rows],
        "KS2_MONTHOFBIRTH": ident.month_of_birth[rows],
        "KS2_NATRES": np.ones(len(ks), dtype=np.int32),
        "KS2_READLEV": Coded.of(_LEVEL_LUT, _level(read, year, p, lo), ~old),
        "KS2_MATLEV": Coded.of(_LEVEL_LUT, _level(mat, year, p, lo), ~old),
        "KS2_READMRK": (_raw_mark(read, marks["read"], lo, mid, hi), old),
        "KS2_READOUTCOME": Coded.of(score_lut, read - lo, old),
        "KS2_READEXP": (read >= mid, old),
        "KS2_READHIGH": (read >= high, old),
        "KS2_MATMRK": (_raw_mark(mat, marks["mat"], lo, mid, hi), old),
        "KS2_MATOUTCOME": Coded.of(score_lut, mat - lo, old),
        "KS2_MATEXP": (mat >= mid, old),
        "KS2_MATHIGH": (mat >= high, old),
    }
    register_pmrs(ctx, ident, pmr_index)
    out = frame(KS2, cols)
    return _duplicate_ks(ctx, p, KS2, out, "ks2", "KS2_PupilMatchingRefAnonymous", "KS2_NATRES")


def _ks4(ctx, p, ident) -> pd.DataFrame:
    ks = ctx.truth["ks4"]
    rows = cohort_rows(ctx, ks["person_id"].to_numpy())
    year = ks["academic_year"].to_numpy().astype(np.int64)
    exam_day = march31(year) + p["key_stage_identity_day"]["ks4"]
    pmr_index = ident.pmr_index(rows, exam_day)
    basics = ks["basics_94"].to_numpy()
    new_grades = year >= p["ks4_grade_94_first_year"]
    att8 = np.round(ks["attainment8"].to_numpy().astype(np.float64), 1)
    cols = {
        "KS4_PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "KS4_ACADYR": year_labels(year),
        "KS4_LA": ks["la_code"].to_numpy(),
        "KS4_LAESTAB_ANON": _anon_school(ctx, ks["school_id"].to_numpy()),
        "KS4_GENDER": Coded.of(_SEX_LUT, _sex_index(ctx, rows)),
        "KS4_YEAROFBIRTH": ident.year_of_birth[rows],
        "KS4_MONTHOFBIRTH": ident.month_of_birth[rows],
        "KS4_NATRES": np.ones(len(ks), dtype=np.int32),
        "KS4_ATT8": (att8, year < p["ks4_attainment8_first_year"]),
        "KS4_LEVEL2_EM": (basics, new_grades),
        "KS4_LEVEL2_EM_94": (basics, ~new_grades),
        "KS4_EBACC_E_PTQ_EE": ks["ebacc_entered"].to_numpy(),
    }
    register_pmrs(ctx, ident, pmr_index)
    out = frame(KS4, cols)
    return _duplicate_ks(ctx, p, KS4, out, "ks4", "KS4_PupilMatchingRefAnonymous", "KS4_NATRES")


def _duplicate_ks(ctx, p, table, out, stage, pmr_field, natres_field) -> pd.DataFrame:
    """A second record in the same year for a few pupils (not in national results)."""
    if ctx.messiness == "clean" or not len(out):
        return out
    rate = p["anomaly_ks_duplicate_record"][ctx.messiness][stage]
    hit = pick(ctx.rng(f"npd.{stage}.duplicates"), len(out), rate)
    if not hit.size:
        return out
    dup = out.iloc[hit].copy()
    dup[natres_field] = pd.array(np.zeros(hit.size, dtype=np.int32), dtype=out[natres_field].dtype)
    pmr = dup[pmr_field].to_numpy(dtype=object)
    ctx.errors.add_duplicates(DATASET, table.path, pmr, "duplicate_ks_record")  # NATRES 0
    both = pd.concat([out, dup], ignore_index=True)
    order = np.argsort(np.concatenate([np.arange(len(out)), hit]), kind="stable")
    return both.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Absence and exclusions
# --------------------------------------------------------------------------------------------


def _absence(ctx, p, ident) -> pd.DataFrame:
    ab = ctx.truth["absence"]
    ab = ab[ab["academic_year"].to_numpy() >= p["npd_first_years"]["absence"]]
    rng = ctx.rng("npd.absence")
    pid = ab["person_id"].to_numpy().astype(np.int64)
    year = ab["academic_year"].to_numpy().astype(np.int64)
    school = ab["school_id"].to_numpy().astype(np.int64)
    term_text = ab["term"]
    term = np.where((term_text == "autumn").to_numpy(), 0, 1) + (term_text == "summer").to_numpy()
    # one record per pupil, academic year and school
    key = (pid * 100 + (year - 1900)) * 10_000_000 + school
    group, distinct = pd.factorize(key)
    g = distinct.size
    first = np.empty(g, dtype=np.int64)
    first[group[::-1]] = np.arange(len(ab) - 1, -1, -1)  # first row of each group
    possible = ab["sessions_possible"].to_numpy().astype(np.int64)
    auth = ab["authorised_absence"].to_numpy().astype(np.int64)
    unauth = ab["unauthorised_absence"].to_numpy().astype(np.int64)
    shares = p["absence_reason_shares"]
    illness = rng.binomial(auth, shares["illness"])
    medical = rng.binomial(auth - illness, min(1.0, shares["medical"] / (1 - shares["illness"])))
    measures = {
        "SessionsPossible": possible,
        "AuthorisedAbsence": auth,
        "UnauthorisedAbsence": unauth,
        "OverallAbsence": auth + unauth,
        "TermlyReasonI": illness,
        "TermlyReasonM": medical,
    }
    # the summer term in two halves: Summer (first) and Summer6th (from its first year)
    summer = np.flatnonzero(term == 2)
    sp = possible[summer]
    half = np.rint(sp * p["absence_summer_first_half_share"]).astype(np.int64)
    frac = half / np.maximum(sp, 1)
    ill1 = rng.binomial(illness[summer], frac)
    med1 = rng.binomial(medical[summer], frac)
    other1 = rng.binomial(auth[summer] - illness[summer] - medical[summer], frac)
    unauth1 = rng.binomial(unauth[summer], frac)
    first_half = {
        "SessionsPossible": half,
        "AuthorisedAbsence": ill1 + med1 + other1,
        "UnauthorisedAbsence": unauth1,
        "OverallAbsence": ill1 + med1 + other1 + unauth1,
        "TermlyReasonI": ill1,
        "TermlyReasonM": med1,
    }
    has6 = year[summer] >= p["absence_summer6th_first_year"]
    out_rows = cohort_rows(ctx, pid[first])
    rows_year = year[first]
    mid_year = march31(rows_year) - 89  # 1 January: the identity in mid-year
    pmr_index = ident.pmr_index(out_rows, mid_year)
    cols: dict[str, Any] = {
        "PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "AcademicYear": year_labels(rows_year),
        "LA": school[first] // 10000,
        "LAESTAB_ANON": _anon_school(ctx, school[first]),
    }
    parts = (
        (np.flatnonzero(term == 0), None),
        (np.flatnonzero(term == 1), None),
        (summer, "first"),
        (summer[has6], "second"),
    )
    for name, values in measures.items():
        for (sel, half_name), t_name in zip(parts, _TERMS, strict=True):
            col = np.zeros(g, dtype=np.int32)
            empty = np.ones(g, dtype=bool)
            if half_name is None:
                vals = values[sel]
            elif half_name == "first":
                vals = first_half[name]
            else:
                vals = values[sel] - first_half[name][has6]
            col[group[sel]] = vals
            empty[group[sel]] = False
            cols[f"{name}_{t_name}"] = (col, empty)
    register_pmrs(ctx, ident, pmr_index)
    return frame(ABSENCE, cols)


def _exclusions(ctx, p, ident) -> pd.DataFrame:
    ex = ctx.truth["exclusions"]
    ex = ex[ex["academic_year"].to_numpy() >= p["npd_first_years"]["exclusions"]]
    rows = cohort_rows(ctx, ex["person_id"].to_numpy())
    start = days(ex["start_date"])
    pmr_index = ident.pmr_index(rows, start)
    school = ex["school_id"].to_numpy().astype(np.int64)
    sessions = ex["sessions"].to_numpy(dtype=np.float64, na_value=np.nan)
    cols = {
        "PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "AcademicYear": year_labels(ex["academic_year"].to_numpy()),
        "LA": school // 10000,
        "LAESTAB_ANON": _anon_school(ctx, school),
        "Category": Coded.of(["FIXD", "PERM"], (ex["category"] == "PERM").to_numpy()),
        "Sessions": (np.nan_to_num(sessions), np.isnan(sessions)),
        "StartDate": start,
        "ExclusionReason": Coded.from_values(ex["reason"]),
    }
    register_pmrs(ctx, ident, pmr_index)
    return frame(EXCLUSIONS, cols)


# --------------------------------------------------------------------------------------------
# Social care modules: matching to pupil records
# --------------------------------------------------------------------------------------------


def match_pmrs(
    ctx: RecordContext,
    p: Mapping[str, Any],
    ident: PupilIdentity,
    rows: np.ndarray,
    dates: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Position in ``ident.pmrs`` of the PMR a social-care record carries (-1 where unmatched),
    for records of ``rows`` as returned on ``dates`` (31 March, or the episode's end)."""
    c = ctx.cohort
    first_year = ident.first_year_at(rows, dates)
    known = first_year <= collection_year(dates)
    later = first_year < NEVER
    before = p["pmr_match_before_school"]
    age = age_in_years(c.date_of_birth[rows], dates)
    prob = np.where(
        known,
        p["pmr_match_known_pupil"],
        np.where(later & (age >= before["min_age"]), before["probability"], 0.0),
    )
    prob = prob * np.where(c.uasc[rows], p["pmr_match_uasc_factor"], 1.0)
    matched = rng.random(rows.size) < prob
    return np.where(matched, ident.pmr_index(rows, dates), -1)


# --------------------------------------------------------------------------------------------
# CIN module
# --------------------------------------------------------------------------------------------


def _latest_by(left: pd.DataFrame, right: pd.DataFrame, on: str, right_on: str) -> pd.DataFrame:
    """For each left row (referral_id, ``on`` date) the latest right row of the same referral
    with ``right_on`` <= the date (NaN where none), in left's order."""
    left = left.assign(_order=np.arange(len(left))).sort_values(on, kind="stable")
    right = right.dropna(subset=[right_on]).sort_values(right_on, kind="stable")
    merged = pd.merge_asof(
        left, right, left_on=on, right_on=right_on, by="referral_id", direction="backward"
    )
    return merged.sort_values("_order").reset_index(drop=True)


def _cin(ctx, p, ident) -> pd.DataFrame:
    ref = ctx.truth["referrals"]
    c = ctx.cohort
    rng = ctx.rng("npd.cin")
    last_year = int(collection_year(census_day(ctx)))
    referral = days(ref["referral_date"])
    closure = days(ref["closure_date"])
    y0 = np.maximum(collection_year(referral), p["cin_first_collection_year"])
    y1 = np.where(np.isnat(closure), last_year, collection_year(closure))
    count = np.clip(y1 - y0 + 1, 0, None)
    r = np.repeat(np.arange(len(ref)), count)
    year = y0[r] + np.arange(r.size) - np.repeat(np.cumsum(count) - count, count)
    year_end = march31(year)
    rows = cohort_rows(ctx, ref["person_id"].to_numpy()[r])
    la = ref["la_code"].to_numpy().astype(np.int64)[r]
    dob = days(c.date_of_birth[rows])
    born = dob <= year_end
    ref_date = referral[r]
    clo = closure[r]
    closed = clo <= year_end
    end = np.where(closed, clo, year_end)
    eth = ident.ethnic_index[rows]
    sex = np.where(born, np.where(c.sex[rows] == "M", 1, 2), 0)
    # latest CPP (and initial conference) of the referral by 31 March
    left = pd.DataFrame(
        {"referral_id": ref["referral_id"].to_numpy()[r], "year_end": year_end.astype("M8[s]")}
    )
    cpp_cols = ["referral_id", "start_date", "end_date", "category", "latest_category",
                "number_of_previous_plans"]  # fmt: skip
    cpp = _latest_by(left, ctx.truth["cp_plans"][cpp_cols], "year_end", "start_date")
    icpc = _latest_by(left, ctx.truth["section47"][["referral_id", "icpc_date"]], "year_end",
                      "icpc_date")  # fmt: skip
    cpp_start = days(cpp["start_date"])
    cpp_end = days(cpp["end_date"])
    cpp_end = np.where(cpp_end <= year_end, cpp_end, NO_DATE)
    prev = cpp["number_of_previous_plans"].to_numpy(dtype=np.float64, na_value=np.nan)
    # an adopted child referred again is a new child to the LA, with a new id (as in the return)
    gen = ctx.identity_generation(c.person_id[rows], ref_date)
    inverse, distinct = pd.factorize(identifiers.person_la_keys(c.person_id[rows], la, gen))
    cin_ids = Coded.of(identifiers.anon_ids(distinct, salt(ctx, SALT_CIN_CHILD)), inverse)
    pmr_index = match_pmrs(ctx, p, ident, rows, year_end, rng)
    reason = ref["closure_reason"].to_numpy(dtype=object)[r]
    cols: dict[str, Any] = {
        "CIN_LAchildID_Anon": cin_ids,
        "CIN_PupilMatchingRefAnonymous": ident.pmr_column(pmr_index),
        "CIN_LA": la,
        "CIN_ACADYR": year_labels(year),
        "CIN_CINreferralDate": ref_date,
        "CIN_CINclosureDate": np.where(closed, clo, NO_DATE),
        "CIN_ReferralNFA": ref["nfa"].to_numpy()[r],
        "CIN_ReasonForClosure": Coded.from_values(np.where(closed, reason, None)),
        "CIN_ReferralSource": Coded.from_values(ref["referral_source"].to_numpy(object)[r]),
        "CIN_PrimaryNeedCode": Coded.from_values(ref["primary_need"].to_numpy(object)[r]),
        "CIN_EthnicGroupMinor": _eth_minor(eth),
        "CIN_EthnicGroupMajor": _eth_major(eth),
        "CIN_Gender": sex,
        "CIN_MonthOfBirth": (ident.month_of_birth[rows], ~born),
        "CIN_YearOfBirth": (ident.year_of_birth[rows], ~born),
        "CIN_AgeStartOfCINPeriod": (age_in_years(dob, ref_date), dob > ref_date),
        "CIN_AgeEndOfCINPeriod": (age_in_years(dob, end), dob > end),
        "CIN_DateOfInitialCPC": days(icpc["icpc_date"]),
        "CIN_CPPstartDate": cpp_start,
        "CIN_CPPendDate": cpp_end,
        "CIN_InitialCategoryOfAbuse": Coded.from_values(cpp["category"]),
        "CIN_LatestCategoryOfAbuse": Coded.from_values(cpp["latest_category"]),
        "CIN_NumberOfPreviousCPP": (np.nan_to_num(prev), np.isnat(cpp_start)),
        "CIN_CINat31March": ~closed,
    }
    if ctx.messiness != "clean":
        _cin_anomalies(ctx, p, rng, cols, closed)
    ctx.links.add(DATASET, la, cin_ids[np.arange(len(cin_ids))], c.person_id[rows])
    register_pmrs(ctx, ident, pmr_index)
    return frame(CIN, cols)


def record_ids(pmr: Coded, fallback: Coded) -> np.ndarray:
    """The PMR of each record, or the fallback identifier where there is none."""
    rows = np.arange(len(pmr))
    values = pmr[rows]
    return np.where(pd.isna(values), fallback[rows], values)


def _cin_anomalies(ctx, p, rng, cols, closed) -> None:
    t = CIN
    n = len(cols["CIN_LAchildID_Anon"])
    ids = record_ids(cols["CIN_PupilMatchingRefAnonymous"], cols["CIN_LAchildID_Anon"])
    touched = {name: np.zeros(n, dtype=bool) for name in cols}  # one anomaly per value

    def hit_among(candidates: np.ndarray, field: str, name: str) -> np.ndarray:
        candidates = candidates[~touched[field][candidates]]
        return candidates[pick(rng, candidates.size, anomaly_rate(ctx, p, name))]

    def change(field: str, hit: np.ndarray, after: Any, error_type: str) -> None:
        col = cols[field]
        log(ctx, t, ids[hit], field, error_type, col[hit], after)
        if isinstance(col, Coded):
            col.set(hit, after)
        else:
            col[hit] = after
        touched[field][hit] = True

    need = cols["CIN_PrimaryNeedCode"]
    has_need = np.flatnonzero(need.index >= 0)
    field = "CIN_PrimaryNeedCode"
    change(field, hit_among(has_need, field, "cin_primary_need_unmapped"), "UNMAPPEDNEEDCODE",
           "need_code_unmapped")  # fmt: skip
    hit = hit_among(has_need, field, "cin_primary_need_not_stated")
    forms = p["two_form_anomaly_shares"]
    n0 = rng.random(hit.size) < forms["cin_need_N0"]
    change(field, hit, np.where(n0, "N0", "NO"), "need_code_not_stated")
    legacy = {f"N{k}": f"A{k}" for k in range(2, 6)}
    old = np.flatnonzero(np.isin(need[np.arange(n)], list(legacy)))
    hit = hit_among(old, field, "cin_primary_need_old_code")
    after = pd.Series(need[hit], dtype=object).map(legacy).to_numpy(dtype=object)
    change(field, hit, after, "need_code_legacy_A")
    valid = list(NEED_CODES) + list(CLOSURE_CODES)
    for field in ("CIN_PrimaryNeedCode", "CIN_ReasonForClosure"):
        values = cols[field][np.arange(n)]
        hit = hit_among(np.flatnonzero(np.isin(values, valid)), field, "cin_code_whitespace")
        code = values[hit].astype(str)
        leading = rng.random(hit.size) < forms["cin_space_before"]
        after = np.where(leading, np.char.add(" ", code), np.char.add(code, " "))
        change(field, hit, after, "code_stray_whitespace")
    for field in ("CIN_CINreferralDate", "CIN_CINclosureDate"):
        hit = hit_among(np.flatnonzero(~np.isnat(cols[field])), field, "cin_date_before_1930")
        after = np.where(
            rng.random(hit.size) < forms["cin_date_1900"],
            np.datetime64("1900-01-01"),
            np.datetime64("1901-01-01"),
        ).astype("datetime64[D]")
        change(field, hit, after, "date_before_1930")
    clo = cols["CIN_CINclosureDate"]
    field = "CIN_CINreferralDate"
    hit = hit_among(np.flatnonzero(closed & (clo > np.datetime64("1930-01-01"))), field,
                    "cin_referral_after_closure")  # fmt: skip
    lo, hi = p["date_order_anomaly_days"]["cin_referral_after_closure"]
    change(field, hit, clo[hit] + rng.integers(lo, hi, hit.size), "referral_after_closure")
    field = "CIN_EthnicGroupMinor"
    hit = hit_among(np.arange(n), field, "cin_ethnicity_invalid")
    invalid = np.asarray(["INVA", "MISS", "N/A "], dtype=object)
    after = invalid[rng.integers(0, len(invalid), hit.size)]
    change(field, hit, after, "ethnicity_invalid_code")
    field = "CIN_Gender"
    hit = hit_among(np.flatnonzero(cols[field] > 0), field, "cin_gender_unknown")
    gender_0 = rng.random(hit.size) < forms["cin_gender_0"]
    change(field, hit, np.where(gender_0, 0, 9), "gender_unknown_code")
    field = "CIN_ReferralSource"
    change(field, hit_among(np.arange(n), field, "cin_referral_source_pr"), "PR",
           "referral_source_invalid")  # fmt: skip


# --------------------------------------------------------------------------------------------
# CLA module
# --------------------------------------------------------------------------------------------


def _cla(ctx, p, ident) -> pd.DataFrame:
    ep = ctx.truth["care_episodes"]
    periods = ctx.truth["care_periods"].set_index("period_id")
    c = ctx.cohort
    rng = ctx.rng("npd.cla")
    end = days(ep["end_date"])
    returned = np.where(np.isnat(end), census_day(ctx), end)
    rows = cohort_rows(ctx, ep["person_id"].to_numpy())
    dob = days(c.date_of_birth[rows])
    sample = p["cla_sample_years"]
    in_sample_years = collection_year(returned) <= sample["last"]
    day = (dob - dob.astype("datetime64[M]")).astype(np.int64) + 1
    keep = ~in_sample_years | (day % sample["day_of_birth_divisor"] == 0)
    ep, end, returned, rows = ep[keep], end[keep], returned[keep], rows[keep]
    in_sample_years = in_sample_years[keep]
    open_ = np.isnat(end)
    period = periods.reindex(ep["period_id"].to_numpy())
    la = ep["la_code"].to_numpy().astype(np.int64)
    # an adopted child looked after again is a new child to the LA, with a new id (as in the 903)
    gen = ctx.identity_generation(c.person_id[rows], days(period["start_date"]))
    inverse, distinct = pd.factorize(identifiers.person_la_keys(c.person_id[rows], la, gen))
    pmr_index = match_pmrs(ctx, p, ident, rows, returned, rng)
    pmr_index = np.where(returned >= np.datetime64(p["cla_pmr_first_date"]), pmr_index, -1)
    rec = ep["reason_ended"].to_numpy(dtype=object)
    cols: dict[str, Any] = {
        "la": la,
        "cla_child_id_anon": Coded.of(
            identifiers.anon_ids(distinct, salt(ctx, SALT_CLA_CHILD)), inverse
        ),
        "cla_child_la_code_anon": Coded.of(
            identifiers.anon_ids(distinct, salt(ctx, SALT_CLA_CHILD_LA)), inverse
        ),
        "cla_pupilmatchingrefanonymous": ident.pmr_column(pmr_index),
        "date_epi_comm": days(ep["start_date"]),
        "date_epi_ceased": end,
        "rec": Coded.from_values(np.where(open_, None, rec)),
        "poc_start": days(period["start_date"]),
        "reason_for_new_episode": Coded.from_values(ep["reason_new_episode"]),
        "cat_need": Coded.from_values(ep["category_of_need"]),
        "placement": Coded.from_values(ep["placement"]),
        "legal_status": Coded.from_values(ep["legal_status"]),
        "reason_for_placement_change": Coded.from_values(ep["reason_place_change"]),
        "ethnic": _eth_minor(ident.ethnic_index[rows]),
        "sex": np.where(c.sex[rows] == "M", 1, 2),
        "year_of_birth": ident.year_of_birth[rows],
        "month_of_birth": ident.month_of_birth[rows],
        "uasc_status": period["uasc"].to_numpy(),
        "sample_flag": in_sample_years,
    }
    if ctx.messiness != "clean":
        _cla_anomalies(ctx, p, rng, cols, open_)
    everyone = np.arange(len(rows))
    for field in ("cla_child_id_anon", "cla_child_la_code_anon"):
        ctx.links.add(DATASET, la, cols[field][everyone], c.person_id[rows])
    register_pmrs(ctx, ident, pmr_index)
    return frame(CLA, cols)


def _cla_anomalies(ctx, p, rng, cols, open_) -> None:
    t = CLA
    ids = cols["cla_child_la_code_anon"]
    rows = np.flatnonzero(open_)
    hit = rows[pick(rng, rows.size, anomaly_rate(ctx, p, "cla_rec_sentinel"))]
    log(ctx, t, ids[hit], "rec", "rec_sentinel_-10", cols["rec"][hit], "-10")
    cols["rec"].set(hit, "-10")
    placeholder = census_day(ctx)
    log(ctx, t, ids[hit], "date_epi_ceased", "rec_sentinel_-10", cols["date_epi_ceased"][hit],
        np.full(hit.size, placeholder))  # fmt: skip
    cols["date_epi_ceased"][hit] = placeholder
    rne = cols["reason_for_new_episode"]
    rows = np.flatnonzero(rne.equals("P"))
    hit = rows[pick(rng, rows.size, anomaly_rate(ctx, p, "cla_rne_trailing_space"))]
    log(ctx, t, ids[hit], "reason_for_new_episode", "code_trailing_space", rne[hit], "P ")
    rne.set(hit, "P ")


# --------------------------------------------------------------------------------------------
# The module's entry point
# --------------------------------------------------------------------------------------------


def record(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """The NPD research extract of one shard: every table's rows, typed as in the Parquet file."""
    p = research_parameters(ctx)
    ident = pupil_identity(ctx, p)
    return {
        SPRING_CENSUS.name: _spring_census(ctx, p, ident),
        KS2.name: _ks2(ctx, p, ident),
        KS4.name: _ks4(ctx, p, ident),
        ABSENCE.name: _absence(ctx, p, ident),
        EXCLUSIONS.name: _exclusions(ctx, p, ident),
        CIN.name: _cin(ctx, p, ident),
        CLA.name: _cla(ctx, p, ident),
    }

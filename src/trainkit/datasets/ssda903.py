"""The SSDA903 return: children looked after, as each local authority submits it to the DfE.

For every collection year (1 April to 31 March, named by the year it ends) and every LA that looked
after a child that year, the files an LA uploads in the CSV format of the DfE's SSDA903 collection:
``header.csv``, ``episodes.csv``, ``reviews.csv``, ``uasc.csv``, ``oc2.csv``, ``oc3.csv``,
``ad1.csv``, ``placed_for_adoption.csv``, ``previous_permanence.csv``, ``missing.csv`` and, from
2023-24, ``sw_episodes.csv``. Column names and code lists follow the DfE's specification as
data-to-insight's ``csc-validator-be-903`` (``config.column_names``) and Social Finance's liia-tools
SSDA903 schema (2024, MIT licence; a copy is in ``specs/``) have it.

Collection rules (see ``docs/ssda903.md`` for the evidence behind each):

* a year's return holds every child the LA looked after at any time in the year: every episode
  open at any time in the year, so an episode open on 31 March is carried into the next year's
  return with its original start date, and DEC/REC are blank while it is still open;
* the header has one row per child in the episodes file, plus care leavers who appear only in
  OC3 (the validator's INT06 wants every OC3 child in the header);
* OC2 covers children looked after continuously for 12 months at 31 March, as the validator
  defines it; OC3 care leavers whose 17th-21st birthday falls in the year; AD1 children adopted in
  the year; placed-for-adoption rows every year from the decision until care ends; previous
  permanence for every child who started to be looked after in the year; social worker episodes
  only from 2023-24.

Nothing here changes the truth: every random draw comes from ``ctx.rng("ssda903.<purpose>")``.
At messiness ``realistic`` and ``heavy`` the module adds anomalies that break named DfE rules, at
the rates of ``params/ssda903.yaml``, and logs each to ``ctx.errors``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..simulate.context import add_years
from .identifiers import (
    UPN_PATTERN,
    UPN_UNKNOWN_CODES,
    UPN_UNKNOWN_CODES_903,
    child_keys,
    split_child_keys,
)
from .record import RecordContext, partitions
from .schema import Field, OutputTable, codes_from

DATASET = "ssda903"
FOLDER = "returns/ssda903/{year}/{la}"
DATE_FORMAT = "%d/%m/%Y"
SOURCE = (
    "DfE SSDA903 children looked after return, CSV format: columns as in data-to-insight "
    "csc-validator-be-903 config.column_names; codes as in Social Finance liia-tools "
    "SSDA903_schema_2024.yml (MIT)"
)
FIRST_SW_YEAR = 2024
"""Social worker episodes were first collected in 2023-24."""

H5_URN_FROM = np.datetime64("2023-10-28")
"""Supported accommodation (H5) needs an Ofsted URN from 28 October 2023 (rule 230)."""

NO_URN = "XXXXXXX"
"""What the DfE asks for where a placement type needs a URN but the provider has none."""

URN_PREFIX = "SC"
"""Ofsted social care URNs are 'SC' and six digits."""

URN_DIGITS = 6

# --------------------------------------------------------------------------------------------
# Code lists ([R] LT24 codes; descriptions from datasets.md 1.2 and the DfE guide)
# --------------------------------------------------------------------------------------------

SEX = codes_from(("1", "Male"), ("2", "Female"))
ETHNIC = codes_from(
    ("WBRI", "White British"), ("WIRI", "White Irish"), ("WOTH", "Any other White background"),
    ("WIRT", "Traveller of Irish heritage"), ("WROM", "Gypsy/Roma"),
    ("MWBC", "White and Black Caribbean"), ("MWBA", "White and Black African"),
    ("MWAS", "White and Asian"), ("MOTH", "Any other Mixed background"), ("AIND", "Indian"),
    ("APKN", "Pakistani"), ("ABAN", "Bangladeshi"), ("AOTH", "Any other Asian background"),
    ("BCRB", "Caribbean"), ("BAFR", "African"), ("BOTH", "Any other Black background"),
    ("CHNE", "Chinese"), ("OOTH", "Any other ethnic group"), ("REFU", "Refused"),
    ("NOBT", "Information not yet obtained"),
)  # fmt: skip
RNE = codes_from(
    ("S", "Started to be looked after"),
    ("L", "Change of legal status only"),
    ("P", "Change of placement and carer(s) only"),
    ("T", "Change of placement (but same carer(s)) only"),
    ("B", "Change of legal status and placement and carer(s) at the same time"),
    ("U", "Change of legal status and change of placement (but same carer(s)) at the same time"),
)
LS = codes_from(
    ("C1", "Interim care order"), ("C2", "Full care order"), ("D1", "Freeing order granted"),
    ("E1", "Placement order granted"),
    ("V2", "Single period of accommodation under section 20"),
    ("V3", "Accommodated under an agreed series of short-term breaks, episodes recorded"),
    ("V4", "Accommodated under an agreed series of short-term breaks, agreements recorded"),
    ("L1", "Under police protection"), ("L2", "Emergency protection order"),
    ("L3", "Child assessment order"),
    ("J1", "Remanded to LA accommodation or youth detention accommodation"),
    ("J2", "Detained in LA accommodation under PACE"),
    ("J3", "Sentenced to a youth rehabilitation order with residence requirement"),
)  # fmt: skip
CIN = codes_from(
    ("N1", "Abuse or neglect"), ("N2", "Child's disability"),
    ("N3", "Parental illness or disability"), ("N4", "Family in acute stress"),
    ("N5", "Family dysfunction"), ("N6", "Socially unacceptable behaviour"),
    ("N7", "Low income"), ("N8", "Absent parenting"),
)  # fmt: skip
PLACE = codes_from(
    ("A3", "Placed for adoption with parental/guardian consent with current foster carer(s)"),
    ("A4", "Placed for adoption with parental/guardian consent not with current foster carer(s)"),
    ("A5", "Placed for adoption with placement order with current foster carer(s)"),
    ("A6", "Placed for adoption with placement order not with current foster carer(s)"),
    ("H5", "Semi-independent living accommodation not subject to children's homes regulations"),
    ("K1", "Secure children's home"), ("K2", "Children's home"),
    ("P1", "Placed with own parent(s) or other person(s) with parental responsibility"),
    ("P2", "Independent living"), ("P3", "Residential employment"),
    ("R1", "Residential care home"), ("R2", "NHS/health trust or other medical establishment"),
    ("R3", "Family centre or mother and baby unit"), ("R5", "Young offender institution"),
    ("S1", "Residential school"), ("T0", "Temporary move of all types"),
    ("T1", "Temporary move to hospital"), ("T2", "Temporary move for a child's holiday"),
    ("T3", "Temporary move for the carer's holiday"), ("T4", "Temporary move of 7 days or less"),
    ("U1", "Foster placement with relative or friend, long term"),
    ("U2", "Foster placement with relative or friend who is also an approved adopter (FFA)"),
    ("U3", "Foster placement with relative or friend, other"),
    ("U4", "Foster placement with other foster carer, long term"),
    ("U5", "Foster placement with other foster carer who is also an approved adopter (FFA)"),
    ("U6", "Foster placement with other foster carer, other"),
    ("Z1", "Other placements"),
)  # fmt: skip
PLACE_PROVIDER = codes_from(
    ("PR0", "Parent(s) or other person(s) with parental responsibility"),
    ("PR1", "Own provision (by the LA)"), ("PR2", "Other LA provision"),
    ("PR3", "Other public provision (e.g. by a PCT etc)"), ("PR4", "Private provision"),
    ("PR5", "Voluntary/third sector provision"),
)  # fmt: skip
REC = codes_from(
    ("X1", "Episode ceases, and new episode begins on same day"),
    ("E11", "Adopted - application for an adoption order unopposed"),
    ("E12", "Adopted - consent dispensed with by the court"),
    ("E13", "Left care to live with person(s) without parental responsibility"),
    ("E14", "Accommodation on remand ended"),
    ("E15", "Age assessment determined child aged 18 or over"),
    ("E16", "Child moved abroad"),
    ("E17", "Aged 18 (or over) and remained with current carers (staying put)"),
    ("E2", "Died"), ("E3", "Care taken by another LA"),
    ("E4A", "Returned home to live with parents, as part of the care planning process"),
    ("E4B", "Returned home to live with parents, not as part of the care planning process"),
    ("E41", "Residence order or child arrangements order granted"),
    ("E45", "Special guardianship order made to former foster carer(s), relative or friend"),
    ("E46", "Special guardianship order made to former foster carer(s), not relative or friend"),
    ("E47", "Special guardianship order made to carer(s), not former foster carer(s), relative "
            "or friend"),
    ("E48", "Special guardianship order made to carer(s), not former foster carer(s), not "
            "relative or friend"),
    ("E5", "Moved into independent living arrangement with supportive accommodation"),
    ("E6", "Moved into independent living arrangement without formalised support"),
    ("E7", "Transferred to residential care funded by adult social care"),
    ("E8", "Period of being looked after ceased for any other reason"),
    ("E9", "Sentenced to custody"),
)  # fmt: skip
REASON_PLACE_CHANGE = codes_from(
    ("CARPL", "Change to/implementation of care plan"),
    ("CLOSE", "Resignation or closure of provision"),
    ("ALLEG", "Allegation (s47)"), ("STAND", "Standards of care concern"),
    ("APPRR", "Approval removed"), ("CREQB", "Carer request due to child's behaviour"),
    ("CREQO", "Carer request for other reason"), ("CHILD", "Child requesting a move"),
    ("LAREQ", "Responsible/area authority requests a change"),
    ("PLACE", "Change in the status of the placement only"),
    ("CUSTOD", "Child moved into custody"), ("OTHER", "Other"),
)  # fmt: skip
MOTHER = codes_from(("0", "Not a mother"), ("1", "Mother"))
UPN_CODES = {c: UPN_UNKNOWN_CODES[c] for c in UPN_UNKNOWN_CODES_903}
REVIEW_CODE = codes_from(
    ("PN0", "Child aged under 4 at the time of the review"),
    ("PN1", "Child physically attends and speaks for him or herself"),
    ("PN2", "Child physically attends and an advocate speaks on his or her behalf"),
    ("PN3", "Child attends and conveys his or her view symbolically (non-verbally)"),
    ("PN4", "Child physically attends but does not speak for him or herself, does not convey "
            "his or her view symbolically and does not ask an advocate to speak for him or her"),
    ("PN5", "Child does not attend physically but briefs an advocate to speak for him or her"),
    ("PN6", "Child does not attend but conveys his or her feelings to the review by a "
            "facilitative medium"),
    ("PN7", "Child does not attend nor are his or her views conveyed to the review"),
)  # fmt: skip
BINARY = codes_from(("0", "No"), ("1", "Yes"))
SDQ_REASON = codes_from(
    ("SDQ1", "No form returned as child was aged under 4 or over 17 at date of latest "
             "assessment"),
    ("SDQ2", "Carer(s) refused to complete and return the questionnaire"),
    ("SDQ3", "Not possible to complete the questionnaire due to severity of the child's "
             "disability"),
    ("SDQ4", "Other"),
    ("SDQ5", "Child or young person refuses to allow an SDQ to be completed"),
)  # fmt: skip
IN_TOUCH = codes_from(
    ("YES", "In touch"), ("NO", "Not in touch"), ("DIED", "Died"),
    ("REFU", "Young person refuses contact"),
    ("NREQ", "LA not required to be in touch (e.g. care ended by adoption or order)"),
    ("RHOM", "Returned home to parents for 6 months or more"),
)  # fmt: skip
ACTIV = codes_from(
    ("F1", "Full-time in higher education"), ("P1", "Part-time in higher education"),
    ("F2", "Full-time in education other than higher education"),
    ("P2", "Part-time in education other than higher education"),
    ("F4", "Full-time in training or employment"), ("P4", "Part-time in training or employment"),
    ("F5", "Full-time apprenticeship"), ("P5", "Part-time apprenticeship"),
    ("G4", "Not in education, employment or training: illness or disability"),
    ("G5", "Not in education, employment or training: other reasons"),
    ("G6", "Not in education, employment or training: pregnancy or parenting"),
    ("0", "Information not known"),
)  # fmt: skip
_ACCOM_TYPES = {
    "B": "With parents or relatives", "C": "Community home", "D": "Semi-independent, "
    "transitional accommodation", "E": "Supported lodgings", "G": "Gone abroad",
    "H": "Deported", "K": "Ordinary lodgings, without support", "R": "Residence not known",
    "S": "No fixed abode or homeless", "T": "Foyers", "U": "Independent living",
    "V": "Emergency accommodation", "W": "Bed and breakfast", "X": "In custody",
    "Y": "Other accommodation", "Z": "With former foster carers",
}  # fmt: skip
ACCOM = {
    f"{k}{s}": f"{v}, {'suitable' if s == 1 else 'not suitable'}"
    for k, v in _ACCOM_TYPES.items()
    for s in (1, 2)
} | {"0": "Information not known"}
FOSTER_CARE = codes_from(("0", "Not adopted by former foster carer(s)"),
                         ("1", "Adopted by former foster carer(s)"))  # fmt: skip
NB_ADOPTR = codes_from(("1", "One adopter"), ("2", "Two adopters"))
SEX_ADOPTR = codes_from(
    ("M1", "Single male"), ("F1", "Single female"), ("MM", "Male couple"),
    ("FF", "Female couple"), ("MF", "Male and female couple"),
)  # fmt: skip
LS_ADOPTR = codes_from(
    ("L0", "Single person"), ("L11", "Married couple, different sex"),
    ("L12", "Married couple, same sex"), ("L2", "Civil partners"),
    ("L3", "Unmarried couple, different sex"), ("L4", "Unmarried couple, same sex"),
)  # fmt: skip
REASON_PLACED_CEASED = codes_from(
    ("RD1", "Child's needs changed subsequent to decision"),
    ("RD2", "Court did not make placement order"),
    ("RD3", "Prospective adopters could not be found"),
    ("RD4", "Any other reason"),
)  # fmt: skip
PREV_PERM = codes_from(
    ("P1", "Adoption"), ("P2", "Special guardianship order (SGO)"),
    ("P3", "Residence order (RO) or child arrangements order (CAO) naming with whom the child "
           "is to live"),
    ("P4", "Unknown"),
    ("Z1", "Child has no previous permanence option, or it is not known whether they have"),
)  # fmt: skip
MISSING = codes_from(("M", "Missing"), ("A", "Away from placement without authorisation"))
SW_REASON = codes_from(
    ("MANAGE", "Management decision"), ("FCONTA", "Family or carer contact"),
    ("LEFTRL", "Social worker left the role"), ("ORGRST", "Organisational restructure"),
    ("TSPROC", "Transfer between teams as part of the LA's process"),
    ("ABSENC", "Social worker absence"), ("CHCHAN", "Child requested a change"),
    ("PCCHAN", "Change in the child's placement or circumstances"),
    ("SWDIED", "Social worker died"), ("OTHERS", "Other reason"),
)  # fmt: skip

PERMANENCE_OF_REC = {"E11": "P1", "E12": "P1", "E41": "P3",
                     "E45": "P2", "E46": "P2", "E47": "P2", "E48": "P2"}  # fmt: skip
"""The previous permanence option a period of care ending with each REC code gives."""

REGISTERED_SETTINGS = ("K1", "K2", "R3", "S1")
"""Placement types in an Ofsted-registered setting with its own URN (rules 218, 221)."""

AGENCY_PLACEMENTS = ("U1", "U2", "U3", "U4", "U5", "U6", "A3", "A4", "A5", "A6")
"""Foster and adoptive placements: they need a URN (rule 218), the agency's where there is one."""

AGENCY_PROVIDERS = ("PR4", "PR5")
"""Independent and voluntary agencies, whose URN is recorded for foster and adoptive placements."""

CONTINUATION_RNE = ("L", "P", "T", "B", "U")
PLACEMENT_CHANGE_RNE = ("P", "B", "T", "U")
NO_PROVIDER_PLACEMENTS = ("T0", "T1", "T2", "T3", "T4", "Z1")

# --------------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------------

_CHILD_PATTERN = r"^[A-Za-z0-9]+$"
_POSTCODE_PATTERN = r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$"


def _child() -> Field:
    return Field(
        "CHILD",
        "string",
        "The LA's own identifier for the child (unique within the LA; a new one in another LA).",
        required=True,
        pattern=_CHILD_PATTERN,
        max_length=10,
        semantic="la_child_id",
    )


def _dob() -> Field:
    return Field(
        "DOB",
        "date",
        "Child's date of birth.",
        required=True,
        date_format=DATE_FORMAT,
        semantic="date_of_birth",
    )


def _date(name: str, description: str, required: bool = False) -> Field:
    return Field(
        name, "date", description, required=required, date_format=DATE_FORMAT, semantic="date"
    )


def _code(name: str, description: str, codes: dict[str, str], required: bool = False) -> Field:
    return Field(name, "code", description, codes=codes, required=required, semantic="code")


def _table(name: str, file: str, description: str, fields: tuple[Field, ...], **kw) -> OutputTable:
    return OutputTable(
        name=f"{DATASET}.{name}",
        dataset=DATASET,
        path=f"{FOLDER}/{file}",
        format="csv",
        description=description,
        source=SOURCE,
        fields=fields,
        **kw,
    )


HEADER = _table(
    "header",
    "header.csv",
    "One row per child in the return: every child in the episodes file, and care leavers who "
    "appear only in OC3.",
    (
        _child(),
        Field("SEX", "code", "Sex.", codes=SEX, required=True, semantic="sex"),
        _dob(),
        Field("ETHNIC", "code", "Ethnic origin.", codes=ETHNIC, required=True,
              semantic="ethnicity"),
        Field(
            "UPN", "string",
            "Unique pupil number, or UN1-UN5 where unknown (UN1 not of school age, UN2 never "
            "attended a maintained school in England).",
            required=True, pattern=f"^(?:{UPN_PATTERN[1:-1]}|UN[1-5])$", max_length=13,
            codes=None, semantic="upn",
        ),
        _code("MOTHER", "Whether a looked-after girl is a mother (blank for boys and for care "
              "leavers not looked after in the year).", MOTHER),
        _date("MC_DOB", "Date of birth of the mother's first child (only when MOTHER is 1)."),
    ),
    key=("CHILD",),
)  # fmt: skip

EPISODES = _table(
    "episodes",
    "episodes.csv",
    "One row per episode open at any time in the year: a new episode starts whenever the legal "
    "status or the placement changes.",
    (
        _child(),
        _date("DECOM", "Date the episode started.", required=True),
        _code("RNE", "Reason for new episode.", RNE, required=True),
        _code("LS", "Legal status.", LS, required=True),
        _code("CIN", "Category of need.", CIN, required=True),
        _code("PLACE", "Placement type.", PLACE, required=True),
        _code("PLACE_PROVIDER", "Placement provider.", PLACE_PROVIDER),
        _date("DEC", "Date the episode ceased; blank if open at 31 March."),
        _code("REC", "Reason the episode ceased; blank if open at 31 March.", REC),
        _code("REASON_PLACE_CHANGE", "Reason for a change of placement.", REASON_PLACE_CHANGE),
        Field("HOME_POST", "string", "Postcode of the child's home when the episode started "
              "(blank for unaccompanied asylum-seeking children).", pattern=_POSTCODE_PATTERN,
              max_length=8, semantic="postcode"),
        Field("PL_POST", "string", "Postcode of the placement.", pattern=_POSTCODE_PATTERN,
              max_length=8, semantic="postcode"),
        Field("URN", "string", "Ofsted unique reference number of the placement provider "
              "(synthetic: 'SC' and 6 digits), XXXXXXX where one is needed but the provider has "
              "none, blank where the placement type takes none.",
              pattern=r"^(SC\d{6}|XXXXXXX)$", max_length=8, semantic="id"),
    ),
    key=("CHILD", "DECOM"),
)  # fmt: skip

REVIEWS = _table(
    "reviews",
    "reviews.csv",
    "One row per statutory review of a looked-after child's case held in the year.",
    (
        _child(),
        _dob(),
        _date("REVIEW", "Date of the review.", required=True),
        _code("REVIEW_CODE", "Method of the child's participation.", REVIEW_CODE, required=True),
    ),
    key=("CHILD", "REVIEW"),
)

UASC = _table(
    "uasc",
    "uasc.csv",
    "One row per child in the episodes file who is or was an unaccompanied asylum-seeking child.",
    (
        _child(),
        Field("SEX", "code", "Sex.", codes=SEX, required=True, semantic="sex"),
        _dob(),
        _date("DUC", "Date UASC status ceased: the 18th birthday."),
    ),
    key=("CHILD",),
)

OC2 = _table(
    "oc2",
    "oc2.csv",
    "Outcomes of children looked after continuously for 12 months at 31 March.",
    (
        _child(),
        _dob(),
        Field("SDQ_SCORE", "int", "Strengths and difficulties questionnaire total score (aged "
              "4-16).", minimum=0, maximum=40),
        _code("SDQ_REASON", "Reason for no SDQ score.", SDQ_REASON),
        _code("CONVICTED", "Convicted or given a final warning or reprimand in the year (aged 10 "
              "or over).", BINARY),
        _code("HEALTH_CHECK", "Development assessment up to date (aged under 5).", BINARY),
        _code("IMMUNISATIONS", "Immunisations up to date.", BINARY),
        _code("TEETH_CHECK", "Teeth checked by a dentist in the year.", BINARY),
        _code("HEALTH_ASSESSMENT", "Annual health assessment up to date.", BINARY),
        _code("SUBSTANCE_MISUSE", "Identified as having a substance misuse problem.", BINARY),
        _code("INTERVENTION_RECEIVED", "Received an intervention for substance misuse.", BINARY),
        _code("INTERVENTION_OFFERED", "Offered an intervention (and refused it).", BINARY),
    ),
    key=("CHILD",),
)  # fmt: skip

OC3 = _table(
    "oc3",
    "oc3.csv",
    "Care leavers whose 17th to 21st birthday fell in the year: their circumstances then.",
    (
        _child(),
        _dob(),
        _code("IN_TOUCH", "Whether the LA is in touch with the care leaver.", IN_TOUCH, True),
        _code("ACTIV", "Main activity.", ACTIV, required=True),
        _code("ACCOM", "Type and suitability of accommodation.", ACCOM, required=True),
    ),
    key=("CHILD",),
)

AD1 = _table(
    "ad1",
    "ad1.csv",
    "Children adopted from care in the year.",
    (
        _child(),
        _dob(),
        _date("DATE_INT", "Date of the decision that the child should be placed for adoption.",
              required=True),
        _date("DATE_MATCH", "Date the child was matched with the adopter(s).", required=True),
        _code("FOSTER_CARE", "Adopted by former foster carer(s).", FOSTER_CARE, required=True),
        _code("NB_ADOPTR", "Number of adopters.", NB_ADOPTR, required=True),
        _code("SEX_ADOPTR", "Sex of the adopter(s).", SEX_ADOPTR, required=True),
        _code("LS_ADOPTR", "Legal status of the adopter(s).", LS_ADOPTR, required=True),
    ),
    key=("CHILD",),
)  # fmt: skip

PLACED_FOR_ADOPTION = _table(
    "placed_for_adoption",
    "placed_for_adoption.csv",
    "Decisions that a looked-after child should be placed for adoption: one row per decision, "
    "in every year's return from the decision until the child leaves care.",
    (
        _child(),
        _dob(),
        _date("DATE_PLACED", "Date of the decision that the child should be placed for adoption.",
              required=True),
        _date("DATE_PLACED_CEASED", "Date of the decision that the child should no longer be "
              "placed for adoption."),
        _code("REASON_PLACED_CEASED", "Reason the decision was reversed.", REASON_PLACED_CEASED),
    ),
    key=("CHILD", "DATE_PLACED"),
)  # fmt: skip

PREVIOUS_PERMANENCE = _table(
    "previous_permanence",
    "previous_permanence.csv",
    "Children who started to be looked after in the year: whether they had a permanence order "
    "(adoption, special guardianship, residence or child arrangements) before.",
    (
        _child(),
        _dob(),
        _code("PREV_PERM", "Previous permanence option.", PREV_PERM, required=True),
        Field("LA_PERM", "string", "DfE number of the LA that arranged the previous permanence "
              "option.", pattern=r"^(\d{3}|WAL|SCO|NUK|NIR)$", max_length=3, semantic="code"),
        _date("DATE_PERM", "Date of the previous permanence order."),
    ),
    key=("CHILD",),
)  # fmt: skip

MISSING_TABLE = _table(
    "missing",
    "missing.csv",
    "Episodes of a looked-after child missing or away from placement without authorisation, "
    "open at any time in the year.",
    (
        _child(),
        _dob(),
        _code("MISSING", "Missing or away without authorisation.", MISSING, required=True),
        _date("MIS_START", "Date the episode started.", required=True),
        _date("MIS_END", "Date the episode ended; blank if still missing at 31 March."),
    ),
    key=("CHILD", "MIS_START"),
)

SW_EPISODES = _table(
    "sw_episodes",
    "sw_episodes.csv",
    "Social worker episodes of looked-after children: one row per allocated social worker.",
    (
        _child(),
        _dob(),
        Field("SW_ID", "string", "Synthetic social worker identifier ('SW', LA number, 4 digits).",
              required=True, pattern=r"^SW\d{7}$", max_length=9, semantic="id"),
        _date("SW_DECOM", "Date the social worker episode started.", required=True),
        _date("SW_DEC", "Date the social worker episode ended; blank if still allocated."),
        _code("SW_REASON", "Reason for the change of social worker.", SW_REASON, required=True),
    ),
    key=("CHILD", "SW_DECOM"),
    first_year=FIRST_SW_YEAR,
)  # fmt: skip

TABLES: tuple[OutputTable, ...] = (
    HEADER, EPISODES, REVIEWS, UASC, OC2, OC3, AD1, PLACED_FOR_ADOPTION, PREVIOUS_PERMANENCE,
    MISSING_TABLE, SW_EPISODES,
)  # fmt: skip
"""The return's files; ``header`` first, which :func:`write_partition` relies on."""


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------

NAT = np.datetime64("NaT", "D")


def _days(values) -> np.ndarray:
    """A datetime64[D] array from a pandas column or array (NaT kept)."""
    return np.asarray(pd.Series(values).to_numpy("datetime64[D]"))


def format_dates(dates: np.ndarray) -> np.ndarray:
    """dd/mm/YYYY strings ('' for NaT), formatting each distinct date once."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.full(d.shape, "", dtype=object)
    ok = ~np.isnat(d)
    if ok.any():
        distinct, inverse = np.unique(d[ok], return_inverse=True)
        text = pd.DatetimeIndex(distinct).strftime(DATE_FORMAT).to_numpy(dtype=object)
        out[ok] = text[inverse]
    return out


def add_months(dates: np.ndarray, months) -> np.ndarray:
    """``dates`` plus whole ``months`` (the day is capped at the month's last day)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    m = d.astype("datetime64[M]")
    day = (d - m.astype("datetime64[D]")).astype(np.int64)
    nm = m + np.asarray(months)
    last = ((nm + 1).astype("datetime64[D]") - nm.astype("datetime64[D]")).astype(np.int64) - 1
    out = nm.astype("datetime64[D]") + np.minimum(day, last)
    return np.where(np.isnat(d), NAT, out)


def _zfill(values, width: int) -> np.ndarray:
    """Whole numbers as zero-padded strings (works on empty arrays too)."""
    text = np.asarray(values, dtype=np.int64).astype(str)
    return np.char.zfill(text, width) if text.size else text


def _frame_key(frame: pd.DataFrame) -> np.ndarray:
    """The child (person, LA, identity before/after adoption) of each row, as one int64."""
    return child_keys(frame["_pid"], frame["_la"], frame["_gen"])


def _key_year(keys, years) -> np.ndarray:
    """One int64 per (child, LA, collection year)."""
    return np.asarray(keys, dtype=np.int64) * YEAR_SPACE + np.asarray(years, dtype=np.int64)


def _choice(rng: np.random.Generator, probs: dict[str, float], n: int) -> np.ndarray:
    """``n`` codes drawn with the given probabilities (normalised)."""
    codes = np.array(list(probs), dtype=object)
    p = np.array(list(probs.values()), dtype=float)
    return codes[rng.choice(len(codes), size=n, p=p / p.sum())]


def _urn_numbers(texts: np.ndarray) -> np.ndarray:
    """A stable 6-digit number for each text (a synthetic provider's URN), by hashing."""
    out = np.zeros(len(texts), dtype=np.int64)
    distinct, inverse = np.unique(np.asarray(texts, dtype=str), return_inverse=True)
    hashed = pd.util.hash_array(distinct.astype(object), hash_key="trainkit-903-urn")
    out[:] = (hashed % np.uint64(10**URN_DIGITS)).astype(np.int64)[inverse]
    return out


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(np.asarray(z, dtype=float) / math.sqrt(2.0)).astype(float))


class _Params:
    """The module's parameters: from ``ctx.params`` (``ssda903.*``)."""

    def __init__(self, ctx: RecordContext):
        self._p = ctx.params

    def __getitem__(self, name: str):
        return self._p[f"{DATASET}.{name}"]


# --------------------------------------------------------------------------------------------
# The truth, arranged once per shard
# --------------------------------------------------------------------------------------------


class _Truth:
    """Care episodes and periods with their child's details, as aligned numpy arrays."""

    def __init__(self, ctx: RecordContext):
        cohort = ctx.cohort
        self.cohort = cohort
        self.census = np.datetime64(ctx.census_date, "D")
        order = np.argsort(cohort.person_id, kind="stable")
        self._ids = cohort.person_id[order]
        self._order = order
        per = ctx.truth["care_periods"].sort_values(["person_id", "start_date"], kind="stable")
        self.periods = per.reset_index(drop=True)
        ep = ctx.truth["care_episodes"].merge(
            per[["period_id", "start_date", "end_date", "reason_ended"]].rename(
                columns={"start_date": "p_start", "end_date": "p_end", "reason_ended": "p_rec"}
            ),
            on="period_id",
            how="left",
        )
        ep = ep.sort_values(["person_id", "start_date", "period_id", "episode"], kind="stable")
        self.ep = ep.reset_index(drop=True)
        e = self.ep
        self.e_pid = e["person_id"].to_numpy(np.int64)
        self.e_la = e["la_code"].to_numpy(np.int64)
        self.e_period = e["period_id"].to_numpy(np.int64)
        self.e_start = _days(e["start_date"])
        self.e_end = _days(e["end_date"])
        self.e_pstart = _days(e["p_start"])
        self.e_pend = _days(e["p_end"])
        # an adopted child who comes back into care is a new child to the LA (rules 199, 334)
        self.e_gen = ctx.identity_generation(self.e_pid, self.e_pstart)
        self.e_row = self.rows(self.e_pid)
        self.e_rne = e["reason_new_episode"].to_numpy(dtype=object)
        self.e_place = e["placement"].to_numpy(dtype=object)
        # the 903 takes no provider for temporary and "other" placements (rule 178)
        provider = e["placement_provider"].fillna("").to_numpy(dtype=object)
        self.e_provider = np.where(np.isin(self.e_place, NO_PROVIDER_PLACEMENTS), "", provider)
        # the reason for a change of placement is recorded on the episode that the change ends
        # (rule 225), where the truth keeps it on the episode that the change starts
        nxt = e.shift(-1)
        changes = (nxt["period_id"] == e["period_id"]).to_numpy() & np.isin(
            np.roll(self.e_rne, -1), PLACEMENT_CHANGE_RNE
        )
        reason = nxt["reason_place_change"].fillna("").astype(str).to_numpy(dtype=object)
        self.e_rpc = np.where(changes, reason, "").astype(object)
        self.e_plpost = e["placement_postcode"].fillna("").to_numpy(dtype=object)
        self.e_uasc = cohort.uasc[self.e_row]
        home = cohort.postcode_at(self.e_row, self.e_start).astype(object)
        self.e_home = np.where(self.e_uasc, "", home)
        self.e_urn = self._urns()

    def rows(self, person_ids) -> np.ndarray:
        """Cohort row of each person_id."""
        pid = np.asarray(person_ids, dtype=np.int64)
        i = np.searchsorted(self._ids, pid)
        i = np.minimum(i, len(self._ids) - 1)
        if pid.size and not (self._ids[i] == pid).all():
            raise ValueError("ssda903: a truth table names a person who is not in the cohort")
        return self._order[i]

    def _urns(self) -> np.ndarray:
        """URN of each episode's placement, except the year-dependent H5 rule (see below)."""
        place, provider, post = self.e_place, self.e_provider, self.e_plpost
        setting = np.isin(place, REGISTERED_SETTINGS) | (place == "H5")
        agency = np.isin(place, AGENCY_PLACEMENTS) & np.isin(provider, AGENCY_PROVIDERS)
        own = np.isin(place, AGENCY_PLACEMENTS) & ~agency
        # a registered setting's URN follows its postcode and type; an agency's, the postcode
        # district it works from and its sector
        district = pd.Series(post, dtype=object).str.split(" ").str[0].to_numpy(dtype=object)
        basis = np.where(setting, place + "|" + post, "agency|" + provider + "|" + district)
        number = _urn_numbers(basis)
        urn = np.char.add(URN_PREFIX, _zfill(number, URN_DIGITS)).astype(object)
        out = np.full(len(place), "", dtype=object)
        out[setting | agency] = urn[setting | agency]
        out[own] = NO_URN
        return out


# --------------------------------------------------------------------------------------------
# One collection year
# --------------------------------------------------------------------------------------------


def _collection_year(dates: np.ndarray) -> np.ndarray:
    """The collection year (ending 31 March) of each date; NaT gives -1."""
    d = np.asarray(dates, dtype="datetime64[D]")
    month = d.astype("datetime64[M]").astype(np.int64)
    year = month // 12 + 1970 + (month % 12 >= 3)
    return np.where(np.isnat(d), -1, year)


def _window(year: int) -> tuple[np.datetime64, np.datetime64]:
    return np.datetime64(f"{year - 1}-04-01"), np.datetime64(f"{year}-03-31")


def _episodes(t: _Truth, year: int) -> pd.DataFrame:
    """Episodes open at any time in the year, with DEC/REC blank where open at 31 March."""
    start, end = _window(year)
    sel = np.flatnonzero((t.e_start <= end) & (np.isnat(t.e_end) | (t.e_end >= start)))
    e = t.ep.iloc[sel]
    dec = t.e_end[sel]
    closed = ~np.isnat(dec) & (dec <= end)
    urn = t.e_urn[sel].copy()
    h5 = t.e_place[sel] == "H5"
    registered = (year >= FIRST_SW_YEAR) & (np.isnat(dec) | (dec >= H5_URN_FROM))
    urn[h5 & ~registered] = ""
    return pd.DataFrame(
        {
            "_pid": t.e_pid[sel],
            "_la": t.e_la[sel],
            "_period": t.e_period[sel],
            "_gen": t.e_gen[sel],
            "_start": t.e_start[sel],
            "_dec": np.where(closed, dec, NAT),
            "_pstart": t.e_pstart[sel],
            "_pend": t.e_pend[sel],
            "_uasc": t.e_uasc[sel],
            "DECOM": format_dates(t.e_start[sel]),
            "RNE": t.e_rne[sel],
            "LS": e["legal_status"].to_numpy(dtype=object),
            "CIN": e["category_of_need"].to_numpy(dtype=object),
            "PLACE": t.e_place[sel],
            "PLACE_PROVIDER": t.e_provider[sel],
            "DEC": format_dates(np.where(closed, dec, NAT)),
            "REC": np.where(closed, e["reason_ended"].fillna("").to_numpy(dtype=object), ""),
            "REASON_PLACE_CHANGE": np.where(closed, t.e_rpc[sel], ""),
            "HOME_POST": t.e_home[sel],
            "PL_POST": t.e_plpost[sel],
            "URN": urn,
        }
    )


def _children(t: _Truth, ctx: RecordContext, year: int, eps: pd.DataFrame, oc3: pd.DataFrame):
    """The header: one row per child (person, LA, identity) in the episodes or OC3 of the year."""
    start, end = _window(year)
    ek = _frame_key(eps)
    # the UPN the LA holds on the child's last day looked after in the year (the day before the
    # episode ceased: an adoption order brings a new UPN, which is the adopters' to use)
    last_day = np.where(
        np.isnat(eps["_dec"].to_numpy("datetime64[D]")),
        end,
        eps["_dec"].to_numpy("datetime64[D]") - 1,
    )
    by_key = pd.DataFrame({"k": ek, "d": last_day}).groupby("k")["d"].max()
    ok = _frame_key(oc3)
    keys = np.union1d(by_key.index.to_numpy(), ok)
    has_eps = np.isin(keys, by_key.index.to_numpy())
    upn_date = np.full(len(keys), end, dtype="datetime64[D]")
    upn_date[has_eps] = _days(by_key.reindex(keys[has_eps]).to_numpy())
    pid, la, gen = split_child_keys(keys)
    rows = t.rows(pid)
    c = t.cohort
    dob = c.date_of_birth[rows].astype("datetime64[D]")
    female = c.sex[rows] == "F"
    upn, _former = ctx.upns_on(pid, upn_date)
    # DfE rule 209: a child aged 4 by 31 August before the year began is of school age
    school_age = add_years(dob, 4) <= np.datetime64(f"{year - 2}-08-31")
    unknown = np.where(school_age, "UN2", "UN1")
    upn = np.where(upn == "", unknown, upn).astype(object)
    return pd.DataFrame(
        {
            "_pid": pid,
            "_la": la,
            "_gen": gen,
            "_key": keys,
            "_has_eps": has_eps,
            "_dob": dob,
            "_school_age": school_age,
            "SEX": np.where(female, "2", "1").astype(object),
            "DOB": format_dates(dob),
            "ETHNIC": c.ethnicity[rows].astype(object),
            "UPN": upn,
            "MOTHER": np.where(female & has_eps, "0", "").astype(object),
            "MC_DOB": np.full(len(keys), "", dtype=object),
        }
    )


def _care_leavers(ctx: RecordContext) -> pd.DataFrame:
    """The truth's care leaver outcomes: each belongs in the OC3 of the LA it names.

    The truth holds them only for care leavers, by the birthday, of the LA responsible: not for a
    young person looked after after the birthday or not yet looked after (rules 1007, 1016), nor
    for one whose care another LA took over (rule 1011).
    """
    clo = ctx.truth["care_leaver_outcomes"]
    bday = _days(clo["birthday"])
    return clo.assign(
        _bday=bday, _gen=ctx.identity_generation(clo["person_id"].to_numpy(np.int64), bday)
    )


def _oc3(t: _Truth, clo: pd.DataFrame, year: int) -> pd.DataFrame:
    start, end = _window(year)
    bday = clo["_bday"].to_numpy("datetime64[D]")
    sel = (bday >= start) & (bday <= end)
    o = clo[sel]
    return pd.DataFrame(
        {
            "_pid": o["person_id"].to_numpy(np.int64),
            "_la": o["la_code"].to_numpy(np.int64),
            "_gen": o["_gen"].to_numpy(np.int64),
            "IN_TOUCH": o["in_touch"].to_numpy(dtype=object),
            "ACTIV": o["activity"].astype(str).to_numpy(dtype=object),
            "ACCOM": o["accommodation"].astype(str).to_numpy(dtype=object),
        }
    )


def _all_reviews(t: _Truth, ctx: RecordContext, prm: _Params) -> pd.DataFrame:
    """Every statutory review of every period of care (all years), with participation codes."""
    per = t.periods
    start = _days(per["start_date"])
    end = _days(per["end_date"])
    end = np.where(np.isnat(end), t.census + 1, end)
    sched = prm["review_schedule"]
    first = np.busday_offset(start, sched["first_working_days"], roll="forward")
    months = (end.astype("datetime64[M]") - start.astype("datetime64[M]")).astype(np.int64)
    k_max = int(months.max(initial=0)) // sched["later_months"] + 3
    k = np.arange(k_max)
    offset = np.where(k == 0, 0, sched["second_months"] + sched["later_months"] * (k - 1))
    due = add_months(np.repeat(first[:, None], k_max, axis=1), offset[None, :])
    rng = ctx.rng("ssda903.reviews")
    early = rng.integers(0, prm["review_early_days"] + 1, size=due.shape)
    held = np.maximum(due - early, start[:, None] + 1)
    ok = held < end[:, None]
    i, j = np.nonzero(ok)
    pid = per["person_id"].to_numpy(np.int64)[i]
    rows = t.rows(pid)
    date = held[i, j]
    dob = t.cohort.date_of_birth[rows].astype("datetime64[D]")
    under4 = add_years(dob, 4) > date
    code = _choice(rng, prm["review_participation"], len(i))
    code = np.where(under4, "PN0", code)
    return pd.DataFrame(
        {
            "_pid": pid,
            "_la": per["la_code"].to_numpy(np.int64)[i],
            "_gen": ctx.identity_generation(pid, date),
            "_date": date,
            "_under4": under4,
            "_past4": add_years(dob, 4) < date,
            "REVIEW_CODE": code.astype(object),
        }
    ).sort_values(["_pid", "_date"], kind="stable")


def _all_social_workers(t: _Truth, ctx: RecordContext, prm: _Params) -> pd.DataFrame:
    """Social worker episodes of every period of care (all years)."""
    per = t.periods
    start = _days(per["start_date"])
    end = _days(per["end_date"])
    stop = np.where(np.isnat(end), t.census + 1, end)
    lo, hi = prm["social_worker_change_months"]
    months = (stop.astype("datetime64[M]") - start.astype("datetime64[M]")).astype(np.int64)
    k_max = int(months.max(initial=0)) // lo + 2
    rng = ctx.rng("ssda903.social_workers")
    gaps = rng.integers(lo, hi + 1, size=(len(per), k_max))
    gaps[:, 0] = 0
    sw_start = add_months(np.repeat(start[:, None], k_max, axis=1), np.cumsum(gaps, axis=1))
    ok = sw_start < stop[:, None]
    ok[:, 0] = True
    sw_end = np.concatenate([sw_start[:, 1:], np.full((len(per), 1), NAT)], axis=1)
    last = ok & ~np.concatenate([ok[:, 1:], np.zeros((len(per), 1), bool)], axis=1)
    # a child who comes back into the LA's care in the same collection year keeps a social worker
    # between the periods: the DfE wants the year's episodes to follow on (rules SW10, SW11a, and
    # SW12's "even those whilst they were not looked after")
    pid, la_all = per["person_id"].to_numpy(np.int64), per["la_code"].to_numpy(np.int64)
    next_start = np.r_[start[1:], NAT]
    again = np.r_[(pid[1:] == pid[:-1]) & (la_all[1:] == la_all[:-1]), False]
    again &= ~np.isnat(end) & (_collection_year(end) == _collection_year(next_start))
    # ...unless adopted in between: the child who comes back is a new child to the LA
    gen = ctx.identity_generation(pid, start)
    again &= np.r_[gen[1:] == gen[:-1], False]
    sw_end = np.where(last, np.where(again, next_start, end)[:, None], sw_end)
    pool = prm["social_worker_pool"]
    step = rng.integers(1, pool, size=(len(per), k_max))
    worker = (rng.integers(0, pool, size=(len(per), 1)) + np.cumsum(step, axis=1)) % pool
    reason = _choice(rng, prm["social_worker_reasons"], len(per) * k_max).reshape(len(per), -1)
    reason[:, 0] = prm["social_worker_first_reason"]
    i, j = np.nonzero(ok)
    la = per["la_code"].to_numpy(np.int64)[i]
    sw_id = np.char.add(
        np.char.add("SW", _zfill(la, 3)),
        _zfill(worker[i, j], 4),
    )
    return pd.DataFrame(
        {
            "_pid": pid[i],
            "_la": la,
            "_gen": gen[i],
            "_start": sw_start[i, j],
            "_end": sw_end[i, j],
            "SW_ID": sw_id.astype(object),
            "SW_REASON": reason[i, j].astype(object),
        }
    )


def _decisions(ctx: RecordContext) -> pd.DataFrame:
    """Each period's decision that the child should be placed for adoption (the truth's adoption
    process, which has a row for every period whose decision was made, adopted or not yet)."""
    ad = ctx.truth["adoptions"]
    return pd.DataFrame(
        {
            "period_id": ad["period_id"].to_numpy(np.int64),
            "date": _days(ad["date_should_be_placed"]),
            "ceased": _days(ad["date_decision_ceased"]),
            "reason": ad["reason_decision_ceased"].fillna("").astype(str).to_numpy(object),
        }
    )


def _previous_permanence(t: _Truth) -> pd.DataFrame:
    """For each period, the latest earlier period of the child that ended with a permanence
    order: its option code, LA and date."""
    per = t.periods
    rec = per["reason_ended"].fillna("").astype(str).to_numpy(dtype=object)
    option = pd.Series(rec).map(PERMANENCE_OF_REC).fillna("").to_numpy(dtype=object)
    end = _days(per["end_date"])
    la = per["la_code"].to_numpy(np.int64)
    pid = per["person_id"].to_numpy(np.int64)
    has = option != ""
    # carry forward, within each child, the latest permanence period before this one
    idx = np.where(has, np.arange(len(per)), -1)
    last = pd.Series(idx).groupby(pid).cummax().to_numpy()
    prev = pd.Series(last).groupby(pid).shift(1, fill_value=-1).to_numpy().astype(np.int64)
    found = prev >= 0
    j = np.where(found, prev, 0)
    return pd.DataFrame(
        {
            "period_id": per["period_id"].to_numpy(np.int64),
            "PREV_PERM": np.where(found, option[j], "Z1"),
            "LA_PERM": np.where(found, _zfill(la[j], 3), "").astype(object),
            "_date_perm": np.where(found, end[j], NAT),
        }
    )


def _oc2(t: _Truth, ctx: RecordContext, prm: _Params, year: int, eps: pd.DataFrame):
    """Children looked after continuously for 12 months at 31 March, with their outcomes."""
    start, end = _window(year)
    pstart, pend = eps["_pstart"].to_numpy("datetime64[D]"), eps["_pend"].to_numpy("datetime64[D]")
    cont = (pstart <= start) & (np.isnat(pend) | (pend >= end))
    e = eps[cont].drop_duplicates(["_pid", "_la", "_gen"])
    n = len(e)
    pid = e["_pid"].to_numpy(np.int64)
    rows = t.rows(pid)
    dob = t.cohort.date_of_birth[rows].astype("datetime64[D]")
    rng = ctx.rng(f"ssda903.oc2.{year}")
    u = rng.random((8, n))

    def flag(mask, p, draw):
        return np.where(mask, np.where(draw < p, "1", "0"), "").astype(object)

    every = np.ones(n, bool)
    age10 = add_years(dob, 10) <= end
    under5 = add_years(dob, 5) > end
    misuse = u[5] < prm["oc2_substance_misuse"]
    received = misuse & (u[6] < prm["oc2_intervention_received"])
    offered = u[7] < prm["oc2_intervention_offered"]
    # SDQ: rules 186/188/189/197B/157
    # core: 4 by the start and under 17 at the end (rule 186); boundary: turning 4 in the year
    # (after its first day, rule 157) or 17 in it (rule 197B), where SDQ1 is allowed
    fourth, seventeenth = add_years(dob, 4), add_years(dob, 17)
    core = (fourth <= start) & (seventeenth > end)
    boundary = ((fourth > start) & (fourth <= end)) | (
        (seventeenth >= start) & (seventeenth <= end)
    )
    r2 = rng.random((3, n))
    scored = (core & (r2[0] < prm["oc2_sdq_received"])) | (
        boundary & (r2[0] >= prm["oc2_sdq_boundary_no_score"])
    )
    rho = prm["oc2_sdq_risk_correlation"]
    z = rho * t.cohort.child_risk[rows] + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    q = _normal_cdf(z)
    bands = prm["oc2_sdq_bands"]
    cut = np.cumsum([bands["normal"], bands["borderline"]]) / sum(bands.values())
    lo0, top_normal, top_border, top = prm["oc2_sdq_band_limits"]
    lo = np.select([q < cut[0], q < cut[1]], [lo0, top_normal + 1], top_border + 1)
    hi = np.select([q < cut[0], q < cut[1]], [top_normal, top_border], top)
    score = lo + np.floor(r2[1] * (hi - lo + 1)).astype(np.int64)
    reason = np.where(boundary, "SDQ1", _choice(rng, prm["oc2_sdq_reasons"], n))
    eligible = core | boundary
    return pd.DataFrame(
        {
            "_pid": pid,
            "_la": e["_la"].to_numpy(np.int64),
            "_gen": e["_gen"].to_numpy(np.int64),
            "DOB": format_dates(dob),
            "SDQ_SCORE": np.where(eligible & scored, score.astype(str), "").astype(object),
            "SDQ_REASON": np.where(eligible & ~scored, reason, "").astype(object),
            "CONVICTED": flag(age10, prm["oc2_convicted"], u[0]),
            "HEALTH_CHECK": flag(under5, prm["oc2_development_assessment"], u[1]),
            "IMMUNISATIONS": flag(every, prm["oc2_immunisations"], u[2]),
            "TEETH_CHECK": flag(every, prm["oc2_teeth_check"], u[3]),
            "HEALTH_ASSESSMENT": flag(every, prm["oc2_health_assessment"], u[4]),
            "SUBSTANCE_MISUSE": np.where(misuse, "1", "0").astype(object),
            "INTERVENTION_RECEIVED": np.where(misuse, np.where(received, "1", "0"), "").astype(
                object
            ),
            "INTERVENTION_OFFERED": np.where(
                misuse & ~received, np.where(offered, "1", "0"), ""
            ).astype(object),
        }
    )


def _year_tables(
    t: _Truth,
    ctx: RecordContext,
    prm: _Params,
    year: int,
    reviews: pd.DataFrame,
    social_workers: pd.DataFrame,
    decisions: pd.DataFrame,
    permanence: pd.DataFrame,
    leavers: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every table of one collection year, for all LAs (internal columns start with '_')."""
    start, end = _window(year)
    eps = _episodes(t, year)
    oc3 = _oc3(t, leavers, year)
    header = _children(t, ctx, year, eps, oc3)
    keys_eps = _frame_key(eps)
    dob_of = pd.Series(header["DOB"].to_numpy(), index=header["_key"].to_numpy())

    def with_dob(frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with the DOB of each row's child (``_pid``, ``_la``, ``_gen``)."""
        frame = frame.copy()
        frame["DOB"] = dob_of.reindex(_frame_key(frame)).to_numpy()
        return frame

    out: dict[str, pd.DataFrame] = {"header": header, "episodes": eps}
    out["oc3"] = with_dob(oc3)

    # reviews held in the year while looked after by the LA
    rk = _frame_key(reviews)
    rd = reviews["_date"].to_numpy("datetime64[D]")
    rv = reviews[(rd >= start) & (rd <= end) & np.isin(rk, keys_eps)]
    out["reviews"] = with_dob(rv.assign(REVIEW=format_dates(rv["_date"].to_numpy("datetime64[D]"))))

    # UASC: every child in the episodes who is or was an unaccompanied asylum-seeking child
    h = header[header["_has_eps"].to_numpy()]
    uasc = h[t.cohort.uasc[t.rows(h["_pid"])]]
    out["uasc"] = uasc.assign(
        DUC=format_dates(add_years(uasc["_dob"].to_numpy("datetime64[D]"), 18))
    )

    out["oc2"] = _oc2(t, ctx, prm, year, eps)

    # AD1: adopted in the year
    ad = ctx.truth["adoptions"]
    adopted = _days(ad["date_adopted"])  # NaT while the adoption is under way
    a = ad[(adopted >= start) & (adopted <= end)]
    out["ad1"] = with_dob(
        pd.DataFrame(
            {
                "_pid": a["person_id"].to_numpy(np.int64),
                "_la": a["la_code"].to_numpy(np.int64),
                # the child as looked after until the order (a first adoption: identity 0)
                "_gen": ctx.identity_generation(
                    a["person_id"].to_numpy(np.int64), _days(a["date_adopted"]) - 1
                ),
                "DATE_INT": format_dates(_days(a["date_should_be_placed"])),
                "DATE_MATCH": format_dates(_days(a["date_matched"])),
                "FOSTER_CARE": np.where(a["foster_carer"].astype(bool), "1", "0").astype(object),
                "NB_ADOPTR": a["number_of_adopters"].astype("int64").astype(str).to_numpy(object),
                "SEX_ADOPTR": a["sex_of_adopters"].to_numpy(dtype=object),
                "LS_ADOPTR": a["legal_status_of_adopters"].to_numpy(dtype=object),
            }
        )
    )

    # placed for adoption: every decision made by the end of the year, for periods in the return
    periods = eps.drop_duplicates("_period")[["_pid", "_la", "_gen", "_period"]]
    d = periods.merge(decisions, left_on="_period", right_on="period_id", how="inner")
    d = d[d["date"].to_numpy("datetime64[D]") <= end]
    ceased = d["ceased"].to_numpy("datetime64[D]")
    ceased = np.where(ceased <= end, ceased, NAT)
    out["placed_for_adoption"] = with_dob(
        d.assign(
            DATE_PLACED=format_dates(d["date"].to_numpy("datetime64[D]")),
            DATE_PLACED_CEASED=format_dates(ceased),
            REASON_PLACED_CEASED=np.where(np.isnat(ceased), "", d["reason"].to_numpy(object)),
        )
    )

    # previous permanence: children who started to be looked after in the year (first start)
    starts = eps[
        (eps["RNE"].to_numpy() == "S") & (eps["_start"].to_numpy("datetime64[D]") >= start)
    ]
    starts = starts.sort_values("_start", kind="stable").drop_duplicates(["_pid", "_la", "_gen"])
    pp = starts[["_pid", "_la", "_gen", "_period"]].merge(
        permanence, left_on="_period", right_on="period_id", how="left"
    )
    out["previous_permanence"] = with_dob(
        pp.assign(DATE_PERM=format_dates(pp["_date_perm"].to_numpy("datetime64[D]")))
    )

    # missing episodes open at any time in the year
    mi = ctx.truth["missing_episodes"]
    ms, me = _days(mi["start_date"]), _days(mi["end_date"])
    m = mi[(ms <= end) & (np.isnat(me) | (me >= start))]
    ms, me = _days(m["start_date"]), _days(m["end_date"])
    m_pid = m["person_id"].to_numpy(np.int64)
    out["missing"] = with_dob(
        pd.DataFrame(
            {
                "_pid": m_pid,
                "_la": m["la_code"].to_numpy(np.int64),
                "_gen": ctx.identity_generation(m_pid, ms),
                "MISSING": m["missing_type"].to_numpy(dtype=object),
                "_start": ms,
                "MIS_START": format_dates(ms),
                "MIS_END": format_dates(np.where(me <= end, me, NAT)),
            }
        )
    )

    # social worker episodes (from 2023-24) of the periods in the return, overlapping the year
    if year >= FIRST_SW_YEAR:
        sw = social_workers
        ss, se = sw["_start"].to_numpy("datetime64[D]"), sw["_end"].to_numpy("datetime64[D]")
        keep = (ss <= end) & (np.isnat(se) | (se >= start)) & np.isin(_frame_key(sw), keys_eps)
        sw = sw[keep]
        se = sw["_end"].to_numpy("datetime64[D]")
        out["sw_episodes"] = with_dob(
            sw.assign(
                SW_DECOM=format_dates(sw["_start"].to_numpy("datetime64[D]")),
                SW_DEC=format_dates(np.where(se <= end, se, NAT)),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Dataset-specific anomalies (messiness realistic/heavy); each breaks a named DfE rule
# --------------------------------------------------------------------------------------------

ANOMALIES = {
    "episode_chain_gap": "433",
    "rne_inconsistent": "434",
    "place_change_reason_missing": "225",
    "review_pn0_aged_4": "440",
    "home_equals_placement": "392d",
    "dob_changed": "203",
    "un1_school_age": "209",
    "mc_dob_male": "174",
}
"""error_type -> the DfE validation rule each anomaly breaks (see docs/ssda903.md)."""


DAYS_PER_YEAR = 365
"""Days in a year, for the ages of ``ssda903.mc_dob_male_age_years`` (whole days, approximate)."""

YEAR_SPACE = 10_000
"""Key space: a child's key (:func:`~trainkit.datasets.identifiers.child_keys`) * YEAR_SPACE +
collection year (:func:`_key_year`)."""

ANOMALY_FIELDS = (
    "DECOM", "RNE", "HOME_POST", "REASON_PLACE_CHANGE", "UPN", "MC_DOB", "DOB", "REVIEW_CODE",
)  # fmt: skip
"""Fields the anomalies change: each only where the shared messiness layer left it alone."""


def _untouched(frame: pd.DataFrame, field_name: str) -> np.ndarray:
    """Rows whose ``field_name`` still holds the value before the shared messiness layer."""
    orig = f"_orig_{field_name}"
    if orig not in frame:
        return np.ones(len(frame), dtype=bool)
    return frame[field_name].to_numpy(dtype=object) == frame[orig].to_numpy(dtype=object)


def _path(table: OutputTable, years: np.ndarray, las: np.ndarray) -> np.ndarray:
    """Each row's file, relative to the output folder."""
    head, rest = table.path.split("{year}")
    middle, tail = rest.split("{la}")
    y = np.asarray(years, dtype=np.int64).astype(str)
    la = _zfill(las, 3)
    return np.char.add(np.char.add(np.char.add(np.char.add(head, y), middle), la), tail).astype(
        object
    )


def _log(ctx: RecordContext, table: OutputTable, frame: pd.DataFrame, idx, field_name: str,
         error_type: str, before) -> None:  # fmt: skip
    sub = frame.loc[idx]
    ctx.errors.add(
        DATASET,
        _path(table, sub["_year"].to_numpy(), sub["_la"].to_numpy()),
        sub["CHILD"].to_numpy(),
        field_name,
        error_type,
        np.asarray(before, dtype=object),
        sub[field_name].to_numpy(dtype=object),
    )


def _pick(ctx: RecordContext, prm: _Params, name: str, eligible: np.ndarray) -> np.ndarray:
    rate = prm[f"anomaly_{name}"][ctx.messiness]
    draw = ctx.rng(f"ssda903.anomaly.{name}").random(len(eligible))
    return eligible & (draw < rate)


def _anomalies(ctx: RecordContext, prm: _Params, out: dict[str, pd.DataFrame]) -> None:
    """Inject the SSDA903-specific anomalies in place, logging each change.

    Each changes a value only where the shared messiness layer left that field alone.
    """
    eps, head = out["episodes"], out["header"]
    rng = ctx.rng("ssda903.anomaly.values")

    # 433: a continuation episode keyed to start a few days after the previous one ended
    key = _key_year(eps["_key"], eps["_year"])
    same_child = key == np.roll(key, 1)
    same_child[:1] = False
    continues = same_child & (eps["DEC"].shift() == eps["DECOM"]).to_numpy()
    continues &= eps["RNE"].isin(CONTINUATION_RNE).to_numpy() & _untouched(eps, "DECOM")
    lo, hi = prm["episode_chain_gap_days"]
    shift = rng.integers(lo, hi + 1, size=len(eps))
    new_start = eps["_start"].to_numpy("datetime64[D]") + shift
    dec = eps["_dec"].to_numpy("datetime64[D]")
    room = np.isnat(dec) | (new_start < dec)
    hit = _pick(ctx, prm, "episode_chain_gap", continues & room)
    idx = eps.index[hit]
    before = eps.loc[idx, "DECOM"].to_numpy()
    eps.loc[idx, "DECOM"] = format_dates(new_start[hit])
    _log(ctx, EPISODES, eps, idx, "DECOM", "episode_chain_gap", before)

    # 434: a change of placement recorded as a change of legal status only
    same_ls = same_child & (eps["LS"] == eps["LS"].shift()).to_numpy()
    eligible = (eps["RNE"] == "P").to_numpy() & same_ls & _untouched(eps, "RNE") & ~hit
    hit = _pick(ctx, prm, "rne_inconsistent", eligible)
    idx = eps.index[hit]
    eps.loc[idx, "RNE"] = "L"
    _log(ctx, EPISODES, eps, idx, "RNE", "rne_inconsistent", np.full(len(idx), "P"))

    # 392d: the home postcode keyed as the placement postcode
    eligible = (eps["PLACE"] != "P1") & (eps["HOME_POST"] != "") & (eps["PL_POST"] != "")
    eligible &= eps["HOME_POST"] != eps["PL_POST"]
    hit = _pick(ctx, prm, "home_equals_placement",
                eligible.to_numpy() & _untouched(eps, "HOME_POST"))  # fmt: skip
    idx = eps.index[hit]
    before = eps.loc[idx, "HOME_POST"].to_numpy()
    eps.loc[idx, "HOME_POST"] = eps.loc[idx, "PL_POST"].to_numpy()
    _log(ctx, EPISODES, eps, idx, "HOME_POST", "home_equals_placement", before)

    # 225: the reason for a change of placement left blank
    eligible = (eps["REASON_PLACE_CHANGE"] != "").to_numpy() & _untouched(
        eps, "REASON_PLACE_CHANGE"
    )
    hit = _pick(ctx, prm, "place_change_reason_missing", eligible)
    idx = eps.index[hit]
    before = eps.loc[idx, "REASON_PLACE_CHANGE"].to_numpy()
    eps.loc[idx, "REASON_PLACE_CHANGE"] = ""
    _log(ctx, EPISODES, eps, idx, "REASON_PLACE_CHANGE", "place_change_reason_missing", before)

    # 440: a review of a child aged 4 or over coded PN0 (under 4)
    rv = out["reviews"]
    eligible = rv["_past4"].to_numpy(bool) & (rv["REVIEW_CODE"] != "PN0").to_numpy()
    hit = _pick(ctx, prm, "review_pn0_aged_4", eligible & _untouched(rv, "REVIEW_CODE"))
    idx = rv.index[hit]
    before = rv.loc[idx, "REVIEW_CODE"].to_numpy()
    rv.loc[idx, "REVIEW_CODE"] = "PN0"
    _log(ctx, REVIEWS, rv, idx, "REVIEW_CODE", "review_pn0_aged_4", before)

    # 209: UN1 (not of school age) for a child of school age
    has_eps = head["_has_eps"].to_numpy(bool)
    upn = head["UPN"].fillna("").astype(str)
    school_age = head["_school_age"].to_numpy(bool) & (upn != "UN1").to_numpy()
    hit = _pick(ctx, prm, "un1_school_age", school_age & _untouched(head, "UPN"))
    idx = head.index[hit]
    before = head.loc[idx, "UPN"].to_numpy()
    head.loc[idx, "UPN"] = "UN1"
    _log(ctx, HEADER, head, idx, "UPN", "un1_school_age", before)

    # 174: a mother's child's date of birth recorded for a boy
    boys = (head["SEX"] == "1").to_numpy() & has_eps & _untouched(head, "MC_DOB")
    hit = _pick(ctx, prm, "mc_dob_male", boys)
    idx = head.index[hit]
    when = head.loc[idx, "_dob"].to_numpy("datetime64[D]") + rng.integers(
        *(DAYS_PER_YEAR * np.array(prm["mc_dob_male_age_years"])), size=len(idx)
    )
    before = head.loc[idx, "MC_DOB"].to_numpy()
    head.loc[idx, "MC_DOB"] = format_dates(when)
    _log(ctx, HEADER, head, idx, "MC_DOB", "mc_dob_male", before)

    # 203: a child's date of birth differs from last year's return (in every file of the year)
    key_year = _key_year(head["_key"], head["_year"])
    in_last = np.isin(key_year - 1, key_year)
    hit = _pick(ctx, prm, "dob_changed", in_last)
    # last year's DOB must be the true one: a change on top of last year's error could give
    # last year's value back, and the two returns would then agree
    hit &= ~np.isin(key_year - 1, key_year[hit | ~_untouched(head, "DOB")])
    if not hit.any():
        return
    dob = head.loc[hit, "_dob"].to_numpy("datetime64[D]")
    month = dob.astype("datetime64[M]")
    day = (dob - month.astype("datetime64[D]")).astype(np.int64) + 1
    mon = month.astype(np.int64) % 12 + 1
    first_month = dob.astype("datetime64[Y]").astype("datetime64[M]")
    swapped = (first_month + (day - 1)).astype("datetime64[D]") + (mon - 1)
    swap = (day <= 12) & (day != mon)
    changed = pd.Series(format_dates(np.where(swap, swapped, dob + 1)), index=key_year[hit])
    changed = changed[~changed.index.duplicated()]
    for table in TABLES:
        frame = out[table.name.split(".")[1]]
        if "DOB" not in frame or frame.empty:
            continue
        ky = _key_year(_frame_key(frame), frame["_year"])
        new = changed.reindex(ky).to_numpy(dtype=object)
        rows = frame.index[pd.notna(new) & _untouched(frame, "DOB")]
        if not len(rows):
            continue
        before = frame.loc[rows, "DOB"].to_numpy()
        frame.loc[rows, "DOB"] = new[frame.index.get_indexer(rows)]
        _log(ctx, table, frame, rows, "DOB", "dob_changed", before)


# --------------------------------------------------------------------------------------------
# The module's entry points
# --------------------------------------------------------------------------------------------


def record(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """Every SSDA903 table of one shard: rows formatted as in the files, with ``_year``/``_la``.

    Args:
        ctx: the shard's record context.

    Returns:
        ``{table name: frame}`` for every table in ``TABLES``; columns are the declared fields
        in order, then ``_year`` and ``_la`` (the collection year and DfE LA number).
    """
    prm = _Params(ctx)
    t = _Truth(ctx)
    reviews = _all_reviews(t, ctx, prm)
    social_workers = _all_social_workers(t, ctx, prm)
    decisions = _decisions(ctx)
    permanence = _previous_permanence(t)
    leavers = _care_leavers(ctx)
    parts: dict[str, list[pd.DataFrame]] = {}
    for year in ctx.years:
        tables = _year_tables(
            t, ctx, prm, year, reviews, social_workers, decisions, permanence, leavers
        )
        for name, frame in tables.items():
            parts.setdefault(name, []).append(frame.assign(_year=year))
    out: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        name = table.name.split(".")[1]
        frames = [f for f in parts.get(name, []) if len(f)]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if frame.empty:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in table.field_names})
            frame["_pid"] = pd.Series(dtype=np.int64)
            frame["_la"] = pd.Series(dtype=np.int64)
            frame["_gen"] = pd.Series(dtype=np.int64)
            frame["_year"] = pd.Series(dtype=np.int64)
        sort = ["_year", "_la", "_pid"] + [c for c in ("_start", "_date") if c in frame]
        frame = frame.sort_values(sort, kind="stable").reset_index(drop=True)
        frame["CHILD"] = ctx.la_child_ids(
            frame["_pid"].to_numpy(np.int64),
            frame["_la"].to_numpy(np.int64),
            frame["_gen"].to_numpy(np.int64),
        ).astype(object)
        out[name] = frame
    out["episodes"]["_key"] = _frame_key(out["episodes"])
    if ctx.messiness != "clean":
        # the shared recording errors first, then this return's own anomalies on the values
        # those left alone (one error per field of a record, so each is findable as logged)
        for table in TABLES:
            name = table.name.split(".")[1]
            out[name] = _generic_messiness(ctx, table, out[name])
        _anomalies(ctx, prm, out)
    result: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        frame = out[table.name.split(".")[1]]
        _register_links(ctx, frame)
        result[table.name] = _finish(table, frame)
    return result


def _generic_messiness(ctx: RecordContext, table: OutputTable, frame: pd.DataFrame):
    """Apply the shared messiness layer (typos, transpositions, duplicates...) to one table.

    Returns the rows as recorded with this module's internal columns carried along (by each
    row's position in ``frame``), and ``_orig_<FIELD>`` holding the value before the shared
    layer for the fields this module's anomalies may change.
    """
    from . import messiness

    cols = [*table.field_names, "_year", "_la"]
    pid = frame["_pid"].to_numpy(np.int64)
    files = _path(table, frame["_year"].to_numpy(), frame["_la"].to_numpy())
    out = messiness.apply(
        ctx, table, frame[cols].reset_index(drop=True), dataset=DATASET, record_id="CHILD",
        files=files, person_ids=pid,
    )  # fmt: skip
    position = out.index.to_numpy()
    out = out.reset_index(drop=True)
    internal = [c for c in frame.columns if c.startswith("_") and c not in ("_year", "_la")]
    carried = frame[internal].iloc[position].reset_index(drop=True)
    originals = {
        f"_orig_{c}": frame[c].to_numpy(dtype=object)[position]
        for c in ANOMALY_FIELDS
        if c in frame
    }
    return pd.concat([out, carried, pd.DataFrame(originals)], axis=1)


def _finish(table: OutputTable, frame: pd.DataFrame) -> pd.DataFrame:
    """Declared columns as strings ('' for blank), then the partition columns."""
    cols = {}
    for name in table.field_names:
        values = frame[name] if name in frame else pd.Series("", index=frame.index)
        cols[name] = values.fillna("").astype(str).to_numpy(dtype=object)
    cols["_year"] = frame["_year"].to_numpy(np.int64)
    cols["_la"] = frame["_la"].to_numpy(np.int64)
    return pd.DataFrame(cols)


def _register_links(ctx: RecordContext, frame: pd.DataFrame) -> None:
    """Every CHILD value as recorded (per LA) and every recorded UPN, with the true person."""
    if frame.empty:
        return
    pid = frame["_pid"].to_numpy(np.int64)
    child = frame["CHILD"].fillna("").astype(str).to_numpy(dtype=object)
    ctx.links.add(DATASET, frame["_la"].to_numpy(), child, pid)
    if "UPN" in frame:
        upn = frame["UPN"].fillna("").astype(str).to_numpy(dtype=object)
        real = (upn != "") & ~np.isin(upn, UPN_UNKNOWN_CODES_903)
        ctx.links.add(DATASET, None, upn[real], pid[real])


def write_partition(table: OutputTable, frame: pd.DataFrame, path: Path) -> int:
    """Write one file of an LA-year; with the header, every file of that year, header-only.

    The DfE's CSV upload takes one file per table, and a table with no rows is given as its
    column header alone (as LAs' systems export it). The registry writes only the LA-years a
    table has rows in, and ``header`` comes first in ``TABLES``, so writing the header also lays
    down every other file of the LA-year with just its column row; files with rows then
    overwrite theirs.
    """
    if table is HEADER:
        year = int(path.parent.parent.name)
        for other in TABLES[1:]:
            if other.exists_in(year):
                _write_rows(other, [], path.parent / Path(other.path).name)
    return _write_csv(table, frame, path)


def write_partitions(table: OutputTable, frame: pd.DataFrame, root: Path) -> int:
    """Write every LA-year file of ``frame`` (rows with ``_year`` and ``_la``) under ``root``.

    The same files as :func:`write_partition` called on each LA-year, faster for the thousands
    of small files of a national run (the values are converted to Python rows once). Returns
    the number of records written.
    """
    values = frame[table.field_names].to_numpy(dtype=object, na_value="").tolist()
    total = 0
    for year, la, rows in partitions(frame):
        path = root / table.path.format(year=year, la=la)
        if table is HEADER:
            for other in TABLES[1:]:
                if other.exists_in(year):
                    _write_rows(other, [], path.parent / Path(other.path).name)
        total += _write_rows(table, [values[i] for i in rows], path)
    return total


def _write_rows(table: OutputTable, rows: list[list[str]], path: Path) -> int:
    """A CSV of ``rows`` (values in field order) as LAs upload it: the column row, then one
    row per record, CRLF line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(table.field_names)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    return len(rows)


def _write_csv(table: OutputTable, frame: pd.DataFrame, path: Path) -> int:
    """A CSV as LAs upload it: the column row, then one row per record, CRLF line ends."""
    rows = frame[table.field_names].itertuples(index=False, name=None)
    return _write_rows(table, list(rows), path)

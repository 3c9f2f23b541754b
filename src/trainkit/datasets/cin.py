"""The children in need census (CIN) return, as each local authority submits it.

One XML file per LA and collection year, ``returns/cin/{year}/{la}.xml`` (the year ending 31
March), valid against the DfE's CIN census schema for 2023-24 (``specs/CIN_schema_2024.xsd``, from
Social Finance's liia-tools, MIT; see ``specs/LICENSE-liiatools``). A file holds every child with a
referral open at any point in the year in that LA, including referrals closed with no further
action, and for each referral (a ``CINdetails`` block) what the census collects for the year:
assessments completed in the year or still in progress at 31 March, CIN plans, section 47
enquiries and initial conferences, child protection plans and their reviews, and the closure.
What happened after 31 March is not in that year's file: an assessment authorised in April is
returned as still in progress, a plan ending in May as open. Looked-after children appear as
children in need, because their care happens within a CIN episode. See ``docs/cin.md``.

The record frame has one row per XML block, in file order (``Block`` says which: ``Header``,
``Child`` for ChildIdentifiers and ChildCharacteristics, ``CINdetails``, ``Assessments``,
``CINPlanDates``, ``Section47``, ``ChildProtectionPlans``). Rows nest by position: each ``Child``
row opens a child, each ``CINdetails`` row an episode, and the rows that follow belong to them.
Repeated elements are joined with commas (Disabilities, AssessmentFactors, CPPreviewDate).
:func:`write_partition` turns the rows of one LA-year into the XML file and :func:`read_xml` reads
a file back into the same rows.

Identifiers: ``LAchildID`` from :func:`~trainkit.datasets.identifiers.la_child_ids` (the same id
the LA's SSDA903 return uses), UPNs as the school census knows them on 31 March
(:meth:`~trainkit.datasets.record.RecordContext.upns_on`), or a ``UPNunknown`` code as the CIN
rules use them. No FormerUPN: the only change of UPN simulated is at adoption, and an adopted
child's earlier UPN is not recorded anywhere (see :mod:`trainkit.datasets.identity`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd

from .. import __version__
from ..simulate.context import age_in_years
from ..simulate.working_days import (
    add_working_days,
    england_bank_holidays,
    previous_working_day,
)
from . import messiness
from .identifiers import child_keys, split_child_keys
from .record import RecordContext, partitions
from .schema import Field, OutputTable, codes_from

DATASET = "cin"
SPEC_DIR = Path(__file__).parent / "specs"
XSD_PATH = SPEC_DIR / "CIN_schema_2024.xsd"
"""The CIN census schema every file is valid against."""

FIRST_CENSUS_YEAR = 2009
"""The CIN census began with the year ending 31 March 2009."""

FULL_TERM_WEEKS = 40
"""An expected date of birth is 40 weeks' gestation (the obstetric convention, Naegele's rule):
a child born at ``w`` weeks was due ``40 - w`` weeks later."""

SOFTWARE_CODE = "trainkit"
SERIAL_NO = "001"
ISO_DATE = "%Y-%m-%d"

# --------------------------------------------------------------------------------------------
# Code lists (CIN census code set, as in the XSD; the DfE's rules check the same values)
# --------------------------------------------------------------------------------------------

BLOCKS = codes_from(
    ("Header", "Message/Header: collection details and source (one per file)"),
    ("Child", "Child/ChildIdentifiers and Child/ChildCharacteristics"),
    ("CINdetails", "Child/CINdetails: one referral (CIN episode)"),
    ("Assessments", "CINdetails/Assessments: one assessment"),
    ("CINPlanDates", "CINdetails/CINPlanDates: one CIN plan"),
    ("Section47", "CINdetails/Section47: one section 47 enquiry and its initial conference"),
    ("ChildProtectionPlans", "CINdetails/ChildProtectionPlans: one child protection plan"),
)

ETHNICITY = codes_from(
    ("WBRI", "White British"), ("WIRI", "White Irish"), ("WIRT", "Traveller of Irish heritage"),
    ("WOTH", "Any other White background"), ("WROM", "Gypsy/Roma"),
    ("MWBC", "White and Black Caribbean"), ("MWBA", "White and Black African"),
    ("MWAS", "White and Asian"), ("MOTH", "Any other mixed background"), ("AIND", "Indian"),
    ("APKN", "Pakistani"), ("ABAN", "Bangladeshi"), ("AOTH", "Any other Asian background"),
    ("BCRB", "Caribbean"), ("BAFR", "African"), ("BOTH", "Any other black background"),
    ("CHNE", "Chinese"), ("OOTH", "Any other ethnic group"), ("REFU", "Refused"),
    ("NOBT", "Information not yet obtained"),
)  # fmt: skip

DISABILITY = codes_from(
    ("NONE", "No disability"), ("MOB", "Mobility"), ("HAND", "Hand function"),
    ("PC", "Personal care"), ("INC", "Incontinence"), ("COMM", "Communication"),
    ("LD", "Learning"), ("HEAR", "Hearing"), ("VIS", "Vision"), ("BEH", "Behaviour"),
    ("CON", "Consciousness"), ("AUT", "Autism"), ("DDA", "Other"),
)  # fmt: skip

GENDER = codes_from(
    ("1", "Male"), ("2", "Female"), ("0", "Not recorded or unborn"), ("9", "Indeterminate")
)

REFERRAL_SOURCE = codes_from(
    ("1A", "Individual: family member, relative or carer"),
    ("1B", "Individual: acquaintance (including neighbours and child minders)"),
    ("1C", "Individual: self"), ("1D", "Individual: other (including strangers)"),
    ("2A", "Schools"), ("2B", "Education services"),
    ("3A", "Health services: general practitioner"), ("3B", "Health services: health visitor"),
    ("3C", "Health services: school nurse"),
    ("3D", "Health services: other primary health services"),
    ("3E", "Health services: A&E"), ("3F", "Health services: other"),
    ("4", "Housing"), ("5A", "LA services: social care"), ("5B", "LA services: other internal"),
    ("5C", "LA services: external"), ("5D", "LA services: early help"), ("6", "Police"),
    ("7", "Other legal agency"), ("8", "Other"), ("9", "Anonymous"), ("10", "Unknown"),
)  # fmt: skip

PRIMARY_NEED = codes_from(
    ("N1", "Abuse or neglect"), ("N2", "Child's disability"),
    ("N3", "Parental disability or illness"), ("N4", "Family in acute stress"),
    ("N5", "Family dysfunction"), ("N6", "Socially unacceptable behaviour"),
    ("N7", "Low income"), ("N8", "Absent parenting"),
    ("N9", "Cases other than children in need"), ("N0", "Not stated"),
)  # fmt: skip

REASON_FOR_CLOSURE = codes_from(
    ("RC1", "Adopted"), ("RC2", "Died"), ("RC3", "Child arrangements order"),
    ("RC4", "Special guardianship order"),
    ("RC5", "Transferred to services of another local authority"),
    ("RC6", "Transferred to adult social care services"),
    ("RC7", "Services ceased for any other reason, including child no longer in need"),
    ("RC8", "Case closed after assessment, no further action"),
    ("RC9", "Case closed after assessment, referred to early help"),
)  # fmt: skip

CATEGORY_OF_ABUSE = codes_from(
    ("NEG", "Neglect"), ("PHY", "Physical abuse"), ("SAB", "Sexual abuse"),
    ("EMO", "Emotional abuse"), ("MUL", "Multiple/not recommended"),
)  # fmt: skip

UPN_UNKNOWN = codes_from(
    ("UN1", "Child is aged under 6 years old and is not yet assigned a UPN"),
    ("UN2", "Child has never attended a maintained school in England"),
    ("UN3", "Child is educated outside England"),
    ("UN4", "Child is newly in need and the UPN was not yet known"),
    ("UN5", "Sources collating UPNs reflect discrepancies preventing reliable matching"),
    ("UN6", "Child is not looked after, and the authority is unable to obtain the UPN"),
    ("UN7", "Child referred but no further action taken"),
)

YES_NO = codes_from(("true", "Yes"), ("false", "No"))

UPN_XSD_PATTERN = r"[A-Za-z]\d{12}|[A-Za-z]\d{11}[A-Za-z]"


def _date(name: str, description: str, semantic: str | None = "date") -> Field:
    return Field(name, "date", description, date_format=ISO_DATE, semantic=semantic)


def _code(name: str, description: str, codes: dict[str, str]) -> Field:
    return Field(name, "code", description, codes=codes)


FIELDS: tuple[Field, ...] = (
    _code("Block", "Which XML block the row is (not an element: the rows nest by position).",
          BLOCKS),
    Field("LAchildID", "string", "The LA's own child identifier (every row but Header); unique "
          "within the LA, the same as the child's CHILD in the LA's SSDA903 return.",
          max_length=10, semantic="la_child_id"),
    # Header
    Field("Collection", "string", "Header: always CIN.", codes={"CIN": "Children in need"}),
    Field("Year", "string", "Header: the collection year (the year ending 31 March).",
          pattern=r"\d{4}"),
    _date("ReferenceDate", "Header: 31 March of the collection year.", semantic=None),
    Field("SourceLevel", "string", "Header: L (local authority).", codes={"L": "LA"}),
    Field("LEA", "string", "Header: the DfE three-digit LA number.", pattern=r"\d{3}"),
    Field("SoftwareCode", "string", "Header: software that produced the file."),
    Field("Release", "string", "Header: its release."),
    Field("SerialNo", "string", "Header: serial number of the submission.", pattern=r"\d{3}\d*"),
    Field("DateTime", "string", "Header: when the file was generated (after the year end).",
          pattern=r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"),
    # ChildIdentifiers and ChildCharacteristics (Child rows)
    Field("UPN", "string", "Unique pupil number on 31 March, where the LA has it.",
          pattern=UPN_XSD_PATTERN, max_length=13, semantic="upn"),
    Field("FormerUPN", "string", "A previous UPN. Empty: the only change of UPN simulated is "
          "at adoption, and an adopted child's earlier UPN is not recorded (as in identity).",
          pattern=UPN_XSD_PATTERN, max_length=13, semantic="former_upn"),
    _code("UPNunknown", "Why there is no UPN (DfE CBDS code set CS051).", UPN_UNKNOWN),
    _date("PersonBirthDate", "Date of birth (children born by 31 March).",
          semantic="date_of_birth"),
    _date("ExpectedPersonBirthDate", "Expected date of birth of a child unborn at 31 March."),
    _code("GenderCurrent", "Gender (2023-24 format).", GENDER),
    _date("PersonDeathDate", "Date of death, if the child died by 31 March."),
    _code("Ethnicity", "Ethnicity (DfE code).", ETHNICITY),
    Field("Disabilities", "string", "Disability codes, comma-separated (NONE, or one or more "
          f"of {', '.join(c for c in DISABILITY if c != 'NONE')}); empty where not returned."),
    # CINdetails
    _date("CINreferralDate", "CINdetails: date the referral was received."),
    _code("ReferralSource", "CINdetails: source of the referral.", REFERRAL_SOURCE),
    _code("PrimaryNeedCode", "CINdetails: primary need.", PRIMARY_NEED),
    _date("CINclosureDate", "CINdetails: date the case closed, if by 31 March."),
    _code("ReasonForClosure", "CINdetails: reason for closure.", REASON_FOR_CLOSURE),
    _date("DateOfInitialCPC", "Date of the initial child protection conference: in a Section47 "
          "row, the enquiry's conference; in a CINdetails row, one recorded at episode level "
          "(not used here: DfE rule 2884 allows one place only)."),
    _code("ReferralNFA", "CINdetails: the referral was closed with no further action.", YES_NO),
    # Assessments
    _date("AssessmentActualStartDate", "Assessments: date the assessment started."),
    _date("AssessmentInternalReviewDate", "Assessments: internal review date (not returned)."),
    _date("AssessmentAuthorisationDate", "Assessments: date the assessment was authorised "
          "(completed); empty while still in progress at 31 March."),
    Field("AssessmentFactors", "string", "Assessments: factors identified at assessment, "
          "comma-separated codes (completed assessments only)."),
    # CINPlanDates
    _date("CINPlanStartDate", "CINPlanDates: start of the CIN plan."),
    _date("CINPlanEndDate", "CINPlanDates: end of the CIN plan, if by 31 March."),
    # Section47
    _date("S47ActualStartDate", "Section47: date the enquiry started (strategy discussion)."),
    _date("InitialCPCtarget", "Section47: target date of the initial conference, 15 working "
          "days after the start (English bank holidays excluded).", semantic=None),
    _code("ICPCnotRequired", "Section47: no initial conference was needed.", YES_NO),
    # ChildProtectionPlans
    _date("CPPstartDate", "ChildProtectionPlans: start of the plan (the initial conference)."),
    _date("CPPendDate", "ChildProtectionPlans: end of the plan, if by 31 March."),
    _code("InitialCategoryOfAbuse", "ChildProtectionPlans: initial category of abuse.",
          CATEGORY_OF_ABUSE),
    _code("LatestCategoryOfAbuse", "ChildProtectionPlans: latest category of abuse.",
          CATEGORY_OF_ABUSE),
    Field("NumberOfPreviousCPP", "int", "ChildProtectionPlans: plans the child had before.",
          minimum=0),
    Field("CPPreviewDate", "string", "ChildProtectionPlans: review conference dates in the "
          "year, comma-separated ISO dates."),
)  # fmt: skip

CENSUS = OutputTable(
    name="cin.census",
    dataset=DATASET,
    path="returns/cin/{year}/{la}.xml",
    format="xml",
    description="The children in need census return of one LA for one year: one row per XML "
    "block (Header, Child, CINdetails, Assessments, CINPlanDates, Section47, "
    "ChildProtectionPlans), in file order.",
    source="DfE children in need census 2023-24, XML schema CIN_schema_2024.xsd (liia-tools); "
    "validation rules as implemented in data-to-insight csc-validator-be-cin",
    fields=FIELDS,
    key=("LAchildID",),
    first_year=FIRST_CENSUS_YEAR,
)

TABLES: tuple[OutputTable, ...] = (CENSUS,)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)

BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "Header": ("Collection", "Year", "ReferenceDate", "SourceLevel", "LEA", "SoftwareCode",
               "Release", "SerialNo", "DateTime"),
    "Child": ("LAchildID", "UPN", "FormerUPN", "UPNunknown", "PersonBirthDate",
              "ExpectedPersonBirthDate", "GenderCurrent", "PersonDeathDate", "Ethnicity",
              "Disabilities"),
    "CINdetails": ("LAchildID", "CINreferralDate", "ReferralSource", "PrimaryNeedCode",
                   "CINclosureDate", "ReasonForClosure", "DateOfInitialCPC", "ReferralNFA"),
    "Assessments": ("LAchildID", "AssessmentActualStartDate", "AssessmentInternalReviewDate",
                    "AssessmentAuthorisationDate", "AssessmentFactors"),
    "CINPlanDates": ("LAchildID", "CINPlanStartDate", "CINPlanEndDate"),
    "Section47": ("LAchildID", "S47ActualStartDate", "InitialCPCtarget", "DateOfInitialCPC",
                  "ICPCnotRequired"),
    "ChildProtectionPlans": ("LAchildID", "CPPstartDate", "CPPendDate", "InitialCategoryOfAbuse",
                             "LatestCategoryOfAbuse", "NumberOfPreviousCPP", "CPPreviewDate"),
}  # fmt: skip
"""The fields each kind of row fills (every other field is empty on it)."""

ANOMALIES: dict[str, str] = {
    "referral_after_closure": "8630",
    "nfa_flag_inconsistent": "8831",
    "unborn_gender_recorded": "8750",
    "expected_birth_date_kept": "8525Q",
    "gender_not_recorded": "2886Q",
    "primary_need_missing": "8610",
    "disability_missing": "8540",
    "disability_none_kept": "8790",
    "closure_after_reference_date": "8620",
}
"""The CIN-specific anomalies (``error_type`` is ``cin_<name>``) and the DfE rule each breaks."""

GENERIC_ERRORS_SKIPPED = ("duplicate_record", "upn_malformed")
"""Generic errors (:mod:`~trainkit.datasets.messiness`) the CIN return does not get: a row
written twice would break the nesting of the XML, and a UPN of the wrong length or with letters
inside breaks the schema's UPN pattern, which the DfE's COLLECT system checks on upload."""

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

NAT = np.datetime64("NaT", "D")


def _days(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy("datetime64[D]")


def _iso(dates: np.ndarray) -> np.ndarray:
    """ISO dates as strings, '' for NaT."""
    d = np.asarray(dates, dtype="datetime64[D]")
    return np.where(np.isnat(d), "", np.datetime_as_string(d, unit="D")).astype(object)


def _strings(series: pd.Series) -> np.ndarray:
    """A text column as an object array of str, '' for missing."""
    return series.to_numpy(dtype=object, na_value="")


def _uniform_days(rng: np.random.Generator, bounds, n: int) -> np.ndarray:
    lo, hi = (int(b) for b in bounds)
    return rng.integers(lo, hi + 1, n).astype("timedelta64[D]")


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _rate(ctx: RecordContext, name: str) -> float:
    """The rate of a CIN anomaly at the run's messiness level (0 at clean)."""
    return messiness.rate(ctx, f"cin.anomaly_{name}")


def file_of(year, la) -> np.ndarray:
    """The file (relative to the output folder) of each (year, LA)."""
    return np.char.add(
        np.char.add(np.char.add("returns/cin/", np.asarray(year).astype(str)), "/"),
        np.char.add(np.asarray(la).astype(str), ".xml"),
    )


# --------------------------------------------------------------------------------------------
# The truth, as the LA's system holds it (every year at once)
# --------------------------------------------------------------------------------------------

Columns = dict[str, np.ndarray]
"""A table as aligned numpy arrays (faster than a DataFrame for building many small pieces)."""


def _take(cols: Columns, index) -> Columns:
    return {k: v[index] for k, v in cols.items()}


_DAY_SPAN = 1 << 20  # days since 1970 fit in 20 bits (signed, with room) for any real date


class _History:
    """A per-person dated table, for 'the person's latest row on or before a date'."""

    def __init__(self, person_ids: np.ndarray, dates: np.ndarray, **columns: np.ndarray):
        d = np.asarray(dates, "datetime64[D]").astype(np.int64)
        order = np.lexsort((d, person_ids))
        self.person_id = np.asarray(person_ids, np.int64)[order]
        self.key = self.person_id * _DAY_SPAN + d[order]
        self.columns = {k: np.asarray(v)[order] for k, v in columns.items()}

    def latest(self, person_ids: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Row of each (person, date)'s latest entry on or before the date, -1 where none."""
        pid = np.asarray(person_ids, np.int64)
        key = pid * _DAY_SPAN + np.asarray(dates, "datetime64[D]").astype(np.int64)
        i = np.searchsorted(self.key, key, side="right") - 1
        if not self.key.size:
            return np.full(pid.shape, -1)
        return np.where((i >= 0) & (self.person_id[np.maximum(i, 0)] == pid), i, -1)

    def get(self, column: str, rows: np.ndarray, missing):
        values = self.columns[column]
        if not values.size:
            return np.full(rows.shape, missing, dtype=values.dtype)
        return np.where(rows >= 0, values[np.maximum(rows, 0)], missing)


class _LAView:
    """The truth of one shard as the LAs' systems hold it, for every year at once.

    The truth's referrals, section 47 enquiries and protection plans are already histories an
    LA's case system can hold (see :func:`trainkit.simulate.social_care.simulate_social_care`):
    nothing starts after the case closes, no plan outlives its case, the assessment that carries
    an enquiry starts by it and is authorised no earlier than its outcome, and conferences are
    on working days. So the view takes them as they are (``tests/test_cin.py`` checks that the
    truth needs no repair), and adds what only the LA records: target dates, review conferences,
    disability codes, identifiers.
    """

    def __init__(self, ctx: RecordContext, holidays: np.ndarray):
        self.episodes, self.enquiries, self.plans = self._episodes(ctx, holidays)
        self.reviews = self._reviews(ctx, holidays)
        self.people = self._people(ctx)
        pc = ctx.truth["pupil_census"]
        self.sen = _History(
            pc["person_id"].to_numpy(np.int64),
            _days(pc, "census_date"),
            provision=_strings(pc["sen_provision"]),
            need=_strings(pc["sen_primary_need"]),
        )
        cp = ctx.truth["care_periods"]
        self.care = _History(
            cp["person_id"].to_numpy(np.int64), _days(cp, "start_date"), end=_days(cp, "end_date")
        )

    @staticmethod
    def _episodes(ctx: RecordContext, holidays: np.ndarray):
        r = ctx.truth["referrals"].sort_values("referral_id", kind="stable")
        assessed = r["assessed"].to_numpy(bool)
        eps = {
            "referral_id": r["referral_id"].to_numpy(np.int64),
            "person_id": r["person_id"].to_numpy(np.int64),
            "la_code": r["la_code"].to_numpy(np.int64),
            "referral_date": _days(r, "referral_date"),
            "referral_source": _strings(r["referral_source"]),
            "primary_need": _strings(r["primary_need"]),
            "nfa": r["nfa"].to_numpy(bool),
            "in_need": r["in_need"].to_numpy(bool),
            "assessed": assessed,
            "assessment_start": np.where(assessed, _days(r, "assessment_start"), NAT),
            "assessment_authorised": np.where(assessed, _days(r, "assessment_authorised"), NAT),
            "factors": _strings(r["factors"]),
            "plan_start": _days(r, "cin_plan_start"),
            "plan_end": _days(r, "cin_plan_end"),
            "closure_date": _days(r, "closure_date"),
            "closure_reason": _strings(r["closure_reason"]),
        }
        ids = eps["referral_id"]

        s = ctx.truth["section47"]
        s_ep = np.searchsorted(ids, s["referral_id"].to_numpy(np.int64))
        s_start = _days(s, "s47_start_date")
        keep = np.lexsort((s_start, s_ep))
        enquiries = {
            "ep": s_ep[keep],
            "start": s_start[keep],
            "icpc": _days(s, "icpc_date")[keep],
            "target": add_working_days(
                s_start[keep], int(ctx.params["cin.icpc_target_working_days"]), holidays
            ),
        }

        c = ctx.truth["cp_plans"]
        c_ep = np.searchsorted(ids, c["referral_id"].to_numpy(np.int64))
        c_start = _days(c, "start_date")
        keep = np.lexsort((c_start, c_ep))
        plans = {
            "ep": c_ep[keep],
            "start": c_start[keep],
            "end": _days(c, "end_date")[keep],
            "initial": _strings(c["category"])[keep],
            "latest": _strings(c["latest_category"])[keep],
            "previous": c["number_of_previous_plans"].to_numpy(np.int64)[keep],
        }
        return eps, enquiries, plans

    def _reviews(self, ctx: RecordContext, holidays: np.ndarray):
        """Review conference dates of every plan, as (plan, date) pairs on working days.

        The first within three months of the plan's start, then at most six months apart,
        while the plan lasts (Working together to safeguard children 2018).
        """
        rng = ctx.rng("cin.reviews")
        first = ctx.params["cin.first_cpp_review_days"]
        later = ctx.params["cin.later_cpp_review_days"]
        start, end = self.plans["start"], self.plans["end"]
        n = len(start)
        until = np.where(np.isnat(end), ctx.census_date, end).astype("datetime64[D]")
        longest = int((until - start).astype(np.int64).max()) if n else 0
        k = max(longest // int(later[0]) + 2, 1)
        gaps = np.concatenate(
            [
                _uniform_days(rng, first, n)[:, None],
                _uniform_days(rng, later, n * (k - 1)).reshape(n, k - 1),
            ],
            axis=1,
        )
        dates = start[:, None] + np.cumsum(gaps.astype(np.int64), axis=1).astype("timedelta64[D]")
        dates = previous_working_day(dates.ravel(), holidays).reshape(n, k)
        held = (dates > start[:, None]) & (dates < until[:, None])
        plan, _ = np.nonzero(held)
        return plan, dates[held]

    @staticmethod
    def _people(ctx: RecordContext) -> Columns:
        """Per person (sorted by id): birth, due date, gender code, ethnicity, death."""
        p = ctx.truth["persons"].sort_values("person_id", kind="stable")
        pid = p["person_id"].to_numpy(np.int64)
        dob = _days(p, "date_of_birth")
        births = ctx.truth["births"]
        b_pid = births["person_id"].to_numpy(np.int64)
        at = np.searchsorted(b_pid, pid).clip(0, max(len(b_pid) - 1, 0))
        full_term = FULL_TERM_WEEKS
        weeks = np.full(len(pid), full_term)
        if len(b_pid):
            found = b_pid[at] == pid
            weeks = np.where(found, births["gestation_weeks"].to_numpy(np.int64)[at], full_term)
        jitter = _uniform_days(
            ctx.rng("cin.expected_birth"), ctx.params["cin.expected_birth_jitter_days"], len(pid)
        )
        due = dob + ((full_term - weeks) * 7).astype("timedelta64[D]") + jitter
        return {
            "person_id": pid,
            "dob": dob,
            "due": np.maximum(due, dob),
            "gender": np.where(p["sex"].to_numpy(dtype=object) == "M", "1", "2").astype(object),
            "ethnicity": _strings(p["ethnicity"]),
            "dod": _days(p, "date_of_death"),
        }


# --------------------------------------------------------------------------------------------
# One collection year
# --------------------------------------------------------------------------------------------


_HELPERS = {
    "_kid": -1, "_ep": -1, "_rank": 0, "_sub": 0, "_la": -1, "_in_year": False,
    "_closed": False, "_nfa": False, "_assessed": False, "_open": False, "_born": False,
    "_prebirth": False, "_further": False, "_due": "", "_sex": "",
}  # fmt: skip
"""Hidden columns of the year's rows (with the value rows that lack them get), used to order
the rows and to choose where anomalies can happen; dropped before the rows are returned."""


def _blank(n: int, block: str) -> Columns:
    cols = {name: np.full(n, "", dtype=object) for name in FIELD_NAMES}
    cols["Block"][:] = block
    return cols


def _disabilities(ctx, truth: _LAView, pid, ref, n2, further, born) -> np.ndarray:
    """Disability codes of each child in the year's return ('' where none are returned)."""
    row = truth.sen.latest(pid, np.full(len(pid), ref))
    provision = truth.sen.get("provision", row, "")
    need = truth.sen.get("need", row, "")
    mapping = {k: ",".join(v) for k, v in ctx.params["cin.disability_codes_by_sen_need"].items()}
    sen_codes = pd.Series(need, dtype=object).map(mapping).fillna("").to_numpy(dtype=object)
    sen_codes = np.where(
        np.isin(provision, list(ctx.params["cin.disability_sen_provisions"])), sen_codes, ""
    )
    weights = ctx.params["cin.disability_codes_for_n2"]
    codes = np.array(list(weights), dtype=object)
    prob = np.array(list(weights.values()), dtype=float)
    prob /= prob.sum()
    # drawn once per person, so a child keeps the same disability across years and LAs
    rng = ctx.rng("cin.disability")
    n_people = len(truth.people["person_id"])
    first = codes[rng.choice(len(codes), n_people, p=prob)]
    second = codes[rng.choice(len(codes), n_people, p=prob)]
    has_second = rng.random(n_people) < float(ctx.params["cin.second_disability_share"])
    at = np.searchsorted(truth.people["person_id"], pid)
    main = np.where(sen_codes != "", sen_codes, np.where(n2, first[at], ""))
    extra = np.where(has_second[at] & (main != ""), second[at], "")
    fenced, fenced_extra = ("," + main + ",").astype(_STR), ("," + extra + ",").astype(_STR)
    duplicate = (extra == "") | (np.strings.find(fenced, fenced_extra) >= 0)
    out = np.where(main != "", main + np.where(duplicate, "", "," + extra), "NONE")
    return np.where(born & further, out, "").astype(object)


def _year_rows(ctx: RecordContext, truth: _LAView, year: int) -> Columns | None:
    """The rows of every LA's return for one year, with hidden helper columns (``_``)."""
    ref = np.datetime64(f"{year}-03-31", "D")
    start = np.datetime64(f"{year - 1}-04-01", "D")
    eps = truth.episodes
    sel = (eps["referral_date"] <= ref) & (
        np.isnat(eps["closure_date"]) | (eps["closure_date"] >= start)
    )
    if not sel.any():
        return None
    ep_all = np.flatnonzero(sel)

    # children: one per (person, LA, identity), sorted by LA then LAchildID; an adopted child
    # referred again is a new child to the LA (identity 1 from the adoption order)
    e_pid = eps["person_id"][ep_all]
    e_gen = ctx.identity_generation(e_pid, eps["referral_date"][ep_all])
    pair = child_keys(e_pid, eps["la_code"][ep_all], e_gen)
    kid_pair = np.unique(pair)
    k_pid, k_la, k_gen = split_child_keys(kid_pair)
    k_id = ctx.la_child_ids(k_pid, k_la, k_gen).astype(object)
    kid_order = np.lexsort((k_id.astype(str), k_la))
    k_pid, k_la, k_gen, k_id = k_pid[kid_order], k_la[kid_order], k_gen[kid_order], k_id[kid_order]
    rank_of = np.empty(len(kid_order), np.int64)
    rank_of[kid_order] = np.arange(len(kid_order))
    e_kid_all = rank_of[np.searchsorted(kid_pair, pair)]
    order = np.lexsort((eps["referral_id"][ep_all], eps["referral_date"][ep_all], e_kid_all))
    ep, e_kid = ep_all[order], e_kid_all[order]
    e = _take(eps, ep)
    e_rank = np.arange(len(ep)) - np.searchsorted(e_kid, e_kid)  # episode order within child
    ep_row = np.full(len(eps["referral_id"]), -1)
    ep_row[ep] = np.arange(len(ep))

    # --- CINdetails
    e_close = e["closure_date"]
    closed = ~np.isnat(e_close) & (e_close <= ref)
    nfa = e["nfa"]
    a_start, a_auth = e["assessment_start"], e["assessment_authorised"]
    a_show = e["assessed"] & (a_start <= ref) & ~(a_auth < start)
    a_done = a_show & (a_auth <= ref)
    pending = a_show & ~a_done & ~e["in_need"]
    need = np.where(
        e["in_need"],
        e["primary_need"],
        np.where(
            pending,
            ctx.params["cin.pending_assessment_primary_need"],
            ctx.params["cin.not_in_need_primary_need"],
        ),
    )
    reason = np.where(nfa, ctx.params["cin.nfa_closure_reason"], e["closure_reason"])
    d = _blank(len(ep), "CINdetails")
    d["CINreferralDate"] = _iso(e["referral_date"])
    d["ReferralSource"] = e["referral_source"]
    d["PrimaryNeedCode"] = np.where(nfa, "", need).astype(object)
    d["CINclosureDate"] = _iso(np.where(closed, e_close, NAT))
    d["ReasonForClosure"] = np.where(closed, reason, "").astype(object)
    d["ReferralNFA"] = np.where(nfa, "true", "false").astype(object)
    d.update(
        _kid=e_kid, _ep=e_rank, _rank=np.full(len(ep), 1), _sub=np.zeros(len(ep), np.int64),
        _in_year=e["referral_date"] >= start, _closed=closed, _nfa=nfa, _assessed=a_show,
        _open=~closed,
    )  # fmt: skip
    parts = [d]

    # --- Assessments (completed in the year, or in progress at 31 March)
    a = np.flatnonzero(a_show)
    d = _blank(len(a), "Assessments")
    d["AssessmentActualStartDate"] = _iso(a_start[a])
    d["AssessmentAuthorisationDate"] = _iso(np.where(a_done[a], a_auth[a], NAT))
    d["AssessmentFactors"] = np.where(a_done[a], e["factors"][a], "").astype(object)
    parts.append(d | {"_kid": e_kid[a], "_ep": e_rank[a], "_rank": np.full(len(a), 2),
                      "_sub": np.zeros(len(a), np.int64)})  # fmt: skip

    # --- CIN plans open at some point in the year
    p_start, p_end = e["plan_start"], e["plan_end"]
    p = np.flatnonzero((p_start <= ref) & (np.isnat(p_end) | (p_end >= start)))
    d = _blank(len(p), "CINPlanDates")
    d["CINPlanStartDate"] = _iso(p_start[p])
    d["CINPlanEndDate"] = _iso(np.where(p_end[p] <= ref, p_end[p], NAT))
    parts.append(d | {"_kid": e_kid[p], "_ep": e_rank[p], "_rank": np.full(len(p), 3),
                      "_sub": np.zeros(len(p), np.int64)})  # fmt: skip

    # --- Section 47 enquiries: conference in the year, pending at 31 March, or none needed
    s = truth.enquiries
    s_row = ep_row[s["ep"]]
    s_start, s_icpc = s["start"], s["icpc"]
    waiting = s_icpc > ref
    keep = (s_row >= 0) & (s_start <= ref)
    keep &= ((s_icpc >= start) & (s_icpc <= ref)) | (
        (waiting | np.isnat(s_icpc)) & (s_start >= start)
    )
    k = np.flatnonzero(keep)
    d = _blank(len(k), "Section47")
    d["S47ActualStartDate"] = _iso(s_start[k])
    d["InitialCPCtarget"] = _iso(s["target"][k])
    d["DateOfInitialCPC"] = _iso(np.where(waiting[k], NAT, s_icpc[k]))
    d["ICPCnotRequired"] = np.where(np.isnat(s_icpc[k]), "true", "false").astype(object)
    parts.append(d | {"_kid": e_kid[s_row[k]], "_ep": e_rank[s_row[k]],
                      "_rank": np.full(len(k), 4), "_sub": k})  # fmt: skip

    # --- Child protection plans open at some point in the year, with the year's reviews
    c = truth.plans
    c_row = ep_row[c["ep"]]
    c_start, c_end = c["start"], c["end"]
    c_keep = (c_row >= 0) & (c_start <= ref) & (np.isnat(c_end) | (c_end >= start))
    k = np.flatnonzero(c_keep)
    r_plan, r_date = truth.reviews
    held = (r_date >= start) & (r_date <= ref) & c_keep[r_plan]
    reviews = pd.Series(_iso(r_date[held])).groupby(r_plan[held]).agg(",".join)
    d = _blank(len(k), "ChildProtectionPlans")
    d["CPPstartDate"] = _iso(c_start[k])
    d["CPPendDate"] = _iso(np.where(c_end[k] <= ref, c_end[k], NAT))
    d["InitialCategoryOfAbuse"] = c["initial"][k]
    d["LatestCategoryOfAbuse"] = c["latest"][k]
    d["NumberOfPreviousCPP"] = c["previous"][k].astype(str).astype(object)
    d["CPPreviewDate"] = reviews.reindex(k).fillna("").to_numpy(dtype=object)
    parts.append(d | {"_kid": e_kid[c_row[k]], "_ep": e_rank[c_row[k]],
                      "_rank": np.full(len(k), 6), "_sub": k})  # fmt: skip

    # --- Child rows
    n_kids = len(k_pid)
    people = truth.people
    at = np.searchsorted(people["person_id"], k_pid)
    dob, due = people["dob"][at], people["due"][at]
    born = dob <= ref
    further = np.zeros(n_kids, dtype=bool)
    np.logical_or.at(further, e_kid, ~nfa)
    prebirth = np.zeros(n_kids, dtype=bool)
    np.logical_or.at(prebirth, e_kid, e["referral_date"] < dob[e_kid])
    n2 = np.zeros(n_kids, dtype=bool)
    np.logical_or.at(n2, e_kid, e["primary_need"] == "N2")
    earliest = np.full(n_kids, ref, dtype="datetime64[D]")
    np.minimum.at(earliest, e_kid, e["referral_date"])

    # the child's details as the LA holds them at 31 March; for a child adopted in the year, as
    # they were the day before the order (the adoptive UPN belongs to the new identity)
    refs = np.full(n_kids, ref)
    order_day = ctx.adoption_orders().reindex(k_pid).to_numpy("datetime64[D]")
    upn_day = np.where((k_gen == 0) & (order_day <= ref), order_day - 1, refs)
    upn, _ = ctx.upns_on(k_pid, upn_day)  # a UPN given up at adoption is never a FormerUPN
    under_six = ~born | (age_in_years(dob, refs) < int(ctx.params["cin.under_six_upn_age"]))
    rng = ctx.rng(f"cin.upn_unknown.{year}")
    draw_un4, draw_un6 = rng.random(n_kids), rng.random(n_kids)
    newly = earliest > ref - np.timedelta64(int(ctx.params["cin.newly_in_need_days"]), "D")
    un4 = (
        (upn != "") & newly & (draw_un4 < float(ctx.params["cin.newly_in_need_upn_unknown_share"]))
    )
    looked_after = truth.care.latest(k_pid, refs)
    care_end = truth.care.get("end", looked_after, NAT)
    looked_after = (looked_after >= 0) & (np.isnat(care_end) | (care_end > ref))
    un6 = (upn != "") & ~un4 & ~under_six & ~looked_after
    un6 &= draw_un6 < float(ctx.params["cin.upn_not_obtained_share"])
    withheld = un4 | un6
    unknown = np.select([un4, un6, under_six, further], ["UN4", "UN6", "UN1", "UN2"], default="UN7")
    dod = people["dod"][at]
    d = _blank(n_kids, "Child")
    d["UPN"] = np.where(withheld, "", upn).astype(object)
    d["UPNunknown"] = np.where((upn == "") | withheld, unknown, "").astype(object)
    d["PersonBirthDate"] = _iso(np.where(born, dob, NAT))
    d["ExpectedPersonBirthDate"] = _iso(np.where(born, NAT, due))
    d["GenderCurrent"] = np.where(born, people["gender"][at], "0").astype(object)
    d["PersonDeathDate"] = _iso(np.where(dod <= ref, dod, NAT))
    d["Ethnicity"] = people["ethnicity"][at]
    d["Disabilities"] = _disabilities(ctx, truth, k_pid, ref, n2, further, born)
    d.update(
        _kid=np.arange(n_kids), _ep=np.full(n_kids, -1), _rank=np.zeros(n_kids, np.int64),
        _sub=np.zeros(n_kids, np.int64), _born=born, _prebirth=prebirth, _further=further,
        _due=_iso(due), _sex=people["gender"][at],
    )  # fmt: skip
    parts.insert(0, d)

    # one Header row per LA, then its children in order
    las = np.unique(k_la)
    head = _blank(len(las), "Header")
    head.update(_header_fields(ctx, year, las))
    head["_la"] = las
    rows = {}
    for name, default in _HELPERS.items():
        rows[name] = np.concatenate(
            [part.get(name, np.full(len(part["Block"]), default)) for part in [head, *parts]]
        )
    for name in FIELD_NAMES:
        rows[name] = np.concatenate([part[name] for part in [head, *parts]]).astype(object)
    kid = rows["_kid"]
    is_head = rows["Block"] == "Header"
    rows["_la"] = np.where(is_head, rows["_la"], k_la[np.maximum(kid, 0)])
    rows["_pid"] = np.where(is_head, -1, k_pid[np.maximum(kid, 0)])
    rows["LAchildID"] = np.where(is_head, "", k_id[np.maximum(kid, 0)]).astype(object)
    order = np.lexsort((rows["_sub"], rows["_rank"], rows["_ep"], kid, rows["_la"]))
    rows = _take(rows, order)
    rows["_year"] = np.full(len(order), year)
    return rows


def _header_fields(ctx: RecordContext, year: int, las: np.ndarray) -> Columns:
    """Header values of each LA's return for the year: all derived from the collection."""
    lo, hi = (int(x) for x in ctx.params["cin.submission_days_after_reference_date"])
    h_lo, h_hi = (int(x) for x in ctx.params["cin.submission_hours"])
    ref = np.datetime64(f"{year}-03-31", "D")
    stamps = []
    seconds_per_minute, minutes_per_hour = 60, 60
    for la in las:
        h = _stable_hash(f"cin|{int(la)}|{year}")
        day = ref + np.timedelta64(lo + h % (hi - lo + 1), "D")
        minute = (h >> 16) % ((h_hi - h_lo) * minutes_per_hour)
        second = (h >> 40) % seconds_per_minute
        hour = h_lo + minute // minutes_per_hour
        stamps.append(f"{day}T{hour:02d}:{minute % minutes_per_hour:02d}:{second:02d}")
    n = len(las)
    return {
        "Collection": np.full(n, "CIN", dtype=object),
        "Year": np.full(n, str(year), dtype=object),
        "ReferenceDate": np.full(n, str(ref), dtype=object),
        "SourceLevel": np.full(n, "L", dtype=object),
        "LEA": np.array([f"{int(la):03d}" for la in las], dtype=object),
        "SoftwareCode": np.full(n, SOFTWARE_CODE, dtype=object),
        "Release": np.full(n, __version__, dtype=object),
        "SerialNo": np.full(n, SERIAL_NO, dtype=object),
        "DateTime": np.array(stamps, dtype=object),
    }


# --------------------------------------------------------------------------------------------
# Anomalies (messiness other than clean)
# --------------------------------------------------------------------------------------------


def _inject_anomalies(ctx: RecordContext, rows: Columns) -> None:
    """Apply the CIN-specific anomalies in place, logging each change to ``ctx.errors``."""
    rng = ctx.rng("cin.anomalies")
    block = rows["Block"]
    n = len(block)
    files = file_of(rows["_year"], rows["_la"])
    ids = rows["LAchildID"]

    def pick(name: str, eligible: np.ndarray) -> np.ndarray:
        return np.flatnonzero(eligible & (rng.random(n) < _rate(ctx, name)))

    def change(name: str, idx: np.ndarray, field: str, after) -> None:
        before = rows[field][idx].copy()
        after = np.broadcast_to(np.asarray(after, dtype=object), idx.shape)
        rows[field][idx] = after
        ctx.errors.add(DATASET, files[idx], ids[idx], field, f"cin_{name}", before, after)

    def flag(col: str) -> np.ndarray:
        return rows[col].astype(bool)

    details = block == "CINdetails"
    kids = block == "Child"
    ref_d, close_d = rows["CINreferralDate"], rows["CINclosureDate"]

    eligible = details & flag("_in_year") & flag("_closed") & (close_d > ref_d)
    idx = pick("referral_after_closure", eligible)
    before_ref, before_close = ref_d[idx].copy(), close_d[idx].copy()
    change("referral_after_closure", idx, "CINreferralDate", before_close)
    change("referral_after_closure", idx, "CINclosureDate", before_ref)

    idx = pick("nfa_flag_inconsistent", details & flag("_assessed") & ~flag("_nfa"))
    change("nfa_flag_inconsistent", idx, "ReferralNFA", "true")

    idx = pick("unborn_gender_recorded", kids & ~flag("_born"))
    change("unborn_gender_recorded", idx, "GenderCurrent", rows["_sex"][idx])

    idx = pick("expected_birth_date_kept", kids & flag("_born") & flag("_prebirth"))
    change("expected_birth_date_kept", idx, "ExpectedPersonBirthDate", rows["_due"][idx])

    idx = pick("gender_not_recorded", kids & flag("_born"))
    change("gender_not_recorded", idx, "GenderCurrent", "0")

    idx = pick("primary_need_missing", details & ~flag("_nfa") & (rows["PrimaryNeedCode"] != ""))
    change("primary_need_missing", idx, "PrimaryNeedCode", "")

    eligible = kids & flag("_born") & flag("_further") & (rows["Disabilities"] != "")
    idx = pick("disability_missing", eligible)
    change("disability_missing", idx, "Disabilities", "")

    codes = rows["Disabilities"]
    idx = pick("disability_none_kept", kids & (codes != "") & (codes != "NONE"))
    change("disability_none_kept", idx, "Disabilities", "NONE," + codes[idx])

    idx = pick("closure_after_reference_date", details & flag("_open") & ~flag("_nfa"))
    ref_dates = np.array([f"{y}-03-31" for y in rows["_year"][idx]], dtype="datetime64[D]")
    later = ref_dates + _uniform_days(rng, ctx.params["cin.anomaly_future_closure_days"], len(idx))
    change("closure_after_reference_date", idx, "CINclosureDate", _iso(later))
    change("closure_after_reference_date", idx, "ReasonForClosure", "RC7")


# --------------------------------------------------------------------------------------------
# record()
# --------------------------------------------------------------------------------------------


def record(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """The CIN census rows of one shard, for every collection year in ``ctx.years``.

    Returns ``{"cin.census": frame}`` with the declared fields (strings, '' for absent) plus
    ``_year`` and ``_la``. Registers every LAchildID and UPN recorded in ``ctx.links``.
    """
    years = [y for y in ctx.years if CENSUS.exists_in(y)]
    parts = []
    if years and not ctx.truth["referrals"].empty:
        first = int(ctx.truth["referrals"]["referral_date"].min().year) - 1
        holidays = england_bank_holidays(min(first, years[0] - 1), max(years) + 1)
        truth = _LAView(ctx, holidays)
        parts = [_year_rows(ctx, truth, year) for year in years]
    parts = [p for p in parts if p is not None]
    if not parts:
        frame = pd.DataFrame({c: np.array([], dtype=object) for c in FIELD_NAMES})
        frame["_year"] = np.array([], np.int64)
        frame["_la"] = np.array([], np.int64)
        return {CENSUS.name: frame}
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if ctx.messiness != "clean":
        _inject_anomalies(ctx, cols)
    frame = pd.DataFrame({c: cols[c] for c in FIELD_NAMES})
    frame["_year"] = cols["_year"].astype(np.int64)
    frame["_la"] = cols["_la"].astype(np.int64)
    frame = messiness.apply(
        ctx,
        CENSUS,
        frame,
        dataset=DATASET,
        record_id="LAchildID",
        files=file_of(cols["_year"], cols["_la"]),
        person_ids=cols["_pid"],
        skip=GENERIC_ERRORS_SKIPPED,
    )
    _register_links(ctx, frame, cols["_pid"][frame.index.to_numpy()])
    return {CENSUS.name: frame.reset_index(drop=True)}


def _register_links(ctx: RecordContext, frame: pd.DataFrame, person_ids: np.ndarray) -> None:
    """Register every LAchildID (with its LA), UPN and former UPN as recorded."""
    kids = frame["Block"].to_numpy(dtype=object) == "Child"
    pid = person_ids[kids]
    la_ids = frame["LAchildID"].to_numpy(dtype=object)[kids]
    ctx.links.add(DATASET, frame["_la"].to_numpy()[kids], la_ids, pid)
    for name in ("UPN", "FormerUPN"):
        value = frame[name].to_numpy(dtype=object, na_value="")[kids]
        has = value != ""
        ctx.links.add(DATASET, None, value[has], pid[has])


# --------------------------------------------------------------------------------------------
# XML writer and reader
# --------------------------------------------------------------------------------------------

_INDENT = "  "
_STR = np.dtypes.StringDType()  # variable-width strings: no padding to the longest line
_COLUMN = {name: i for i, name in enumerate(FIELD_NAMES)}
_CHILD_OPEN, _IN_EPISODE, _CHILD_CLOSE = 0, 1, 2  # where an item sorts within its child

# The body of the file, block by block: each block is a list of items in XSD order, each item
# (rank within the episode, placement, depth, field or fixed text, repeated inner element).
# Ranks order a CINdetails episode: head 0, Assessments 1, CINPlanDates 2, Section47 3,
# ReferralNFA 4, ChildProtectionPlans 5, closing tag 6.
_Item = tuple[int, int, int, str, str | None]


def _block_items() -> dict[str, list[_Item]]:
    def fields(names, depth, rank=0, where=_IN_EPISODE):
        return [(rank, where, depth, f"@{n}", None) for n in names]

    def fixed(text, depth, rank=0, where=_IN_EPISODE):
        return [(rank, where, depth, text, None)]

    child = BLOCK_FIELDS["Child"]
    sub = {"Assessments": 1, "CINPlanDates": 2, "Section47": 3, "ChildProtectionPlans": 5}
    items = {
        "Child": fixed("<Child>", 2, where=_CHILD_OPEN)
        + fixed("<ChildIdentifiers>", 3, where=_CHILD_OPEN)
        + fields(child[:-2], 4, where=_CHILD_OPEN)
        + fixed("</ChildIdentifiers>", 3, where=_CHILD_OPEN)
        + fixed("<ChildCharacteristics>", 3, where=_CHILD_OPEN)
        + fields(["Ethnicity"], 4, where=_CHILD_OPEN)
        + [(0, _CHILD_OPEN, 4, "@Disabilities", "Disability")]
        + fixed("</ChildCharacteristics>", 3, where=_CHILD_OPEN)
        + fixed("</Child>", 2, where=_CHILD_CLOSE),
        "CINdetails": fixed("<CINdetails>", 3)
        + fields(BLOCK_FIELDS["CINdetails"][1:-1], 4)
        + fields(["ReferralNFA"], 4, rank=4)
        + fixed("</CINdetails>", 3, rank=6),
    }
    repeated = {
        "Assessments": ("AssessmentFactors", "FactorsIdentifiedAtAssessment"),
        "ChildProtectionPlans": ("CPPreviewDate", "Reviews"),
    }
    for name, rank in sub.items():
        names = BLOCK_FIELDS[name][1:]
        body = fields(names, 5, rank)
        if name in repeated:
            inner, _ = repeated[name]
            body = fields(names[:-1], 5, rank) + [(rank, _IN_EPISODE, 5, f"@{inner}", inner)]
        items[name] = fixed(f"<{name}>", 4, rank) + body + fixed(f"</{name}>", 4, rank)
    return items


_OUTER = {"Disability": "Disabilities", "AssessmentFactors": "FactorsIdentifiedAtAssessment",
          "CPPreviewDate": "Reviews"}  # fmt: skip


def _replace(values: np.ndarray, old: str, new: str) -> np.ndarray:
    """``str.replace`` on every element of an object array of strings."""
    if not values.size:
        return values
    # ``new`` as an array: numpy 2.4 casts a plain str to the dtype of ``values`` (truncating it)
    return np.strings.replace(values.astype(_STR), old, np.array(new)).astype(object)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    """The rows' field values as a 2-D object array of str ('' for missing), XML-escaped."""
    n = len(frame)
    columns = [
        frame[c].to_numpy(dtype=object, na_value="") if c in frame else np.full(n, "", object)
        for c in FIELD_NAMES
    ]
    values = np.column_stack(columns) if n else np.empty((0, len(FIELD_NAMES)), object)
    everything = "".join(values.ravel())
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if char in everything:
            values = _replace(values, char, entity)
    return values


def to_xml(frame: pd.DataFrame) -> tuple[str, int]:
    """The XML text of one LA-year's rows, and the number of Child elements.

    The Header comes from the first Header row; the other rows nest by position (see the
    module docstring). Every line of the file is made at once, from the index of its opening
    text, its value and its closing text, and put in order by (child, episode, rank within the
    episode, row, item).
    """
    return _to_xml(_matrix(frame))


def _to_xml(values: np.ndarray) -> tuple[str, int]:
    block = values[:, _COLUMN["Block"]]
    heads = np.flatnonzero(block == "Header")
    if not heads.size:
        raise ValueError("CIN return rows have no Header row")
    h = values[heads[0]]
    pad = _INDENT * 3
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<Message>\n  <Header>\n']
    out.append("    <CollectionDetails>\n")
    for i, name in enumerate(BLOCK_FIELDS["Header"]):
        if i == 3:
            out.append("    </CollectionDetails>\n    <Source>\n")
        if h[_COLUMN[name]]:
            out.append(f"{pad}<{name}>{h[_COLUMN[name]]}</{name}>\n")
    out.append("    </Source>\n  </Header>\n  <Children>\n")

    body = values[block != "Header"]
    kind = body[:, _COLUMN["Block"]]
    child = np.cumsum(kind == "Child")
    episode = np.cumsum(kind == "CINdetails")
    placed = (child > 0) & ((kind == "Child") | (episode > 0))
    n_cols = body.shape[1]
    opening, closing = [], []  # texts, indexed by the lines
    line_open, line_value, line_close, keys = [], [], [], []
    blank = body.size  # index of the '' appended after the flattened values
    big = np.iinfo(np.int64).max
    for name, items in _block_items().items():
        rows = np.flatnonzero((kind == name) & placed)
        if not rows.size:
            continue
        for slot, (rank, where, depth, what, inner) in enumerate(items):
            p = _INDENT * depth
            if what.startswith("@"):
                column = _COLUMN[what[1:]]
                rows_here = rows[body[rows, column] != ""]
                value = rows_here * n_cols + column
                if inner:
                    body[rows_here, column] = _replace(
                        body[rows_here, column], ",", f"</{inner}>\n{p}{_INDENT}<{inner}>"
                    )
                    start = f"{p}<{_OUTER[inner]}>\n{p}{_INDENT}<{inner}>"
                    end = f"</{inner}>\n{p}</{_OUTER[inner]}>\n"
                else:
                    start, end = f"{p}<{what[1:]}>", f"</{what[1:]}>\n"
            else:
                rows_here = rows
                value = np.full(rows.size, blank)
                start, end = f"{p}{what}\n", ""
            opening.append(start)
            closing.append(end)
            line_open.append(np.full(rows_here.size, len(opening) - 1))
            line_close.append(np.full(rows_here.size, len(closing) - 1))
            line_value.append(value)
            ep = {_CHILD_OPEN: -1, _IN_EPISODE: None, _CHILD_CLOSE: big}[where]
            keys.append(
                np.stack(
                    [
                        child[rows_here],
                        episode[rows_here] if ep is None else np.full(rows_here.size, ep),
                        np.full(rows_here.size, rank),
                        rows_here,
                        np.full(rows_here.size, slot),
                    ]
                )
            )
    if keys:
        order = np.lexsort(np.concatenate(keys, axis=1)[::-1])
        flat = np.append(body.ravel(), "")
        text = (
            np.array(opening, dtype=object)[np.concatenate(line_open)[order]]
            + flat[np.concatenate(line_value)[order]]
            + np.array(closing, dtype=object)[np.concatenate(line_close)[order]]
        )
        out.append("".join(text))
    out.append("  </Children>\n</Message>\n")
    return "".join(out), int(((kind == "Child") & placed).sum())


def write_partition(table: OutputTable, frame: pd.DataFrame, path: Path) -> int:
    """Write one LA-year's CIN census XML file (UTF-8). Returns the number of children."""
    text, n_children = to_xml(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return n_children


WRITE_BATCH_ROWS = 200_000
"""Rows converted to text at once by :func:`write_partitions`: the files of a batch share one
conversion, and memory stays bounded however large the run (a national run has millions)."""


def write_partitions(table: OutputTable, frame: pd.DataFrame, root: Path) -> int:
    """Write every LA-year file of ``frame`` (rows with ``_year`` and ``_la``) under ``root``.

    The same files as :func:`write_partition` called on each group, faster for many files (the
    values of a batch of files, up to ``WRITE_BATCH_ROWS`` rows, are converted at once).
    Returns the number of children written.
    """
    total = 0
    batch: list[tuple[int, int, np.ndarray]] = []

    def flush() -> int:
        values = _matrix(frame.iloc[np.concatenate([rows for _, _, rows in batch])])
        written, at = 0, 0
        for year, la, rows in batch:
            text, n_children = _to_xml(values[at : at + len(rows)])
            at += len(rows)
            path = root / table.path.format(year=year, la=la)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
            written += n_children
        batch.clear()
        return written

    size = 0
    for year, la, rows in partitions(frame):
        batch.append((year, la, rows))
        size += len(rows)
        if size >= WRITE_BATCH_ROWS:
            total += flush()
            size = 0
    if batch:
        total += flush()
    return total


def read_xml(path: Path | str) -> pd.DataFrame:
    """Read a CIN census XML file back into the rows of ``cin.census`` (fields only).

    Example:
        >>> rows = read_xml("returns/cin/2024/886.xml")  # doctest: +SKIP
        >>> rows["Block"].value_counts()  # doctest: +SKIP
    """
    root = ElementTree.parse(path).getroot()
    rows: list[dict[str, str]] = []

    def text_of(el, name):
        found = el.find(name)
        return "" if found is None or found.text is None else found.text

    def many(el, outer, inner):
        found = el.find(outer)
        return "" if found is None else ",".join((x.text or "") for x in found.findall(inner))

    header = {"Block": "Header"}
    for part in ("Header/CollectionDetails", "Header/Source"):
        el = root.find(part)
        for name in BLOCK_FIELDS["Header"]:
            if el is not None and el.find(name) is not None:
                header[name] = text_of(el, name)
    rows.append(header)
    for child in root.iterfind("Children/Child"):
        ident = child.find("ChildIdentifiers")
        chars = child.find("ChildCharacteristics")
        la_id = text_of(ident, "LAchildID")
        row = {"Block": "Child"}
        row.update({n: text_of(ident, n) for n in BLOCK_FIELDS["Child"][:-2]})
        row["Ethnicity"] = text_of(chars, "Ethnicity")
        row["Disabilities"] = many(chars, "Disabilities", "Disability")
        rows.append(row)
        for det in child.iterfind("CINdetails"):
            rows.append(
                {
                    "Block": "CINdetails",
                    "LAchildID": la_id,
                    **{n: text_of(det, n) for n in BLOCK_FIELDS["CINdetails"][1:]},
                }
            )
            for a in det.iterfind("Assessments"):
                r = {"Block": "Assessments", "LAchildID": la_id}
                r.update({n: text_of(a, n) for n in BLOCK_FIELDS["Assessments"][1:-1]})
                r["AssessmentFactors"] = many(
                    a, "FactorsIdentifiedAtAssessment", "AssessmentFactors"
                )
                rows.append(r)
            for name in ("CINPlanDates", "Section47"):
                for x in det.iterfind(name):
                    rows.append(
                        {
                            "Block": name,
                            "LAchildID": la_id,
                            **{n: text_of(x, n) for n in BLOCK_FIELDS[name][1:]},
                        }
                    )
            for x in det.iterfind("ChildProtectionPlans"):
                r = {"Block": "ChildProtectionPlans", "LAchildID": la_id}
                r.update({n: text_of(x, n) for n in BLOCK_FIELDS["ChildProtectionPlans"][1:-1]})
                r["CPPreviewDate"] = many(x, "Reviews", "CPPreviewDate")
                rows.append(r)
    return pd.DataFrame(rows, columns=list(FIELD_NAMES), dtype=object).fillna("")

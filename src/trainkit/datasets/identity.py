"""Identity extracts: the identifiers the data owners hold before pseudonymisation.

ECHILD's linkage works on files like these: the DfE sends NHS England each pupil's identifiers
(name, date of birth, sex, postcode) from the school censuses, and NHS England matches them to
its Personal Demographics Service (PDS) to find the NHS number (docs.echild.ac.uk/linkage;
Libuy et al. 2021, IJPDS 6(1):1671). Three Parquet files under ``DIR/identified/``:

- ``pupils.parquet``: the DfE's pupil identifiers, one row per pupil per spring census (every
  census year the population spans), with the UPN the pupil held, forename, middle names,
  surname, date of birth, sex and the home postcode on census day.
- ``pds.parquet``: NHS England's demographics, one row per NHS number (everyone born in England,
  and unaccompanied asylum-seeking children from arrival, has one; an adopted child has a second,
  see below): NHS number, names, date of birth, gender, date of death. Field names follow the
  PDS trace (MESH) response file.
- ``pds_addresses.parquet``: PDS's postcode history, one row per NHS number per address spell,
  with the dates it applied from and to. A separate file keeps ``pds.parquet`` at one row per
  NHS number.

Name errors live here: every table goes through :func:`trainkit.datasets.messiness.apply`.

Adoption: an adopted child takes the adopters' surname from the adoption order, and a child who
already had a UPN is re-registered with a new one (the DfE's UPN guide for schools and local
authorities, v1.2 2019, has a section on adopted children; here the former UPN is never
recorded, so the two identities are not linked in the DfE's data), so from the first census
after the order the pupil appears under a new surname and UPN. A child adopted before starting
school has only the adoptive identity. In PDS the child is re-registered too
(:func:`nhs_history`): NHS England invalidates the pre-adoptive NHS number and issues a new one
with the post-adoptive details, so ``pds.parquet`` holds two records for the child and nothing
joins them (PDS keeps the link confidential): the pre-adoptive record (birth surname, no date of
death, an address history that ends the day before the order) and the new record (adoptive
surname, addresses from the order). Only ``truth/links.parquet`` names the one person behind
both numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..simulate.names import draw_surnames
from . import messiness
from .identifiers import (
    MAX_PEOPLE,
    UPN_PATTERN,
    UPN_UNKNOWN_CODES,
    anon_ids,
    assign_new_nhs_numbers,
    assign_nhs_numbers,
    assign_upns,
)
from .npd import research_parameters
from .record import RecordContext
from .schema import Field, OutputTable, codes_from

UPN_SALT = 1  # salt = ctx.seed * SALT_SCALE + UPN_SALT, shared with every dataset that records UPNs
NHS_SALT = 2  # salt of NHS numbers
RECORD_ID_SALT = 9  # salt of the pupils file's record references
SALT_SCALE = 1000
MAX_SURNAME_DRAWS = 10  # redraws of an adoptive surname that equals the birth surname

PUPILS_FILE = "identified/pupils.parquet"
PDS_FILE = "identified/pds.parquet"
PDS_ADDRESSES_FILE = "identified/pds_addresses.parquet"
PUPIL_DATE_FORMAT = "%Y-%m-%d"  # CBDS dates (school census XML)
PDS_DATE_FORMAT = "%Y%m%d"  # PDS trace response dates
RECORD_PREFIX = "SC"
EPOCH_YEAR = 1970  # datetime64[Y] counts years from 1970

SEX_CODES = codes_from(("M", "Male"), ("F", "Female"))
GENDER_CODES = codes_from(
    ("0", "Not known"), ("1", "Male"), ("2", "Female"), ("9", "Not specified")
)
_GENDER_OF_SEX = {"M": "1", "F": "2"}

PUPILS = OutputTable(
    name="pupils.census_identifiers",
    dataset="pupils",
    path=PUPILS_FILE,
    format="parquet",
    description=(
        "The DfE's identifiers of each pupil on each spring census, as sent to NHS England for "
        "linkage: one row per pupil per census year."
    ),
    source=(
        "DfE Common Basic Data Set field names (school census: UPN, Surname, Forename, "
        "MiddleNames, DOB, Sex, Postcode); the identifiers ECHILD links on "
        "(docs.echild.ac.uk/linkage; Libuy et al. 2021)"
    ),
    fields=(
        Field(
            "RecordID",
            "string",
            "Reference of this census record: a row key, like the UNIQUE REFERENCE of an NHS "
            "England trace request ('SC' and 16 hexadecimal characters).",
            required=True,
            semantic="id",
        ),
        Field(
            "CensusYear",
            "int",
            "Year of the spring (January) census; 2024 is the census of January 2024, academic "
            "year 2023/24.",
            required=True,
        ),
        Field(
            "UPN",
            "string",
            "Unique Pupil Number the pupil held on census day (a new one after an adoption "
            "order); may be blank.",
            pattern=UPN_PATTERN,
            max_length=13,
            semantic="upn",
        ),
        Field("Surname", "string", "Surname as recorded by the school.", semantic="surname"),
        Field("Forename", "string", "Forename as recorded by the school.", semantic="forename"),
        Field(
            "MiddleNames",
            "string",
            "Middle name(s) as recorded by the school; blank if none.",
            semantic="middle_names",
        ),
        Field(
            "DOB",
            "date",
            "Date of birth.",
            date_format=PUPIL_DATE_FORMAT,
            semantic="date_of_birth",
        ),
        Field("Sex", "code", "Sex.", codes=SEX_CODES, semantic="sex"),
        Field(
            "Postcode",
            "string",
            "Postcode of the pupil's home on census day.",
            max_length=8,
            semantic="postcode",
        ),
    ),
    key=("RecordID",),
)

PDS = OutputTable(
    name="pds.demographics",
    dataset="pds",
    path=PDS_FILE,
    format="parquet",
    description=(
        "NHS England's demographic records (Personal Demographics Service), as at the census "
        "date: one row per NHS number. An adopted child has two: the pre-adoptive record, "
        "invalidated at the adoption order, and the record under the new number issued then; "
        "nothing in PDS joins them."
    ),
    source=(
        "NHS England PDS MESH trace response file field names (NHS_NO, FAMILY_NAME, "
        "GIVEN_NAME, OTHER_GIVEN_NAME, GENDER, DATE_OF_BIRTH, DATE_OF_DEATH; dates YYYYMMDD)"
    ),
    fields=(
        Field(
            "NHS_NO",
            "string",
            "NHS number: 10 digits with a modulus 11 check digit, from the range reserved for "
            "testing (999 000 0000 - 999 999 9999), so none is a real person's.",
            required=True,
            pattern=r"^999\d{7}$",
            max_length=10,
            semantic="nhs_number",
        ),
        Field("FAMILY_NAME", "string", "Current surname.", semantic="surname"),
        Field("GIVEN_NAME", "string", "First given name.", semantic="forename"),
        Field(
            "OTHER_GIVEN_NAME",
            "string",
            "Other given names; blank if none.",
            semantic="middle_names",
        ),
        Field("GENDER", "code", "Gender.", codes=GENDER_CODES, semantic="sex"),
        Field(
            "DATE_OF_BIRTH",
            "date",
            "Date of birth.",
            date_format=PDS_DATE_FORMAT,
            semantic="date_of_birth",
        ),
        Field(
            "DATE_OF_DEATH",
            "date",
            "Date of death, from the death registration; blank if alive at the census date.",
            date_format=PDS_DATE_FORMAT,
        ),
    ),
    key=("NHS_NO",),
)

PDS_ADDRESSES = OutputTable(
    name="pds.addresses",
    dataset="pds",
    path=PDS_ADDRESSES_FILE,
    format="parquet",
    description=(
        "PDS's address history: one row per NHS number per address spell in England, with the "
        "dates the address applied (a pre-adoptive record's history ends the day before the "
        "adoption order, and the new record's starts on it)."
    ),
    source="NHS England PDS (POSTCODE, and ADDRESS_DATE as the date an address applies from)",
    fields=(
        Field(
            "NHS_NO",
            "string",
            "NHS number (as in pds.parquet).",
            required=True,
            pattern=r"^999\d{7}$",
            max_length=10,
        ),
        Field("POSTCODE", "string", "Postcode of the address.", max_length=8, semantic="postcode"),
        Field(
            "FROM_DATE",
            "date",
            "First day at the address (birth or arrival for the first).",
            required=True,
            date_format=PDS_DATE_FORMAT,
        ),
        Field(
            "TO_DATE",
            "date",
            "Last day at the address; blank for the last address known.",
            date_format=PDS_DATE_FORMAT,
        ),
    ),
    key=("NHS_NO", "FROM_DATE"),
)

TABLES = (PUPILS, PDS, PDS_ADDRESSES)

# Error types that do not happen in these files (see docs/messiness.md).
PDS_SKIP = (
    "nhs_missing",  # PDS is the register of NHS numbers: its records always have one
    "nhs_check_digit",
    "nhs_transposed_digits",
    "duplicate_record",  # one row per NHS number; PDS duplicates are separate NHS numbers
)
PDS_ADDRESSES_SKIP = (*PDS_SKIP, "postcode_stale")  # a history spell is its own postcode


def upn_salt(ctx: RecordContext) -> int:
    """The salt of UPNs in this run (shared by every dataset that records UPNs)."""
    return ctx.seed * SALT_SCALE + UPN_SALT


def nhs_salt(ctx: RecordContext) -> int:
    """The salt of NHS numbers in this run (shared by every dataset that records them)."""
    return ctx.seed * SALT_SCALE + NHS_SALT


def _dates(values) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[D]")


def _format(dates: np.ndarray, fmt: str) -> np.ndarray:
    """Dates as strings in ``fmt`` (``%Y-%m-%d`` or ``%Y%m%d``), '' where missing."""
    iso = np.datetime_as_string(np.asarray(dates, dtype="datetime64[D]"), unit="D")
    if fmt == PDS_DATE_FORMAT:
        iso = np.strings.replace(iso, "-", "")
    elif fmt != PUPIL_DATE_FORMAT:
        raise ValueError(f"identity: no date format {fmt!r}")
    return np.where(iso == "NaT", "", iso).astype(object)


def adoptions(ctx: RecordContext) -> pd.DataFrame:
    """Each adopted child's first adoption order and the adopters' surname.

    The surname is drawn from the name pools of the child's ethnicity
    (:func:`trainkit.simulate.names.draw_surnames`), never the birth surname, with
    ``ctx.rng("identity.adoptive_surnames")``.

    Returns:
        Columns ``person_id``, ``date_adopted`` (datetime64), ``surname``; one row per child.
    """
    orders = ctx.adoption_orders()
    a = pd.DataFrame(
        {"person_id": orders.index.to_numpy(np.int64), "date_adopted": orders.to_numpy()}
    )
    persons = ctx.truth["persons"].set_index("person_id")
    ethnicity = persons.loc[a["person_id"], "ethnicity"].to_numpy()
    birth = persons.loc[a["person_id"], "surname"].to_numpy(dtype=object)
    rng = ctx.rng("identity.adoptive_surnames")
    surname = draw_surnames(rng, ethnicity)
    for _ in range(MAX_SURNAME_DRAWS):
        same = np.flatnonzero(surname == birth)
        if not len(same):
            break
        surname[same] = draw_surnames(rng, ethnicity[same])
    return a.assign(surname=surname)


def _school_la_on(enrol: pd.DataFrame, person_ids: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """LA of the school each person is on roll at on each date (-1 where none)."""
    query = pd.DataFrame({"i": np.arange(len(person_ids)), "person_id": person_ids})
    query["date"] = pd.to_datetime(dates).as_unit("s")
    spells = enrol[["person_id", "entry_date", "leaving_date", "la_code"]].copy()
    spells["entry_date"] = spells["entry_date"].dt.as_unit("s")
    hit = pd.merge_asof(
        query.sort_values("date"),
        spells.sort_values("entry_date"),
        left_on="date",
        right_on="entry_date",
        by="person_id",
    ).sort_values("i")
    on_roll = hit["la_code"].notna() & ~(hit["leaving_date"] < hit["date"])
    return np.where(on_roll, hit["la_code"].fillna(-1), -1).astype(np.int64)


def upn_history(ctx: RecordContext, adopted: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every UPN each pupil of the shard holds, and from when.

    A pupil's first UPN is allocated at first school entry, by the LA of that school, in the
    calendar year of entry (:func:`~trainkit.datasets.identifiers.assign_upns` with
    :func:`upn_salt`). A pupil adopted after first entering school gets a new UPN from the
    date of the adoption order, allocated by the LA of the school on roll then (else the LA the
    child lives in) in the year of the order; if that LA and year are those of the first UPN,
    the next year is used, so the new UPN always differs. Every dataset that records a child's
    UPN should take it from here (or from :func:`upns_on`).

    Args:
        ctx: the record context.
        adopted: :func:`adoptions` of the shard, if already computed.

    Returns:
        Columns ``person_id``, ``upn``, ``valid_from``, ``valid_to`` (datetime64[s]; NaT while
        current), sorted by person and date.
    """
    enrol = ctx.truth["school_enrolments"].sort_values(["person_id", "entry_date"])
    first = enrol.drop_duplicates("person_id")
    pid = first["person_id"].to_numpy(np.int64)
    entry = _dates(first["entry_date"])
    la = first["la_code"].to_numpy(np.int64)
    year = entry.astype("datetime64[Y]").astype(np.int64) + EPOCH_YEAR
    salt = upn_salt(ctx)
    nat = np.datetime64("NaT", "D")
    parts = [
        pd.DataFrame(
            {
                "person_id": pid,
                "upn": assign_upns(pid, la, year, salt),
                "valid_from": entry,
                "valid_to": np.full(len(pid), nat),
            }
        )
    ]
    adopted = adoptions(ctx) if adopted is None else adopted
    at = np.searchsorted(pid, adopted["person_id"].to_numpy(np.int64))
    at = np.minimum(at, max(len(pid) - 1, 0))
    order = _dates(adopted["date_adopted"])
    had_upn = (
        (pid[at] == adopted["person_id"].to_numpy()) & (order > entry[at])
        if len(pid)
        else np.zeros(len(adopted), dtype=bool)
    )
    if had_upn.any():
        a_pid = adopted["person_id"].to_numpy(np.int64)[had_upn]
        order, at = order[had_upn], at[had_upn]
        school_la = _school_la_on(enrol, a_pid, order)
        home_la = ctx.cohort.la_at(np.searchsorted(ctx.cohort.person_id, a_pid), order).astype(
            np.int64
        )
        new_la = np.where(school_la >= 0, school_la, home_la)
        new_year = order.astype("datetime64[Y]").astype(np.int64) + EPOCH_YEAR
        same = (new_la == la[at]) & (new_year % 100 == year[at] % 100)
        new_year = np.where(same, new_year + 1, new_year)
        parts[0].loc[at, "valid_to"] = order - np.timedelta64(1, "D")
        parts.append(
            pd.DataFrame(
                {
                    "person_id": a_pid,
                    "upn": assign_upns(a_pid, new_la, new_year, salt),
                    "valid_from": order,
                    "valid_to": np.full(len(a_pid), nat),
                }
            )
        )
    return _history(parts)


def upns_on(
    ctx: RecordContext,
    person_ids: np.ndarray,
    dates: np.ndarray,
    history: pd.DataFrame | None = None,
) -> np.ndarray:
    """The UPN each person held on each date ('' before their first school entry).

    Args:
        ctx: the record context.
        person_ids: int64, one per query.
        dates: datetime64, one per query.
        history: :func:`upn_history` of the shard, if already computed.

    Returns:
        Object array of UPNs (13 characters) or ''.
    """
    history = upn_history(ctx) if history is None else history
    return lookup_upns(history, person_ids, dates)[0]


def lookup_upns(
    history: pd.DataFrame, person_ids: np.ndarray, dates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """From a :func:`upn_history`, the UPN held on each date and the one held before it ('')."""
    history = history.assign(former=history.groupby("person_id")["upn"].shift(1).fillna(""))
    query = pd.DataFrame(
        {
            "i": np.arange(len(person_ids)),
            "person_id": np.asarray(person_ids, dtype=np.int64),
            "date": pd.to_datetime(np.asarray(dates, dtype="datetime64[s]")).as_unit("s"),
        }
    )
    hit = pd.merge_asof(
        query.sort_values("date"),
        history[["person_id", "upn", "former", "valid_from"]].sort_values("valid_from"),
        left_on="date",
        right_on="valid_from",
        by="person_id",
    ).sort_values("i")
    return (
        hit["upn"].fillna("").to_numpy(dtype=object),
        hit["former"].fillna("").to_numpy(dtype=object),
    )


def nhs_history(ctx: RecordContext, adopted: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every NHS number each person of the shard holds, and from when.

    Everyone has an NHS number from birth, or from arrival for a child who came to England
    (:func:`~trainkit.datasets.identifiers.assign_nhs_numbers` with :func:`nhs_salt`). When an
    adoption is registered, NHS England's National Back Office invalidates the pre-adoptive NHS
    number on PDS and issues a new one under the child's post-adoptive details (Primary Care
    Support England, "Adoption", guidance for GP practices), so an adopted child holds a second
    number from the adoption order (:func:`~trainkit.datasets.identifiers.assign_new_nhs_numbers`;
    with probability ``research.adopted_new_nhs_number``, drawn with
    ``ctx.rng("identity.new_nhs_number")``). Every dataset that records a child's NHS number,
    or keys a record by it (HES tokens), should take it from here
    (:meth:`~trainkit.datasets.record.RecordContext.nhs_history`).

    Args:
        ctx: the record context.
        adopted: :func:`adoptions` of the shard, if already computed.

    Returns:
        Columns ``person_id``, ``nhs_number``, ``valid_from`` (birth or arrival; the order for
        a new number), ``valid_to`` (the day before the order for a pre-adoptive number; NaT
        while current), dates as datetime64[s], sorted by person and date.
    """
    c = ctx.cohort
    pid = np.asarray(c.person_id, dtype=np.int64)
    nat = np.datetime64("NaT", "D")
    first = pd.DataFrame(
        {
            "person_id": pid,
            "nhs_number": assign_nhs_numbers(pid, nhs_salt(ctx)),
            "valid_from": _dates(c.start),
            "valid_to": np.full(len(pid), nat),
        }
    )
    adopted = adoptions(ctx) if adopted is None else adopted
    share = research_parameters(ctx)["adopted_new_nhs_number"]
    rng = ctx.rng("identity.new_nhs_number")
    new = rng.random(len(adopted)) < share
    parts = [first]
    if new.any():
        a_pid = adopted["person_id"].to_numpy(np.int64)[new]
        order = _dates(adopted["date_adopted"])[new]
        at = np.searchsorted(pid, a_pid)
        first.loc[at, "valid_to"] = order - np.timedelta64(1, "D")
        shard = (int(pid.min()), int(pid.max()))
        population = ctx.population or max(MAX_PEOPLE, shard[1])
        parts.append(
            pd.DataFrame(
                {
                    "person_id": a_pid,
                    "nhs_number": assign_new_nhs_numbers(a_pid, shard, population, nhs_salt(ctx)),
                    "valid_from": order,
                    "valid_to": np.full(len(a_pid), nat),
                }
            )
        )
    return _history(parts)


def _history(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """An identifier history from its parts: one row per value held, by person and start."""
    history = pd.concat(parts, ignore_index=True)
    for col in ("valid_from", "valid_to"):
        history[col] = history[col].astype("datetime64[s]")
    return history.sort_values(["person_id", "valid_from"], kind="stable").reset_index(drop=True)


def _person_rows(persons: pd.DataFrame, person_ids: np.ndarray) -> np.ndarray:
    """Row of each person in the truth's persons table."""
    pid = persons["person_id"].to_numpy(np.int64)
    order = np.argsort(pid, kind="stable")
    return order[np.searchsorted(pid[order], person_ids)]


def _str_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A frame whose text columns are strings in every shard, even an empty one (so every
    shard's Parquet part has the same schema); whole-number columns are kept as they are."""
    out = {}
    for name, values in columns.items():
        arr = np.asarray(values)
        out[name] = arr if arr.dtype.kind in "iu" else pd.array(arr.astype(object), dtype="str")
    return pd.DataFrame(out)


def _pupils(ctx: RecordContext, history: pd.DataFrame, adopted: pd.DataFrame) -> pd.DataFrame:
    census = ctx.truth["pupil_census"]
    pid = census["person_id"].to_numpy(np.int64)
    day = _dates(census["census_date"])
    year = census["academic_year"].to_numpy(np.int64)
    persons = ctx.truth["persons"]
    at = _person_rows(persons, pid)
    people = persons.iloc[at]
    dob = _format(persons["date_of_birth"].to_numpy(), PUPIL_DATE_FORMAT)[at]  # once a person
    surname = people["surname"].to_numpy(dtype=object)
    order = pd.Series(_dates(adopted["date_adopted"]), index=adopted["person_id"])
    new_surname = pd.Series(adopted["surname"].to_numpy(dtype=object), index=adopted["person_id"])
    is_adopted = np.isin(pid, adopted["person_id"].to_numpy())
    if is_adopted.any():
        rows = np.flatnonzero(is_adopted)
        after = day[rows] >= order.loc[pid[rows]].to_numpy()
        surname[rows[after]] = new_surname.loc[pid[rows[after]]].to_numpy()
    cohort_rows = np.searchsorted(ctx.cohort.person_id, pid)
    frame = _str_frame(
        {
            "RecordID": anon_ids(
                pid * 10_000 + year,
                salt=ctx.seed * SALT_SCALE + RECORD_ID_SALT,
                prefix=RECORD_PREFIX,
            ),
            "CensusYear": year.astype(np.int16),
            "UPN": upns_on(ctx, pid, day, history),
            "Surname": surname,
            "Forename": people["forename"].to_numpy(dtype=object),
            "MiddleNames": people["middle_names"].fillna("").to_numpy(dtype=object),
            "DOB": dob,
            "Sex": people["sex"].to_numpy(dtype=object),
            "Postcode": ctx.cohort.postcode_at(cohort_rows, day),
        }
    )
    out = messiness.apply(
        ctx,
        PUPILS,
        frame,
        dataset="pupils",
        record_id="RecordID",
        files=PUPILS_FILE,
        person_ids=pid,
    )
    out_pid = pid[out.index.to_numpy()]  # apply() keeps each row's input position
    upn = out["UPN"].to_numpy(dtype=object)
    known = (upn != "") & ~np.isin(upn, list(UPN_UNKNOWN_CODES))  # UN codes identify no one
    ctx.links.add("pupils", None, upn[known], out_pid[known])
    return out.reset_index(drop=True)


def _pds(
    ctx: RecordContext, adopted: pd.DataFrame, nhs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    persons = ctx.truth["persons"]
    pid = nhs["person_id"].to_numpy(np.int64)  # one row per NHS number
    people = persons.iloc[_person_rows(persons, pid)]
    current = nhs["valid_to"].isna().to_numpy()  # a pre-adoptive number is closed at the order
    adoptive = pd.Series(adopted["surname"].to_numpy(dtype=object), index=adopted["person_id"])
    surname = people["surname"].to_numpy(dtype=object).copy()
    renamed = current & np.isin(pid, adoptive.index.to_numpy())
    surname[renamed] = adoptive.loc[pid[renamed]].to_numpy()
    gender = np.vectorize(_GENDER_OF_SEX.get, otypes=[object])(people["sex"].to_numpy())
    death = np.where(current, _dates(people["date_of_death"]), np.datetime64("NaT", "D"))
    frame = _str_frame(
        {
            "NHS_NO": nhs["nhs_number"].to_numpy(dtype=object),
            "FAMILY_NAME": surname,
            "GIVEN_NAME": people["forename"].to_numpy(dtype=object),
            "OTHER_GIVEN_NAME": people["middle_names"].fillna("").to_numpy(dtype=object),
            "GENDER": gender,
            "DATE_OF_BIRTH": _format(people["date_of_birth"].to_numpy(), PDS_DATE_FORMAT),
            "DATE_OF_DEATH": _format(death, PDS_DATE_FORMAT),
        }
    )
    pds = messiness.apply(
        ctx,
        PDS,
        frame,
        dataset="pds",
        record_id="NHS_NO",
        files=PDS_FILE,
        person_ids=pid,
        skip=PDS_SKIP,
    )
    ctx.links.add(
        "pds",
        None,
        pds["NHS_NO"].to_numpy(dtype=object),
        pid[pds.index.to_numpy()],
    )
    history = _address_history(ctx, nhs)
    history = messiness.apply(
        ctx,
        PDS_ADDRESSES,
        history.drop(columns="_pid"),
        dataset="pds",
        record_id="NHS_NO",
        files=PDS_ADDRESSES_FILE,
        person_ids=history["_pid"].to_numpy(np.int64),
        skip=PDS_ADDRESSES_SKIP,
    )
    return pds.reset_index(drop=True), history.reset_index(drop=True)


def _address_history(ctx: RecordContext, nhs: pd.DataFrame) -> pd.DataFrame:
    """PDS's address spells, each under the NHS number that applied: a pre-adoptive record's
    history ends the day before the order, and the new record's starts on it (a spell that
    spans the order is split between the two). Column ``_pid`` holds each row's person."""
    addresses = ctx.truth["addresses"].sort_values(["person_id", "spell"])
    a_pid = addresses["person_id"].to_numpy(np.int64)
    start = _dates(addresses["start_date"])
    end = _dates(addresses["end_date"])
    postcode = addresses["postcode"].to_numpy(dtype=object)
    first = nhs.drop_duplicates("person_id").set_index("person_id")
    new = nhs[nhs.duplicated("person_id")].set_index("person_id")
    first_no = first["nhs_number"].reindex(a_pid).to_numpy(dtype=object)
    order = _dates(new["valid_from"].reindex(a_pid))  # NaT unless re-registered
    reissued = ~np.isnat(order)
    before = ~reissued | (start < order)
    after = reissued & (np.isnat(end) | (end >= order))
    day = np.timedelta64(1, "D")
    old_end = np.where(reissued & (np.isnat(end) | (end >= order)), order - day, end)
    keep = np.flatnonzero(before)
    moved = np.flatnonzero(after)
    new_no = new["nhs_number"].reindex(a_pid[moved]).to_numpy(dtype=object)
    rows = pd.DataFrame(
        {
            "_pid": np.concatenate([a_pid[keep], a_pid[moved]]),
            "NHS_NO": np.concatenate([first_no[keep], new_no]),
            "_from": np.concatenate([start[keep], np.maximum(start[moved], order[moved])]),
            "_to": np.concatenate([old_end[keep], end[moved]]),
            "POSTCODE": np.concatenate([postcode[keep], postcode[moved]]),
            "_new": np.concatenate([np.zeros(keep.size, bool), np.ones(moved.size, bool)]),
        }
    ).sort_values(["_pid", "_new", "_from"], kind="stable")
    return _str_frame(
        {
            "NHS_NO": rows["NHS_NO"].to_numpy(dtype=object),
            "POSTCODE": rows["POSTCODE"].to_numpy(dtype=object),
            "FROM_DATE": _format(rows["_from"].to_numpy(), PDS_DATE_FORMAT),
            "TO_DATE": _format(rows["_to"].to_numpy(), PDS_DATE_FORMAT),
            "_pid": rows["_pid"].to_numpy(np.int64),
        }
    )


def record(ctx: RecordContext) -> dict[str, pd.DataFrame]:
    """The shard's identity extracts: pupils' identifiers per census, PDS, PDS addresses."""
    adopted = adoptions(ctx)
    history = upn_history(ctx, adopted)
    ctx._upn_history = history  # the SSDA903 and CIN modules look UPNs up in the same history
    nhs = nhs_history(ctx, adopted)
    ctx._nhs_history = nhs  # and HES keys its tokens by the same NHS numbers
    pupils = _pupils(ctx, history, adopted)
    pds, pds_addresses = _pds(ctx, adopted, nhs)
    return {PUPILS.name: pupils, PDS.name: pds, PDS_ADDRESSES.name: pds_addresses}

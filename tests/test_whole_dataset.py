"""One whole generated dataset, checked across every file it writes.

Each dataset module tests its own tables; these tests generate one complete dataset the way a
user does (several LAs, two workers, so the shards' parts are merged) and check every file under
``returns/``, ``research/`` and ``identified/`` against the truth kept beside them:

- every identifier recorded anywhere is in ``truth/links.parquet`` under its dataset (and LA where
  it is LA-specific) with its true person, found independently of the links where possible, and
  every link names a value some file of its dataset holds;
- every row of ``truth/error_log.parquet`` is findable: its file exists, holds a record with its
  record id, and that record's field holds the value after;
- every UPN and NHS number is well formed, or is a logged error;
- at ``--messiness clean`` nothing is logged and the truth is byte-identical.

Files are read by one reader per format (CSV, XML, Parquet), every value as text, as the error
log holds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainkit.config import make_config
from trainkit.datasets import identifiers, npd
from trainkit.datasets.record import DUPLICATE_COPIES, DUPLICATE_FIELD
from trainkit.simulate.engine import generate
from trainkit.truth import read_truth

CONFIG = {
    "children": 12_000,
    "seed": 21,
    "shard_size": 6_000,
    "local_authorities": [202, 316, 330, 886],
}
WORKERS = 2
FOLDERS = ("returns", "research", "identified")
UN_CODES = set(identifiers.UPN_UNKNOWN_CODES)
EXACT_DUPLICATES = {"duplicate_record", "duplicate_episode"}  # the copy is the same record


# --------------------------------------------------------------------------------------------
# The datasets
# --------------------------------------------------------------------------------------------


def _generate(tmp_path_factory, messiness: str) -> Path:
    out = tmp_path_factory.mktemp(f"whole-{messiness}") / "data"
    generate(make_config({**CONFIG, "messiness": messiness}), out, workers=WORKERS)
    return out


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory, "realistic")


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory, "clean")


# --------------------------------------------------------------------------------------------
# One reader per format: every value as text ('' for blank), as the error log holds it
# --------------------------------------------------------------------------------------------


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV file: one row per record."""
    return pd.read_csv(path, dtype=str, keep_default_na=False).astype(object)


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file: one row per record; dates as YYYY-MM-DD, numbers as written."""
    table = pq.read_table(path)
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_date(column.type):
            values = pd.Series(column.to_pandas(date_as_object=False))
            text = values.dt.strftime("%Y-%m-%d")
        elif pa.types.is_integer(column.type):
            values = pd.Series(column.to_pandas(integer_object_nulls=True))
            text = values.map(str)
        else:
            values = pd.Series(column.to_pandas())
            text = values.map(str)
        out[name] = text.where(values.notna(), "").astype(object)
    return pd.DataFrame(out)


def read_xml(path: Path) -> pd.DataFrame:
    """An XML return, long: one row per leaf value of each child, with the child's id.

    Columns ``record_id`` (the child's LAchildID), ``parent`` and ``block`` (the element holding
    the value, and which occurrence of it), ``field`` and ``value``. A list element (all its
    children one repeated leaf, e.g. Disabilities/Disability) also gives one row of its own,
    its values joined by commas.
    """
    rows: list[tuple[str, str, int, str, str]] = []
    block = 0
    for child in ElementTree.parse(path).getroot().iterfind("Children/Child"):
        record_id = child.findtext("ChildIdentifiers/LAchildID", default="")
        stack = [child]
        while stack:
            parent = stack.pop()
            block += 1
            for el in parent:
                kids = list(el)
                if not kids:
                    rows.append((record_id, parent.tag, block, el.tag, el.text or ""))
                    continue
                if len({k.tag for k in kids}) == 1 and not any(len(k) for k in kids):
                    joined = ",".join(k.text or "" for k in kids)
                    rows.append((record_id, parent.tag, block, el.tag, joined))
                stack.append(el)
    return pd.DataFrame(rows, columns=["record_id", "parent", "block", "field", "value"])


READERS = {".csv": read_csv, ".parquet": read_parquet, ".xml": read_xml}


def read_all(root: Path) -> dict[str, pd.DataFrame]:
    """Every file under returns/, research/ and identified/, by path relative to ``root``."""
    out = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                out[path.relative_to(root).as_posix()] = READERS[path.suffix](path)
    return out


@pytest.fixture(scope="module")
def files(realistic) -> dict[str, pd.DataFrame]:
    return read_all(realistic)


@pytest.fixture(scope="module")
def links(realistic) -> pd.DataFrame:
    return pd.read_parquet(realistic / "truth" / "links.parquet")


@pytest.fixture(scope="module")
def log(realistic) -> pd.DataFrame:
    return pd.read_parquet(realistic / "truth" / "error_log.parquet").fillna("")


def _truth(root: Path, name: str) -> pd.DataFrame:
    return read_truth(root, name)


# --------------------------------------------------------------------------------------------
# Every identifier recorded, wherever it is
# --------------------------------------------------------------------------------------------


def _la_of_return(rel: str) -> int:
    """The LA of a return: returns/ssda903/{year}/{la}/x.csv or returns/cin/{year}/{la}.xml."""
    return int(Path(rel).parent.name if rel.endswith(".csv") else Path(rel).stem)


def recorded_identifiers(files: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every identifier value in every file: ``dataset``, ``la_code`` (-1 where national),
    ``source_id``, ``file``, ``field``."""
    parts = []

    def add(dataset, rel, field, values, la=-1):
        values = pd.Series(values, dtype=object).reset_index(drop=True)
        la = pd.Series(np.broadcast_to(np.asarray(la, dtype=np.int64), len(values)))
        keep = (values != "") & ~values.isin(UN_CODES)
        parts.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "la_code": la[keep].to_numpy(),
                    "source_id": values[keep].to_numpy(),
                    "file": rel,
                    "field": field,
                }
            )
        )

    for rel, frame in files.items():
        if rel.startswith("returns/ssda903/"):
            add("ssda903", rel, "CHILD", frame["CHILD"], _la_of_return(rel))
            if "UPN" in frame:
                add("ssda903", rel, "UPN", frame["UPN"])
        elif rel.startswith("returns/cin/"):
            for field in ("LAchildID", "UPN", "FormerUPN"):
                values = frame.loc[frame["field"] == field, "value"]
                la = _la_of_return(rel) if field == "LAchildID" else -1
                add("cin", rel, field, values, la)
        elif rel.startswith("research/npd/"):
            for col in frame.columns:
                if col.lower().endswith("pupilmatchingrefanonymous"):
                    add("npd", rel, col, frame[col])
            if "CIN_LAchildID_Anon" in frame:
                la = frame["CIN_LA"].astype(np.int64)
                add("npd", rel, "CIN_LAchildID_Anon", frame["CIN_LAchildID_Anon"], la)
            for col in ("cla_child_id_anon", "cla_child_la_code_anon"):
                if col in frame:
                    add("npd", rel, col, frame[col], frame["la"].astype(np.int64))
        elif rel.startswith("research/hes/"):
            add("hes", rel, "TOKEN_PERSON_ID", frame["TOKEN_PERSON_ID"])
        elif rel.startswith("research/bridging/"):
            add("npd", rel, "PupilMatchingRefAnonymous", frame["PupilMatchingRefAnonymous"])
            add("hes", rel, "tokenpersonid", frame["tokenpersonid"])
        elif rel == "identified/pupils.parquet":
            add("pupils", rel, "UPN", frame["UPN"])
        elif rel.startswith("identified/pds"):
            add("pds", rel, "NHS_NO", frame["NHS_NO"])
        else:
            raise AssertionError(f"{rel}: a file this test does not know; add its identifiers")
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def recorded(files) -> pd.DataFrame:
    return recorded_identifiers(files)


def _keys(frame: pd.DataFrame) -> pd.Series:
    la = frame["la_code"].astype("Int64").fillna(-1).astype(np.int64).astype(str)
    return frame["dataset"] + "|" + la + "|" + frame["source_id"].astype(str)


def test_every_file_is_read_and_holds_records(files):
    kinds = {Path(rel).suffix for rel in files}
    assert kinds == set(READERS)
    assert {rel.split("/")[0] for rel in files} == set(FOLDERS)
    assert sum(rel.endswith(".xml") for rel in files) >= 20
    assert sum(rel.endswith(".csv") for rel in files) >= 100
    assert all(len(frame) for rel, frame in files.items() if not rel.endswith(".csv"))


def test_every_recorded_identifier_is_linked_and_every_link_is_recorded(recorded, links):
    assert set(recorded["dataset"]) == {"ssda903", "cin", "npd", "hes", "pupils", "pds"}
    in_files = set(_keys(recorded))
    in_links = set(_keys(links))
    missing = in_files - in_links
    assert not missing, (
        f"{len(missing)} recorded identifiers not in links, e.g. {sorted(missing)[:5]}"
    )
    unrecorded = in_links - in_files
    assert not unrecorded, (
        f"{len(unrecorded)} links to values no file holds: {sorted(unrecorded)[:5]}"
    )


def test_links_name_one_person_per_identifier(links, log):
    many = links[links.duplicated(["dataset", "la_code", "source_id"], keep=False)]
    made_by_errors = set(log["value_after"])
    assert many["source_id"].isin(made_by_errors).all(), many.head(10)
    assert len(many) <= 0.001 * len(links)


def test_la_code_is_a_nullable_integer_and_set_only_where_ids_are_la_specific(realistic, links):
    path = realistic / "truth" / "links.parquet"
    assert str(pq.read_schema(path).field("la_code").type) == "int16"
    assert str(links["la_code"].dtype) == "Int16"
    assert str(pq.read_table(path).to_pandas()["la_code"].dtype) == "Int16"
    national = links["dataset"].isin(["hes", "pupils", "pds"])
    assert links.loc[national, "la_code"].isna().all()
    assert links.loc[links["dataset"].isin(["ssda903", "cin"]), "la_code"].notna().any()
    assert links.loc[links["dataset"] == "npd", "la_code"].notna().any()
    has_la = links["la_code"].notna()
    assert links.loc[has_la, "la_code"].between(100, 999).all()


# --------------------------------------------------------------------------------------------
# The true person behind each identifier, found without the links
# --------------------------------------------------------------------------------------------


def _salt(offset: int) -> int:
    return CONFIG["seed"] * 1000 + offset


def independent_people(root: Path, clean_root: Path, links: pd.DataFrame) -> pd.DataFrame:
    """Identifier values with their person, derived from the truth and the identifier functions
    or from the clean run's pupil records, not read from the links: ``dataset``, ``la_code``,
    ``source_id``, ``person_id``.

    National identifiers are derived for every person. An LA-specific id is a keyed function of
    (person, LA), so it is derived for every (person, LA) pair the links name: a link to the
    wrong person would then name a value that is not there.
    """
    persons = _truth(root, "persons")
    pid = persons["person_id"].to_numpy(np.int64)
    parts = []

    def add(dataset, values, people, la=-1):
        parts.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "la_code": np.broadcast_to(np.asarray(la, dtype=np.int64), len(values)),
                    "source_id": np.asarray(values, dtype=object),
                    "person_id": np.asarray(people, dtype=np.int64),
                }
            )
        )

    # NHS numbers from birth; HES tokens follow NHS numbers (and duplicate HES identities)
    nhs = identifiers.assign_nhs_numbers(pid, salt=_salt(2))
    add("pds", nhs, pid)
    add("hes", identifiers.token_person_ids(nhs.astype(np.int64), _salt(npd.SALT_TOKEN)), pid)
    add("hes", identifiers.token_person_ids(pid, _salt(npd.SALT_TOKEN_NEW)), pid)
    # PMRs (a second one after some adoptions)
    add("npd", identifiers.pmrs(pid, _salt(npd.SALT_PMR)), pid)
    add("npd", identifiers.pmrs(pid, _salt(npd.SALT_PMR_NEW)), pid)
    # LA-specific ids of the (person, LA) pairs linked; an adopted child is a new child to the
    # LA after the order, so has a second id there
    adopted = _truth(root, "adoptions").dropna(subset=["date_adopted"])["person_id"].unique()
    pairs = links.dropna(subset=["la_code"]).drop_duplicates(["dataset", "la_code", "person_id"])
    for dataset, group in pairs.groupby("dataset"):
        p, la = group["person_id"].to_numpy(np.int64), group["la_code"].to_numpy(np.int64)
        again = np.isin(p, adopted)
        for gen, rows in ((0, slice(None)), (1, again)):
            if dataset in ("ssda903", "cin"):
                add(dataset, identifiers.la_child_ids(p[rows], la[rows], _salt(3), gen),
                    p[rows], la[rows])  # fmt: skip
            else:
                keys = identifiers.person_la_keys(p[rows], la[rows], gen)
                for offset in (npd.SALT_CIN_CHILD, npd.SALT_CLA_CHILD, npd.SALT_CLA_CHILD_LA):
                    add(dataset, identifiers.anon_ids(keys, _salt(offset)), p[rows], la[rows])
    # UPNs: the first, allocated at first school entry by the school's LA in the year of entry;
    # and every UPN of the clean run's pupil records, each record found in the truth's census
    enrol = _truth(root, "school_enrolments").sort_values(["person_id", "entry_date"])
    first = enrol.drop_duplicates("person_id")
    upn = identifiers.assign_upns(
        first["person_id"].to_numpy(np.int64),
        first["la_code"].to_numpy(np.int64),
        first["entry_date"].dt.year.to_numpy(),
        salt=_salt(1),
    )
    upns = [pd.DataFrame({"UPN": upn, "person_id": first["person_id"].to_numpy()})]
    census = _truth(clean_root, "pupil_census")
    ref = identifiers.anon_ids(
        census["person_id"].to_numpy(np.int64) * 10_000 + census["academic_year"].to_numpy(),
        salt=_salt(9),
        prefix="SC",
    )
    person_of_record = pd.Series(census["person_id"].to_numpy(), index=ref)
    pupils = pd.read_parquet(clean_root / "identified" / "pupils.parquet")
    pupils = pupils[pupils["UPN"] != ""]
    pupils = pupils.assign(person_id=person_of_record.loc[pupils["RecordID"]].to_numpy())
    upns.append(pupils[["UPN", "person_id"]])
    upn_person = pd.concat(upns).drop_duplicates()
    assert not upn_person["UPN"].duplicated().any(), "a UPN held by two pupils"
    for dataset in ("pupils", "ssda903", "cin"):
        add(dataset, upn_person["UPN"], upn_person["person_id"])
    out = pd.concat(parts, ignore_index=True)
    out["la_code"] = out["la_code"].where(out["la_code"] >= 0).astype("Int16")
    return out


def test_links_name_the_true_person(realistic, clean, links, log, files):
    found = independent_people(realistic, clean, links)
    assert not found.duplicated(["dataset", "la_code", "source_id"]).any()
    merged = links.merge(
        found, on=["dataset", "la_code", "source_id"], how="left", suffixes=("", "_found")
    )
    checked = merged["person_id_found"].notna()
    wrong = merged[checked & (merged["person_id"] != merged["person_id_found"])]
    assert wrong.empty, wrong.head(10)
    # values not found independently: made by an injected error, or a new NHS number (and its
    # token) issued after an adoption order
    adopted = set(_truth(realistic, "adoptions").dropna(subset=["date_adopted"])["person_id"])
    other = merged[~checked]
    made = set(zip(log["dataset"], log["value_after"], strict=True))
    made_by_errors = pd.Series(
        [(d, v) in made for d, v in zip(other["dataset"], other["source_id"], strict=True)],
        index=other.index,
        dtype=bool,
    )
    reissued = other["dataset"].isin(["pds", "hes"]) & other["person_id"].isin(adopted)
    assert (made_by_errors | reissued).all(), other[~(made_by_errors | reissued)].head(10)
    for dataset, share in (
        merged.groupby("dataset")["person_id_found"].apply(lambda s: s.notna().mean()).items()
    ):
        assert share > 0.95, (dataset, share)  # the rest: made by injected errors
    # each adopted child's new NHS number: a second PDS record with the child's own details
    pds = files["identified/pds.parquet"].set_index("NHS_NO")
    persons = _truth(clean, "persons").set_index("person_id")
    new = other[reissued & (other["dataset"] == "pds")]
    assert len(new) == len(adopted) >= 20
    clean_pds = pd.read_parquet(clean / "identified" / "pds.parquet").set_index("NHS_NO")
    dob = persons.loc[new["person_id"], "date_of_birth"].dt.strftime("%Y%m%d").to_numpy()
    assert (clean_pds.loc[new["source_id"], "DATE_OF_BIRTH"].to_numpy() == dob).all()
    forename = persons.loc[new["person_id"], "forename"].to_numpy()
    assert (clean_pds.loc[new["source_id"], "GIVEN_NAME"].to_numpy() == forename).all()
    assert new["source_id"].isin(pds.index).all()
    # and the HES token of that number, for hospital records from the order
    tokens = identifiers.token_person_ids(new["source_id"].astype(np.int64), _salt(npd.SALT_TOKEN))
    token_person = pd.Series(new["person_id"].to_numpy(), index=tokens)
    new_tokens = other[reissued & (other["dataset"] == "hes")]
    assert len(new_tokens) >= 5
    assert (
        token_person.reindex(new_tokens["source_id"]).to_numpy() == new_tokens["person_id"]
    ).all()
    per_person = links[links["dataset"] == "pds"].groupby("person_id").size()
    assert (per_person.loc[list(adopted)] == 2).all() and per_person.drop(list(adopted)).eq(1).all()


# --------------------------------------------------------------------------------------------
# Identifiers are well formed, or their errors are logged
# --------------------------------------------------------------------------------------------


def _logged_after(log: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(log["file"], log["field"], log["value_after"], strict=True))


def test_every_upn_is_valid_or_a_permitted_unknown_code_or_logged(files, log):
    allowed_unknown = {
        "ssda903": set(identifiers.UPN_UNKNOWN_CODES_903),
        "cin": set(),
        "pupils": set(),
    }
    logged = _logged_after(log)
    checked = 0
    for rel, frame in files.items():
        if rel.startswith("returns/cin/"):
            dataset = "cin"
            values = frame[frame["field"].isin(["UPN", "FormerUPN"])][["field", "value"]]
            unknown = frame.loc[frame["field"] == "UPNunknown", "value"]
            assert unknown.isin(identifiers.UPN_UNKNOWN_CODES_CIN).all(), rel
        elif "UPN" in frame and not rel.startswith("research/"):
            dataset = "ssda903" if rel.startswith("returns/ssda903/") else "pupils"
            values = pd.DataFrame({"field": "UPN", "value": frame["UPN"]})
        else:
            continue
        values = values[values["value"] != ""]
        ok = identifiers.is_valid_upn(values["value"].to_numpy(dtype=str))
        ok |= values["value"].isin(allowed_unknown[dataset]).to_numpy()
        bad = values[~ok]
        unlogged = [(f, v) for f, v in zip(bad["field"], bad["value"], strict=True)
                    if (rel, f, v) not in logged]  # fmt: skip
        assert not unlogged, (rel, unlogged[:5])
        checked += len(values)
    assert checked > 50_000


def test_every_nhs_number_passes_modulus_11_in_the_test_range_or_is_logged(files, log):
    logged = _logged_after(log)
    checked = 0
    for rel in ("identified/pds.parquet", "identified/pds_addresses.parquet"):
        numbers = files[rel]["NHS_NO"]
        digits = numbers.str.fullmatch(r"\d{10}")
        ok = digits & identifiers.is_valid_nhs_number(numbers.where(digits, "0000000000"))
        ok &= (
            numbers.where(digits, "0")
            .astype(np.int64)
            .between(identifiers.NHS_TEST_FIRST, identifiers.NHS_TEST_LAST)
        )
        assert all((rel, "NHS_NO", v) in logged for v in numbers[~ok]), rel
        checked += len(numbers)
    assert checked > 20_000


# --------------------------------------------------------------------------------------------
# Every logged error is in its file
# --------------------------------------------------------------------------------------------


def _records(frame: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    """The rows of a CSV or Parquet file that hold one of ``ids`` in any column (the record
    identifier the error log uses differs by file: CHILD, RecordID, NHS_NO, PMR, EPIKEY...)."""
    hit = np.zeros(len(frame), dtype=bool)
    for col in frame.columns:
        hit |= frame[col].isin(ids).to_numpy()
    return frame[hit]


def _record_id_of(frame: pd.DataFrame, ids: set[str]) -> pd.Series:
    """For rows of ``_records``, the id among ``ids`` each holds (first column that has one)."""
    out = pd.Series("", index=frame.index, dtype=object)
    for col in frame.columns:
        column = frame[col]
        take = (out == "") & column.isin(ids)
        out[take] = column[take]
    return out


def _check_rows(rel: str, frame: pd.DataFrame, entries: pd.DataFrame) -> list:
    """Errors of one CSV or Parquet file not found as logged; [] when all are."""
    ids = set(entries["record_id"])
    rows = _records(frame, ids)
    record_id = _record_id_of(rows, ids)
    problems = []
    copies = record_id.value_counts()
    for (field, error_type), group in entries.groupby(["field", "error_type"]):
        if field == DUPLICATE_FIELD:
            assert error_type.startswith("duplicate"), (rel, error_type)
            assert (group["value_before"] == DUPLICATE_COPIES[0]).all(), (rel, error_type)
            assert (group["value_after"] == DUPLICATE_COPIES[1]).all(), (rel, error_type)
            twice = copies.reindex(group["record_id"]).fillna(0) >= 2
            problems += list(group.loc[~twice.to_numpy(), "record_id"])
            if error_type in EXACT_DUPLICATES:
                same = rows[rows.duplicated(keep=False)]
                exact = set(_record_id_of(same, ids))
                problems += [r for r in group["record_id"] if r not in exact]
            continue
        if field not in frame:
            problems.append((field, "no such column"))
            continue
        # the record may be named by any of its identifier columns (a CIN module row holds a PMR
        # and an anonymised LA child id, and either can be another entry's record id)
        held = set()
        for col in rows.columns:
            has = rows[col].isin(ids).to_numpy()
            held |= set(zip(rows.loc[has, col], rows.loc[has, field], strict=True))
        problems += [
            (field, r, v)
            for r, v in zip(group["record_id"], group["value_after"], strict=True)
            if (r, v) not in held
        ]
    return problems


def _check_xml(rel: str, frame: pd.DataFrame, entries: pd.DataFrame) -> list:
    """Errors of one XML return not found as logged; [] when all are."""
    problems = []
    children = set(frame["record_id"])
    held = set(zip(frame["record_id"], frame["field"], frame["value"], strict=True))
    parent_of = frame.drop_duplicates("field").set_index("field")["parent"]
    blocks = frame[["record_id", "parent", "block"]].drop_duplicates()
    present = set(zip(frame["block"], frame["field"], strict=True))
    for entry in entries.itertuples(index=False):
        if entry.record_id not in children:
            problems.append((entry.record_id, "no such child"))
        elif entry.field == DUPLICATE_FIELD:
            problems.append((entry.record_id, "a duplicated child in an XML return"))
        elif (entry.record_id, entry.field, entry.value_after) in held:
            continue
        elif entry.value_after == "" and entry.field in parent_of:
            # a blanked value: an element of the child's that holds this field lacks it
            mine = blocks[
                (blocks["record_id"] == entry.record_id)
                & (blocks["parent"] == parent_of[entry.field])
            ]
            if not any((b, entry.field) not in present for b in mine["block"]):
                problems.append((entry.record_id, entry.field, "not blank"))
        elif entry.value_after == "" and entry.field not in parent_of:
            continue  # blank everywhere in this file
        else:
            problems.append((entry.record_id, entry.field, entry.value_after))
    return problems


def test_every_logged_error_is_in_its_file(realistic, files, log):
    assert len(log) > 5_000
    assert set(log["dataset"]) == {"ssda903", "cin", "npd", "hes", "pupils", "pds"}
    unknown = set(log["file"]) - set(files)
    assert not unknown, sorted(unknown)[:5]
    assert all((realistic / rel).is_file() for rel in set(log["file"]))
    problems = {}
    for rel, entries in log.groupby("file"):
        check = _check_xml if rel.endswith(".xml") else _check_rows
        found = check(rel, files[rel], entries)
        if found:
            problems[rel] = found[:5]
    assert not problems, dict(list(problems.items())[:5])


def test_duplicated_records_are_logged_one_way_in_every_dataset(log):
    dups = log[log["field"] == DUPLICATE_FIELD]
    assert set(dups["dataset"]) >= {"ssda903", "pupils", "npd", "hes"}
    assert (dups["value_before"] == "1").all() and (dups["value_after"] == "2").all()
    assert log.loc[log["error_type"].str.startswith("duplicate"), "field"].eq(DUPLICATE_FIELD).all()
    assert not (log["field"] == "").any()


# --------------------------------------------------------------------------------------------
# --messiness clean: nothing logged, and the same truth
# --------------------------------------------------------------------------------------------


def test_clean_logs_nothing_and_keeps_the_truth_byte_identical(clean, realistic):
    assert len(pd.read_parquet(clean / "truth" / "error_log.parquet")) == 0
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (clean, realistic)]
    truth = [{k: v for k, v in m["files"].items() if k.startswith("truth/")} for m in manifests]
    assert set(truth[0]) == set(truth[1]) and len(truth[0]) > 10
    kept = [k for k in truth[0] if k not in ("truth/error_log.parquet", "truth/links.parquet")]
    for rel in kept:
        assert truth[0][rel] == truth[1][rel], rel
        assert (clean / rel).read_bytes() == (realistic / rel).read_bytes(), rel
    assert truth[0]["truth/links.parquet"] != truth[1]["truth/links.parquet"]

"""The messiness engine: each error type fires at its rate, is logged exactly, 'clean' changes
nothing, draws are deterministic, and subgroups get more errors where the parameters say so."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from trainkit.config import make_config
from trainkit.datasets import messiness as mess
from trainkit.datasets.identifiers import is_valid_nhs_number, is_valid_upn
from trainkit.datasets.record import ErrorLog, Links
from trainkit.datasets.schema import Field, OutputTable
from trainkit.parameters import Parameters, _load_file
from trainkit.simulate.engine import plan_shards, record_context

N = 40_000
RATE = 0.05  # the rate each error type is tested at
ROOT = Path(__file__).resolve().parents[1]

ETHNICITY = {
    **{c: c for c in ("WBRI", "WOTH", "AIND", "APKN", "AOTH", "CHNE", "BAFR", "OOTH", "MOTH")},
    "REFU": "Refused",
    "NOBT": "Information not yet obtained",
}
TABLE = OutputTable(
    name="test.records",
    dataset="pupils",
    path="test/records.csv",
    format="csv",
    description="Synthetic records for the messiness tests.",
    source="tests",
    fields=(
        Field("ID", "string", "Record id.", semantic="id"),
        Field("Forename", "string", "Forename.", semantic="forename"),
        Field("Surname", "string", "Surname.", semantic="surname"),
        Field("DOB", "date", "Date of birth.", date_format="%d/%m/%Y", semantic="date_of_birth"),
        Field("Start", "date", "A date.", date_format="%Y-%m-%d", semantic="date"),
        Field(
            "UPN",
            "string",
            "UPN.",
            pattern=r"^([A-HJ-NP-RT-Z]\d{12}|[A-HJ-NP-RT-Z]\d{11}[A-Z]|UN[1-5])$",
            semantic="upn",
        ),
        Field("NHS", "string", "NHS number.", semantic="nhs_number"),
        Field("Postcode", "string", "Postcode.", semantic="postcode"),
        Field("Sex", "code", "Sex.", codes={"M": "Male", "F": "Female"}, semantic="sex"),
        Field(
            "Gender",
            "code",
            "Gender.",
            codes={"0": "Not known", "1": "Male", "2": "Female", "9": "Not specified"},
            semantic="sex",
        ),
        Field("Ethnic", "code", "Ethnicity.", codes=ETHNICITY, semantic="ethnicity"),
        Field("Need", "code", "Need.", codes={"N1": "Abuse", "N0": "Not stated"}, semantic="code"),
    ),
)

FORENAMES = np.array(["Robert", "Mohamed", "Elizabeth", "Daniel"])  # variants, no double letters
SURNAMES = np.array(["Smith-Jones", "O'Brien", "Abdul Rahman", "Ward-Price"])  # separators
UPN = "G886212121212"  # valid; digits 4-11 alternate, so every transposition changes it
NHS = "2121212124"  # valid modulus 11; the first nine digits alternate


@pytest.fixture(scope="module")
def base_ctx():
    cfg = make_config({"children": 4000, "seed": 5, "messiness": "realistic"})
    ctx = record_context(cfg, plan_shards(cfg)[0])
    entries = {k: ctx.params.entry(k) for k in ctx.params}
    entries.update(_load_file("messiness"))
    return dataclasses.replace(ctx, params=Parameters(entries))


def fresh(ctx, messiness="realistic", **overrides):
    """A copy of the context with an empty error log, at a level, with parameter overrides."""
    params = ctx.params.with_overrides(overrides) if overrides else ctx.params
    return dataclasses.replace(
        ctx, messiness=messiness, params=params, errors=ErrorLog(), links=Links()
    )


def only(ctx, error_type: str, rate: float = RATE, **extra):
    """A context where one error type has ``rate`` and every other none; no subgroup effects."""
    overrides = {
        f"messiness.{name}": {"realistic": rate if name == error_type else 0.0}
        for name in mess.error_types()
    }
    overrides.update({f"messiness.subgroup_{g}": 1.0 for g in mess.SUBGROUPS})
    overrides.update(extra)
    return fresh(ctx, **overrides)


@pytest.fixture(scope="module")
def records(base_ctx):
    """N records, every value eligible for every error type of its field, and their people."""
    rng = np.random.default_rng(3)
    c = base_ctx.cohort
    moved = np.flatnonzero(~np.isnat(c.move_dates[:, 0]))
    rows = rng.choice(moved, N)  # movers, so every postcode has an earlier one
    last_spell = (~np.isnat(c.move_dates[rows])).sum(axis=1)
    day = rng.integers(1, 13, N)
    month = (day % 12) + 1  # never equal to the day
    year = rng.integers(2000, 2020, N)
    dob = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}))
    frame = pd.DataFrame(
        {
            "ID": [f"R{i:06d}" for i in range(N)],
            "Forename": FORENAMES[rng.integers(0, len(FORENAMES), N)],
            "Surname": SURNAMES[rng.integers(0, len(SURNAMES), N)],
            "DOB": dob.dt.strftime("%d/%m/%Y"),
            "Start": dob.dt.strftime("%Y-%m-%d"),
            "UPN": UPN,
            "NHS": NHS,
            "Postcode": c.postcodes[rows, last_spell],
            "Sex": np.where(rng.random(N) < 0.5, "M", "F"),
            "Gender": np.where(rng.random(N) < 0.5, "1", "2"),
            "Ethnic": np.where(rng.random(N) < 0.5, "WBRI", "APKN"),
            "Need": "N1",
        }
    )
    previous = c.postcodes[rows, last_spell - 1]
    return frame, c.person_id[rows], previous != frame["Postcode"].to_numpy()


def run(ctx, frame, person_ids, table=TABLE, **kw):
    kw.setdefault("record_id", "ID")
    kw.setdefault("files", "test/records.csv")
    return mess.apply(ctx, table, frame, dataset="pupils", person_ids=person_ids, **kw)


def within(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    sd = np.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sds * sd + 1


# Error type -> the fields it is tested on (every value of which is eligible).
FIELDS = {
    "name_typo": ["Forename", "Surname"],
    "name_variant": ["Forename"],
    "name_case": ["Forename", "Surname"],
    "name_hyphenation": ["Surname"],
    "date_day_month_swap": ["DOB", "Start"],
    "date_off_by_one_day": ["DOB", "Start"],
    "date_sentinel": ["DOB", "Start"],
    "date_year_out_of_range": ["DOB", "Start"],
    "upn_missing": ["UPN"],
    "upn_unknown_code": ["UPN"],
    "upn_check_letter": ["UPN"],
    "upn_transposed_digits": ["UPN"],
    "upn_malformed": ["UPN"],
    "nhs_missing": ["NHS"],
    "nhs_check_digit": ["NHS"],
    "nhs_transposed_digits": ["NHS"],
    "postcode_missing": ["Postcode"],
    "postcode_no_space": ["Postcode"],
    "postcode_lower_case": ["Postcode"],
    "postcode_truncated": ["Postcode"],
    "code_trailing_space": ["Sex", "Gender", "Ethnic", "Need"],
    "code_lower_case": ["Sex", "Ethnic", "Need"],  # '1' and '2' have no lower case
    "code_not_stated": ["Ethnic", "Need"],
    "sex_not_stated": ["Gender"],  # M/F has no not-stated code
    "ethnicity_recoded": ["Ethnic"],
}


def test_every_error_type_has_an_implementation_a_rule_and_a_source():
    types = mess.error_types()
    record_level = {n for n, et in types.items() if et.applies_to == (mess.RECORD,)}
    assert record_level == {"name_order_swap", "duplicate_record"}
    assert set(types) - record_level == set(mess.ERROR_FUNCTIONS)
    for et in types.values():
        assert et.breaks and et.evidence and et.unit
        assert set(et.subgroups) <= set(mess.SUBGROUPS)
        assert et.only in (None, *mess.SUBGROUPS)
    # every value-level type is tested below (or in its own test)
    assert set(FIELDS) | {"postcode_stale", "dob_first_january"} == set(mess.ERROR_FUNCTIONS)


def test_parameter_file_loads_with_sources_and_level_rates():
    entries = _load_file("messiness")
    for name in mess.error_types():
        value = entries[f"messiness.{name}"].value
        assert set(value) == set(mess.LEVELS)
        assert 0 <= value["realistic"] <= value["heavy"] <= 1, name


def test_docs_table_matches_the_parameters():
    doc = (ROOT / "docs" / "messiness.md").read_text()
    assert mess.catalogue_markdown() in doc, "regenerate the table in docs/messiness.md"


def test_clean_changes_nothing(base_ctx, records):
    frame, pid, _ = records
    ctx = fresh(base_ctx, messiness="clean")
    out = run(ctx, frame, pid)
    assert out is frame
    assert ctx.errors.frame().empty
    assert mess.rate(ctx, "name_typo") == 0.0


@pytest.mark.parametrize("error_type", sorted(FIELDS))
def test_error_type_fires_at_its_rate_and_is_logged_exactly(base_ctx, records, error_type):
    frame, pid, _ = records
    ctx = only(base_ctx, error_type)
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    assert set(log["error_type"]) <= {error_type}
    assert len(out) == len(frame)
    for field in FIELDS[error_type]:
        got = log[log["field"] == field]
        assert within(len(got), N, RATE), (field, len(got))
        rows = got["record_id"].str[1:].astype(int).to_numpy()
        assert (got["value_before"].to_numpy() == frame[field].to_numpy()[rows]).all()
        assert (got["value_after"].to_numpy() == out[field].to_numpy()[rows]).all()
        changed = np.flatnonzero(out[field].to_numpy() != frame[field].to_numpy())
        assert np.array_equal(np.sort(rows), changed)
    untouched = [f for f in frame if f not in FIELDS[error_type]]
    assert out[untouched].equals(frame[untouched])


def test_error_values_look_as_they_should(base_ctx, records):
    frame, pid, _ = records
    overrides = {f"messiness.{n}": {"realistic": 0.02} for n in mess.error_types()}
    ctx = fresh(base_ctx, **overrides)
    run(ctx, frame, pid)
    log = ctx.errors.frame()

    def pairs(error_type):
        g = log[log["error_type"] == error_type]
        return list(zip(g["value_before"], g["value_after"], strict=True))

    for before, after in pairs("date_day_month_swap"):
        if "/" in before:
            d, m, y = before.split("/")
            assert after == f"{m}/{d}/{y}"
    assert all(a in {"01/01/1900", "01/01/1800", "01/01/1801", "1900-01-01", "1800-01-01",
                     "1801-01-01"} for _, a in pairs("date_sentinel"))  # fmt: skip
    for before, after in pairs("date_year_out_of_range"):
        assert (
            abs(int(re.findall(r"\d{4}", after)[0]) - int(re.findall(r"\d{4}", before)[0])) == 100
        )
    for error_type in ("upn_check_letter", "upn_transposed_digits"):
        after = np.array([a for _, a in pairs(error_type)])
        assert len(after) and not is_valid_upn(after).any()
        assert all(
            re.fullmatch(r"[A-HJ-NP-RT-Z]\d{12}", a) for a in after
        )  # still rule 168's shape
    assert {len(a) for _, a in pairs("upn_malformed")} == {12}
    assert {a for _, a in pairs("upn_unknown_code")} == {"UN5"}
    for error_type in ("nhs_check_digit", "nhs_transposed_digits"):
        after = np.array([a for _, a in pairs(error_type)])
        assert len(after) and not is_valid_nhs_number(after).any()
    assert all(a == b.replace(" ", "") for b, a in pairs("postcode_no_space"))
    assert all(a == b.lower() for b, a in pairs("postcode_lower_case"))
    assert all(b.startswith(a + " ") for b, a in pairs("postcode_truncated"))
    assert all(a == b + " " for b, a in pairs("code_trailing_space"))
    not_stated = log[log["error_type"].isin(["code_not_stated", "sex_not_stated"])]
    allowed = {"Ethnic": {"REFU", "NOBT"}, "Need": {"N0"}, "Gender": {"0", "9"}}
    for field, after in zip(not_stated["field"], not_stated["value_after"], strict=True):
        assert after in allowed[field]
    for before, after in pairs("ethnicity_recoded"):
        assert before[0] == after[0] or before == "CHNE"  # same major group
    swaps = log[log["error_type"] == "name_order_swap"]
    fore = swaps[swaps["field"] == "Forename"].set_index("record_id")
    sur = swaps[swaps["field"] == "Surname"].set_index("record_id").loc[fore.index]
    assert (fore["value_before"] == sur["value_after"]).all()
    typos = pairs("name_typo")
    assert all(a[0] == b[0] and abs(len(a) - len(b)) <= 1 for b, a in typos)  # first letter kept
    variants = pairs("name_variant")
    assert ("Robert", "Bob") in variants or ("Robert", "Rob") in variants


def test_stale_postcode_is_the_previous_address(base_ctx, records):
    frame, pid, eligible = records
    ctx = only(base_ctx, "postcode_stale")
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    assert within(len(log), int(eligible.sum()), RATE)
    rows = log["record_id"].str[1:].astype(int).to_numpy()
    assert eligible[rows].all()
    c = base_ctx.cohort
    r = np.searchsorted(c.person_id, pid[rows])
    spells = (~np.isnat(c.move_dates[r])).sum(axis=1)
    assert (out["Postcode"].to_numpy()[rows] == c.postcodes[r, spells - 1]).all()


def test_first_january_birthdays_only_for_uasc(base_ctx, records):
    frame, _, _ = records
    c = base_ctx.cohort
    uasc = c.person_id[c.uasc]
    assert len(uasc) >= 2
    pid = np.where(np.arange(N) % 2 == 0, uasc[np.arange(N) % len(uasc)], c.person_id[~c.uasc][0])
    ctx = only(base_ctx, "dob_first_january")
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    rows = log[log["field"] == "DOB"]["record_id"].str[1:].astype(int).to_numpy()
    assert (rows % 2 == 0).all()  # UASC rows only
    assert within(len(rows), N // 2, RATE)
    assert out["DOB"].iloc[rows].str.startswith("01/01/").all()
    assert log[log["field"] == "Start"].empty  # birthdays only


def test_duplicates_are_logged_and_keep_row_positions(base_ctx, records):
    frame, pid, _ = records
    ctx = only(base_ctx, "duplicate_record")
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    assert within(len(log), N, RATE)
    assert len(out) == N + len(log)
    counts = out["ID"].value_counts()
    assert set(counts[counts == 2].index) == set(log["record_id"])
    assert (log["field"] == mess.DUPLICATE_FIELD).all()
    assert (log["value_before"] == "1").all() and (log["value_after"] == "2").all()
    # the index gives each output row's input position
    assert (out["ID"].to_numpy() == frame["ID"].to_numpy()[out.index.to_numpy()]).all()


def test_name_order_swap_fires_at_its_rate(base_ctx, records):
    frame, pid, _ = records
    ctx = only(base_ctx, "name_order_swap")
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    fore = log[log["field"] == "Forename"]
    assert within(len(fore), N, RATE)
    assert set(fore["record_id"]) == set(log.loc[log["field"] == "Surname", "record_id"])
    rows = fore["record_id"].str[1:].astype(int).to_numpy()
    assert (out["Forename"].to_numpy()[rows] == frame["Surname"].to_numpy()[rows]).all()
    assert (out["Surname"].to_numpy()[rows] == frame["Forename"].to_numpy()[rows]).all()


def test_name_swap_excludes_other_name_errors(base_ctx, records):
    frame, pid, _ = records
    overrides = {f"messiness.{n}": {"realistic": 0.0} for n in mess.error_types()}
    overrides["messiness.name_order_swap"] = {"realistic": 0.3}
    overrides["messiness.name_typo"] = {"realistic": 0.3}
    ctx = fresh(base_ctx, **overrides)
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    assert not log.duplicated(["record_id", "field"]).any()  # at most one error per value
    by_id = log.set_index(["record_id", "field"])["value_after"]
    for (rid, field), after in by_id.items():
        assert out.loc[int(rid[1:]), field] == after


def test_realistic_run_logs_every_change(base_ctx, records):
    frame, pid, _ = records
    ctx = fresh(base_ctx, messiness="heavy")
    out = run(ctx, frame, pid)
    log = ctx.errors.frame()
    first = out[~out.index.duplicated()].sort_index()
    changed = set()
    for field in frame.columns:
        rows = np.flatnonzero(first[field].to_numpy() != frame[field].to_numpy())
        changed |= {(frame["ID"].iloc[r], field) for r in rows}
    logged = log[log["field"] != mess.DUPLICATE_FIELD]
    assert changed == set(zip(logged["record_id"], logged["field"], strict=True))
    assert len(set(log["error_type"])) >= 25


def test_deterministic_and_independent_of_other_tables(base_ctx, records):
    frame, pid, _ = records
    a, b = fresh(base_ctx), fresh(base_ctx)
    out_a = run(a, frame, pid)
    other = dataclasses.replace(TABLE, name="test.other")
    run(b, frame, pid, table=other)  # another table first: its own generator
    out_b = run(b, frame, pid)
    assert out_a.equals(out_b)
    log_b = b.errors.frame()
    log_b = log_b.iloc[len(log_b) - len(a.errors.frame()) :].reset_index(drop=True)
    assert a.errors.frame().equals(log_b)
    # a second call for the same table draws afresh
    again = run(a, frame, pid)
    assert not again.equals(out_a)


def test_subgroups_get_more_errors(base_ctx):
    c = base_ctx.cohort
    rng = np.random.default_rng(9)
    tradition = np.isin(c.ethnicity, mess.parameter(base_ctx, "name_tradition_ethnicities"))
    assert tradition.any() and (~tradition).any()
    n = 60_000
    pid = np.where(
        np.arange(n) < n // 2,
        rng.choice(c.person_id[tradition], n),
        rng.choice(c.person_id[~tradition & ~c.uasc], n),
    )
    frame = pd.DataFrame({"ID": [f"R{i:06d}" for i in range(n)], "Forename": "Daniel"})
    table = dataclasses.replace(TABLE, fields=TABLE.fields[:2])
    ctx = only(base_ctx, "name_typo", rate=0.02, **{"messiness.subgroup_name_tradition": 2.0})
    run(ctx, frame, pid, table=table)
    rows = ctx.errors.frame()["record_id"].str[1:].astype(int).to_numpy()
    in_group = (rows < n // 2).sum()
    assert within(in_group, n // 2, 0.04) and within(len(rows) - in_group, n // 2, 0.02)

    # UASC and children who moved lose their UPN more often
    uasc = c.person_id[c.uasc]
    settled = c.person_id[~c.uasc & np.isnat(c.move_dates[:, 0])]
    pid = np.where(np.arange(n) < n // 2, rng.choice(uasc, n), rng.choice(settled, n))
    frame = pd.DataFrame({"ID": [f"R{i:06d}" for i in range(n)], "UPN": UPN})
    table = dataclasses.replace(TABLE, fields=(TABLE.fields[0], TABLE.field("UPN")))
    ctx = fresh(base_ctx)
    run(ctx, frame, pid, table=table)
    log = ctx.errors.frame()
    rows = log[log["error_type"] == "upn_missing"]["record_id"].str[1:].astype(int).to_numpy()
    assert (rows < n // 2).sum() > 2 * (rows >= n // 2).sum()


def test_overrides_change_rates(base_ctx, records):
    frame, pid, _ = records
    ctx = only(base_ctx, "name_case", rate=0.2)
    assert mess.rate(ctx, "name_case") == 0.2
    assert mess.rate(fresh(base_ctx, messiness="heavy"), "name_case") == 0.05
    run(ctx, frame, pid)
    log = ctx.errors.frame()
    assert within((log["field"] == "Forename").sum(), N, 0.2)


def test_record_ids_and_files_as_arrays_and_datetime_columns(base_ctx, records):
    frame, pid, _ = records
    frame = frame.assign(Start=pd.to_datetime(frame["Start"]))
    ids = np.array([f"X{i}" for i in range(N)], dtype=object)
    files = np.where(np.arange(N) % 2 == 0, "a.csv", "b.csv")
    ctx = only(base_ctx, "date_off_by_one_day")
    out = run(ctx, frame, pid, record_id=ids, files=files)
    log = ctx.errors.frame()
    got = log[log["field"] == "Start"]
    rows = got["record_id"].str[1:].astype(int).to_numpy()
    assert (got["file"].to_numpy() == files[rows]).all()
    shift = (out["Start"].iloc[rows] - frame["Start"].iloc[rows]).dt.days.abs()
    assert (shift == 1).all() and pd.api.types.is_datetime64_any_dtype(out["Start"])
    assert (got["value_after"] == out["Start"].iloc[rows].dt.strftime("%Y-%m-%d").values).all()


def test_bad_input_says_what_is_wrong(base_ctx, records):
    frame, pid, _ = records
    with pytest.raises(ValueError, match="person_ids"):
        run(fresh(base_ctx), frame, pid[:10])
    with pytest.raises(ValueError, match="no column"):
        run(fresh(base_ctx), frame, pid, record_id="CHILD")
    with pytest.raises(ValueError, match="unknown error types"):
        run(fresh(base_ctx), frame, pid, skip=("typo",))


def test_a_large_frame_is_handled(base_ctx, records):
    """A 240,000-row frame goes through (speed is measured by benchmarks/, not asserted here)."""
    frame, pid, _ = records
    big = pd.concat([frame] * 6, ignore_index=True)  # 240,000 rows, 11 messy fields
    big_pid = np.tile(pid, 6)
    out = run(fresh(base_ctx), big, big_pid)
    assert len(out) >= len(big)


def test_upn_errors_when_no_value_is_a_upn():
    """A batch of only UPN-unknown codes (e.g. one LA-year of infants) must pass through intact."""
    vals = np.array(["UN1", "UN2", "UN1"], dtype=object)
    for name in ("upn_transposed_digits", "upn_check_letter", "upn_malformed"):
        job = SimpleNamespace(rng=np.random.default_rng(0), field=None)
        ok, _ = mess.ERROR_FUNCTIONS[name](job, vals)
        assert not ok.any(), name

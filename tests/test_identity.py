"""Identity extracts: pupils' identifiers per census, PDS demographics and address history."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trainkit.config import make_config
from trainkit.datasets import identity
from trainkit.datasets import messiness as mess
from trainkit.datasets.identifiers import (
    NHS_TEST_FIRST,
    UPN_UNKNOWN_CODES,
    is_valid_nhs_number,
    is_valid_upn,
)
from trainkit.datasets.record import ErrorLog, Links
from trainkit.parameters import Parameters, _load_file
from trainkit.simulate.engine import plan_shards, record_context

PUPILS, PDS, ADDRESSES = (t.name for t in identity.TABLES)


@pytest.fixture(scope="module")
def clean_ctx():
    cfg = make_config({"children": 12_000, "seed": 4, "messiness": "clean"})
    ctx = record_context(cfg, plan_shards(cfg)[0])
    entries = {k: ctx.params.entry(k) for k in ctx.params}
    entries.update(_load_file("messiness"))
    return dataclasses.replace(ctx, params=Parameters(entries))


def fresh(ctx, messiness):
    return dataclasses.replace(ctx, messiness=messiness, errors=ErrorLog(), links=Links())


@pytest.fixture(scope="module")
def clean(clean_ctx):
    ctx = fresh(clean_ctx, "clean")
    return ctx, identity.record(ctx)


@pytest.fixture(scope="module")
def realistic(clean_ctx):
    ctx = fresh(clean_ctx, "realistic")
    return ctx, identity.record(ctx)


def test_columns_follow_the_declarations(clean, realistic):
    for _, out in (clean, realistic):
        assert set(out) == {t.name for t in identity.TABLES}
        for table in identity.TABLES:
            assert list(out[table.name].columns) == table.field_names
            assert "{" not in table.path and table.path.startswith("identified/")


def test_clean_upns_are_valid_and_one_row_per_pupil_year(clean):
    ctx, out = clean
    pupils = out[PUPILS]
    census = ctx.truth["pupil_census"]
    assert len(pupils) == len(census)
    assert not pupils.duplicated(["RecordID"]).any()
    assert is_valid_upn(pupils["UPN"].to_numpy()).all()
    assert pupils["Sex"].isin(["M", "F"]).all()
    assert pd.to_datetime(pupils["DOB"], format="%Y-%m-%d").notna().all()
    assert ctx.errors.frame().empty
    # a UPN belongs to one person, and (bar adoption) a pupil keeps one UPN across censuses
    links = ctx.links.frame()
    pupil_links = links[links["dataset"] == "pupils"]
    assert not pupil_links["source_id"].duplicated().any()
    adopted = identity.adoptions(ctx)["person_id"]
    per_person = pupil_links[~pupil_links["person_id"].isin(adopted)].groupby("person_id").size()
    assert (per_person == 1).all()


def test_upns_agree_with_the_shared_history(clean):
    ctx, out = clean
    census = ctx.truth["pupil_census"]
    upns = identity.upns_on(ctx, census["person_id"].to_numpy(), census["census_date"].to_numpy())
    assert (upns == out[PUPILS]["UPN"].to_numpy()).all()
    history = identity.upn_history(ctx)
    enrol = ctx.truth["school_enrolments"]
    first = enrol.sort_values("entry_date").drop_duplicates("person_id").set_index("person_id")
    h = history.drop_duplicates("person_id").set_index("person_id")
    la = first.loc[h.index, "la_code"].to_numpy()
    assert (h["upn"].str[1:4].astype(int).to_numpy() == la).all()  # allocating LA
    yy = first.loc[h.index, "entry_date"].dt.year % 100
    assert (h["upn"].str[8:10].astype(int).to_numpy() == yy.to_numpy()).all()  # year


def test_nhs_numbers_valid_in_test_range_one_row_per_number(clean):
    ctx, out = clean
    pds = out[PDS]
    history = identity.nhs_history(ctx)
    reissued = history["person_id"].duplicated()
    assert reissued.sum() == len(identity.adoptions(ctx)) > 20  # every adoption, one new number
    assert len(pds) == len(ctx.truth["persons"]) + reissued.sum()
    assert (pds["NHS_NO"].to_numpy() == history["nhs_number"].to_numpy()).all()
    nhs = pds["NHS_NO"].to_numpy()
    assert is_valid_nhs_number(nhs).all()
    assert (nhs.astype(np.int64) >= NHS_TEST_FIRST).all()
    assert not pds["NHS_NO"].duplicated().any()
    assert pds["GENDER"].isin(["1", "2"]).all()
    persons = ctx.truth["persons"].set_index("person_id")
    died = persons.loc[history["person_id"], "date_of_death"].notna().to_numpy()
    current = history["valid_to"].isna().to_numpy()
    assert ((pds["DATE_OF_DEATH"] != "").to_numpy() == (died & current)).all()
    addresses = out[ADDRESSES]
    spanning = len(addresses) - len(ctx.truth["addresses"])
    assert 0 < spanning <= reissued.sum()  # a spell over an adoption order is split in two
    assert set(addresses["NHS_NO"]) == set(nhs)
    # the last address of each number is open-ended unless the person left or died, or the
    # number was given up at an adoption order
    last = addresses.groupby("NHS_NO").tail(1).set_index("NHS_NO")
    assert (last["TO_DATE"] == "").mean() > 0.9
    old = history[history["valid_to"].notna()]
    ended = (old["valid_to"].dt.strftime("%Y%m%d")).to_numpy()
    assert (last.loc[old["nhs_number"], "TO_DATE"].to_numpy() == ended).all()


def test_adopted_children_change_surname_and_upn_after_the_order(clean):
    ctx, out = clean
    adopted = identity.adoptions(ctx).set_index("person_id")
    persons = ctx.truth["persons"].set_index("person_id")
    census = ctx.truth["pupil_census"].reset_index(drop=True)
    pupils = out[PUPILS].assign(person_id=census["person_id"], day=census["census_date"])
    pupils = pupils[pupils["person_id"].isin(adopted.index)]
    order = adopted.loc[pupils["person_id"], "date_adopted"].to_numpy()
    after = pupils["day"].to_numpy() >= order
    birth = persons.loc[pupils["person_id"], "surname"].to_numpy()
    new = adopted.loc[pupils["person_id"], "surname"].to_numpy()
    assert (pupils["Surname"].to_numpy() == np.where(after, new, birth)).all()
    assert (new != birth).all()
    both = pupils.groupby("person_id").filter(
        lambda g: (
            ((g["day"] >= adopted.loc[g.name, "date_adopted"]).any())
            and ((g["day"] < adopted.loc[g.name, "date_adopted"]).any())
        )
    )
    assert both["person_id"].nunique() >= 3, "too few children adopted while at school to test"
    for pid, g in both.groupby("person_id"):
        before = g[g["day"] < adopted.loc[pid, "date_adopted"]]
        since = g[g["day"] >= adopted.loc[pid, "date_adopted"]]
        assert before["UPN"].nunique() == 1 and since["UPN"].nunique() == 1
        assert before["UPN"].iloc[0] != since["UPN"].iloc[0]
        assert is_valid_upn(since["UPN"].to_numpy()).all()
    # PDS: the pre-adoptive record (birth surname) is closed at the order, and a new record
    # under a new NHS number holds the adoptive surname from it; both name the one person
    nhs_person = ctx.links.frame().query("dataset == 'pds'").set_index("source_id")["person_id"]
    pds = out[PDS].assign(person_id=nhs_person.loc[out[PDS]["NHS_NO"]].to_numpy())
    records = pds[pds["person_id"].isin(adopted.index)].groupby("person_id")
    assert (records.size() == 2).all() and records.ngroups == len(adopted)
    old, new = records.nth(0).set_index("person_id"), records.nth(1).set_index("person_id")
    assert (old["FAMILY_NAME"] == persons.loc[old.index, "surname"]).all()
    assert (new.loc[adopted.index, "FAMILY_NAME"] == adopted["surname"]).all()
    assert (old["DATE_OF_BIRTH"] == new.loc[old.index, "DATE_OF_BIRTH"]).all()
    addresses = out[ADDRESSES].set_index("NHS_NO")
    first_from = addresses.groupby(level=0)["FROM_DATE"].min()
    order = adopted["date_adopted"].dt.strftime("%Y%m%d")
    assert (first_from.loc[new.loc[adopted.index, "NHS_NO"]].to_numpy() == order.to_numpy()).all()


def test_links_cover_every_recorded_identifier(clean, realistic):
    for ctx, out in (clean, realistic):
        links = ctx.links.frame()
        upns = out[PUPILS]["UPN"]
        recorded = set(upns[(upns != "") & ~upns.isin(list(UPN_UNKNOWN_CODES))])
        assert recorded == set(links.loc[links["dataset"] == "pupils", "source_id"])
        assert set(out[PDS]["NHS_NO"]) == set(links.loc[links["dataset"] == "pds", "source_id"])
        assert links["la_code"].isna().all()


def test_links_point_to_the_true_person(clean):
    ctx, out = clean
    links = ctx.links.frame().query("dataset == 'pds'").set_index("source_id")["person_id"]
    persons = ctx.truth["persons"].set_index("person_id")
    pid = links.loc[out[PDS]["NHS_NO"]].to_numpy()
    dob = persons.loc[pid, "date_of_birth"].dt.strftime("%Y%m%d").to_numpy()
    assert (out[PDS]["DATE_OF_BIRTH"].to_numpy() == dob).all()
    assert (out[PDS]["GIVEN_NAME"].to_numpy() == persons.loc[pid, "forename"].to_numpy()).all()


def test_errors_are_findable_in_the_files(realistic):
    ctx, out = realistic
    log = ctx.errors.frame()
    assert {"name_typo", "name_variant", "date_day_month_swap", "postcode_stale", "upn_missing",
            "duplicate_record"} <= set(log["error_type"])  # fmt: skip
    assert set(log["dataset"]) == {"pupils", "pds"}
    files = {t.path: out[t.name] for t in identity.TABLES}
    keys = {t.path: t.key[0] for t in identity.TABLES}
    for (path, field), g in log[log["field"] != mess.DUPLICATE_FIELD].groupby(["file", "field"]):
        frame = files[path]
        found = frame[frame[keys[path]].isin(g["record_id"])]
        values = set(zip(found[keys[path]], found[field], strict=True))
        assert set(zip(g["record_id"], g["value_after"], strict=True)) <= values, (path, field)
    dups = log[log["error_type"] == "duplicate_record"]
    counts = out[PUPILS]["RecordID"].value_counts()
    assert (counts.loc[dups["record_id"]] == 2).all()
    assert not log[log["dataset"] == "pds"]["error_type"].str.startswith("nhs_").any()
    assert not out[PDS]["NHS_NO"].duplicated().any()


def test_recording_never_changes_the_truth(clean_ctx):
    before = {k: v.copy() for k, v in clean_ctx.truth.items()}
    identity.record(fresh(clean_ctx, "heavy"))
    for k, v in clean_ctx.truth.items():
        pd.testing.assert_frame_equal(v, before[k])


def test_deterministic(clean_ctx, realistic):
    _, out = realistic
    again = identity.record(fresh(clean_ctx, "realistic"))
    for name, frame in out.items():
        pd.testing.assert_frame_equal(frame, again[name])


def test_parts_write_with_one_schema(tmp_path, clean, realistic):
    for i, (_, out) in enumerate((clean, realistic)):
        for table in identity.TABLES:
            path = tmp_path / f"{i}" / f"{table.name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            out[table.name].to_parquet(path, index=False)
    for table in identity.TABLES:
        schemas = [pq.read_schema(tmp_path / f"{i}" / f"{table.name}.parquet") for i in (0, 1)]
        assert schemas[0].remove_metadata().equals(schemas[1].remove_metadata()), table.name
        types = {str(schemas[0].field(f).type) for f in table.field_names if f != "CensusYear"}
        assert types <= {"string", "large_string"}

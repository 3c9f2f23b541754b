"""The SSDA903 returns: files and codes as declared, agreement with the truth, anomalies, rules."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trainkit.config import make_config
from trainkit.datasets import ssda903
from trainkit.datasets.identifiers import UPN_UNKNOWN_CODES_903, is_valid_upn
from trainkit.datasets.record import ErrorLog, Links
from trainkit.parameters import load_parameters
from trainkit.simulate.context import add_years
from trainkit.simulate.engine import plan_shards, record_context

REPO = Path(__file__).resolve().parents[1]
VALIDATOR_PYTHON = REPO / ".venv-validators" / "bin" / "python"
RUNNER = REPO / "tests" / "validators" / "run_validators.py"
SPEC = REPO / "src" / "trainkit" / "datasets" / "specs" / "SSDA903_schema_2024.yml"

# DfE rules that fire on a clean return for reasons documented in docs/ssda903.md: a limit of the
# validator (it sees one year back; shallow copies between rules; 633's LA list predates the
# newest LAs; 1016 counts leaving care on the 18th birthday as leaving after it, checked row by
# row below), or a conflict between two years' rules or between a rule and a true history. The
# simulated truth itself raises none.
VALIDATOR_LIMITS = {"1001", "1002", "575", "577", "SW12STG2", "633", "1016"}
RULE_CONFLICTS = {"503F", "187", "SW11bSTG2"}
EXEMPT = VALIDATOR_LIMITS | RULE_CONFLICTS
SWEEP = REPO / "tests" / "validators" / "sweep_903.py"
CRASH_RULES = REPO / "tests" / "validators" / "crash_rules.py"
# A rule that crashes checks nothing in that return, so a crash fails a test unless it is a
# validator bug documented in docs/ssda903.md whose exact condition run_validators.py confirmed
# on the return (its "known_bug"): 1007 on an OC3 young person born on 29 February.
KNOWN_VALIDATOR_CRASHES = {"1007"}
LEAP_DAY = REPO / "tests" / "validators" / "examples" / "ssda903_886_2022_leap_day"

TABLE_FILES = {t.name: Path(t.path).name for t in ssda903.TABLES}
SPEC_TABLES = {
    "header": "Header", "episodes": "Episodes", "reviews": "Reviews", "uasc": "UASC",
    "oc2": "OC2", "oc3": "OC3", "ad1": "AD1", "placed_for_adoption": "PlacedAdoption",
    "previous_permanence": "PrevPerm", "missing": "Missing", "sw_episodes": "SocialWorker",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


def _write(records: dict[str, pd.DataFrame], root: Path) -> Path:
    """Write every table as the registry does (header first, one file per LA-year)."""
    for table in ssda903.TABLES:
        for (year, la), part in records[table.name].groupby(["_year", "_la"], sort=True):
            path = root / table.path.format(year=year, la=la)
            ssda903.write_partition(table, part.drop(columns=["_year", "_la"]), path)
    return root


def _read(root: Path, year: int, la: int, table: str) -> pd.DataFrame:
    path = root / "returns" / "ssda903" / str(year) / f"{la:03d}" / TABLE_FILES[table]
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def shard():
    cfg = make_config({"children": 20000, "seed": 3, "messiness": "clean"})
    return record_context(cfg, plan_shards(cfg)[0])


@pytest.fixture(scope="module")
def clean(shard, tmp_path_factory):
    records = ssda903.record(shard)
    return records, _write(records, tmp_path_factory.mktemp("ssda903_clean"))


@pytest.fixture(scope="module")
def heavy(shard, tmp_path_factory):
    """Heavy messiness, with every SSDA903 anomaly frequent enough to appear in a 20k shard (the
    rarest, mc_dob_male, has a handful of chances there at its heavy rate)."""
    rates = {}
    for name in ssda903.ANOMALIES:
        rate = shard.params[f"ssda903.anomaly_{name}"]
        rates[f"ssda903.anomaly_{name}"] = {**rate, "heavy": max(rate["heavy"], 0.03)}
    ctx = dataclasses.replace(
        shard,
        messiness="heavy",
        params=shard.params.with_overrides(rates),
        errors=ErrorLog(),
        links=Links(),
    )
    records = ssda903.record(ctx)
    return ctx, records, _write(records, tmp_path_factory.mktemp("ssda903_heavy"))


def _truth_episodes(shard) -> pd.DataFrame:
    ep = shard.truth["care_episodes"].copy()
    per = shard.truth["care_periods"].set_index("period_id")["start_date"]
    # a child adopted and looked after again is a new child to the LA (from the period's start)
    pid = ep["person_id"].to_numpy()
    gen = shard.identity_generation(pid, per.reindex(ep["period_id"]).to_numpy("datetime64[D]"))
    ep["CHILD"] = shard.la_child_ids(pid, ep["la_code"].to_numpy(), gen)
    return ep


def _tuples(*columns) -> set[tuple]:
    """The set of rows of equally long columns."""
    return set(
        pd.DataFrame({i: np.asarray(c) for i, c in enumerate(columns)}).itertuples(
            index=False, name=None
        )
    )


def _in_year(start: pd.Series, end: pd.Series, year: int) -> pd.Series:
    first, last = pd.Timestamp(f"{year - 1}-04-01"), pd.Timestamp(f"{year}-03-31")
    return (start <= last) & (end.isna() | (end >= first))


# --------------------------------------------------------------------------------------------
# Files, columns, codes, dates
# --------------------------------------------------------------------------------------------


# Column order of each file as in csc-validator-be-903's config.column_names (datasets.md 1.1);
# the validator matches a file to a table by this set of columns.
VALIDATOR_COLUMNS = {
    "header": "CHILD SEX DOB ETHNIC UPN MOTHER MC_DOB",
    "episodes": "CHILD DECOM RNE LS CIN PLACE PLACE_PROVIDER DEC REC REASON_PLACE_CHANGE HOME_POST "
    "PL_POST URN",
    "reviews": "CHILD DOB REVIEW REVIEW_CODE",
    "uasc": "CHILD SEX DOB DUC",
    "oc2": "CHILD DOB SDQ_SCORE SDQ_REASON CONVICTED HEALTH_CHECK IMMUNISATIONS TEETH_CHECK "
    "HEALTH_ASSESSMENT SUBSTANCE_MISUSE INTERVENTION_RECEIVED INTERVENTION_OFFERED",
    "oc3": "CHILD DOB IN_TOUCH ACTIV ACCOM",
    "ad1": "CHILD DOB DATE_INT DATE_MATCH FOSTER_CARE NB_ADOPTR SEX_ADOPTR LS_ADOPTR",
    "placed_for_adoption": "CHILD DOB DATE_PLACED DATE_PLACED_CEASED REASON_PLACED_CEASED",
    "previous_permanence": "CHILD DOB PREV_PERM LA_PERM DATE_PERM",
    "missing": "CHILD DOB MISSING MIS_START MIS_END",
    "sw_episodes": "CHILD DOB SW_ID SW_DECOM SW_DEC SW_REASON",
}


def test_declarations_match_the_dfe_column_lists_and_the_liia_tools_schema():
    spec = yaml.safe_load(SPEC.read_text())["column_map"]
    for table in ssda903.TABLES:
        name = table.name.split(".")[1]
        columns = spec[SPEC_TABLES[name]]
        assert table.field_names == VALIDATOR_COLUMNS[name].split(), table.name
        assert set(table.field_names) == set(columns), table.name
        for f in table.fields:
            codes = [str(c["code"]).strip() for c in columns[f.name].get("category", [])]
            if f.codes and codes:
                assert set(f.codes) == set(codes), (table.name, f.name)


def test_every_la_year_has_every_file_of_its_year_with_the_declared_columns(clean):
    records, root = clean
    header = records["ssda903.header"]
    for year, la in header[["_year", "_la"]].drop_duplicates().itertuples(index=False):
        folder = root / "returns" / "ssda903" / str(year) / f"{la:03d}"
        expected = {Path(t.path).name for t in ssda903.TABLES if t.exists_in(year)}
        assert {p.name for p in folder.iterdir()} == expected
        for table in ssda903.TABLES:
            if table.exists_in(year):
                first = (folder / Path(table.path).name).read_bytes().decode().split("\r\n")[0]
                assert first == ",".join(table.field_names)
    assert records["ssda903.sw_episodes"]["_year"].min() == ssda903.FIRST_SW_YEAR


def test_codes_patterns_and_dates_are_valid(clean):
    records, _ = clean
    for table in ssda903.TABLES:
        frame = records[table.name]
        assert list(frame.columns) == [*table.field_names, "_year", "_la"]
        for f in table.fields:
            values = frame[f.name]
            blank = values == ""
            if f.required:
                assert not blank.any(), (table.name, f.name)
            v = values[~blank]
            if f.codes:
                assert v.isin(list(f.codes)).all(), (table.name, f.name, set(v) - set(f.codes))
            if f.pattern:
                assert v.str.fullmatch(f.pattern).all(), (table.name, f.name)
            if f.kind == "date":
                parsed = pd.to_datetime(v, format="%d/%m/%Y", errors="coerce")
                assert parsed.notna().all(), (table.name, f.name)
            if f.kind == "int":
                n = v.astype(int)
                assert n.between(f.minimum, f.maximum).all(), (table.name, f.name)
    upn = records["ssda903.header"]["UPN"]
    known = ~upn.isin(UPN_UNKNOWN_CODES_903)
    assert is_valid_upn(upn[known].to_numpy(dtype=str)).all()


# --------------------------------------------------------------------------------------------
# Agreement with the truth
# --------------------------------------------------------------------------------------------


def test_every_episode_open_in_a_year_is_in_that_la_years_return(shard, clean):
    records, _ = clean
    eps = records["ssda903.episodes"]
    truth = _truth_episodes(shard)
    for year in shard.years:
        t = truth[_in_year(truth["start_date"], truth["end_date"], year)]
        want = _tuples(t["la_code"], t["CHILD"], t["start_date"].dt.strftime("%d/%m/%Y"))
        got = eps[eps["_year"] == year]
        assert _tuples(got["_la"], got["CHILD"], got["DECOM"]) == want


def test_episodes_open_at_31_march_are_carried_into_next_year(clean):
    records, _ = clean
    eps = records["ssda903.episodes"]
    years = sorted(eps["_year"].unique())
    carried = 0
    for year in years[:-1]:
        open_ = eps[(eps["_year"] == year) & (eps["DEC"] == "")]
        nxt = eps[eps["_year"] == year + 1]
        key = ["_la", "CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "PL_POST"]
        merged = open_[key].merge(nxt[key], how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
        carried += len(open_)
    assert carried > 50


def test_stock_at_31_march_per_la_year_equals_the_truths_open_periods(shard, clean):
    records, _ = clean
    eps = records["ssda903.episodes"]
    per = shard.truth["care_periods"]
    for year in shard.years:
        day = pd.Timestamp(f"{year}-03-31")
        open_ = per[(per["start_date"] <= day) & (per["end_date"].isna() | (per["end_date"] > day))]
        want = open_.groupby("la_code").size()
        got = eps[(eps["_year"] == year) & (eps["DEC"] == "")].groupby("_la").size()
        pd.testing.assert_series_equal(got, want, check_names=False, check_index_type=False)


def test_header_has_every_child_once_and_reviews_follow_the_schedule(shard, clean):
    records, _ = clean
    head, eps = records["ssda903.header"], records["ssda903.episodes"]
    assert not head.duplicated(["_year", "_la", "CHILD"]).any()
    in_eps = _tuples(eps["_year"], eps["_la"], eps["CHILD"])
    in_oc3 = _tuples(*(records["ssda903.oc3"][c] for c in ("_year", "_la", "CHILD")))
    assert _tuples(head["_year"], head["_la"], head["CHILD"]) == in_eps | in_oc3
    for name in ("reviews", "oc2", "ad1", "placed_for_adoption", "previous_permanence",
                 "missing", "sw_episodes", "uasc"):  # fmt: skip
        frame = records[f"ssda903.{name}"]
        assert _tuples(frame["_year"], frame["_la"], frame["CHILD"]) <= in_eps, name
    rv = records["ssda903.reviews"].merge(head[["_year", "_la", "CHILD", "DOB"]])
    dob = pd.to_datetime(rv["DOB"], format="%d/%m/%Y").to_numpy("datetime64[D]")
    review = pd.to_datetime(rv["REVIEW"], format="%d/%m/%Y").to_numpy("datetime64[D]")
    under4 = add_years(dob, 4) > review
    assert ((rv["REVIEW_CODE"] == "PN0") == under4).all()  # DfE rules 440/441


def test_ad1_rows_match_the_adoptions_in_each_year(shard, clean):
    records, _ = clean
    ad1 = records["ssda903.ad1"]
    ad = shard.truth["adoptions"]
    pid = ad["person_id"].to_numpy()
    gen = shard.identity_generation(pid, ad["date_adopted"].to_numpy("datetime64[D]") - 1)
    child = shard.la_child_ids(pid, ad["la_code"].to_numpy(), gen)
    for year in shard.years:
        t = ad[_in_year(ad["date_adopted"], ad["date_adopted"], year).to_numpy()]
        c = child[_in_year(ad["date_adopted"], ad["date_adopted"], year).to_numpy()]
        want = _tuples(t["la_code"], c, t["date_matched"].dt.strftime("%d/%m/%Y"))
        got = ad1[ad1["_year"] == year]
        assert _tuples(got["_la"], got["CHILD"], got["DATE_MATCH"]) == want
    ended = records["ssda903.episodes"].query("REC in ['E11', 'E12']")
    assert _tuples(ended["_year"], ended["CHILD"]) == _tuples(ad1["_year"], ad1["CHILD"])


def test_oc2_oc3_uasc_and_previous_permanence_follow_the_collection_rules(shard, clean):
    records, _ = clean
    head = records["ssda903.header"].set_index(["_year", "_la", "CHILD"])
    oc2 = records["ssda903.oc2"]
    assert len(oc2) > 100 and not oc2.duplicated(["_year", "_la", "CHILD"]).any()
    # OC3: only care leavers whose 17th to 21st birthday falls in the year
    oc3 = records["ssda903.oc3"]
    assert len(oc3) > 50
    dob = pd.to_datetime(oc3["DOB"], format="%d/%m/%Y").to_numpy("datetime64[D]")
    first = pd.to_datetime((oc3["_year"] - 1).astype(str) + "-04-01").to_numpy("datetime64[D]")
    last = pd.to_datetime(oc3["_year"].astype(str) + "-03-31").to_numpy("datetime64[D]")
    birthday = [(add_years(dob, k) >= first) & (add_years(dob, k) <= last) for k in range(17, 22)]
    assert np.any(birthday, axis=0).all()
    # every truth outcome of a written year is recorded, in the LA it names: none is filtered
    clo = shard.truth["care_leaver_outcomes"]
    bday = pd.to_datetime(clo["birthday"])
    year = bday.dt.year + (bday.dt.month >= 4)
    clo = clo[year.isin(shard.years).to_numpy()]
    pid = clo["person_id"].to_numpy()
    gen = shard.identity_generation(pid, clo["birthday"].to_numpy("datetime64[D]"))
    child = shard.la_child_ids(pid, clo["la_code"].to_numpy(), gen)
    want = _tuples(clo["la_code"], child, clo["in_touch"], clo["activity"], clo["accommodation"])
    assert _tuples(oc3["_la"], oc3["CHILD"], oc3["IN_TOUCH"], oc3["ACTIV"], oc3["ACCOM"]) == want
    assert len(oc3) == len(clo)
    # UASC: DUC is the 18th birthday
    uasc = records["ssda903.uasc"]
    assert len(uasc) > 0
    duc = pd.to_datetime(uasc["DUC"], format="%d/%m/%Y")
    born = pd.to_datetime(uasc["DOB"], format="%d/%m/%Y")
    assert (duc == born + pd.DateOffset(years=18)).all()
    assert (head.loc[sorted(_tuples(uasc["_year"], uasc["_la"], uasc["CHILD"])), "UPN"] != "").all()
    # previous permanence: one row per child starting care in the year, P1-P3 with LA and date
    pp = records["ssda903.previous_permanence"]
    assert set(pp["PREV_PERM"]) <= {"P1", "P2", "P3", "Z1"} and (pp["PREV_PERM"] != "Z1").any()
    assert ((pp["PREV_PERM"] == "Z1") == (pp["LA_PERM"] == "")).all()
    assert ((pp["PREV_PERM"] == "Z1") == (pp["DATE_PERM"] == "")).all()
    eps = records["ssda903.episodes"]
    starts = eps[eps["RNE"] == "S"].copy()
    first = pd.to_datetime((starts["_year"] - 1).astype(str) + "-04-01")
    starts = starts[pd.to_datetime(starts["DECOM"], format="%d/%m/%Y") >= first]
    assert _tuples(starts["_year"], starts["CHILD"]) == _tuples(pp["_year"], pp["CHILD"])


def test_links_register_every_child_and_upn(shard, clean):
    records, _ = clean
    links = shard.links.frame()
    links = links[links["dataset"] == "ssda903"]
    per_la = links[links["la_code"].notna()]
    known = _tuples(per_la["la_code"].astype(int), per_la["source_id"])
    for table in ssda903.TABLES:
        frame = records[table.name]
        assert _tuples(frame["_la"], frame["CHILD"]) <= known, table.name
    upn = records["ssda903.header"]["UPN"]
    real = upn[(upn != "") & ~upn.isin(UPN_UNKNOWN_CODES_903)]
    assert set(real) <= set(links.loc[links["la_code"].isna(), "source_id"])
    # a child's CHILD is the LA's id for that person: for the birth identity, or for an adopted
    # child possibly the adoptive one (a new child to the LA after the order)
    per_la = links.loc[links["la_code"].notna()]
    pid, la = per_la["person_id"].to_numpy(), per_la["la_code"].astype(int).to_numpy()
    source = per_la["source_id"].to_numpy()
    adopted = np.isin(pid, shard.adoption_orders().index.to_numpy())
    birth, adoptive = (shard.la_child_ids(pid, la, g) == source for g in (0, 1))
    assert (birth | (adopted & adoptive)).all()


def test_clean_logs_nothing_and_recording_is_deterministic(shard, clean):
    records, _ = clean
    assert not (shard.errors.frame()["dataset"] == "ssda903").any()
    again = ssda903.record(dataclasses.replace(shard, errors=ErrorLog(), links=Links()))
    for name, frame in records.items():
        pd.testing.assert_frame_equal(frame, again[name])


# --------------------------------------------------------------------------------------------
# Anomalies (messiness != clean)
# --------------------------------------------------------------------------------------------


def _logged(ctx, error_type: str) -> pd.DataFrame:
    log = ctx.errors.frame()
    return log[(log["dataset"] == "ssda903") & (log["error_type"] == error_type)]


@functools.cache
def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _rows_of(root: Path, entry) -> pd.DataFrame:
    frame = _csv(root / entry.file)
    return frame[frame["CHILD"] == entry.record_id]


def test_every_logged_error_is_findable_in_its_file(heavy):
    ctx, _, root = heavy
    log = ctx.errors.frame()
    log = log[(log["dataset"] == "ssda903") & (log["error_type"] != "duplicate_record")]
    assert len(log) > 100
    for entry in log.itertuples(index=False):
        rows = _rows_of(root, entry)
        assert (rows[entry.field] == (entry.value_after or "")).any(), entry


@pytest.mark.parametrize("error_type", sorted(ssda903.ANOMALIES))
def test_each_anomaly_is_present_logged_and_breaks_its_rule(heavy, error_type):
    ctx, records, root = heavy
    log = _logged(ctx, error_type)
    assert len(log) > 0, error_type
    for entry in log.itertuples(index=False):
        assert entry.value_before != entry.value_after
        rows = _rows_of(root, entry)
        hit = rows[rows[entry.field] == (entry.value_after or "")]
        assert len(hit), entry
        row = hit.iloc[0]
        if error_type == "episode_chain_gap":  # rule 433: DECOM is not the previous DEC
            eps = _csv(root / entry.file)
            mine = eps[eps["CHILD"] == entry.record_id]
            assert entry.value_after not in set(mine["DEC"])
        elif error_type == "rne_inconsistent":  # rule 434: RNE L, but LS unchanged
            eps = _csv(root / entry.file)
            mine = eps[eps["CHILD"] == entry.record_id].reset_index(drop=True)
            at = mine.index[mine["RNE"] == "L"]
            assert any(mine.loc[i, "LS"] == mine.loc[i - 1, "LS"] for i in at if i > 0)
        elif error_type == "place_change_reason_missing":  # rule 225: the next is a move
            eps = _csv(root / entry.file)
            mine = eps[eps["CHILD"] == entry.record_id].reset_index(drop=True)
            # other recording errors may touch the codes around it (case, spaces, duplicates)
            rec, rne = (mine[c].str.strip().str.upper() for c in ("REC", "RNE"))
            at = mine.index[(mine["REASON_PLACE_CHANGE"] == "") & (rec == "X1")]
            moves = rne.isin(list("PBTU"))
            assert any(
                (i + 1 < len(mine) and moves[i + 1])
                or (moves & (mine["DECOM"] == mine.loc[i, "DEC"])).any()
                for i in at
            )
        elif error_type == "review_pn0_aged_4":  # rule 440
            dob = pd.to_datetime(row["DOB"], format="%d/%m/%Y")
            assert pd.to_datetime(row["REVIEW"], format="%d/%m/%Y") > dob + pd.DateOffset(years=4)
        elif error_type == "home_equals_placement":  # rule 392d
            assert row["HOME_POST"] == row["PL_POST"] and row["PLACE"] != "P1"
        elif error_type == "un1_school_age":  # rule 209
            year = int(Path(entry.file).parts[2])
            dob = pd.Timestamp(pd.to_datetime(row["DOB"], format="%d/%m/%Y"))
            assert dob + pd.DateOffset(years=4) <= pd.Timestamp(f"{year - 2}-08-31")
        elif error_type == "mc_dob_male":  # rule 174
            assert row["SEX"] == "1" and row["MC_DOB"] != ""
        elif error_type == "dob_changed":  # rule 203: DOB differs from last year's
            year = int(Path(entry.file).parts[2])
            last = Path(str(entry.file).replace(f"/{year}/", f"/{year - 1}/"))
            before = _csv(root / last.parent / "header.csv")
            last_dob = set(before.loc[before["CHILD"] == entry.record_id, "DOB"])
            assert last_dob and entry.value_after not in last_dob


def test_anomaly_rates_come_from_the_parameter_file_and_clean_is_zero(shard):
    for name in ssda903.ANOMALIES:
        rates = shard.params[f"ssda903.anomaly_{name}"]
        assert rates["clean"] == 0 and 0 < rates["realistic"] < rates["heavy"] < 0.1
    assert ssda903.ANOMALIES["episode_chain_gap"] == "433"


# --------------------------------------------------------------------------------------------
# The DfE's rules (csc-validator-be-903, in its own venv)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kent(tmp_path_factory):
    cfg = make_config(
        {"children": 20000, "seed": 5, "messiness": "clean", "local_authorities": [886]}
    )
    ctx = record_context(cfg, plan_shards(cfg)[0])
    return _write(ssda903.record(ctx), tmp_path_factory.mktemp("ssda903_kent"))


def _left_on_birthday(folder: Path, year: int, la: str, child: str) -> bool:
    """Rule 1016's false positive: a care leaver whose care ended on their 17th or 18th birthday
    (DEC is the birthday), whom the rule's ``DEC >= birthday`` counts as leaving after it."""
    eps = pd.read_csv(folder / str(year) / la / "episodes.csv", dtype=str, keep_default_na=False)
    head = pd.read_csv(folder / str(year) / la / "header.csv", dtype=str, keep_default_na=False)
    dob = pd.to_datetime(head.loc[head["CHILD"] == child, "DOB"], format="%d/%m/%Y").iloc[0]
    dec = pd.to_datetime(eps.loc[eps["CHILD"] == child, "DEC"], format="%d/%m/%Y").max()
    return dec in (dob + pd.DateOffset(years=17), dob + pd.DateOffset(years=18))


def _back_after_permanence(folder: Path, year: int, la: str, child: str) -> bool:
    """Rule 632's false positive: a child looked after when the year began who left care under a
    permanence order (SGO, CAO) and came back in the same year. The rule compares DATE_PERM with
    the child's first episode of the year, which predates the order, not with the start of the
    period the previous permanence belongs to."""
    eps = pd.read_csv(folder / str(year) / la / "episodes.csv", dtype=str, keep_default_na=False)
    pp = pd.read_csv(
        folder / str(year) / la / "previous_permanence.csv", dtype=str, keep_default_na=False
    )
    mine = eps[eps["CHILD"] == child]
    decom = pd.to_datetime(mine["DECOM"], format="%d/%m/%Y")
    year_start = pd.Timestamp(f"{int(year) - 1}-04-01")
    started = decom[((mine["RNE"] == "S") & (decom >= year_start)).to_numpy()]  # back in the year
    perm = pd.to_datetime(pp.loc[pp["CHILD"] == child, "DATE_PERM"], format="%d/%m/%Y")
    return (
        len(started) > 0
        and len(perm) == 1
        and decom.min() <= perm.iloc[0] < started.min()
        and decom.min() < year_start
    )


def _unexplained_crashes(crashes: list[dict]) -> list[str]:
    """``rule X crashed: ...`` for each crash that is not a documented validator bug."""
    return [
        c["message"]
        for c in crashes
        if not (c["code"] in KNOWN_VALIDATOR_CRASHES and c["known_bug"])
    ]


def _unexplained(errors: list[dict], folder: Path, **where) -> set[str]:
    """Rules that fired outside the documented exemptions (1016 and 632 checked row by row);
    ``where`` gives the year and la of a single return's errors."""
    out = set()
    for e in errors:
        if e["code"] == "1016":
            e = {**where, **e}
            if not _left_on_birthday(folder, e["year"], e["la"], e["child"]):
                out.add("1016 (not on the birthday)")
        elif e["code"] == "632":
            e = {**where, **e}
            if not _back_after_permanence(folder, e["year"], e["la"], e["child"]):
                out.add("632 (not a return to care after a permanence order in the year)")
        elif e["code"] not in EXEMPT:
            out.add(e["code"])
    return out


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
def test_clean_return_raises_only_documented_dfe_rules(kent):
    folder = kent / "returns" / "ssda903"
    args = [str(VALIDATOR_PYTHON), str(RUNNER), "--kind", "903", "--la-code", "886",
            "--collection-year", "2024", "--current", str(folder / "2024" / "886"),
            "--previous", str(folder / "2023" / "886")]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert _unexplained_crashes(report["rules_crashed"]) == []
    assert report["rules_run"] > 290
    assert _unexplained(report["errors"], folder, year=2024, la="886") == set()


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
def test_clean_returns_of_several_las_and_years_raise_only_documented_dfe_rules(clean):
    """The largest LA returns of the national shard, in two years' rulesets (2022-23, 2023-24)."""
    _, root = clean
    folder = root / "returns" / "ssda903"
    args = [str(VALIDATOR_PYTHON), str(SWEEP), str(root), "--years", "2022,2024", "--top", "4"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert len(report["returns"]) == 8
    assert [m for c in report["rules_crashed"].values() for m in _unexplained_crashes(c)] == []
    assert _unexplained(report["errors"], folder) == set()


@pytest.fixture(scope="module")
def breakdowns(tmp_path_factory):
    """A 20k shard whose adoptions break down 20 times as often as published, so that adopted
    children come back into the same LA's care within the collection years."""
    hazard = load_parameters()["care.adoption_breakdown_hazard"]
    cfg = make_config(
        {
            "children": 20000,
            "seed": 3,
            "messiness": "clean",
            "parameters": {
                "care.adoption_breakdown_hazard": {k: 20 * v for k, v in hazard.items()}
            },
        }
    )
    ctx = record_context(cfg, plan_shards(cfg)[0])
    records = ssda903.record(ctx)
    return ctx, records, _write(records, tmp_path_factory.mktemp("ssda903_breakdowns"))


def _back_in_care(ctx) -> pd.DataFrame:
    """Periods of care of adopted children, in the LA that adopted them, after the order, that
    start in or after the year before the first collection year."""
    per = ctx.truth["care_periods"]
    orders = ctx.adoption_orders()
    back = per[per["person_id"].isin(orders.index)]
    order_day = orders.reindex(back["person_id"]).to_numpy("datetime64[D]")
    back = back[back["start_date"].to_numpy("datetime64[D]") >= order_day]
    ad = ctx.truth["adoptions"].dropna(subset=["date_adopted"])[["person_id", "la_code"]]
    back = back.merge(ad.drop_duplicates(), on=["person_id", "la_code"])
    return back[back["start_date"] >= pd.Timestamp(f"{min(ctx.years) - 1}-04-01")]


def test_an_adopted_child_looked_after_again_is_a_new_child_to_the_la(breakdowns):
    """DfE rules 199/334/1003: a child adopted from care who comes back into care has a new
    legal identity, so a new CHILD (and UPN); only the previous permanence links the two."""
    ctx, records, _ = breakdowns
    eps = records["ssda903.episodes"]
    ended = eps["REC"].isin(["E11", "E12"])
    adopted = eps.loc[ended, ["_la", "CHILD"]].assign(
        _adopted=pd.to_datetime(eps.loc[ended, "DEC"], format="%d/%m/%Y")
    )
    later = eps.assign(_decom=pd.to_datetime(eps["DECOM"], format="%d/%m/%Y"))
    later = later.merge(adopted, on=["_la", "CHILD"])
    assert not (later["_decom"] >= later["_adopted"]).any()
    back = _back_in_care(ctx)
    assert back["person_id"].nunique() >= 5
    head = records["ssda903.header"]
    pid, la = back["person_id"].to_numpy(), back["la_code"].to_numpy()
    new_ids = ctx.la_child_ids(pid, la, 1)
    assert set(zip(la, new_ids, strict=True)) <= _tuples(head["_la"], head["CHILD"])
    new_upn = set(head.loc[head["CHILD"].isin(new_ids), "UPN"])
    old_upn = set(head.loc[head["CHILD"].isin(ctx.la_child_ids(pid, la, 0)), "UPN"])
    assert not new_upn & old_upn - {"UN1", "UN2"}
    pp = records["ssda903.previous_permanence"]
    pp = pp[pp["CHILD"].isin(new_ids)]
    assert len(pp) > 0 and (pp["PREV_PERM"] == "P1").all()  # P1: adoption


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
def test_returns_with_adopted_children_back_in_care_raise_only_documented_rules(breakdowns):
    ctx, _, root = breakdowns
    back = _back_in_care(ctx)
    las = ",".join(str(la) for la in sorted(back["la_code"].unique()))
    args = [str(VALIDATOR_PYTHON), str(SWEEP), str(root), "--las", las]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert len(report["returns"]) >= 5
    assert [m for c in report["rules_crashed"].values() for m in _unexplained_crashes(c)] == []
    assert not {"199", "334", "1003"} & {e["code"] for e in report["errors"]}
    assert _unexplained(report["errors"], root / "returns" / "ssda903") == set()


def _run_903(folder: Path, year: int, *crash: str) -> tuple[dict, str]:
    """run_validators.py's report and stderr on one return under the 2022-23 rules, the earliest
    shipped (``crash``: crash_rules.py options)."""
    script = [str(CRASH_RULES), *crash, "--"] if crash else [str(RUNNER)]
    args = [str(VALIDATOR_PYTHON), *script, "--kind", "903", "--la-code", "886", "--ruleset",
            "lac2022_23", "--collection-year", str(year), "--current", str(folder)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), done.stderr


LEAP_DAY_ERROR = "ValueError: day is out of range for month"


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
def test_rule_1007_crashes_on_a_29_february_care_leaver_and_the_other_rules_still_report():
    """The fixture: in 2021-22 (a year ending in a non-leap year) KA0002, born 29/02/2004, left
    care on his 18th birthday and has an OC3 row; KA0001 has an invalid ethnicity (rule 103)."""
    report, stderr = _run_903(LEAP_DAY, 2022)
    assert report["rules_failed"] == {"1007": LEAP_DAY_ERROR}
    [crash] = report["rules_crashed"]
    assert crash["message"] == f"rule 1007 crashed: {LEAP_DAY_ERROR}"
    assert "rule_1007.py" in crash["known_bug"] and "KA0002" in crash["known_bug"]
    assert _unexplained_crashes(report["rules_crashed"]) == []
    assert f"rule 1007 crashed: {LEAP_DAY_ERROR} [known validator bug" in stderr
    assert "Traceback" not in stderr
    assert report["rules_run"] == 126  # every rule whose tables are there, but 1007
    assert [(e["code"], e["child"]) for e in report["errors"]] == [("103", "KA0001")]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
@pytest.mark.parametrize("variant", ["no episode this year", "leap year", "another cause too"])
def test_the_1007_crash_is_known_only_under_its_exact_condition(variant, tmp_path):
    folder = tmp_path / "return"
    shutil.copytree(LEAP_DAY, folder)
    year = 2024 if variant == "leap year" else 2022
    if variant == "no episode this year":  # only Episodes rows reach the replace(year=...)
        _edit(folder / "episodes.csv", "KA0002,01/09/2019,S,V2,N1,U6,PR1,01/03/2022,E8,,CT1 1AD,"
              "CT1 1AE,XXXXXXX\n", "")  # fmt: skip
    if variant == "another cause too":  # an impossible DEC, which 1007 parses without coerce
        _edit(folder / "episodes.csv", "PR1,,,,ME14 1AA", "PR1,30/02/2022,E8,,ME14 1AA")
    report, stderr = _run_903(folder, year)
    if variant == "another cause too":
        assert report["rules_failed"] == {"1007": LEAP_DAY_ERROR}
        assert report["rules_crashed"][0]["known_bug"] is None
        assert _unexplained_crashes(report["rules_crashed"]) == [
            f"rule 1007 crashed: {LEAP_DAY_ERROR}"
        ]
    else:
        assert report["rules_failed"] == {} and report["rules_crashed"] == []
        assert report["rules_run"] == 127  # 1007 too


@pytest.mark.skipif(not VALIDATOR_PYTHON.exists(), reason="no .venv-validators (see README)")
def test_run_validators_isolates_a_rule_that_raises_or_returns_a_malformed_result():
    """The validator's own loop maps a rule's result outside its try: a result naming a table
    that does not exist used to stop the whole run (exit 3, nothing reported)."""
    report, stderr = _run_903(LEAP_DAY, 2022, "--raise", "103", "--bad-result", "101")
    assert report["rules_failed"] == {
        "101": "KeyError: 'NoSuchTable'",
        "103": "RuntimeError: deliberate crash",
        "1007": LEAP_DAY_ERROR,
    }
    assert sorted(_unexplained_crashes(report["rules_crashed"])) == [
        "rule 101 crashed: KeyError: 'NoSuchTable'",
        "rule 103 crashed: RuntimeError: deliberate crash",
    ]
    assert "rule 101 crashed: KeyError: 'NoSuchTable'" in stderr and "Traceback" not in stderr
    assert report["rules_run"] == 124 and report["errors"] == []  # 103's finding is dropped

"""Research extracts: NPD tables, HES APC and the ECHILD bridging file."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trainkit.config import make_config
from trainkit.datasets import hes, identifiers, npd, registry
from trainkit.datasets.record import ErrorLog, Links
from trainkit.parameters import Parameters, _load_file
from trainkit.simulate.engine import plan_shards, record_context
from trainkit.validate import validate

TABLES = npd.TABLES + hes.TABLES
BY_NAME = {t.name: t for t in TABLES}
ANOMALY_TYPES = {
    "npd": {
        "ethnicity_full_label", "ethnicity_minor_code", "gender_unknown_code",
        "sen_lowercase_code", "duplicate_ks_record", "need_code_unmapped",
        "need_code_not_stated", "need_code_legacy_A", "code_stray_whitespace",
        "date_before_1930", "referral_after_closure", "ethnicity_invalid_code",
        "referral_source_invalid", "rec_sentinel_-10", "code_trailing_space",
    },
    "hes": {
        "null_date_1800", "admidate_after_disdate", "epistart_after_epiend",
        "gestat_99_not_known", "birweit_9999_not_known", "numbaby_x_not_known",
        "mydob_leading_zero_lost", "ethnos_not_known", "duplicate_episode",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def base_ctx():
    cfg = make_config({"children": 20_000, "seed": 3, "messiness": "clean"})
    ctx = record_context(cfg, plan_shards(cfg)[0])
    if "research.adopted_new_pmr" not in ctx.params:  # a loader without "research"
        entries = {k: ctx.params.entry(k) for k in ctx.params}
        entries.update(_load_file("research"))
        ctx = dataclasses.replace(ctx, params=Parameters(entries))
    return ctx


def _record(ctx, messiness):
    ctx = dataclasses.replace(ctx, messiness=messiness, errors=ErrorLog(), links=Links())
    out = {**npd.record(ctx), **hes.record(ctx)}
    return ctx, out


@pytest.fixture(scope="module")
def clean(base_ctx):
    return _record(base_ctx, "clean")


@pytest.fixture(scope="module")
def realistic(base_ctx):
    return _record(base_ctx, "realistic")


def _person_of(ctx, dataset: str) -> pd.Series:
    links = ctx.links.frame()
    links = links[links["dataset"] == dataset]
    assert not links.duplicated("source_id").any() or dataset == "npd"
    return links.drop_duplicates("source_id").set_index("source_id")["person_id"]


_ARROW = {
    "string": pa.string(),
    "code": pa.string(),
    "int": pa.int32(),
    "float": pa.float64(),
    "date": pa.date32(),
}


def test_parameters_have_sources_and_anomalies_name_what_they_copy():
    raw = _load_file("research")
    assert raw, "params/research.yaml is empty"
    from importlib import resources

    import yaml

    text = resources.files("trainkit").joinpath("params", "research.yaml").read_text("utf-8")
    spec = yaml.safe_load(text)
    anomalies = [k for k in spec if k.startswith("anomaly_")]
    assert len(anomalies) >= 8
    for name in anomalies:
        assert spec[name].get("anomaly"), f"{name} does not name the anomaly it copies"
        assert set(spec[name]["value"]) == {"realistic", "heavy"}


def test_columns_and_types_follow_the_declarations(clean, realistic):
    for _, out in (clean, realistic):
        assert set(out) == set(BY_NAME)
        for name, frame in out.items():
            table = BY_NAME[name]
            assert list(frame.columns) == table.field_names
            assert "{" not in table.path and table.path.startswith("research/")
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            for f in table.fields:
                assert arrow.schema.field(f.name).type == _ARROW[f.kind], (name, f.name)
            assert len(frame), name


def test_clean_files_pass_the_validator(clean, tmp_path, monkeypatch):
    _, out = clean
    monkeypatch.setattr(registry, "MODULES", (npd, hes))  # until the lead registers them
    halves = {name: (frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :])
              for name, frame in out.items()}  # fmt: skip
    for shard in (0, 1):  # two shards streamed into one file per table
        part = {name: pair[shard].reset_index(drop=True) for name, pair in halves.items()}
        registry.write_parts(part, tmp_path / "parts", shard)
    counts = registry.assemble(tmp_path / "parts", tmp_path / "data", 2)
    assert counts == {name: len(frame) for name, frame in out.items()}
    root = tmp_path / "data"
    (root / "manifest.json").write_text(json.dumps({}))
    report = validate(root, tables=TABLES)
    assert report.ok, report.violations.head(20).to_string()


def test_clean_has_no_anomalies_and_realistic_has_each_type(clean, realistic):
    ctx, _ = clean
    assert ctx.errors.frame().empty
    ctx, _ = realistic
    log = ctx.errors.frame()
    for dataset, types in ANOMALY_TYPES.items():
        found = set(log.loc[log["dataset"] == dataset, "error_type"])
        assert types <= found, f"{dataset}: missing {sorted(types - found)}"
    assert log["file"].isin([t.path for t in TABLES]).all()


def test_every_logged_anomaly_is_in_its_file(realistic):
    ctx, out = realistic
    by_path = {t.path: (t, out[t.name]) for t in TABLES}
    id_columns = {
        "npd.spring_census": ["PupilMatchingRefAnonymous"],
        "npd.ks2": ["KS2_PupilMatchingRefAnonymous"],
        "npd.ks4": ["KS4_PupilMatchingRefAnonymous"],
        "npd.cin": ["CIN_PupilMatchingRefAnonymous", "CIN_LAchildID_Anon"],
        "npd.cla": ["cla_child_la_code_anon"],
        "hes.apc": ["EPIKEY"],
    }
    log = ctx.errors.frame()
    assert len(log) > 1000
    for (path, field), group in log.groupby(["file", "field"]):
        table, frame = by_path[path]
        ids = frame[id_columns[table.name]].astype(object)
        record_id = ids.iloc[:, 0].where(ids.iloc[:, 0].notna(), ids.iloc[:, -1]).astype(str)
        if field == "(record)":
            counts = record_id.value_counts()
            assert (counts.reindex(group["record_id"]).fillna(0) >= 2).all(), path
            continue
        values = frame[field].astype(object).where(frame[field].notna(), None)
        text = values.map(lambda v: "" if v is None else str(v))
        found = pd.DataFrame({"record_id": record_id, "value": text})
        found = found.drop_duplicates()
        merged = group.merge(
            found, left_on=["record_id", "value_after"], right_on=["record_id", "value"]
        )
        missing = set(zip(group["record_id"], group["value_after"], strict=True)) - set(
            zip(merged["record_id"], merged["value_after"], strict=True)
        )
        assert not missing, f"{path} {field}: {list(missing)[:5]}"


def test_pmr_only_when_matched_and_about_seventy_percent_of_cin_records(clean):
    ctx, out = clean
    cin = out["npd.cin"]
    has = cin["CIN_PupilMatchingRefAnonymous"].notna()
    assert 0.6 <= has.mean() <= 0.8  # HT guide 12: about 70% of CIN records have a PMR
    age = cin["CIN_ACADYR"].str[5:].astype(int) - cin["CIN_YearOfBirth"].astype("float")
    assert has[age <= 1].mean() == 0  # babies are not yet on any pupil record
    assert 0 < has[(age >= 3) & (age <= 4)].mean() < 0.4  # a few in early years
    assert has[(age >= 7) & (age <= 15)].mean() > 0.8  # most school-age children
    pupils = _person_of(ctx, "npd")
    person = pupils.reindex(cin.loc[has, "CIN_PupilMatchingRefAnonymous"]).to_numpy()
    census_people = set(ctx.truth["pupil_census"]["person_id"])
    assert np.isin(person, list(census_people)).all()  # only children with school records
    uasc = ctx.cohort.uasc[np.searchsorted(ctx.cohort.person_id, person)]
    assert uasc.mean() < 0.05
    cla = out["npd.cla"]
    early = cla["date_epi_ceased"].notna() & (
        cla["date_epi_ceased"] < pd.Timestamp("2005-04-01").date()
    )
    assert cla.loc[early, "cla_pupilmatchingrefanonymous"].isna().all()
    assert 0.4 < cla.loc[~early, "cla_pupilmatchingrefanonymous"].notna().mean() < 0.85


def test_cin_referral_repeated_in_every_year_it_is_open(clean):
    ctx, out = clean
    cin = out["npd.cin"]
    key = ["CIN_LA", "CIN_LAchildID_Anon", "CIN_CINreferralDate"]
    years = cin.groupby(key)["CIN_ACADYR"].agg(["size", "nunique"])
    assert (years["size"] == years["nunique"]).all()
    assert (years["size"] >= 2).mean() > 0.2
    # the closure date appears only in the year of closure, never before
    closed = cin[cin["CIN_CINclosureDate"].notna()]
    end = closed["CIN_ACADYR"].str[5:].astype(int)
    closure = pd.to_datetime(closed["CIN_CINclosureDate"].astype(str))
    assert ((closure.dt.year + (closure.dt.month >= 4)) == end).all()
    open_at_end = cin["CIN_CINat31March"].astype(int).to_numpy() == 1
    assert (open_at_end == cin["CIN_CINclosureDate"].isna().to_numpy()).all()


def test_month_and_year_of_birth_only(clean):
    ctx, out = clean
    for table in TABLES:
        for f in table.fields:
            assert "birthdate" not in f.name.lower() and f.name.upper() != "DOB"
    census = out["npd.spring_census"]
    person = _person_of(ctx, "npd").reindex(census["PupilMatchingRefAnonymous"]).to_numpy()
    dob = ctx.cohort.date_of_birth[np.searchsorted(ctx.cohort.person_id, person)]
    dob = dob.astype("datetime64[D]")
    assert (
        census["YearOfBirth"].to_numpy() == dob.astype("datetime64[Y]").astype(int) + 1970
    ).all()
    assert (
        census["MonthOfBirth"].to_numpy() == dob.astype("datetime64[M]").astype(int) % 12 + 1
    ).all()
    apc = out["hes.apc"]
    assert apc["MYDOB"].str.fullmatch(r"(0[1-9]|1[0-2])\d{4}").all()


def test_hes_episodes_and_codes(clean):
    ctx, out = clean
    apc = out["hes.apc"]
    assert apc["EPIKEY"].is_unique
    diag = pd.concat([apc[f"DIAG_{k:02d}"] for k in range(1, 21)]).dropna()
    assert diag.str.fullmatch(hes.DIAG_PATTERN).all()
    assert (diag.str.len() == 4).mean() > 0.99
    for k in range(1, 25):
        assert (apc[f"OPERTN_{k:02d}"] == "-").all()
    births = apc[apc["EPITYPE"] == "3"]
    assert len(births) == len(ctx.truth["births"])
    assert births["STARTAGE"].eq("7001").all() and births["ADMIMETH"].isin(["82", "83"]).all()
    assert births["DIAG_01"].str.startswith("Z38").all()
    others = apc[apc["EPITYPE"] != "3"]
    assert others[["GESTAT_1", "BIRWEIT_1", "NUMBABY", "MATAGE"]].isna().all().all()
    # most spells have one episode, some several; the discharge date is on the last only
    spells = apc.groupby(["TOKEN_PERSON_ID", "ADMIDATE"])["EPIORDER"].max().astype(int)
    assert 0.02 < (spells > 1).mean() < 0.2
    assert apc.loc[apc["DISDATE"].notna(), "DISMETH"].notna().all()
    assert (apc["EPISTART"] <= apc["EPIEND"]).all()
    assert (apc["ADMIDATE"] <= apc["EPISTART"]).all()
    assert set(apc["ETHNOS"].unique()) <= set(hes.ETHNOS_CODES)
    assert apc["STARTAGE"].isin(list(hes.STARTAGE_CODES)).all()


def test_dagger_and_asterisk_codes_get_a_fifth_character():
    lut = np.array(["J069", "A390"], dtype=object)
    index = np.array([[0, -1, -1], [1, 0, -1]])
    p = {"dagger_asterisk_pairs": {"A390": "G01X"}}
    new_lut, new_index = hes._dagger_asterisk(lut, index, p)
    rows = [[new_lut[i] if i >= 0 else None for i in row] for row in new_index]
    assert rows == [["J069", None, None], ["A390D", "J069", "G01XA"]]


def _bridge_groups(ctx, out) -> pd.DataFrame:
    bridge = out["bridging.echild"]
    linked = bridge.groupby("PupilMatchingRefAnonymous")["tokenpersonid"].apply(
        lambda s: s.notna().any()
    )
    person = _person_of(ctx, "npd").reindex(linked.index).to_numpy()
    rows = np.searchsorted(ctx.cohort.person_id, person)
    ad = ctx.truth["adoptions"]
    adopted = set(ad.loc[ad["date_adopted"].notna(), "person_id"])
    return pd.DataFrame(
        {
            "linked": linked.to_numpy(),
            "minority": ctx.cohort.ethnicity[rows] != "WBRI",
            "decile": ctx.cohort.deprivation[rows],
            "adopted": np.isin(person, list(adopted)),
            "uasc": ctx.cohort.uasc[rows],
        }
    )


def test_bridging_rates_in_the_published_range_and_lower_for_the_right_groups(clean):
    ctx, out = clean
    bridge = out["bridging.echild"]
    census_pmrs = set(out["npd.spring_census"]["PupilMatchingRefAnonymous"])
    assert set(bridge["PupilMatchingRefAnonymous"]) == census_pmrs  # every pupil is listed
    g = _bridge_groups(ctx, out)
    assert 0.92 <= g["linked"].mean() <= 0.995  # Libuy et al. 2021: 92% to 99% by cohort
    rate = g.groupby("minority")["linked"].mean()
    assert rate[True] < rate[False]
    deprived = g.loc[g["decile"] <= 3, "linked"].mean()
    affluent = g.loc[g["decile"] >= 8, "linked"].mean()
    assert deprived < affluent
    # adopted children and UASC link less often (log-odds -1.2 and -2.0). A shard holds about 70
    # adopted pupils, of whom about 3 are expected unlinked, too few to compare on their own (all
    # linked about 3% of the time), so the test pools the two groups whose identity changed
    changed = g["adopted"] | g["uasc"]
    assert g["adopted"].sum() >= 20 and g["uasc"].sum() >= 20
    assert g.loc[changed, "linked"].mean() < g.loc[~changed, "linked"].mean()
    # match steps: mostly exact at stage 1, codes as LE defines them
    steps = bridge["pds_matchstep"].dropna().astype(int)
    step = np.where(steps < 100, steps // 10, steps // 10_000)
    assert 0.55 < (step == 1).mean() < 0.75 and set(step) <= set(range(1, 9))
    assert bridge["hes_matchstep"].dropna().between(1, 7).all()
    assert bridge.loc[bridge["tokenpersonid"].notna(), "hes_matchstep"].notna().all()
    # now and then many-to-many
    assert bridge.groupby("PupilMatchingRefAnonymous").size().max() >= 2


def test_bridged_tokens_are_the_right_people(clean):
    ctx, out = clean
    bridge = out["bridging.echild"].dropna(subset=["tokenpersonid"])
    pupils = _person_of(ctx, "npd").reindex(bridge["PupilMatchingRefAnonymous"]).to_numpy()
    patients = _person_of(ctx, "hes").reindex(bridge["tokenpersonid"]).to_numpy()
    assert (pupils == patients).all()
    apc_tokens = set(out["hes.apc"]["TOKEN_PERSON_ID"])
    assert np.mean([t in apc_tokens for t in bridge["tokenpersonid"]]) > 0.95


def test_hes_tokens_follow_the_nhs_number(clean):
    """An adopted child is issued a new NHS number from the order (as PDS holds it): hospital
    episodes starting by the order carry the token of the first number (the birth episode
    always), later ones the token of the new number; the bridge takes the token of the
    number in force at the school record it matched."""
    ctx, out = clean
    history = ctx.nhs_history()
    tokens = identifiers.token_person_ids(
        history["nhs_number"].astype(np.int64), npd.salt(ctx, npd.SALT_TOKEN)
    )
    number = history.assign(token=tokens).set_index("token")
    reissued = history.loc[history["person_id"].duplicated()].set_index("person_id")
    assert len(reissued) >= 20
    apc = out["hes.apc"]
    held = number.reindex(apc["TOKEN_PERSON_ID"])
    keyed = held["person_id"].notna().to_numpy()
    assert keyed.mean() > 0.99  # the rest are duplicate HES identities
    person = _person_of(ctx, "hes").reindex(apc["TOKEN_PERSON_ID"]).to_numpy()
    assert (held["person_id"].to_numpy()[keyed] == person[keyed]).all()
    adopted = keyed & np.isin(person, reissued.index)
    order = reissued.loc[person[adopted], "valid_from"].to_numpy()
    start = pd.to_datetime(apc["EPISTART"]).to_numpy()[adopted]
    under_new = held["valid_to"].isna().to_numpy()[adopted]
    assert (under_new == (start > order)).all()
    assert under_new.any() and (~under_new).any()
    births = (apc["EPITYPE"] == "3").to_numpy()[adopted]
    assert births.any() and not under_new[births].any()
    bridge = out["bridging.echild"].dropna(subset=["tokenpersonid"])
    bridged = number.reindex(bridge["tokenpersonid"])
    assert bridged.loc[bridged["person_id"].isin(reissued.index), "valid_to"].isna().any()


def test_match_steps_of_adopted_pupils_follow_their_surname(clean):
    """Stage 1 compares names: a PMR whose school records all follow the adoption order (a
    child adopted before school) carries only the adoptive surname and meets the new PDS
    record under it, so it links at the usual steps (mostly 1); one whose records span the
    order holds two surnames and links mostly at steps 5-6 (surname any)."""
    ctx, out = clean
    census = out["npd.spring_census"]
    person = _person_of(ctx, "npd").reindex(census["PupilMatchingRefAnonymous"]).to_numpy()
    adoptions = ctx.truth["adoptions"].dropna(subset=["date_adopted"])
    order = adoptions.groupby("person_id")["date_adopted"].min()
    adopted = np.isin(person, order.index)
    day = pd.to_datetime(census["census_year"].astype(str) + "-01-15").to_numpy()[adopted]
    after = pd.Series(day >= order.loc[person[adopted]].to_numpy())
    sides = after.groupby(census["PupilMatchingRefAnonymous"].to_numpy()[adopted]).agg(
        ["all", "any"]
    )
    bridge = out["bridging.echild"].drop_duplicates("PupilMatchingRefAnonymous")
    steps = bridge.set_index("PupilMatchingRefAnonymous")["pds_matchstep"].dropna().astype(int)
    step = pd.Series(np.where(steps < 100, steps // 10, steps // 10_000), index=steps.index)
    adoptive_only = step.reindex(sides.index[sides["all"]]).dropna()
    spanning = step.reindex(sides.index[sides["any"] & ~sides["all"]]).dropna()
    assert len(adoptive_only) >= 20 and len(spanning) >= 3
    assert (adoptive_only == 1).mean() > 0.4
    assert spanning.isin([5, 6]).mean() > (adoptive_only.isin([5, 6])).mean()


def test_links_registered_for_every_identifier(clean):
    ctx, out = clean
    links = ctx.links.frame()
    npd_ids = set(links.loc[links["dataset"] == "npd", "source_id"])
    hes_ids = set(links.loc[links["dataset"] == "hes", "source_id"])
    columns = {
        "npd.spring_census": ["PupilMatchingRefAnonymous"],
        "npd.ks2": ["KS2_PupilMatchingRefAnonymous"],
        "npd.ks4": ["KS4_PupilMatchingRefAnonymous"],
        "npd.absence": ["PupilMatchingRefAnonymous"],
        "npd.exclusions": ["PupilMatchingRefAnonymous"],
        "npd.cin": ["CIN_PupilMatchingRefAnonymous", "CIN_LAchildID_Anon"],
        "npd.cla": ["cla_pupilmatchingrefanonymous", "cla_child_id_anon",
                    "cla_child_la_code_anon"],
        "bridging.echild": ["PupilMatchingRefAnonymous"],
    }  # fmt: skip
    for name, cols in columns.items():
        for col in cols:
            values = set(out[name][col].dropna())
            assert values and values <= npd_ids, (name, col)
    for name, col in (("hes.apc", "TOKEN_PERSON_ID"), ("bridging.echild", "tokenpersonid")):
        assert set(out[name][col].dropna()) <= hes_ids
    # PMRs and tokens name the right people: birth month and year agree with the truth
    apc = out["hes.apc"]
    person = _person_of(ctx, "hes").reindex(apc["TOKEN_PERSON_ID"]).to_numpy()
    dob = ctx.cohort.date_of_birth[np.searchsorted(ctx.cohort.person_id, person)]
    mydob = pd.Series(dob).dt.strftime("%m%Y").to_numpy()
    assert (apc["MYDOB"].to_numpy() == mydob).all()


def test_cla_sample_years_and_codes(clean):
    ctx, out = clean
    cla = out["npd.cla"]
    person = _person_of(ctx, "npd").reindex(cla["cla_child_la_code_anon"]).to_numpy()
    dob = pd.Series(ctx.cohort.date_of_birth[np.searchsorted(ctx.cohort.person_id, person)])
    sample = cla["sample_flag"] == 1
    assert sample.any() and (dob[sample.to_numpy()].dt.day % 3 == 0).all()
    assert (cla["poc_start"] <= cla["date_epi_comm"]).all()


def test_key_stage_and_absence_tables(clean):
    ctx, out = clean
    ks2 = out["npd.ks2"]
    old = ks2["KS2_ACADYR"].str[5:].astype(int) < 2016
    assert ks2.loc[old, "KS2_READLEV"].notna().all() and ks2.loc[old, "KS2_READMRK"].isna().all()
    new = ks2[~old]
    assert new["KS2_READOUTCOME"].notna().all()
    expected = new["KS2_READOUTCOME"].astype(int).to_numpy() >= 100
    assert (new["KS2_READEXP"].astype(int).to_numpy() == expected).all()
    assert new["KS2_READMRK"].between(0, 50).all()
    level4 = ks2.loc[old, "KS2_READLEV"].isin(["4", "5", "6"]).mean()
    assert 0.8 < level4 < 0.95
    ks4 = out["npd.ks4"]
    year = ks4["KS4_ACADYR"].str[5:].astype(int)
    assert ks4.loc[year >= 2017, "KS4_LEVEL2_EM_94"].notna().all()
    assert ks4.loc[year < 2016, "KS4_ATT8"].isna().all()
    ab = out["npd.absence"]
    for term in ("Autumn", "Spring", "Summer", "Summer6th"):
        overall = ab[f"AuthorisedAbsence_{term}"] + ab[f"UnauthorisedAbsence_{term}"]
        assert (overall.dropna() == ab[f"OverallAbsence_{term}"].dropna()).all()
        reasons = ab[f"TermlyReasonI_{term}"] + ab[f"TermlyReasonM_{term}"]
        assert (reasons.dropna() <= ab[f"AuthorisedAbsence_{term}"].dropna()).all()
    truth = ctx.truth["absence"]
    truth = truth[truth["academic_year"] >= 2013]
    recent = ab[ab["AcademicYear"].str[5:].astype(int) >= 2013]
    sessions = sum(recent[f"SessionsPossible_{t}"].fillna(0).sum() for t in npd._TERMS)
    assert sessions == truth["sessions_possible"].sum()


def test_same_input_same_output(base_ctx, clean):
    _, first = clean
    _, again = _record(base_ctx, "clean")
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])


def _figures_tool():
    """tools/research_figures.py, which measures the figures docs/research_extracts.md quotes."""
    path = Path(__file__).resolve().parents[1] / "tools" / "research_figures.py"
    spec = importlib.util.spec_from_file_location("research_figures", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_figures_tool_measures_every_section_of_the_doc_on_a_small_shard():
    tool = _figures_tool()
    f = tool.compute(seed=3, children=3000, repeats=1)
    text = tool.markdown(f)
    for heading in ("Rows per table", "PMRs in the social-care modules", "Adoption",
                    "Choices", "HES admitted patient care", "The bridging file", "Anomalies",
                    "Performance"):  # fmt: skip
        assert f"### {heading}" in text, heading
    assert set(f["rows"]) == set(BY_NAME) and min(f["rows"].values()) > 0
    for name in BY_NAME:
        assert f"`{name}`" in text
    assert f["rows_realistic"]["hes.apc"] > f["rows"]["hes.apc"]  # duplicated episodes
    shares = [f["pmr"]["cin"], f["pmr"]["cla"], *f["pmr"]["cin_by_age"].values(),
              f["census"]["eal"], f["census"]["eal_recent"], f["bridging"]["step1"],
              *(r for _, rates in f["bridging"]["groups"] for r, n in rates if n)]  # fmt: skip
    assert all(0 <= s <= 100 for s in shares), shares
    assert f["pmr"]["cin_by_age"]["0-1"] == 0 < f["pmr"]["cin_by_age"]["11-15"]
    groups = dict(f["bridging"]["groups"])
    assert 90 < groups["all pupils"][0][0] < 100
    assert groups["all pupils"][0][1] == f["bridging"]["pupils"] > 0
    assert 0 < f["hes"]["spells"] <= f["hes"]["episodes"] == f["rows"]["hes.apc"]
    assert len(f["anomalies"]) == len(tool.ANOMALIES) and sum(map(sum, f["anomalies"])) > 0
    assert f["unlisted_anomalies"] == []  # the doc's anomaly table lists every logged type
    assert text.count("\n| `") == len(BY_NAME) + len(tool.ANOMALIES)
    assert len(f["cpu"]) == 1 and f["cpu"][0] > 0
    doc = (Path(__file__).resolve().parents[1] / "docs" / "research_extracts.md").read_text()
    assert "python tools/research_figures.py" in doc


@pytest.mark.parametrize(
    "argv", [["--shard", "1"], ["--children", "0"], ["--repeats", "0"], ["--seed", "-1"]]
)
def test_figures_tool_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        _figures_tool().main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err

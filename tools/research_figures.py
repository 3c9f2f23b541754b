"""Measure the figures ``docs/research_extracts.md`` quotes, on one shard, as Markdown to paste.

Usage::

    python tools/research_figures.py                   # the doc's shard: seed 3, 20,000 people
    python tools/research_figures.py --seed 5 --children 40000 --shard 1 --repeats 5

The shard's truth is simulated once; the NPD and HES modules then record it at ``clean`` (the
rows, PMR shares, HES counts, link rates, CPU time) and at ``realistic`` (the anomaly counts, read
from the error log). Figures are computed from the extracts as written, as a researcher would:
age from month and year of birth, ethnicity, IDACI decile and year of birth from the pupil's first
spring census record, spells as first episodes. The truth is used only where a figure is about
something the extracts do not hold: which pupils were adopted or UASC (through ``links``), which
HES tokens are duplicate identities (the PDS NHS numbers), and the error log.

Each block is printed under a ``###`` heading naming the part of the doc it replaces; the blocks
keep the doc's layout (tables and sentences).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainkit.config import Config, make_config
from trainkit.datasets import hes, identifiers, npd
from trainkit.datasets.record import ErrorLog, Links, RecordContext
from trainkit.errors import ConfigError
from trainkit.simulate.engine import ShardPlan, plan_shards, record_context

DOC_SEED = 3
DOC_CHILDREN = 20_000
DOC_REPEATS = 3  # clean runs timed; the CPU time is quoted as the range over them

# The doc's rows table: each research table and what one of its rows is.
ROW_IS = {
    "npd.spring_census": "a pupil on a January census",
    "npd.ks2": "a pupil's KS2 result (a few twice)",
    "npd.ks4": "a pupil's KS4 result (some twice)",
    "npd.absence": "a pupil at a school in an academic year",
    "npd.exclusions": "a suspension or permanent exclusion",
    "npd.cin": "a referral in a collection year it is open",
    "npd.cla": "a looked-after episode",
    "hes.apc": "a consultant episode",
    "bridging.echild": "a PMR-token pair, or an unlinked PMR",
}

# Age bands at 31 March for the CIN PMR shares: (label, first age, last age).
CIN_AGE_BANDS = (("0-1", 0, 1), ("2-4", 2, 4), ("5-10", 5, 10), ("11-15", 11, 15), ("16+", 16, 99))
# Link-rate groups: IDACI deciles and years of birth (inclusive bounds; None = open).
DECILE_BANDS = (("1-3", 1, 3), ("4-7", 4, 7), ("8-10", 8, 10))
BIRTH_BANDS = (("by 2000", None, 2000), ("2001-2004", 2001, 2004), ("2005-2010", 2005, 2010),
               ("2011 on", 2011, None))  # fmt: skip
RECENT_CENSUSES = 5  # the "recent" EAL share: the last five spring censuses


@dataclass(frozen=True)
class Anomaly:
    """One row of the doc's anomaly table.

    ``params`` are ``(anomaly_* parameter, sub-key or None)``, one per table in ``tables``;
    ``field`` counts the log rows of that field only (an anomaly that changes several fields of
    a record at once); ``times`` is written after the count ("397 x 2").
    """

    error_type: str
    tables: tuple[str, ...]
    what: str
    params: tuple[tuple[str, str | None], ...]
    of: str
    documented: str
    field: str | None = None
    times: str = ""


def _a(error_type, table, what, param, of, documented, **kw) -> Anomaly:
    return Anomaly(error_type, (table,), what, ((param, None),), of, documented, **kw)


C, CIN_T, CLA_T, APC = "npd.spring_census", "npd.cin", "npd.cla", "hes.apc"
ANOMALIES = (
    _a("ethnicity_full_label", C, "census: EthnicGroupMajor ('Indian (Asian or Asian British)')",
       "census_ethnicity_full_label", " of LA-years", "HT 02_npd_demographic_modals.r"),
    _a("ethnicity_minor_code", C, "census: EthnicGroupMajor ('AIND')",
       "census_ethnicity_minor_code", " of LA-years", "HT (same)"),
    _a("gender_unknown_code", C, "census: Gender 0/9", "census_gender_unknown", "", "HT (same)"),
    _a("sen_lowercase_code", C, "census: SENprovision 'e'", "census_sen_lowercase", " of E",
       "HT scripts"),
    Anomaly("duplicate_ks_record", ("npd.ks2", "npd.ks4"), "KS2, KS4: second record, NATRES 0",
            (("ks_duplicate_record", "ks2"), ("ks_duplicate_record", "ks4")), "",
            "ECHILD pipelines (collateEduKSData)"),
    _a("need_code_unmapped", CIN_T, "CIN: PrimaryNeedCode 'UNMAPPEDNEEDCODE'",
       "cin_primary_need_unmapped", "", "CC 01_cin.R step 10"),
    _a("need_code_not_stated", CIN_T, "CIN: PrimaryNeedCode 'N0'/'NO'",
       "cin_primary_need_not_stated", "", "CC step 10"),
    _a("need_code_legacy_A", CIN_T, "CIN: PrimaryNeedCode A2-A5", "cin_primary_need_old_code", "",
       "CC step 10"),
    _a("code_stray_whitespace", CIN_T, "CIN: PrimaryNeedCode, ReasonForClosure",
       "cin_code_whitespace", "", "CC steps 7 and 10"),
    _a("date_before_1930", CIN_T, "CIN: referral or closure date 1900/1901",
       "cin_date_before_1930", "", "CC step 3"),
    _a("referral_after_closure", CIN_T, "CIN: referral date after closure",
       "cin_referral_after_closure", "", "CC step 4"),
    _a("ethnicity_invalid_code", CIN_T, "CIN: INVA, MISS, 'N/A '", "cin_ethnicity_invalid", "",
       "CC step 8"),
    _a("gender_unknown_code", CIN_T, "CIN: Gender 0/9", "cin_gender_unknown", "", "CC step 9"),
    _a("referral_source_invalid", CIN_T, "CIN: ReferralSource 'PR'", "cin_referral_source_pr",
       "", "CC step 14"),
    _a("rec_sentinel_-10", CLA_T, "CLA: rec '-10' and a placeholder ceased date",
       "cla_rec_sentinel", " of open episodes", "CC 02_cla.R step 2", field="rec"),
    _a("code_trailing_space", CLA_T, "CLA: reason_for_new_episode 'P '", "cla_rne_trailing_space",
       " of P", "CC 02_cla.R step 4"),
    _a("null_date_1800", APC, "HES: EPIEND, DISDATE 1800-01-01 / 1801-01-01", "hes_null_date",
       " each", "HT clean_hes_dates()"),
    _a("admidate_after_disdate", APC, "HES: ADMIDATE > DISDATE", "hes_admidate_after_disdate", "",
       "HT clean_hes_dates()"),
    _a("epistart_after_epiend", APC, "HES: EPISTART > EPIEND", "hes_epistart_after_epiend", "",
       "HT clean_hes_dates()"),
    _a("duplicate_episode", APC, "HES: the whole episode twice", "hes_duplicate_episode", "",
       "HT 01b (drops duplicated rows)"),
    _a("gestat_99_not_known", APC, "HES: GESTAT_1 = 99", "hes_gestat_missing", " of births",
       "HT 01b"),
    _a("birweit_9999_not_known", APC, "HES: BIRWEIT_1 = 9999", "hes_birweit_missing",
       " of births", "HT 01b"),
    _a("numbaby_x_not_known", APC, "HES: NUMBABY and BIRORDR_1 'X'", "hes_numbaby_unknown",
       " of births", "HT 01b", field="NUMBABY", times=" x 2"),
    _a("mydob_leading_zero_lost", APC, "HES: MYDOB of 5 characters", "hes_mydob_short",
       " (Jan-Sep births)", "HT 01b"),
    _a("ethnos_not_known", APC, "HES: ETHNOS X/Z though known", "hes_ethnos_not_known",
       "", "HES completeness (SY, data dictionary)"),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Recording the shard
# --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One recording of the shard: the context it ran in, its tables and its CPU seconds."""

    ctx: RecordContext
    tables: dict[str, pd.DataFrame]
    cpu: float


def shard_plan(seed: int, children: int, shard: int, shard_size: int) -> tuple[Config, ShardPlan]:
    """The config of the run and the plan of its shard ``shard`` (ConfigError if either is bad)."""
    cfg = make_config(
        {"children": children, "seed": seed, "shard_size": shard_size, "messiness": "clean"}
    )
    plans = plan_shards(cfg)
    if not 0 <= shard < len(plans):
        raise ConfigError(
            f"--shard must be between 0 and {len(plans) - 1} (a run of {children:,} people "
            f"in shards of {shard_size:,} has {len(plans)}), got {shard}"
        )
    return cfg, plans[shard]


def record(base: RecordContext, messiness: str) -> Recorded:
    """Record the NPD and HES extracts of the shard at ``messiness`` in a fresh context.

    The PDS NHS-number history is built before the clock starts: in a run the identity module
    builds it, and the research modules only read it.
    """
    ctx = dataclasses.replace(base, messiness=messiness, errors=ErrorLog(), links=Links())
    ctx.nhs_history()
    start = time.process_time()
    tables = {**npd.record(ctx), **hes.record(ctx)}
    return Recorded(ctx, tables, time.process_time() - start)


# --------------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------------


def _share(mask: Any) -> float:
    """Percentage of True in ``mask`` (NaN when empty)."""
    mask = np.asarray(mask, dtype=bool)
    return float(100 * mask.mean()) if mask.size else float("nan")


def _person_of(ctx: RecordContext, dataset: str) -> pd.Series:
    """True person of each identifier value registered in ``dataset`` (the truth's links)."""
    links = ctx.links.frame()
    links = links[links["dataset"] == dataset].drop_duplicates("source_id")
    return links.set_index("source_id")["person_id"]


def _in_band(values: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    lo = -(10**9) if lo is None else lo
    hi = 10**9 if hi is None else hi
    return (values >= lo) & (values <= hi)


def pmr_figures(ctx: RecordContext, out: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Shares of CIN records (overall, unborn, by age at 31 March) and CLA episodes with a PMR."""
    cin = out["npd.cin"]
    has = cin["CIN_PupilMatchingRefAnonymous"].notna().to_numpy()
    year_end = cin["CIN_ACADYR"].str[5:].astype(int).to_numpy()
    yob = cin["CIN_YearOfBirth"].to_numpy(dtype=np.float64, na_value=np.nan)
    mob = cin["CIN_MonthOfBirth"].to_numpy(dtype=np.float64, na_value=np.nan)
    unborn = np.isnan(yob)
    age = year_end - yob - (mob > 3)  # completed years on 31 March, from month and year
    by_age = {
        label: _share(has[~unborn & _in_band(age, lo, hi)]) for label, lo, hi in CIN_AGE_BANDS
    }
    cla = out["npd.cla"]
    first = pd.Timestamp(npd.research_parameters(ctx)["cla_pmr_first_date"]).date()
    ceased = cla["date_epi_ceased"]
    carried = (ceased.isna() | (ceased >= first)).to_numpy(dtype=bool)
    return {
        "cin_records": len(cin),
        "cin": _share(has),
        "cin_unborn": _share(has[unborn]),
        "cin_by_age": by_age,
        "cla_from": first,
        "cla_episodes": int(carried.sum()),
        "cla": _share(cla["cla_pupilmatchingrefanonymous"].notna().to_numpy()[carried]),
    }


def hes_figures(ctx: RecordContext, out: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Spells and episodes; children with episodes under a duplicate token (one PDS does not
    hold: a token not keyed by any of the shard's NHS numbers)."""
    apc = out["hes.apc"]
    history = ctx.nhs_history()
    number_tokens = identifiers.token_person_ids(
        history["nhs_number"].to_numpy(dtype=np.int64), npd.salt(ctx, npd.SALT_TOKEN)
    )
    duplicate = ~apc["TOKEN_PERSON_ID"].isin(set(number_tokens)).to_numpy()
    people = _person_of(ctx, "hes").reindex(apc["TOKEN_PERSON_ID"].to_numpy()[duplicate])
    n_dup = int(people.nunique())
    return {
        "episodes": len(apc),
        "spells": int((apc["EPIORDER"] == "1").sum()),
        "duplicate_children": n_dup,
        "duplicate_share": 100 * n_dup / len(ctx.cohort),
    }


def census_figures(out: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """EAL share of census records, over all years and in the last censuses."""
    census = out["npd.spring_census"]
    year = census["census_year"].to_numpy(dtype=np.int64)
    eal = (census["LanguageGroupMajor"] == "2_OTH").to_numpy(dtype=bool)
    last = int(year.max())
    recent = year > last - RECENT_CENSUSES
    return {
        "eal": _share(eal),
        "eal_recent": _share(eal[recent]),
        "recent_years": (int(year[recent].min()), last),
    }


def bridging_figures(ctx: RecordContext, out: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Link rates per pupil (PMR) by group, and the share of PDS matches at step 1."""
    bridge = out["bridging.echild"]
    pmr = bridge["PupilMatchingRefAnonymous"].to_numpy(dtype=object)
    linked = pd.Series(bridge["tokenpersonid"].notna().to_numpy(dtype=bool)).groupby(pmr).any()
    census = out["npd.spring_census"].sort_values("census_year", kind="stable")
    first = census.drop_duplicates("PupilMatchingRefAnonymous").set_index(
        "PupilMatchingRefAnonymous"
    )
    first = first.reindex(linked.index)
    is_linked = linked.to_numpy(dtype=bool)
    wbri = (first["EthnicGroupMinor"] == "WBRI").to_numpy(dtype=bool, na_value=False)
    decile = first["IDACI_Decile"].to_numpy(dtype=np.float64, na_value=np.nan)
    yob = first["YearOfBirth"].to_numpy(dtype=np.float64, na_value=np.nan)
    person = _person_of(ctx, "npd").reindex(linked.index).to_numpy(dtype=np.int64)
    adoptions = ctx.truth["adoptions"]
    adopted = np.isin(person, adoptions.loc[adoptions["date_adopted"].notna(), "person_id"])
    uasc = ctx.cohort.uasc[np.searchsorted(ctx.cohort.person_id, person)].astype(bool)

    def rate(mask: np.ndarray) -> tuple[float, int]:
        return _share(is_linked[mask]), int(mask.sum())

    groups = [
        ("all pupils", [rate(np.ones_like(is_linked))]),
        ("White British / other ethnic groups", [rate(wbri), rate(~wbri)]),
        ("deprivation deciles " + " / ".join(b[0] for b in DECILE_BANDS),
         [rate(_in_band(decile, lo, hi)) for _, lo, hi in DECILE_BANDS]),
        ("adopted / not adopted", [rate(adopted), rate(~adopted)]),
        ("UASC / not UASC", [rate(uasc), rate(~uasc)]),
        ("born " + " / ".join(b[0] for b in BIRTH_BANDS),
         [rate(_in_band(yob, lo, hi)) for _, lo, hi in BIRTH_BANDS]),
    ]  # fmt: skip
    steps = bridge.dropna(subset=["pds_matchstep"]).drop_duplicates("PupilMatchingRefAnonymous")
    code = steps["pds_matchstep"].to_numpy(dtype=np.int64)
    step = np.where(code < 100, code // 10, code // 10_000)
    return {"pupils": int(linked.size), "groups": groups, "step1": _share(step == 1)}


def anomaly_counts(ctx: RecordContext) -> tuple[list[list[int]], list[str]]:
    """Logged anomalies of each row of ``ANOMALIES``, per table of the row; and the error types
    logged that no row lists (``table: error_type``; the doc's table should have none)."""
    log = ctx.errors.frame()
    paths = {t.name: t.path for t in npd.TABLES + hes.TABLES}
    key = log["file"].astype(str) + "|" + log["error_type"].astype(str)
    by_file_type = key.value_counts()
    by_field = (key + "|" + log["field"].astype(str)).value_counts()
    counts = []
    for a in ANOMALIES:
        row = []
        for table in a.tables:
            k = f"{paths[table]}|{a.error_type}"
            found = by_field.get(f"{k}|{a.field}", 0) if a.field else by_file_type.get(k, 0)
            row.append(int(found))
        counts.append(row)
    listed = {f"{paths[t]}|{a.error_type}" for a in ANOMALIES for t in a.tables}
    unlisted = sorted(k.replace("|", ": ") for k in set(by_file_type.index) - listed)
    return counts, unlisted


def compute(
    seed: int = DOC_SEED,
    children: int = DOC_CHILDREN,
    shard: int = 0,
    shard_size: int | None = None,
    repeats: int = DOC_REPEATS,
) -> dict[str, Any]:
    """Every figure the doc quotes, for one shard (``ConfigError`` on a bad argument)."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    size = Config().shard_size if shard_size is None else shard_size
    cfg, plan = shard_plan(seed, children, shard, size)
    base = record_context(cfg, plan)  # the shard's truth, simulated once
    runs = [record(base, "clean") for _ in range(repeats)]
    clean = runs[0]
    realistic = record(base, "realistic")
    p = npd.research_parameters(clean.ctx)
    counts, unlisted = anomaly_counts(realistic.ctx)
    return {
        "seed": seed,
        "children": children,
        "shard": shard,
        "shard_size": cfg.shard_size,
        "people": len(base.cohort),
        "arrivals": plan.n_arrivals,
        "born": (cfg.birth_start, cfg.last_birth),
        "rows": {name: len(frame) for name, frame in clean.tables.items()},
        "rows_realistic": {name: len(frame) for name, frame in realistic.tables.items()},
        "pmr": pmr_figures(clean.ctx, clean.tables),
        "hes": hes_figures(clean.ctx, clean.tables),
        "census": census_figures(clean.tables),
        "bridging": bridging_figures(clean.ctx, clean.tables),
        "anomalies": counts,
        "unlisted_anomalies": unlisted,
        "rates": [[_rate_text(p, a, i) for i in range(len(a.tables))] for a in ANOMALIES],
        "cpu": [r.cpu for r in runs],
    }


def _pct(value: float, digits: int = 0) -> str:
    return "n/a" if np.isnan(value) else f"{value:.{digits}f}%"


def _rate_text(p: dict[str, Any], a: Anomaly, i: int) -> str:
    name, sub = a.params[i]
    value = p[f"anomaly_{name}"]
    levels = [value[m][sub] if sub else value[m] for m in ("realistic", "heavy")]
    return " / ".join(f"{100 * v:g}%" for v in levels)


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _month(d) -> str:
    return d.strftime("%B %Y")


def markdown(f: dict[str, Any]) -> str:
    """The figures as the doc's blocks, each under a ``###`` heading naming its place."""
    out: list[str] = []
    add = out.append
    n = f["people"]
    shard = f"the {n:,} shard"
    shard_words = "first shard" if f["shard"] == 0 else f"shard {f['shard']}"
    add(
        f"<!-- python tools/research_figures.py --seed {f['seed']} --children {f['children']} "
        f"--shard {f['shard']} --shard-size {f['shard_size']} --repeats {len(f['cpu'])} -->"
    )
    add("")
    add("### Rows per table (top of the doc)")
    add("")
    add(f"| file | table | a row is | rows per {n:,}-person shard |")
    add("|---|---|---|---|")
    tables = {t.name: t for t in npd.TABLES + hes.TABLES}
    for name, what in ROW_IS.items():
        add(f"| `{tables[name].path}` | `{name}` | {what} | {f['rows'][name]:,} |")
    total = sum(f["rows"].values())
    extra = sum(f["rows_realistic"].values()) - total
    start, end = f["born"]
    add("")
    add(
        f"(Seed {f['seed']}, `--messiness clean`, {shard_words} of {n:,} people: "
        f"{n - f['arrivals']:,} born {_month(start)} to {_month(end)} and {f['arrivals']:,} "
        f"arrivals; about {round(total, -3):,} records. At `realistic` about "
        f"{round(extra, -1):,} more rows come from duplicated records.)"
    )
    p = f["pmr"]
    ages = ", ".join(f"{_pct(v)} at {k}" for k, v in p["cin_by_age"].items())
    add("")
    add("### PMRs in the social-care modules (the result sentence)")
    add("")
    add(
        f"Result on {shard}: **{_pct(p['cin'])} of CIN records have a PMR** (of "
        f"{p['cin_records']:,}); by age at 31 March (from the records' month and year of "
        f"birth): {ages}, and {_pct(p['cin_unborn'])} of the records of unborn children. "
        f"CLA: {_pct(p['cla'])} of the {p['cla_episodes']:,} episodes ending from "
        f"{_month(p['cla_from'])} on or still open."
    )
    h = f["hes"]
    add("")
    add("### Adoption (duplicate HES identities)")
    add("")
    add(
        f"On {shard} {h['duplicate_children']:,} children ({_pct(h['duplicate_share'], 2)}) "
        "have some admissions under a duplicate token."
    )
    c = f["census"]
    lo, hi = c["recent_years"]
    add("")
    add("### Choices (first language)")
    add("")
    add(
        f"On {shard} it gives {_pct(c['eal'])} of census records over the years and "
        f"{_pct(c['eal_recent'])} in {lo}-{hi}."
    )
    add("")
    add("### HES admitted patient care (spells and episodes)")
    add("")
    add(f"On {n:,} people: {h['spells']:,} spells, {h['episodes']:,} episodes.")
    b = f["bridging"]
    add("")
    add("### The bridging file (step 1 share and link rates)")
    add("")
    add(f"{_pct(b['step1'])} of links are at step 1.")
    add("")
    add(
        f"Link rates on {shard} ({b['pupils']:,} pupils, i.e. PMRs; `--messiness clean`; "
        "ethnicity, IDACI decile and year of birth from each pupil's first census record, "
        "adopted and UASC from the truth):"
    )
    add("")
    add("| group | linked |")
    add("|---|---|")
    for label, rates in b["groups"]:
        text = " / ".join(_pct(r, 1) for r, _ in rates)
        if label.startswith("adopted"):
            text += f" ({rates[0][1]:,} adopted)"
        elif label.startswith("UASC"):
            text += f" ({rates[0][1]:,} UASC)"
        add(f"| {label} | {text} |")
    add("")
    add("### Anomalies (counts at `realistic`)")
    add("")
    add("| error_type | table: field | rate (realistic / heavy) | documented in | count |")
    add("|---|---|---|---|---|")
    for a, rates, counts in zip(ANOMALIES, f["rates"], f["anomalies"], strict=True):
        rate = "; ".join(rates) + a.of
        count = "; ".join(f"{k:,}{a.times}" for k in counts)
        add(f"| `{a.error_type}` | {a.what} | {rate} | {a.documented} | {count} |")
    if f["unlisted_anomalies"]:
        add("")
        add("Logged but not in this table: " + ", ".join(f["unlisted_anomalies"]))
    cpu = f["cpu"]
    per_second = total / statistics.median(cpu)
    add("")
    add("### Performance")
    add("")
    add(
        f"About {min(cpu):.2f}-{max(cpu):.2f} s of CPU for both modules on a {n:,}-person shard "
        f"(about {round(total, -3):,} records, so roughly {round(per_second, -4):,.0f} records "
        f"per second), measured with `time.process_time` ({len(cpu)} clean recordings)."
    )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the figures of docs/research_extracts.md on one shard and print "
        "them as Markdown."
    )
    parser.add_argument("--seed", type=int, default=DOC_SEED, help="run seed (default 3)")
    parser.add_argument("--children", type=int, default=DOC_CHILDREN,
                        help="people in the run (default 20,000)")  # fmt: skip
    parser.add_argument("--shard", type=int, default=0, help="shard index (default 0, the first)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="people per shard (default: the generator's, 20,000)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=DOC_REPEATS,
                        help="clean recordings timed for the CPU figure (default 3)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        figures = compute(args.seed, args.children, args.shard, args.shard_size, args.repeats)
    except ConfigError as e:
        parser.error(str(e))
    sys.stdout.write(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

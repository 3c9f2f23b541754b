"""Tests for trainkit.calibrate: a hand-built dataset whose every figure is known exactly.

The fake run has 10,000 children aged 0-17 at 31 March 2024 (10,120 at 31 March 2023), and each
table is assembled from blocks whose contribution to each figure is stated beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainkit.calibrate import (
    CalibrationReport,
    add_calibrate_parser,
    calibrate,
    load_targets,
    run_calibrate,
)
from trainkit.errors import DataError

D = dt.date
CENSUS = D(2024, 3, 31)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# person_id ranges of the groups of people
RESIDENT = np.arange(1, 9966)  # 9,965 born 2010-01-01, in both years
EMIGRATED = np.arange(20001, 20006)  # 5 emigrated on 31 March 2024 (still counted that day)
UASC = np.arange(30001, 30021)  # 20 UASC arrived 1 June 2023 (2024 only)
NEWBORN = np.arange(40001, 40011)  # 10 born on 31 March 2024 (aged 0 that day)
# 100 born 2005-06-01: 17 at 31 March 2023, 18 at 31 March 2024
TURNING_18 = np.arange(50001, 50101)
DIED = np.arange(60001, 60051)  # 50 born 2012, died 1 December 2023 (2023 only)
TOO_OLD = np.arange(70001, 70031)  # 30 born 2005-03-31: 18 on 31 March 2023, in neither year

POP_2024 = len(RESIDENT) + len(EMIGRATED) + len(UASC) + len(NEWBORN)
POP_2023 = len(RESIDENT) + len(EMIGRATED) + len(TURNING_18) + len(DIED)


def _dates(values) -> pa.Array:
    return pa.array(list(values), pa.date32())


def _write(folder: Path, name: str, columns: dict[str, pa.Array]) -> None:
    pq.write_table(pa.table(columns), folder / "truth" / f"{name}.parquet")


def _persons() -> dict[str, pa.Array]:
    groups = [
        # ids, dob, arrived, death, emigrated, follow_up_end, uasc
        (RESIDENT, D(2010, 1, 1), None, None, None, CENSUS, False),
        (EMIGRATED, D(2010, 1, 1), None, None, CENSUS, CENSUS, False),
        (UASC, D(2007, 5, 1), D(2023, 6, 1), None, None, CENSUS, True),
        (NEWBORN, CENSUS, None, None, None, CENSUS, False),
        (TURNING_18, D(2005, 6, 1), None, None, None, CENSUS, False),
        (DIED, D(2012, 1, 1), None, D(2023, 12, 1), None, D(2023, 12, 1), False),
        (TOO_OLD, D(2005, 3, 31), None, None, None, CENSUS, False),
    ]
    ids = np.concatenate([g[0] for g in groups])
    sex = np.full(ids.size, "F", dtype=object)
    male = np.isin(ids, np.concatenate([UASC, RESIDENT[4000:4033]]))  # 6 UASC + 33 others in care
    sex[male] = "M"
    col = {"person_id": pa.array(ids, pa.int64()), "sex": pa.array(sex, pa.string())}
    for i, name in enumerate(
        ["date_of_birth", "date_arrived", "date_of_death", "date_emigrated", "follow_up_end"], 1
    ):
        col[name] = _dates([v for g in groups for v in [g[i]] * len(g[0])])
    col["uasc"] = pa.array([g[6] for g in groups for _ in g[0]], pa.bool_())
    col["ethnicity"] = pa.array(["WBRI"] * ids.size)
    return col


def _block(ids, **values) -> dict[str, list]:
    n = len(ids)
    out = {"person_id": list(map(int, ids))}
    for key, value in values.items():
        out[key] = list(value) if isinstance(value, list | np.ndarray) else [value] * n
    return out


def _concat(blocks: list[dict[str, list]]) -> dict[str, list]:
    return {k: [v for b in blocks for v in b[k]] for k in blocks[0]}


def _referrals(extra_in_need: int = 0) -> dict[str, pa.Array]:
    def flags(n, first):
        return [i < first for i in range(n)]

    blocks = [
        # 330 in the year, in need, open: children in need at 31 March 2024
        _block(RESIDENT[:330], referral_date=D(2023, 6, 1), closure_date=None, in_need=True,
               nfa=False),
        # 180 in the year, closed, not in need; 32 NFA
        _block(RESIDENT[330:510], referral_date=D(2023, 5, 1), closure_date=D(2023, 7, 1),
               in_need=False, nfa=flags(180, 32)),
        # earlier referrals to the same LA within 12 months: 74 + 40 re-referrals in the year
        _block(np.r_[RESIDENT[:69], RESIDENT[330:370]], referral_date=D(2022, 9, 1),
               closure_date=D(2022, 10, 1), in_need=True, nfa=False),
        # 365 days before 1 June 2023: still within 12 months
        _block(RESIDENT[69:74], referral_date=D(2022, 6, 1), closure_date=D(2022, 7, 1),
               in_need=True, nfa=False),
        # 366 days before: not a re-referral
        _block(RESIDENT[74:79], referral_date=D(2022, 5, 31), closure_date=D(2022, 7, 1),
               in_need=True, nfa=False),
        # within 12 months but to another LA: not a re-referral (the DfE links within an LA)
        _block(RESIDENT[79:85], referral_date=D(2022, 9, 1), closure_date=D(2022, 10, 1),
               in_need=True, nfa=False, la_code=203),
        # a second open referral of RESIDENT[0]: still one child in need; also open in March 2023
        _block(RESIDENT[:1], referral_date=D(2022, 1, 1), closure_date=None, in_need=True,
               nfa=False),
        # 337 closed ON 31 March 2024: in need at 31 March 2023, not at 31 March 2024
        _block(RESIDENT[1000:1337], referral_date=D(2022, 2, 1), closure_date=CENSUS, in_need=True,
               nfa=False),
        # extra children in need at 31 March 2024 (none by default), referred before the year
        _block(RESIDENT[5000:5000 + extra_in_need], referral_date=D(2022, 6, 1),
               closure_date=None, in_need=True, nfa=False),
        # 20 open, their assessment (to find them not in need) unfinished: counted at both dates,
        # as the DfE counts every referral open at 31 March
        _block(RESIDENT[2000:2020], referral_date=D(2022, 5, 1), closure_date=None, in_need=False,
               nfa=False),
        # a child open in two LAs at both dates: counted in each, as the DfE adds up the LAs
        _block(RESIDENT[6000:6001], referral_date=D(2022, 3, 1), closure_date=None, in_need=True,
               nfa=False),
        _block(RESIDENT[6000:6001], referral_date=D(2022, 4, 1), closure_date=None, in_need=True,
               nfa=False, la_code=203),
    ]  # fmt: skip
    rows = _concat([{"la_code": [202] * len(b["person_id"]), **b} for b in blocks])
    n = len(rows["person_id"])
    return {
        "referral_id": pa.array(np.arange(n), pa.int64()),
        "person_id": pa.array(rows["person_id"], pa.int64()),
        "la_code": pa.array(rows["la_code"], pa.int16()),
        "referral_date": _dates(rows["referral_date"]),
        "nfa": pa.array(rows["nfa"], pa.bool_()),
        "assessed": pa.array([not x for x in rows["nfa"]], pa.bool_()),
        "in_need": pa.array(rows["in_need"], pa.bool_()),
        "closure_date": _dates(rows["closure_date"]),
    }


def _cp_plans() -> dict[str, pa.Array]:
    blocks = [
        # 41 open at 31 March 2024, starting in the year
        _block(RESIDENT[3000:3041], start_date=D(2023, 8, 1), end_date=None),
        # 10 more starting (and ending) in the year: 51 starts
        _block(RESIDENT[3100:3110], start_date=D(2023, 5, 1), end_date=D(2023, 11, 1)),
        # earlier plans of 13 of the open ones: 13 of 51 starts are second or subsequent
        _block(RESIDENT[3000:3013], start_date=D(2021, 1, 1), end_date=D(2021, 6, 1)),
        # a third plan for RESIDENT[3000] (still one subsequent start in the year)
        _block(RESIDENT[3000:3001], start_date=D(2020, 1, 1), end_date=D(2020, 6, 1)),
        # 5 ending ON 31 March 2024: not on a plan that day, not starting in the year
        _block(RESIDENT[3200:3205], start_date=D(2022, 1, 1), end_date=CENSUS),
    ]
    rows = _concat(blocks)
    n = len(rows["person_id"])
    return {
        "person_id": pa.array(rows["person_id"], pa.int64()),
        "referral_id": pa.array(np.arange(n), pa.int64()),
        "la_code": pa.array([202] * n, pa.int16()),
        "start_date": _dates(rows["start_date"]),
        "end_date": _dates(rows["end_date"]),
        "category": pa.array(["NEG"] * n),
    }


# ages on starting of 20 of the 27 children starting care in the year; with starters[0] (0) and
# the 6 UASC (16): under 1: 4, 1-4: 4, 5-9: 4, 10-15: 7, 16+: 8
STARTING_AGES = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 15, 16, 17]


def _care_periods(open_since_2021: int = 41) -> dict[str, pa.Array]:
    starters = RESIDENT[4100:4121]  # 21 non-UASC children starting in the year
    blocks = [
        # open since 2021: looked after at both dates (33 of the first 41 are male)
        _block(RESIDENT[4000:4000 + open_since_2021], start_date=D(2021, 1, 1), end_date=None,
               reason_ended=None, uasc=False, age_at_start=8),
        # 6 UASC starting in the year, open at 31 March 2024
        _block(UASC[:6], start_date=D(2023, 9, 1), end_date=None, reason_ended=None, uasc=True,
               age_at_start=16),
        # starters[0]: a period in the year that ends, then another one, still open
        _block(starters[:1], start_date=D(2023, 9, 1), end_date=D(2023, 12, 1),
               reason_ended="E13", uasc=False, age_at_start=0),
        _block(starters[:1], start_date=D(2024, 1, 1), end_date=None, reason_ended=None,
               uasc=False, age_at_start=5),
        # the other 20 starters, open
        _block(starters[1:], start_date=D(2023, 9, 1), end_date=None, reason_ended=None,
               uasc=False, age_at_start=STARTING_AGES),
        # 27 ceasing in the year (3 adopted: E11, E11, E12), looked after at 31 March 2023
        _block(RESIDENT[4200:4227], start_date=D(2020, 1, 1), end_date=D(2023, 10, 1),
               reason_ended=["E11", "E11", "E12"] + ["E4A"] * 24, uasc=False, age_at_start=3),
        # adopted ON 31 March 2023: not looked after that day, not ceasing in the year to 2024
        _block(RESIDENT[4300:4301], start_date=D(2022, 1, 1), end_date=D(2023, 3, 31),
               reason_ended="E11", uasc=False, age_at_start=3),
        # ceasing on 1 April 2023, the first day of the year; looked after at 31 March 2023
        _block(RESIDENT[4301:4302], start_date=D(2022, 1, 1), end_date=D(2023, 4, 1),
               reason_ended="E4A", uasc=False, age_at_start=3),
        # starting ON 31 March 2023: looked after at both dates, not starting in the year
        _block(RESIDENT[4302:4303], start_date=D(2023, 3, 31), end_date=None, reason_ended=None,
               uasc=False, age_at_start=13),
    ]  # fmt: skip
    rows = _concat(blocks)
    n = len(rows["person_id"])
    return {
        "period_id": pa.array(np.arange(n), pa.int64()),
        "person_id": pa.array(rows["person_id"], pa.int64()),
        "la_code": pa.array([202] * n, pa.int16()),
        "start_date": _dates(rows["start_date"]),
        "end_date": _dates(rows["end_date"]),
        "reason_ended": pa.array(rows["reason_ended"], pa.string()),
        "uasc": pa.array(rows["uasc"], pa.bool_()),
        "age_at_start": pa.array(rows["age_at_start"], pa.int8()),
    }


def _pupil_census() -> dict[str, pa.Array]:
    n24, n23 = 1000, 500
    fsm = [i < 246 for i in range(n24)] + [True] * n23  # 24.6% in 2024; all in 2023 (filtered out)
    # 13.6% K and 4.8% E in 2024; all E in 2023 (filtered out)
    sen = ["K"] * 136 + ["E"] * 48 + ["N"] * (n24 - 184) + ["E"] * n23
    return {
        "person_id": pa.array(np.r_[RESIDENT[:n24], RESIDENT[:n23]], pa.int64()),
        "academic_year": pa.array([2024] * n24 + [2023] * n23, pa.int16()),
        "census_date": _dates([D(2024, 1, 18)] * n24 + [D(2023, 1, 19)] * n23),
        "nc_year": pa.array([9] * (n24 + n23), pa.int8()),
        "fsm_eligible": pa.array(fsm, pa.bool_()),
        "sen_provision": pa.array(sen, pa.string()),
    }


def make_run(
    folder: Path,
    *,
    birth_start: str = "2005-01-01",
    open_since_2021: int = 41,
    extra_in_need: int = 0,
    pupils: bool = True,
) -> Path:
    """Write the fake run into ``folder`` (truth tables and manifest) and return it."""
    (folder / "truth").mkdir(parents=True)
    _write(folder, "persons", _persons())
    _write(folder, "referrals", _referrals(extra_in_need))
    _write(folder, "cp_plans", _cp_plans())
    _write(folder, "care_periods", _care_periods(open_since_2021))
    if pupils:
        _write(folder, "pupil_census", _pupil_census())
    config = {"census_date": "2024-03-31", "birth_start": birth_start, "children": 10_220,
              "seed": 7}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"config": config}))
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh run that a test may change."""
    return make_run(tmp_path / "run")


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run for the tests that only read it."""
    return make_run(tmp_path_factory.mktemp("calibrate") / "run")


@pytest.fixture(scope="module")
def report(shared_run: Path) -> CalibrationReport:
    return calibrate(shared_run)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trainkit")
    add_calibrate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["calibrate", *argv])


# (key, simulated numerator, simulated denominator) of every target in the fake run
EXPECTED = [
    ("cin_at_31_march_2024", 352, POP_2024),  # 330 + 20 being assessed + 2 LAs of one child
    ("cp_at_31_march_2024", 41, POP_2024),
    ("cla_at_31_march_2024", 69, POP_2024),
    ("uasc_cla_at_31_march_2024", 6, POP_2024),
    ("referrals_2024", 510, POP_2024),
    ("cp_starts_2024", 51, POP_2024),
    ("cla_starts_2024", 27, POP_2024),
    ("cla_ceased_2024", 29, POP_2024),
    ("adopted_2024", 3, POP_2024),
    ("rereferral_share_2024", 114, 510),
    ("nfa_share_2024", 32, 510),
    ("cp_subsequent_share_2024", 13, 51),
    ("cla_start_age_under_1_2024", 4, 27),
    ("cla_start_age_1_4_2024", 4, 27),
    ("cla_start_age_5_9_2024", 4, 27),
    ("cla_start_age_10_15_2024", 7, 27),
    ("cla_start_age_16_plus_2024", 8, 27),
    ("cla_male_share_2024", 39, 69),
    ("fsm_share_jan_2024", 246, 1000),
    ("sen_support_share_jan_2024", 136, 1000),
    ("ehc_plan_share_jan_2024", 48, 1000),
    ("cin_at_31_march_2023", 360, POP_2023),  # 338 + 20 + 2
    ("cla_at_31_march_2023", 70, POP_2023),
]


# ---------------------------------------------------------------------------------------------
# targets.yaml
# ---------------------------------------------------------------------------------------------


def test_targets_have_sources_and_like_for_like_rates():
    targets = load_targets()
    keys = [t.key for t in targets.targets]
    assert keys == [k for k, _, _ in EXPECTED]
    for t in targets.targets:
        assert t.source and t.numerator_note and t.dfe_denominator, t.key
        if t.kind == "share":
            assert 0 < t.value < 1
        else:
            assert t.population in (12_183_016, 12_059_476)
            assert t.value == pytest.approx(t.count / t.population * 10_000, abs=0.005)
    cin = next(t for t in targets.targets if t.key == "cin_at_31_march_2024")
    assert (cin.count, cin.population, cin.value) == (399_460, 12_183_016, 327.88)
    assert (targets.rate_relative, targets.share_points, targets.standard_errors) == (0.1, 3, 2)


# ---------------------------------------------------------------------------------------------
# The figures
# ---------------------------------------------------------------------------------------------


def test_population_counts_the_right_children(report: CalibrationReport):
    assert POP_2024 == 10_000 and POP_2023 == 10_120
    lines = {line.key: line for line in report.lines}
    assert lines["cla_at_31_march_2024"].denominator == 10_000
    assert lines["cla_at_31_march_2023"].denominator == 10_120


@pytest.mark.parametrize(("key", "numerator", "denominator"), EXPECTED)
def test_each_figure_is_computed_exactly(report: CalibrationReport, key, numerator, denominator):
    line = next(line for line in report.lines if line.key == key)
    assert (line.numerator, line.denominator) == (numerator, denominator)
    if line.kind == "share":
        assert line.simulated == pytest.approx(numerator / denominator)
        assert line.error == pytest.approx((numerator / denominator - line.published) * 100)
    else:
        assert line.simulated == pytest.approx(numerator / denominator * 10_000)
        assert line.error == pytest.approx(line.simulated / line.published - 1)
    assert line.status == "ok"


def test_cla_at_31_march_is_33_per_10k_with_33_children(tmp_path: Path):
    report = calibrate(make_run(tmp_path / "run", open_since_2021=5))  # 5 + 27 + 1 = 33
    line = next(line for line in report.lines if line.key == "cla_at_31_march_2024")
    assert (line.numerator, line.denominator, line.simulated) == (33, 10_000, 33.0)
    assert line.error == pytest.approx(33.0 / 68.56 - 1)
    assert line.status == "OUTSIDE"
    assert not report.ok


def test_an_adopted_child_back_in_care_counts_as_a_new_child(run_dir: Path):
    """The returns know an adopted child who comes back by a new id, so the DfE counts them
    again; the truth does the same once it knows of the adoption order."""
    starter = int(RESIDENT[4100])  # two periods starting in the year, one after the other
    _write(run_dir, "adoptions", {
        "person_id": pa.array([starter, int(RESIDENT[4200])], pa.int64()),
        "date_adopted": _dates([D(2023, 12, 1), None]),  # the second: still under way
    })  # fmt: skip
    lines = {line.key: line for line in calibrate(run_dir).lines}
    assert lines["cla_starts_2024"].numerator == 27 + 1
    assert lines["cla_ceased_2024"].numerator == 29  # one ceasing: before the order
    assert lines["cla_at_31_march_2024"].numerator == 69
    assert lines["cla_male_share_2024"].denominator == 69


def test_tolerance_rule(report: CalibrationReport):
    lines = {line.key: line for line in report.lines}
    # rates: the larger of 10% and two Poisson standard errors of the expected count
    assert lines["cin_at_31_march_2024"].tolerance == pytest.approx(2 / math.sqrt(327.88))
    assert lines["referrals_2024"].tolerance == 0.10  # 2 / sqrt(510) is under 10%
    expected_adopted = 2.45 * 10_000 / 10_000
    assert lines["adopted_2024"].tolerance == pytest.approx(2 / math.sqrt(expected_adopted))
    # shares: the larger of 3 points and two binomial standard errors at the simulated n
    assert lines["rereferral_share_2024"].tolerance == pytest.approx(
        max(3.0, 200 * math.sqrt(0.224 * 0.776 / 510))
    )
    assert lines["fsm_share_jan_2024"].tolerance == pytest.approx(
        max(3.0, 200 * math.sqrt(0.246 * 0.754 / 1000))
    )
    assert lines["fsm_share_jan_2024"].tolerance == 3.0
    assert lines["cla_male_share_2024"].tolerance == pytest.approx(
        200 * math.sqrt(0.57 * 0.43 / 69)
    )


@pytest.mark.parametrize(("extra", "status"), [(12, "ok"), (13, "OUTSIDE")])
def test_tolerance_boundary(tmp_path: Path, extra: int, status: str):
    # 327.88 per 10k x (1 + 2 / sqrt(327.88)) = 364.1: 364 children are within, 365 outside
    report = calibrate(make_run(tmp_path / "run", extra_in_need=extra))
    line = next(line for line in report.lines if line.key == "cin_at_31_march_2024")
    assert line.numerator == 352 + extra
    assert line.status == status


def test_all_ok_report_and_table(report: CalibrationReport):
    assert report.ok
    assert report.skipped == []
    table = report.format().splitlines()
    assert table[0].startswith("Measure")
    assert len(table) == 2 + len(EXPECTED)
    assert all(row.endswith(" ok") for row in table[2:])
    assert len({len(row) for row in table[2:]}) == 1  # fixed width
    assert report.format_notes() == ""
    frame = report.to_frame()
    assert len(frame) == len(EXPECTED)
    assert {"measure", "simulated", "published", "error", "tolerance", "status"} <= set(frame)
    assert set(frame.loc[frame.kind == "share", "error_unit"]) == {"pp"}


def test_assumptions_listed(report: CalibrationReport):
    from trainkit.parameters import load_parameters

    expected = [p.key for p in load_parameters().assumptions()]
    assert [key for key, _ in report.assumptions] == expected
    assert all(text for _, text in report.assumptions)
    text = report.format_assumptions()
    assert text.splitlines()[0] == (
        f"Parameters with no published source (assumptions): {len(expected)}"
    )


def test_chart_is_a_png(shared_run: Path, report: CalibrationReport, tmp_path: Path):
    assert report.chart_path == shared_run / "calibration.png"
    assert report.chart_path.read_bytes()[:8] == PNG_MAGIC
    other = calibrate(shared_run, chart_path=tmp_path / "charts" / "c.png").chart_path
    assert other.read_bytes()[:8] == PNG_MAGIC


def test_missing_pupil_census_skips_those_lines(tmp_path: Path):
    report = calibrate(make_run(tmp_path / "run", pupils=False))
    keys = {line.key for line in report.lines}
    assert "fsm_share_jan_2024" not in keys and "cla_at_31_march_2024" in keys
    assert {k for k, _ in report.skipped} == {
        "fsm_share_jan_2024",
        "sen_support_share_jan_2024",
        "ehc_plan_share_jan_2024",
    }
    assert "no pupil_census table" in report.format_notes()


def test_late_birth_start_marks_partial_lines(tmp_path: Path):
    report = calibrate(make_run(tmp_path / "run", birth_start="2006-04-01"))
    notes = {line.key: line.note for line in report.lines}
    assert notes["cla_at_31_march_2024"] == ""  # children born from 2006-04-01 are all 0-17
    assert "partial" in notes["cla_ceased_2024"]  # those turning 18 in the year are missing
    assert "partial" in notes["cla_at_31_march_2023"]
    assert "partial" in notes["fsm_share_jan_2024"]
    assert any(" * " in row for row in report.format().splitlines())


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_empty_folder_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match=r"trainkit generate --out") as err:
        calibrate(tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(DataError, match="no such folder"):
        calibrate(tmp_path / "nowhere")


def test_missing_table_is_a_data_error(run_dir: Path):
    (run_dir / "truth" / "cp_plans.parquet").unlink()
    with pytest.raises(DataError, match=r"cp_plans\.parquet not found.*trainkit generate"):
        calibrate(run_dir)


def test_missing_column_is_a_data_error(run_dir: Path):
    path = run_dir / "truth" / "referrals.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["la_code"]), path)
    with pytest.raises(DataError, match="no column 'la_code'"):
        calibrate(run_dir)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_all_ok_exits_0(run_dir: Path, capsys):
    assert run_calibrate(_args(str(run_dir))) == 0
    out = capsys.readouterr().out
    assert "Parameters with no published source (assumptions):" in out
    assert f"Chart saved to {run_dir / 'calibration.png'}" in out
    assert "OUTSIDE" not in out


def test_cli_outside_exits_1(tmp_path: Path, capsys):
    run = make_run(tmp_path / "run", open_since_2021=5)
    chart = tmp_path / "chart.png"
    assert run_calibrate(_args(str(run), "--chart", str(chart))) == 1
    out = capsys.readouterr().out
    row = next(r for r in out.splitlines() if r.startswith("Looked after at 31 March 2024"))
    assert row.endswith("OUTSIDE")
    assert f"Chart saved to {chart}" in out
    assert chart.read_bytes()[:8] == PNG_MAGIC


def test_cli_data_error_exits_2(tmp_path: Path, capsys):
    assert run_calibrate(_args(str(tmp_path))) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1


def test_cli_list_parameters(capsys):
    from trainkit.parameters import load_parameters

    assert run_calibrate(_args("--list-parameters")) == 0
    out = capsys.readouterr().out
    params = load_parameters()
    for key in params:
        assert f"{key} = " in out
    assert "assumption: " in out and "source: " in out


# ---------------------------------------------------------------------------------------------
# A real generated run (the session's small dataset from conftest)
# ---------------------------------------------------------------------------------------------


def test_real_run_is_calibrated(small_run: Path, truth, tmp_path: Path):
    report = calibrate(small_run, chart_path=tmp_path / "c.png")
    keys = {line.key for line in report.lines} | {k for k, _ in report.skipped}
    assert keys == {t.key for t in load_targets().targets}
    assert all(line.status in ("ok", "OUTSIDE") for line in report.lines)
    assert report.chart_path.read_bytes()[:8] == PNG_MAGIC
    # children in need at 31 March 2024, recomputed independently with pandas
    people, referrals = truth("persons"), truth("referrals")
    day = pd.Timestamp(CENSUS)
    born = pd.to_datetime(people.date_of_birth)
    start = pd.to_datetime(people.date_arrived).fillna(born)
    age = day.year - born.dt.year - ((born.dt.month * 100 + born.dt.day) > 331)
    alive = (start <= day) & (pd.to_datetime(people.follow_up_end) >= day) & (age <= 17)
    closure = pd.to_datetime(referrals.closure_date)
    open_ = (pd.to_datetime(referrals.referral_date) <= day) & (closure.isna() | (closure > day))
    line = next(line for line in report.lines if line.key == "cin_at_31_march_2024")
    assert line.denominator == int(alive.sum())
    # every referral open at 31 March (assessed or not yet), once per child in each LA
    assert line.numerator == len(referrals.loc[open_, ["person_id", "la_code"]].drop_duplicates())
    # which includes children whose assessment will find them not in need
    assert line.numerator > referrals.person_id[open_ & referrals.in_need].nunique()

"""Compare a generated dataset with the published national figures: ``trainkit calibrate``.

The targets live in ``trainkit/params/targets.yaml``, each with its source. Every rate compares like
with like: the simulated count over the simulated children aged 0-17 at 31 March, against the
published count over the ONS mid-year population of children aged 0-17 (see the file's header).

Each figure counts as the DfE counts the LAs' returns (once per child in each LA, and so on; see
the file's header). ``calibrate(DIR, source="returns")`` (``trainkit calibrate DIR --from
returns``) computes the same figures from the CIN census and SSDA903 returns themselves
(:mod:`trainkit.calibrate_returns`).

Example:
    >>> report = calibrate("data/default")                      # doctest: +SKIP
    >>> print(report.format())                                   # doctest: +SKIP
    >>> report.ok                                                # doctest: +SKIP
    True
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from .datasets.identifiers import child_keys, split_child_keys
from .errors import DataError
from .parameters import load_parameters

__all__ = [
    "CalibrationLine",
    "CalibrationReport",
    "Target",
    "Targets",
    "add_calibrate_parser",
    "calibrate",
    "load_targets",
    "run_calibrate",
]

TARGETS_FILE = "targets.yaml"
CHART_NAME = "calibration.png"
RETURNS_CHART_NAME = "calibration-returns.png"
TRUTH, RETURNS = "truth", "returns"
SOURCES = (TRUTH, RETURNS)  # what the simulated figures are computed from
MANIFEST_NAME = "manifest.json"
TRUTH_FOLDER = "truth"
PER_10K = 10_000
PERCENT = 100
OK = "ok"
OUTSIDE = "OUTSIDE"
RATE_KINDS = ("rate_per_10k", "rate_per_10k_year")
SHARE_KIND = "share"
KINDS = (*RATE_KINDS, SHARE_KIND)
KIND_UNITS = {"rate_per_10k": "per 10k", "rate_per_10k_year": "per 10k/yr", SHARE_KIND: "%"}
EPOCH = dt.date(1970, 1, 1)
NEVER = np.iinfo(np.int32).max  # day number standing in for an empty (open) date
EXIT_OK, EXIT_OUTSIDE, EXIT_ERROR = 0, 1, 2
GENERATE_HINT = "run `trainkit generate --out {dir}` first"

# Columns each truth table must have for the calibration (only these are read).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "persons": ("person_id", "sex", "date_of_birth", "date_arrived", "follow_up_end"),
    "referrals": ("person_id", "la_code", "referral_date", "nfa", "closure_date"),
    "cp_plans": ("person_id", "la_code", "start_date", "end_date"),
    "care_periods": (
        "person_id",
        "la_code",
        "start_date",
        "end_date",
        "reason_ended",
        "uasc",
        "age_at_start",
    ),
    "pupil_census": ("person_id", "academic_year", "fsm_eligible", "sen_provision"),
    "adoptions": ("person_id", "date_adopted"),
}
REQUIRED_TABLES = ("persons", "referrals", "cp_plans", "care_periods")
OPTIONAL_TABLES = ("pupil_census", "adoptions")


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One published figure to compare with.

    Attributes:
        key: identifier in ``targets.yaml``.
        label: what is measured, in words.
        measure: name of the computation (a key of ``MEASURES``).
        kind: ``rate_per_10k``, ``rate_per_10k_year`` or ``share``.
        value: the published rate (per 10,000) or share (0-1).
        date: the 31 March the figure refers to (point or end of year); None for pupil shares.
        count: the published count behind a rate.
        population: the ONS population the rate divides by.
        numerator_note: what is counted.
        source: publication and table.
        dfe_denominator: the denominator the DfE release itself used.
        births_from: earliest date of birth the figure needs (else computed from ``date``).
        options: measure-specific settings (codes, ages, flags, ...).
    """

    key: str
    label: str
    measure: str
    kind: str
    value: float
    date: dt.date | None
    count: int | None
    population: int | None
    numerator_note: str
    source: str
    dfe_denominator: str
    births_from: dt.date | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Targets:
    """The calibration targets and the tolerance rule from ``targets.yaml``."""

    targets: tuple[Target, ...]
    rate_relative: float
    share_points: float
    standard_errors: float
    min_age: int
    max_age: int


_TARGET_FIELDS = {
    "label",
    "measure",
    "kind",
    "value",
    "date",
    "count",
    "population",
    "derivation",
    "numerator_note",
    "source",
    "dfe_denominator",
    "births_from",
}
_ROUNDING = 0.005 + 1e-9  # rates are stored to two decimals


def _as_date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def load_targets() -> Targets:
    """Read the packaged ``params/targets.yaml``.

    Returns:
        The targets, in file order, with the tolerance rule.

    Raises:
        ValueError: if the file is malformed (a packaging error, not a user error).
    """
    text = resources.files("trainkit").joinpath("params", TARGETS_FILE).read_text("utf-8")
    raw = yaml.safe_load(text) or {}
    where = f"params/{TARGETS_FILE}"
    populations = {k: int(v["value"]) for k, v in raw["population"].items()}
    tol = raw["tolerance"]
    min_age, max_age = (int(a) for a in raw["population_ages"])
    targets = []
    for key, spec in raw["targets"].items():
        here = f"{where}: {key}"
        for needed in ("label", "measure", "kind", "value", "numerator_note", "source"):
            if not spec.get(needed) and spec.get(needed) != 0:
                raise ValueError(f"{here} needs '{needed}'")
        if "dfe_denominator" not in spec:
            raise ValueError(f"{here} needs 'dfe_denominator'")
        kind = spec["kind"]
        if kind not in KINDS:
            raise ValueError(f"{here}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if spec["measure"] not in MEASURES:
            raise ValueError(f"{here}: measure {spec['measure']!r} is not known")
        count = population = None
        if kind in RATE_KINDS:
            if "count" not in spec or spec.get("population") not in populations:
                raise ValueError(f"{here}: a rate needs 'count' and a known 'population'")
            count, population = int(spec["count"]), populations[spec["population"]]
            if count <= 0 or population <= 0:
                raise ValueError(f"{here}: 'count' and its population must be positive")
            implied = count / population * PER_10K
            if abs(implied - float(spec["value"])) > _ROUNDING:
                raise ValueError(
                    f"{here}: value {spec['value']} is not count / population x 10,000 "
                    f"({implied:.2f})"
                )
        elif not 0 <= float(spec["value"]) <= 1:
            raise ValueError(f"{here}: a share must be between 0 and 1")
        date = _as_date(spec["date"], here) if "date" in spec else None
        births = _as_date(spec["births_from"], here) if "births_from" in spec else None
        targets.append(
            Target(
                key=key,
                label=str(spec["label"]),
                measure=str(spec["measure"]),
                kind=kind,
                value=float(spec["value"]),
                date=date,
                count=count,
                population=population,
                numerator_note=str(spec["numerator_note"]),
                source=str(spec["source"]),
                dfe_denominator=str(spec["dfe_denominator"]),
                births_from=births,
                options={k: v for k, v in spec.items() if k not in _TARGET_FIELDS},
            )
        )
    return Targets(
        targets=tuple(targets),
        rate_relative=float(tol["rate_relative"]),
        share_points=float(tol["share_points"]),
        standard_errors=float(tol["standard_errors"]),
        min_age=min_age,
        max_age=max_age,
    )


# --------------------------------------------------------------------------------------------
# Reading the truth tables
# --------------------------------------------------------------------------------------------


def _day(d: dt.date) -> int:
    return (d - EPOCH).days


def _years_before(d: dt.date, years: int) -> dt.date:
    """``d`` minus whole ``years`` (29 February becomes 28 February)."""
    try:
        return d.replace(year=d.year - years)
    except ValueError:
        return d.replace(year=d.year - years, day=d.day - 1)


def _year_start(d: dt.date) -> dt.date:
    """First day of the year ending on ``d`` (1 April for a 31 March)."""
    return _years_before(d, 1) + dt.timedelta(days=1)


class _Truth:
    """Lazy, column-wise access to one generated dataset's truth tables."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir
        hint = GENERATE_HINT.format(dir=data_dir)
        if not data_dir.exists():
            raise DataError(f"{data_dir}: no such folder; {hint}")
        if not data_dir.is_dir():
            raise DataError(f"{data_dir} is a file, not a folder of trainkit output; {hint}")
        truth = data_dir / TRUTH_FOLDER
        persons = truth / "persons.parquet"
        if not persons.is_file():
            raise DataError(f"{data_dir}: no trainkit output here ({persons} not found); {hint}")
        self.paths: dict[str, Path] = {}
        for name in (*REQUIRED_TABLES, *OPTIONAL_TABLES):
            path = truth / f"{name}.parquet"
            if path.is_file():
                self.paths[name] = path
            elif name in REQUIRED_TABLES:
                raise DataError(
                    f"{path} not found: the output in {data_dir} is incomplete; "
                    f"regenerate it with `trainkit generate --out {data_dir}`"
                )
        self.schemas = {name: self._schema(name) for name in self.paths}
        self.manifest = self._manifest()
        config = self.manifest.get("config", {}) or {}
        self.census_date = (
            _as_date(config["census_date"], str(self.dir / MANIFEST_NAME))
            if config.get("census_date")
            else None
        )
        self.birth_start = (
            _as_date(config["birth_start"], str(self.dir / MANIFEST_NAME))
            if config.get("birth_start")
            else None
        )
        self.children = config.get("children")
        self.seed = config.get("seed")
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._population: dict[dt.date, int] = {}

    def _manifest(self) -> dict[str, Any]:
        path = self.dir / MANIFEST_NAME
        if not path.is_file():
            raise DataError(
                f"{path} not found: the output in {self.dir} is incomplete; "
                f"regenerate it with `trainkit generate --out {self.dir}`"
            )
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not valid JSON ({exc}); regenerate the output") from None
        if not isinstance(manifest, dict):
            raise DataError(f"{path} should hold a JSON object; regenerate the output")
        return manifest

    def _schema(self, name: str) -> pa.Schema:
        path = self.paths[name]
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path} is not a readable Parquet file ({exc}); "
                f"regenerate it with `trainkit generate --out {self.dir}`"
            ) from None
        missing = [c for c in TABLE_COLUMNS[name] if c not in schema.names]
        if missing:
            raise DataError(
                f"{path} has no column {', '.join(map(repr, missing))}; it was written by another "
                f"version of trainkit: regenerate it with `trainkit generate --out {self.dir}`"
            )
        return schema

    def has(self, name: str) -> bool:
        return name in self.paths

    def _read(self, name: str, columns: Sequence[str], filters: Any = None) -> pa.Table:
        try:
            return pq.read_table(self.paths[name], columns=list(columns), filters=filters)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.paths[name]} could not be read ({exc})") from None

    def columns(self, name: str, *cols: str) -> list[np.ndarray]:
        """Columns of a table as numpy arrays (dates as day numbers, empty dates as ``NEVER``)."""
        todo = [c for c in cols if (name, c) not in self._cache]
        if todo:
            table = self._read(name, todo)
            for c in todo:
                self._cache[(name, c)] = _to_numpy(table.column(c), self.paths[name], c)
        return [self._cache[(name, c)] for c in cols]

    def identity(self, person_id: np.ndarray, day: np.ndarray) -> np.ndarray:
        """0 before a child's first adoption order (or never adopted), 1 from it: an adopted
        child is a new child to the LA's records, with a new id (as in the returns)."""
        if not self.has("adoptions"):
            return np.zeros(person_id.shape, np.int64)
        if ("adoptions", "first order") not in self._cache:
            adopted_pid, adopted_on = self.columns("adoptions", "person_id", "date_adopted")
            order = np.lexsort((adopted_on, adopted_pid))
            pid, first = adopted_pid[order], adopted_on[order]
            keep = np.r_[True, pid[1:] != pid[:-1]] if pid.size else np.zeros(0, bool)
            self._cache[("adoptions", "person_id first")] = pid[keep]
            self._cache[("adoptions", "first order")] = first[keep]  # NEVER (none yet) sorts last
        pid = self._cache[("adoptions", "person_id first")]
        first = self._cache[("adoptions", "first order")]
        if not pid.size:
            return np.zeros(person_id.shape, np.int64)
        at = np.minimum(np.searchsorted(pid, person_id), pid.size - 1)
        order_day = np.where(pid[at] == person_id, first[at], NEVER)
        return ((order_day != NEVER) & (day >= order_day)).astype(np.int64)

    def la_children(self, name: str, date_column: str) -> np.ndarray:
        """One key per row for the child as one LA knows them (person, LA, identity on
        ``date_column``; :func:`~trainkit.datasets.identifiers.child_keys`).

        The DfE's national figures add up the LAs' returns, in which a child is known by an id of
        that LA, so a child in two LAs' returns counts in each, and so does an adopted child who
        comes back after the order under a new id; the truth counts the same way.
        """
        key = (name, f"children by {date_column}")
        if key not in self._cache:
            pid, la, day = self.columns(name, "person_id", "la_code", date_column)
            self._cache[key] = child_keys(pid, la, self.identity(pid, day))
        return self._cache[key]

    def pupils(self, academic_year: int, column: str) -> np.ndarray:
        """One column of the pupil census for one academic year (row groups of others skipped)."""
        key = (f"pupil_census/{academic_year}", column)
        if key not in self._cache:
            table = self._read(
                "pupil_census", [column], filters=[("academic_year", "==", int(academic_year))]
            )
            self._cache[key] = _to_numpy(table.column(column), self.paths["pupil_census"], column)
        return self._cache[key]

    def population_at(self, day: dt.date, min_age: int, max_age: int) -> int:
        """Children aged ``min_age``-``max_age`` living in England (alive) on ``day``."""
        if day not in self._population:
            dob, arrived, end = self.columns(
                "persons", "date_of_birth", "date_arrived", "follow_up_end"
            )
            start = np.where(arrived == NEVER, dob, arrived)
            d = _day(day)
            oldest = _day(_years_before(day, max_age + 1))  # born on this day: max_age + 1 today
            youngest = _day(_years_before(day, min_age))
            inside = (start <= d) & (d <= end) & (dob > oldest) & (dob <= youngest)
            self._population[day] = int(np.count_nonzero(inside))
        return self._population[day]


def _to_numpy(column: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = pc.cast(column, pa.date32())
        kind = column.type
    if pa.types.is_date32(kind):
        return column.cast(pa.int32()).fill_null(NEVER).to_numpy().astype(np.int64)
    if pa.types.is_date64(kind):
        days = pc.cast(column, pa.date32()).cast(pa.int32()).fill_null(NEVER)
        return days.to_numpy().astype(np.int64)
    if pa.types.is_boolean(kind):
        return column.fill_null(False).to_numpy()
    if pa.types.is_integer(kind):
        if column.null_count:
            raise DataError(f"{path}: column {name!r} has empty values; regenerate the output")
        return column.to_numpy()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return np.asarray(column.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False))
    raise DataError(f"{path}: column {name!r} has unexpected type {kind}; regenerate the output")


# --------------------------------------------------------------------------------------------
# Measures: each returns (numerator, denominator); a rate's denominator is filled in by the caller
# --------------------------------------------------------------------------------------------


def _open_on(start: np.ndarray, end: np.ndarray, day: dt.date) -> np.ndarray:
    d = _day(day)
    return (start <= d) & (end > d)


def _in_year(dates: np.ndarray, day: dt.date) -> np.ndarray:
    return (dates >= _day(_year_start(day))) & (dates <= _day(day))


def _distinct(ids: np.ndarray) -> int:
    return int(np.unique(ids).size)


def _first_per_person(person: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Positions (into the inputs) of each person's earliest row by ``start``."""
    order = np.lexsort((start, person))
    p = person[order]
    first = np.r_[True, p[1:] != p[:-1]] if p.size else np.zeros(0, bool)
    return order[first]


def _rereferrals(child: np.ndarray, referred: np.ndarray, t: Target) -> tuple[int, int]:
    """(re-referrals, referrals) in the year ending ``t.date``.

    A referral is a re-referral if the same child had an earlier referral in the same LA at most
    ``within_days`` days before (``child`` keys a child in one LA; ``referred`` in day numbers).
    """
    order = np.lexsort((referred, child))
    c, d = child[order], referred[order]
    again = np.r_[False, c[1:] == c[:-1]] if c.size else np.zeros(0, bool)
    gap = np.r_[0, np.diff(d)] if d.size else np.zeros(0, np.int64)
    rereferral = again & (gap <= int(t.options["within_days"]))
    year = _in_year(d, t.date)
    return int(np.count_nonzero(year & rereferral)), int(np.count_nonzero(year))


def _children_in_need_at(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, end = truth.columns("referrals", "referral_date", "closure_date")
    children = truth.la_children("referrals", "referral_date")
    return _distinct(children[_open_on(start, end, t.date)]), None


def _cp_plans_at(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, end = truth.columns("cp_plans", "start_date", "end_date")
    children = truth.la_children("cp_plans", "start_date")
    return _distinct(children[_open_on(start, end, t.date)]), None


def _looked_after_at(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, end = truth.columns("care_periods", "start_date", "end_date")
    children = truth.la_children("care_periods", "start_date")
    return _distinct(children[_open_on(start, end, t.date)]), None


def _uasc_looked_after_at(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, end, uasc = truth.columns("care_periods", "start_date", "end_date", "uasc")
    children = truth.la_children("care_periods", "start_date")
    return _distinct(children[uasc & _open_on(start, end, t.date)]), None


def _referrals_in_year(truth: _Truth, t: Target) -> tuple[int, int | None]:
    (start,) = truth.columns("referrals", "referral_date")
    return int(np.count_nonzero(_in_year(start, t.date))), None


def _cp_plans_starting(truth: _Truth, t: Target) -> tuple[int, int | None]:
    (start,) = truth.columns("cp_plans", "start_date")
    return int(np.count_nonzero(_in_year(start, t.date))), None


def _looked_after_starting(truth: _Truth, t: Target) -> tuple[int, int | None]:
    (start,) = truth.columns("care_periods", "start_date")
    children = truth.la_children("care_periods", "start_date")
    return _distinct(children[_in_year(start, t.date)]), None


def _looked_after_ceasing(truth: _Truth, t: Target) -> tuple[int, int | None]:
    (end,) = truth.columns("care_periods", "end_date")
    children = truth.la_children("care_periods", "start_date")
    return _distinct(children[_in_year(end, t.date)]), None


def _looked_after_ceasing_for_reasons(truth: _Truth, t: Target) -> tuple[int, int | None]:
    end, reason = truth.columns("care_periods", "end_date", "reason_ended")
    children = truth.la_children("care_periods", "start_date")
    codes = np.asarray([str(c) for c in t.options["reasons"]], dtype=object)
    return _distinct(children[_in_year(end, t.date) & np.isin(reason, codes)]), None


def _referral_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    flag_name = str(t.options["flag"])
    start, flag = truth.columns("referrals", "referral_date", flag_name)
    year = _in_year(start, t.date)
    return int(np.count_nonzero(flag[year])), int(np.count_nonzero(year))


def _rereferral_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    (start,) = truth.columns("referrals", "referral_date")
    return _rereferrals(truth.la_children("referrals", "referral_date"), start, t)


def _cp_subsequent_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    pid, start = truth.columns("cp_plans", "person_id", "start_date")
    order = np.lexsort((start, pid))
    p = pid[order]
    position = np.arange(p.size)
    first = np.r_[True, p[1:] != p[:-1]] if p.size else np.zeros(0, bool)
    earlier_plans = position - np.maximum.accumulate(np.where(first, position, 0))
    year = _in_year(start[order], t.date)
    return int(np.count_nonzero(year & (earlier_plans > 0))), int(np.count_nonzero(year))


def _start_age_share(ages: np.ndarray, t: Target) -> tuple[int, int]:
    low, high = (int(a) for a in t.options["ages"])
    return int(np.count_nonzero((ages >= low) & (ages <= high))), int(ages.size)


def _looked_after_start_age_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, age = truth.columns("care_periods", "start_date", "age_at_start")
    children = truth.la_children("care_periods", "start_date")
    year = _in_year(start, t.date)
    first = _first_per_person(children[year], start[year])
    return _start_age_share(age[year][first], t)


def _looked_after_male_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    start, end = truth.columns("care_periods", "start_date", "end_date")
    children = truth.la_children("care_periods", "start_date")
    children = np.unique(children[_open_on(start, end, t.date)])
    people, _, _ = split_child_keys(children)
    person_id, sex = truth.columns("persons", "person_id", "sex")
    sorter = np.argsort(person_id, kind="stable")
    where = np.minimum(np.searchsorted(person_id, people, sorter=sorter), person_id.size - 1)
    found = person_id[sorter[where]] == people if person_id.size else np.zeros(people.size, bool)
    if not found.all():
        raise DataError(
            f"{truth.paths['care_periods']} names {int((~found).sum())} person_id(s) missing from "
            f"{truth.paths['persons']}; the output is inconsistent: regenerate it"
        )
    male = sex[sorter[where]] == str(t.options["male_code"])
    return int(np.count_nonzero(male)), int(children.size)


def _pupil_share(truth: _Truth, t: Target) -> tuple[int, int | None]:
    values = truth.pupils(int(t.options["academic_year"]), str(t.options["column"]))
    codes = list(t.options["codes"])
    if values.dtype == bool:
        hit = np.isin(values, np.asarray([bool(c) for c in codes]))
    else:
        hit = np.isin(values, np.asarray([str(c) for c in codes], dtype=object))
    return int(np.count_nonzero(hit)), int(values.size)


Measure = Callable[[_Truth, Target], tuple[int, int | None]]
MEASURES: dict[str, Measure] = {
    "children_in_need_at": _children_in_need_at,
    "cp_plans_at": _cp_plans_at,
    "looked_after_at": _looked_after_at,
    "uasc_looked_after_at": _uasc_looked_after_at,
    "referrals_in_year": _referrals_in_year,
    "cp_plans_starting": _cp_plans_starting,
    "looked_after_starting": _looked_after_starting,
    "looked_after_ceasing": _looked_after_ceasing,
    "looked_after_ceasing_for_reasons": _looked_after_ceasing_for_reasons,
    "referral_share": _referral_share,
    "rereferral_share": _rereferral_share,
    "cp_subsequent_share": _cp_subsequent_share,
    "looked_after_start_age_share": _looked_after_start_age_share,
    "looked_after_male_share": _looked_after_male_share,
    "pupil_share": _pupil_share,
}
PUPIL_MEASURES = {"pupil_share"}
# Point-in-time figures; the others count events over the year ending on the target's date.
POINT_MEASURES = {
    "children_in_need_at",
    "cp_plans_at",
    "looked_after_at",
    "uasc_looked_after_at",
    "looked_after_male_share",
}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationLine:
    """One measure: simulated against published.

    Attributes:
        key: target identifier in ``targets.yaml``.
        measure: what is measured, in words.
        kind: ``rate_per_10k``, ``rate_per_10k_year`` or ``share``.
        simulated: simulated rate per 10,000 or share (0-1); NaN if there was nothing to count.
        published: published rate per 10,000 (count over ONS population) or share (0-1).
        error: relative error (rates, e.g. -0.05 = 5% low) or difference in percentage points
            (shares).
        tolerance: the largest allowed ``abs(error)``, in the same unit.
        status: ``ok`` or ``OUTSIDE``.
        numerator: simulated count.
        denominator: simulated children aged 0-17 (rates) or the share's denominator.
        source: publication and table of the published figure.
        note: caveats (e.g. the run does not cover every child the figure counts).
    """

    key: str
    measure: str
    kind: str
    simulated: float
    published: float
    error: float
    tolerance: float
    status: str
    numerator: int
    denominator: int
    source: str
    note: str = ""

    @property
    def error_unit(self) -> str:
        """``relative`` for rates, ``pp`` (percentage points) for shares."""
        return "pp" if self.kind == SHARE_KIND else "relative"


@dataclass
class CalibrationReport:
    """The comparison of one generated dataset with the published figures.

    Attributes:
        data_dir: the folder compared.
        lines: one :class:`CalibrationLine` per computed target.
        skipped: ``(key, reason)`` for targets this run cannot compute.
        assumptions: ``(key, reasoning)`` of the parameters that have no published source.
        chart_path: the PNG written, or None.
        children: number of children generated (from the manifest), if known.
        seed: the run's seed, if known.
        source: ``truth`` or ``returns``: what the simulated figures were computed from.
        returns: from the returns, which returns were read (one line); else empty.
    """

    data_dir: Path
    lines: list[CalibrationLine]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    assumptions: list[tuple[str, str]] = field(default_factory=list)
    chart_path: Path | None = None
    children: int | None = None
    seed: int | None = None
    source: str = TRUTH
    returns: str = ""

    @property
    def ok(self) -> bool:
        """True if every computed line is within tolerance."""
        return all(line.status == OK for line in self.lines)

    def to_frame(self) -> pd.DataFrame:
        """One row per line, with every field plus ``error_unit``."""
        rows = [{**asdict(line), "error_unit": line.error_unit} for line in self.lines]
        columns = [*(f for f in CalibrationLine.__dataclass_fields__), "error_unit"]
        return pd.DataFrame(rows, columns=columns)

    def format(self) -> str:
        """A fixed-width table: header, rule, then one line per measure ending in its status."""
        head = ("Measure", "Unit", "Simulated", "Published", "Error", "Tolerance", "Status")
        rows = [
            (
                line.measure + (" *" if line.note else ""),
                KIND_UNITS[line.kind],
                _fmt_value(line.simulated, line.kind),
                _fmt_value(line.published, line.kind),
                _fmt_error(line.error, line.kind),
                _fmt_tolerance(line.tolerance, line.kind),
                line.status,
            )
            for line in self.lines
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def render(row: Sequence[str]) -> str:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [cell.rjust(w) for cell, w in zip(row[2:-1], widths[2:-1], strict=True)]
            return "  ".join([*cells, row[-1]])

        rule = "  ".join("-" * w for w in widths[:-1]) + "  " + "-" * len(OUTSIDE)
        return "\n".join([render(head), rule, *(render(r) for r in rows)])

    def format_notes(self) -> str:
        """Caveats of the lines marked ``*`` and the targets not computed; empty if none.

        Lines that share a caveat are listed together under it.
        """
        caveats: dict[str, list[str]] = {}
        for line in self.lines:
            if line.note:
                caveats.setdefault(line.note, []).append(line.measure)
        notes = [f"* {note}:\n    " + "; ".join(labels) for note, labels in caveats.items()]
        labels = {t.key: t.label for t in load_targets().targets}
        notes += [f"not computed: {labels.get(k, k)}: {why}" for k, why in self.skipped]
        return "\n".join(notes)

    def format_source(self) -> str:
        """What the simulated figures were computed from (two lines from the returns)."""
        if self.source != RETURNS:
            return "Simulated figures computed from the truth tables."
        return (
            f"Simulated figures computed from the agencies' returns, as the DfE computes them: "
            f"{self.returns}.\nRates divide by the children aged 0-17 in the truth's persons: "
            f"the returns hold no population (the DfE divides by ONS estimates)."
        )

    def format_assumptions(self) -> str:
        """The count of parameters labelled ``assumption``, then ``key: text`` lines."""
        head = f"Parameters with no published source (assumptions): {len(self.assumptions)}"
        return "\n".join([head, *(f"  {key}: {text}" for key, text in self.assumptions)])


def _fmt_value(value: float, kind: str) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * PERCENT:.1f}%" if kind == SHARE_KIND else f"{value:.1f}"


def _fmt_error(error: float, kind: str) -> str:
    if math.isnan(error):
        return "-"
    return f"{error:+.1f} pp" if kind == SHARE_KIND else f"{error * PERCENT:+.1f}%"


def _fmt_tolerance(tolerance: float, kind: str) -> str:
    return f"±{tolerance:.1f} pp" if kind == SHARE_KIND else f"±{tolerance * PERCENT:.1f}%"


def _coverage_note(truth: _Truth, t: Target, targets: Targets) -> str:
    """A caveat if the run's births start too late to hold every child the figure counts."""
    if truth.birth_start is None or (t.date is None and t.births_from is None):
        return ""
    if t.births_from is not None:
        needed = t.births_from
    else:
        reference = t.date if t.measure in POINT_MEASURES else _year_start(t.date)
        needed = _years_before(reference, targets.max_age + 1) + dt.timedelta(days=1)
    if truth.birth_start <= needed:
        return ""
    return (
        f"partial: these figures count children born from {needed}, but the run's births start "
        f"{truth.birth_start}, so the oldest are missing (generate with an earlier birth_start)"
    )


def _line(
    t: Target, numerator: int, denominator: int, targets: Targets, note: str
) -> CalibrationLine:
    k = targets.standard_errors
    if t.kind in RATE_KINDS:
        simulated = numerator / denominator * PER_10K
        expected = t.value * denominator / PER_10K
        relative_se = 1 / math.sqrt(expected) if expected > 0 else math.inf
        tolerance = max(targets.rate_relative, k * relative_se)
        error = (simulated - t.value) / t.value
    else:
        simulated = numerator / denominator if denominator else math.nan
        se_points = (
            PERCENT * math.sqrt(t.value * (1 - t.value) / denominator) if denominator else math.inf
        )
        tolerance = max(targets.share_points, k * se_points)
        error = (simulated - t.value) * PERCENT
        if not denominator:
            note = "; ".join(filter(None, [note, "nothing to count: the denominator is 0"]))
    status = OK if abs(error) <= tolerance else OUTSIDE  # NaN compares False: OUTSIDE
    return CalibrationLine(
        key=t.key,
        measure=t.label,
        kind=t.kind,
        simulated=simulated,
        published=t.value,
        error=error,
        tolerance=tolerance,
        status=status,
        numerator=numerator,
        denominator=denominator,
        source=t.source,
        note=note,
    )


def calibrate(
    data_dir: str | os.PathLike[str],
    chart_path: str | os.PathLike[str] | None = None,
    source: str = TRUTH,
) -> CalibrationReport:
    """Compare the figures of ``data_dir`` with the published national figures.

    Args:
        data_dir: a folder written by ``trainkit generate --out DIR``.
        chart_path: where to save the chart (PNG); default ``DIR/calibration.png``
            (``DIR/calibration-returns.png`` from the returns).
        source: ``truth`` to compute each figure from the truth tables, ``returns`` to compute
            it from the agencies' returns under ``DIR/returns/`` as the DfE does
            (:mod:`trainkit.calibrate_returns`; rates still divide by the truth's children).

    Returns:
        A :class:`CalibrationReport`.

    Raises:
        DataError: if the folder, a required table, a column, the manifest or (from the returns)
            a return file is missing or malformed, naming the path and the fix.
        ValueError: if ``source`` is not ``truth`` or ``returns``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    folder = Path(data_dir)
    truth = _Truth(folder)
    returns = None
    if source == RETURNS:
        from . import calibrate_returns

        returns = calibrate_returns.Returns(folder, truth.manifest)
    targets = load_targets()
    lines: list[CalibrationLine] = []
    skipped: list[tuple[str, str]] = []
    for t in targets.targets:
        if returns is not None:
            why = calibrate_returns.unavailable(returns, t)
            if why:
                skipped.append((t.key, f"not available from the returns: {why}"))
                continue
        if t.measure in PUPIL_MEASURES and not truth.has("pupil_census"):
            skipped.append((t.key, "no pupil_census table in this output (an older run)"))
            continue
        if t.date is not None and truth.census_date is not None and t.date > truth.census_date:
            skipped.append((t.key, f"after the run's census date {truth.census_date}"))
            continue
        if returns is not None:
            numerator, denominator = calibrate_returns.measure(returns, t)
        else:
            numerator, denominator = MEASURES[t.measure](truth, t)
        if t.kind in RATE_KINDS:
            denominator = truth.population_at(t.date, targets.min_age, targets.max_age)
            if denominator == 0:
                ages = f"{targets.min_age}-{targets.max_age}"
                skipped.append((t.key, f"no simulated children aged {ages} on {t.date}"))
                continue
        elif t.measure in PUPIL_MEASURES and denominator == 0:
            year = t.options["academic_year"]
            skipped.append((t.key, f"no pupil census rows for academic year {year}"))
            continue
        lines.append(
            _line(t, numerator, int(denominator), targets, _coverage_note(truth, t, targets))
        )
    if not lines:
        reasons = "; ".join(dict.fromkeys(why for _, why in skipped))
        fix = "generate a run whose census date is 31 March 2024 or later"
        if returns is not None:
            fix += " and whose collection years include the targets' years"
        raise DataError(
            f"{folder}: none of the published figures could be computed ({reasons}); {fix}"
        )
    params = load_parameters()
    report = CalibrationReport(
        data_dir=folder,
        lines=lines,
        skipped=skipped,
        assumptions=[(p.key, str(p.assumption)) for p in params.assumptions()],
        children=truth.children,
        seed=truth.seed,
        source=source,
        returns=returns.describe() if returns is not None else "",
    )
    default_chart = folder / (RETURNS_CHART_NAME if returns is not None else CHART_NAME)
    report.chart_path = _save_chart(report, Path(chart_path) if chart_path else default_chart)
    return report


# --------------------------------------------------------------------------------------------
# Chart
# --------------------------------------------------------------------------------------------

_COLOURS = {OK: "tab:blue", OUTSIDE: "tab:red"}
_BAND_COLOUR = "tab:green"
_ROW_HEIGHT = 0.32  # inches per measure
_FIG_WIDTH = 11.0
_FIG_MARGIN = 1.6  # inches for title and axis labels


def _panel(ax: Any, lines: list[CalibrationLine], centre: float, xlabel: str) -> None:
    """Dots at ``centre + error`` with each row's tolerance band (``centre ± tolerance``) shaded.

    For rates the error is relative, so ``1 + error`` is the ratio simulated / published; for
    shares it is the difference in percentage points around 0.
    """
    y = np.arange(len(lines))[::-1]
    for yi, line in zip(y, lines, strict=True):
        if math.isfinite(line.tolerance):
            low, high = centre - line.tolerance, centre + line.tolerance
            if centre > 0:  # a ratio cannot be negative
                low = max(low, 0.0)
            ax.barh(yi, high - low, left=low, height=0.7, color=_BAND_COLOUR, alpha=0.18)
        if not math.isnan(line.error):
            ax.plot(centre + line.error, yi, "o", color=_COLOURS[line.status])
    ax.axvline(centre, color="grey", linewidth=0.8)
    ax.set_yticks(y, [line.measure for line in lines], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.6, len(lines) - 0.4)


def _save_chart(report: CalibrationReport, path: Path) -> Path:
    from matplotlib.figure import Figure  # Agg canvas; no global pyplot state

    rates = [line for line in report.lines if line.kind in RATE_KINDS]
    shares = [line for line in report.lines if line.kind == SHARE_KIND]
    panels = [p for p in (rates, shares) if p]
    height = _FIG_MARGIN + _ROW_HEIGHT * sum(len(p) for p in panels)
    fig = Figure(figsize=(_FIG_WIDTH, height), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[len(p) for p in panels])[:, 0]
    for ax, group in zip(axes, panels, strict=True):
        if group is rates:
            _panel(ax, group, 1.0, "simulated / published (shaded: tolerance)")
        else:
            _panel(ax, group, 0.0, "simulated - published, percentage points (shaded: tolerance)")
    n = f"N = {report.children:,} children" if isinstance(report.children, int) else "N unknown"
    seed = f"seed {report.seed}" if report.seed is not None else "seed unknown"
    within = sum(line.status == OK for line in report.lines)
    fig.suptitle(
        f"trainkit calibration against published figures: {n}, {seed}"
        f"{', from the returns' if report.source == RETURNS else ''} "
        f"({within} of {len(report.lines)} within tolerance)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fig.savefig(partial, format="png", dpi=100)
    os.replace(partial, path)
    return path


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_calibrate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``trainkit calibrate DIR [--from truth|returns] [--chart PATH] [--list-parameters]``.

    Sets ``func=run_calibrate`` as the sub-command's default.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The new sub-parser.
    """
    parser = subparsers.add_parser(
        "calibrate",
        help="compare a generated dataset with the published national figures",
        description=(
            "Compare the figures of DIR, computed from its truth tables or from the agencies' "
            "returns, with published national figures for England (year ending 31 March 2024), "
            "print the table, the parameters that are assumptions, and save a chart. Exit status 1 "
            "if any figure is outside its tolerance, 2 if DIR or a file in it is missing or "
            "malformed."
        ),
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="folder written by trainkit generate")
    parser.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        default=TRUTH,
        help=(
            "compute the figures from the truth tables (default) or from the CIN census and "
            "SSDA903 returns in DIR/returns, as the DfE computes its published figures"
        ),
    )
    parser.add_argument(
        "--chart",
        metavar="PATH",
        default=None,
        help=f"chart PNG (default DIR/{CHART_NAME}, or DIR/{RETURNS_CHART_NAME} from the returns)",
    )
    parser.add_argument(
        "--list-parameters",
        action="store_true",
        help="print every model parameter with its value, unit and source or assumption, and exit",
    )
    parser.set_defaults(func=run_calibrate)
    return parser


def _format_parameters() -> str:
    lines = []
    params = load_parameters()
    for key in params:
        p = params.entry(key)
        unit = f" ({p.unit})" if p.unit else ""
        lines.append(f"{key} = {p.value!r}{unit}")
        if p.source:
            lines.append(f"    source: {p.source}")
        if p.assumption:
            lines.append(f"    assumption: {p.assumption}")
        if p.derivation:
            lines.append(f"    derivation: {p.derivation}")
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``trainkit calibrate`` from parsed arguments.

    Args:
        args: with ``dir``, ``source``, ``chart`` and ``list_parameters`` (see
            :func:`add_calibrate_parser`).

    Returns:
        0 if every line is within tolerance (or with ``--list-parameters``), 1 if any line is
        OUTSIDE, 2 if the data folder is missing or malformed.
    """
    if getattr(args, "list_parameters", False):
        print(_format_parameters())
        return EXIT_OK
    if not args.dir:
        print(
            "error: calibrate needs DIR, a folder written by `trainkit generate --out DIR`",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        report = calibrate(
            args.dir,
            chart_path=getattr(args, "chart", None),
            source=getattr(args, "source", TRUTH),
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(report.format_source() + "\n")
    print(report.format())
    within = sum(line.status == OK for line in report.lines)
    print(f"\n{within} of {len(report.lines)} figures within tolerance.")
    notes = report.format_notes()
    if notes:
        print(f"\n{notes}")
    print(f"\n{report.format_assumptions()}")
    print(f"\nChart saved to {report.chart_path}")
    return EXIT_OK if report.ok else EXIT_OUTSIDE

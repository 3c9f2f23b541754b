"""The published figures computed from the agencies' returns, as the DfE computes them.

``trainkit calibrate DIR --from returns`` reads the returns the LAs submitted, under
``DIR/returns/``: the CIN census XML (``cin/{YYYY}/{LA}.xml``) and the SSDA903 CSVs
(``ssda903/{YYYY}/{LA}/episodes.csv``, ``header.csv``, ``uasc.csv``). Each figure is counted the way
the DfE counts it for its releases: from the return of the year ending on the figure's 31 March,
in each LA, added up over LAs. So a child in two LAs' returns counts in each, as in the published
figures.

- Children in need at 31 March: referrals (``CINdetails``) received by 31 March and not closed
  by then (no ``CINclosureDate``, or a later one), one per child in each LA.
- On a child protection plan at 31 March: ``ChildProtectionPlans`` started by 31 March and not
  ended by then, one per child in each LA.
- Referrals in the year: ``CINreferralDate`` in the year; no further action: ``ReferralNFA``
  true; re-referrals: within ``within_days`` of the same child's previous referral in the same LA
  (this year's and last year's returns).
- Plans starting in the year: ``CPPstartDate`` in the year; second or subsequent:
  ``NumberOfPreviousCPP`` above 0.
- Looked after at 31 March: episodes started by 31 March and not ceased by then (no ``DEC``, or a
  later one), one per child in each LA; UASC: those in the year's ``uasc.csv`` whose UASC status
  had not ceased (``DUC`` blank or after 31 March); male: ``SEX`` 1 in ``header.csv``.
- Started to be looked after: episodes with ``RNE`` S starting in the year (children); age on
  starting from the first such episode and ``DOB``. Ceased: episodes with a ``DEC`` in the year
  and a ``REC`` other than X1 (X1: a new episode began the same day); adopted: ``REC`` E11/E12.

The returns hold no population, so rates divide by the children aged 0-17 in the truth's
``persons`` (the DfE divides by ONS estimates). Figures the returns cannot give (pupil shares,
from the school census) and figures for a year the run wrote no returns for are not computed.

Example:
    >>> from trainkit.calibrate import calibrate
    >>> report = calibrate("data/default", source="returns")     # doctest: +SKIP
    >>> print(report.format())                                   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .calibrate import (
    NEVER,
    Target,
    _day,
    _distinct,
    _first_per_person,
    _in_year,
    _open_on,
    _rereferrals,
    _start_age_share,
)
from .datasets import cin, ssda903
from .errors import DataError

__all__ = ["RETURN_MEASURES", "Returns", "measure", "unavailable"]

RETURNS_FOLDER = "returns"
CIN = "cin"
SSDA903 = "ssda903"
DATASET_NAMES = {CIN: "CIN census", SSDA903: "SSDA903"}

# The 903 files read, and the columns each must have (only these are used).
SSDA903_FILES: dict[str, tuple[str, ...]] = {
    "episodes": ("CHILD", "DECOM", "RNE", "DEC", "REC"),
    "header": ("CHILD", "SEX", "DOB"),
    "uasc": ("CHILD", "DUC"),
}
SSDA903_DATES = {"DECOM", "DEC", "DOB", "DUC"}
REQUIRED_DATES = {"DECOM", "CINreferralDate", "CPPstartDate"}
STARTED = "S"  # RNE: started to be looked after (the first episode of a period of care)
SAME_DAY_NEW_EPISODE = "X1"  # REC: the episode ceased and a new one began the same day
TRUE_VALUES = ("true", "1")  # xs:boolean
TRUTH_SEX = {"M": "Male", "F": "Female"}  # the truth's sex codes, by the 903's meanings

# Every CINdetails and ChildProtectionPlans block of a CIN census file as one tab-separated line,
# with its child's LAchildID (normalize-space leaves no tab or line break inside a value).
_CIN_ROWS = b"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:output method="text" encoding="UTF-8"/>
<xsl:template match="/">
<xsl:for-each select="/Message/Children/Child/CINdetails">
<xsl:variable name="child" select="normalize-space(../ChildIdentifiers/LAchildID)"/>
<xsl:value-of select="concat('CINdetails&#9;', $child, '&#9;',
  normalize-space(CINreferralDate), '&#9;', normalize-space(CINclosureDate), '&#9;',
  normalize-space(ReferralNFA), '&#9;&#9;&#9;&#10;')"/>
<xsl:for-each select="ChildProtectionPlans">
<xsl:value-of select="concat('ChildProtectionPlans&#9;', $child, '&#9;&#9;&#9;&#9;',
  normalize-space(CPPstartDate), '&#9;', normalize-space(CPPendDate), '&#9;',
  normalize-space(NumberOfPreviousCPP), '&#10;')"/>
</xsl:for-each>
</xsl:for-each>
</xsl:template>
</xsl:stylesheet>"""
_CIN_COLUMNS = (
    "Block",
    "LAchildID",
    "CINreferralDate",
    "CINclosureDate",
    "ReferralNFA",
    "CPPstartDate",
    "CPPendDate",
    "NumberOfPreviousCPP",
)
_CIN_DATES = ("CINreferralDate", "CINclosureDate", "CPPstartDate", "CPPendDate")


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

_DIRECTIVES = {"%d": r"(?P<d>\d{2})", "%m": r"(?P<m>\d{2})", "%Y": r"(?P<y>\d{4})"}


def _date_regex(date_format: str) -> str:
    """A regex for a strftime format made of %d, %m, %Y and literal separators."""
    parts = re.split(r"(%[dmY])", date_format)
    return "^" + "".join(_DIRECTIVES.get(p, re.escape(p)) for p in parts) + "$"


def _day_numbers(values: pd.Series, date_format: str) -> tuple[np.ndarray, np.ndarray]:
    """Day numbers (days since 1970-01-01) of date strings; blank is ``NEVER``.

    Any four-digit year is read (a mistyped century stays a date, as it is in the file).

    Returns:
        The day numbers, and a mask of the values that are not blank and not a valid date.
    """
    text = values.astype(str).str.strip()
    blank = (text == "").to_numpy()
    parts = text.str.extract(_date_regex(date_format))
    y, m, d = (pd.to_numeric(parts[k]).to_numpy(np.float64) for k in ("y", "m", "d"))
    ok = ~np.isnan(y) & (m >= 1) & (m <= 12) & (d >= 1)
    months = np.where(ok, (y - 1970) * 12 + m - 1, 0).astype(np.int64)
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    following = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    day = first + np.where(ok, d, 1).astype(np.int64) - 1
    ok &= day < following
    return np.where(ok, day, NEVER), ~blank & ~ok


# --------------------------------------------------------------------------------------------
# Reading the returns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CinYear:
    """One collection year of CIN census returns, all LAs together.

    ``child`` is ``"LA/LAchildID"``: one child in one LA. Dates are day numbers (``NEVER`` for
    blank).
    """

    child: np.ndarray  # per CINdetails
    referred: np.ndarray
    closed: np.ndarray
    nfa: np.ndarray
    plan_child: np.ndarray  # per ChildProtectionPlans
    plan_start: np.ndarray
    plan_end: np.ndarray
    plan_previous: np.ndarray


@dataclass(frozen=True)
class Ssda903Year:
    """One collection year of SSDA903 returns, all LAs together (``child`` is ``"LA/CHILD"``)."""

    child: np.ndarray  # per episode
    start: np.ndarray
    end: np.ndarray
    rne: np.ndarray
    rec: np.ndarray
    header_child: np.ndarray  # per header row (first row of a child)
    sex: np.ndarray
    dob: np.ndarray
    uasc_child: np.ndarray  # per uasc row
    uasc_ceased: np.ndarray


def _codes(values: pd.Series) -> np.ndarray:
    """Code values as the DfE's loading reads them: surrounding spaces removed, in capitals."""
    return values.astype(str).str.strip().str.upper().to_numpy(dtype=object)


def _keys(la: np.ndarray | str, ids: pd.Series) -> np.ndarray:
    return (pd.Series(la, index=ids.index, dtype=str) + "/" + ids.astype(str).str.strip()).to_numpy(
        dtype=object
    )


class Returns:
    """Lazy access to the CIN census and SSDA903 returns of one generated dataset.

    Args:
        data_dir: the folder written by ``trainkit generate``.
        manifest: its ``manifest.json`` (read by the caller).

    Raises:
        DataError: if the folder has no returns, or a return the manifest lists is missing.
    """

    def __init__(self, data_dir: Path, manifest: dict[str, Any]):
        self.dir = data_dir
        self.root = data_dir / RETURNS_FOLDER
        listed = [
            str(f) for f in (manifest.get("files") or {}) if str(f).startswith(f"{RETURNS_FOLDER}/")
        ]
        if not self.root.is_dir():
            if listed:
                raise DataError(
                    f"{self.root} not found: the output in {data_dir} is incomplete (its "
                    f"manifest lists {len(listed):,} return files); regenerate it with "
                    f"`trainkit generate --out {data_dir}`"
                )
            raise DataError(
                f"{data_dir} has no agencies' returns ({self.root} not found); calibrate it "
                f"from the truth (--from truth), or regenerate it with `trainkit generate`, "
                f"which writes them"
            )
        missing = [f for f in listed if not (data_dir / f).is_file()]
        if missing:
            raise DataError(
                f"{data_dir / missing[0]} not found ({len(missing):,} return file(s) of the "
                f"manifest missing): the output is incomplete; regenerate it with "
                f"`trainkit generate --out {data_dir}`"
            )
        self.datasets = {name for name in (CIN, SSDA903) if (self.root / name).is_dir()}
        self.years = self._years(manifest)
        if not self.datasets or not self.years:
            raise DataError(
                f"{self.root} holds no returns (no folder {self.root / CIN} or "
                f"{self.root / SSDA903} with a collection year in it); regenerate the output "
                f"with `trainkit generate --out {data_dir}`"
            )
        self._cin: dict[int, CinYear] = {}
        self._903: dict[int, Ssda903Year] = {}
        self._cin_xslt: Any = None

    def _years(self, manifest: dict[str, Any]) -> tuple[int, ...]:
        """The collection years written: from the manifest's config, else the folders present."""
        config = manifest.get("config") or {}
        try:
            last = dt.date.fromisoformat(str(config["census_date"])).year
            first = max(
                last - int(config["collection_years"]) + 1,
                dt.date.fromisoformat(str(config["birth_start"])).year + 1,
            )
            return tuple(range(first, last + 1))
        except (KeyError, TypeError, ValueError):
            found = {
                int(p.name)
                for name in (CIN, SSDA903)
                if (self.root / name).is_dir()
                for p in (self.root / name).iterdir()
                if p.is_dir() and re.fullmatch(r"\d{4}", p.name)
            }
            return tuple(sorted(found))

    def describe(self) -> str:
        """One line: which returns the figures come from."""
        years = f"{self.years[0] - 1}-{str(self.years[0])[2:]}"
        if len(self.years) > 1:
            years += f" to {self.years[-1] - 1}-{str(self.years[-1])[2:]}"
        names = " and ".join(DATASET_NAMES[d] for d in (CIN, SSDA903) if d in self.datasets)
        return f"{names} returns in {self.root}, collection years {years}"

    def unavailable(self, t: Target, dataset: str, years_back: int = 0) -> str:
        """Why ``t`` cannot be computed from the returns, or ``""`` if it can."""
        if dataset not in self.datasets:
            return f"no {DATASET_NAMES[dataset]} returns in this output ({self.root / dataset})"
        year = t.date.year if t.date is not None else None
        needed = [year - k for k in range(years_back + 1)] if year is not None else []
        outside = [y for y in needed if y not in self.years]
        if outside:
            span = f"{self.years[0]}-{self.years[-1]}" if self.years else "none"
            return (
                f"needs the {DATASET_NAMES[dataset]} return of the year ending 31 March "
                f"{outside[0]}, but this run wrote returns for the years ending 31 March {span} "
                f"(collection_years in the config)"
            )
        return ""

    # --- CIN census ------------------------------------------------------------------------

    def cin(self, year: int) -> CinYear:
        """Every LA's CIN census return for the year ending 31 March ``year``."""
        if year not in self._cin:
            self._cin[year] = self._read_cin(year)
        return self._cin[year]

    def _read_cin(self, year: int) -> CinYear:
        from lxml import etree

        if self._cin_xslt is None:
            self._cin_xslt = etree.XSLT(etree.XML(_CIN_ROWS))
        folder = self.root / CIN / str(year)
        files = sorted(folder.glob("*.xml")) if folder.is_dir() else []
        frames = []
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        for path in files:
            if not re.fullmatch(r"\d{3}", path.stem):
                continue
            try:
                doc = etree.parse(str(path), parser)
            except (OSError, etree.XMLSyntaxError) as exc:
                raise DataError(
                    f"{path} is not well-formed XML ({exc}); fix or regenerate it "
                    f"(`trainkit validate {self.dir}` lists every problem)"
                ) from None
            root = doc.getroot()
            if root.tag != "Message" or root.find("Header") is None:
                raise DataError(
                    f"{path} is not a CIN census return (root element <{root.tag}>, expected "
                    f"<Message> with a <Header>); fix or regenerate it"
                )
            text = str(self._cin_xslt(doc))
            if not text.strip():
                continue
            frame = pd.read_csv(
                io.StringIO(text),
                sep="\t",
                header=None,
                names=list(_CIN_COLUMNS),
                dtype=str,
                na_filter=False,
                quoting=csv.QUOTE_NONE,
            )
            frame["_file"] = str(path)
            frame["_la"] = path.stem
            frames.append(frame)
        rows = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame({c: pd.Series(dtype=str) for c in (*_CIN_COLUMNS, "_file", "_la")})
        )
        if (rows["LAchildID"] == "").any():
            bad = rows.loc[rows["LAchildID"] == "", "_file"].iloc[0]
            raise DataError(f"{bad}: a <Child> has no <LAchildID>; fix or regenerate the file")
        episodes = (rows["Block"] == "CINdetails").to_numpy()
        days = {}
        for name in _CIN_DATES:
            part = rows.loc[episodes if name.startswith("CIN") else ~episodes]
            days[name] = self._dates(part, name, cin.ISO_DATE, "LAchildID")
        plans = rows.loc[~episodes]
        previous = pd.to_numeric(plans["NumberOfPreviousCPP"].str.strip(), errors="coerce")
        if previous.isna().any():
            i = int(np.flatnonzero(previous.isna().to_numpy())[0])
            raise DataError(
                f"{plans['_file'].iloc[i]}: NumberOfPreviousCPP "
                f"{plans['NumberOfPreviousCPP'].iloc[i]!r} of child "
                f"{plans['LAchildID'].iloc[i]} is not a number; fix or regenerate the file"
            )
        eps = rows.loc[episodes]
        return CinYear(
            child=_keys(eps["_la"].to_numpy(), eps["LAchildID"]),
            referred=days["CINreferralDate"],
            closed=days["CINclosureDate"],
            nfa=np.isin(_codes(eps["ReferralNFA"]), [v.upper() for v in TRUE_VALUES]),
            plan_child=_keys(plans["_la"].to_numpy(), plans["LAchildID"]),
            plan_start=days["CPPstartDate"],
            plan_end=days["CPPendDate"],
            plan_previous=previous.to_numpy(np.int64),
        )

    @staticmethod
    def _dates(rows: pd.DataFrame, name: str, date_format: str, id_column: str) -> np.ndarray:
        days, bad = _day_numbers(rows[name], date_format)
        required = name in REQUIRED_DATES
        blank = (days == NEVER) & ~bad
        if bad.any() or (required and blank.any()):
            i = int(np.flatnonzero(bad | (blank if required else False))[0])
            value = rows[name].iloc[i]
            what = (
                f"{name} {value!r} is not a date ({date_format.replace('%', '')})"
                if bad[i]
                else f"{name} is blank but required"
            )
            where = rows["_file"].iloc[i]
            row = f", row {rows['_row'].iloc[i]}" if "_row" in rows else ""
            raise DataError(
                f"{where}{row}: {what} (child {rows[id_column].iloc[i]}); fix or regenerate "
                f"the file (`trainkit validate` lists every problem)"
            )
        return days

    # --- SSDA903 ---------------------------------------------------------------------------

    def ssda903(self, year: int) -> Ssda903Year:
        """Every LA's SSDA903 return for the year ending 31 March ``year``."""
        if year not in self._903:
            self._903[year] = self._read_903(year)
        return self._903[year]

    def _read_903(self, year: int) -> Ssda903Year:
        folder = self.root / SSDA903 / str(year)
        las = (
            sorted(p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d{3}", p.name))
            if folder.is_dir()
            else []
        )
        tables = {name: self._read_903_table(las, name) for name in SSDA903_FILES}
        eps, header, uasc = tables["episodes"], tables["header"], tables["uasc"]
        header = header.loc[~pd.Series(header["_child"]).duplicated().to_numpy()]
        return Ssda903Year(
            child=eps["_child"].to_numpy(dtype=object),
            start=self._dates(eps, "DECOM", ssda903.DATE_FORMAT, "CHILD"),
            end=self._dates(eps, "DEC", ssda903.DATE_FORMAT, "CHILD"),
            rne=_codes(eps["RNE"]),
            rec=_codes(eps["REC"]),
            header_child=header["_child"].to_numpy(dtype=object),
            sex=_codes(header["SEX"]),
            dob=self._dates(header, "DOB", ssda903.DATE_FORMAT, "CHILD"),
            uasc_child=uasc["_child"].to_numpy(dtype=object),
            uasc_ceased=self._dates(uasc, "DUC", ssda903.DATE_FORMAT, "CHILD"),
        )

    def _read_903_table(self, las: list[Path], name: str) -> pd.DataFrame:
        columns = SSDA903_FILES[name]
        frames = []
        for la in las:
            path = la / f"{name}.csv"
            if not path.is_file():
                raise DataError(
                    f"{path} not found: every SSDA903 LA-year folder holds {name}.csv (a table "
                    f"with no rows is its column row alone); regenerate the output"
                )
            try:
                frame = pd.read_csv(
                    path, dtype=str, na_filter=False, encoding="utf-8", skipinitialspace=False
                )
            except pd.errors.EmptyDataError:
                raise DataError(
                    f"{path} is empty (not even its column row); fix or regenerate it"
                ) from None
            except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc)
                raise DataError(
                    f"{path} is not a readable CSV file ({reason}); fix or regenerate it"
                ) from None
            absent = [c for c in columns if c not in frame.columns]
            if absent:
                raise DataError(
                    f"{path} has no column {', '.join(map(repr, absent))}: not an SSDA903 "
                    f"{name} file; fix or regenerate it"
                )
            frame = frame.loc[:, list(columns)]
            frame["_file"] = str(path)
            frame["_row"] = np.arange(2, len(frame) + 2)  # the column row is row 1
            frame["_child"] = _keys(np.full(len(frame), la.name), frame["CHILD"])
            frames.append(frame)
        if not frames:
            return pd.DataFrame(
                {c: pd.Series(dtype=str) for c in (*columns, "_file", "_row", "_child")}
            )
        return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# Measures: each returns (numerator, denominator) like trainkit.calibrate's MEASURES
# --------------------------------------------------------------------------------------------


def _year(t: Target) -> int:
    return t.date.year  # targets end on 31 March, the last day of the collection year


def _children_in_need_at(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    return _distinct(c.child[_open_on(c.referred, c.closed, t.date)]), None


def _cp_plans_at(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    return _distinct(c.plan_child[_open_on(c.plan_start, c.plan_end, t.date)]), None


def _referrals_in_year(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    return int(np.count_nonzero(_in_year(c.referred, t.date))), None


def _cp_plans_starting(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    return int(np.count_nonzero(_in_year(c.plan_start, t.date))), None


def _referral_share(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    year = _in_year(c.referred, t.date)
    flags = {"nfa": c.nfa}
    return int(np.count_nonzero(flags[str(t.options["flag"])][year])), int(np.count_nonzero(year))


def _rereferral_share(r: Returns, t: Target) -> tuple[int, int | None]:
    """This year's referrals, and last year's for the earlier referral (a referral open across
    the two years is in both returns: this year's keeps only those received in the year)."""
    this, last = r.cin(_year(t)), r.cin(_year(t) - 1)
    received = _in_year(this.referred, t.date)
    child = np.concatenate([this.child[received], last.child])
    referred = np.concatenate([this.referred[received], last.referred])
    return _rereferrals(pd.factorize(child)[0], referred, t)


def _cp_subsequent_share(r: Returns, t: Target) -> tuple[int, int | None]:
    c = r.cin(_year(t))
    year = _in_year(c.plan_start, t.date)
    return int(np.count_nonzero(year & (c.plan_previous > 0))), int(np.count_nonzero(year))


def _looked_after(s: Ssda903Year, t: Target) -> np.ndarray:
    """The children (``"LA/CHILD"``) with an episode open at 31 March."""
    return np.unique(s.child[_open_on(s.start, s.end, t.date)])


def _looked_after_at(r: Returns, t: Target) -> tuple[int, int | None]:
    return int(_looked_after(r.ssda903(_year(t)), t).size), None


def _uasc_looked_after_at(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    still_uasc = s.uasc_child[s.uasc_ceased > _day(t.date)]
    return int(np.count_nonzero(np.isin(_looked_after(s, t), still_uasc))), None


def _looked_after_starting(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    return _distinct(s.child[(s.rne == STARTED) & _in_year(s.start, t.date)]), None


def _ceased(s: Ssda903Year, t: Target) -> np.ndarray:
    return _in_year(s.end, t.date) & (s.rec != SAME_DAY_NEW_EPISODE)


def _looked_after_ceasing(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    return _distinct(s.child[_ceased(s, t)]), None


def _looked_after_ceasing_for_reasons(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    codes = np.asarray([str(c) for c in t.options["reasons"]], dtype=object)
    return _distinct(s.child[_ceased(s, t) & np.isin(s.rec, codes)]), None


def _header_values(s: Ssda903Year, children: np.ndarray, values: np.ndarray, blank: Any):
    """``values`` (a header column) of each child; ``blank`` where the header lacks the child."""
    lookup = pd.Series(values, index=s.header_child)
    return lookup.reindex(children).fillna(blank).to_numpy()


def _looked_after_start_age_share(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    started = (s.rne == STARTED) & _in_year(s.start, t.date)
    child, start = s.child[started], s.start[started]
    first = _first_per_person(pd.factorize(child)[0], start)
    child, start = child[first], start[first]
    dob = _header_values(s, child, s.dob, NEVER).astype(np.int64)
    ages = _age_in_years(dob, start)
    return _start_age_share(ages, t)


def _age_in_years(dob: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Completed years from ``dob`` to ``on`` (day numbers); -1 where the birth date is blank."""
    known = dob != NEVER
    b = np.where(known, dob, 0).astype("datetime64[D]")
    d = on.astype("datetime64[D]")
    years = d.astype("datetime64[Y]").astype(np.int64) - b.astype("datetime64[Y]").astype(np.int64)
    month_day = _month_day(d) < _month_day(b)
    return np.where(known, years - month_day, -1)


def _month_day(days: np.ndarray) -> np.ndarray:
    months = days.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return month * 100 + day


def _looked_after_male_share(r: Returns, t: Target) -> tuple[int, int | None]:
    s = r.ssda903(_year(t))
    children = _looked_after(s, t)
    meaning = TRUTH_SEX[str(t.options["male_code"])]
    code = next(k for k, v in ssda903.SEX.items() if v == meaning)
    sex = _header_values(s, children, s.sex, "")
    return int(np.count_nonzero(sex == code)), int(children.size)


ReturnMeasure = Callable[[Returns, Target], tuple[int, int | None]]
# measure name -> (the dataset it reads, earlier years' returns it also needs, computation)
RETURN_MEASURES: dict[str, tuple[str, int, ReturnMeasure]] = {
    "children_in_need_at": (CIN, 0, _children_in_need_at),
    "cp_plans_at": (CIN, 0, _cp_plans_at),
    "referrals_in_year": (CIN, 0, _referrals_in_year),
    "cp_plans_starting": (CIN, 0, _cp_plans_starting),
    "referral_share": (CIN, 0, _referral_share),
    "rereferral_share": (CIN, 1, _rereferral_share),
    "cp_subsequent_share": (CIN, 0, _cp_subsequent_share),
    "looked_after_at": (SSDA903, 0, _looked_after_at),
    "uasc_looked_after_at": (SSDA903, 0, _uasc_looked_after_at),
    "looked_after_starting": (SSDA903, 0, _looked_after_starting),
    "looked_after_ceasing": (SSDA903, 0, _looked_after_ceasing),
    "looked_after_ceasing_for_reasons": (SSDA903, 0, _looked_after_ceasing_for_reasons),
    "looked_after_start_age_share": (SSDA903, 0, _looked_after_start_age_share),
    "looked_after_male_share": (SSDA903, 0, _looked_after_male_share),
}
# Why the other measures are not computed from the returns.
NOT_IN_RETURNS = {
    "pupil_share": "pupil figures come from the school census (NPD), not from the CIN census or "
    "SSDA903 returns",
}
REFERRAL_FLAGS = {"nfa"}  # referral_share flags the CIN census records (ReferralNFA)


def unavailable(returns: Returns, t: Target) -> str:
    """Why ``t`` cannot be computed from ``returns``, or ``""`` if it can."""
    if t.measure not in RETURN_MEASURES:
        return NOT_IN_RETURNS.get(t.measure, "not recorded in the CIN census or SSDA903 returns")
    if t.measure == "referral_share" and str(t.options.get("flag")) not in REFERRAL_FLAGS:
        return f"the CIN census does not record the referral flag {t.options.get('flag')!r}"
    dataset, years_back, _ = RETURN_MEASURES[t.measure]
    return returns.unavailable(t, dataset, years_back)


def measure(returns: Returns, t: Target) -> tuple[int, int | None]:
    """The figure ``t`` computed from the returns (see :func:`unavailable` first)."""
    return RETURN_MEASURES[t.measure][2](returns, t)

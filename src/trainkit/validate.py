"""Check a folder of agencies' files against their declarations: ``trainkit validate DIR``.

Every file under DIR (except ``truth/``, ``manifest.json``, a top-level ``README.md``,
``calibration.png`` and ``calibration-returns.png``) is matched to the
:class:`~trainkit.datasets.schema.OutputTable` whose ``path`` describes it, then checked:

* CSV: UTF-8 text, a header row equal to the declared fields in order, the same number of fields
  in every row, then every value against its :class:`~trainkit.datasets.schema.Field` (required,
  codes, pattern, length, numbers and bounds, dates in the declared format).
* Parquet: a readable file whose columns are the declared fields, column types that can hold the
  declared kinds, then the same value checks (column by column, on batches of rows).
* XML: well-formed, valid against the XSD the dataset module declares (needs ``lxml``), and the
  same value checks on the text of every element named like a declared field.

A file that matches no declaration, or a year in which its table is not collected, is a violation
too. A damaged file (empty, binary, wrong encoding, truncated) gives a violation naming the file,
never a traceback. Rows are numbered as in the file: for CSV the header is row 1 (so the first
record is row 2); for Parquet row 1 is the first record; for XML the row is the line number of the
element.

Example:
    >>> report = validate("data/default")                        # doctest: +SKIP
    >>> report.ok, report.files_checked                           # doctest: +SKIP
    (False, 1830)
    >>> print(report.format(limit=5))                             # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .calibrate import CHART_NAME, RETURNS_CHART_NAME
from .datasets.schema import Field, OutputTable
from .errors import DataError

__all__ = [
    "RULES",
    "ValidationReport",
    "add_validate_parser",
    "run_validate",
    "validate",
]

MANIFEST_NAME = "manifest.json"
CHART_NAMES = (CHART_NAME, RETURNS_CHART_NAME)  # the charts `trainkit calibrate` saves in DIR
TRUTH_FOLDER = "truth"
SPECS_DIR = Path(__file__).parent / "datasets" / "specs"
EXIT_OK, EXIT_VIOLATIONS, EXIT_ERROR = 0, 1, 2
DEFAULT_LIMIT = 50
PARQUET_BATCH_ROWS = 262_144
FLUSH_VALUES = 2_000_000  # queued CSV/XML values checked together (bounds memory)
ISO_DATE = "%Y-%m-%d"
BOOL_VALUES = ("true", "false", "1", "0")  # the lexical space of xs:boolean
INTEGER_RE = r"[+-]?\d+"
NUMBER_RE = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
COLUMNS = ("file", "row", "field", "rule", "value", "detail")
GENERATE_HINT = "run `trainkit generate --out {dir}` first"

# Every rule a violation can name, with what it means (also listed in course/reference/README.md).
RULES: dict[str, str] = {
    "manifest": "manifest.json cannot be read, or lists a file that is not in the folder",
    "unexpected_file": "the file matches no declared table",
    "not_collected": "the file is for a collection year in which its table did not exist",
    "empty_file": "the file is empty (a CSV needs at least its header row)",
    "binary": "the file holds binary data (a NUL byte), not text",
    "encoding": "the file is not valid UTF-8",
    "malformed_csv": "the CSV cannot be parsed (e.g. an unclosed quote)",
    "header": "the header row differs from the declared fields and their order",
    "field_count": "a row has a different number of fields from the header",
    "malformed_parquet": "the Parquet file cannot be read (e.g. truncated)",
    "columns": "the Parquet columns differ from the declared fields and their order",
    "type": "a Parquet column's type cannot hold the declared kind of value",
    "malformed_xml": "the XML is not well-formed (e.g. truncated)",
    "unreadable": "the file cannot be opened (e.g. no permission)",
    "xsd": "the XML is not valid against the dataset's XSD schema",
    "required": "a required field is blank",
    "code": "not one of the declared codes (exactly: a trailing space breaks it)",
    "pattern": "does not match the declared pattern",
    "max_length": "longer than the declared maximum length",
    "integer": "not a whole number",
    "number": "not a number",
    "minimum": "below the declared minimum",
    "maximum": "above the declared maximum",
    "date": "not a date in the declared format",
    "bool": "not a boolean (true, false, 1 or 0)",
}


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class ValidationReport:
    """What ``validate`` found.

    Attributes:
        data_dir: the folder checked.
        violations: one row per violation, columns ``file`` (relative to ``data_dir``), ``row``
            (as in the file, see the module docstring; empty for file-level problems), ``field``,
            ``rule`` (a key of ``RULES``), ``value`` (as found) and ``detail``.
        files_checked: the agency files looked at (truth tables and the manifest excluded).
        notes: what could not be checked, and why (e.g. XSD validity without ``lxml``).
    """

    data_dir: Path
    violations: pd.DataFrame
    files_checked: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no violation was found."""
        return self.violations.empty

    def counts(self) -> pd.DataFrame:
        """Violations counted by file and rule."""
        v = self.violations
        return v.groupby(["file", "rule"], sort=True).size().rename("violations").reset_index()

    def format(self, limit: int = DEFAULT_LIMIT) -> str:
        """A readable summary: counts by rule, by file and rule, then the first ``limit``.

        Args:
            limit: the most lines shown in each list (counts by file, and violations).

        Returns:
            Text; each violation as ``file:row field: rule ('value') - detail``.
        """
        v = self.violations
        n_files = v["file"].nunique()
        lines = [
            f"Checked {self.files_checked:,} files in {self.data_dir}: "
            + (
                "no violations."
                if self.ok
                else f"{len(v):,} violation{'s' * (len(v) != 1)} in {n_files:,} "
                f"file{'s' * (n_files != 1)}."
            )
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.ok:
            return "\n".join(lines)
        by_rule = v.groupby("rule", sort=True).size()
        lines += ["", "By rule:"]
        width = max(len(r) for r in by_rule.index)
        lines += [
            f"  {rule:<{width}}  {n:>9,}  {RULES.get(rule, '')}" for rule, n in by_rule.items()
        ]
        counts = self.counts()
        lines += ["", "By file and rule:"]
        shown = counts.head(limit)
        fw = max((len(f) for f in shown["file"]), default=0)
        rw = max((len(r) for r in shown["rule"]), default=0)
        lines += [
            f"  {r.file:<{fw}}  {r.rule:<{rw}}  {r.violations:>9,}" for r in shown.itertuples()
        ]
        if len(counts) > limit:
            lines.append(f"  ... and {len(counts) - limit:,} more file/rule pairs")
        first = min(limit, len(v))
        lines += ["", f"First {first:,} violation{'s' * (first != 1)}:"]
        lines += ["  " + _describe(r) for r in v.head(limit).itertuples(index=False)]
        if len(v) > limit:
            lines.append(f"  ... and {len(v) - limit:,} more (write them all with --out FILE)")
        return "\n".join(lines)


def _describe(r) -> str:
    where = r.file if pd.isna(r.row) else f"{r.file}:{int(r.row)}"
    text = (
        f"{where} {r.field}: {r.rule}"
        if isinstance(r.field, str) and r.field
        else (f"{where}: {r.rule}")
    )
    if isinstance(r.value, str):
        text += f" ({r.value!r})"
    if isinstance(r.detail, str) and r.detail:
        text += f" - {r.detail}"
    return text


class _Found:
    """Collects violations as small frames, one per check that found any.

    Values of small files (CSV returns, XML) are queued by field and checked together, a few
    large checks being much faster than thousands of small ones.
    """

    def __init__(self, flush_at: int = FLUSH_VALUES) -> None:
        self.parts: list[pd.DataFrame] = []
        self.queued: dict[int, tuple[Field, list[tuple[str, np.ndarray, pa.Array]]]] = {}
        self.n_queued = 0
        self.flush_at = flush_at

    def queue(self, file: str, f: Field, rows: np.ndarray, values: pa.Array | np.ndarray) -> None:
        """Check these values of field ``f`` later (see :meth:`flush`)."""
        if not isinstance(values, pa.Array | pa.ChunkedArray):
            values = pa.array(values, type=pa.string())
        self.queued.setdefault(id(f), (f, []))[1].append((file, rows, values))
        self.n_queued += len(rows)
        if self.n_queued >= self.flush_at:
            self.flush()

    def flush(self) -> None:
        """Check every queued value."""
        for f, items in self.queued.values():
            files = np.concatenate([np.full(len(r), file, dtype=object) for file, r, _ in items])
            rows = np.concatenate([r for _, r, _ in items])
            values = pa.chunked_array([v for _, _, v in items], type=pa.string())
            _check_strings(self, files, f, values, rows)
        self.queued.clear()
        self.n_queued = 0

    def one(
        self,
        file: str,
        rule: str,
        *,
        row: int | None = None,
        field_name: str | None = None,
        value: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.parts.append(
            pd.DataFrame(
                {
                    "file": [file],
                    "row": pd.array([row], dtype="Int64"),
                    "field": [field_name],
                    "rule": [rule],
                    "value": [value],
                    "detail": [detail],
                }
            )
        )

    def many(
        self,
        file: str | np.ndarray,
        field_name: str | None,
        rule: str,
        rows: np.ndarray,
        values: np.ndarray,
    ) -> None:
        if len(rows) == 0:
            return
        self.parts.append(
            pd.DataFrame(
                {
                    "file": file,
                    "row": pd.array(rows, dtype="Int64"),
                    "field": field_name,
                    "rule": rule,
                    "value": np.asarray(values, dtype=object),
                    "detail": None,
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        self.flush()
        if not self.parts:
            return pd.DataFrame(
                {c: pd.array([], dtype="Int64" if c == "row" else object) for c in COLUMNS}
            )
        out = pd.concat(self.parts, ignore_index=True)
        out["row"] = out["row"].astype("Int64")
        for c in ("file", "field", "rule", "value", "detail"):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        return out[list(COLUMNS)]


# --------------------------------------------------------------------------------------------
# Value checks (shared by CSV, Parquet and XML)


def _parse_dates(values: pd.Series, fmt: str) -> np.ndarray:
    """True where a value parses as a date in ``fmt`` (strptime rules; any year)."""
    parsed = pd.to_datetime(values, format=fmt, errors="coerce").notna().to_numpy().copy()
    for i in np.flatnonzero(~parsed):  # out of pandas' range (e.g. 01/01/9999): ask strptime
        try:
            dt.datetime.strptime(values.iloc[i], fmt)
        except ValueError:
            continue
        parsed[i] = True
    return parsed


def _fullmatch(values: pd.Series, pattern: str) -> np.ndarray:
    return values.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def string_rules(f: Field, values: pd.Series) -> list[tuple[str, np.ndarray]]:
    """Check text values against a field's declaration.

    Args:
        f: the declared field.
        values: the values as found (strings; ``''`` for blank). Checked one by one, so pass
            distinct values where there are many repeats.

    Returns:
        ``(rule, mask)`` pairs, the mask True where the value breaks the rule.
    """
    values = values.astype("str").reset_index(drop=True)
    out: list[tuple[str, np.ndarray]] = []
    blank = (values.str.strip() == "").to_numpy(dtype=bool)
    present = (values != "").to_numpy(dtype=bool)
    if f.required:
        out.append(("required", blank))
        present = present & ~blank
    if f.codes:
        out.append(("code", present & ~values.isin(list(f.codes)).to_numpy(dtype=bool)))
    numbers = None
    if f.kind == "int":
        ok = _fullmatch(values, INTEGER_RE)
        out.append(("integer", present & ~ok))
        numbers = pd.to_numeric(values.where(ok & present), errors="coerce").to_numpy(float)
    elif f.kind == "float":
        ok = _fullmatch(values, NUMBER_RE)
        out.append(("number", present & ~ok))
        numbers = pd.to_numeric(values.where(ok & present), errors="coerce").to_numpy(float)
    elif f.kind == "date":
        fmt = f.date_format or ISO_DATE
        out.append(("date", present & ~_parse_dates(values, fmt)))
    elif f.kind == "bool" and not f.codes:
        out.append(("bool", present & ~values.isin(BOOL_VALUES).to_numpy(dtype=bool)))
    if numbers is not None:
        out += _bounds(f, numbers)
    if f.pattern is not None:
        out.append(("pattern", present & ~_fullmatch(values, f.pattern)))
    if f.max_length is not None:
        out.append(("max_length", present & (values.str.len().to_numpy() > f.max_length)))
    return [(rule, mask) for rule, mask in out if mask.any()]


def _bounds(f: Field, numbers: np.ndarray) -> list[tuple[str, np.ndarray]]:
    out = []
    with np.errstate(invalid="ignore"):
        if f.minimum is not None:
            out.append(("minimum", numbers < f.minimum))
        if f.maximum is not None:
            out.append(("maximum", numbers > f.maximum))
    return out


def _check_strings(
    found: _Found,
    file: str | np.ndarray,
    f: Field,
    values: pa.Array | pa.ChunkedArray | np.ndarray,
    rows: np.ndarray,
) -> None:
    """Check a column of text, value by distinct value, and record the rows that break a rule.

    Args:
        found: where violations go.
        file: the file, relative to DIR (one, or one per value).
        f: the declared field.
        values: the column (an Arrow string array, or a numpy array of str; nulls are blank).
        rows: each value's row number in the file.
    """
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(values, type=pa.string())
    encoded = pc.dictionary_encode(pc.fill_null(values.cast(pa.string()), ""))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    uniques = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype="str")
    for rule, mask in string_rules(f, uniques):
        hit = mask[codes]
        files = file if isinstance(file, str) else file[hit]
        found.many(files, f.name, rule, rows[hit], uniques.to_numpy(dtype=object)[codes[hit]])


# --------------------------------------------------------------------------------------------
# CSV


def _read_text(found: _Found, rel: str, path: Path) -> str | None:
    """The file's text, or None after recording why it is not UTF-8 text."""
    data = path.read_bytes()
    if not data.strip():
        found.one(rel, "empty_file", detail="no header row")
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        found.one(rel, "binary", row=line, detail=f"NUL byte at line {line}: not a text file")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        found.one(
            rel,
            "encoding",
            row=line,
            detail=f"byte 0x{data[exc.start]:02x} at line {line} is not UTF-8",
        )
        return None


def _check_csv(found: _Found, rel: str, path: Path, table: OutputTable) -> None:
    text = _read_text(found, rel, path)
    if text is None:
        return
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        found.one(
            rel,
            "malformed_csv",
            row=reader.line_num,
            detail=f"cannot parse the CSV at line {reader.line_num}: {exc}",
        )
        return
    if not rows:
        found.one(rel, "empty_file", detail="no header row")
        return
    header, records = rows[0], rows[1:]
    expected = table.field_names
    if header != expected:
        found.one(
            rel, "header", row=1, value=",".join(header), detail=_header_detail(header, expected)
        )
    lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
    row_numbers = np.arange(2, len(records) + 2)
    wrong = lengths != len(header)
    found.many(
        rel,
        None,
        "field_count",
        row_numbers[wrong],
        np.char.add(lengths[wrong].astype(str), f" fields, the header has {len(header)}"),
    )
    good = [r for r, bad in zip(records, wrong, strict=True) if not bad] if wrong.any() else records
    if not good:
        return
    frame = pd.DataFrame(good, dtype=object)
    rows_good = row_numbers[~wrong]
    for f in table.fields:
        if f.name in header:
            found.queue(rel, f, rows_good, frame[header.index(f.name)].to_numpy())


def _header_detail(found_names: Sequence[str], expected: Sequence[str]) -> str:
    missing = [n for n in expected if n not in found_names]
    extra = [n for n in found_names if n not in expected]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(repr(n) for n in extra))
    if not parts:
        parts.append("the columns are in a different order")
    return "; ".join(parts) + f" (expected {','.join(expected)})"


# --------------------------------------------------------------------------------------------
# Parquet


def _check_parquet(found: _Found, rel: str, path: Path, table: OutputTable) -> None:
    if path.stat().st_size == 0:
        found.one(rel, "empty_file")
        return
    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as exc:
        found.one(rel, "malformed_parquet", detail=f"cannot read the Parquet file: {exc}")
        return
    expected = table.field_names
    if names != expected:
        found.one(rel, "columns", value=",".join(names), detail=_header_detail(names, expected))
    fields = [f for f in table.fields if f.name in names]
    typed = {}
    for f in fields:
        problem = _type_problem(f, pf.schema_arrow.field(f.name).type)
        if problem:
            found.one(rel, "type", field_name=f.name, detail=problem)
        else:
            typed[f.name] = f
    offset = 0
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(typed)):
            rows = np.arange(offset + 1, offset + batch.num_rows + 1)
            for name, f in typed.items():
                _check_arrow(found, rel, f, batch.column(name), rows)
            offset += batch.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        found.one(
            rel,
            "malformed_parquet",
            row=offset + 1,
            detail=f"cannot read the rows from {offset + 1:,} on: {exc}",
        )


def _type_problem(f: Field, t: pa.DataType) -> str | None:
    """Why a column of type ``t`` cannot hold the field's kind (None when it can)."""
    textual = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    if pa.types.is_dictionary(t):
        return _type_problem(f, t.value_type)
    if textual or pa.types.is_null(t):
        return None
    if pa.types.is_integer(t) and f.kind in ("int", "float", "code", "string"):
        return None
    if pa.types.is_floating(t) and f.kind in ("int", "float"):
        return None
    if (pa.types.is_date(t) or pa.types.is_timestamp(t)) and f.kind == "date":
        return None
    if pa.types.is_boolean(t) and f.kind == "bool":
        return None
    return f"a {f.kind} field stored as {t}"


def _check_arrow(found: _Found, rel: str, f: Field, col: pa.Array, rows: np.ndarray) -> None:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if pa.types.is_null(t):
        if f.required:
            found.many(rel, f.name, "required", rows, np.full(len(rows), None, dtype=object))
        return
    textual = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
    as_text = textual or (
        pa.types.is_integer(t) and (f.kind in ("code", "string") or f.pattern or f.max_length)
    )
    if as_text:
        _check_strings(found, rel, f, col, rows)
        return
    missing = col.is_null().to_numpy(zero_copy_only=False)
    if numeric:
        numbers = col.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        missing = missing | np.isnan(numbers)
        rules = _bounds(f, numbers)
        if f.kind == "int" and pa.types.is_floating(t):
            with np.errstate(invalid="ignore"):
                rules.append(("integer", ~missing & (numbers != np.floor(numbers))))
        if f.codes:
            in_codes = pc.is_in(col.cast(pa.string()), pa.array(list(f.codes))).to_numpy(
                zero_copy_only=False
            )
            rules.append(("code", ~missing & ~in_codes))
        for rule, mask in rules:
            if mask.any():
                shown = pc.take(col, pa.array(np.flatnonzero(mask))).cast(pa.string())
                found.many(rel, f.name, rule, rows[mask], shown.to_numpy(zero_copy_only=False))
    if f.required and missing.any():
        found.many(rel, f.name, "required", rows[missing], np.full(missing.sum(), "", object))


# --------------------------------------------------------------------------------------------
# XML


class _ElementText:
    """Collects the text of each leaf element named like a declared field, with its line.

    An element that holds other elements (e.g. ``<Disabilities>``) has no value of its own and is
    skipped.
    """

    def __init__(self, names: Iterable[str], parser) -> None:
        self.names = set(names)
        self.parser = parser
        self.stack: list[list | None] = []  # per open element: [name, line, text parts, is_leaf]
        self.values: dict[str, list[str]] = {n: [] for n in self.names}
        self.lines: dict[str, list[int]] = {n: [] for n in self.names}

    def start(self, name: str, _attrs) -> None:
        if self.stack and self.stack[-1] is not None:
            self.stack[-1][3] = False
        local = name.rsplit(":", 1)[-1]
        self.stack.append(
            [local, self.parser.CurrentLineNumber, [], True] if local in self.names else None
        )

    def text(self, data: str) -> None:
        if self.stack and self.stack[-1] is not None:
            self.stack[-1][2].append(data)

    def end(self, _name: str) -> None:
        top = self.stack.pop()
        if top is not None and top[3]:
            local, line, parts, _ = top
            self.values[local].append("".join(parts))
            self.lines[local].append(line)


def _check_xml(
    found: _Found,
    rel: str,
    path: Path,
    tables: Sequence[OutputTable],
    xsd: Path | None,
    notes: list[str],
) -> None:
    if path.stat().st_size == 0:
        found.one(rel, "empty_file", detail="no XML document")
        return
    fields: dict[str, Field] = {}
    for t in tables:
        for f in t.fields:
            fields.setdefault(f.name, f)
    parser = expat.ParserCreate()
    collect = _ElementText(fields, parser)
    parser.StartElementHandler = collect.start
    parser.EndElementHandler = collect.end
    parser.CharacterDataHandler = collect.text
    parser.buffer_text = True
    well_formed = True
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except expat.ExpatError as exc:
        well_formed = False
        found.one(
            rel,
            "malformed_xml",
            row=exc.lineno,
            detail=f"malformed XML at line {exc.lineno}: {expat.ErrorString(exc.code)}",
        )
    for name, f in fields.items():
        if collect.values[name]:
            found.queue(rel, f, np.asarray(collect.lines[name]), collect.values[name])
    if well_formed and xsd is not None:
        _check_xsd(found, rel, path, xsd, notes)


_XSD_CACHE: dict[Path, object] = {}
_LXML_ELEMENT = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")
_LXML_VALUE = re.compile(r"The value '(.*?)' ")


def _check_xsd(found: _Found, rel: str, path: Path, xsd: Path, notes: list[str]) -> None:
    try:
        from lxml import etree
    except ImportError:
        note = "XSD validity not checked: install lxml (`pip install lxml`) to check it"
        if note not in notes:
            notes.append(note)
        return
    if xsd not in _XSD_CACHE:
        try:
            _XSD_CACHE[xsd] = etree.XMLSchema(etree.parse(str(xsd)))
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            _XSD_CACHE[xsd] = None
            notes.append(f"XSD validity not checked: cannot load {xsd} ({exc})")
    schema = _XSD_CACHE[xsd]
    if schema is None:
        return
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        doc = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:  # expat accepted it; libxml2 may still object
        line = exc.lineno or None
        found.one(rel, "malformed_xml", row=line, detail=f"malformed XML at line {line}: {exc}")
        return
    if schema.validate(doc):
        return
    for err in schema.error_log:
        element = _LXML_ELEMENT.search(err.message)
        value = _LXML_VALUE.search(err.message)
        found.one(
            rel,
            "xsd",
            row=err.line or None,
            field_name=element.group(1) if element else None,
            value=value.group(1) if value else None,
            detail=f"{err.message} ({xsd.name})",
        )


def _xsd_for(table: OutputTable, schemas: Mapping[str, str | Path | None] | None) -> Path | None:
    """The XSD a table's XML must satisfy.

    Looked up in order: ``schemas[table.name]``; the dataset module's ``XSD`` or ``XSD_PATH``
    attribute (a path, or a mapping of table name to path); a file
    ``specs/<DATASET>_schema*.xsd`` (the latest by name). Relative paths are taken in
    ``src/trainkit/datasets/specs/``.
    """
    found: str | Path | None = None
    if schemas is not None and table.name in schemas:
        found = schemas[table.name]
    else:
        module = _module_of(table)
        declared = None
        if module is not None:
            declared = getattr(module, "XSD", None) or getattr(module, "XSD_PATH", None)
        if isinstance(declared, Mapping):
            declared = declared.get(table.name)
        if declared:
            found = declared
        elif SPECS_DIR.is_dir():
            candidates = sorted(SPECS_DIR.glob(f"{table.dataset.upper()}_schema*.xsd"))
            found = candidates[-1] if candidates else None
    if found is None:
        return None
    path = Path(found)
    return path if path.is_absolute() else SPECS_DIR / path


def _module_of(table: OutputTable):
    from .datasets import registry

    for m in registry.MODULES:
        if table in m.TABLES:
            return m
    return None


# --------------------------------------------------------------------------------------------
# The folder


def _check_root(root: Path) -> None:
    hint = GENERATE_HINT.format(dir=root)
    if not root.exists():
        raise DataError(f"{root}: no such folder; {hint}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of trainkit output; {hint}")
    if not (root / MANIFEST_NAME).is_file():
        raise DataError(
            f"{root}: no {MANIFEST_NAME}, so this is not a folder written by trainkit; {hint}"
        )


def _check_manifest(found: _Found, root: Path) -> None:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
        listed = manifest.get("files", {}) if isinstance(manifest, dict) else None
        if not isinstance(listed, dict):
            raise ValueError("it has no object of files")
    except (ValueError, UnicodeDecodeError) as exc:
        found.one(MANIFEST_NAME, "manifest", detail=f"cannot read {MANIFEST_NAME}: {exc}")
        return
    for name in sorted(listed):
        if not name.startswith(f"{TRUTH_FOLDER}/") and not (root / name).is_file():
            found.one(MANIFEST_NAME, "manifest", value=name, detail="listed file is missing")


def validate(
    data_dir: str | Path,
    tables: Sequence[OutputTable] | None = None,
    *,
    schemas: Mapping[str, str | Path | None] | None = None,
) -> ValidationReport:
    """Check every agency file under ``data_dir`` against its declaration.

    Args:
        data_dir: a folder written by ``trainkit generate``.
        tables: the declarations to check against (default: every table of the registered
            dataset modules, ``registry.output_tables()``).
        schemas: XSD files for XML tables, by table name (None: no XSD; tables not listed get
            what the dataset module declares, see :func:`_xsd_for`).

    Returns:
        The report; ``report.ok`` is True when nothing breaks a declared rule.

    Raises:
        DataError: when ``data_dir`` is missing, not a folder, has no ``manifest.json``, or holds
            no agency files at all.
    """
    root = Path(data_dir)
    _check_root(root)
    if tables is None:
        from .datasets import registry

        tables = registry.output_tables()
    matchers = [(t, t.path_regex()) for t in tables]
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(f"{TRUTH_FOLDER}/")
    )
    # the manifest, and a README or calibration chart a person put beside the data, are not
    # agency files
    files = [f for f in files if f not in (MANIFEST_NAME, "README.md", *CHART_NAMES)]
    if not files:
        raise DataError(
            f"{root}: no agency files (only the truth tables and the manifest); regenerate with "
            "a trainkit version that writes the returns and extracts"
        )
    found = _Found()
    notes: list[str] = []
    _check_manifest(found, root)
    for rel in files:
        matched = [(t, m) for t, rx in matchers if (m := rx.match(rel))]
        if not matched:
            found.one(rel, "unexpected_file", detail="no declared table has this path")
            continue
        year = matched[0][1].groupdict().get("year")
        table = matched[0][0]
        if year is not None and not table.exists_in(int(year)):
            found.one(rel, "not_collected", value=year, detail=f"{table.name} {_collected(table)}")
        try:
            _check_file(found, rel, root / rel, [t for t, _ in matched], schemas, notes)
        except OSError as exc:
            found.one(rel, "unreadable", detail=f"cannot read the file: {exc.strerror or exc}")
    if any(t.format == "xml" and _xsd_for(t, schemas) is None for t in tables):
        notes.append(
            "XML tables without an XSD ("
            + ", ".join(t.name for t in tables if t.format == "xml" and not _xsd_for(t, schemas))
            + "): only well-formedness and the declared fields were checked"
        )
    violations = found.frame()
    order = np.lexsort((violations["row"].fillna(0).to_numpy(), violations["file"].to_numpy()))
    violations = violations.iloc[order].reset_index(drop=True)
    return ValidationReport(root, violations, len(files), notes)


def _check_file(
    found: _Found,
    rel: str,
    path: Path,
    tables: list[OutputTable],
    schemas: Mapping[str, str | Path | None] | None,
    notes: list[str],
) -> None:
    """Check one file against the first declaration matching it (all of them, for XML)."""
    table = tables[0]
    if table.format == "csv":
        _check_csv(found, rel, path, table)
    elif table.format == "parquet":
        _check_parquet(found, rel, path, table)
    elif table.format == "xml":
        xmls = [t for t in tables if t.format == "xml"]
        _check_xml(found, rel, path, xmls, _xsd_for(table, schemas), notes)
    else:
        raise DataError(f"{table.name}: no checker for format {table.format!r}")


def _collected(t: OutputTable) -> str:
    if t.first_year is not None and t.last_year is not None:
        return f"is collected from {t.first_year} to {t.last_year}"
    if t.first_year is not None:
        return f"is collected from {t.first_year}"
    return f"is collected up to {t.last_year}"


# --------------------------------------------------------------------------------------------
# Command line


def add_validate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``trainkit validate DIR [--limit N] [--out FILE]`` to a CLI.

    Sets ``func=run_validate`` as the sub-command's default.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The new sub-parser.
    """
    parser = subparsers.add_parser(
        "validate",
        help="check the agencies' files in a dataset folder against their declarations",
        description=(
            "Check every return, extract and identity file in DIR against its declaration "
            "(columns, codes, patterns, lengths, dates, XSD) and print a summary of the "
            "violations. Exit status 0 if there are none, 1 if there are, 2 if DIR is unusable. "
            "At --messiness realistic or heavy the files break rules on purpose."
        ),
    )
    parser.add_argument("dir", metavar="DIR", type=Path, help="folder written by trainkit generate")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N lines in each list (default {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="write every violation to this CSV file"
    )
    parser.set_defaults(func=run_validate)
    return parser


def run_validate(args: argparse.Namespace) -> int:
    """Run ``trainkit validate`` from parsed arguments.

    Args:
        args: with ``dir``, ``limit`` and ``out`` (see :func:`add_validate_parser`).

    Returns:
        0 if no violations, 1 if any, 2 if DIR is missing or unusable (one ``error:`` line).
    """
    try:
        if args.limit is not None and args.limit < 0:
            raise DataError(f"--limit must be 0 or more, got {args.limit}")
        report = validate(args.dir)
        if args.out is not None:
            try:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                report.violations.to_csv(args.out, index=False)
            except OSError as exc:
                raise DataError(f"--out: cannot write {args.out} ({exc.strerror})") from None
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(report.format(limit=args.limit))
    if args.out is not None:
        print(f"Wrote {len(report.violations):,} violations to {args.out}")
    return EXIT_OK if report.ok else EXIT_VIOLATIONS

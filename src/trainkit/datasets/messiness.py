"""Recording errors: the generic mistakes every agency makes when it keys a child's details.

Every dataset module calls :func:`apply` on each of its tables before returning it. For each
field with a ``semantic`` (see :data:`trainkit.datasets.schema.SEMANTICS`), the error types that
can happen to that kind of value are applied at the rates of the run's messiness level, read from
``params/messiness.yaml`` (every rate overridable in the config as ``messiness.<name>``):

- names: keyboard typos, nicknames and spelling variants, case changes, hyphens and apostrophes
  removed or replaced, forename and surname swapped;
- dates: day and month transposed, a day out, a sentinel date, a wrong century, and for
  unaccompanied asylum-seeking children an assessed birthday of 1 January;
- UPNs: blank, an unknown code (UN5), a wrong check letter, transposed digits, a lost digit;
- NHS numbers: blank, a wrong check digit, transposed digits;
- postcodes: the previous address's postcode, blank, no space, lower case, outward code only;
- codes (sex, ethnicity, other code lists): a trailing space, lower case, a not-stated code
  (NOBT, REFU, N0; gender 0 or 9), and ethnicity recoded within its major group;
- whole records: written twice.

Rates are per *eligible* value (a value the error can happen to: a UPN gets a transposition only
if the two digits differ, a date a day/month swap only if the day is 12 or less) for the
reference group, multiplied for the subgroups the evidence says get more errors (names from
non-English-language traditions, unaccompanied asylum-seeking children, children who moved,
children in deprived areas). At most one error type changes a given field of a given record.
``docs/messiness.md`` tables every error type with its rates, the DfE rule it breaks or the
documented anomaly it copies, and its source.

Every change is logged to ``ctx.errors`` (dataset, file, record identifier as recorded, field,
error type, value before and after), one call per error type and field. Every draw comes from
``ctx.rng("messiness.<table>")``, never from the truth's streams, so the truth never changes;
at ``clean`` the frame is returned untouched.

Example:
    >>> out = apply(ctx, table, frame, dataset="pupils", record_id="UPN",  # doctest: +SKIP
    ...             files="identified/pupils.parquet", person_ids=person_ids)
    >>> person_ids[out.index.to_numpy()]  # the person of each output row  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from ..simulate.context import add_years
from . import record
from .identifiers import UPN_LETTERS
from .record import RecordContext
from .schema import Field, OutputTable

PARAM_SECTION = "messiness"
LEVELS = ("realistic", "heavy")  # levels with rates; "clean" has none
RECORD = "record"  # ``applies_to`` of error types that act on whole records
SUBGROUPS = ("name_tradition", "uasc", "moved", "deprived")
"""Subgroups with a rate multiplier (parameter ``subgroup_<name>``); see :func:`subgroup_masks`."""

# --------------------------------------------------------------------------------------------
# Reference lists (data, not rates)
# --------------------------------------------------------------------------------------------

NAME_VARIANT_GROUPS: tuple[tuple[str, ...], ...] = (
    # spellings of one name: each is recorded as any other
    ("Mohammed", "Muhammad", "Mohammad", "Mohamed", "Muhammed", "Mohamad"),
    ("Ahmed", "Ahmad"), ("Hussain", "Hussein", "Husain"), ("Yusuf", "Yousef", "Yousuf"),
    ("Fatima", "Fatimah"), ("Aisha", "Ayesha", "Aysha"), ("Zainab", "Zaynab"),
    ("Hamza", "Hamzah"), ("Ibrahim", "Ebrahim"), ("Mustafa", "Mostafa"), ("Omar", "Umar"),
    ("Osman", "Usman"), ("Elliot", "Elliott"), ("Mathew", "Matthew"), ("Philip", "Phillip"),
    ("Stewart", "Stuart"), ("Rachael", "Rachel"), ("Tracey", "Tracy"), ("Lynn", "Lynne"),
    ("Carol", "Carole"), ("Clare", "Claire"), ("Sara", "Sarah"), ("Glen", "Glenn"),
    ("Alan", "Allan", "Allen"), ("Gemma", "Jemma"), ("Katy", "Katie"), ("Lee", "Leigh"),
    ("Sean", "Shaun", "Shawn"), ("Damian", "Damien"), ("Connor", "Conor"),
    ("Aidan", "Aiden", "Aedan"), ("Callum", "Calum"), ("Marc", "Mark"), ("Martin", "Martyn"),
    ("Gary", "Garry"), ("Lindsey", "Lindsay"), ("Holly", "Hollie"), ("Dennis", "Denis"),
    ("Graham", "Graeme"), ("Ian", "Iain"), ("Steven", "Stephen"),
    ("Catherine", "Katherine", "Kathryn"), ("Deborah", "Debra"), ("Linda", "Lynda"),
    ("Amy", "Aimee"), ("Abbie", "Abby"), ("Joanne", "Joanna"), ("Jane", "Jayne"),
    ("Niamh", "Neve"), ("Siobhan", "Shivaun"), ("Antony", "Anthony"),
)  # fmt: skip
"""Spelling variants of one name (each recorded as another of its group). Written for trainkit
from common English spellings and common romanisations of Arabic names; not frequency-weighted."""

NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Will", "Bill", "Billy", "Liam"), "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Robert": ("Rob", "Bob", "Robbie"), "Richard": ("Rich", "Rick", "Ricky"),
    "James": ("Jim", "Jimmy", "Jamie"), "Thomas": ("Tom", "Tommy"),
    "Michael": ("Mike", "Mick", "Mikey"), "Christopher": ("Chris", "Kit"),
    "Alexander": ("Alex", "Sandy"), "Alexandra": ("Alex", "Sasha", "Lexi"),
    "Nicholas": ("Nick", "Nicky"), "Jonathan": ("Jon", "Jonny"), "Joseph": ("Joe", "Joey"),
    "Joshua": ("Josh",), "Benjamin": ("Ben", "Benji"), "Samuel": ("Sam", "Sammy"),
    "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony", "Ant"),
    "Andrew": ("Andy", "Drew"), "David": ("Dave", "Davey"), "Edward": ("Ed", "Eddie", "Ted"),
    "Charles": ("Charlie", "Chas"), "Frederick": ("Fred", "Freddie"), "Henry": ("Harry", "Hal"),
    "Kenneth": ("Ken", "Kenny"), "Stephen": ("Steve",), "Steven": ("Steve",),
    "Timothy": ("Tim",), "Patrick": ("Pat", "Paddy"), "Gregory": ("Greg",), "Jacob": ("Jake",),
    "Katherine": ("Kate", "Kathy"), "Catherine": ("Kate", "Cathy"),
    "Margaret": ("Maggie", "Meg", "Peggy"), "Rebecca": ("Becky", "Becca"),
    "Jennifer": ("Jen", "Jenny"), "Jessica": ("Jess",), "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam", "Sammy"), "Natasha": ("Tasha",), "Abigail": ("Abi", "Abby"),
    "Charlotte": ("Lottie", "Charlie"), "Eleanor": ("Ellie", "Nell"), "Susan": ("Sue",),
    "Patricia": ("Pat", "Trish"), "Deborah": ("Debbie",), "Amanda": ("Mandy",),
    "Stephanie": ("Steph",), "Josephine": ("Jo", "Josie"), "Francesca": ("Fran", "Frankie"),
    "Georgina": ("Georgie", "Gina"), "Olivia": ("Liv",),
    "Oluwafemi": ("Femi",), "Oluwasegun": ("Segun",), "Oluwole": ("Wole",),
    "Olanrewaju": ("Lanre",), "Ayodeji": ("Deji",), "Adedayo": ("Dayo",),
}  # fmt: skip
"""Short forms of forenames (one way: William may be recorded as Bill). Written for trainkit
from common English short forms and common Yoruba short forms; not frequency-weighted."""

ETHNICITY_MAJOR_GROUPS: tuple[tuple[str, ...], ...] = (
    ("WBRI", "WIRI", "WOTH", "WIRT", "WROM"),
    ("MWBC", "MWBA", "MWAS", "MOTH"),
    ("AIND", "APKN", "ABAN", "AOTH"),
    ("BCRB", "BAFR", "BOTH"),
    ("CHNE", "AOTH", "OOTH"),
    ("OOTH", "MOTH", "AOTH"),
)
"""DfE ethnicity codes that are recorded for one another: the same major group, Chinese with
the Asian and 'other' codes it is often confused with (the 2011 census moved Chinese into the
Asian group), and 'any other' with the other 'other' codes."""

NOT_STATED = re.compile(
    r"not (stated|known|recorded|obtained|yet obtained|specified)|^refused|unknown", re.IGNORECASE
)
"""A code whose meaning matches this is a field's not-stated code (NOBT, REFU, gender 0, N0...)."""

SEPARATORS = ("-", " ", "'")
"""Characters that join or split the parts of a name (Smith-Jones, Abdul Rahman, O'Brien)."""

KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
"""QWERTY letter rows, for typos that hit a neighbouring key."""

UPN_DIGITS_FROM = 4
"""Index of the first UPN character a keying slip is drawn in (after the check letter and LA:
the establishment number, year and serial)."""

EPOCH_YEAR = 1970  # datetime64[Y] counts years from 1970
CENTURY = 100
CENTURY_PIVOT = 1950  # a wrong century takes years from this one back 100, earlier ones on 100
NHS_BODY = 9  # digits before the check digit
NHS_SPACED = 12  # length of '943 476 5919'
UPN_LENGTH = 13
UPN_UNKNOWN_FOR_ERRORS = "UN5"  # CBDS CS051: discrepancies prevent reliable matching

# --------------------------------------------------------------------------------------------
# The catalogue of error types and their rates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorType:
    """One kind of recording error, as declared in ``params/messiness.yaml``.

    Attributes:
        name: the ``error_type`` written to the error log.
        applies_to: field semantics it can happen to, or ``("record",)`` for whole records.
        subgroups: multipliers (``subgroup_<name>`` parameters) that raise its rate.
        only: a subgroup it is restricted to (None: everyone).
        breaks: the DfE rule it breaks or the documented anomaly it copies.
        unit: what the rate is a probability of.
        evidence: the source, or the assumption and its reasoning.
    """

    name: str
    applies_to: tuple[str, ...]
    subgroups: tuple[str, ...]
    only: str | None
    breaks: str
    unit: str
    evidence: str


def _yaml() -> dict[str, Any]:
    text = resources.files("trainkit").joinpath("params", f"{PARAM_SECTION}.yaml").read_text()
    return yaml.safe_load(text)


@functools.cache
def error_types() -> dict[str, ErrorType]:
    """Every error type, in the order of ``params/messiness.yaml``."""
    out = {}
    for name, spec in _yaml().items():
        if "applies_to" not in spec:
            continue
        evidence = spec.get("source") or f"Assumption: {spec.get('assumption')}"
        out[name] = ErrorType(
            name=name,
            applies_to=tuple(spec["applies_to"]),
            subgroups=tuple(spec.get("subgroups") or ()),
            only=spec.get("only"),
            breaks=spec["breaks"],
            unit=spec.get("unit", ""),
            evidence=evidence,
        )
    return out


@functools.cache
def _file_parameters():
    from ..parameters import _load_file

    return _load_file(PARAM_SECTION)


def parameter(ctx: RecordContext, key: str) -> Any:
    """A parameter's value: from ``ctx.params`` (with config overrides), else from the file.

    Args:
        ctx: the record context.
        key: ``section.name``; a bare name is looked up in the messiness section.
    """
    full = key if "." in key else f"{PARAM_SECTION}.{key}"
    if full in ctx.params:
        return ctx.params[full]
    if full.startswith(f"{PARAM_SECTION}."):
        return _file_parameters()[full].value
    raise KeyError(f"no parameter named {full!r}")


def catalogue_markdown() -> str:
    """The tables ``docs/messiness.md`` carries: every error type with its shipped rates, rule
    and source, then the subgroup multipliers (regenerate with
    ``python -m trainkit.datasets.messiness``)."""
    entries = {k.split(".", 1)[1]: p for k, p in _file_parameters().items()}

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"

    lines = [
        "| error type | fields (semantic) | realistic | heavy | subgroups | rule broken or "
        "anomaly copied | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for et in error_types().values():
        v = entries[et.name].value
        groups = ", ".join(et.subgroups) + (f"only {et.only}" if et.only else "")
        lines.append(
            row(
                [
                    f"`{et.name}`",
                    ", ".join(et.applies_to),
                    f"{v['realistic']:g}",
                    f"{v['heavy']:g}",
                    groups or "-",
                    et.breaks,
                    et.evidence,
                ]
            )
        )
    lines += ["", "| subgroup | multiplier | who | evidence |", "|---|---|---|---|"]
    for g in SUBGROUPS:
        e = entries[f"subgroup_{g}"]
        evidence = e.source or f"Assumption: {e.assumption}"
        lines.append(row([f"`{g}`", f"{e.value:g}", e.unit, evidence]))
    return "\n".join(lines) + "\n"


DOCS_START = "<!-- catalogue: generated by trainkit.datasets.messiness.catalogue_markdown() -->\n"
DOCS_END = "<!-- end catalogue -->"


def update_docs(path: str = "docs/messiness.md") -> None:
    """Rewrite the generated tables of ``docs/messiness.md`` from ``params/messiness.yaml``."""
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    start = text.index(DOCS_START) + len(DOCS_START)
    end = text.index(DOCS_END)
    doc.write_text(text[:start] + catalogue_markdown() + text[end:], encoding="utf-8")


def rate(ctx: RecordContext, key: str) -> float:
    """The rate of an error at the run's messiness level (0 at ``clean``).

    Works for any parameter whose value maps messiness levels to rates
    (``{realistic: 0.01, heavy: 0.05}``), so dataset modules can use it for their own
    anomalies; a plain number applies at every level but ``clean``.

    Example:
        >>> rate(ctx, "name_typo")  # doctest: +SKIP
        0.004
    """
    if ctx.messiness == "clean":
        return 0.0
    value = parameter(ctx, key)
    if isinstance(value, dict):
        return float(value[ctx.messiness])
    return float(value)


# --------------------------------------------------------------------------------------------
# Who the rows are: subgroups from the cohort
# --------------------------------------------------------------------------------------------


def _cohort_rows(ctx: RecordContext, person_ids: np.ndarray) -> np.ndarray:
    """Row of each person in ``ctx.cohort`` (-1 where the person is not in the shard)."""
    pid = np.asarray(ctx.cohort.person_id)
    if not len(pid):
        return np.full(len(person_ids), -1)
    if pid[-1] - pid[0] == len(pid) - 1 and np.all(pid[1:] > pid[:-1]):  # a run of ids
        rows = person_ids - pid[0]
        return np.where((rows >= 0) & (rows < len(pid)), rows, -1)
    if np.all(pid[1:] > pid[:-1]):
        order, sorted_ids = np.arange(len(pid)), pid
    else:
        order = np.argsort(pid, kind="stable")
        sorted_ids = pid[order]
    pos = np.minimum(np.searchsorted(sorted_ids, person_ids), len(pid) - 1)
    found = sorted_ids[pos] == person_ids
    return np.where(found, order[pos], -1)


def subgroup_masks(ctx: RecordContext, person_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Which of ``person_ids`` belong to each subgroup of the messiness parameters.

    Returns:
        ``{"name_tradition", "uasc", "moved", "deprived"}`` -> boolean arrays.
    """
    return _masks_of_rows(ctx, _cohort_rows(ctx, np.asarray(person_ids, dtype=np.int64)))


def _masks_of_rows(ctx: RecordContext, rows: np.ndarray) -> dict[str, np.ndarray]:
    found = rows >= 0
    r = np.where(found, rows, 0)
    c = ctx.cohort
    tradition = np.asarray(parameter(ctx, "name_tradition_ethnicities"))
    moved = ~np.isnat(c.move_dates[r, 0]) if c.move_dates.shape[1] else np.zeros(len(r), dtype=bool)
    return {
        "name_tradition": found & np.isin(c.ethnicity[r], tradition),
        "uasc": found & c.uasc[r].astype(bool),
        "moved": found & moved,
        "deprived": found & (c.deprivation[r] <= parameter(ctx, "deprived_deciles")),
    }


# --------------------------------------------------------------------------------------------
# Character-matrix helpers (vectorised string edits)
# --------------------------------------------------------------------------------------------


def _matrix(values: np.ndarray, extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, width + extra) uint32 code points of strings (zero padded), and their lengths."""
    s = np.asarray(values, dtype=str)
    if s.size == 0:
        return np.zeros((0, 1 + extra), dtype=np.uint32), np.zeros(0, dtype=np.int64)
    width = max(s.dtype.itemsize // 4, 1)
    s = s.astype(f"U{width}")
    mat = np.zeros((len(s), width + extra), dtype=np.uint32)
    mat[:, :width] = s.view(np.uint32).reshape(len(s), width)
    return mat, np.strings.str_len(s).astype(np.int64)


def _strings(mat: np.ndarray) -> np.ndarray:
    """Object array of the strings held in a zero-padded code-point matrix."""
    if mat.shape[0] == 0:
        return np.zeros(0, dtype=object)
    mat = np.ascontiguousarray(mat, dtype=np.uint32)
    return mat.view(f"U{mat.shape[1]}").ravel().astype(object)


def _keyboard() -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring keys of each lower-case letter: (26, 6) code points and counts."""
    where = {ch: (r, c) for r, row in enumerate(KEYBOARD_ROWS) for c, ch in enumerate(row)}
    table = np.zeros((26, 6), dtype=np.uint32)
    counts = np.zeros(26, dtype=np.int64)
    for ch, (r, c) in where.items():
        near = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
        keys = [
            KEYBOARD_ROWS[rr][cc]
            for rr, cc in near
            if 0 <= rr < len(KEYBOARD_ROWS) and 0 <= cc < len(KEYBOARD_ROWS[rr])
        ]
        i = ord(ch) - ord("a")
        counts[i] = len(keys)
        table[i, : len(keys)] = [ord(k) for k in keys]
    return table, counts


_NEAR_KEYS, _NEAR_COUNTS = _keyboard()
_A, _Z, _LA, _LZ = ord("A"), ord("Z"), ord("a"), ord("z")
_CASE = _LA - _A


def _near_key(rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """A key next to each reference character on a QWERTY keyboard, in the same case."""
    upper = (ref >= _A) & (ref <= _Z)
    lower = np.where(upper, ref + _CASE, ref)
    letter = (lower >= _LA) & (lower <= _LZ)
    idx = np.where(letter, lower - _LA, rng.integers(0, 26, len(ref)))
    pick = (rng.random(len(ref)) * _NEAR_COUNTS[idx]).astype(np.int64)
    key = _NEAR_KEYS[idx, pick]
    return np.where(upper, key - _CASE, key).astype(np.uint32)


def _swap_chars(mat: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Characters at ``pos`` and ``pos + 1`` swapped, row by row."""
    out = mat.copy()
    i = np.arange(len(mat))
    out[i, pos], out[i, pos + 1] = mat[i, pos + 1], mat[i, pos]
    return out


def _drop_char(mat: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The character at ``pos`` removed, row by row."""
    j = np.arange(mat.shape[1])
    src = np.where(j[None, :] < pos[:, None], j[None, :], j[None, :] + 1)
    padded = np.concatenate([mat, np.zeros((len(mat), 1), dtype=mat.dtype)], axis=1)
    return np.take_along_axis(padded, np.minimum(src, mat.shape[1]), axis=1)


# --------------------------------------------------------------------------------------------
# The error types: each takes the candidate values and returns (applies, new values)
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """What an error type's function may look at for one field's candidate rows."""

    ctx: RecordContext
    rng: np.random.Generator
    field: Field
    is_datetime: bool  # the column holds datetimes rather than formatted strings
    cohort_rows: np.ndarray  # row in ctx.cohort of each candidate (-1: not in the shard)


def _changed(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return np.asarray(old, dtype=object) != np.asarray(new, dtype=object)


def _set_blank(job: _Job, vals: np.ndarray):
    """The value left blank."""
    return np.ones(len(vals), dtype=bool), np.full(len(vals), "", dtype=object)


def _name_typo(job: _Job, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = job.rng
    mat, length = _matrix(vals, extra=1)
    n = len(vals)
    op = rng.integers(0, 4, n)  # 0 substitution, 1 insertion, 2 deletion, 3 transposition
    span = np.select([op == 1, op == 3], [length, length - 2], length - 1)
    ok = span >= 1
    pos = 1 + (rng.random(n) * np.maximum(span, 1)).astype(np.int64)
    rows = np.arange(n)
    ref = mat[rows, np.where(op == 1, pos - 1, pos)]
    key = _near_key(rng, ref)
    out = mat.copy()
    sub = op == 0
    out[rows[sub], pos[sub]] = key[sub]
    ins = op == 1
    if ins.any():
        j = np.arange(mat.shape[1])
        src = np.where(j[None, :] < pos[ins, None], j[None, :], j[None, :] - 1)
        shifted = np.take_along_axis(mat[ins], np.maximum(src, 0), axis=1)
        doubled = parameter(job.ctx, "error_form_shares")["typo_doubled_letter"]
        double = rng.random(int(ins.sum())) < doubled  # a doubled letter or a neighbouring key
        shifted[np.arange(int(ins.sum())), pos[ins]] = np.where(double, ref[ins], key[ins])
        out[ins] = shifted
    dele = op == 2
    if dele.any():
        out[dele] = _drop_char(mat[dele], pos[dele])
    tr = (op == 3) & ok
    if tr.any():
        out[tr] = _swap_chars(mat[tr], pos[tr])
    new = _strings(out)
    return ok & _changed(vals, new), new


@functools.cache
def _variant_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted upper-case names, offsets and counts into a flat array of their variants."""
    variants: dict[str, list[str]] = {}
    for group in NAME_VARIANT_GROUPS:
        for name in group:
            variants.setdefault(name.upper(), []).extend(v for v in group if v != name)
    for name, short in NICKNAMES.items():
        variants.setdefault(name.upper(), []).extend(short)
    keys = np.array(sorted(variants))
    lists = [variants[k] for k in keys]
    counts = np.array([len(v) for v in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = np.array([v for vs in lists for v in vs], dtype=object)
    return keys, offsets, counts, flat


def _name_variant(job: _Job, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, offsets, counts, flat = _variant_table()
    s = np.asarray(vals, dtype=str)
    upper = np.strings.upper(s)
    pos = np.clip(np.searchsorted(keys, upper), 0, len(keys) - 1)
    found = keys[pos] == upper
    pick = offsets[pos] + (job.rng.random(len(s)) * counts[pos]).astype(np.int64)
    new = flat[pick]
    all_caps = (s == upper) & (np.strings.lower(s) != s)
    new = np.where(all_caps, np.strings.upper(new.astype(str)).astype(object), new)
    new = np.where(found, new, vals)
    return found & _changed(vals, new), new


def _first_different(rng: np.random.Generator, vals: np.ndarray, options: list[np.ndarray]):
    """For each value, one of the options that differs from it, starting at a random option."""
    n = len(vals)
    k = len(options)
    opts = np.stack([np.asarray(o, dtype=object) for o in options])  # (k, n)
    differs = opts != np.asarray(vals, dtype=object)[None, :]
    start = rng.integers(0, k, n)
    order = (start[None, :] + np.arange(k)[:, None]) % k  # (k, n) option tried at each step
    tried = np.take_along_axis(differs, order, axis=0)
    step = np.argmax(tried, axis=0)
    chosen = order[step, np.arange(n)]
    return tried.any(axis=0), opts[chosen, np.arange(n)]


def _name_case(job: _Job, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(vals, dtype=str)
    first = np.strings.upper(np.strings.slice(s, 0, 1))
    rest = np.strings.lower(np.strings.slice(s, 1, None))
    options = [np.strings.upper(s), np.strings.lower(s), np.strings.add(first, rest)]
    return _first_different(job.rng, vals, [o.astype(object) for o in options])


def _name_hyphenation(job: _Job, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(vals, dtype=str)
    has = np.zeros(len(s), dtype=bool)
    for sep in SEPARATORS:
        has |= np.strings.find(s, sep) >= 0
    new = np.asarray(vals, dtype=object).copy()
    if not has.any():
        return has, new
    h = s[has]
    removed = h
    for sep in SEPARATORS:
        removed = np.strings.replace(removed, sep, "")
    spaced = np.strings.replace(np.strings.replace(h, "-", " "), "'", " ")
    hyphened = np.strings.replace(np.strings.replace(h, " ", "-"), "'", "")
    options = [o.astype(object) for o in (removed, spaced, hyphened)]
    ok_h, new_h = _first_different(job.rng, vals[has], options)
    ok = np.zeros(len(s), dtype=bool)
    ok[has] = ok_h
    new[has] = new_h
    return ok, new


# --- dates ---


def _parse_dates(job: _Job, vals: np.ndarray) -> np.ndarray:
    """datetime64[D] of the candidate values (NaT where not a date in the field's format)."""
    if job.is_datetime:
        return pd.to_datetime(pd.Series(vals), errors="coerce").to_numpy().astype("datetime64[D]")
    fmt = job.field.date_format or "%Y-%m-%d"
    parsed = pd.to_datetime(pd.Series(vals, dtype=object), format=fmt, errors="coerce")
    return parsed.to_numpy().astype("datetime64[D]")


def _render_dates(job: _Job, dates: np.ndarray) -> np.ndarray:
    """Dates as the column holds them: formatted strings, or datetimes."""
    if job.is_datetime:
        return pd.to_datetime(dates).to_numpy().astype(object)
    fmt = job.field.date_format or "%Y-%m-%d"
    idx = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[s]"))
    return np.asarray(idx.strftime(fmt), dtype=object)


def _date_parts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year start as datetime64[Y], month 1-12, day 1-31)."""
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    month = (m - y.astype("datetime64[M]")).astype(np.int64) + 1
    day = (d - m.astype("datetime64[D]")).astype(np.int64) + 1
    return y, month, day


def _date_error(fn):
    """Wrap a function of datetime64[D] -> (ok, new datetime64[D]) into an error type."""

    @functools.wraps(fn)
    def run(job: _Job, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = _parse_dates(job, vals)
        valid = ~np.isnat(d)
        safe = np.where(valid, d, np.datetime64("2000-01-01"))
        ok, new = fn(job, safe)
        ok &= valid
        rendered = _render_dates(job, np.where(ok, new, safe))
        rendered = np.where(ok, rendered, vals)
        return ok & _changed(vals, rendered), rendered

    return run


@_date_error
def _date_day_month_swap(job: _Job, d: np.ndarray):
    y, month, day = _date_parts(d)
    ok = (day <= 12) & (day != month)
    new = (y.astype("datetime64[M]") + np.minimum(day, 12) - 1).astype("datetime64[D]") + (
        month - 1
    )
    return ok, new


@_date_error
def _date_off_by_one_day(job: _Job, d: np.ndarray):
    early = parameter(job.ctx, "error_form_shares")["date_day_early"]
    step = np.where(job.rng.random(len(d)) < early, -1, 1)  # a day early or a day late
    return np.ones(len(d), dtype=bool), d + step


@_date_error
def _date_sentinel(job: _Job, d: np.ndarray):
    choices = np.array(parameter(job.ctx, "sentinel_dates"), dtype="datetime64[D]")
    return np.ones(len(d), dtype=bool), choices[job.rng.integers(0, len(choices), len(d))]


@_date_error
def _date_year_out_of_range(job: _Job, d: np.ndarray):
    year = d.astype("datetime64[Y]").astype(np.int64) + EPOCH_YEAR
    shift = np.where(year >= CENTURY_PIVOT, -CENTURY, CENTURY)  # 2005 -> 1905, 1999 -> 2099
    return np.ones(len(d), dtype=bool), add_years(d, shift)


@_date_error
def _dob_first_january(job: _Job, d: np.ndarray):
    jan1 = d.astype("datetime64[Y]").astype("datetime64[D]")
    return d != jan1, jan1


# --- UPN ---


def _upn_like(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mat, length = _matrix(vals)
    if mat.shape[1] < UPN_LENGTH:  # no value is long enough to be a UPN (e.g. all UN codes)
        padded = np.zeros((len(mat), UPN_LENGTH), dtype=np.uint32)
        padded[:, : mat.shape[1]] = mat
        return padded, np.zeros(len(vals), dtype=bool)
    digits = (mat[:, 1:12] >= ord("0")) & (mat[:, 1:12] <= ord("9"))
    return mat, (length == UPN_LENGTH) & digits.all(axis=1)


def _upn_unknown_code(job: _Job, vals: np.ndarray):
    f = job.field
    allowed = bool(f.codes and UPN_UNKNOWN_FOR_ERRORS in f.codes) or bool(
        f.pattern and re.fullmatch(f.pattern, UPN_UNKNOWN_FOR_ERRORS)
    )
    _, ok = _upn_like(vals)
    return ok & allowed, np.full(len(vals), UPN_UNKNOWN_FOR_ERRORS, dtype=object)


def _upn_check_letter(job: _Job, vals: np.ndarray):
    mat, ok = _upn_like(vals)
    letters = np.frombuffer(UPN_LETTERS.encode(), dtype=np.uint8).astype(np.uint32)
    lookup = np.full(128, -1, dtype=np.int64)
    lookup[letters] = np.arange(len(letters))
    current = lookup[np.clip(mat[:, 0], 0, 127)] if len(mat) else np.zeros(0, dtype=np.int64)
    ok &= current >= 0
    shift = 1 + job.rng.integers(0, len(letters) - 1, len(vals))
    out = mat.copy()
    if len(mat):
        out[:, 0] = letters[(np.maximum(current, 0) + shift) % len(letters)]
    new = _strings(out)
    return ok & _changed(vals, new), new


def _upn_transposed_digits(job: _Job, vals: np.ndarray):
    mat, ok = _upn_like(vals)
    last = UPN_LENGTH - 3  # swap positions pos and pos + 1, both among the digits 1-11
    pos = job.rng.integers(UPN_DIGITS_FROM, last + 1, len(vals))
    if not len(mat):
        return ok, vals
    i = np.arange(len(mat))
    ok &= mat[i, pos] != mat[i, pos + 1]
    new = _strings(_swap_chars(mat, pos))
    return ok, new


def _upn_malformed(job: _Job, vals: np.ndarray):
    mat, ok = _upn_like(vals)
    pos = job.rng.integers(UPN_DIGITS_FROM, UPN_LENGTH - 1, len(vals))
    if not len(mat):
        return ok, vals
    return ok, _strings(_drop_char(mat, pos))


# --- NHS number ---


def _nhs_digits(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 10) code points of the digits, whether each value is 10 digits, whether spaced."""
    s = np.asarray(vals, dtype=str)
    spaced = np.strings.str_len(s) == NHS_SPACED
    bare = np.strings.replace(s, " ", "")
    mat, length = _matrix(bare)
    if mat.shape[1] < NHS_BODY + 1:
        return np.zeros((len(s), NHS_BODY + 1), np.uint32), np.zeros(len(s), bool), spaced
    mat = mat[:, : NHS_BODY + 1]
    ok = (length == NHS_BODY + 1) & ((mat >= ord("0")) & (mat <= ord("9"))).all(axis=1)
    return mat, ok, spaced


def _nhs_render(mat: np.ndarray, spaced: np.ndarray) -> np.ndarray:
    bare = _strings(mat).astype(str)
    with_spaces = np.strings.add(
        np.strings.add(np.strings.slice(bare, 0, 3), " "),
        np.strings.add(
            np.strings.add(np.strings.slice(bare, 3, 6), " "), np.strings.slice(bare, 6, None)
        ),
    )
    return np.where(spaced, with_spaces, bare).astype(object)


def _nhs_check_digit(job: _Job, vals: np.ndarray):
    mat, ok, spaced = _nhs_digits(vals)
    out = mat.copy()
    digit = out[:, NHS_BODY].astype(np.int64) - ord("0")
    out[:, NHS_BODY] = ord("0") + (digit + 1 + job.rng.integers(0, 9, len(vals))) % 10
    return ok, _nhs_render(out, spaced)


def _nhs_transposed_digits(job: _Job, vals: np.ndarray):
    mat, ok, spaced = _nhs_digits(vals)
    pos = job.rng.integers(0, NHS_BODY - 1, len(vals))
    i = np.arange(len(vals))
    ok &= mat[i, pos] != mat[i, pos + 1]
    return ok, _nhs_render(_swap_chars(mat, pos), spaced)


# --- postcodes ---


def _postcode_stale(job: _Job, vals: np.ndarray):
    """The postcode of the address before the one recorded (from the child's address history,
    the cohort's copy of ``truth["addresses"]``)."""
    c = job.ctx.cohort
    found = job.cohort_rows >= 0
    r = np.where(found, job.cohort_rows, 0)
    history = c.postcodes[r]  # (n, spells), padded with the last spell's postcode
    spells = 1 + (~np.isnat(c.move_dates[r])).sum(axis=1)
    live = np.arange(history.shape[1])[None, :] < spells[:, None]
    value = np.strings.upper(np.asarray(vals, dtype=str))
    match = (history == value[:, None]) & live
    last = history.shape[1] - 1 - np.argmax(match[:, ::-1], axis=1)  # latest matching spell
    ok = found & match.any(axis=1) & (last > 0)
    previous = history[np.arange(len(r)), np.maximum(last - 1, 0)].astype(object)
    new = np.where(ok, previous, vals)
    return ok & _changed(vals, new), new


def _postcode_no_space(job: _Job, vals: np.ndarray):
    new = np.strings.replace(np.asarray(vals, dtype=str), " ", "").astype(object)
    return _changed(vals, new), new


def _lower_case(job: _Job, vals: np.ndarray):
    new = np.strings.lower(np.asarray(vals, dtype=str)).astype(object)
    return _changed(vals, new), new


def _postcode_truncated(job: _Job, vals: np.ndarray):
    s = np.asarray(vals, dtype=str)
    space = np.strings.find(s, " ")
    new = _before_space(s, space)
    return (space > 0) & _changed(vals, new), new


def _before_space(s: np.ndarray, space: np.ndarray) -> np.ndarray:
    """Each string cut at its first space (unchanged where it has none)."""
    mat, length = _matrix(s)
    if not len(mat):
        return np.zeros(0, dtype=object)
    cut = np.where(space >= 0, space, length)
    mat[np.arange(mat.shape[1])[None, :] >= cut[:, None]] = 0
    return _strings(mat)


# --- codes ---


def _code_trailing_space(job: _Job, vals: np.ndarray):
    new = np.strings.add(np.asarray(vals, dtype=str), " ").astype(object)
    return np.ones(len(vals), dtype=bool), new


def _code_not_stated(job: _Job, vals: np.ndarray):
    codes = job.field.codes or {}
    stated = [c for c, meaning in codes.items() if NOT_STATED.search(meaning)]
    n = len(vals)
    if not stated:
        return np.zeros(n, dtype=bool), vals
    choice = np.array(stated, dtype=object)[job.rng.integers(0, len(stated), n)]
    ok = ~np.isin(np.asarray(vals, dtype=object), np.array(stated, dtype=object))
    return ok, choice


@functools.cache
def _ethnicity_alternatives() -> dict[str, tuple[str, ...]]:
    alternatives: dict[str, list[str]] = {}
    for group in ETHNICITY_MAJOR_GROUPS:
        for code in group:
            alternatives.setdefault(code, []).extend(c for c in group if c != code)
    return {k: tuple(dict.fromkeys(v)) for k, v in alternatives.items()}


def _ethnicity_recoded(job: _Job, vals: np.ndarray):
    alts = _ethnicity_alternatives()
    allowed = set(job.field.codes) if job.field.codes else None
    keys = np.array(sorted(alts))
    table = [[a for a in alts[k] if allowed is None or a in allowed] for k in keys]
    counts = np.array([len(t) for t in table], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = np.array([a for t in table for a in t] or [""], dtype=object)
    s = np.asarray(vals, dtype=str)
    pos = np.clip(np.searchsorted(keys, s), 0, len(keys) - 1)
    found = (keys[pos] == s) & (counts[pos] > 0)
    pick = offsets[pos] + (job.rng.random(len(s)) * np.maximum(counts[pos], 1)).astype(np.int64)
    new = np.where(found, flat[np.minimum(pick, len(flat) - 1)], vals)
    return found & _changed(vals, new), new


ERROR_FUNCTIONS = {
    "name_typo": _name_typo,
    "name_variant": _name_variant,
    "name_case": _name_case,
    "name_hyphenation": _name_hyphenation,
    "date_day_month_swap": _date_day_month_swap,
    "date_off_by_one_day": _date_off_by_one_day,
    "date_sentinel": _date_sentinel,
    "date_year_out_of_range": _date_year_out_of_range,
    "dob_first_january": _dob_first_january,
    "upn_missing": _set_blank,
    "upn_unknown_code": _upn_unknown_code,
    "upn_check_letter": _upn_check_letter,
    "upn_transposed_digits": _upn_transposed_digits,
    "upn_malformed": _upn_malformed,
    "nhs_missing": _set_blank,
    "nhs_check_digit": _nhs_check_digit,
    "nhs_transposed_digits": _nhs_transposed_digits,
    "postcode_stale": _postcode_stale,
    "postcode_missing": _set_blank,
    "postcode_no_space": _postcode_no_space,
    "postcode_lower_case": _lower_case,
    "postcode_truncated": _postcode_truncated,
    "code_trailing_space": _code_trailing_space,
    "code_lower_case": _lower_case,
    "code_not_stated": _code_not_stated,
    "sex_not_stated": _code_not_stated,
    "ethnicity_recoded": _ethnicity_recoded,
}
"""The value-level error types, by name (record-level ones are handled in :func:`apply`)."""

DUPLICATE_FIELD = record.DUPLICATE_FIELD
"""``field`` of a duplicated record in the error log: ``"(record)"``, the whole record; its value
before and after are the number of copies in the file ("1" and "2"). One convention for every
dataset (:meth:`~trainkit.datasets.record.ErrorLog.add_duplicates`)."""


@dataclass
class _Change:
    """Values of one field changed by one error type."""

    error_type: str
    field: str
    rows: np.ndarray  # positions in the input frame
    before: np.ndarray
    after: np.ndarray


class _People:
    """The persons of a frame's rows, with their subgroups looked up once, when first needed."""

    def __init__(self, ctx: RecordContext, person_ids: np.ndarray):
        self.ctx = ctx
        self.ids = person_ids
        self._rows: np.ndarray | None = None
        self._masks: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def cohort_rows(self, rows: np.ndarray) -> np.ndarray:
        """Row in ``ctx.cohort`` of the given frame rows (-1: not in the shard)."""
        if self._rows is None:
            self._rows = _cohort_rows(self.ctx, self.ids)
        return self._rows[rows]

    def masks(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self._masks is None:
            self._masks = _masks_of_rows(self.ctx, self.cohort_rows(np.arange(len(self.ids))))
        return {g: m[rows] for g, m in self._masks.items()}


def _generator(ctx: RecordContext, table: OutputTable) -> np.random.Generator:
    """``ctx.rng("messiness.<table>")``; the k-th later call for the same table in the same
    shard gets ``messiness.<table>#k``, so tables recorded in several calls (one per year, say)
    do not repeat the same errors on the same rows."""
    calls = vars(ctx).setdefault("_messiness_calls", {})
    k = calls.get(table.name, 0)
    calls[table.name] = k + 1
    name = f"messiness.{table.name}" if k == 0 else f"messiness.{table.name}#{k}"
    return ctx.rng(name)


def _max_multiplier(et: ErrorType, mult: dict[str, float]) -> float:
    return math.prod(max(1.0, mult[g]) for g in et.subgroups)


def _row_rates(
    types: list[ErrorType],
    rates: dict[str, float],
    mult: dict[str, float],
    masks: dict[str, np.ndarray],
    n: int,
) -> np.ndarray:
    """(len(types), n) probability of each error type for each candidate row."""
    out = np.empty((len(types), n))
    for k, et in enumerate(types):
        p = np.full(n, rates[et.name])
        for g in et.subgroups:
            p = np.where(masks[g], p * mult[g], p)
        if et.only:
            p = np.where(masks[et.only], p, 0.0)
        out[k] = p
    return out


def _choose(
    ctx: RecordContext,
    rng: np.random.Generator,
    types: list[ErrorType],
    rates: dict[str, float],
    mult: dict[str, float],
    people: _People,
    excluded: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows that get an error and which of ``types`` each gets (mutually exclusive).

    One uniform draw per row: rows under the largest possible total rate are candidates, and
    for those the subgroups decide the actual rates (thinning), so only candidates are looked
    up in the cohort.
    """
    n = len(people)
    bound = sum(rates[et.name] * _max_multiplier(et, mult) for et in types)
    u = rng.random(n)
    cand = np.flatnonzero(u < bound)
    if excluded is not None:
        cand = cand[~excluded[cand]]
    needs = any(et.subgroups or et.only for et in types)
    masks = people.masks(cand) if needs else {}
    cum = np.cumsum(_row_rates(types, rates, mult, masks, len(cand)), axis=0)
    total = cum[-1] if len(types) else np.zeros(len(cand))
    cum = cum / np.maximum(total, 1.0)  # probabilities above 1 in total are scaled down
    which = (u[cand][None, :] >= cum).sum(axis=0)
    hit = which < len(types)
    return cand[hit], which[hit]


def _values(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    return column.iloc[rows].to_numpy(dtype=object)


def _blank(values: np.ndarray) -> np.ndarray:
    return pd.isna(values) | (values == "")


def _as_text(values: np.ndarray, is_datetime: bool) -> np.ndarray:
    """Values as the error log holds them (dates as YYYY-MM-DD)."""
    if is_datetime:
        return np.asarray(pd.DatetimeIndex(pd.to_datetime(values)).strftime("%Y-%m-%d"))
    return np.asarray(values, dtype=object)


def _swap_names(
    ctx: RecordContext,
    table: OutputTable,
    frame: pd.DataFrame,
    rng: np.random.Generator,
    rates: dict[str, float],
    mult: dict[str, float],
    people: _People,
) -> tuple[list[_Change], np.ndarray]:
    """Forename and surname swapped in whole records."""
    n = len(frame)
    fore = [f.name for f in table.fields if f.semantic == "forename" and f.name in frame]
    sur = [f.name for f in table.fields if f.semantic == "surname" and f.name in frame]
    swapped = np.zeros(n, dtype=bool)
    et = error_types()["name_order_swap"]
    if not fore or not sur or rates.get(et.name, 0.0) <= 0:
        return [], swapped
    rows, _ = _choose(ctx, rng, [et], rates, mult, people, None)
    f_vals, s_vals = _values(frame[fore[0]], rows), _values(frame[sur[0]], rows)
    ok = ~_blank(f_vals) & ~_blank(s_vals) & (f_vals != s_vals)
    rows, f_vals, s_vals = rows[ok], f_vals[ok], s_vals[ok]
    swapped[rows] = True
    return [
        _Change(et.name, fore[0], rows, f_vals, s_vals),
        _Change(et.name, sur[0], rows, s_vals, f_vals),
    ], swapped


def _field_changes(
    ctx: RecordContext,
    field: Field,
    column: pd.Series,
    rng: np.random.Generator,
    types: list[ErrorType],
    rates: dict[str, float],
    mult: dict[str, float],
    people: _People,
    excluded: np.ndarray | None,
) -> list[_Change]:
    """The errors of one field: draw who gets which type, then let each type change them."""
    rows, which = _choose(ctx, rng, types, rates, mult, people, excluded)
    if not len(rows):
        return []
    is_datetime = pd.api.types.is_datetime64_any_dtype(column.dtype)
    values = _values(column, rows)
    present = ~_blank(values)
    out = []
    for k, et in enumerate(types):
        sel = (which == k) & present
        if not sel.any():
            continue
        vals = values[sel]
        job = _Job(ctx, rng, field, is_datetime, people.cohort_rows(rows[sel]))
        ok, new = ERROR_FUNCTIONS[et.name](job, vals)
        ok = np.asarray(ok, dtype=bool)
        if ok.any():
            out.append(_Change(et.name, field.name, rows[sel][ok], vals[ok], np.asarray(new)[ok]))
    return out


def _replaced(column: pd.Series, rows: np.ndarray, after: np.ndarray) -> pd.Series:
    """The column with ``after`` written at ``rows`` (a pyarrow take for Arrow strings, which
    is about twice as fast as pandas' item assignment)."""
    arr = column.array
    if isinstance(column.dtype, pd.StringDtype) and hasattr(arr, "__arrow_array__"):
        chunked = arr.__arrow_array__()
        if isinstance(chunked, pa.Array):
            chunked = pa.chunked_array([chunked])
        n = len(column)
        combined = pa.chunked_array([*chunked.chunks, pa.array(after, type=chunked.type)])
        index = np.arange(n)
        index[rows] = n + np.arange(len(rows))
        return pd.Series(combined.take(pa.array(index)), dtype=column.dtype, index=column.index)
    out = column.copy()
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        after = pd.to_datetime(after).to_numpy()
    out.iloc[rows] = after
    return out


def _write(frame: pd.DataFrame, changes: list[_Change]) -> pd.DataFrame:
    """A copy of the frame with every change written in (one assignment per column)."""
    out = frame.copy(deep=False)
    by_field: dict[str, list[_Change]] = {}
    for ch in changes:
        by_field.setdefault(ch.field, []).append(ch)
    for name, chs in by_field.items():
        rows = np.concatenate([c.rows for c in chs])
        after = np.concatenate([np.asarray(c.after, dtype=object) for c in chs])
        out[name] = _replaced(frame[name], rows, after)
    return out


def apply(
    ctx: RecordContext,
    table: OutputTable,
    frame: pd.DataFrame,
    *,
    dataset: str,
    record_id: str | np.ndarray,
    files: str | np.ndarray,
    person_ids: np.ndarray,
    skip: Iterable[str] = (),
) -> pd.DataFrame:
    """Apply the generic recording errors to one table's rows, and log every change.

    Args:
        ctx: the shard's record context (messiness level, parameters, cohort, error log).
        table: the table's declaration; fields with a ``semantic`` get errors.
        frame: the rows, values formatted as in the file (strings, '' for blank; date fields
            as strings in the field's ``date_format``, or datetimes), columns
            ``table.field_names`` plus perhaps ``_year``/``_la`` (left alone). Pass it with a
            default RangeIndex.
        dataset: the dataset name for the error log (``ssda903``, ``pupils``...).
        record_id: the column that identifies a record in the error log (its value as finally
            recorded is logged), or an array of identifiers, one per row.
        files: the file of each row, relative to DIR (one string, or one per row).
        person_ids: the true person of each row (int64), for subgroup rates and address
            history.
        skip: error types not to apply to this table (e.g. ``("duplicate_record",)`` where a
            repeated record would break the file's structure).

    Returns:
        The rows as recorded. At ``clean`` this is ``frame`` itself. Otherwise a new frame
        whose index holds each row's position in ``frame`` (duplicated records are appended at
        the end, repeating their position), so ``person_ids[out.index.to_numpy()]`` is the
        person of each output row: register identifiers in ``ctx.links`` from the output, as
        recorded.

    Raises:
        ValueError: mismatched lengths, an unknown column or error type.
    """
    if ctx.messiness == "clean":
        return frame
    n = len(frame)
    person_ids = np.asarray(person_ids, dtype=np.int64)
    if person_ids.shape != (n,):
        raise ValueError(f"messiness.apply({table.name}): {len(person_ids)} person_ids, {n} rows")
    files_arr = np.asarray(files, dtype=object)
    if files_arr.ndim and files_arr.shape != (n,):
        raise ValueError(f"messiness.apply({table.name}): {len(files_arr)} files, {n} rows")
    if isinstance(record_id, str):
        if record_id not in frame:
            raise ValueError(f"messiness.apply({table.name}): no column {record_id!r}")
    elif np.asarray(record_id).shape != (n,):
        raise ValueError(f"messiness.apply({table.name}): record_id must be a column or {n} ids")
    catalogue = error_types()
    unknown = set(skip) - set(catalogue)
    if unknown:
        raise ValueError(f"messiness.apply: unknown error types in skip: {sorted(unknown)}")
    rates = {name: rate(ctx, name) for name in catalogue if name not in set(skip)}
    if n == 0 or not any(v > 0 for v in rates.values()):
        return frame.set_axis(pd.RangeIndex(n))
    mult = {g: float(parameter(ctx, f"subgroup_{g}")) for g in SUBGROUPS}
    rng = _generator(ctx, table)

    people = _People(ctx, person_ids)
    changes, swapped = _swap_names(ctx, table, frame, rng, rates, mult, people)
    frame = frame.set_axis(pd.RangeIndex(n))
    for f in table.fields:
        if f.semantic is None or f.name not in frame:
            continue
        types = [
            et for et in catalogue.values() if f.semantic in et.applies_to and rates.get(et.name)
        ]
        if not types:
            continue
        excluded = swapped if f.semantic in ("forename", "surname") and swapped.any() else None
        changes += _field_changes(ctx, f, frame[f.name], rng, types, rates, mult, people, excluded)
    out = _write(frame, changes)

    dup = np.zeros(n, dtype=bool)
    dup_type = catalogue["duplicate_record"]
    if rates.get(dup_type.name, 0.0) > 0:
        rows, _ = _choose(ctx, rng, [dup_type], rates, mult, people, None)
        dup[rows] = True

    def ids(rows: np.ndarray) -> np.ndarray:
        if isinstance(record_id, str):
            return _values(out[record_id], rows)
        return np.asarray(record_id, dtype=object)[rows]

    def where(rows: np.ndarray):
        return files_arr[rows] if files_arr.ndim else files_arr.item()

    for ch in changes:
        is_dt = pd.api.types.is_datetime64_any_dtype(frame[ch.field].dtype)
        ctx.errors.add(
            dataset,
            where(ch.rows),
            ids(ch.rows),
            ch.field,
            ch.error_type,
            _as_text(ch.before, is_dt),
            _as_text(ch.after, is_dt),
        )
    if dup.any():
        rows = np.flatnonzero(dup)
        ctx.errors.add_duplicates(dataset, where(rows), ids(rows), dup_type.name)
        out = pd.concat([out, out.iloc[rows]])
    return out


if __name__ == "__main__":
    update_docs()

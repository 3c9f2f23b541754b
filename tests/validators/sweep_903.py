"""Run the DfE's SSDA903 rules over many LA returns of a generated folder, in one process.

Each LA-year ``DIR/returns/ssda903/{year}/{la}`` is checked with its previous year's return (when
written) as ``run_validators.py`` checks one, under that year's ruleset (``lac2022_23``, the
earliest shipped, for earlier years). Run it with the validators' venv::

    .venv-validators/bin/python tests/validators/sweep_903.py DIR \\
        [--years 2021,2022,2023,2024] [--las 886,881] [--top 30]

stdout gets one JSON object::

    {"returns": [[year, "la"], ...], "rules_failed": {"year/la": {code: message}},
     "rules_crashed": {"year/la": [{"code", "error", "message", "known_bug"}, ...]},
     "errors": [{"code", "year", "la", "table", "row", "child"}, ...]}

and stderr a count of each rule that fired, and a line ``year/la: rule X crashed: ...`` for each
rule that raised (see ``run_validators.py``; the other rules of that return still ran).
``--top N`` keeps, in each year, the N returns with the most episodes. Exit status as
``run_validators.py``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_validators as rv  # noqa: E402


def _returns(root: Path, years: list[int], las: set[str], top: int) -> list[tuple[int, str]]:
    out = []
    for year in years:
        folder = root / str(year)
        if not folder.is_dir():
            continue
        names = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if las:
            names = [n for n in names if n in las]
        if top:
            size = {n: (folder / n / "episodes.csv").stat().st_size for n in names}
            names = sorted(sorted(names, key=lambda n: -size[n])[:top])
        out.extend((year, n) for n in names)
    return out


def sweep(root: Path, returns: list[tuple[int, str]]) -> dict:
    """The 903 rules' findings on each return (year, la) under ``root`` (returns/ssda903)."""
    known = set(rv.list_rulesets("lac_validator"))
    errors, failed, crashed = [], {}, {}
    for year, la in returns:
        ruleset = rv.expected_ruleset("903", year)
        previous = root / str(year - 1) / la
        args = SimpleNamespace(
            ruleset=ruleset if ruleset in known else "lac2022_23",
            current=str(root / str(year) / la),
            previous=str(previous) if previous.is_dir() else None,
            ofsted_ch=None,
            ofsted_scp=None,
            select=None,
            collection_year=year,
            slow_postcodes=False,
        )
        _, ons = rv.resolve_la(la)
        with contextlib.redirect_stdout(io.StringIO()):
            result = rv.run_903(args, ons, [])
        if result["rules_failed"]:
            failed[f"{year}/{la}"] = result["rules_failed"]
            crashed[f"{year}/{la}"] = result["rules_crashed"]
            rv._report_crashes(result["rules_crashed"], f"{year}/{la}: ")
        errors.extend(
            {"code": e["code"], "year": year, "la": la, "table": e["table"], "row": e["row"],
             "child": e["child"]}
            for e in result["errors"]
        )  # fmt: skip
    return {
        "returns": [list(r) for r in returns],
        "rules_failed": failed,
        "rules_crashed": crashed,
        "errors": errors,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a generated folder (with returns/ssda903/)")
    ap.add_argument("--years", default="", help="collection years, e.g. 2023,2024 (default all)")
    ap.add_argument("--las", default="", help="DfE LA numbers to check (default all)")
    ap.add_argument("--top", type=int, default=0, help="the N largest returns of each year")
    args = ap.parse_args(argv)
    root = Path(args.folder) / "returns" / "ssda903"
    if not root.is_dir():
        rv._fail(f"{root} does not exist")
    years = [int(y) for y in args.years.split(",") if y] or sorted(
        int(p.name) for p in root.iterdir() if p.name.isdigit()
    )
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    las = {f"{int(x):03d}" for x in args.las.split(",") if x}
    try:
        out = sweep(root, _returns(root, years, las, args.top))
    except rv.RunError as exc:
        rv._fail(str(exc))
    except ImportError as exc:
        rv._fail(f"{exc}: run this script with .venv-validators/bin/python")
    counts = collections.Counter(e["code"] for e in out["errors"])
    print(f"{len(out['returns'])} returns; rules fired: {dict(sorted(counts.items()))}",
          file=sys.stderr)  # fmt: skip
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the Markdown table of docs/calibration.md that compares truth and returns.

Generates one population twice, at ``--messiness clean`` and ``realistic`` (the truth is the same
at both), then computes every calibration figure from the truth and from each run's returns, as
``trainkit calibrate DIR [--from returns]`` does, and prints one row per figure: the published
value, then each computed figure with its count (numerator, or numerator/denominator for a share).

    python tools/calibration_table.py --children 200000 --seed 2 --workers 2

The generated folders go to a temporary folder, removed at the end (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from trainkit.calibrate import CalibrationReport, calibrate
from trainkit.config import ConfigError, make_config
from trainkit.simulate.engine import generate

COLUMNS = ("Truth", "Returns, clean", "Returns, realistic")


def _cell(line) -> str:
    """A figure with its count: the numerator, or numerator/denominator for a share."""
    if line.kind == "share":
        return f"{line.simulated * 100:.1f}% ({line.numerator:,}/{line.denominator:,})"
    return f"{line.simulated:.1f} ({line.numerator:,})"


def table(truth: CalibrationReport, clean: CalibrationReport, messy: CalibrationReport) -> str:
    """The Markdown table: one row per figure of the truth's report."""
    by_key = [{line.key: line for line in r.lines} for r in (clean, messy)]
    out = [
        "| Measure | Unit | Published | " + " | ".join(COLUMNS) + " |",
        "|---|---|--:|" + "--:|" * len(COLUMNS),
    ]
    for line in truth.lines:
        unit = {"rate_per_10k": "per 10k", "rate_per_10k_year": "per 10k/yr"}.get(line.kind, "%")
        published = (
            f"{line.published * 100:.1f}%" if line.kind == "share" else f"{line.published:.1f}"
        )
        cells = [_cell(line)]
        for report in by_key:
            other = report.get(line.key)
            cells.append(_cell(other) if other else "not in the returns")
        out.append(f"| {line.measure} | {unit} | {published} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=200_000, help="people (default 200000)")
    parser.add_argument("--seed", type=int, default=2, help="seed (default 2, as the docs)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--keep", type=Path, help="keep the two generated folders under DIR")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        configs = {
            level: make_config({"children": args.children, "seed": args.seed, "messiness": level})
            for level in ("clean", "realistic")
        }
    except ConfigError as exc:
        parser.error(str(exc))
    with tempfile.TemporaryDirectory(prefix="calibration-table-") as tmp:
        root = args.keep or Path(tmp)
        reports = {}
        for level, cfg in configs.items():
            out = root / level
            generate(cfg, out, workers=args.workers, force=True)
            reports[level] = calibrate(out, chart_path=root / f"{level}.png", source="returns")
        truth = calibrate(root / "clean", chart_path=root / "truth.png")
        print(table(truth, reports["clean"], reports["realistic"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

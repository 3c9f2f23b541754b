"""The ``trainkit`` command line: ``generate`` and ``calibrate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import TrainkitError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="simulate a population and write its truth tables",
        description="Simulate children's lives; write DIR/truth/*.parquet and DIR/manifest.json.",
    )
    p.add_argument("--children", type=int, help="people to simulate (default 10000)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output folder (must be empty)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output is the same)")
    p.add_argument("--config", type=Path, help="YAML file of config values (see docs/config.md)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--messiness",
        choices=("clean", "realistic", "heavy"),
        help="recording errors in the agencies' files (default realistic)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_generate(args: argparse.Namespace) -> int:
    from .config import make_config, read_config_file
    from .errors import ConfigError

    values = read_config_file(args.config) if args.config else {}
    if args.children is not None:
        values["children"] = args.children
    if args.seed is not None:
        values["seed"] = args.seed
    if args.messiness is not None:
        values["messiness"] = args.messiness
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    config = make_config(values)

    from tqdm import tqdm

    from .simulate.engine import generate, prepare_out_dir

    prepare_out_dir(args.out, args.force)
    bar = tqdm(total=None, unit="shard", disable=args.quiet, file=sys.stderr, desc="simulating")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    result = generate(config, args.out, workers=args.workers, force=args.force, progress=progress)
    bar.close()
    width = max(len(k) for k in result.rows)
    print(f"Wrote {result.out_dir}/ (seed {config.seed}, {config.children:,} people)")
    for name, n in result.rows.items():
        print(f"  {name:<{width}}  {n:>12,} rows")
    rate = result.total_rows / result.seconds if result.seconds else float("nan")
    print(f"  {'total':<{width}}  {result.total_rows:>12,} rows")
    print(f"{result.seconds:.1f} s, {rate:,.0f} output records per second")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="trainkit", description="Synthetic linked data on children in England.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_generate(sub)
    from .calibrate import add_calibrate_parser
    from .validate import add_validate_parser

    add_calibrate_parser(sub)
    add_validate_parser(sub)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed in one line
        return int(stop.code or 0)
    try:
        if args.command == "generate":
            return run_generate(args)
        return args.func(args)
    except TrainkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no output was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `trainkit calibrate --list-parameters | head`
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

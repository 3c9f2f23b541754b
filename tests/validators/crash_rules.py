"""Run ``run_validators.py`` with some rules made to crash, to test that the runner isolates them.

    .venv-validators/bin/python tests/validators/crash_rules.py --raise 8500 \\
        [--bad-result 101] -- <run_validators.py arguments>

``--raise CODES``: each rule runs as usual, then raises ``RuntimeError("deliberate crash")``, so
anything it found or filed before is lost. ``--bad-result CODES`` (903 only): each rule returns
its findings for a table that does not exist, which the validator's own loop maps back outside
its ``try`` (it stops the whole run). Output and exit status are those of ``run_validators.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_validators as rv  # noqa: E402


def _raising(func):
    def run(*args):
        func(*args)
        raise RuntimeError("deliberate crash")

    return run


def _bad_result(func):
    def run(*args):
        func(*args)
        return {"NoSuchTable": [0]}

    return run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raise", dest="raise_", default="", help="comma-separated rule codes")
    ap.add_argument("--bad-result", default="", help="comma-separated 903 rule codes")
    args = ap.parse_args(argv[:split])
    wrap = {code: _raising for code in args.raise_.split(",") if code}
    wrap.update({code: _bad_result for code in args.bad_result.split(",") if code})
    load = rv.load_registry

    def load_registry(package: str, ruleset: str):
        registry = dict(load(package, ruleset))
        for code, wrapper in wrap.items():
            if code not in registry:
                raise rv.RunError(f"no rule {code} in {ruleset}")
            registry[code] = dataclasses.replace(registry[code], func=wrapper(registry[code].func))
        return registry

    rv.load_registry = load_registry
    return rv.main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the small committed dataset in ``synthetic/sample/`` (run via ``make sample``).

The sample lets a learner open any notebook without generating data. Its manifest carries the
sha256 of every file; ``tests/test_sample.py`` regenerates it and compares, so a change to the
generator that alters the sample fails until this script is run again and the result committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainkit.config import make_config
from trainkit.simulate.engine import generate

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "synthetic" / "sample"
SAMPLE_CONFIG = {"children": 3000, "seed": 20240331, "local_authorities": [202, 330, 886, 935]}


README = """# synthetic/sample

A small dataset made by `make sample` (`tools/make_sample.py`): {children:,} people, seed {seed},
born in four LAs ({local_authorities}: Camden, Birmingham, Kent, Suffolk; moves and arrivals may
take some elsewhere).
Notebooks read it by default (`DATA_DIR = "../synthetic/sample"`), so they open without generating
anything; `make run` and `make test` pass freshly generated data instead.

`manifest.json` records the config and the sha256 of every file. `tests/test_sample.py` checks the
checksums and regenerates the sample to compare, so it always matches the generator in this commit.
All of it is synthetic: no real person is described.
"""


def main() -> int:
    result = generate(make_config(SAMPLE_CONFIG), SAMPLE, force=True)
    (SAMPLE / "README.md").write_text(README.format(**SAMPLE_CONFIG))
    print(f"wrote {result.out_dir} ({result.total_rows:,} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

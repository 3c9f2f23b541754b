"""At 200,000 people the generator reproduces every published headline figure (issue 2, s5).

One full-size run (about 15 s on two cores), with the seed the docs report (docs/calibration.md).
"""

from __future__ import annotations

from trainkit.calibrate import calibrate
from trainkit.config import make_config
from trainkit.simulate.engine import generate


def test_every_line_within_tolerance_at_200k(tmp_path):
    out = generate(make_config({"children": 200_000, "seed": 2}), tmp_path / "d", workers=2).out_dir
    report = calibrate(out, chart_path=tmp_path / "c.png")
    assert len(report.lines) >= 20
    outside = [f"{ln.measure}: {ln.simulated:.3g} vs {ln.published:.3g}" for ln in report.lines
               if ln.status != "ok"]  # fmt: skip
    assert not outside, outside

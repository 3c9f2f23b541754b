"""The project's own promises: environment files in step, codebook current, parameters sourced."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from trainkit.codebook import truth_codebook
from trainkit.parameters import PARAM_FILES, load_parameters

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(map(_name, project["dependencies"]))
    for extra in project["optional-dependencies"].values():
        wanted |= set(map(_name, extra))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            conda |= {_name(x) for x in d.get("pip", [])}
    assert conda == wanted, (
        f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    )


def test_byte_shaping_versions_pinned_everywhere():
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert set(pins) == {"numpy", "pyarrow", "faker"}
    env = (ROOT / "environment.yml").read_text()
    for name, version in pins.items():
        assert f"{name}=={version}" in env
    import faker
    import numpy
    import pyarrow

    installed = {"numpy": numpy.__version__, "pyarrow": pyarrow.__version__, "faker": faker.VERSION}
    assert installed == pins, "the environment does not match constraints.txt; run make env"


def test_codebook_is_current():
    path = ROOT / "docs" / "truth-codebook.md"
    assert path.read_text(encoding="utf-8") == truth_codebook(), (
        "docs/truth-codebook.md is stale: run .venv/bin/python -m trainkit.codebook"
    )


def test_every_parameter_has_a_source_or_an_assumption():
    params = load_parameters()
    assert len(params) > 50
    for key in params:
        e = params.entry(key)
        assert (e.source is None) != (e.assumption is None), key
        assert e.unit, f"{key} has no unit"
        text = e.source or e.assumption
        assert len(text) > 25, f"{key}: say where it comes from or why"
    files = {p.stem for p in (ROOT / "src/trainkit/params").glob("*.yaml")}
    assert files - {"targets"} <= set(PARAM_FILES), "a parameter file the loader never reads"

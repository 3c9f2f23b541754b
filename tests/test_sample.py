"""The committed sample is exactly what the generator makes from its config, checksums and all."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from trainkit.config import make_config
from trainkit.simulate.engine import generate

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "synthetic" / "sample"


def _sample_config():
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "tools" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SAMPLE_CONFIG


def test_committed_files_match_their_checksums():
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((SAMPLE / rel).read_bytes()).hexdigest() == digest, rel
    on_disk = {p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json", "README.md"} == set(manifest["files"])


def test_regenerating_the_sample_gives_the_same_bytes(tmp_path):
    fresh = generate(make_config(_sample_config()), tmp_path / "sample").out_dir
    committed = (SAMPLE / "manifest.json").read_text()
    assert (fresh / "manifest.json").read_text() == committed, (
        "synthetic/sample is stale: run `make sample` and commit the result"
    )

"""Bad input gets one clear line, exit status 2, and no output written."""

from __future__ import annotations

import pytest

from trainkit.cli import main
from trainkit.config import make_config
from trainkit.errors import ConfigError


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--children", "0"], "children must be positive"),
        (["--children", "-5"], "children must be positive"),
        (["--children", "ten"], "invalid int value"),
        (["--seed", "-1"], "seed must be at least 0"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--children", "1000000"], "children must be at most 900,090"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, fragment):
    out = tmp_path / "out"
    code, stdout, stderr = run(["generate", "--out", str(out), *argv], capsys)
    assert code == 2
    assert fragment in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("childern: 10\n", "unknown key 'childern'; did you mean 'children'?"),
        ("children: ten\n", "children must be a whole number"),
        ("local_authorities: [202, 999]\n", "999 is not a DfE LA number"),
        ("birth_start: 2010-01-01\nbirth_end: 2005-01-01\n", "before birth_start"),
        ("census_date: 2024-03-30\n", "census_date must be a 31 March"),
        ("birth_start: 2024-13-01\n", "write dates as YYYY-MM-DD"),
        ("birth_start: soon\n", "birth_start must be a date"),
        ("parameters: {social_care.nfa_shar: 0.1}\n", "did you mean 'social_care.nfa_share'"),
        ("parameters: {social_care.nfa_share: high}\n", "must be a number"),
        ("children: [1, 2\n", "not valid YAML"),
        ("- 1\n- 2\n", "must hold a mapping"),
    ],
)
def test_bad_config_file(tmp_path, capsys, text, fragment):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    code, _, stderr = run(["generate", "--out", str(out), "--config", str(cfg)], capsys)
    assert code == 2, stderr
    assert fragment in stderr
    assert stderr.startswith("error: config")
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_config_file(tmp_path, capsys):
    code, _, stderr = run(
        ["generate", "--out", str(tmp_path / "o"), "--config", str(tmp_path / "nope.yaml")], capsys
    )
    assert code == 2 and "not found" in stderr


def test_non_empty_out_needs_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = run(["generate", "--out", str(out), "--children", "50"], capsys)
    assert code == 2 and "--force" in stderr
    assert (out / "keep.txt").read_text() == "mine"  # untouched


def test_force_replaces_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    code, stdout, _ = run(
        ["generate", "--out", str(out), "--children", "300", "--force", "--quiet"], capsys
    )
    assert code == 0
    assert not (out / "old.txt").exists()
    assert (out / "manifest.json").exists()
    assert "output records per second" in stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp left


def test_valid_config_round_trip():
    cfg = make_config(
        {"children": 10, "seed": 3, "local_authorities": [886, 202], "census_date": "2023-03-31"}
    )
    assert cfg.local_authorities == (202, 886)
    assert cfg.to_dict()["birth_end"] == "2023-03-31"
    with pytest.raises(ConfigError):
        make_config({"children": True})

"""``trainkit validate`` and the generated codebook of the agencies' files (course/reference/)."""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainkit import codebook
from trainkit import validate as validate_module
from trainkit.datasets import registry
from trainkit.datasets.schema import Field, OutputTable, codes_from
from trainkit.errors import DataError
from trainkit.validate import (
    PARQUET_BATCH_ROWS,
    RULES,
    add_validate_parser,
    string_rules,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
UPN = r"((?![IOS])[A-Z])(\d{12}|\d{11}[A-Z])"

EPISODES = OutputTable(
    name="test.episodes",
    dataset="ssda903",
    path="returns/test/{year}/{la}/episodes.csv",
    format="csv",
    description="One row per episode of care.",
    source="A test declaration.",
    fields=(
        Field("CHILD", "string", "Child id.", required=True, max_length=6),
        Field("DECOM", "date", "Episode start.", required=True, date_format="%d/%m/%Y"),
        Field("RNE", "code", "Reason.", codes=codes_from(("S", "Started"), ("P", "Placement"))),
        Field("UPN", "string", "UPN.", pattern=UPN),
        Field("SDQ_SCORE", "int", "Score.", minimum=0, maximum=40),
        Field("DIST", "float", "Distance.", minimum=0, maximum=999.9),
        Field("FLAG", "bool", "A flag."),
    ),
    key=("CHILD", "DECOM"),
    first_year=2022,
)
EXTRACT = OutputTable(
    name="test.extract",
    dataset="npd",
    path="research/test/extract.parquet",
    format="parquet",
    description="One row per pupil.",
    source="A test declaration.",
    fields=(
        Field("PMR", "string", "Pupil matching reference.", required=True, pattern=r"CCF\d{4}"),
        Field("YEAR", "int", "Year.", required=True, minimum=2000, maximum=2030),
        Field("GENDER", "code", "Sex.", codes=codes_from(("M", "Male"), ("F", "Female"))),
        Field("ADMIDATE", "date", "Admission date."),
        Field("NCYEAR", "int", "Year group.", codes=codes_from(("1", "Year 1"), ("2", "Year 2"))),
        Field("SCORE", "float", "Score.", maximum=100),
    ),
)
CENSUS = OutputTable(
    name="test.census",
    dataset="cin",
    path="returns/cintest/{year}/{la}.xml",
    format="xml",
    description="One file per LA and year.",
    source="A test declaration.",
    fields=(
        Field("LAchildID", "string", "LA child id.", required=True, max_length=6),
        Field("PrimaryNeedCode", "code", "Need.", codes=codes_from(("N1", "Abuse"), ("N2", "D"))),
        Field("CINreferralDate", "date", "Referral date.", required=True),
    ),
)
TABLES = (EPISODES, EXTRACT, CENSUS)

HEADER = "CHILD,DECOM,RNE,UPN,SDQ_SCORE,DIST,FLAG"
CLEAN_ROWS = [
    "C00001,01/04/2023,S,A123456789012,12,1.5,true",
    "C00002,15/06/2023,P,,,,",
    "C00003,29/02/2024,S,B12345678901C,40,999.9,0",
]
XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="Message"><xs:complexType><xs:sequence>
    <xs:element name="Child" maxOccurs="unbounded"><xs:complexType><xs:sequence>
      <xs:element name="LAchildID" type="xs:string"/>
      <xs:element name="PrimaryNeedCode" minOccurs="0"><xs:simpleType>
        <xs:restriction base="xs:string">
          <xs:enumeration value="N1"/><xs:enumeration value="N2"/>
        </xs:restriction></xs:simpleType></xs:element>
      <xs:element name="CINreferralDate" type="xs:date"/>
    </xs:sequence></xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""
CLEAN_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Message>
  <Child>
    <LAchildID>A1</LAchildID>
    <PrimaryNeedCode>N1</PrimaryNeedCode>
    <CINreferralDate>2023-05-01</CINreferralDate>
  </Child>
  <Child>
    <LAchildID>A2</LAchildID>
    <CINreferralDate>2023-06-01</CINreferralDate>
  </Child>
</Message>
"""
CSV_PATH = "returns/test/2024/886/episodes.csv"
PARQUET_PATH = "research/test/extract.parquet"
XML_PATH = "returns/cintest/2024/886.xml"


def _extract_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "PMR": ["CCF0001", "CCF0002", "CCF0003"],
            "YEAR": np.array([2020, 2021, 2022], dtype=np.int16),
            "GENDER": ["M", "F", None],
            "ADMIDATE": pd.to_datetime(["2020-01-01", None, "2021-03-04"]).date,
            "NCYEAR": np.array([1, 2, 1], dtype=np.int64),
            "SCORE": [1.5, np.nan, 100.0],
        }
    )


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    """A folder holding one clean file of each format, a truth table and a manifest."""
    root = tmp_path / "data"
    _write(root / CSV_PATH, "\r\n".join([HEADER, *CLEAN_ROWS]) + "\r\n")
    _write_parquet(root / PARQUET_PATH, _extract_frame())
    _write(root / XML_PATH, CLEAN_XML)
    _write_parquet(root / "truth" / "persons.parquet", pd.DataFrame({"person_id": [1, 2]}))
    files = [CSV_PATH, PARQUET_PATH, XML_PATH, "truth/persons.parquet"]
    _write(root / "manifest.json", json.dumps({"files": {f: "x" for f in files}}))
    return root


def _csv(root: Path, *rows: str, header: str = HEADER) -> None:
    _write(root / CSV_PATH, "\r\n".join([header, *rows]) + "\r\n")


def _found(report, file: str | None = None) -> set[tuple]:
    v = report.violations
    if file is not None:
        v = v[v["file"] == file]
    return {
        (r.file, None if pd.isna(r.row) else int(r.row), r.field, r.rule, r.value)
        for r in v.itertuples()
    }


def _rules(report, file: str) -> set[str]:
    return set(report.violations.loc[report.violations["file"] == file, "rule"])


def _validate(root: Path, schemas: dict | None = None):
    """Validate against the test declarations; the test XML has no XSD unless one is given."""
    return validate(root, TABLES, schemas=schemas or {CENSUS.name: None})


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="trainkit")
    add_validate_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------ clean files


def test_clean_files_pass(clean_dir: Path):
    report = _validate(clean_dir)
    assert report.ok, report.format()
    assert report.files_checked == 3  # truth/ and the manifest are not agency files
    assert report.violations.columns.tolist() == ["file", "row", "field", "rule", "value", "detail"]
    assert "no violations" in report.format()


def test_a_byte_order_mark_is_accepted(clean_dir: Path):
    _write(clean_dir / CSV_PATH, ("\ufeff" + "\r\n".join([HEADER, *CLEAN_ROWS])).encode("utf-8"))
    assert _validate(clean_dir).ok


def test_header_only_csv_is_an_empty_table(clean_dir: Path):
    _csv(clean_dir)
    assert _validate(clean_dir).ok


# ------------------------------------------------------------------ CSV value rules


def test_every_csv_value_rule_is_found_at_its_row_and_field(clean_dir: Path):
    _csv(
        clean_dir,
        CLEAN_ROWS[0],  # row 2: clean
        "C00002,31/02/2023,P ,I123456789012,41,-1,yes",  # row 3: date code pattern max min bool
        ",2023-04-01,X,A12345678901,1.5,abc,",  # row 4: required, date, code, pattern, int, number
        "C000004,01/04/2023,S,,-1,1000,1",  # row 5: max_length, minimum, maximum
        " ,01/04/2023,S,,,,",  # row 6: a blank (space only) required value
    )
    got = _found(_validate(clean_dir), CSV_PATH)
    f = CSV_PATH
    assert got == {
        (f, 3, "DECOM", "date", "31/02/2023"),
        (f, 3, "RNE", "code", "P "),
        (f, 3, "UPN", "pattern", "I123456789012"),
        (f, 3, "SDQ_SCORE", "maximum", "41"),
        (f, 3, "DIST", "minimum", "-1"),
        (f, 3, "FLAG", "bool", "yes"),
        (f, 4, "CHILD", "required", ""),
        (f, 4, "DECOM", "date", "2023-04-01"),
        (f, 4, "RNE", "code", "X"),
        (f, 4, "UPN", "pattern", "A12345678901"),
        (f, 4, "SDQ_SCORE", "integer", "1.5"),
        (f, 4, "DIST", "number", "abc"),
        (f, 5, "CHILD", "max_length", "C000004"),
        (f, 5, "SDQ_SCORE", "minimum", "-1"),
        (f, 5, "DIST", "maximum", "1000"),
        (f, 6, "CHILD", "required", " "),
    }


def test_trailing_space_and_padding_break_codes_and_dates(clean_dir: Path):
    _csv(clean_dir, "C00001,01/04/2023 ,S ,,,,", "C00002, 01/04/2023,s,,,,")
    got = {(r, fld, rule) for _, r, fld, rule, _ in _found(_validate(clean_dir), CSV_PATH)}
    assert got == {
        (2, "DECOM", "date"),
        (2, "RNE", "code"),
        (3, "DECOM", "date"),
        (3, "RNE", "code"),
    }


def test_dates_outside_pandas_range_are_still_dates(clean_dir: Path):
    _csv(clean_dir, "C00001,01/01/9999,S,,,,", "C00002,01/01/1800,S,,,,")
    assert _validate(clean_dir).ok


def test_header_mismatch(clean_dir: Path):
    _csv(clean_dir, CLEAN_ROWS[0].replace("C00001", "C0000001"), header=HEADER.replace("RNE", "RN"))
    report = _validate(clean_dir)
    header = report.violations.query("rule == 'header'")
    assert len(header) == 1
    assert header["row"].iloc[0] == 1
    assert "missing RNE" in header["detail"].iloc[0]
    assert "unexpected 'RN'" in header["detail"].iloc[0]
    # the columns that are there are still checked
    assert (CSV_PATH, 2, "CHILD", "max_length", "C0000001") in _found(report)


def test_header_in_a_different_order(clean_dir: Path):
    swapped = "DECOM,CHILD,RNE,UPN,SDQ_SCORE,DIST,FLAG"
    _csv(clean_dir, "01/04/2023,C00001,S,,,,", header=swapped)
    report = _validate(clean_dir)
    assert _rules(report, CSV_PATH) == {"header"}
    assert "different order" in report.violations["detail"].iloc[0]


def test_rows_with_the_wrong_number_of_fields(clean_dir: Path):
    _csv(clean_dir, CLEAN_ROWS[0], "C00002,01/04/2023,S", CLEAN_ROWS[2] + ",extra")
    got = _found(_validate(clean_dir), CSV_PATH)
    assert got == {
        (CSV_PATH, 3, None, "field_count", "3 fields, the header has 7"),
        (CSV_PATH, 4, None, "field_count", "8 fields, the header has 7"),
    }


def test_quoted_values_are_unquoted_before_checking(clean_dir: Path):
    _csv(clean_dir, '"C00001","01/04/2023","S","","","",""')
    assert _validate(clean_dir).ok


# ------------------------------------------------------------------ damaged files


def test_damaged_csv_files_give_violations_not_tracebacks(clean_dir: Path, tmp_path: Path):
    cases = {
        "empty": (b"", "empty_file"),
        "blank": (b"\r\n\r\n", "empty_file"),
        "binary": (bytes(range(256)) * 4, "binary"),
        "latin-1": (f"{HEADER}\r\nC00001,01/04/2023,S,,,,Zoë\r\n".encode("latin-1"), "encoding"),
        "unclosed quote": (f'{HEADER}\r\nC00001,"01/04/2023,S,,,,\r\n'.encode(), "malformed_csv"),
        "truncated": (f"{HEADER}\r\n{CLEAN_ROWS[0]}\r\nC0000".encode(), "field_count"),
    }
    for name, (content, rule) in cases.items():
        _write(clean_dir / CSV_PATH, content)
        report = _validate(clean_dir)
        v = report.violations
        assert set(v["rule"]) == {rule}, (name, report.format())
        assert set(v["file"]) == {CSV_PATH}, name
        assert CSV_PATH in report.format(), name
    assert v["row"].iloc[0] == 3  # the truncated row


def test_encoding_error_names_the_line(clean_dir: Path):
    _write(clean_dir / CSV_PATH, f"{HEADER}\r\n{CLEAN_ROWS[0]}\r\nC0\xe9,\r\n".encode("latin-1"))
    v = _validate(clean_dir).violations
    assert v["row"].tolist() == [3]
    assert "0xe9 at line 3" in v["detail"].iloc[0]


def test_damaged_parquet_files(clean_dir: Path):
    path = clean_dir / PARQUET_PATH
    whole = path.read_bytes()
    for content in (whole[: len(whole) // 2], b"", b"PAR1 not really parquet", whole[100:]):
        path.write_bytes(content)
        report = _validate(clean_dir)
        assert set(report.violations["rule"]) <= {"malformed_parquet", "empty_file"}
        assert len(report.violations) == 1
        assert report.violations["file"].iloc[0] == PARQUET_PATH


def test_truncated_xml_names_the_line(clean_dir: Path):
    text = CLEAN_XML[: CLEAN_XML.index("<Child>", 60)]  # cut after the first child
    _write(clean_dir / XML_PATH, text)
    v = _validate(clean_dir).violations
    assert v["rule"].tolist() == ["malformed_xml"]
    assert v["row"].iloc[0] == text.count("\n") + 1
    assert v["detail"].iloc[0].startswith(f"malformed XML at line {text.count(chr(10)) + 1}")


def test_damaged_xml_files(clean_dir: Path):
    for content in (
        b"",
        bytes(range(256)),
        b"<Message><Child></Message>",
        "<a>é</a>".encode("cp1252"),
    ):
        _write(clean_dir / XML_PATH, content)
        v = _validate(clean_dir).violations
        assert v["rule"].isin(["malformed_xml", "empty_file"]).all() and len(v) == 1, content


# ------------------------------------------------------------------ Parquet


def test_parquet_value_rules(clean_dir: Path):
    frame = _extract_frame()
    frame.loc[0, "PMR"] = "XYZ"
    frame.loc[1, "PMR"] = ""
    frame.loc[1, "YEAR"] = 1999
    frame.loc[2, "GENDER"] = "F "
    frame.loc[2, "NCYEAR"] = 3
    frame.loc[0, "SCORE"] = 100.5
    _write_parquet(clean_dir / PARQUET_PATH, frame)
    f = PARQUET_PATH
    assert _found(_validate(clean_dir), f) == {
        (f, 1, "PMR", "pattern", "XYZ"),
        (f, 2, "PMR", "required", ""),
        (f, 2, "YEAR", "minimum", "1999"),
        (f, 3, "GENDER", "code", "F "),
        (f, 3, "NCYEAR", "code", "3"),
        (f, 1, "SCORE", "maximum", "100.5"),
    }


def test_parquet_missing_required_numbers_and_float_years(clean_dir: Path):
    frame = _extract_frame()
    frame["YEAR"] = [2020.0, np.nan, 2021.5]
    _write_parquet(clean_dir / PARQUET_PATH, frame)
    got = _found(_validate(clean_dir), PARQUET_PATH)
    assert got == {
        (PARQUET_PATH, 2, "YEAR", "required", ""),
        (PARQUET_PATH, 3, "YEAR", "integer", "2021.5"),
    }


def test_parquet_columns_and_types(clean_dir: Path):
    frame = _extract_frame().drop(columns="SCORE")
    frame["ADMIDATE"] = [1, 2, 3]  # a date stored as an integer
    frame["EXTRA"] = "x"
    _write_parquet(clean_dir / PARQUET_PATH, frame)
    v = _validate(clean_dir).violations
    assert v["rule"].tolist() == ["columns", "type"]
    assert "missing SCORE" in v["detail"].iloc[0] and "'EXTRA'" in v["detail"].iloc[0]
    assert v["field"].iloc[1] == "ADMIDATE"


def test_parquet_rows_are_numbered_across_batches(clean_dir: Path):
    n = PARQUET_BATCH_ROWS + 1000
    frame = pd.DataFrame(
        {
            "PMR": "CCF" + pd.Series(np.arange(n) % 10_000).astype(str).str.zfill(4),
            "YEAR": np.full(n, 2020, dtype=np.int16),
            "GENDER": np.where(np.arange(n) % 2 == 0, "M", "F"),
            "ADMIDATE": pd.Series(pd.to_datetime("2020-01-01"), index=range(n)).dt.date,
            "NCYEAR": np.ones(n, dtype=np.int64),
            "SCORE": np.zeros(n),
        }
    )
    bad = [0, PARQUET_BATCH_ROWS - 1, PARQUET_BATCH_ROWS, n - 1]
    frame.loc[bad, "GENDER"] = "X"
    _write_parquet(clean_dir / PARQUET_PATH, frame)
    v = _validate(clean_dir).violations
    assert v["row"].tolist() == [i + 1 for i in bad]
    assert set(v["rule"]) == {"code"}


# ------------------------------------------------------------------ XML


def test_xml_element_text_is_checked_with_line_numbers(clean_dir: Path):
    text = (
        CLEAN_XML.replace("<PrimaryNeedCode>N1<", "<PrimaryNeedCode>N1 <")
        .replace("<LAchildID>A2<", "<LAchildID><")
        .replace("2023-06-01", "01/06/2023")
    )
    _write(clean_dir / XML_PATH, text)
    got = _found(_validate(clean_dir), XML_PATH)
    assert got == {
        (XML_PATH, 5, "PrimaryNeedCode", "code", "N1 "),
        (XML_PATH, 9, "LAchildID", "required", ""),
        (XML_PATH, 10, "CINreferralDate", "date", "01/06/2023"),
    }


def test_xml_elements_holding_elements_have_no_value(clean_dir: Path):
    text = CLEAN_XML.replace(
        "<LAchildID>A1</LAchildID>", "<LAchildID>\n      <Inner>A1234567</Inner>\n    </LAchildID>"
    )
    _write(clean_dir / XML_PATH, text)
    assert _validate(clean_dir).ok


def test_xml_namespaced_elements_are_checked(clean_dir: Path):
    text = CLEAN_XML.replace("<Message>", '<Message xmlns:c="urn:x">').replace(
        "<LAchildID>A1</LAchildID>", "<c:LAchildID>A1234567</c:LAchildID>"
    )
    _write(clean_dir / XML_PATH, text)
    got = _found(_validate(clean_dir), XML_PATH)
    assert got == {(XML_PATH, 4, "LAchildID", "max_length", "A1234567")}


def test_xsd_validity(clean_dir: Path, tmp_path: Path):
    pytest.importorskip("lxml")
    xsd = tmp_path / "test.xsd"
    xsd.write_text(XSD, encoding="utf-8")
    assert _validate(clean_dir, schemas={CENSUS.name: xsd}).ok
    text = CLEAN_XML.replace("<PrimaryNeedCode>N1<", "<PrimaryNeedCode>N3<").replace(
        "<CINreferralDate>2023-06-01</CINreferralDate>", ""
    )
    _write(clean_dir / XML_PATH, text)
    v = _validate(clean_dir, schemas={CENSUS.name: xsd}).violations
    xsd_rows = v[v["rule"] == "xsd"]
    assert xsd_rows["row"].tolist() == [5, 8]
    assert xsd_rows["field"].tolist() == ["PrimaryNeedCode", "Child"]
    assert xsd_rows["value"].iloc[0] == "N3"
    assert "test.xsd" in xsd_rows["detail"].iloc[0]
    assert ((v["rule"] == "code") & (v["row"] == 5)).any()  # and the declared code list


def test_xsd_without_lxml_is_a_note_not_a_failure(clean_dir: Path, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lxml", None)
    xsd = tmp_path / "test.xsd"
    xsd.write_text(XSD, encoding="utf-8")
    report = _validate(clean_dir, schemas={CENSUS.name: xsd})
    assert report.ok
    assert any("lxml" in n for n in report.notes)


# ------------------------------------------------------------------ the folder


def test_unexpected_files_and_years_not_collected(clean_dir: Path):
    _write(clean_dir / "returns/test/2024/886/notes.txt", "hello")
    _write(clean_dir / "returns/test/2021/886/episodes.csv", HEADER + "\r\n")
    report = _validate(clean_dir)
    got = {(f, rule) for f, _, _, rule, _ in _found(report)}
    assert got == {
        ("returns/test/2024/886/notes.txt", "unexpected_file"),
        ("returns/test/2021/886/episodes.csv", "not_collected"),
    }
    assert report.files_checked == 5
    assert "collected from 2022" in report.violations["detail"].str.cat()


def test_files_listed_in_the_manifest_must_exist(clean_dir: Path):
    (clean_dir / XML_PATH).unlink()
    report = _validate(clean_dir)
    assert _found(report) == {("manifest.json", None, None, "manifest", XML_PATH)}


def test_a_folder_without_a_manifest_or_agency_files_is_an_error(clean_dir: Path, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        _validate(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is a file"):
        _validate(clean_dir / "manifest.json")
    (clean_dir / "manifest.json").unlink()
    with pytest.raises(DataError, match="no manifest.json"):
        _validate(clean_dir)
    only_truth = tmp_path / "only_truth"
    shutil.copytree(clean_dir / "truth", only_truth / "truth")
    _write(only_truth / "manifest.json", "{}")
    with pytest.raises(DataError, match="no agency files"):
        _validate(only_truth)


def test_format_summarises_and_limits(clean_dir: Path):
    _csv(clean_dir, *[f"C{i:05d},01/04/2023,X,,,," for i in range(60)])
    report = _validate(clean_dir)
    text = report.format(limit=5)
    assert "60 violations in 1 file" in text
    assert f"{CSV_PATH}  code" in text
    assert f"{CSV_PATH}:2 RNE: code ('X')" in text
    assert "... and 55 more" in text
    assert len(text.splitlines()) < 25
    assert "... and 60 more" in report.format(limit=0)


# ------------------------------------------------------------------ command line


def test_cli_exit_codes(clean_dir: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "output_tables", lambda: TABLES)
    monkeypatch.setattr(validate_module, "SPECS_DIR", tmp_path / "no-specs")
    assert _run(["validate", str(clean_dir)]) == 0
    assert "no violations" in capsys.readouterr().out
    _csv(clean_dir, "C00001,01/04/2023,X,,,,")
    out_csv = tmp_path / "out" / "violations.csv"
    assert _run(["validate", str(clean_dir), "--limit", "3", "--out", str(out_csv)]) == 1
    out = capsys.readouterr().out
    assert f"{CSV_PATH}:2 RNE: code ('X')" in out
    written = pd.read_csv(out_csv, keep_default_na=False)
    assert written[["file", "row", "field", "rule", "value"]].values.tolist() == [
        [CSV_PATH, 2, "RNE", "code", "X"]
    ]
    for bad in (tmp_path / "nowhere", tmp_path):
        assert _run(["validate", str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines


def test_cli_is_wired(clean_dir: Path, tmp_path: Path, monkeypatch, capsys):
    from trainkit import cli

    if "add_validate_parser" not in inspect.getsource(cli):
        pytest.skip("trainkit.cli does not wire `validate` yet")
    monkeypatch.setattr(registry, "output_tables", lambda: TABLES)
    monkeypatch.setattr(validate_module, "SPECS_DIR", tmp_path / "no-specs")
    assert cli.main(["validate", str(clean_dir)]) == 0
    assert cli.main(["validate", str(clean_dir / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# ------------------------------------------------------------------ rules on single values


def test_string_rules_on_values():
    f = Field("X", "code", "x", codes={"A": "a"}, required=True, max_length=1)
    rules = dict(string_rules(f, pd.Series(["A", "A ", "", "B"])))
    assert rules["code"].tolist() == [False, True, False, True]
    assert rules["required"].tolist() == [False, False, True, False]
    assert rules["max_length"].tolist() == [False, True, False, False]
    assert set(rules) <= set(RULES)


# ------------------------------------------------------------------ real generated folders


def _generated(tmp_path_factory, messiness: str) -> Path:
    from trainkit.config import make_config
    from trainkit.simulate.engine import generate

    out = tmp_path_factory.mktemp(f"validate-{messiness}") / "data"
    generate(make_config({"children": 3000, "seed": 1, "messiness": messiness}), out)
    return out


needs_modules = pytest.mark.skipif(
    not registry.MODULES, reason="no dataset module is registered yet"
)


@needs_modules
def test_clean_generated_folder_has_no_violations(tmp_path_factory):
    report = validate(_generated(tmp_path_factory, "clean"))
    assert report.files_checked > 0
    assert report.ok, report.format(limit=30)


@needs_modules
def test_logged_errors_that_break_a_declared_rule_are_found(tmp_path_factory):
    root = _generated(tmp_path_factory, "realistic")
    report = validate(root)
    log = pd.read_parquet(root / "truth" / "error_log.parquet")
    assert len(log), "realistic messiness logged no errors"
    tables = registry.output_tables()
    by_file = {}
    for rel in report.violations["file"].unique():
        by_file[rel] = report.violations[report.violations["file"] == rel]
    checked = 0
    for (file, field_name), group in log.groupby(["file", "field"]):
        path = next((p for p in (root / file, *root.rglob(file)) if p.is_file()), None)
        if path is None:
            continue
        rel = path.relative_to(root).as_posix()
        table = next((t for t in tables if t.path_regex().match(rel)), None)
        if table is None or field_name not in table.field_names:
            continue
        f = table.field(field_name)
        after = group["value_after"].fillna("").astype(str)
        if table.format == "parquet" and f.kind not in ("string", "code"):
            continue  # typed columns: the logged text is not the stored value
        breaking = set()
        for rule, mask in string_rules(f, after):
            breaking |= {(rule, v) for v in after[mask]}
        found = by_file.get(rel, pd.DataFrame(columns=["field", "rule", "value"]))
        found = found[found["field"] == field_name]
        have = set(zip(found["rule"], found["value"].fillna(""), strict=True))
        assert breaking <= have, (rel, field_name, breaking - have)
        checked += len(breaking)
    assert checked > 0, "no logged error breaks a declared rule"


# ------------------------------------------------------------------ the codebook


def test_reference_codebook_is_current():
    folder = ROOT / "course" / "reference"
    pages = codebook.reference_pages()
    stale = "course/reference/ is stale: run .venv/bin/python -m trainkit.codebook"
    assert {p.name for p in folder.glob("*.md")} == set(pages), stale
    for name, text in pages.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name}: {stale}"


def test_output_codebook_renders_every_declared_detail():
    text = codebook.output_codebook("ssda903", tables=(EPISODES,))
    assert "## test.episodes" in text
    assert "`returns/test/{year}/{la}/episodes.csv`" in text
    assert "A test declaration." in text and "One row per episode of care." in text
    assert "| `CHILD` | string | yes | Child id. | at most 6 characters |" in text
    assert "dd/mm/yyyy" in text  # the date format, in words
    assert "| `P` | Placement |" in text  # the codes with their meanings
    assert r"\|" in text  # the UPN pattern's alternation is escaped inside the table
    assert "from 2022" in text
    index = codebook.reference_index(tables=TABLES)
    assert "[ssda903.md](ssda903.md)" in index and "[cin.md](cin.md)" in index
    for rule in RULES:
        assert f"`{rule}`" in index

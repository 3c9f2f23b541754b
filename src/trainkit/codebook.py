"""Render the table declarations as Markdown codebooks.

* ``docs/truth-codebook.md``: the truth tables (:func:`truth_codebook`).
* ``course/reference/<dataset>.md`` and ``course/reference/README.md``: the agencies' files, one
  page per dataset (:func:`output_codebook`, :func:`reference_index`, :func:`reference_pages`).

Regenerate both with ``python -m trainkit.codebook`` from the repository folder (tests fail when
either is out of date); ``python -m trainkit.codebook PATH`` writes only the truth codebook to PATH.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .datasets.schema import Field, OutputTable
from .simulate.schema import Table

TRUTH_CODEBOOK = Path("docs/truth-codebook.md")
REFERENCE_DIR = Path("course/reference")
INDEX_PAGE = "README.md"
FORMATS = {
    "csv": "CSV: a header row, then one row per record (UTF-8, CRLF line ends)",
    "xml": "XML: one document per file",
    "parquet": "Parquet: one row per record",
}
PLACEHOLDERS = (
    "In paths, `{year}` is the collection year (the year ending 31 March: `2024` is 2023-24) "
    "and `{la}` is the DfE three-digit local authority number. "
)
STRFTIME_WORDS = {"%d": "dd", "%m": "mm", "%Y": "yyyy", "%y": "yy", "%H": "HH", "%M": "MM",
                  "%S": "SS", "%b": "Mon", "%B": "Month"}  # fmt: skip


def render(tables: Iterable[Table], title: str, intro: str) -> str:
    """A Markdown codebook: one section per table, one row per column, codes listed."""
    lines = [f"# {title}", "", intro, ""]
    tables = list(tables)
    lines += ["| table | what a row is |", "|---|---|"]
    lines += [f"| [`{t.name}`](#{t.name}) | {t.description} |" for t in tables]
    for t in tables:
        lines += ["", f"## {t.name}", "", t.description, ""]
        if t.key:
            lines += [f"Key: {', '.join(f'`{k}`' for k in t.key)}.", ""]
        lines += ["| column | type | description |", "|---|---|---|"]
        for c in t.columns:
            desc = c.description
            if c.codes and any(k != v for k, v in c.codes.items()):
                desc += " Codes: " + "; ".join(f"`{k}` {v}" for k, v in c.codes.items()) + "."
            elif c.codes:
                desc += " Codes: " + ", ".join(f"`{k}`" for k in c.codes) + "."
            lines.append(f"| `{c.name}` | {c.type} | {desc} |")
    return "\n".join(lines) + "\n"


def truth_codebook() -> str:
    """The codebook of every truth table the generator writes."""
    from .simulate.engine import TRUTH_TABLES

    intro = (
        "The truth tables that `trainkit generate` writes to `DIR/truth/<table>.parquet`: the "
        "simulated lives themselves, before any agency records them. Dates are Parquet `date32`, "
        "flags are booleans, empty means missing. Read them with "
        "`trainkit.read_truth(DIR, table)`. "
        "This page is generated from the declarations in `src/trainkit/simulate/` by "
        "`python -m trainkit.codebook`; a test fails when it is out of date."
    )
    return render(TRUTH_TABLES, "Codebook: the truth tables", intro)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _date_words(fmt: str) -> str:
    return re.sub(r"%[a-zA-Z]", lambda m: STRFTIME_WORDS.get(m.group(0), m.group(0)), fmt)


def _rules(f: Field) -> str:
    """What a value of the field must be, in words (the checks ``trainkit validate`` makes)."""
    out = []
    if f.codes:
        out.append(
            "the code below" if len(f.codes) == 1 else f"one of the {len(f.codes)} codes below"
        )
    if f.kind == "int":
        out.append("a whole number")
    if f.kind == "float":
        out.append("a number")
    if f.kind == "bool" and not f.codes:
        out.append("true, false, 1 or 0 (or a Parquet boolean)")
    if f.minimum is not None:
        out.append(f"at least {f.minimum:g}")
    if f.maximum is not None:
        out.append(f"at most {f.maximum:g}")
    if f.kind == "date":
        out.append(
            f"{_date_words(f.date_format)} (`{f.date_format}`)"
            if f.date_format
            else "a date (Parquet date, or yyyy-mm-dd)"
        )
    if f.max_length is not None:
        out.append(f"at most {f.max_length} characters")
    if f.pattern is not None:
        out.append(f"matches `{f.pattern}`")
    return _cell("; ".join(out))


def _years(t: OutputTable) -> str:
    if t.first_year is None and t.last_year is None:
        return "every collection year written"
    if t.last_year is None:
        return f"collection years from {t.first_year}"
    if t.first_year is None:
        return f"collection years up to {t.last_year}"
    return f"collection years from {t.first_year} to {t.last_year}"


def _anchor(t: OutputTable) -> str:
    return re.sub(r"[^a-z0-9_-]", "", t.name.lower())


def _module_name(tables: Sequence[OutputTable]) -> str | None:
    from .datasets import registry

    for m in registry.MODULES:
        if any(t in m.TABLES for t in tables):
            return m.__name__
    return None


def _output_tables(tables: Iterable[OutputTable] | None) -> tuple[OutputTable, ...]:
    if tables is not None:
        return tuple(tables)
    from .datasets import registry

    return registry.output_tables()


def output_codebook(dataset: str, tables: Iterable[OutputTable] | None = None) -> str:
    """The Markdown codebook of one dataset's files (``course/reference/<dataset>.md``).

    Args:
        dataset: a dataset name (a key of ``registry.DATASETS``, e.g. ``ssda903``).
        tables: the declarations to render (default: every registered output table); only those
            of ``dataset`` are used.

    Returns:
        Markdown: a table of contents, then per table its description, file path, format,
        specification, key and years, one row per field (name, kind, required, description,
        what a value must be), and each code list with the codes' meanings.
    """
    from .datasets.registry import DATASETS

    tables = [t for t in _output_tables(tables) if t.dataset == dataset]
    title = DATASETS.get(dataset, dataset)
    module = _module_name(tables)
    declared = f"`src/{module.replace('.', '/')}.py`" if module else "the dataset modules"
    lines = [
        f"# {title} (`{dataset}`)",
        "",
        f"The files of this dataset that `trainkit generate` writes, as declared in {declared}. "
        "`trainkit validate DIR` checks every file against these declarations. "
        + (PLACEHOLDERS if any("{" in t.path for t in tables) else "")
        + "This page is generated by `python -m trainkit.codebook`; a test fails when it is out "
        f"of date. [All datasets]({INDEX_PAGE}).",
        "",
        "| table | file | what a record is |",
        "|---|---|---|",
    ]
    lines += [
        f"| [`{t.name}`](#{_anchor(t)}) | `{t.path}` | {_cell(t.description)} |" for t in tables
    ]
    for t in tables:
        lines += ["", f"## {t.name}", "", t.description, ""]
        lines += [
            f"- File: `{t.path}`",
            f"- Format: {FORMATS.get(t.format, t.format)}",
            f"- Specification: {t.source}",
        ]
        if "{year}" in t.path or t.first_year is not None or t.last_year is not None:
            lines.append(f"- Written for: {_years(t)}")
        if t.key:
            lines.append(f"- Key: {', '.join(f'`{k}`' for k in t.key)}")
        lines += [
            "",
            "| field | kind | required | description | a value must be |",
            "|---|---|---|---|---|",
        ]
        for f in t.fields:
            required = "yes" if f.required else "no"
            lines.append(
                f"| `{f.name}` | {f.kind} | {required} | {_cell(f.description)} | {_rules(f)} |"
            )
        for f in t.fields:
            if f.codes:
                lines += ["", f"`{f.name}` codes:", "", "| code | meaning |", "|---|---|"]
                lines += [f"| `{_cell(c)}` | {_cell(m)} |" for c, m in f.codes.items()]
    return "\n".join(lines) + "\n"


def reference_index(tables: Iterable[OutputTable] | None = None) -> str:
    """The index page ``course/reference/README.md``: every dataset's tables, and the rules."""
    from .datasets.registry import DATASETS
    from .validate import RULES

    tables = _output_tables(tables)
    datasets = [d for d in DATASETS if any(t.dataset == d for t in tables)]
    lines = [
        "# Reference: the agencies' files",
        "",
        "What `trainkit generate` writes besides the truth tables: the statutory returns as local "
        "authorities submit them, the research extracts as researchers receive them, and the "
        "identity files the data owners hold before pseudonymisation. One page per dataset, "
        "generated from the declarations in `src/trainkit/datasets/` by "
        "`python -m trainkit.codebook` (a test fails when these pages are out of date). The "
        "simulated lives behind them are described in `docs/truth-codebook.md`.",
        "",
    ]
    if not datasets:
        lines += ["No dataset module is registered yet.", ""]
    else:
        lines += ["| dataset | page | tables |", "|---|---|---|"]
        for d in datasets:
            names = ", ".join(f"`{t.name}`" for t in tables if t.dataset == d)
            lines.append(f"| {_cell(DATASETS[d])} | [{d}.md]({d}.md) | {names} |")
        lines += ["", "## Files", "", "| file | format | table |", "|---|---|---|"]
        for d in datasets:
            lines += [
                f"| `{t.path}` | {t.format} | [`{t.name}`]({d}.md#{_anchor(t)}) |"
                for t in tables
                if t.dataset == d
            ]
        lines.append("")
    lines += [
        "## What `trainkit validate` checks",
        "",
        "`trainkit validate DIR [--limit N] [--out violations.csv]` matches every file in DIR "
        "(except `truth/` and `manifest.json`) to its declaration and reports each violation as "
        "file, row, field, rule and value. CSV rows count the header as row 1; Parquet row 1 is "
        "the first record; XML rows are line numbers. Exit status 0: no violations; 1: "
        "violations; 2: DIR missing or unusable. At `--messiness realistic` and `heavy` the files "
        "break these rules on purpose: that is what the error log in `truth/` records.",
        "",
        "| rule | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{rule}` | {_cell(meaning)} |" for rule, meaning in RULES.items()]
    return "\n".join(lines) + "\n"


def reference_pages(tables: Iterable[OutputTable] | None = None) -> dict[str, str]:
    """Every page of ``course/reference/``: file name to Markdown."""
    tables = _output_tables(tables)
    pages = {INDEX_PAGE: reference_index(tables)}
    for dataset in dict.fromkeys(t.dataset for t in tables):
        pages[f"{dataset}.md"] = output_codebook(dataset, tables)
    return pages


def write_reference(folder: str | Path = REFERENCE_DIR) -> list[Path]:
    """Write ``course/reference/*.md``, removing pages of datasets no longer declared."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pages = reference_pages()
    for old in folder.glob("*.md"):
        if old.name not in pages:
            old.unlink()
    written = []
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1:
        targets = [Path(sys.argv[1])]
        targets[0].write_text(truth_codebook(), encoding="utf-8")
    else:
        TRUTH_CODEBOOK.write_text(truth_codebook(), encoding="utf-8")
        targets = [TRUTH_CODEBOOK, *write_reference(REFERENCE_DIR)]
    for target in targets:
        print(f"wrote {target}")

"""Render the table declarations as a Markdown codebook (``docs/truth-codebook.md``)."""

from __future__ import annotations

from collections.abc import Iterable

from .simulate.schema import Table


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


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/truth-codebook.md")
    target.write_text(truth_codebook(), encoding="utf-8")
    print(f"wrote {target}")

"""One declaration per output table: the agencies' files, as the specifications define them.

Every file the record layer writes (an SSDA903 CSV, a CIN census XML, an NPD or HES extract, an
identity extract) is declared once here, with its columns, types, allowed codes and meanings, a
description, and the specification it follows. The writers, ``trainkit validate`` and the generated
codebook (``course/reference/``) all read these declarations.

A field's ``semantic`` says what the value *is* (a forename, a date of birth, a UPN...), which is
what the messiness layer uses to decide which errors can happen to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# kinds of value a field holds
KINDS = ("string", "int", "float", "date", "bool", "code")

# what a value means, for the messiness layer (None: nothing to corrupt)
SEMANTICS = (
    "forename", "surname", "middle_names", "date_of_birth", "date", "upn", "former_upn",
    "nhs_number", "postcode", "sex", "ethnicity", "code", "la_child_id", "id", "month_year",
)  # fmt: skip


@dataclass(frozen=True)
class Field:
    """A column of an output table (or an element of an XML record).

    Attributes:
        name: the name in the file, exactly as the specification spells it.
        kind: one of ``KINDS``.
        description: what it holds, in the domain's words.
        codes: allowed codes and their meanings (for ``kind="code"``).
        required: False where the specification lets it be blank.
        pattern: a regular expression the whole value must match (strings).
        max_length: the most characters allowed.
        minimum, maximum: bounds for numbers.
        date_format: strftime format in the file (e.g. ``%d/%m/%Y``); None for Parquet dates.
        semantic: what the value is, for the messiness layer.
    """

    name: str
    kind: str
    description: str
    codes: dict[str, str] | None = None
    required: bool = False
    pattern: str | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    date_format: str | None = None
    semantic: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind {self.kind!r} not in {KINDS}")
        if self.kind == "code" and not self.codes:
            raise ValueError(f"field {self.name}: a code field needs its codes")
        if self.semantic is not None and self.semantic not in SEMANTICS:
            raise ValueError(f"field {self.name}: semantic {self.semantic!r} not in {SEMANTICS}")


@dataclass(frozen=True)
class OutputTable:
    """A table (or file type) of one dataset.

    Attributes:
        name: unique name, ``dataset.table`` (e.g. ``ssda903.episodes``).
        dataset: one of ``ssda903``, ``cin``, ``npd``, ``hes``, ``bridging``, ``pupils``, ``pds``.
        path: where it is written under DIR, with ``{year}`` (collection year, the year ending
            31 March) and ``{la}`` (DfE LA number) placeholders where the file is split.
        format: ``csv``, ``xml`` or ``parquet``.
        description: what a row (record) is.
        source: the specification the layout follows.
        fields: the columns in file order.
        key: fields that identify a record (for error reports and the error log).
        first_year, last_year: collection years in which the table exists (None: every year).
    """

    name: str
    dataset: str
    path: str
    format: str
    description: str
    source: str
    fields: tuple[Field, ...]
    key: tuple[str, ...] = ()
    first_year: int | None = None
    last_year: int | None = None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def path_regex(self) -> re.Pattern:
        """A regex matching this table's paths (relative to DIR), capturing year and LA."""
        pattern = re.escape(self.path)
        pattern = pattern.replace(re.escape("{year}"), r"(?P<year>\d{4})")
        pattern = pattern.replace(re.escape("{la}"), r"(?P<la>\d{3})")
        return re.compile(f"^{pattern}$")

    def exists_in(self, year: int) -> bool:
        return (self.first_year is None or year >= self.first_year) and (
            self.last_year is None or year <= self.last_year
        )


def codes_from(*pairs: tuple[str, str]) -> dict[str, str]:
    """A code list from (code, meaning) pairs, keeping their order."""
    return dict(pairs)

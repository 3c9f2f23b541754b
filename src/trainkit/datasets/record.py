"""Record the simulated lives as each agency would: the driver of the record layer.

Each dataset module (``ssda903``, ``cin``, ``npd``, ``hes``, ``identity``) exposes

* ``TABLES``: its :class:`~trainkit.datasets.schema.OutputTable` declarations, and
* ``record(ctx: RecordContext) -> dict[str, pandas.DataFrame]``: for one shard, the rows of each of
  its tables, every value already formatted as it appears in the file (strings for CSV and XML),
  plus the partition columns ``_year`` and ``_la`` where the table's path has ``{year}``/``{la}``.

A module may also define ``write_partition(table, frame, path)`` to write one file itself (the CIN
census XML does); otherwise CSV and Parquet writers are used. The engine calls ``record`` for every
shard, stores the parts, and assembles each file at the end in a fixed order, so the output does
not depend on the number of workers.

Randomness: every module gets its own generator from ``ctx.rng(name)``, derived from the run's seed,
the shard and the module's name, never from the truth's streams: recording never changes the truth,
and the messiness level changes only the records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..parameters import Parameters
from ..simulate.context import Cohort

NAT_DAY = np.datetime64("NaT", "D")

MESSINESS_LEVELS = ("clean", "realistic", "heavy")
RECORD_STREAM = 7_000  # spawn-key namespace of the record layer, apart from the truth's streams

DUPLICATE_FIELD = "(record)"
"""``field`` of an error-log row for a record written more than once: the whole record, not one
field of it. Its ``value_before`` and ``value_after`` are the number of copies of the record in the
file: ``"1"`` and ``"2"`` (see :meth:`ErrorLog.add_duplicates`)."""
DUPLICATE_COPIES = ("1", "2")


@dataclass
class ErrorLog:
    """Every error injected into the records: what was changed, where, from what to what."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self,
        dataset: str,
        file: np.ndarray | str,
        record_id: np.ndarray,
        field_name: str,
        error_type: str,
        before: np.ndarray,
        after: np.ndarray,
    ) -> None:
        n = len(record_id)
        if n == 0:
            return
        self.rows.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "file": np.broadcast_to(np.asarray(file, dtype=object), (n,)),
                    "record_id": np.asarray(record_id, dtype=object).astype(str),
                    "field": field_name,
                    "error_type": error_type,
                    "value_before": pd.array(before, dtype="string"),
                    "value_after": pd.array(after, dtype="string"),
                }
            )
        )

    def add_duplicates(
        self, dataset: str, file: np.ndarray | str, record_id: np.ndarray, error_type: str
    ) -> None:
        """Log records written twice: field ``"(record)"``, copies ``"1"`` before, ``"2"`` after.

        Every dataset logs a duplicated record this way, whether the copy is exact (the shared
        messiness layer, HES episodes) or differs in a documented field (an NPD key stage record
        repeated with NATRES 0), so that one rule finds them all: the file holds at least two
        records with the logged ``record_id``.
        """
        n = len(record_id)
        before, after = DUPLICATE_COPIES
        self.add(
            dataset,
            file,
            record_id,
            DUPLICATE_FIELD,
            error_type,
            np.full(n, before, dtype=object),
            np.full(n, after, dtype=object),
        )

    def frame(self) -> pd.DataFrame:
        cols = [
            "dataset",
            "file",
            "record_id",
            "field",
            "error_type",
            "value_before",
            "value_after",
        ]
        if not self.rows:
            return pd.DataFrame({c: pd.Series(dtype="string") for c in cols})
        return pd.concat(self.rows, ignore_index=True)[cols]


@dataclass
class Links:
    """Every recorded identifier value in each dataset, with the true person behind it."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(self, dataset: str, la_code, source_id, person_id) -> None:
        source_id = np.asarray(source_id, dtype=object)
        n = len(source_id)
        if n == 0:
            return
        la = pd.Series(np.broadcast_to(np.asarray(la_code, dtype=object), (n,)))
        la = pd.to_numeric(la.replace("", None), errors="coerce").astype("Int16")
        self.rows.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "la_code": la.array,
                    "source_id": source_id.astype(str),
                    "person_id": np.asarray(person_id, dtype=np.int64),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(
                {
                    "dataset": pd.Series(dtype=str),
                    "la_code": pd.Series(dtype="Int16"),
                    "source_id": pd.Series(dtype=str),
                    "person_id": pd.Series(dtype=np.int64),
                }
            )
        out = pd.concat(self.rows, ignore_index=True).drop_duplicates()
        return out.sort_values(["dataset", "la_code", "source_id", "person_id"]).reset_index(
            drop=True
        )


@dataclass
class RecordContext:
    """What a dataset module sees for one shard.

    Attributes:
        cohort: the shard's people (see :class:`~trainkit.simulate.context.Cohort`).
        truth: the shard's truth tables, as the simulation modules returned them.
        params: model parameters, including ``messiness.*`` rates for the chosen level.
        seed: the run's seed; shard: the shard's index.
        messiness: ``clean``, ``realistic`` or ``heavy``.
        years: the collection years to write (years ending 31 March), oldest first.
        census_date: the 31 March that ends follow-up.
        errors: the shard's error log; links: the shard's identifier links.
        population: people in the whole run (person_ids ``1..population``), which sizes the
            blocks of spare NHS numbers (0 when unknown: the largest run allowed is assumed).
    """

    cohort: Cohort
    truth: dict[str, pd.DataFrame]
    params: Parameters
    seed: int
    shard: int
    messiness: str
    years: tuple[int, ...]
    census_date: np.datetime64
    errors: ErrorLog = field(default_factory=ErrorLog)
    links: Links = field(default_factory=Links)
    population: int = 0

    # --- identifiers: one convention for every dataset, so the same child gets the same value ---

    SALTS = {"upn": 1, "nhs": 2, "la_child_id": 3, "pmr": 4, "token": 5, "epikey": 6, "anon": 7}

    def salt(self, kind: str) -> int:
        """The salt of one kind of identifier (see ``SALTS``), derived from the run's seed."""
        return self.seed * 1000 + self.SALTS[kind]

    def la_child_ids(self, person_ids, la_codes, generation=0) -> np.ndarray:
        """The id each LA's social care system gives a child (SSDA903 CHILD, CIN LAchildID).

        ``generation`` is the child's identity (:meth:`identity_generation`): an adopted child
        is a new child to the LA from the adoption order, with a new id.
        """
        from .identifiers import la_child_ids

        return la_child_ids(person_ids, la_codes, self.salt("la_child_id"), generation)

    def adoption_orders(self) -> pd.Series:
        """Each adopted child's first adoption order (datetime64[D]), indexed by person_id.

        The order from which the child has a new identity in every agency's records: new NHS
        number, UPN and surname (:mod:`trainkit.datasets.identity`), new LA child ids.
        """
        if getattr(self, "_adoption_orders", None) is None:
            a = self.truth["adoptions"]
            a = a[a["date_adopted"].notna()]
            first = a.groupby("person_id")["date_adopted"].min().sort_index()
            self._adoption_orders = pd.Series(
                first.to_numpy("datetime64[D]"), index=first.index.to_numpy(np.int64)
            )
        return self._adoption_orders

    def identity_generation(self, person_ids, dates) -> np.ndarray:
        """0 before a child's first adoption order (or never adopted), 1 from the order on.

        Args:
            person_ids: int64 person ids.
            dates: the day each record is about (e.g. an episode's start), datetime64.

        Returns:
            int64 array, same length.
        """
        pid = np.asarray(person_ids, dtype=np.int64)
        orders = self.adoption_orders()
        if not len(orders) or not pid.size:
            return np.zeros(pid.shape, dtype=np.int64)
        ids = orders.index.to_numpy(np.int64)
        at = np.minimum(np.searchsorted(ids, pid), len(ids) - 1)
        order = np.where(ids[at] == pid, orders.to_numpy("datetime64[D]")[at], NAT_DAY)
        day = np.asarray(dates, dtype="datetime64[D]")
        return (~np.isnat(order) & (day >= order)).astype(np.int64)

    def nhs_history(self) -> pd.DataFrame:
        """Every NHS number each person of the shard holds, and from when.

        Owned by :func:`trainkit.datasets.identity.nhs_history` (one number from birth or
        arrival; a new one from an adoption order), computed once per shard, so PDS and HES
        agree about which number, and so which HES token, a child had on any day.
        """
        from .identity import nhs_history

        if getattr(self, "_nhs_history", None) is None:
            self._nhs_history = nhs_history(self)
        return self._nhs_history

    def upns_on(self, person_ids, dates) -> tuple[np.ndarray, np.ndarray]:
        """Each person's UPN on a date, and their former UPN ('' where none).

        The UPN history is owned by :func:`trainkit.datasets.identity.upn_history` (first UPN at
        first school entry; a new one after an adoption order), computed once per shard, so every
        dataset records the same UPN for the same child on the same day.
        """
        from .identity import lookup_upns, upn_history

        if getattr(self, "_upn_history", None) is None:
            self._upn_history = upn_history(self)
        return lookup_upns(self._upn_history, person_ids, dates)

    def rng(self, name: str) -> np.random.Generator:
        """A generator for one purpose (e.g. ``"ssda903.episodes"``), independent of all others."""
        tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
        seq = np.random.SeedSequence(self.seed, spawn_key=(RECORD_STREAM, self.shard, tag))
        return np.random.default_rng(seq)


def partitions(frame: pd.DataFrame):
    """The LA-years of a record frame, in (year, LA) order: ``(year, la, rows)`` per file, with
    ``rows`` the positions of its rows in their original order. One sort for all files, where a
    pandas ``groupby`` would copy every group."""
    year = frame["_year"].to_numpy(np.int64)
    la = frame["_la"].to_numpy(np.int64)
    order = np.lexsort((np.arange(len(frame)), la, year))
    key = (year * 1000 + la)[order]
    if not len(order):
        return
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for first, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        rows = order[first:end]
        yield int(year[rows[0]]), int(la[rows[0]]), rows

"""The reference data trainkit ships with: local authorities, postcodes and ethnicity shares.

The files live in ``trainkit/data/`` and are built by ``tools/build_reference_data.py`` from
official DfE and ONS statistics and the ONS Postcode Directory; ``trainkit/data/SOURCES.md`` gives
their sources, licences and simplifications. Each loader reads its file once per process and
returns a fresh copy, so callers may modify what they get.

Example:
    >>> from trainkit import reference
    >>> las = reference.local_authorities()
    >>> len(las)
    153
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import pandas as pd

__all__ = ["ethnicity_shares", "local_authorities", "postcodes"]


def _open(name: str):
    """Open a packaged data file in binary mode."""
    return files("trainkit").joinpath("data", name).open("rb")


@lru_cache(maxsize=1)
def _local_authorities() -> pd.DataFrame:
    with _open("local_authorities.csv") as handle:
        return pd.read_csv(handle, dtype={"ons_code": str, "la_name": str, "region": str})


@lru_cache(maxsize=1)
def _postcodes() -> pd.DataFrame:
    with _open("postcodes.csv.gz") as handle:
        return pd.read_csv(
            handle,
            compression="gzip",
            dtype={
                "postcode": str,
                "la_code": "int64",
                "area_code": str,
                "deprivation_decile": "int64",
                "easting": "int64",
                "northing": "int64",
            },
        )


@lru_cache(maxsize=1)
def _ethnicity_shares() -> pd.DataFrame:
    with _open("ethnicity.csv") as handle:
        return pd.read_csv(
            handle, dtype={"dfe_la_code": "int64", "ethnicity": str, "share": "float64"}
        )


def local_authorities() -> pd.DataFrame:
    """The 153 children's-services local authorities of England (as of 2024).

    One row per LA, sorted by ``dfe_la_code``: ``dfe_la_code`` (DfE three-digit number),
    ``ons_code``, ``la_name``, ``region``, ``population_0_17`` (ONS mid-2024 estimate); the
    published counts for the year ending 31 March 2024 (``cin_31mar_2024``, ``referrals_2024``,
    ``cpp_31mar_2024``, ``cpp_starts_2024``, ``cla_31mar_2024``, ``cla_starts_2024``,
    ``cla_ceased_2024``) and the matching rates per 10,000 children (``cin_rate``,
    ``referral_rate``, ``cpp_rate``, ``cpp_start_rate``, ``cla_rate``, ``cla_start_rate``,
    ``cla_ceased_rate``); a boolean ``imputed_<rate>`` per rate, true where the LA's figure was not
    published and the national rate stands in (the count is then that rate times the population);
    and ``need_index``, the LA's relative social-care need (mean 1 when weighted by
    ``population_0_17``), by which the generator multiplies every child's social-care risk.

    Returns:
        A new DataFrame on every call.
    """
    return _local_authorities().copy()


def postcodes() -> pd.DataFrame:
    """A sample of real English postcodes, up to 400 per LA, in synthetic small areas.

    Columns: ``postcode`` (standard single-space form, e.g. ``"SW1A 1AA"``), ``la_code`` (DfE
    number), ``area_code`` (synthetic small area, ``TKA`` + 6 digits, not a real LSOA),
    ``deprivation_decile`` (1 = most deprived .. 10; a SYNTHETIC, spatially structured measure, not
    the Index of Multiple Deprivation), ``easting`` and ``northing`` (British National Grid,
    metres). Areas within an LA hold equal numbers of postcodes, and the deciles split England's
    children into tenths when each area stands for an equal share of its LA's children. Sorted by
    ``la_code``, ``area_code``, ``postcode``.

    Returns:
        A new DataFrame on every call.
    """
    return _postcodes().copy()


def ethnicity_shares() -> pd.DataFrame:
    """Share of each of the 20 DfE ethnicity codes in each LA, in long format.

    Columns: ``dfe_la_code``, ``ethnicity`` (``WBRI`` ... ``NOBT``), ``share`` (6 decimals,
    summing to 1 within an LA). Derived from Census 2021 for all ages, so it understates the
    diversity of children; ``REFU`` and ``NOBT`` carry small fixed assumed shares.

    Returns:
        A new DataFrame on every call.
    """
    return _ethnicity_shares().copy()

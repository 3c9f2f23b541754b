"""Local authorities, postcodes, small areas and deprivation, as arrays ready for sampling."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import reference

ETHNICITY_CODES = (
    "WBRI", "WIRI", "WOTH", "WIRT", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND",
    "APKN", "ABAN", "AOTH", "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
)  # fmt: skip


@dataclass(frozen=True)
class Geography:
    """The LAs (index 0..L-1) and their postcodes, bucketed by LA and deprivation decile."""

    la_code: np.ndarray  # int16 DfE codes, sorted
    region: np.ndarray  # region name per LA
    population: np.ndarray  # children aged 0-17 per LA
    need_index: np.ndarray  # relative social-care need per LA (population-weighted mean 1)
    ethnicity_cdf: np.ndarray  # (L, 20) cumulative shares of ETHNICITY_CODES
    postcode: np.ndarray  # postcodes sorted by (LA index, decile)
    area_code: np.ndarray
    decile: np.ndarray  # int8
    bucket_start: np.ndarray  # (L, 10): first postcode index of (LA, decile) or nearest decile held
    bucket_size: np.ndarray  # (L, 10)
    la_first: np.ndarray  # first postcode index of each LA
    la_count: np.ndarray  # number of postcodes of each LA

    def index_of(self, codes: np.ndarray) -> np.ndarray:
        """LA index for DfE LA codes."""
        return np.searchsorted(self.la_code, codes)

    def sample_postcodes(
        self, rng: np.random.Generator, la_index: np.ndarray, decile: np.ndarray | None = None
    ) -> np.ndarray:
        """Row numbers into the postcode arrays: a postcode in each LA (of a decile, if given).

        Without a decile, postcodes are drawn uniformly within the LA (areas were built so that
        this spreads children over deciles as the LA's deprivation does).
        """
        if decile is None:
            first, total = self.la_first[la_index], self.la_count[la_index]
            return first + (rng.random(len(la_index)) * total).astype(np.int64)
        d = decile.astype(np.int64) - 1
        start = self.bucket_start[la_index, d]
        size = self.bucket_size[la_index, d]
        return start + (rng.random(len(la_index)) * size).astype(np.int64)


@lru_cache(maxsize=1)
def load_geography() -> Geography:
    """Build the geography from the packaged reference data (once per process)."""
    las = reference.local_authorities().sort_values("dfe_la_code").reset_index(drop=True)
    la_code = las["dfe_la_code"].to_numpy(np.int16)
    eth = reference.ethnicity_shares()
    table = (
        eth.pivot_table(index="dfe_la_code", columns="ethnicity", values="share", aggfunc="sum")
        .reindex(index=la_code, columns=list(ETHNICITY_CODES))
        .fillna(0.0)
        .to_numpy()
    )
    table = table / table.sum(axis=1, keepdims=True)
    cdf = np.cumsum(table, axis=1)
    cdf[:, -1] = 1.0

    pcs = reference.postcodes()
    la_idx = np.searchsorted(la_code, pcs["la_code"].to_numpy())
    dec = pcs["deprivation_decile"].to_numpy(np.int8)
    order = np.lexsort((pcs["postcode"].to_numpy(), dec, la_idx))
    la_idx, dec = la_idx[order], dec[order]
    postcode = pcs["postcode"].to_numpy()[order].astype("<U8")
    area = pcs["area_code"].to_numpy()[order].astype("<U9")

    n_la = len(la_code)
    counts = np.zeros((n_la, 10), dtype=np.int64)
    np.add.at(counts, (la_idx, dec - 1), 1)
    flat_start = np.concatenate([[0], np.cumsum(counts.ravel())[:-1]]).reshape(n_la, 10)
    # an LA with no postcode of some decile borrows the nearest decile it has
    start = flat_start.copy()
    size = counts.copy()
    for la in range(n_la):
        held = np.flatnonzero(counts[la] > 0)
        for d in range(10):
            if counts[la, d] == 0:
                near = held[np.argmin(np.abs(held - d) * 10 + (held > d))]
                start[la, d], size[la, d] = flat_start[la, near], counts[la, near]
    geo = Geography(
        la_code=la_code,
        region=las["region"].to_numpy(),
        population=las["population_0_17"].to_numpy(np.float64),
        need_index=las["need_index"].to_numpy(np.float64),
        ethnicity_cdf=cdf,
        postcode=postcode,
        area_code=area,
        decile=dec,
        bucket_start=start,
        bucket_size=size,
        la_first=flat_start[:, 0],
        la_count=counts.sum(axis=1),
    )
    return geo

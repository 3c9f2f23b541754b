"""Name pools drawn from Faker's locale providers, chosen by DfE ethnicity code.

Names are drawn at random from these pools, so no record describes a real person. The pools come
from the providers' data lists (no per-row Faker calls, so drawing is vectorised); Faker is pinned
exactly in ``constraints.txt`` because its lists can change between releases.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib import import_module

import numpy as np

# DfE ethnicity code -> Faker locale whose name lists fit it best (Latin script only).
LOCALE_BY_ETHNICITY = {
    "WBRI": "en_GB", "WIRI": "en_IE", "WOTH": "en_GB", "WIRT": "en_IE", "WROM": "en_GB",
    "MWBC": "en_GB", "MWBA": "en_GB", "MWAS": "en_GB", "MOTH": "en_GB",
    "AIND": "en_IN", "APKN": "en_PK", "ABAN": "en_PK", "AOTH": "en_IN",
    "BCRB": "en_GB", "BAFR": "yo_NG", "BOTH": "en_GB",
    "CHNE": "en_GB", "OOTH": "tr_TR", "REFU": "en_GB", "NOBT": "en_GB",
}  # fmt: skip

# Faker has no romanised Chinese surname list; these are common British-Chinese surnames
# (Mandarin pinyin and Cantonese romanisations), written for trainkit.
CHINESE_SURNAMES = (
    "Chan", "Chen", "Cheng", "Cheung", "Chow", "Chu", "Fung", "Ho", "Huang", "Kwok", "Lam",
    "Lau", "Lee", "Leung", "Li", "Lin", "Liu", "Lo", "Ma", "Ng", "Tang", "Tsang", "Wang",
    "Wong", "Wu", "Xu", "Yang", "Yeung", "Yip", "Zhang", "Zhao", "Zhou",
)  # fmt: skip


def _ascii(name: str) -> str:
    """Strip diacritics, as most English administrative systems do."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return folded.replace("ı", "i")


def _names(obj) -> list[str]:
    names = list(obj.keys()) if isinstance(obj, dict) else list(obj)
    return sorted(
        {_ascii(n) for n in names if _ascii(n).replace("-", "").replace("'", "").isalpha()}
    )


MIN_SURNAMES = 20
"""A Faker locale with fewer surnames than this has no usable list (some hold a handful)."""


@cache
def pools(locale: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(female forenames, male forenames, surnames) for a Faker locale, sorted and de-duplicated."""
    provider = import_module(f"faker.providers.person.{locale}").Provider
    female = getattr(provider, "first_names_female", None) or provider.first_names
    male = getattr(provider, "first_names_male", None) or provider.first_names
    last = getattr(provider, "last_names", ())
    if len(last) < MIN_SURNAMES:  # a locale with no usable surname list borrows England's
        last = import_module("faker.providers.person.en_GB").Provider.last_names
    return np.array(_names(female)), np.array(_names(male)), np.array(_names(last))


def draw_forenames(rng: np.random.Generator, sex: np.ndarray, ethnicity: np.ndarray) -> np.ndarray:
    """One forename per person, from the pool of their ethnicity's locale and sex."""
    out = np.empty(len(sex), dtype=object)
    locales = np.vectorize(LOCALE_BY_ETHNICITY.get, otypes=[object])(ethnicity)
    for locale in sorted(set(locales)):
        female, male, _ = pools(locale)
        for pool, s in ((female, "F"), (male, "M")):
            rows = np.flatnonzero((locales == locale) & (sex == s))
            out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return out


def draw_surnames(rng: np.random.Generator, ethnicity: np.ndarray) -> np.ndarray:
    """One surname per family (or person), from the pool of their ethnicity's locale."""
    out = np.empty(len(ethnicity), dtype=object)
    locales = np.vectorize(LOCALE_BY_ETHNICITY.get, otypes=[object])(ethnicity)
    for locale in sorted(set(locales)):
        rows = np.flatnonzero(locales == locale)
        pool = pools(locale)[2]
        out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    chinese = np.flatnonzero(ethnicity == "CHNE")
    pool = np.array(CHINESE_SURNAMES)
    out[chinese] = pool[rng.integers(0, len(pool), len(chinese))]
    return out

"""What every simulation module of one shard receives: the people, as aligned arrays.

The population module builds a :class:`Cohort` for a shard; the social-care, education and health
modules read it (never modify it) and return truth tables as ``pandas.DataFrame`` objects whose
columns follow :mod:`trainkit.simulate.tables`.

Dates are ``numpy.datetime64[D]`` arrays; a missing date is ``NaT``. All randomness comes from the
``numpy.random.Generator`` handed to each module (derived from the run's seed per shard and per
module), never from global state, so results do not depend on the number of worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NAT = np.datetime64("NaT", "D")
DECILE_MEAN = 5.5
"""Mean of a deprivation decile (1 to 10, uniform over areas)."""
DECILE_SD = 2.87
"""Standard deviation of a uniform decile 1 to 10 (sqrt(99/12) = 2.872, to two decimals):
``(DECILE_MEAN - decile) / DECILE_SD`` is a decile as a z-score, higher = more deprived."""
DECILE_SPAN = 9.0
"""Deciles from least to most deprived (10 - 1): ``ratio ** ((DECILE_MEAN - decile) / DECILE_SPAN)``
makes a rate ``ratio`` times higher in decile 1 than in decile 10, and leaves it at the middle."""


@dataclass
class Cohort:
    """The people of one shard. Every array has one element per person, in the same order.

    Attributes:
        person_id: int64, unique across the whole run.
        family_id: int64, shared by siblings (children of one mother, one household).
        mother_id: int64, the mother's identifier (mothers are not themselves simulated people).
        sex: ``"M"`` or ``"F"`` (``<U1``).
        date_of_birth: datetime64[D].
        ethnicity: DfE ethnicity code (``WBRI`` ... ``NOBT``), ``<U4``.
        uasc: bool, an unaccompanied asylum-seeking child who arrived in England.
        date_arrived: datetime64[D], arrival date for arrivals, ``NaT`` for children born here.
        date_of_death: datetime64[D] or NaT.
        date_emigrated: datetime64[D] or NaT.
        follow_up_end: datetime64[D], the last day the child is observed in England:
            the earliest of death, emigration and the census date that ends follow-up.
        deprivation: int8 1..10, deprivation decile of the small area lived in at birth/arrival
            (1 = most deprived), from the family's first address.
        adversity: float64, the family's latent adversity (standard normal, higher = more adverse;
            shared by siblings, correlated with deprivation). The social-care, education and health
            modules all raise their risks with it, which is what makes the domains move together.
        child_risk: float64, the child's own latent risk (standard normal; e.g. disability,
            behaviour).
        move_dates: datetime64[D] of shape (n, K): dates of address moves, NaT-padded, sorted.
        la_codes: int16 of shape (n, K + 1): DfE three-digit LA code of each address spell.
        postcodes: ``<U8`` of shape (n, K + 1): postcode of each address spell.
        area_codes: ``<U9`` of shape (n, K + 1): small-area code of each address spell.
        deprivations: int8 of shape (n, K + 1): deprivation decile of each address spell.
        start: datetime64[D], the date the child enters observation (birth or arrival).
        census_date: the date that ends follow-up (a 31 March).
    """

    person_id: np.ndarray
    family_id: np.ndarray
    mother_id: np.ndarray
    sex: np.ndarray
    date_of_birth: np.ndarray
    ethnicity: np.ndarray
    uasc: np.ndarray
    date_arrived: np.ndarray
    date_of_death: np.ndarray
    date_emigrated: np.ndarray
    follow_up_end: np.ndarray
    deprivation: np.ndarray
    adversity: np.ndarray
    child_risk: np.ndarray
    move_dates: np.ndarray
    la_codes: np.ndarray
    postcodes: np.ndarray
    area_codes: np.ndarray
    deprivations: np.ndarray
    census_date: np.datetime64
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.person_id)

    @property
    def start(self) -> np.ndarray:
        """Birth date, or arrival date for arrivals."""
        return np.where(np.isnat(self.date_arrived), self.date_of_birth, self.date_arrived)

    def spell_index(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Index of the address spell that ``rows[i]`` lives in on ``dates[i]`` (vectorised)."""
        md = self.move_dates[rows]
        with np.errstate(invalid="ignore"):
            return (md <= dates[:, None]).sum(axis=1)  # NaT compares False

    def la_at(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """DfE LA code where ``rows[i]`` lives on ``dates[i]``."""
        return self.la_codes[rows, self.spell_index(rows, dates)]

    def deprivation_at(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Deprivation decile (1 = most deprived) where ``rows[i]`` lives on ``dates[i]``."""
        return self.deprivations[rows, self.spell_index(rows, dates)]

    def postcode_at(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Postcode where ``rows[i]`` lives on ``dates[i]``."""
        return self.postcodes[rows, self.spell_index(rows, dates)]

    def age_on(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Age in completed years of ``rows[i]`` on ``dates[i]`` (int)."""
        return age_in_years(self.date_of_birth[rows], dates)

    def observed_on(self, rows: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """True where ``rows[i]`` is alive and living in England on ``dates[i]``."""
        return (self.start[rows] <= dates) & (dates <= self.follow_up_end[rows])


def earliest(*dates: np.ndarray) -> np.ndarray:
    """Element-wise earliest of date arrays, ignoring NaT (NaT only where all are NaT)."""
    out = np.asarray(dates[0], dtype="datetime64[D]")
    for d in dates[1:]:
        out = np.fmin(out, np.asarray(d, dtype="datetime64[D]"))
    return out


def age_in_years(dob: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Completed years of age at ``on`` for births on ``dob`` (vectorised, leap-day safe)."""
    dob = np.asarray(dob, dtype="datetime64[D]")
    on = np.asarray(on, dtype="datetime64[D]")
    by = dob.astype("datetime64[Y]").astype(int)
    oy = on.astype("datetime64[Y]").astype(int)
    bmd = (dob - dob.astype("datetime64[Y]")).astype(int)  # day of year (0-based)
    omd = (on - on.astype("datetime64[Y]")).astype(int)
    # compare month/day via (month*32 + day) to be leap-year safe
    bm = dob.astype("datetime64[M]").astype(int) % 12
    om = on.astype("datetime64[M]").astype(int) % 12
    bd = (dob - dob.astype("datetime64[M]")).astype(int)
    od = (on - on.astype("datetime64[M]")).astype(int)
    del bmd, omd
    before = (om * 32 + od) < (bm * 32 + bd)
    return oy - by - before.astype(int)


def add_years(dates: np.ndarray, years) -> np.ndarray:
    """``dates`` plus whole ``years`` (29 February becomes 28 February in non-leap years)."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    y = dates.astype("datetime64[Y]")
    m = dates.astype("datetime64[M]")
    month_in_year = (m - y.astype("datetime64[M]")).astype(int)
    day = (dates - m).astype(int)
    ny = y + np.asarray(years)
    nm = ny.astype("datetime64[M]") + month_in_year
    last_day = ((nm + 1).astype("datetime64[D]") - nm.astype("datetime64[D]")).astype(int) - 1
    return nm.astype("datetime64[D]") + np.minimum(day, last_day)


def uniform_dates(rng: np.random.Generator, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A date drawn uniformly from ``[start, end]`` (inclusive), element-wise."""
    start = np.asarray(start, dtype="datetime64[D]")
    end = np.asarray(end, dtype="datetime64[D]")
    span = (end - start).astype(np.int64) + 1
    span = np.maximum(span, 1)
    return start + (rng.random(span.shape) * span).astype(np.int64)

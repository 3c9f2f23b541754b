"""English bank holidays and working days, shared by the simulation and the record layer.

Children's social care counts its timescales in working days (an initial child protection
conference within 15 working days of the strategy discussion, an assessment within 45; Working
together to safeguard children 2018, chapter 1), and conferences are held on working days. The
simulation times its events with this calendar, and the CIN census writer
(:mod:`trainkit.datasets.cin`) derives its target dates from the same one, so the two agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Changes to the usual pattern, by royal proclamation (gov.uk/bank-holidays from 2012; earlier
# from the proclamations as listed in the House of Commons Library briefing SN/BT/1260):
_MOVED = {
    # year: (usual date, date it moved to)
    1995: ("1995-05-01", "1995-05-08"),  # early May moved to VE Day (50th anniversary)
    2002: ("2002-05-27", "2002-06-04"),  # spring holiday moved for the Golden Jubilee
    2012: ("2012-05-28", "2012-06-04"),  # spring holiday moved for the Diamond Jubilee
    2020: ("2020-05-04", "2020-05-08"),  # early May moved to VE Day (75th anniversary)
    2022: ("2022-05-30", "2022-06-02"),  # spring holiday moved for the Platinum Jubilee
}
_EXTRA = (
    "1999-12-31",  # millennium
    "2002-06-03",  # Golden Jubilee
    "2011-04-29",  # royal wedding
    "2012-06-05",  # Diamond Jubilee
    "2022-06-03",  # Platinum Jubilee
    "2022-09-19",  # state funeral of Queen Elizabeth II
    "2023-05-08",  # coronation of King Charles III
)

NAT = np.datetime64("NaT", "D")


def _easter_sunday(years: np.ndarray) -> np.ndarray:
    """Gregorian Easter Sunday of each year (the anonymous Gregorian algorithm, Meeus/Butcher)."""
    y = np.asarray(years, dtype=np.int64)
    a, b, c = y % 19, y // 100, y % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    w = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * w) // 451
    month = (h + w - 7 * m + 114) // 31
    day = (h + w - 7 * m + 114) % 31 + 1
    return _ymd(y, month, day)


def _ymd(years, months, days) -> np.ndarray:
    first = (np.asarray(years) - 1970).astype("datetime64[Y]").astype("datetime64[M]")
    return (first + (np.asarray(months) - 1)).astype("datetime64[D]") + (np.asarray(days) - 1)


def england_bank_holidays(first_year: int, last_year: int) -> np.ndarray:
    """Bank holidays in England and Wales from ``first_year`` to ``last_year``, sorted.

    The usual pattern of the Banking and Financial Dealings Act 1971 (New Year's Day, Good
    Friday, Easter Monday, the first and last Mondays of May, the last Monday of August,
    Christmas Day and Boxing Day, with substitute days when these fall at a weekend), plus the
    moves and extra days proclaimed since 1995. The CIN rules count working days against this
    calendar (ICPC within 15 working days; assessments within 45).

    Example:
        >>> [str(d) for d in england_bank_holidays(2024, 2024)]  # doctest: +NORMALIZE_WHITESPACE
        ['2024-01-01', '2024-03-29', '2024-04-01', '2024-05-06', '2024-05-27', '2024-08-26',
         '2024-12-25', '2024-12-26']
    """
    return _bank_holidays(int(first_year), int(last_year)).copy()


@lru_cache(maxsize=8)
def _bank_holidays(first_year: int, last_year: int) -> np.ndarray:
    years = np.arange(first_year, last_year + 1)
    easter = _easter_sunday(years)
    new_year = np.busday_offset(_ymd(years, 1, 1), 0, roll="forward")
    early_may = np.busday_offset(_ymd(years, 5, 1), 0, roll="forward", weekmask="Mon")
    spring = np.busday_offset(_ymd(years, 5, 31), 0, roll="backward", weekmask="Mon")
    summer = np.busday_offset(_ymd(years, 8, 31), 0, roll="backward", weekmask="Mon")
    christmas = np.busday_offset(_ymd(years, 12, 25), 0, roll="forward")
    boxing = np.busday_offset(np.maximum(_ymd(years, 12, 26), christmas + 1), 0, roll="forward")
    days = np.concatenate(
        [new_year, easter - 2, easter + 1, early_may, spring, summer, christmas, boxing]
    )
    for usual, moved in _MOVED.values():
        days = np.where(days == np.datetime64(usual), np.datetime64(moved), days)
    extra = np.array(_EXTRA, dtype="datetime64[D]")
    extra = extra[(extra >= _ymd(first_year, 1, 1)) & (extra <= _ymd(last_year, 12, 31))]
    return np.unique(np.concatenate([days, extra]))


def add_working_days(dates: np.ndarray, n, holidays: np.ndarray) -> np.ndarray:
    """``n`` working days after each date (a weekend or holiday start counts from the next
    working day; ``n`` may be an array and may be negative); NaT stays NaT."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.full(d.shape, NAT, dtype="datetime64[D]")
    ok = ~np.isnat(d)
    steps = np.broadcast_to(np.asarray(n, dtype=np.int64), d.shape)[ok]
    out[ok] = np.busday_offset(d[ok], steps, roll="forward", holidays=holidays)
    return out


def previous_working_day(dates: np.ndarray, holidays: np.ndarray) -> np.ndarray:
    """The date itself if a working day, else the working day before; NaT stays NaT."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = d.copy()
    ok = ~np.isnat(d)
    out[ok] = np.busday_offset(d[ok], 0, roll="backward", holidays=holidays)
    return out


def is_working_day(dates: np.ndarray, holidays: np.ndarray) -> np.ndarray:
    """Whether each date is a working day (False for NaT)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.zeros(d.shape, dtype=bool)
    ok = ~np.isnat(d)
    out[ok] = np.is_busday(d[ok], holidays=holidays)
    return out

"""The retail calendar of England and Wales: bank holidays, Easter, Black Friday and the
run-up to Christmas.

The generator uses it to shape demand and the forecasting model uses it as features:
a retailer knows its calendar in advance, so these are legitimate inputs for the
days being forecast.
"""

from datetime import date, timedelta

import numpy as np
import pandas as pd


def easter_sunday(year: int) -> date:
    """Western Easter (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_weekday(year: int, month: int, weekday: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7)


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def bank_holidays(year: int) -> set[date]:
    easter = easter_sunday(year)
    return {
        date(year, 1, 1),
        easter - timedelta(days=2),
        easter + timedelta(days=1),
        _first_weekday(year, 5, 0),
        _last_weekday(year, 5, 0),
        _last_weekday(year, 8, 0),
        date(year, 12, 25),
        date(year, 12, 26),
    }


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    return _first_weekday(year, 11, 3) + timedelta(days=22)


def calendar_features(dates: pd.DatetimeIndex | pd.Series) -> pd.DataFrame:
    """Calendar facts per day, known in advance: one row per date, in the given order."""
    days = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
    years = range(days.year.min(), days.year.max() + 1)
    holidays = {d for y in years for d in bank_holidays(y)}
    fridays = {black_friday(y) for y in years}
    easters = {easter_sunday(y) for y in years}
    as_dates = [d.date() for d in days]
    christmas = pd.DatetimeIndex([date(d.year, 12, 25) for d in as_dates])
    to_christmas = (christmas - days).days.to_numpy()
    day_of_year = days.day_of_year.to_numpy()
    return pd.DataFrame(
        {
            "day_of_week": days.day_of_week.to_numpy(),
            "day_of_year": day_of_year,
            "month": days.month.to_numpy(),
            "year_sin": np.sin(2 * np.pi * day_of_year / 365.25),
            "year_cos": np.cos(2 * np.pi * day_of_year / 365.25),
            "bank_holiday": np.array([d in holidays for d in as_dates]),
            "closed": np.array([(d.month, d.day) == (12, 25) for d in as_dates]),
            "black_friday": np.array([d in fridays for d in as_dates]),
            "easter_weekend": np.array(
                [any(-2 <= (d - e).days <= 1 for e in easters) for d in as_dates]
            ),
            # 0..35 in the run-up to Christmas, 36 otherwise (the peak shapes the weeks)
            "days_to_christmas": np.where(
                (to_christmas >= 0) & (to_christmas <= 35), to_christmas, 36
            ),
        },
        index=days,
    )

"""`store retention` dates "today" by the China calendar (`tables.china_today`), as the store dates its partitions."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.store.tables import china_today


def _ms(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("utc", "china_day"),
    [
        ((2026, 11, 21, 15, 59, 59), dt.date(2026, 11, 21)),  # 23:59:59 in Beijing
        ((2026, 11, 21, 16, 0, 0), dt.date(2026, 11, 22)),  # midnight in Beijing: the UTC date lags a day
        ((2026, 12, 31, 20, 0, 0), dt.date(2027, 1, 1)),
    ],
)
def test_the_default_today_is_the_china_date(utc: tuple[int, ...], china_day: dt.date) -> None:
    assert china_today(_ms(*utc)) == china_day


def test_the_default_today_follows_the_clock() -> None:
    before = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    today = china_today()
    after = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert today in (before, after)

"""Report periods: a day, its Monday-to-Sunday week, its calendar month, and the one before."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.store.errors import StoreError
from pipeline.store.periods import Period, parse_day


def test_periods_contain_the_day_and_follow_each_other() -> None:
    thursday = dt.date(2025, 11, 20)
    assert Period.of("daily", thursday) == Period("daily", thursday, thursday)
    week = Period.of("weekly", thursday)
    assert (week.start, week.end) == (dt.date(2025, 11, 17), dt.date(2025, 11, 23))
    assert week.previous() == Period("weekly", dt.date(2025, 11, 10), dt.date(2025, 11, 16))
    month = Period.of("monthly", thursday)
    assert (month.start, month.end) == (dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    assert Period.of("monthly", dt.date(2024, 2, 10)).end == dt.date(2024, 2, 29)
    assert Period.of("monthly", dt.date(2025, 1, 5)).previous() == Period("monthly", dt.date(2024, 12, 1),
                                                                          dt.date(2024, 12, 31))  # fmt: skip
    assert len(week.days()) == 7 and len(month.days()) == 30


def test_titles_in_the_exchange_style() -> None:
    assert Period.of("daily", dt.date(2025, 11, 20)).title == "2025年11月20日 星期四"
    assert Period.of("weekly", dt.date(2025, 11, 20)).title == "2025年11月17日至2025年11月23日 星期日"
    assert Period.of("monthly", dt.date(2025, 11, 20)).title == "2025年11月"


def test_parse_day() -> None:
    assert parse_day("2025-11-20") == parse_day("20251120") == dt.date(2025, 11, 20)
    for bad in ("2025-13-01", "yesterday", "2025112", ""):
        with pytest.raises(StoreError):
            parse_day(bad)
    with pytest.raises(StoreError):
        Period.of("yearly", dt.date(2025, 1, 1))

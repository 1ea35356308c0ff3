"""Report periods, as in the exchange's tables (seed 001): a trading day, its week, its month.

A week runs Monday to Sunday and a month is the calendar month containing the given date; each
has a previous period of the same kind (the day before, the week before, the month before) for
the "change" columns. Days without data simply contribute nothing: no trading calendar is needed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.store.errors import StoreError

KINDS = ("daily", "weekly", "monthly")
_WEEKDAYS = "一二三四五六日"


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    start: dt.date
    end: dt.date  # inclusive

    @classmethod
    def of(cls, kind: str, day: dt.date) -> Period:
        if kind == "daily":
            return cls(kind, day, day)
        if kind == "weekly":
            monday = day - dt.timedelta(days=day.weekday())
            return cls(kind, monday, monday + dt.timedelta(days=6))
        if kind == "monthly":
            first = day.replace(day=1)
            following = (first + dt.timedelta(days=32)).replace(day=1)
            return cls(kind, first, following - dt.timedelta(days=1))
        raise StoreError(f"unknown report period {kind!r}; known: {', '.join(KINDS)}")

    def previous(self) -> Period:
        return Period.of(self.kind, self.start - dt.timedelta(days=1))

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def title(self) -> str:
        """The heading's date part, in the seed's style: 年 月 日 星期 (daily, weekly) or 年 月."""
        if self.kind == "monthly":
            return f"{self.start.year}年{self.start.month}月"
        if self.kind == "weekly":
            return f"{_ymd(self.start)}至{_ymd(self.end)} 星期{_WEEKDAYS[self.end.weekday()]}"
        return f"{_ymd(self.start)} 星期{_WEEKDAYS[self.start.weekday()]}"

    @property
    def name(self) -> str:
        return {"daily": "每日", "weekly": "每周", "monthly": "每月"}[self.kind]


def _ymd(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def parse_day(text: str) -> dt.date:
    """YYYY-MM-DD or YYYYMMDD; StoreError otherwise."""
    cleaned = text.strip().replace("-", "")
    try:
        if len(cleaned) != 8 or not cleaned.isdigit():
            raise ValueError(text)
        return dt.date(int(cleaned[:4]), int(cleaned[4:6]), int(cleaned[6:]))
    except ValueError:
        raise StoreError(f"{text!r} is not a date (YYYY-MM-DD or YYYYMMDD)") from None

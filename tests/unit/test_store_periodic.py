"""The exchanges' periodic tables on a hand-built week (chdb): exact figures per member, 小计 and
总计 that add up, a week that is the sum of its days, and the change against the previous period.

Scenario for SHFE (figures worked out by hand below): futures companies 0101 and 0202 share
device D1; MSH01 is a member reported by the exchange. Monday 11-17 and Tuesday 11-18 are in the
reported week, Wednesday 11-12 in the one before, 10-15 in the month before. Some deliveries are
stored twice, as a replay would: nothing may count twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.store import chart, periodic, report_output
from pipeline.store.embedded import ChdbBackend
from pipeline.store.migrations import migrate
from pipeline.store.periodic import PeriodicReport
from pipeline.store.policy import Retention
from pipeline.store.tables import DELIVERY_COLUMNS, DLQ_COLUMNS

MON, TUE = dt.date(2025, 11, 17), dt.date(2025, 11, 18)
PREV_WEEK, PREV_MONTH = dt.date(2025, 11, 12), dt.date(2025, 10, 15)
NOW_MS = int(time.time() * 1000)

# report, member, reporter, trading code, day, device, relayed, warnings
DELIVERIES = [
    ("r1", "0101", "0101", "A", MON, "D1", True, []),
    ("r2", "0101", "0101", "A", MON, "D2", False, []),
    ("r3", "0101", "0101", "B", MON, "D1", False, ["W402"]),
    ("r4", "0202", "0202", "C", MON, "D1", False, []),
    ("r5", "MSH01", "SHFE", "E", MON, "D3", True, []),
    ("r6", "0101", "0101", "A", TUE, "D1", False, []),
    ("r7", "0202", "0202", "C", TUE, "D4", True, ["W407"]),
    ("r8", "0101", "0101", "A", PREV_WEEK, "D1", False, []),
    ("r9", "MSH01", "SHFE", "E", PREV_MONTH, "D3", False, []),
]
# member (broker), reporter, day, code
REJECTS = [("0101", "0101", MON, "E204"), ("0101", "0101", MON, "E303"), ("MSH01", "SHFE", TUE, "E204"),
           ("0303", "0303", MON, "E101")]  # fmt: skip


def delivery(exchange: str, report: str, member: str, reporter: str, code: str, day: dt.date, device: str,
             relayed: bool, warnings: list[str]) -> tuple[Any, ...]:  # fmt: skip
    kind = "EXCHANGE" if reporter == "SHFE" else "FUTURES_COMPANY"
    return (NOW_MS, exchange, member, reporter, report, kind, code, day, "", "CTP", 2 if relayed else 1,
            "CT_Q7_V1.0.0", "CT_RELAY_V1.0.0" if relayed else "", "WINDOWS", device, "58.1.2.3", warnings,
            "lookthrough", "unit")  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-periodic"), "lt_unit_periodic")
    migrate(backend, Retention(7305, 30, 7305))
    rows = [delivery("SHFE", *d) for d in DELIVERIES]
    rows.append(delivery("DCE", "r1", "0101", "0101", "X", MON, "D1", True, []))  # another exchange
    for part in (rows, rows[:4]):  # the first four again, as a replay would store them
        backend.insert("deliveries", DELIVERY_COLUMNS, [list(c) for c in zip(*part, strict=True)], None)
    dead = [(day, reporter, broker, "lt.ingress." + reporter, 0, i, f"x{i}", "decrypt", code, "m", NOW_MS,
             "lookthrough", b"", b"\x00") for i, (broker, reporter, day, code) in enumerate(REJECTS)]  # fmt: skip
    backend.insert("dlq", DLQ_COLUMNS, [list(c) for c in zip(*dead, strict=True)], None)
    try:
        yield backend
    finally:
        backend.close()


def figures(report: PeriodicReport) -> dict[tuple[str, str], dict[str, float]]:
    return {(line.kind, line.label): {k: v for k, v in line.current.items() if k != "relay_share"}
            for line in report.lines}  # fmt: skip


def f(reports: int, investors: int, devices: int, relay: int, warned: int, rejects: int) -> dict[str, float]:
    return {"reports": reports, "investors": investors, "devices": devices, "relay_reports": relay,
            "warned": warned, "rejects": rejects}  # fmt: skip


def test_daily(store: ChdbBackend) -> None:
    monday = periodic.build(store, "SHFE", "daily", MON)
    assert [(line.kind, line.label) for line in monday.lines] == [
        ("member", "0101"), ("member", "0202"), ("subtotal", "期货公司"),
        ("member", "MSH01"), ("subtotal", "非期货公司会员"), ("total", "总计"),
    ]  # fmt: skip
    assert figures(monday) == {
        ("member", "0101"): f(3, 2, 2, 1, 1, 2),
        ("member", "0202"): f(1, 1, 1, 0, 0, 0),
        ("subtotal", "期货公司"): f(4, 3, 2, 1, 1, 2),  # D1 is shared by 0101 and 0202: one device
        ("member", "MSH01"): f(1, 1, 1, 1, 0, 0),
        ("subtotal", "非期货公司会员"): f(1, 1, 1, 1, 0, 0),
        ("total", "总计"): f(5, 4, 3, 2, 1, 2),
    }
    assert monday.lines[0].current["relay_share"] == pytest.approx(1 / 3)
    assert all(line.previous is None for line in monday.lines)


def test_weekly_is_the_sum_of_its_days_and_changes_against_the_week_before(store: ChdbBackend) -> None:
    week = periodic.build(store, "SHFE", "weekly", TUE)
    assert figures(week) == {
        ("member", "0101"): f(4, 2, 2, 1, 1, 2),
        ("member", "0202"): f(2, 1, 2, 1, 1, 0),
        ("subtotal", "期货公司"): f(6, 3, 3, 2, 2, 2),
        ("member", "MSH01"): f(1, 1, 1, 1, 0, 1),
        ("subtotal", "非期货公司会员"): f(1, 1, 1, 1, 0, 1),
        ("total", "总计"): f(7, 4, 4, 3, 2, 3),
    }
    days = [periodic.build(store, "SHFE", "daily", day) for day in (MON, TUE)]
    total = week.lines[-1]
    for key in ("reports", "relay_reports", "warned"):
        assert total.current[key] == sum(d.lines[-1].current[key] for d in days)
    first = week.lines[0]
    assert first.previous is not None and first.previous["reports"] == 1
    assert first.change("reports") == 3 and first.change("investors") == 1 and first.change("devices") == 1
    assert total.change("reports") == 6


def test_monthly_changes_against_the_month_before(store: ChdbBackend) -> None:
    month = periodic.build(store, "SHFE", "monthly", MON)
    total = month.lines[-1]
    assert total.current["reports"] == 8 and total.previous is not None and total.previous["reports"] == 1
    msh01 = next(line for line in month.lines if line.label == "MSH01")
    assert msh01.previous is not None and msh01.previous["reports"] == 1 and msh01.change("reports") == 0


def test_an_exchange_without_data_gives_an_empty_total(store: ChdbBackend) -> None:
    report = periodic.build(store, "GFEX", "weekly", MON)
    assert [(line.kind, line.current["reports"]) for line in report.lines] == [("total", 0)]


def test_outputs(store: ChdbBackend, tmp_path: Any) -> None:
    from openpyxl import load_workbook

    week = periodic.build(store, "SHFE", "weekly", TUE)
    table = list(csv.reader(io.StringIO(report_output.to_csv(week).decode("utf-8-sig"))))
    assert table[0][:4] == ["类别", "会员代码", "报送数", "报送数变化"]
    assert [row[0] for row in table[1:]] == ["期货公司", "期货公司", "小计", "非期货公司会员", "小计", "总计"]
    assert table[-1][2:4] == ["7", "6"]
    (tmp_path / "w.xlsx").write_bytes(report_output.to_xlsx(week))
    sheet = load_workbook(tmp_path / "w.xlsx").active
    assert sheet is not None and sheet["A1"].value == week.title and sheet.cell(row=8, column=1).value == "总计"
    png = chart.png(week)
    page = report_output.to_html(week, png).decode()
    assert page.count('class="subtotal"') == 2 and 'class="total"' in page and png.startswith(b"\x89PNG")
    daily = report_output.to_csv(periodic.build(store, "SHFE", "daily", MON)).decode("utf-8-sig")
    assert "变化" not in daily.splitlines()[0]  # a day has no previous-period column

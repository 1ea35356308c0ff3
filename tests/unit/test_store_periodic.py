"""The exchanges' periodic tables on a hand-built week (chdb): exact figures per member, 小计 and
总计 that add up, a week that is the sum of its days, and the change against the previous period.

Scenario for SHFE (figures worked out by hand below): futures companies 0101 and 0202 share
device D1; MSH01 is a member reported by the exchange. Monday 11-17 and Tuesday 11-18 are in the
reported week, Wednesday 11-12 in the one before, 10-15 in the month before. Some deliveries are
stored twice, as a replay would: nothing may count twice. These fingerprints have no reports
behind them, so each is a device of its own. Scenario for INE: fingerprints with the identifiers
their reports carry, so that several fingerprints are one device (设备数 counts devices).
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
             relayed: bool, warnings: list[str], terminal_kind: str = "WINDOWS") -> tuple[Any, ...]:  # fmt: skip
    kind = "EXCHANGE" if reporter == "SHFE" else "FUTURES_COMPANY"
    return (NOW_MS, exchange, member, reporter, report, kind, code, day, "", "CTP", 2 if relayed else 1,
            "CT_Q7_V1.0.0", "CT_RELAY_V1.0.0" if relayed else "", terminal_kind, device, "58.1.2.3", warnings,
            "lookthrough", "unit")  # fmt: skip


# INE: fingerprint → terminal kind and the identifiers its reports carry (disk, CPU, BIOS serial).
# W1p is W1 without its BIOS serial, L2c is L2 with only its CPU serial; W3 is another PC with W1's
# CPU serial (one ProcessorId per CPU model), X a login with only that CPU serial.
INE_DEVICES = {
    "W1": ("WINDOWS", "d1", "c1", "b1"),
    "W1p": ("WINDOWS", "d1", "c1", ""),
    "X": ("WINDOWS", "", "c1", ""),
    "L2": ("LINUX", "d2", "c2", "b2"),
    "L2c": ("LINUX", "", "c2", ""),
    "W3": ("WINDOWS", "d3", "c1", "b3"),
}
# report, member, reporter, day, fingerprint
INE_DELIVERIES = [
    ("i1", "0101", "0101", MON, "W1"),
    ("i2", "0101", "0101", MON, "W1p"),
    ("i3", "0202", "0202", MON, "W1p"),
    ("i4", "0202", "0202", MON, "X"),
    ("i5", "MSH01", "SHFE", MON, "W1"),
    ("i6", "0101", "0101", TUE, "L2"),
    ("i7", "0202", "0202", TUE, "L2c"),
    ("i8", "0202", "0202", TUE, "W3"),
    ("i9", "0101", "0101", PREV_WEEK, "W1p"),
]


def ine_reports(backend: ChdbBackend) -> None:
    """The INE deliveries' reports, as the sink stores them: the identifiers beside the fingerprint."""
    values = []
    for report, member, reporter, day, fp in INE_DELIVERIES:
        kind, disk, cpu, bios = INE_DEVICES[fp]
        values.append(f"('{day}', '{member}', 'I{report}', '{reporter}', '{report}', '{kind}', '{disk}', '{cpu}', "
                      f"'{bios}', '{fp}', ['INE'])")  # fmt: skip
    backend.execute(
        f"INSERT INTO {backend.database}.reports (trading_day, broker_id, investor_id, reporter_id, report_id, "
        f"terminal_kind, disk_serial, cpu_serial, bios_serial, device_fingerprint, trading_exchanges) "
        f"VALUES {', '.join(values)}"
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(tmp_path_factory.mktemp("chdb-periodic"), "lt_unit_periodic")
    migrate(backend, Retention(7305, 30, 7305))
    rows = [delivery("SHFE", *d) for d in DELIVERIES]
    rows.append(delivery("DCE", "r1", "0101", "0101", "X", MON, "D1", True, []))  # another exchange
    rows += [delivery("INE", report, member, reporter, "I" + report, day, fp, False, [], INE_DEVICES[fp][0])
             for report, member, reporter, day, fp in INE_DELIVERIES]  # fmt: skip
    ine_reports(backend)
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


def devices(report: PeriodicReport) -> dict[tuple[str, str], tuple[float, float | None]]:
    return {(line.kind, line.label): (line.current["devices"], line.change("devices")) for line in report.lines}


def test_devices_are_linked_fingerprints_over_members_and_days(store: ChdbBackend) -> None:
    """INE by hand. Monday: W1, W1p and X are one PC (X's CPU serial has no other carrier that
    day), seen by 0101, 0202 and MSH01. Tuesday: L2 and L2c are one Linux host; W3 is another PC.
    The week: W3 shows c1 is not unique, but Monday's link of X stays, so no line of the week
    counts more than its days; 0202 saw two devices on Tuesday and Monday's PC: 3."""
    monday, tuesday = (periodic.build(store, "INE", "daily", day) for day in (MON, TUE))
    assert devices(monday) == {
        ("member", "0101"): (1, None), ("member", "0202"): (1, None), ("subtotal", "期货公司"): (1, None),
        ("member", "MSH01"): (1, None), ("subtotal", "非期货公司会员"): (1, None), ("total", "总计"): (1, None),
    }  # fmt: skip
    assert devices(tuesday) == {
        ("member", "0101"): (1, None), ("member", "0202"): (2, None), ("subtotal", "期货公司"): (2, None),
        ("total", "总计"): (2, None),
    }  # fmt: skip
    week = periodic.build(store, "INE", "weekly", TUE)  # the week before: W1p for 0101 only
    assert devices(week) == {
        ("member", "0101"): (2, 1), ("member", "0202"): (3, 3), ("subtotal", "期货公司"): (3, 2),
        ("member", "MSH01"): (1, 1), ("subtotal", "非期货公司会员"): (1, 1), ("total", "总计"): (3, 2),
    }  # fmt: skip
    # The previous-week column is the week before's own daily figure.
    assert periodic.build(store, "INE", "daily", PREV_WEEK).lines[-1].current["devices"] == 1

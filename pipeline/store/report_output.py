"""The periodic report as a table: CSV, Excel (xlsx) or a standalone HTML page with its chart.

`table(report)` gives the header and the cells (one row per line: members, 小计, 总计), shared by
the three formats so they cannot disagree. CSV is the bare table (UTF-8 with BOM, so Excel reads
the Chinese headers); xlsx and HTML add the heading and the notes, as in the exchange's tables;
HTML embeds the PNG chart of `pipeline.store.chart`.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
from typing import Any

from pipeline.store.periodic import GROUPS, METRICS, NOTES, Line, PeriodicReport

CHANGE_SUFFIX = "变化"


def header(report: PeriodicReport) -> list[str]:
    out = ["类别", "会员代码"]
    for metric in METRICS:
        out.append(metric.label)
        if report.with_change:
            out.append(metric.label + CHANGE_SUFFIX)
    return out


def _lead(line: Line) -> list[str]:
    if line.kind == "member":
        return [GROUPS.get(line.group, line.group), line.label]
    if line.kind == "subtotal":
        return ["小计", line.label]
    return ["总计", ""]


def _number(metric_kind: str, value: float) -> float | int:
    return round(value, 4) if metric_kind == "ratio" else round(value)


def table(report: PeriodicReport) -> list[list[Any]]:
    """Rows of cells under `header(report)`: text, ints, and ratios as fractions (4 decimals)."""
    rows = []
    for line in report.lines:
        cells: list[Any] = _lead(line)
        for metric in METRICS:
            cells.append(_number(metric.kind, line.current[metric.key]))
            if report.with_change:
                change = line.change(metric.key)
                cells.append(_number(metric.kind, change) if change is not None else "")
        rows.append(cells)
    return rows


def to_csv(report: PeriodicReport) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header(report))
    writer.writerows(table(report))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(report: PeriodicReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"{report.exchange} {report.period.kind}"
    columns = header(report)
    sheet.append([report.title])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(columns))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.append(columns)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDEBF7")
        cell.alignment = Alignment(horizontal="center", wrap_text=True)
    ratio_columns = {i + 1 for i, name in enumerate(columns) if name.startswith("中继占比")}
    for line, cells in zip(report.lines, table(report), strict=True):
        sheet.append(cells)
        row = sheet.max_row
        for col in range(3, len(columns) + 1):
            cell = sheet.cell(row=row, column=col)
            is_change = columns[col - 1].endswith(CHANGE_SUFFIX)
            if col in ratio_columns:
                cell.number_format = "+0.00%;-0.00%;0.00%" if is_change else "0.00%"
            else:
                cell.number_format = "+#,##0;-#,##0;0" if is_change else "#,##0"
        if line.kind != "member":
            for cell in sheet[row]:
                cell.font = Font(bold=True)
    sheet.append([])
    sheet.append([NOTES])
    sheet.append([f"数据来源: lookthrough 看穿式监管数据处理系统; 生成时间 {_now()}"])
    for i, name in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(10, len(name) * 2 + 2)
    sheet.freeze_panes = "C3"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_html(report: PeriodicReport, png: bytes | None) -> bytes:
    columns = header(report)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for line, cells in zip(report.lines, table(report), strict=True):
        css = "" if line.kind == "member" else f' class="{line.kind}"'
        tds = "".join(f"<td>{html.escape(_display(columns[i], v))}</td>" for i, v in enumerate(cells))
        body.append(f"<tr{css}>{tds}</tr>")
    chart = ""
    if png:
        chart = f'<p><img alt="chart" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(report.title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #999; padding: 4px 8px; text-align: right; }}
th {{ background: #ddebf7; text-align: center; }}
td:nth-child(1), td:nth-child(2) {{ text-align: left; }}
tr.subtotal td {{ font-weight: bold; background: #f2f2f2; }}
tr.total td {{ font-weight: bold; background: #e2efda; }}
p.note {{ color: #555; max-width: 60em; }}
</style></head>
<body>
<h1>{html.escape(report.title)}</h1>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
{chart}
<p class="note">{html.escape(NOTES)}</p>
<p class="note">数据来源: lookthrough 看穿式监管数据处理系统; 生成时间 {_now()}</p>
</body></html>
"""
    return page.encode("utf-8")


def _display(column: str, value: Any) -> str:
    if column.startswith("中继占比") and isinstance(value, float | int):
        sign = "+" if column.endswith(CHANGE_SUFFIX) and value > 0 else ""
        return f"{sign}{value * 100:.2f}%"
    if isinstance(value, int) and column.endswith(CHANGE_SUFFIX) and value > 0:
        return f"+{value:,}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

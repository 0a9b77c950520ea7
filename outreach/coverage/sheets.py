"""Tables for Excel: Chinese headers over typed rows, written as XLSX (frozen header, widths, real dates) or CSV.

The coverage table and the as-run log (coverage.aslog) are built once here and below, and the CLI
(`coverage`, `log`) and the web downloads write the same rows. Instants are shown in Beijing time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xlsxwriter

from outreach.config import TZ
from outreach.coverage.reach import VillageCoverage
from outreach.labels import EVIDENCE

__all__ = ["Cell", "Table", "csv_text", "xlsx_bytes", "text_table", "cell_text", "COVERAGE_HEADERS", "coverage_table",
           "XLSX_TYPE"]

Cell = str | int | float | dt.date | dt.datetime | None
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm"
MAX_WIDTH = 50  # characters; longer cells wrap in Excel's own way
_SHEET_NAME_BAD = str.maketrans({ch: "_" for ch in "[]:*?/\\"})


@dataclass(frozen=True)
class Table:
    """One sheet: its name, the header row and the rows (dates and instants as values, not text)."""

    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]


def _local(value: dt.datetime) -> dt.datetime:
    """An instant as Beijing wall time without a zone (Excel has no zones); naive values are taken as they are."""
    return value.astimezone(TZ).replace(tzinfo=None) if value.tzinfo is not None else value


def cell_text(value: Cell) -> str:
    """A cell as CSV and the terminal show it: 2026-12-01, 2026-12-01 06:30 (Beijing time), '' for None."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return _local(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def csv_text(table: Table) -> str:
    """The table as CSV with a BOM and CRLF line ends, which Excel opens as UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(table.headers)
    writer.writerows([cell_text(c) for c in row] for row in table.rows)
    return "\ufeff" + buf.getvalue()


def _width(value: Cell) -> int:
    """Display width in Excel's character units: a Chinese character counts two."""
    if isinstance(value, dt.datetime):
        return 16
    if isinstance(value, dt.date):
        return 10
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in cell_text(value))


def _widths(table: Table) -> list[int]:
    widths = [_width(h) for h in table.headers]
    for row in table.rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], _width(value))
    return [min(MAX_WIDTH, max(6, w) + 2) for w in widths]


def text_table(table: Table) -> str:
    """The table as aligned columns for a terminal (Chinese characters count two), one line a row."""
    lines = [list(table.headers), *([cell_text(c) for c in row] for row in table.rows)]
    widths = [max(_width(line[i]) for line in lines) for i in range(len(table.headers))]
    return "".join("  ".join(text + " " * (w - _width(text)) for text, w in zip(line, widths, strict=True)).rstrip()
                   + "\n" for line in lines)


# --- XLSX -------------------------------------------------------------------------------------
# XlsxWriter streams rows (constant_memory), so a county's month writes in a web request; openpyxl
# without lxml serialises about 1,500 rows a second. The tests read the files back with openpyxl.

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _write_cell(sheet: Any, row: int, col: int, value: Cell, formats: dict[str, Any]) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool):
        sheet.write_string(row, col, "是" if value else "否")
    elif isinstance(value, dt.datetime):
        sheet.write_datetime(row, col, _local(value), formats["time"])
    elif isinstance(value, dt.date):
        sheet.write_datetime(row, col, dt.datetime.combine(value, dt.time()), formats["date"])
    elif isinstance(value, (int, float)):
        sheet.write_number(row, col, value)
    else:
        sheet.write_string(row, col, _NOT_XML.sub("", str(value)))


def xlsx_bytes(*tables: Table) -> bytes:
    """A workbook with one sheet per table (header bold and frozen, widths, real dates), as .xlsx bytes."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True, "constant_memory": True})
    formats = {"bold": book.add_format({"bold": True}), "date": book.add_format({"num_format": DATE_FORMAT}),
               "time": book.add_format({"num_format": TIME_FORMAT})}
    for i, table in enumerate(tables, start=1):
        sheet = book.add_worksheet(table.title.translate(_SHEET_NAME_BAD)[:31] or f"表{i}")
        sheet.freeze_panes(1, 0)
        for col, width in enumerate(_widths(table)):
            sheet.set_column(col, col, width)
        for col, header in enumerate(table.headers):
            sheet.write_string(0, col, header, formats["bold"])
        for r, row in enumerate(table.rows, start=1):
            for col, value in enumerate(row):
                _write_cell(sheet, r, col, value, formats)
    book.close()
    return buf.getvalue()


# --- coverage ---------------------------------------------------------------------------------

# The first fourteen columns are those of earlier versions, in their order; evidence columns follow.
COVERAGE_HEADERS = ("村编号", "村", "乡镇", "活动编号", "活动", "计划", "播出", "确认", "待确认", "漏播", "失败",
                    "最近覆盖", "人口", "估计听众",
                    *(EVIDENCE[level] for level in ("confirmed", "heard", "player", "none")), "其中无记录的漏播",
                    *(f"上次成功播出（{EVIDENCE[level]}）" for level in ("confirmed", "heard", "player")))


def coverage_table(rows: Sequence[VillageCoverage]) -> Table:
    """Coverage per village and campaign, as `coverage --format csv|xlsx` and the web download write it."""
    return Table("覆盖情况", COVERAGE_HEADERS, [
        (r.village_id, r.village_name, r.township_name, r.campaign_id, r.campaign_name, r.planned, r.played,
         r.confirmed, r.exported, r.missed, r.failed, r.last_reached, r.population, r.listeners,
         r.reached_confirmed, r.reached_heard, r.reached_player, r.unproven, r.unrecorded,
         *(r.last_aired.get(level) for level in ("confirmed", "heard", "player")))
        for r in rows
    ])

"""coverage/sheets.py: the XLSX openpyxl reads back (frozen bold header, widths, real dates), CSV and the terminal table."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl

from outreach.config import TZ
from outreach.coverage.sheets import Table, csv_text, text_table, xlsx_bytes

AT = dt.datetime(2026, 12, 1, 6, 30, tzinfo=TZ)
TABLE = Table("播出/记录", ("乡镇", "日期", "时间", "人数", "说明"), [
    ("大庄镇", dt.date(2026, 12, 1), AT.astimezone(dt.timezone.utc), 2860, "<b>&“引号”\x07</b>"),
    ("河西镇", None, None, 1.5, ""),
])


def test_xlsx_reads_back_with_real_dates_a_frozen_bold_header_and_widths() -> None:
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(TABLE, Table("第二张", ("列",) * 30, [tuple(range(30))]))))
    sheet = book.worksheets[0]
    assert sheet.title == "播出_记录" and sheet.freeze_panes == "A2"
    assert [c.font.b for c in sheet[1]] == [True] * 5 and not sheet["A2"].font.b
    assert [tuple(c.value for c in row) for row in sheet.iter_rows()] == [
        ("乡镇", "日期", "时间", "人数", "说明"),
        ("大庄镇", dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 1, 6, 30), 2860, "<b>&“引号”</b>"),
        ("河西镇", None, None, 1.5, None),
    ]  # an instant in UTC comes out as Beijing wall time; a control character is dropped
    assert (sheet["B2"].number_format, sheet["C2"].number_format) == ("yyyy-mm-dd", "yyyy-mm-dd hh:mm")
    assert abs(sheet.column_dimensions["A"].width - 8) < 1 and sheet.column_dimensions["E"].width > 15  # 大庄镇; the note
    wide = book.worksheets[1]
    assert wide["AD1"].value == "列" and wide["AD2"].value == 29  # past column Z


def test_csv_and_terminal_show_the_same_cells_as_text() -> None:
    text = csv_text(TABLE)
    assert text.startswith("\ufeff乡镇,日期,时间,人数,说明\r\n")
    assert "大庄镇,2026-12-01,2026-12-01 06:30,2860," in text and "\r\n河西镇,,,1.5,\r\n" in text
    lines = text_table(Table("t", ("村", "人口"), [("大庄村", 2860), ("北坡", 10)])).splitlines()
    assert lines == ["村      人口", "大庄村  2860", "北坡    10"]

"""Excel out (issue 18): coverage and the as-run log download as XLSX with the page's filters, and
`outreach log` gives the same rows; dates typed as words on the pages."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import openpyxl
from click.testing import CliRunner
from web_site import Site

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from outreach.cli import cli
from outreach.coverage.aslog import LOG_HEADERS, NO_RECORD

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DZ01 = "village=dazhuang-01&from=2026-12-01&to=2026-12-09"


def _book(raw: bytes) -> openpyxl.worksheet.worksheet.Worksheet:
    return openpyxl.load_workbook(io.BytesIO(raw)).active


def _values(sheet) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [tuple(c.value for c in row) for row in sheet.iter_rows()]


def test_log_download_one_row_per_broadcast_with_names_real_dates_and_ids_last(site: Site, viewer: TestClient) -> None:
    response = viewer.get(f"/downloads/log.xlsx?{DZ01}")
    assert response.status_code == 200, response.text[-300:]
    assert response.headers["content-type"] == XLSX
    disposition = unquote(response.headers["content-disposition"])
    assert "播出记录_全部活动_2026-12-01至2026-12-09.xlsx" in disposition
    sheet = _book(response.content)
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.b
    assert sheet.column_dimensions["G"].width > 20  # 稿件标题 is wide enough to read
    rows = _values(sheet)
    assert rows[0] == LOG_HEADERS and rows[0][:10] == (
        "乡镇", "村", "日期", "时段", "状态", "证据", "稿件标题", "活动名称", "计划时间", "播出时间")
    body = [dict(zip(LOG_HEADERS, r, strict=True)) for r in rows[1:]]
    assert len(body) == 9 * 2 * 4  # nine days, two slots, the four campaigns that reach 大庄村
    first = body[0]
    assert (first["乡镇"], first["村"], first["日期"], first["时段"]) == ("大庄镇", "大庄村", datetime(2026, 12, 1), "早间")
    assert first["计划时间"] == datetime(2026, 12, 1, 6, 30) and first["播出时间"] == datetime(2026, 12, 1, 6, 30)
    assert sheet["C2"].number_format == "yyyy-mm-dd" and sheet["I2"].number_format == "yyyy-mm-dd hh:mm"
    assert (first["状态"], first["证据"]) == ("已播", "仅有播放记录")
    assert first["村编号"] == "dazhuang-01" and isinstance(first["记录编号"], int)
    assert not re.search(r"[a-z]-[a-z]", first["稿件标题"]) and first["稿件编号"]  # titles, ids at the end
    missed = [r for r in body if r["日期"] == datetime(2026, 12, 5) and r["时段"] == "晚间"]
    assert missed and all(r["状态"] == "漏播" and r["证据"] is None and r["播出时间"] is None for r in missed)


def test_log_download_reads_statuses_now_and_takes_the_filters(site: Site, viewer: TestClient) -> None:
    """李家洼村's programs of 12-01 were never exported: stored `planned`, they read 漏播 at 12-10 09:30."""
    sheet = _values(_book(viewer.get("/downloads/log.xlsx?village=dazhuang-05&from=12月1日&to=12-9").content))
    body = [dict(zip(LOG_HEADERS, r, strict=True)) for r in sheet[1:]]
    assert {r["村"] for r in body} == {"李家洼村"}
    assert {r["状态"] for r in body if r["日期"] == datetime(2026, 12, 1)} == {"漏播"}
    assert {(r["状态"], r["证据"]) for r in body if r["日期"] == datetime(2026, 12, 9)} == {("已导出", "已导出待确认")}
    one = _values(_book(viewer.get("/downloads/log.xlsx?campaign=winter-traffic&township=hexi&days=3").content))
    body = [dict(zip(LOG_HEADERS, r, strict=True)) for r in one[1:]]
    assert body and {r["活动编号"] for r in body} == {"winter-traffic"} and {r["乡镇"] for r in body} == {"河西镇"}
    assert min(r["日期"] for r in body) >= datetime(2026, 12, 8)  # the last three days up to 12-10
    silent = _values(_book(viewer.get("/downloads/log.xlsx?village=dazhuang-02&from=2026-12-09&to=2026-12-10").content))
    body = [dict(zip(LOG_HEADERS, r, strict=True)) for r in silent[1:]]  # 前营村: nothing ever logged a row
    assert {(r["日期"], r["时段"], r["状态"]) for r in body} == {
        (datetime(2026, 12, 9), "早间", "漏播"), (datetime(2026, 12, 9), "晚间", "漏播"),
        (datetime(2026, 12, 10), "早间", "漏播"), (datetime(2026, 12, 10), "晚间", "待播")}
    assert all(r["记录编号"] is None for r in body) and NO_RECORD in {r["说明"] for r in body}
    assert viewer.get("/downloads/log.xlsx?campaign=no-such").status_code == 400
    assert viewer.get("/downloads/log.xlsx?from=2025-01-01&to=2026-12-01").status_code == 400  # over 366 days


def test_cli_log_gives_the_same_rows_as_the_download(site: Site, viewer: TestClient, tmp_path: Path) -> None:
    web = _values(_book(viewer.get(f"/downloads/log.xlsx?{DZ01}").content))
    target = tmp_path / "log.xlsx"
    args = ["log", "--from", "2026-12-01", "--to", "2026-12-09", "--village", "大庄村", "-w", str(site.workspace)]
    result = CliRunner().invoke(cli, [*args, "--format", "xlsx", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert _values(openpyxl.load_workbook(target).active) == web
    as_csv = CliRunner().invoke(cli, [*args, "--format", "csv"])
    table = list(csv.reader(io.StringIO(as_csv.stdout.lstrip("\ufeff"))))
    assert table[0] == list(LOG_HEADERS) and table[1][:4] == ["大庄镇", "大庄村", "2026-12-01", "早间"]
    assert table[1][8] == "2026-12-01 06:30" and table[1][-3] == "dazhuang-01"
    as_json = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)
    assert len(as_json) == len(web) - 1
    assert as_json[0]["village_id"] == "dazhuang-01" and as_json[0]["status"] == "played"
    assert as_json[0]["scheduled_at"] == "2026-12-01T06:30:00+08:00" and as_json[0]["script_ids"]
    table_out = CliRunner().invoke(cli, args)
    assert table_out.stdout.splitlines()[0].split() == ["日期", "时段", "乡镇", "村", "活动名称", "状态", "证据", "播出时间"]
    refused = CliRunner().invoke(cli, [*args, "--format", "xlsx"])
    assert refused.exit_code == 1 and "--output" in refused.stderr


def test_coverage_download_matches_the_cli_and_the_pages_link_it(site: Site, viewer: TestClient,
                                                                  tmp_path: Path) -> None:
    page = viewer.get("/campaigns/winter-traffic").text
    link = re.search(r'href="(/downloads/coverage\.xlsx\?[^"]+)" id="download-coverage"', page)
    assert link and "下载Excel" in page and "campaign=winter-traffic" in link[1]
    assert "from=2026-12-01" in link[1] and "to=2026-12-10" in link[1]  # the page's period: the campaign so far
    response = viewer.get(link[1].replace("&amp;", "&"))
    assert response.status_code == 200 and "冬季道路交通安全宣传" in unquote(response.headers["content-disposition"])
    response = viewer.get("/downloads/coverage.xlsx?campaign=winter-traffic&from=2026-12-01&to=2026-12-09")
    sheet = _book(response.content)
    rows = _values(sheet)
    assert rows[0][:3] == ("村编号", "村", "乡镇") and sheet.freeze_panes == "A2"
    dz01 = next(r for r in rows if r[0] == "dazhuang-01")
    assert dz01[11] == datetime(2026, 12, 9)  # 最近覆盖, a real date
    target = tmp_path / "cov.xlsx"
    result = CliRunner().invoke(cli, ["coverage", "--campaign", "winter-traffic", "--from", "2026-12-01",
                                      "--to", "2026-12-09", "--today", "2026-12-09", "--format", "xlsx",
                                      "--out", str(target), "-w", str(site.workspace)])
    assert result.exit_code == 0, result.output
    cli_rows = {r[0]: r for r in _values(openpyxl.load_workbook(target).active)}
    assert cli_rows["dazhuang-01"] == dz01
    gaps = re.findall(r'href="(/downloads/(?:coverage|log)\.xlsx[^"]*)"', viewer.get("/gaps?campaign=winter-traffic&days=7").text)
    assert gaps == ["/downloads/coverage.xlsx?campaign=winter-traffic&amp;days=7",
                    "/downloads/log.xlsx?campaign=winter-traffic&amp;days=7"]
    assert viewer.get(gaps[1].replace("&amp;", "&")).status_code == 200
    assert re.findall(r'href="(/downloads/(?:coverage|log)\.xlsx[^"]*)"', viewer.get("/campaigns").text) == [
        "/downloads/coverage.xlsx", "/downloads/log.xlsx"]  # this month, every campaign


def test_pages_take_date_words(site: Site, viewer: TestClient) -> None:
    """The plan page refused 明天 and 12-11; NOW is 2026-12-10."""
    for text in ("明天", "12-11", "12月11日"):
        page = viewer.get(f"/plan?from={text}&days=1")
        assert page.status_code == 200, (text, page.text[-300:])
        assert "2026-12-11" in page.text or "12月11日" in page.text
    refused = viewer.get("/plan?from=下个月")
    assert refused.status_code == 400 and "明天" in refused.text

"""Issue 18 in a real headless Chromium at 1280 px and 390 px, for the items without a journey of their own:
date words in a page's address, the 下载Excel links, the village list imported from Excel (preview, then
确认导入) and a recording uploaded in place of the synthetic voice. Each page must fit the width and
speak Chinese; screenshots go to build/screenshots/office-*.png."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest
import yaml
from test_web_browser import CHROMIUM_ARGS, chromium_path  # noqa: F401  (fixture)
from test_web_journeys import _fits, _login, _shot, site  # noqa: F401  (fixture)
from test_web_phone import english_prose

from outreach.audio.ffmpeg import run_ffmpeg

pytestmark = pytest.mark.browser
SAMPLE_SHEET = Path(__file__).resolve().parents[2] / "samples" / "村庄.xlsx"


def _chinese(page) -> None:  # type: ignore[no-untyped-def]
    runs = english_prose(page.locator("main").inner_text())
    assert not runs, f"{page.url}: English in the page: {runs[:3]}"


def _sheet_with_a_new_village(tmp: Path) -> Path:
    book = openpyxl.load_workbook(SAMPLE_SHEET)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    row = dict(zip(header, next(sheet.iter_rows(min_row=2, values_only=True)), strict=False))
    row.update({"村名": "新开村", "人口": 777})
    sheet.append([row.get(h) for h in header])
    path = tmp / "村庄.xlsx"
    book.save(path)
    return path


def _wav(tmp: Path) -> Path:
    path = tmp / "通知.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-af", "volume=-20dB", "-ar", "24000",
                "-y", str(path)], what="测试录音")
    return path


@pytest.mark.parametrize("width", [1280, 390])
def test_dates_excel_import_and_a_recording(chromium_path: str, site: tuple[str, Path],  # noqa: F811
                                            width: int, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server, workspace = site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx, page = _login(browser, server, "管理员", width)
            # 明天 in the address: the page's own NOW is 2026-12-10, so the plan starts on 12-11.
            page.goto(f"{server}/plan?from=明天")
            assert page.locator("input[name=from]").input_value() == "2026-12-11"
            _fits(page, width)

            # 下载Excel from the gaps page: a real workbook with Chinese headers and rows.
            page.goto(f"{server}/gaps")
            with page.expect_download() as caught:
                page.click("#download-log")
            download = caught.value
            assert download.suggested_filename.endswith(".xlsx") and "播出记录" in download.suggested_filename
            rows = list(openpyxl.load_workbook(io.BytesIO(Path(download.path()).read_bytes())).active
                        .iter_rows(values_only=True))
            assert rows[0][:4] == ("乡镇", "村", "日期", "时段") and len(rows) > 1
            _chinese(page)

            # The village list from Excel: a preview first, county.yaml written only on 确认导入.
            county = workspace / "schedules" / "county.yaml"
            before = county.read_text(encoding="utf-8")
            page.goto(f"{server}/import/villages")
            page.set_input_files("#upload-villages input[type=file]", str(_sheet_with_a_new_village(tmp_path)))
            page.click("#upload-villages button[type=submit]")
            page.wait_for_selector("#confirm-import")
            assert "新开村" in page.locator("main").inner_text()
            assert county.read_text(encoding="utf-8") == before  # the preview writes nothing
            _fits(page, width)
            _chinese(page)
            _shot(page, "office-import", width)
            page.click("#confirm-import button[type=submit]")
            page.wait_for_load_state()
            villages = yaml.safe_load(county.read_text(encoding="utf-8"))["villages"]
            assert [v["population"] for v in villages if v["name"] == "新开村"] == [777]

            # A recording instead of TTS: uploaded on the script page, mastered, and heard there.
            page.goto(f"{server}/scripts/fraud-seven-tools")
            page.set_input_files("#upload-recording input[type=file]", str(_wav(tmp_path)))
            page.click("#upload-recording button[type=submit]")
            page.wait_for_selector("#recording", timeout=30_000)
            page.wait_for_selector("audio", timeout=60_000)
            assert "真人录音" in page.locator("main").inner_text()
            _fits(page, width)
            _chinese(page)
            _shot(page, "office-recording", width)
            ctx.close()
        finally:
            browser.close()

"""The calendar and the campaign editor in a real headless Chromium at 1280 px and 390 px."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_web_browser import chromium_path  # noqa: F401  (fixture)
from test_web_browser import CHROMIUM_ARGS
from test_web_journeys import _fits, _login, _shot, site  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser
MY_PAGES = ["/calendar", "/calendar?view=week&village=dazhuang-04", "/calendar?view=month&township=lishu",
            "/campaigns/new", "/campaigns/winter-traffic/edit", "/villages/dazhuang-04/edit"]


@pytest.mark.parametrize("width", [1280, 390])
def test_an_editor_creates_a_campaign_and_sees_its_plan_preview(chromium_path: str,  # noqa: F811
                                                                 site: tuple[str, Path], width: int) -> None:
    from playwright.sync_api import sync_playwright

    server, workspace = site
    cid = "ganji-rifan-zha-liulan-qixin-jian"  # the form asks for no id: it is the name in pinyin
    campaigns = workspace / "schedules" / "campaigns.yaml"
    before = campaigns.read_text("utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx, page = _login(browser, server, "王秀兰", width)
            page.goto(f"{server}/campaigns/new")
            page.fill("input[name=name]", "赶集日反诈（浏览器新建）")
            page.fill("input[name=from]", "2026-12-10")
            page.fill("input[name=to]", "2026-12-20")
            page.check("input[name=scripts][value=fraud-bank-card-check]")
            page.check("input[name=scripts][value=fraud-phone-card-check]")
            page.check("input[name=markets][value=hexi-ji]")
            page.fill("input[name=market_day_boost]", "1")
            page.check("input[name=urgent]")
            page.click("#preview-button")
            page.wait_for_selector("#plan-preview")
            programs = int(page.locator("#preview-programs").inner_text())
            assert programs > 0
            assert page.locator("table.preview tbody tr").count() == 11  # 12-10 (today) to 12-20, both included
            assert campaigns.read_text("utf-8") == before  # a preview writes nothing
            _shot(page, "campaign-preview", width)
            _fits(page, width)
            page.click("#save-button")
            page.wait_for_url(f"{server}/campaigns/{cid}")
            assert "已保存宣传活动" in page.content()
            saved = campaigns.read_text("utf-8")
            assert f"id: {cid}" in saved and saved.startswith(before.rstrip("\n"))
            # A bad value comes back beside its field; nothing is written.
            page.goto(f"{server}/campaigns/{cid}/edit")
            page.fill("input[name=priority]", "15")
            page.click("#save-button")
            assert "不能大于 9（现在是 15）" in page.locator(".field-error[data-field=priority]").inner_text()
            assert campaigns.read_text("utf-8") == saved
            _fits(page, width)
            ctx.close()
        finally:
            browser.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_calendar_shows_a_market_day(chromium_path: str, site: tuple[str, Path],  # noqa: F811
                                         width: int) -> None:
    from playwright.sync_api import sync_playwright

    server, _ = site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx, page = _login(browser, server, "王秀兰", width)
            if width == 390:  # a phone's links sit behind the menu button
                page.click(".menu-button")
            page.click("nav a:has-text('日历')")
            page.wait_for_url(f"{server}/calendar")
            page.select_option("select[name=township]", "dazhuang")
            page.click("#calendar-filter button")
            page.wait_for_url("**/calendar?**township=dazhuang**")
            # 2026-12-11 is 冬月初三: 大庄集 (逢农历三、八) is held.
            day = page.locator("[data-date='2026-12-11']")
            assert "集 大庄集" in day.inner_text() and "冬月初三" in day.inner_text()
            assert "大庄集" not in page.locator("[data-date='2026-12-12']").inner_text()
            assert "静音" in page.locator("[data-date='2026-12-26']").inner_text()
            box = day.bounding_box()
            assert box is not None
            if width == 390:  # a list of days, one per row; the days of other months are hidden
                assert box["width"] > 300
                assert not page.locator("[data-date='2026-11-30']").is_visible()
            else:  # a 7-column grid
                assert box["width"] < 1280 / 7
            _shot(page, "calendar", width)
            _fits(page, width)
            day.click()
            page.wait_for_url("**/plan?from=2026-12-11&days=1&township=dazhuang")
            assert "12月11日" in page.content()
            for path in MY_PAGES:
                page.goto(f"{server}{path}")
                assert page.locator("h1").count() == 1, path
                _fits(page, width)
            _shot(page, "village-edit", width)
            ctx.close()
        finally:
            browser.close()

"""Names, not ids, in a real headless Chromium at 1280 px and 390 px: a script and a campaign are made by
title alone, and the rotation is reordered with the ↑/↓ buttons (no JavaScript needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_web_browser import CHROMIUM_ARGS, chromium_path  # noqa: F401  (fixture)
from test_web_journeys import _fits, _login, _shot, site  # noqa: F401  (fixture)

from outreach.config import load_config
from outreach.planning.workspace import load

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390])
def test_a_script_and_a_campaign_by_title_and_the_rotation_reordered(chromium_path: str,  # noqa: F811
                                                                      site: tuple[str, Path], width: int) -> None:
    from playwright.sync_api import sync_playwright

    server, workspace = site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx, page = _login(browser, server, "王秀兰", width)
            # A script by its title: no id is asked for, the file is named in pinyin.
            page.goto(f"{server}/scripts/new")
            assert page.locator("input[name=id]").count() == 0
            page.fill("input[name=title]", "快递退款")
            page.select_option("select[name=engine]", "espeak")
            page.fill("textarea[name=text]", "接到自称快递客服说要退款的电话，先挂断，再拨打96110核实。")
            _shot(page, "names-script", width)
            page.click("button:has-text('保存草稿')")
            page.wait_for_url(f"{server}/scripts/kuaidi-tuikuan")
            assert (workspace / "audio_scripts" / "kuaidi-tuikuan.md").is_file()

            # A campaign by its name; two scripts ticked, then ↓ puts the second first.
            page.goto(f"{server}/campaigns/new")
            assert page.locator("input[name=id]").count() == 0
            for field, value in (("name", "快递退款提醒"), ("from", "2026-12-12"), ("to", "2026-12-20")):
                page.fill(f"input[name={field}]", value)
            for box in ("scripts][value=fraud-96110", "scripts][value=fraud-overseas-calls", "townships][value=hexi"):
                page.check(f"input[name={box}]")
            page.press("input[name=name]", "Enter")  # Enter previews; it moves nothing
            page.wait_for_selector("#plan-preview")
            rotation = page.locator("#rotation-list li")
            assert "1.\n96110来电，一定要接" in rotation.all_inner_texts()[0]  # ticked: in the list's order
            page.click("#rotation-list li[data-script=fraud-96110] button[name=move_down]")
            page.wait_for_url(f"{server}/campaigns/save#rotation")
            assert "已下移到第 2 位" in page.locator("#form-message").inner_text()
            assert [li.get_attribute("data-script") for li in rotation.all()] == [
                "fraud-overseas-calls", "fraud-96110"]
            _fits(page, width)
            _shot(page, "names-rotation", width)
            page.click("#save-button")
            page.wait_for_url(f"{server}/campaigns/kuaidi-tuikuan-tixing")
            assert page.locator("h1").inner_text() == "快递退款提醒"
            saved = next(c for c in load(load_config(workspace)).campaigns if c.id == "kuaidi-tuikuan-tixing")
            assert saved.scripts == ["fraud-overseas-calls", "fraud-96110"]
            ctx.close()
        finally:
            browser.close()

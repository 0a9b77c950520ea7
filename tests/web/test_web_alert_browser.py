"""紧急插播 in a real headless Chromium at 1280 px and 390 px: who it reaches by channel and the missing broker
up front, 试听, the confirmation step for a whole county, and the result listing the U盘村."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_web_browser import CHROMIUM_ARGS, chromium_path, live_server  # noqa: F401  (fixture)
from test_web_journeys import NOW, PASSWORD, _audio_loads, _fits, _login, _shot

pytestmark = pytest.mark.browser


@pytest.fixture
def alert_site(rendered_workspace: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    from argon2 import PasswordHasher
    from station_harness import mark_station_villages

    from outreach.config import load_config
    from outreach.db import session
    from outreach.models import Station
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app
    from outreach.web.auth import USERS_FILE, UserStore

    for key in ("OUTREACH_BROKER_URL", "OUTREACH_BROKER_USERNAME", "OUTREACH_BROKER_PASSWORD"):
        monkeypatch.delenv(key, raising=False)  # tools/test exports a broker for the whole run
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    mark_station_villages(rendered_workspace, ("dazhuang-01",))
    config = load_config(rendered_workspace)
    engine = open_database(load(config))
    with session(engine) as s:
        s.add(Station(id="dazhuang-01-aaaaaa", village_id="dazhuang-01", token_sha256="0" * 64, broker_hash="x",
                      created_at=NOW))
    UserStore(rendered_workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(
        "王秀兰", "editor", PASSWORD, now=NOW)
    with live_server(create_app(config, now=lambda: NOW, engine=engine)) as url:
        yield url, engine
    engine.dispose()


def test_alert_for_the_whole_county_is_confirmed_heard_first_and_lists_usb_villages(  # noqa: F811
        chromium_path: str, alert_site: tuple[str, object]) -> None:
    from playwright.sync_api import sync_playwright

    from outreach.delivery.live import alerts as live_alerts

    server, engine = alert_site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            for width in (1280, 390):
                ctx, page = _login(browser, server, "王秀兰", width)
                page.goto(f"{server}/alerts/new")
                assert "没有配置消息服务器" in page.locator("#broker").inner_text()  # before anything is sent
                county = page.locator("#channels [data-township='全县']")
                assert [county.locator(f"[data-channel={c}]").inner_text() for c in ("stations", "live", "usb")] \
                    == ["1", "19", "10"]
                _fits(page, width)
                _shot(page, "alert-form", width)
                page.check("input[name=scope][value=county]")
                page.click("button:has-text('发送紧急插播')")
                page.wait_for_selector("#confirm")
                panel = page.locator("#confirm").inner_text()
                assert "10 个村无法即时插播（U盘村）" in panel and "19" in panel
                assert page.locator("#confirm audio").count() == 1  # 试听 what is about to interrupt the county
                assert _audio_loads(page) >= 2  # it and every approved script of the list play
                _fits(page, width)
                _shot(page, "alert-confirm", width)
                page.click("#confirm button[name=confirm]")
                page.wait_for_url(f"{server}/alerts/*")
                assert "19 个联网村" in page.locator("main").inner_text()
                assert "李家洼村" in page.locator("#usb").inner_text()
                # No broker: the box is left out (it would look undelivered), the networked villages are not.
                assert "播放盒没有收到：没有配置消息服务器" in page.locator("main").inner_text()
                assert page.locator("#targets [data-station^='live:']", has_text="（联网村）").count() == 19
                assert page.locator("#targets [data-station]").count() == 19
                # The scheduler plays it in 东岗村: the page marks it without a reload (alert.js).
                alert_id = page.url.rsplit("/", 1)[1]
                [taken] = [a for a in live_alerts.waiting(engine, {"dazhuang-06"}, NOW) if a.alert_id == alert_id]
                assert live_alerts.take(engine, taken, NOW)
                live_alerts.mark_played(engine, taken, NOW + timedelta(seconds=2))
                row = page.locator("#targets [data-station='live:dazhuang-06']")
                row.locator("[data-part=played] .badge.played").wait_for(timeout=10_000)
                assert page.locator("[data-count=live_played]").inner_text() == "1"
                assert page.locator("[data-latency=max]").inner_text() == "2"  # refreshed by alert.js
                _fits(page, width)
                _shot(page, "alert-sent", width)
                ctx.close()
        finally:
            browser.close()

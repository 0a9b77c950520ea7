"""The QR confirmation loop in a real headless Chromium (issue 17): a secretary's phone (390 px) opens the link
of the village pack's QR code, confirms the morning program, and 今天 shows it 已确认 with the air time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_web_browser import CHROMIUM_ARGS, chromium_path, live_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
EXPORTED = datetime(2026, 12, 9, 20, 0, tzinfo=TZ)  # the evening before, at export_hour
PASSWORD = "qinghe-2026"
VILLAGE = "dazhuang-07"  # 西岗村, fed by USB stick
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "zh-CN", "is_mobile": True, "has_touch": True}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _export(workspace: Path, engine, base_url: str, out: Path) -> Path:  # type: ignore[no-untyped-def]
    """Today's 西岗村 pack as export leaves it: rows logged exported, then the QR page; returns the folder."""
    from outreach.config import load_config
    from outreach.db import session
    from outreach.delivery.usb.confirm_sheets import write_confirm_sheets
    from outreach.delivery.usb.packs import ExportReport, PackFile, pack_rel_path
    from outreach.planning.workspace import load, plan_days
    from outreach.records import broadcast_plans, record_exported

    toml = workspace / "outreach.toml"
    text, line = toml.read_text(encoding="utf-8"), f'public_url = "{base_url}"\n'
    toml.write_text(text.replace("\n[web]\n", f"\n[web]\n{line}", 1) if "\n[web]\n" in text
                    else f"{text}\n[web]\n{line}", encoding="utf-8")
    loaded = load(load_config(workspace))
    town = loaded.registry.townships["dazhuang"].name
    files = []
    with session(engine) as s:
        for p in plan_days(loaded, NOW.date(), NOW.date(), village_ids=[VILLAGE]).programs:
            rel = pack_rel_path("dazhuang", town, VILLAGE, "西岗村", p.date, p.start.timetz(), p.slot)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(b"ID3")
            files.append(PackFile(rel, "a" * 64, p.duration_s, VILLAGE, p.slot, p.date.isoformat(),
                                  p.start.astimezone(TZ).strftime("%H:%M"), "",
                                  tuple(loaded.scripts[i.script_id].title for i in p.airable_items), ""))
            record_exported(s, broadcast_plans([p], airable_only=True), program_sha256="a" * 64, engine="offline",
                            at=EXPORTED)
    write_confirm_sheets(loaded, engine, out, ExportReport(written=files), village_ids=[VILLAGE], usb={VILLAGE},
                         first_day=NOW.date(), last_day=NOW.date(), now=EXPORTED)
    [folder] = out.glob(f"*/{VILLAGE}_*")
    return folder


@pytest.fixture
def site(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Clock, Path]]:
    from argon2 import PasswordHasher

    from outreach.config import load_config
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app
    from outreach.web.auth import USERS_FILE, UserStore

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'qr.db'}")
    config = load_config(workspace)
    engine = open_database(load(config))
    UserStore(workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(
        "王秀兰", "editor", PASSWORD, now=NOW)
    clock = Clock(NOW)
    with live_server(create_app(config, now=clock, engine=engine)) as url:
        folder = _export(workspace, engine, url, tmp_path / "usb")
        yield url, clock, folder
        engine.dispose()


def _shot(page, name: str, *, full_page: bool = True) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=full_page)


def _fits(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, page.url


def test_a_secretary_confirms_by_qr_and_today_shows_it_confirmed_with_the_air_time(
        chromium_path: str, site: tuple[str, Clock, Path]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    server, clock, folder = site
    sheet = (folder / "扫码确认.html").read_text(encoding="utf-8")
    link = re.search(r'class="link" href="([^"]+)"', sheet)[1]  # type: ignore[index]
    assert link.startswith(f"{server}/c/") and (folder / "扫码确认.png").read_bytes()[:4] == b"\x89PNG"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            # The secretary's phone: no login, only 西岗村's programs; the evening one is still to come.
            phone = browser.new_context(**PHONE).new_page()
            phone.goto(link)
            assert phone.locator("h1").inner_text() == "西岗村 播出确认"
            assert "/login" not in phone.url and phone.locator("nav").count() == 0
            morning, evening = phone.locator("li.program").all()
            assert "早间 06:30" in morning.inner_text() and "晚间 18:30" in evening.inner_text()
            assert evening.locator("button").count() == 0 and "播完后再来点" in evening.inner_text()
            _fits(phone)
            _shot(phone, "qr-confirm")

            clock.now = NOW + timedelta(minutes=35)  # 10:05: the morning program aired at 06:30
            phone.fill("input[name=confirmed_by]", "王支书")
            morning.locator("button:has-text('已播放')").click()
            phone.wait_for_selector(".flash")
            assert "已记录：12月10日 早间的节目已播放（王支书）" in phone.locator(".flash").inner_text()
            done = phone.locator("li.program").first.inner_text()
            assert "已确认" in done and "王支书 · 播出 12-10 06:30" in done and "录入于 12-10 10:05" in done
            _fits(phone)
            _shot(phone, "qr-confirmed")

            # The county clerk's 今天, on a phone too: 已确认, aired 06:30, entered 10:05.
            staff = browser.new_context(**PHONE).new_page()
            staff.goto(f"{server}/login")
            staff.fill("input[name=name]", "王秀兰")
            staff.fill("input[name=password]", PASSWORD)
            staff.click("button:has-text('登录')")
            staff.wait_for_url(f"{server}/today")
            staff.click("#fine details[data-key=dazhuang] summary")  # programs that need nothing are folded
            row = staff.locator("#slots tbody tr", has_text="西岗村").filter(has_text="早间")
            text = row.inner_text()
            assert "已确认" in text and "12-10 06:30" in text and "录入于 12-10 10:05" in text
            staff.evaluate("() => window.outreachRefreshToday()")
            staff.wait_for_function("() => !!document.getElementById('refreshed').dataset.refreshed")
            again = staff.locator("#slots tbody tr", has_text="西岗村").filter(has_text="早间").inner_text()
            assert "已确认" in again and "12-10 06:30" in again and "录入于 12-10 10:05" in again
            _fits(staff)
            row.evaluate("el => el.scrollIntoView({block: 'center'})")  # the page lists every village
            _shot(staff, "today-confirmed", full_page=False)
        finally:
            browser.close()
    for name in ("qr-confirm", "qr-confirmed", "today-confirmed"):
        shot = SHOTS / f"{name}-390.png"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

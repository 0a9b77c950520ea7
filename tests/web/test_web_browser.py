"""The dashboard in a real headless Chromium: log in, log a market handout, see it listed, screenshot."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
PASSWORD = "qinghe-2026"


def _unavailable(reason: str) -> None:
    """Fail under CI (tools/test installs Chromium), else skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; tools/test installs it with `apt-get install chromium`")
    pytest.skip(reason)


@pytest.fixture
def chromium_path() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        _unavailable(f"Debian's chromium is not installed ({CHROMIUM} is missing)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e '.[test]')")
    fc_list = shutil.which("fc-list")
    if fc_list and not subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout.strip():
        _unavailable("no Chinese font, pages would render as boxes; apt-get install fonts-wqy-zenhei")
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(app: object) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The dashboard served by uvicorn on a free local port, in a background thread."""
    from argon2 import PasswordHasher

    from outreach.config import load_config
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app
    from outreach.web.auth import USERS_FILE, UserStore

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'browser.db'}")
    config = load_config(workspace)
    engine = open_database(load(config))
    UserStore(workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)).add(
        "王秀兰", "editor", PASSWORD, now=NOW)
    with live_server(create_app(config, now=lambda: NOW, engine=engine)) as url:
        yield url
        engine.dispose()


def test_login_and_log_a_handout(chromium_path: str, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "market.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page.goto(f"{server}/markets/dazhuang-ji")
            assert "/login" in page.url  # logged out: sent to the login page
            page.fill("input[name=name]", "王秀兰")
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('登录')")
            page.wait_for_url(f"{server}/markets/dazhuang-ji")
            assert page.locator("h1").inner_text().startswith("大庄集")

            page.fill("input[name=leaflets]", "260")
            page.fill("input[name=people]", "184")
            page.check("input[name=topics][value=anti_fraud]")
            page.fill("input[name=note]", "浏览器测试：赶集人多")
            page.click("button:has-text('保存登记')")
            page.wait_for_url(f"{server}/markets/dazhuang-ji")

            assert "已登记" in page.locator(".flash").inner_text()
            row = page.locator("#handouts tbody tr").first
            text = row.inner_text()
            assert "260" in text and "184" in text and "反诈骗" in text and "浏览器测试：赶集人多" in text
            assert "王秀兰" in text
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("OUTREACH_KEEP_SCREENSHOT")
    if keep:
        shutil.copy2(shot, keep)


def test_logout_ends_the_session_and_other_sites_cannot_post(chromium_path: str, server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(locale="zh-CN")
            page = context.new_page()
            page.goto(f"{server}/login")
            page.fill("input[name=name]", "王秀兰")
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('登录')")
            page.wait_for_url(f"{server}/today")  # "/" is the 今天 page
            saved = [c for c in context.cookies() if c["name"] == "outreach_session"]
            assert saved

            # A page of another site (served by the browser's router) posts the logout form, token and all.
            token = page.locator("input[name=csrf_token]").first.get_attribute("value")
            context.route("http://evil.test/**", lambda route: route.fulfill(
                content_type="text/html", body=f'<form method="post" action="{server}/logout">'
                                               f'<input name="csrf_token" value="{token}"><button>go</button></form>'))
            page.goto("http://evil.test/")
            page.click("button")
            page.wait_for_load_state()
            assert "请求来源不对" in page.content()
            page.goto(f"{server}/villages")
            assert page.url == f"{server}/villages"  # still logged in

            page.click("button:has-text('退出')")
            page.wait_for_url(f"{server}/login")
            context.add_cookies(saved)  # the cookie as it was before logout
            page.goto(f"{server}/villages")
            assert "/login" in page.url
        finally:
            browser.close()

"""Daily journeys in a real headless Chromium at 1280 px and 390 px: draft, hear, review, today, packs, phones."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_web_browser import CHROMIUM_ARGS, chromium_path, live_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
PASSWORD = "qinghe-2026"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE_PAGES = ["/today", "/campaigns", "/villages", "/villages/hexi-04", "/markets", "/markets/dazhuang-ji", "/gaps",
               "/plan?township=hexi", "/packs", "/scripts", "/scripts/fraud-seven-tools", "/scripts/new", "/users"]


def _seed(engine, loaded, workspace: Path) -> None:  # type: ignore[no-untyped-def]
    """Today's programs for two townships: hexi-04's morning failed, dazhuang-01's morning played; one pack."""
    from outreach.audio.programs import gap_clip
    from outreach.db import session
    from outreach.models import BroadcastStatus as S
    from outreach.planning.workspace import plan_days
    from outreach.records import broadcast_plans, mark_program, record_planned

    day = NOW.date()
    programs = plan_days(loaded, day - timedelta(days=1), day, village_ids=["dazhuang-01", "dazhuang-05", "hexi-04"]).programs
    with session(engine) as s:
        record_planned(s, broadcast_plans(programs), now=NOW - timedelta(days=2))
        mark_program(s, day=day, slot="morning", village_id="hexi-04", status=S("failed"),
                     at=NOW - timedelta(hours=3), error="功放没有电，播放器报错")
        mark_program(s, day=day, slot="morning", village_id="dazhuang-01", status=S("played"),
                     at=NOW - timedelta(hours=3))
    # A real (silent) MP3 as the pack file, so <audio> can decode it.
    silent = gap_clip(loaded.config, 2.0)
    root = workspace / "packs"
    rels = ["dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_0630_早间.mp3",
            "dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_1830_晚间.mp3",
            "hexi_河西乡/hexi-04_河西四村/2026-12-11_0630_早间.mp3"]
    import json
    files = []
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(silent, root / rel)
        vid = rel.split("/")[1].split("_")[0]
        files.append({"path": rel, "sha256": "0" * 64, "duration_s": 2.0, "village_id": vid,
                      "slot": "morning" if "早间" in rel else "evening", "date": "2026-12-11",
                      "start": "06:30" if "早间" in rel else "18:30"})
    (root / "manifest.json").write_text(json.dumps({"files": files}, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def site(rendered_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    from argon2 import PasswordHasher

    from outreach.config import load_config
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app
    from outreach.web.auth import USERS_FILE, UserStore

    workspace = rendered_workspace  # the pack ZIP is exported from the clips, as `outreach export` does
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'journeys.db'}")
    config = load_config(workspace)
    loaded = load(config)
    engine = open_database(loaded)
    _seed(engine, loaded, workspace)
    store = UserStore(workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for name, role in (("王秀兰", "editor"), ("李审核", "reviewer"), ("管理员", "admin")):
        store.add(name, role, PASSWORD, now=NOW)
    with live_server(create_app(config, now=lambda: NOW, engine=engine)) as url:
        yield url, workspace
        engine.dispose()


def _login(browser, server: str, name: str, width: int, **options):  # type: ignore[no-untyped-def]
    """A new browser context (`options` for it: java_script_enabled=False, say) logged in as `name`."""
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN", accept_downloads=True,
                                  **options)
    page = context.new_page()
    page.goto(f"{server}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('登录')")
    page.wait_for_url(f"{server}/today")
    return context, page


def _shot(page, name: str, width: int) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def _draft(page, server: str, title: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Fill the new-script form: `title`, `text`, the espeak engine (a preview in seconds), said once."""
    page.goto(f"{server}/scripts/new")
    page.fill("input[name=title]", title)
    page.select_option("select[name=engine]", "espeak")
    page.fill("input[name=repeat]", "1")
    page.fill("textarea[name=text]", text)


def _audio_loads(page) -> int:  # type: ignore[no-untyped-def]
    """Make every <audio> on the page load its metadata; return how many did (fails on any error)."""
    count = page.locator("audio").count()
    assert count > 0
    page.evaluate("() => document.querySelectorAll('audio').forEach(a => { a.preload = 'metadata'; a.load(); })")
    page.wait_for_function(
        "() => [...document.querySelectorAll('audio')].every(a => a.error || a.readyState >= 1)", timeout=30_000)
    bad = page.evaluate("() => [...document.querySelectorAll('audio')].filter(a => a.error).map(a => a.src)")
    assert not bad, bad
    durations = page.evaluate("() => [...document.querySelectorAll('audio')].map(a => a.duration)")
    assert all(d > 0.5 for d in durations), durations
    return count


def _fits(page, width: int) -> None:  # type: ignore[no-untyped-def]
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide at a {width} px viewport"


@pytest.mark.parametrize("width", [1280, 390])
def test_daily_journeys(chromium_path: str, site: tuple[str, Path], width: int) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    server, workspace = site
    sid = "liulan-qini-gao-dai-toukui"  # the form asks for no id: it is the title in pinyin
    path = workspace / "audio_scripts" / f"{sid}.md"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            # 今天 shows the failed slot first, with its reason, and refreshes itself.
            ctx, page = _login(browser, server, "王秀兰", width)
            first = page.locator("#slots tbody tr").first
            assert "失败" in first.inner_text() and "功放没有电" in first.inner_text()
            _shot(page, "today", width)
            _fits(page, width)
            page.evaluate("() => window.outreachRefreshToday()")
            page.wait_for_function("() => document.getElementById('refreshed').dataset.refreshed === '09:30:00'")
            assert "功放没有电" in page.locator("#slots tbody tr").first.inner_text()

            # An editor drafts a script and hears its preview.
            _draft(page, server, "浏览器拟稿：戴头盔", "村民朋友们，骑电动车要戴头盔，遇到诈骗请拨打96110。")
            page.wait_for_function("() => document.querySelector('#spoken mark')?.textContent === '九六幺幺零'")
            # 试听 saves the draft and returns to the script's page, which shows the preview once made (issue 18).
            page.click("button:has-text('试听')")
            page.wait_for_url(f"{server}/scripts/{sid}#preview")
            page.wait_for_selector("#preview-audio", timeout=60_000)  # the page reloads itself until then
            _audio_loads(page)
            _shot(page, "draft", width)
            _fits(page, width)
            assert "status: draft" in path.read_text("utf-8")
            # The same person cannot approve their own script.
            assert page.locator("form[action$='/approve']").count() == 0
            assert "不能由您自己审核" in page.locator("#review").inner_text()
            ctx.close()

            # A reviewer hears it and approves it.
            ctx, page = _login(browser, server, "李审核", width)
            page.goto(f"{server}/scripts/{sid}")
            _audio_loads(page)
            page.click("button:has-text('签发播出')")
            page.wait_for_url(f"{server}/scripts/{sid}")
            assert page.locator("#status").inner_text() == "已批准"
            assert "approved_by: 李审核" in path.read_text("utf-8")
            _shot(page, "review", width)
            _fits(page, width)
            ctx.close()

            # An edit voids the approval; the trail keeps the diff.
            ctx, page = _login(browser, server, "王秀兰", width)
            page.goto(f"{server}/scripts/{sid}/edit")
            page.fill("textarea[name=text]", "村民朋友们，骑电动车一定要戴头盔，遇到诈骗请拨打96110。")
            page.click("button:has-text('保存草稿')")
            page.wait_for_url(f"{server}/scripts/{sid}")
            assert page.locator("#status").inner_text() == "草稿"
            assert "status: draft" in path.read_text("utf-8")
            trail = page.locator("#trail").inner_text()
            assert all(word in trail for word in ("拟稿", "试听", "签发", "修改"))

            # Packs: grouped, audio plays, a township ZIP is the exported pack of its villages.
            page.goto(f"{server}/packs")
            assert _audio_loads(page) == 3
            _fits(page, width)
            _shot(page, "packs", width)
            with page.expect_download() as info:
                page.click("a[href='/packs/zip?township=dazhuang']")
            assert info.value.suggested_filename == "大庄镇_12月11日.zip"
            data = Path(info.value.path()).read_bytes()
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
            folder = "dazhuang_大庄镇/dazhuang-05_李家洼村"
            assert names == [f"{folder}/2026-12-11_0630_早间.mp3", f"{folder}/2026-12-11_1830_晚间.mp3",
                             f"{folder}/playlist.m3u", f"{folder}/扫码确认.html", f"{folder}/播放说明.txt",
                             "manifest.json", "扫码确认单.html"]  # no public_url: the page says how to get a QR code
            ctx.close()

            # Every page fits a phone (and the desktop) without sideways scrolling.
            ctx, page = _login(browser, server, "管理员", width)
            for target in PHONE_PAGES:
                page.goto(f"{server}{target}")
                assert page.locator("h1").count() == 1, target
                _fits(page, width)
            if width == 390:
                page.goto(f"{server}/villages/hexi-04")
                _shot(page, "village", width)
            ctx.close()
        finally:
            browser.close()
    assert (SHOTS / f"today-{width}.png").stat().st_size > 10_000


def test_the_script_page_reloads_itself_until_a_slow_preview_is_there(chromium_path: str, site: tuple[str, Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A preview slower than 试听's short wait (the neural voice takes about 11 s, more on a busy server): the
    page says it is being made and reloads itself, in a real browser, until the player is there."""
    import time

    from playwright.sync_api import sync_playwright

    from outreach.authoring import review
    from outreach.web import review_pages

    real = review.render_preview

    def slow(config, script):  # type: ignore[no-untyped-def]
        time.sleep(5)
        return real(config, script)

    monkeypatch.setattr(review, "render_preview", slow)
    monkeypatch.setattr(review_pages, "PREVIEW_WAIT_S", 0.05)
    server, _ = site
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            _, page = _login(browser, server, "王秀兰", 390)
            _draft(page, server, "慢试听", "村民朋友们，骑电动车要戴头盔。")
            page.click("button:has-text('试听')")
            page.wait_for_selector("#preview-progress")
            page.wait_for_selector("#preview-audio", timeout=45_000)
            assert "?wait=" in page.url and not page.locator("#preview-progress").count()
        finally:
            browser.close()

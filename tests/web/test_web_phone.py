"""Every role's main pages on a phone (390 px) and a desk (1280 px): the header's height, the page's height,
no sideways scrolling, no English prose; the phone menu without JavaScript; what 今天, the plan, the calendar
and the village pages fold away.

One Chromium and one uvicorn server for the module, one logged-in browser context per role."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import copy_workspace
from test_cli_language import ENGLISH_RUN, prose
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, _unavailable, chromium_path, live_server  # noqa: F401
from test_web_journeys import _login

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
PASSWORD = "qinghe-2026"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
ROLES = {"admin": "管理员", "editor": "王秀兰", "reviewer": "李审核", "viewer": "赵查看"}
EXTRA_PAGES = ["/villages/hexi-04"]
"""Measured besides every page in the role's menu (read from the header, so a page added there is measured too)."""

HEADER_MAX = {390: 120, 1280: 100}
"""The header's height limit. 390 px: the issue's 120 px of an 844 px screen (one row: the name and the menu
button, 2.75rem tall for a thumb; two rows if a wide font pushes the button down). 1280 px: the bar holds
brand, every link and the user on one or two rows of ~40 px; a third row means the links have outgrown it."""

SCREEN = 750
FOLDED = {"/today", "/plan", "/calendar", "/villages", "/villages/hexi-04"}
PHONE_MAX, FOLDED_MAX, DESK_MAX = 10 * SCREEN, 5 * SCREEN, 4000
"""A page's height limit. A phone shows ~750 px of page a screen. The pages that fold (今天, the plan, the
calendar, the villages and a village) must stay within five screens: with problems open and the rest one
line each, a county of about 30 villages in 3 townships needs two to four (the plan was 62,000 px and 今天
14,600 px before folding). Lists that do not fold yet (campaigns, records, scripts) within ten. A desk shows
~800 px and the same pages are tables, not cards: five screens."""


def page_limit(path: str, width: int) -> int:
    if width != 390:
        return DESK_MAX
    return FOLDED_MAX if path in FOLDED else PHONE_MAX


ID_WORD = re.compile(r"\b[a-z0-9]+(?:[-_][a-z0-9]+)+\b")


def english_prose(text: str) -> list[str]:
    """Runs of three or more English words in `text`, ids (dazhuang-05, fraud-96110) aside: the CLI's rule."""
    return ENGLISH_RUN.findall(prose(ID_WORD.sub(" ", text)))


def test_english_prose_finds_sentences_not_ids() -> None:
    assert english_prose("Internal Server Error") == ["Internal Server Error"]
    assert english_prose("广播稿 fraud-three-no-one-more 已批准；村 dazhuang-05、hexi-04") == []


# --- the site ------------------------------------------------------------------------------------------


def _seed(engine: Any, loaded: Any) -> None:
    """A county in use: Dec 4-10 planned for every village; networked and station villages played, USB
    villages exported (some confirmed); a few misses; today's morning: hexi-01 failed, lishu-02 missed."""
    from outreach.db import session
    from outreach.models import BroadcastStatus as S
    from outreach.models import Evidence
    from outreach.planning.workspace import plan_days
    from outreach.records import broadcast_plans, mark_program, record_planned

    programs = plan_days(loaded, date(2026, 12, 4), NOW.date()).programs
    usb = {v.id for v in loaded.registry.villages.values() if v.speaker == "offline"}
    missed = {("dazhuang-03", date(2026, 12, 4), "evening"), ("lishu-02", NOW.date(), "morning"),
              ("hexi-02", date(2026, 12, 7), "morning")}
    with session(engine) as s:
        record_planned(s, broadcast_plans(programs), now=datetime(2026, 11, 30, tzinfo=TZ))
        for p in programs:
            if p.start > NOW:
                continue
            at, key = p.start + timedelta(minutes=1), (p.village_id, p.date, p.slot)
            if (p.village_id, p.date, p.slot) == ("hexi-01", NOW.date(), "morning"):
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("failed"), at=at,
                             error="功放没有电，播放器报错")
            elif key in missed:
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("missed"), at=at)
            elif p.village_id in usb:
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("exported"),
                             at=p.start - timedelta(days=1), evidence=Evidence.EXPORTED)
                if p.date.day % 3 == 0:
                    mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("confirmed"),
                                 at=at + timedelta(hours=2), confirmed_by="村支书", entered_by="王秀兰",
                                 evidence=Evidence.CONFIRMED, aired_at=p.start)
            else:
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("played"), at=at,
                             evidence=Evidence.PLAYER, aired_at=p.start)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from argon2 import PasswordHasher

    from outreach.config import load_config
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app
    from outreach.web.auth import USERS_FILE, UserStore

    root = tmp_path_factory.mktemp("phone")
    workspace = copy_workspace(root / "ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite:///{root / 'phone.db'}")
        config = load_config(workspace)
        loaded = load(config)
        engine = open_database(loaded)
        _seed(engine, loaded)
        store = UserStore(workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        for role, name in ROLES.items():
            store.add(name, role, PASSWORD, now=NOW)
        with live_server(create_app(config, now=lambda: NOW, engine=engine)) as url:
            yield url
        engine.dispose()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    """One Chromium for the module (test_web_browser's `chromium_path` checks the rest: Playwright, fonts)."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        _unavailable(f"Debian's chromium is not installed ({CHROMIUM} is missing)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def sessions(browser: Any, server: str) -> Iterator[dict[str, Any]]:
    """One logged-in page per role, kept for the module."""
    pages = {role: _login(browser, server, name, 390)[1] for role, name in ROLES.items()}
    yield pages
    for page in pages.values():
        page.context.close()


# --- measuring -----------------------------------------------------------------------------------------


@dataclass
class Measure:
    role: str
    page: str
    width: int
    header: float
    height: int
    wide: int
    nav_shown: bool
    button_shown: bool
    broken_links: list[str]
    english: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.header > HEADER_MAX[self.width]:
            out.append(f"header {self.header:.0f} px > {HEADER_MAX[self.width]}")
        if self.height > page_limit(self.page, self.width):
            out.append(f"page {self.height} px > {page_limit(self.page, self.width)}")
        if self.wide > self.width:
            out.append(f"{self.wide} px wide")
        if self.english:
            out.append(f"English prose {self.english[:3]}")
        if self.broken_links:
            out.append(f"nav labels broken over lines {self.broken_links}")
        phone = self.width == 390
        if self.nav_shown == phone or self.button_shown != phone:
            out.append("the nav must fold into the menu button on a phone and show in full on a desk")
        return out


MEASURE_JS = """() => {
  const shown = el => !!el && el.offsetParent !== null;
  const header = document.querySelector('header.top');
  const broken = [...document.querySelectorAll('header.top nav a')].filter(shown)
    .filter(a => { const r = document.createRange(); r.selectNodeContents(a); return r.getClientRects().length > 1; })
    .map(a => a.textContent.trim());
  return {header: header ? header.getBoundingClientRect().height : 0,
          height: document.documentElement.scrollHeight, wide: document.documentElement.scrollWidth, broken,
          nav: shown(document.querySelector('header.top nav')), button: shown(document.querySelector('.menu-button'))};
}"""
TEXT_JS = """() => document.body.innerText + '\\n' +
  [...document.querySelectorAll('details:not([open])')].map(d => d.textContent).join('\\n')"""
"""The page's text, and what its closed folds hold (opening them all would lay out the whole plan)."""
WIDTHS = {390: 844, 1280: 900}
WIDE_FONT_JS = """() => document.querySelectorAll('header.top, header.top *').forEach(el => {
  el.style.setProperty('font-family', "'WenQuanYi Zen Hei Mono', monospace", 'important');
  el.style.setProperty('letter-spacing', '.35em', 'important');
})"""
"""Another CJK font, and a wide one (set through the CSSOM: the CSP refuses inline styles): the header must
hold whatever font the phone has."""


def figures(page: Any, role: str, name: str, width: int) -> Measure:
    m = page.evaluate(MEASURE_JS)
    return Measure(role, name, width, m["header"], m["height"], m["wide"], m["nav"], m["button"], m["broken"])


def measure(page: Any, role: str, name: str, shots: bool) -> list[Measure]:
    """The page at each width (one load: the server's work is the same), then its text, folds and all."""
    out = []
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        if shots:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"phone-{shot_name(name)}-{width}.png"), full_page=width == 390)
        out.append(figures(page, role, name, width))
    out[0].english = english_prose(page.evaluate(TEXT_JS))
    page.set_viewport_size({"width": 390, "height": WIDTHS[390]})
    return out


def check_menu(page: Any, role: str) -> list[str]:
    """On a phone: the menu opens with every link of the role on whole lines, the user and 退出 below,
    and closes again; with a wide font the closed header stays under its limit."""
    failures = []
    page.click(".menu-button")
    opened = figures(page, role, "menu", 390)
    labels = [t.strip() for t in page.locator("header.top nav a").all_inner_texts()]
    if not opened.nav_shown or not page.locator("form.who button").is_visible():
        failures.append("the menu button does not show the links, the user and 退出")
    if ("用户" in labels) != (role == "admin") or "今天" not in labels:
        failures.append(f"the menu's links are wrong for {role}: {labels}")
    if opened.broken_links or opened.header > WIDTHS[390] / 2:
        failures.append(f"the open menu is {opened.header:.0f} px tall, labels broken: {opened.broken_links}")
    if role == "editor":
        page.screenshot(path=str(SHOTS / "phone-menu-open-390.png"))
    page.click(".menu-button")
    if page.locator("header.top nav").is_visible():
        failures.append("the menu does not close")
    page.evaluate(WIDE_FONT_JS)
    wide = figures(page, role, "wide-font", 390)
    if wide.header > HEADER_MAX[390] or wide.wide > 390:
        failures.append(f"with a wide font the header is {wide.header:.0f} px tall and the page {wide.wide} px wide")
    return failures


def report(rows: list[Measure]) -> str:
    return "\n".join(f"{r.role:8} {r.page:18} {r.width:4} header {r.header:5.0f}  page {r.height:6}" for r in rows)


def shot_name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "home"


@pytest.mark.browser
@pytest.mark.parametrize("role", list(ROLES))
def test_every_main_page_fits_a_phone_and_a_desk(chromium_path: str, server: str,  # noqa: F811
                                                 sessions: dict[str, Any], role: str) -> None:
    page = sessions[role]
    page.goto(f"{server}/today", wait_until="load")
    menu = [a.get_attribute("href") for a in page.locator("header.top nav a").all()]
    assert "/today" in menu and ("/users" in menu) == (role == "admin"), menu
    failures = [f"{role} menu: {f}" for f in check_menu(page, role)]
    rows: list[Measure] = []
    for path in [*menu, *EXTRA_PAGES]:
        response = page.goto(f"{server}{path}", wait_until="load")
        if response is None or response.status != 200:
            status = response.status if response else "no answer"
            failures.append(f"{role} {path}: {status} (a menu link the role may not open?)")
            continue
        rows += measure(page, role, path, shots=role == "editor")
    failures += [f"{r.role} {r.page} at {r.width} px: {p}" for r in rows for p in r.problems()]
    print("\n" + report(rows))
    assert not failures, "\n".join(failures) + "\n\n" + report(rows)


@pytest.mark.browser
def test_the_menu_and_the_folds_work_without_javascript(chromium_path: str, browser: Any,  # noqa: F811
                                                       server: str) -> None:
    context, page = _login(browser, server, ROLES["viewer"], 390, java_script_enabled=False)
    try:
        nav = page.locator("header.top nav")
        assert not nav.is_visible()
        page.click(".menu-button")
        assert nav.is_visible() and page.locator("form.who button").is_visible()
        page.click("nav a:has-text('本周安排')")
        page.wait_for_url(f"{server}/plan")
        assert not nav.is_visible() and "本周安排" in page.locator(".menu-button").inner_text()
        table = page.locator("details[data-key=hexi] table").first
        assert not table.is_visible()
        page.click("details[data-key=hexi] > summary")
        page.click("details[data-key=hexi] details[data-key='2026-12-10'] > summary")
        assert table.is_visible() and "河西村" in table.inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "phone-plan-open-390.png"), full_page=True)
    finally:
        context.close()

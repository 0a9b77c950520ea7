"""The web dashboard through FastAPI's TestClient: login, access control, CSRF, roles, rate limit, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from outreach.config import load_config
from outreach.db import make_engine, session
from outreach.models import Broadcast, BroadcastStatus, Handout
from outreach.planning.workspace import load, open_database, plan_days
from outreach.records import broadcast_plans, mark_program, record_handout, record_planned
from outreach.records.limits import MAX_LEAFLETS
from outreach.web import create_app
from outreach.web.auth import SECRET_FILE, USERS_FILE, LoginLimiter, Refusal, UserStore

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
PASSWORD = "qinghe-2026"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
S = BroadcastStatus
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clock:
    """A settable clock for the app (`now` is injected)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    workspace: Path
    engine: sa.Engine
    clock: Clock
    app: object

    def client(self) -> TestClient:
        return TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]


def _seed(engine: sa.Engine, loaded) -> None:  # type: ignore[no-untyped-def]
    """Plan Dec 1-9 for a few villages and give them outcomes; add one handout."""
    villages = ["dazhuang-01", "dazhuang-05", "hexi-04"]
    programs = plan_days(loaded, date(2026, 12, 1), date(2026, 12, 9), village_ids=villages).programs
    at = datetime(2026, 12, 1, tzinfo=TZ)
    with session(engine) as s:
        record_planned(s, broadcast_plans(programs), now=at)
        for p in programs:
            when = p.start + timedelta(minutes=1)
            if p.village_id == "dazhuang-01":
                missed = p.date == date(2026, 12, 5) and p.slot == "evening"
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id,
                             status=S("missed") if missed else S("played"), at=when)
            elif p.village_id == "dazhuang-05" and p.date >= date(2026, 12, 8):
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=S("exported"), at=when)
        record_handout(s, market_id="dazhuang-ji", day=date(2026, 12, 3), leaflets=120, people=85,
                       topics=["traffic"], staff="李警官", note="", now=datetime(2026, 12, 3, 18, 0, tzinfo=TZ))


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """A migrated SQLite file with the sample registry and seeded rows, built once and copied per test."""
    path = tmp_path_factory.mktemp("webdb") / "seeded.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite:///{path}")
        loaded = load(load_config(repo_root))
        engine = open_database(loaded)
        _seed(engine, loaded)
        engine.dispose()  # checkpoints the WAL into the file
    return path


@pytest.fixture
def site(workspace: Path, tmp_path: Path, seeded_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    db = tmp_path / "web.db"
    shutil.copy2(seeded_db, db)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    config = load_config(workspace)
    engine = make_engine(config.resolved_database_url())
    store = UserStore(workspace / USERS_FILE, FAST_HASHER)
    store.add("wang", "editor", PASSWORD, now=NOW)
    store.add("zhao", "viewer", PASSWORD, now=NOW)
    clock = Clock(NOW)
    yield Site(workspace, engine, clock, create_app(config, now=clock, engine=engine))
    engine.dispose()


def token(client: TestClient, path: str = "/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    found = CSRF.search(response.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: TestClient, name: str = "wang", password: str = PASSWORD, next_: str = "/") -> httpx.Response:
    return client.post("/login", data={"csrf_token": token(client), "name": name, "password": password,
                                       "next": next_})


@pytest.fixture
def editor(site: Site) -> TestClient:
    client = site.client()
    assert login(client).status_code == 303
    return client


@pytest.fixture
def viewer(site: Site) -> TestClient:
    client = site.client()
    assert login(client, "zhao").status_code == 303
    return client


def rows(engine: sa.Engine, model, *where) -> list:  # type: ignore[no-untyped-def]
    with session(engine) as s:
        return list(s.scalars(sa.select(model).where(*where)))


def write_pack(workspace: Path) -> Path:
    root = workspace / "packs"
    rel = "dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_morning.mp3"
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes(b"ID3" + b"\x00" * 2000)
    (workspace / "secret.txt").write_text("top secret", encoding="utf-8")
    manifest = {"files": [
        {"path": rel, "sha256": "0" * 64, "duration_s": 95.0, "village_id": "dazhuang-05", "slot": "morning",
         "date": "2026-12-11"},
        # A tampered entry must still not escape the pack folder.
        {"path": "../secret.txt", "sha256": "0" * 64, "duration_s": 1.0, "village_id": "x", "slot": "morning",
         "date": "2026-12-11"},
    ]}
    (root / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return root / rel


PAGES = [
    "/", "/campaigns", "/campaigns/winter-traffic", "/villages", "/villages/dazhuang-01", "/markets",
    "/markets/dazhuang-ji", "/gaps", "/gaps?campaign=winter-traffic&days=3", "/plan", "/packs", "/scripts",
    "/today", "/scripts/fraud-seven-tools", "/plan?township=hexi",
]
DOWNLOAD = "/packs/files/dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_morning.mp3"


# --- login -----------------------------------------------------------------------------


def test_login_page_is_chinese_and_sets_no_data(site: Site) -> None:
    response = site.client().get("/login")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text and "登录" in response.text and "用户名" in response.text
    assert "大庄村" not in response.text


def test_login_success_goes_to_next_and_shows_the_user(site: Site) -> None:
    client = site.client()
    response = login(client, next_="/villages")
    assert response.status_code == 303 and response.headers["location"] == "/villages"
    page = client.get("/villages")
    assert page.status_code == 200 and "大庄村" in page.text and "wang（编辑员）" in page.text


@pytest.mark.parametrize("name,password", [("wang", "wrong-password"), ("nobody", PASSWORD), ("", ""),
                                           ("wang", "")], ids=["wrong-password", "unknown-user", "empty", "no-pw"])
def test_login_failure_is_401_in_chinese(site: Site, name: str, password: str) -> None:
    client = site.client()
    response = login(client, name, password)
    assert response.status_code == 401
    assert "用户名或密码不对" in response.text
    assert client.get("/campaigns").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(site: Site, target: str) -> None:
    response = login(site.client(), next_=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_login_page_says_how_to_create_the_first_user(site: Site) -> None:
    (site.workspace / USERS_FILE).unlink()
    response = site.client().get("/login")
    assert "outreach user add" in response.text


def test_logout_needs_csrf_and_ends_the_session(editor: TestClient) -> None:
    assert editor.post("/logout", data={}).status_code == 403
    assert editor.get("/villages").status_code == 200
    response = editor.post("/logout", data={"csrf_token": token(editor, "/villages")})
    assert response.status_code == 303
    assert editor.get("/villages").status_code == 303


def test_removed_user_loses_access_at_once(site: Site, editor: TestClient) -> None:
    UserStore(site.workspace / USERS_FILE).remove("wang")
    response = editor.get("/villages")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_changed_password_ends_old_sessions(site: Site, editor: TestClient) -> None:
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    store.remove("wang")
    store.add("wang", "editor", "another-pass-1", now=NOW)
    assert editor.get("/villages").status_code == 303


# --- access control ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, DOWNLOAD, "/packs/files/../../etc/passwd"])
def test_logged_out_get_redirects_to_login(site: Site, path: str) -> None:
    write_pack(site.workspace)
    response = site.client().get(path)
    if ".." in path:  # normalised away by the client: no such page
        assert response.status_code == 404
    else:
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert "大庄" not in response.text and "ID3" not in response.text


@pytest.mark.parametrize("path", ["/villages/dazhuang-01/confirm", "/markets/dazhuang-ji/handouts",
                                  "/scripts/fraud-seven-tools/approve"])
def test_logged_out_post_is_401(site: Site, path: str) -> None:
    client = site.client()
    response = client.post(path, data={"csrf_token": token(client)})
    assert response.status_code == 401 and "请先登录" in response.text


def test_every_page_renders_for_a_viewer(viewer: TestClient) -> None:
    for path in PAGES:
        response = viewer.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert '<html lang="zh-CN">' in response.text


def test_pages_send_security_headers_and_a_safe_cookie(site: Site) -> None:
    client = site.client()
    cookie = login(client).headers["set-cookie"].lower()
    assert "outreach_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    response = client.get("/campaigns")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


# --- CSRF ---------------------------------------------------------------------------------


def test_login_without_csrf_is_403(site: Site) -> None:
    client = site.client()
    client.get("/login")
    response = client.post("/login", data={"name": "wang", "password": PASSWORD})
    assert response.status_code == 403 and "安全校验码" in response.text
    assert client.get("/campaigns").status_code == 303


@pytest.mark.parametrize("bad", [None, "", "forged-token"], ids=["missing", "empty", "forged"])
def test_editor_post_without_valid_csrf_is_403(site: Site, editor: TestClient, bad: str | None) -> None:
    form = {"date": "2026-12-09", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王"}
    if bad is not None:
        form["csrf_token"] = bad
    response = editor.post("/markets/dazhuang-ji/handouts", data=form)
    assert response.status_code == 403 and "表单已失效" in response.text
    assert len(rows(site.engine, Handout)) == 1


def test_csrf_token_of_another_session_is_rejected(site: Site, editor: TestClient) -> None:
    other = site.client()
    stolen = token(other)
    response = editor.post("/scripts/fraud-seven-tools/approve", data={"csrf_token": stolen})
    assert response.status_code == 403
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")


def test_login_rotates_the_csrf_token(site: Site) -> None:
    client = site.client()
    before = token(client)
    login(client)
    assert token(client, "/scripts") != before


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("path,form", [
    ("/villages/dazhuang-05/confirm", {"date": "2026-12-08", "slot": "morning"}),
    ("/markets/dazhuang-ji/handouts", {"date": "2026-12-09", "leaflets": "10", "people": "5", "topics": "traffic",
                                       "staff": "赵"}),
    ("/scripts/fraud-seven-tools/approve", {}),
], ids=["confirm", "handout", "approve"])
def test_viewer_cannot_do_editor_actions(site: Site, viewer: TestClient, path: str, form: dict[str, str]) -> None:
    response = viewer.post(path, data={**form, "csrf_token": token(viewer, "/campaigns")})
    assert response.status_code == 403 and "查看员" in response.text
    assert len(rows(site.engine, Handout)) == 1
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")


def test_viewer_sees_no_editor_buttons(viewer: TestClient) -> None:
    assert 'action="/villages/dazhuang-05/confirm"' not in viewer.get("/villages/dazhuang-05").text
    assert 'action="/markets/dazhuang-ji/handouts"' not in viewer.get("/markets/dazhuang-ji").text
    assert "/approve" not in viewer.get("/scripts").text


# --- editor actions ------------------------------------------------------------------------------


def test_editor_confirms_an_exported_program(site: Site, editor: TestClient) -> None:
    page = editor.get("/villages/dazhuang-05")
    assert "确认已播" in page.text and "已导出" in page.text
    response = editor.post("/villages/dazhuang-05/confirm",
                           data={"csrf_token": token(editor, "/villages/dazhuang-05"), "date": "2026-12-08",
                                 "slot": "morning"})
    assert response.status_code == 303
    done = rows(site.engine, Broadcast, Broadcast.village_id == "dazhuang-05", Broadcast.date == date(2026, 12, 8),
                Broadcast.slot == "morning")
    assert done and all(b.status == S("confirmed") and b.confirmed_by == "wang" for b in done)
    assert all(b.confirmed_at == NOW for b in done)
    assert "已确认" in editor.get("/villages/dazhuang-05").text


def test_confirming_a_program_that_has_not_started_is_refused(site: Site, editor: TestClient) -> None:
    """The dashboard follows the CLI's rule: a USB program cannot be confirmed before its slot starts."""
    loaded = load(load_config(site.workspace))
    day = date(2026, 12, 11)  # NOW is 12-10 09:30: tomorrow's pack is on the stick, not yet on air
    with session(site.engine) as s:
        programs = [p for p in plan_days(loaded, day, day, village_ids=["dazhuang-05"]).programs
                    if p.slot == "morning"]
        record_planned(s, broadcast_plans(programs), now=NOW)
        mark_program(s, day=day, slot="morning", village_id="dazhuang-05", status=S("exported"), at=NOW)
    response = editor.post("/villages/dazhuang-05/confirm",
                           data={"csrf_token": token(editor, "/villages/dazhuang-05"), "date": day.isoformat(),
                                 "slot": "morning"}, follow_redirects=True)
    assert response.status_code == 200 and "没有确认" in response.text and "2026-12-11 06:30" in response.text
    found = rows(site.engine, Broadcast, Broadcast.village_id == "dazhuang-05", Broadcast.date == day)
    assert found and all(b.status == S("exported") for b in found)


def test_confirming_a_planned_program_changes_nothing(site: Site, editor: TestClient) -> None:
    response = editor.post("/villages/hexi-04/confirm", data={"csrf_token": token(editor, "/villages"),
                                                               "date": "2026-12-02", "slot": "evening"},
                           follow_redirects=True)
    assert response.status_code == 200 and "没有确认" in response.text
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))


def test_editor_logs_a_handout(site: Site, editor: TestClient) -> None:
    response = editor.post("/markets/dazhuang-ji/handouts", data={
        "csrf_token": token(editor, "/markets/dazhuang-ji"), "date": "2026-12-08", "leaflets": "300",
        "people": "210", "topics": ["traffic", "anti_fraud"], "staff": "王秀兰", "note": "人多，三轮车多"})
    assert response.status_code == 303
    new = rows(site.engine, Handout, Handout.date == date(2026, 12, 8))
    assert [(h.leaflets, h.people, h.topics, h.staff) for h in new] == [(300, 210, "traffic,anti_fraud", "王秀兰")]
    page = editor.get("/markets/dazhuang-ji")
    assert "已登记" in page.text and "人多，三轮车多" in page.text and "反诈骗" in page.text


@pytest.mark.parametrize("change,message", [
    ({"leaflets": "many"}, "不是整数"),
    ({"leaflets": "-5"}, "超出了范围"),
    ({"people": "99999999"}, "超出了范围"),
    ({"date": "2026-02-30"}, "不是有效的日期"),
    ({"date": ""}, "没有填写"),
    ({"date": "2026-12-11"}, "之后"),
    ({"topics": "weather"}, "宣传主题"),
    ({"topics": []}, "宣传主题"),
    ({"staff": "  "}, "发放人员"),
    ({"note": "长" * 501}, "太长"),
    ({"leaflets": str(MAX_LEAFLETS + 1)}, "超出了范围"),
    ({"people": "2000000000"}, "超出了范围"),
    ({"date": "0001-01-01"}, "超出了能处理的日期范围"),
    ({"date": "1999-12-31"}, "超出了能处理的日期范围"),
    ({"staff": "王\n秀兰"}, "换行"),
], ids=["text-count", "negative", "huge", "bad-date", "no-date", "future", "bad-topic", "no-topic", "no-staff",
        "long-note", "over-cap", "two-billion", "year-1", "before-2000", "newline"])
def test_bad_handout_is_400_with_the_fix_and_keeps_the_form(site: Site, editor: TestClient,
                                                           change: dict[str, object], message: str) -> None:
    form: dict[str, object] = {"date": "2026-12-08", "leaflets": "30", "people": "20", "topics": "traffic",
                               "staff": "王秀兰", "note": "备注甲", **change}
    response = editor.post("/markets/dazhuang-ji/handouts",
                           data={**form, "csrf_token": token(editor, "/markets/dazhuang-ji")})
    assert response.status_code == 400
    assert message in response.text
    assert 'value="王秀兰"' in response.text or "staff" in change
    assert len(rows(site.engine, Handout)) == 1


def test_duplicate_handout_is_refused(site: Site, editor: TestClient) -> None:
    form = {"date": "2026-12-03", "leaflets": "120", "people": "85", "topics": "traffic", "staff": "李警官",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form)
    assert response.status_code == 400 and "已经登记过了" in response.text
    assert len(rows(site.engine, Handout)) == 1


def test_an_editor_cannot_approve(site: Site, editor: TestClient) -> None:
    response = editor.post("/scripts/fraud-seven-tools/approve", data={"csrf_token": token(editor, "/scripts")})
    assert response.status_code == 403 and "审核员" in response.text
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")


def client_as(site: Site, name: str, role: str) -> TestClient:
    UserStore(site.workspace / USERS_FILE, FAST_HASHER).add(name, role, PASSWORD, now=NOW)
    client = site.client()
    assert login(client, name).status_code == 303
    return client


def _form(client: TestClient, path: str) -> dict[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.text[-300:]
    fields = dict(re.findall(r'<input name="(\w+)" value="([^"]*)"', page.text))
    base = re.search(r'<textarea name="base" hidden>(.*?)</textarea>', page.text, re.S)
    text = re.search(r'<textarea name="text"[^>]*>(.*?)</textarea>', page.text, re.S)
    import html
    out = {**fields, "csrf_token": CSRF.search(page.text).group(1), "topic": "traffic", "engine": "espeak",
           "text": html.unescape(text.group(1)) if text else ""}
    if base:
        out["base"] = html.unescape(base.group(1))
    return out


DRAFT = {"id": "traffic-test-draft", "title": "测试：戴好头盔", "topic": "traffic", "engine": "espeak", "voice": "",
         "rate": "4", "repeat": "1", "priority": "5", "valid_from": "", "valid_until": "",
         "text": "村民朋友们，骑电动车一定要戴好头盔，有事请拨打110。"}


def test_draft_preview_review_approve_and_an_edit_voids_it(site: Site, editor: TestClient) -> None:
    from outreach.audio.render import verified_clip
    from outreach.content.scripts import load_library
    from outreach.errors import DeliveryError
    from outreach.models import ScriptEvent

    csrf = token(editor, "/scripts/new")
    bad = editor.post("/scripts/save", data={**DRAFT, "repeat": "9", "text": "ab#", "csrf_token": csrf})
    assert bad.status_code == 400
    assert re.search(r'class="field-error" data-field="repeat">[^<]*9 超出范围；请用 1 到 5 的整数', bad.text)
    assert 'data-field="text"' in bad.text
    path = site.workspace / "audio_scripts" / "traffic-test-draft.md"
    assert not path.exists()

    listen = editor.post("/scripts/save", data={**DRAFT, "action": "preview", "csrf_token": csrf})
    assert listen.status_code == 200 and "只供试听" in listen.text and not path.exists()
    src = re.search(r'src="(/audio/previews/[^"]+)"', listen.text).group(1)
    audio = editor.get(src)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg" and len(audio.content) > 5000

    saved = editor.post("/scripts/save", data={**DRAFT, "action": "save", "csrf_token": csrf})
    assert saved.status_code == 303 and saved.headers["location"] == "/scripts/traffic-test-draft"
    assert "status: draft" in path.read_text("utf-8")
    config = load_config(site.workspace)
    script = next(s for s in load_library(config.scripts_dir, max_chars=400) if s.id == "traffic-test-draft")
    with pytest.raises(DeliveryError):  # a preview is never the clip that airs
        verified_clip(config, script)

    page = editor.get("/scripts/traffic-test-draft").text
    assert "<mark>幺幺零</mark>" in page and "拟稿" in page

    # The same person cannot approve their own script, even as a reviewer.
    own = editor.post("/scripts/traffic-test-draft/approve", data={"csrf_token": token(editor, "/scripts")})
    assert own.status_code == 403
    reviewer = client_as(site, "li", "reviewer")
    page = reviewer.get("/scripts/traffic-test-draft").text
    assert "/approve" in page  # the editor's preview of this very version can be heard
    csrf_r = CSRF.search(page).group(1)
    assert reviewer.post("/scripts/traffic-test-draft/preview", data={"csrf_token": csrf_r}).status_code == 303
    page = reviewer.get("/scripts/traffic-test-draft").text
    heard = re.search(r'name="heard" value="([0-9a-f]{64})"', page).group(1)
    version = re.search(r'name="version" value="([0-9a-f]{16})"', page).group(1)  # the version the page showed
    assert reviewer.get(f"/audio/previews/traffic-test-draft/{heard}").status_code == 200
    wrong = reviewer.post("/scripts/traffic-test-draft/approve",
                          data={"csrf_token": csrf_r, "heard": "0" * 64, "version": version})
    assert wrong.status_code == 403 and "试听" in wrong.text
    ok = reviewer.post("/scripts/traffic-test-draft/approve",
                       data={"csrf_token": csrf_r, "heard": heard, "version": version})
    assert ok.status_code == 303
    text = path.read_text("utf-8")
    assert "status: approved" in text and "approved_by: li" in text and "approved_on: 2026-12-10" in text
    events = rows(site.engine, ScriptEvent, ScriptEvent.script_id == "traffic-test-draft")
    approved = [e for e in events if e.action == "approved"]
    assert len(approved) == 1 and approved[0].actor == "li" and approved[0].audio_sha256 == heard
    assert approved[0].content_hash == re.search(r"approval_hash: (\w+)", text).group(1)

    # An edit in the browser voids the approval and is kept with its diff.
    form = _form(editor, "/scripts/traffic-test-draft/edit")
    form["text"] = form["text"].replace("戴好头盔", "戴好安全头盔")
    assert editor.post("/scripts/save", data={**form, "action": "save"}).status_code == 303
    # It stays a draft that keeps the record of the voided approval ("draft after edit": planned, never aired).
    assert "status: draft\napproved_by: li\napproved_on: 2026-12-10\napproval_hash: " in path.read_text("utf-8")
    edited = [e for e in rows(site.engine, ScriptEvent, ScriptEvent.script_id == "traffic-test-draft")
              if e.action == "edited"]
    assert len(edited) == 1 and "+村民朋友们，骑电动车一定要戴好安全头盔" in edited[0].detail
    page = reviewer.get("/scripts/traffic-test-draft").text
    assert "草稿" in page and "修改" in page and "签发" in page

    # A reviewer who last edited it cannot approve it either.
    form = _form(reviewer, "/scripts/traffic-test-draft/edit")
    form["text"] = form["text"].replace("一定要", "务必")
    assert reviewer.post("/scripts/save", data={**form, "action": "save"}).status_code == 303
    csrf_r = token(reviewer, "/scripts/traffic-test-draft")
    reviewer.post("/scripts/traffic-test-draft/preview", data={"csrf_token": csrf_r})
    heard = [e for e in rows(site.engine, ScriptEvent, ScriptEvent.action == "previewed")][-1].audio_sha256
    own = reviewer.post("/scripts/traffic-test-draft/approve",
                        data={"csrf_token": csrf_r, "heard": heard, "version": version})
    assert own.status_code == 403 and "不能由您自己签发" in own.text
    assert "status: draft" in path.read_text("utf-8")


def test_a_stale_form_is_refused_and_shows_the_difference(site: Site, editor: TestClient) -> None:
    path = site.workspace / "audio_scripts" / "fraud-seven-tools.md"
    form = _form(editor, "/scripts/fraud-seven-tools/edit")
    before = path.read_text("utf-8")
    path.write_text(before.replace("priority:", "# changed on the server\npriority:"), "utf-8")
    form["title"] = "改过的标题"
    response = editor.post("/scripts/save", data={**form, "action": "save"})
    assert response.status_code == 409 and "被别人（或命令行）改过了" in response.text
    assert "+# changed on the server" in response.text
    assert "改过的标题" not in path.read_text("utf-8")


def test_reject_needs_a_comment_and_is_recorded(site: Site) -> None:
    from outreach.models import ScriptEvent

    reviewer = client_as(site, "li", "reviewer")
    csrf = token(reviewer, "/scripts/fraud-seven-tools")
    assert reviewer.post("/scripts/fraud-seven-tools/reject", data={"csrf_token": csrf, "comment": " "}).status_code == 400
    assert reviewer.post("/scripts/fraud-seven-tools/reject",
                         data={"csrf_token": csrf, "comment": "热线号码请再核对"}).status_code == 303
    events = rows(site.engine, ScriptEvent, ScriptEvent.action == "rejected")
    assert [(e.actor, e.detail) for e in events] == [("li", "热线号码请再核对")]
    assert "热线号码请再核对" in reviewer.get("/scripts/fraud-seven-tools").text


def test_spoken_form_endpoint_marks_numbers(editor: TestClient) -> None:
    pieces = editor.get("/spoken", params={"text": "请拨打96110，8:30集合"}).json()["pieces"]
    assert ["九六幺幺零", True] in pieces and ["八点三十分", True] in pieces
    assert "".join(p for p, _ in pieces).startswith("请拨打九六幺幺零")


def test_admin_manages_users_in_the_browser(site: Site, editor: TestClient) -> None:
    assert editor.get("/users").status_code == 403
    admin = client_as(site, "boss", "admin")
    csrf = token(admin, "/users")
    added = admin.post("/users", data={"csrf_token": csrf, "action": "add", "name": "新人", "role": "reviewer",
                                       "password": "long-enough-1"})
    assert added.status_code == 303
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    assert store.get("新人").role.value == "reviewer"
    admin.post("/users", data={"csrf_token": csrf, "action": "role", "name": "wang", "role": "viewer"})
    assert store.get("wang").role.value == "viewer"
    assert editor.get("/scripts", follow_redirects=False).status_code == 303  # role change ended the session
    admin.post("/users", data={"csrf_token": csrf, "action": "remove", "name": "zhao"})
    assert store.get("zhao") is None
    assert admin.post("/users", data={"csrf_token": csrf, "action": "remove", "name": "boss"}).status_code == 400


def test_today_puts_failures_first_with_their_reason(site: Site, editor: TestClient) -> None:
    site.clock.now = datetime(2026, 12, 5, 21, 0, tzinfo=TZ)
    with session(site.engine) as s:
        mark_program(s, day=date(2026, 12, 5), slot="morning", village_id="hexi-04", status=S("failed"),
                     at=datetime(2026, 12, 5, 6, 31, tzinfo=TZ), error="播放器没有声音输出")
    assert editor.get("/").headers["location"] == "/today"
    page = editor.get("/today").text
    first = re.search(r'<tbody>\s*<tr class="st-(\w+)">(.*?)</tr>', page.split('id="slots"')[1], re.S)
    assert first.group(1) == "failed" and "播放器没有声音输出" in first.group(2)
    data = editor.get("/today.json").json()
    assert data["slots"][0]["status"] in ("failed", "missed") and data["totals"]["failed"] == 1
    assert data["totals"]["missed"] == 1  # dazhuang-01's evening
    assert {t["id"] for t in data["townships"]} >= {"dazhuang", "hexi"}
    dz = next(x for x in data["slots"] if x["village_id"] == "dazhuang-01")
    assert dz["last_success"].startswith("12-05")
    assert dz["online"] is None
    # On a phone: only what needs attention, in the page and in its refresh; the counts stay whole.
    short = editor.get("/today?only=problems").text
    rows = re.findall(r'<tr class="st-(\w+)">', short.split('id="slots"')[1])
    assert rows and set(rows) <= {"failed", "missed", "interrupted"} and len(rows) == 2
    assert 'data-src="/today.json?only=problems"' in short and "看全部" in short
    only = editor.get("/today.json?only=problems").json()
    assert [x["status"] for x in only["slots"]] == rows and only["totals"] == data["totals"]
    assert len(data["slots"]) > len(only["slots"])
    quiet = editor.get("/today.json?only=problems&township=lishu").json()
    assert quiet["slots"] == [] and "今天没有出问题的节目。" in editor.get("/today?only=problems&township=lishu").text


def test_pack_zip_per_village_and_township_holds_the_files(site: Site, editor: TestClient) -> None:
    import io
    import zipfile

    file = write_pack(site.workspace)
    page = editor.get("/packs").text
    assert "<audio" in page and "/packs/zip?village=dazhuang-05" in page and "/packs/zip?township=dazhuang" in page
    for query in ("village=dazhuang-05", "township=dazhuang"):
        response = editor.get(f"/packs/zip?{query}")
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        zf = zipfile.ZipFile(io.BytesIO(response.content))
        assert zf.testzip() is None
        assert zf.namelist() == ["dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_morning.mp3"]
        assert zf.read(zf.namelist()[0]) == file.read_bytes()
    assert editor.get("/packs/zip?village=hexi-04").status_code == 404
    assert not list(site.workspace.rglob("*.zip")) and not list(site.workspace.rglob("*.part"))


def test_csp_allows_own_scripts_and_media_only(editor: TestClient) -> None:
    csp = editor.get("/today").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "media-src 'self'" in csp and "unsafe-inline" not in csp


# --- rate limit -----------------------------------------------------------------------------------


def test_five_failed_logins_lock_the_name_for_five_minutes(site: Site) -> None:
    client = site.client()
    for _ in range(5):
        assert login(client, "wang", "wrong-password").status_code == 401
    locked = login(client, "wang", PASSWORD)
    assert locked.status_code == 429 and "登录尝试太多" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert login(client, "zhao", PASSWORD).status_code == 303  # another name is not locked
    site.clock.now = NOW + timedelta(minutes=4, seconds=59)
    assert login(site.client(), "wang", PASSWORD).status_code == 429
    site.clock.now = NOW + timedelta(minutes=5, seconds=1)
    assert login(site.client(), "wang", PASSWORD).status_code == 303


def test_a_successful_login_resets_the_count(site: Site) -> None:
    client = site.client()
    for _ in range(4):
        login(client, "wang", "wrong-password")
    assert login(client, "wang", PASSWORD).status_code == 303
    for _ in range(4):
        assert login(site.client(), "wang", "wrong-password").status_code == 401
    assert login(site.client(), "wang", PASSWORD).status_code == 303


def test_parallel_attempts_cannot_pass_the_limit_together() -> None:
    limiter = LoginLimiter()
    barrier = threading.Barrier(40)
    results: list[Refusal | None] = []

    def guess() -> None:
        barrier.wait()
        results.append(limiter.attempt("wang", "10.0.0.1", NOW).refusal)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(None) == limiter.max_failures == 5
    assert {r.scope for r in results if r} == {"account"}


def test_the_address_limit_covers_every_account() -> None:
    limiter = LoginLimiter()
    allowed = [limiter.attempt(f"guess-{i}", "10.0.0.9", NOW).refusal is None for i in range(30)]
    assert allowed.count(True) == limiter.max_per_address == 20
    refused = limiter.attempt("wang", "10.0.0.9", NOW).refusal
    assert refused is not None and refused.scope == "address" and refused.retry_after_s > 0
    assert limiter.attempt("wang", "10.0.0.10", NOW).refusal is None  # another computer may still try
    assert limiter.attempt("wang", "10.0.0.9", NOW + timedelta(minutes=5, seconds=1)).refusal is None


def test_the_account_limit_holds_from_every_address() -> None:
    limiter = LoginLimiter()
    for i in range(5):
        assert limiter.attempt("wang", f"10.0.1.{i}", NOW).refusal is None
    refused = limiter.attempt("Wang", "10.0.2.1", NOW).refusal
    assert refused is not None and refused.scope == "account"


def test_success_takes_back_its_own_count_but_not_concurrent_guesses() -> None:
    limiter = LoginLimiter()
    for _ in range(30):
        attempt = limiter.attempt("wang", "10.0.0.1", NOW)
        assert attempt.refusal is None
        limiter.succeeded("wang", "10.0.0.1", attempt.ticket)
    assert limiter.retry_after("zhao", "10.0.0.1", NOW) == 0
    right = limiter.attempt("wang", "10.0.0.1", NOW)
    guesses = [limiter.attempt("wang", "10.0.0.1", NOW) for _ in range(4)]  # still being checked
    limiter.succeeded("wang", "10.0.0.1", right.ticket)
    assert all(g.refusal is None for g in guesses)
    assert limiter.attempt("wang", "10.0.0.1", NOW).refusal is None
    assert limiter.attempt("wang", "10.0.0.1", NOW).refusal is not None  # the 4 guesses still count


# --- sessions end on the server, Origin, Secure cookies ---------------------------------------------


def test_logout_kills_a_copy_of_the_cookie(site: Site, editor: TestClient) -> None:
    copy = site.client()
    copy.cookies.update(editor.cookies)
    assert copy.get("/villages").status_code == 200
    assert editor.post("/logout", data={"csrf_token": token(editor, "/villages")}).status_code == 303
    response = copy.get("/villages")  # the old cookie, replayed after logout
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    stored = json.loads((site.workspace / USERS_FILE).read_text("utf-8"))["users"]
    assert {u["name"]: u["session"] for u in stored} == {"wang": 1, "zhao": 0}


def test_logout_leaves_other_users_logged_in_and_a_new_login_works(site: Site, editor: TestClient,
                                                                   viewer: TestClient) -> None:
    editor.post("/logout", data={"csrf_token": token(editor, "/villages")})
    assert viewer.get("/villages").status_code == 200
    again = site.client()
    assert login(again).status_code == 303 and again.get("/villages").status_code == 200


def test_user_cli_and_logouts_do_not_lose_each_others_writes(site: Site) -> None:
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    threads = [threading.Thread(target=store.end_sessions, args=("wang",)) for _ in range(20)]
    threads.append(threading.Thread(target=store.add, args=("li", "viewer", PASSWORD), kwargs={"now": NOW}))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.get("wang").session_version == 20 and store.get("li") is not None


@pytest.mark.parametrize("headers", [
    {"origin": "http://evil.example"},
    {"origin": "http://testserver.evil.example"},
    {"origin": "http://testserver:8080"},
    {"origin": "null"},
    {"sec-fetch-site": "cross-site"},
], ids=["other-site", "suffix", "other-port", "opaque", "fetch-metadata"])
def test_a_post_from_another_site_is_refused(site: Site, editor: TestClient, headers: dict[str, str]) -> None:
    form = {"date": "2026-12-08", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form, headers=headers)
    assert response.status_code == 403 and "请求来源不对" in response.text
    assert len(rows(site.engine, Handout)) == 1
    logout = editor.post("/logout", data={"csrf_token": form["csrf_token"]}, headers=headers)
    assert logout.status_code == 403 and editor.get("/villages").status_code == 200


def test_a_post_from_the_dashboard_itself_passes_the_origin_check(site: Site, editor: TestClient) -> None:
    form = {"date": "2026-12-08", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form,
                           headers={"origin": "http://TestServer", "sec-fetch-site": "same-origin"})
    assert response.status_code == 303


def test_https_only_sets_secure_cookies_and_wants_https_origins(site: Site) -> None:
    config = load_config(site.workspace)
    client = TestClient(create_app(config, now=site.clock, engine=site.engine, https_only=True),
                        base_url="https://testserver", follow_redirects=False)
    response = login(client)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()
    assert response.headers["strict-transport-security"].startswith("max-age=")
    form = {"csrf_token": token(client, "/villages")}
    assert client.post("/logout", data=form, headers={"origin": "http://testserver"}).status_code == 403
    assert client.post("/logout", data=form, headers={"origin": "https://testserver"}).status_code == 303


def test_https_only_comes_from_outreach_toml_or_the_serve_flag(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from outreach.cli import web_cmds  # noqa: F401
    from outreach.cli.base import cli

    plain = site.client().get("/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    toml = site.workspace / "outreach.toml"
    toml.write_text(toml.read_text("utf-8") + "\n[web]\nhttps_only = true\n", "utf-8")
    config = load_config(site.workspace)
    assert config.web.https_only is True
    app = create_app(config, now=site.clock, engine=site.engine)
    cookie = TestClient(app, base_url="https://testserver").get("/login").headers["set-cookie"]
    assert "secure" in cookie.lower()
    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: apps.append(app))
    for flag, expected in (([], True), (["--no-https-only"], False)):
        result = CliRunner().invoke(cli, ["serve", *flag, "-w", str(site.workspace)])
        assert result.exit_code == 0, result.output
        assert apps[-1].state.ctx.https_only is expected  # type: ignore[attr-defined]


# --- bad input ----------------------------------------------------------------------------------------


SQLISH = "x' OR '1'='1"


@pytest.mark.parametrize("path,status,text", [
    ("/campaigns/no-such-campaign", 404, "没有宣传活动"),
    (f"/campaigns/{SQLISH}", 404, "没有宣传活动"),
    ("/villages/nowhere-99", 404, "没有村庄"),
    ("/villages/dazhuang-01'; DROP TABLE broadcast; --", 404, "没有村庄"),
    ("/markets/no-market", 404, "没有集市"),
    ("/gaps?campaign=nope", 404, "没有宣传活动"),
    (f"/gaps?campaign={SQLISH}", 404, "没有宣传活动"),
    ("/gaps?days=0", 400, "超出了范围"),
    ("/gaps?days=-3", 400, "超出了范围"),
    ("/gaps?days=100000", 400, "超出了范围"),
    ("/gaps?days=1;DROP", 400, "不是整数"),
    ("/gaps?days=", 200, "覆盖缺口"),
    ("/plan?from=2026-13-01", 400, "不是有效的日期"),
    ("/plan?from=12/10/2026", 400, "年-月-日"),
    ("/plan?from=' OR 1=1 --", 400, "不是有效的日期"),
    ("/plan?days=0", 400, "超出了范围"),
    ("/plan?days=400", 400, "超出了范围"),
    ("/plan?days=9999999999999999999999", 400, "超出了范围"),
    ("/plan?days=" + "9" * 5000, 400, "超出了范围"),
    ("/plan?village=nowhere", 404, "没有村庄"),
    (f"/plan?village={SQLISH}", 404, "没有村庄"),
    ("/villages/dazhuang-01?from=2026-12-09&to=2026-12-01", 400, "早于开始日期"),
    ("/villages/dazhuang-01?from=2020-01-01&to=2026-12-01", 400, "太长"),
    ("/villages/dazhuang-01?from=yesterday", 400, "不是有效的日期"),
    ("/markets/dazhuang-ji?from=2026-12-09&to=2026-12-01", 400, "早于开始日期"),
    ("/markets/dazhuang-ji?to=9999-99-99", 400, "不是有效的日期"),
    ("/plan?from=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/plan?from=9999-12-31&days=1", 400, "超出了能处理的日期范围"),
    ("/plan?from=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/plan?from=2099-12-01&days=31", 200, "广播安排"),
    ("/plan?from=2099-12-31&days=31", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?from=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?to=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?from=9999-12-31&to=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/markets/dazhuang-ji?from=0001-01-01&to=0001-01-02", 400, "超出了能处理的日期范围"),
    ("/markets/dazhuang-ji?to=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/scripts/../../etc", 404, ""),
    ("/no/such/page", 404, "页面不存在"),
])
def test_bad_input_is_400_or_404_never_500(editor: TestClient, path: str, status: int, text: str) -> None:
    response = editor.get(path)
    assert response.status_code == status, response.text[-500:]
    assert text in response.text
    if status >= 400:
        assert '<html lang="zh-CN">' in response.text


@pytest.mark.parametrize("path,form,status", [
    ("/villages/dazhuang-05/confirm", {"date": "2026-12-08", "slot": "noon"}, 400),
    ("/villages/dazhuang-05/confirm", {"date": "08.12.2026", "slot": "morning"}, 400),
    ("/villages/dazhuang-05/confirm", {"slot": "morning"}, 400),
    (f"/villages/{SQLISH}/confirm", {"date": "2026-12-08", "slot": "morning"}, 404),
    ("/markets/nowhere/handouts", {"date": "2026-12-08"}, 404),
    ("/scripts/no-such-script/approve", {}, 404),
    (f"/scripts/{SQLISH}/approve", {}, 404),
])
def test_bad_posts_are_400_or_404(site: Site, editor: TestClient, path: str, form: dict[str, str],
                                  status: int) -> None:
    # Approving is a reviewer's action: an editor is refused (403) before the script is looked up.
    client = client_as(site, "li", "reviewer") if path.endswith("/approve") else editor
    response = client.post(path, data={**form, "csrf_token": token(client, "/campaigns")})
    assert response.status_code == status
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))


def test_get_on_a_form_action_is_405_in_chinese(editor: TestClient) -> None:
    response = editor.get("/markets/dazhuang-ji/handouts")
    assert response.status_code == 405 and "操作方式不对" in response.text


def test_broken_campaigns_file_is_a_400_page_not_a_500(site: Site, editor: TestClient) -> None:
    (site.workspace / "schedules" / "campaigns.yaml").write_text("campaigns: [unclosed\n", encoding="utf-8")
    response = editor.get("/plan")
    assert response.status_code == 400 and "无法完成" in response.text and "campaigns.yaml" in response.text
    overview = editor.get("/campaigns")
    assert overview.status_code == 200 and "目标村名单读取失败" in overview.text


def test_unexpected_error_is_a_chinese_500_page_and_logged(site: Site, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from outreach.web import data

    client = TestClient(site.app, raise_server_exceptions=False, follow_redirects=False)  # type: ignore[arg-type]
    login(client)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(data, "villages", boom)
    with caplog.at_level("ERROR", logger="outreach.web"):
        response = client.get("/villages")
    assert response.status_code == 500 and "系统内部错误" in response.text
    assert "disk on fire" not in response.text
    assert any("disk on fire" in r.getMessage() or (r.exc_info and "disk on fire" in str(r.exc_info[1]))
               for r in caplog.records)


# --- pages show the data ----------------------------------------------------------------------------


def test_campaign_overview_counts_and_rolls_up_by_township(editor: TestClient) -> None:
    page = editor.get("/campaigns").text
    assert "冬季道路交通安全宣传" in page and "大庄镇" in page and "已覆盖村 / 目标村" in page
    detail = editor.get("/campaigns/winter-traffic").text
    assert "按乡镇汇总" in detail and "大庄村" in detail and "从未播出" in detail  # targeted, never reached


def test_village_page_lists_its_as_run_history(editor: TestClient) -> None:
    page = editor.get("/villages/dazhuang-01?from=2026-12-01&to=2026-12-09").text
    assert "已播" in page and "漏播" in page and "2026-12-05" in page
    assert "播出 2026-12-01 06:31" in page  # UTC in the database, Beijing time on the page


def test_gaps_page_lists_unreached_villages_and_unconfirmed_exports(editor: TestClient) -> None:
    page = editor.get("/gaps?campaign=winter-traffic&days=7").text
    assert "沙窝村" in page  # hexi-04: planned but never played
    assert "李家洼村" in page  # dazhuang-05: exported 12-08, not confirmed


def test_week_plan_starts_today_in_shanghai(site: Site, editor: TestClient) -> None:
    site.clock.now = datetime(2026, 12, 10, 17, 0, tzinfo=ZoneInfo("UTC"))  # 01:00 on Dec 11 in Beijing
    page = editor.get("/plan?village=lishu-07").text
    assert "2026-12-11 起 7 天" in page and "12月17日" in page and "12月10日" not in page
    assert "马家店村" in page and "早" in page and "晚" in page


def test_market_page_shows_totals_and_upcoming_market_days(editor: TestClient) -> None:
    page = editor.get("/markets/dazhuang-ji").text
    assert "大庄集" in page and "120" in page and "李警官" in page and "近期集日" in page
    assert "县城大集" in editor.get("/markets").text


# --- pack downloads ----------------------------------------------------------------------------


def test_pack_list_and_download(site: Site, editor: TestClient) -> None:
    file = write_pack(site.workspace)
    page = editor.get("/packs").text
    assert "李家洼村" in page and "下载" in page and "secret.txt" not in page
    response = editor.get(DOWNLOAD)
    assert response.status_code == 200 and response.content == file.read_bytes()
    assert "dazhuang-05_2026-12-11_morning.mp3" in response.headers["content-disposition"]


@pytest.mark.parametrize("path", [
    "/packs/files/../secret.txt",
    "/packs/files/..%2Fsecret.txt",
    "/packs/files/%2e%2e/secret.txt",
    "/packs/files/%2e%2e%2fsecret.txt",
    "/packs/files/..%5Csecret.txt",
    "/packs/files//etc/passwd",
    "/packs/files/%2Fetc%2Fpasswd",
    "/packs/files/manifest.json",
    "/packs/files/dazhuang_大庄镇/../../outreach.toml",
    "/packs/files/dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_morning.mp3%00.txt",
    "/packs/files/",
])
def test_pack_download_cannot_leave_the_pack_folder(site: Site, editor: TestClient, path: str) -> None:
    write_pack(site.workspace)
    response = editor.get(path)
    assert response.status_code == 404
    assert "top secret" not in response.text and "database_url" not in response.text


def test_pack_symlink_out_of_the_folder_is_not_served(site: Site, editor: TestClient) -> None:
    file = write_pack(site.workspace)
    file.unlink()
    file.symlink_to(site.workspace / "secret.txt")
    assert editor.get(DOWNLOAD).status_code == 404


def test_broken_manifest_shows_a_message(site: Site, editor: TestClient) -> None:
    write_pack(site.workspace)
    (site.workspace / "packs" / "manifest.json").write_text("{not json", encoding="utf-8")
    page = editor.get("/packs")
    assert page.status_code == 200 and "读不出来" in page.text
    assert editor.get(DOWNLOAD).status_code == 404


# --- secret, users file, CLI ------------------------------------------------------------------------


def test_secret_file_is_private_and_reused(site: Site) -> None:
    path = site.workspace / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    client = site.client()
    login(client)
    again = create_app(load_config(site.workspace), now=site.clock, engine=site.engine)
    assert path.read_text() == before
    follower = TestClient(again, follow_redirects=False)
    follower.cookies.update(client.cookies)
    assert follower.get("/villages").status_code == 200  # the same secret signs the same sessions


def test_tampered_session_cookie_is_ignored(site: Site, editor: TestClient) -> None:
    value = editor.cookies.get("outreach_session")
    assert value
    editor.cookies.clear()  # replace the cookie, rather than send a second one beside it
    editor.cookies.set("outreach_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert editor.get("/villages").status_code == 303


def test_cli_user_add_and_list(workspace: Path) -> None:
    from outreach.cli import web_cmds  # noqa: F401  (registers `serve` and `user`)
    from outreach.cli.base import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["user", "add", "王秀兰", "--role", "editor", "--password-stdin", "-w",
                                 str(workspace)], input="long-enough-pw\n")
    assert result.exit_code == 0, result.output
    users_file = workspace / USERS_FILE
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    stored = json.loads(users_file.read_text("utf-8"))["users"][0]
    assert stored["name"] == "王秀兰" and stored["hash"].startswith("$argon2id$") and "long-enough-pw" not in str(stored)
    listed = runner.invoke(cli, ["user", "list", "--json", "-w", str(workspace)])
    assert json.loads(listed.output) == [{"name": "王秀兰", "role": "editor", "created": stored["created"]}]
    dup = runner.invoke(cli, ["user", "add", "王秀兰", "--role", "viewer", "--password-stdin", "-w",
                              str(workspace)], input="long-enough-pw\n")
    assert dup.exit_code == 1 and "用户 '王秀兰' 已经在" in dup.output and "请先删除这个用户" in dup.output
    short = runner.invoke(cli, ["user", "add", "li", "--role", "viewer", "--password-stdin", "-w", str(workspace)],
                          input="short\n")
    assert short.exit_code == 1 and "密码只有 5 个字符；至少要 8 个" in short.output
    role = runner.invoke(cli, ["user", "add", "li", "--role", "root", "--password-stdin", "-w", str(workspace)],
                         input="long-enough-pw\n")
    assert role.exit_code == 2


def test_serve_without_users_says_how_to_add_one(workspace: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from outreach.cli import web_cmds  # noqa: F401
    from outreach.cli.base import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert calls == [("127.0.0.1", 8123)]
    assert "outreach user add" in result.output
    assert os.path.exists(workspace / SECRET_FILE)

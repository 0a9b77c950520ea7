"""The dashboard test site shared by the web and authoring tests: a seeded database, users, clients, helpers."""

from __future__ import annotations

import json
import re
import shutil
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

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from outreach.config import load_config
from outreach.db import make_engine, session
from outreach.models import BroadcastStatus, Evidence
from outreach.planning.workspace import load, open_database, plan_days
from outreach.records import broadcast_plans, mark_program, record_handout, record_planned
from outreach.web import create_app
from outreach.web.auth import USERS_FILE, UserStore

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
                             status=S("missed") if missed else S("played"), at=when,
                             evidence=None if missed else Evidence.PLAYER, aired_at=None if missed else p.start)
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


def client_as(site: Site, name: str, role: str) -> TestClient:
    UserStore(site.workspace / USERS_FILE, FAST_HASHER).add(name, role, PASSWORD, now=NOW)
    client = site.client()
    assert login(client, name).status_code == 303
    return client


def page_form(client: TestClient, path: str) -> dict[str, str]:
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


def heard_page(client: TestClient, script_id: str, timeout_s: float = 90.0) -> str:
    """The script page once its 试听 is made: 试听 renders in the background (issue 18) and the page
    shows 正在生成试听录音… until then."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        page = client.get(f"/scripts/{script_id}")
        assert page.status_code == 200, page.text[-300:]
        if 'id="preview-progress"' not in page.text:
            assert 'id="preview-error"' not in page.text, page.text
            return page.text
        assert time.monotonic() < deadline, "the preview was not made in time"
        time.sleep(0.1)

"""Silence is never hidden: with no scheduler, 今天, /stations and `outreach status` say so first; slots past
start plus grace read 漏播 on every page and on the calendar; /metrics tells the same, behind its token."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from web_site import NOW, TZ, Site

from outreach.config import load_config
from outreach.db import session
from outreach.delivery.health import record_stepped_down
from outreach.delivery.live.claims import Leadership
from outreach.delivery.stations.accounts import add_station, record_presence
from outreach.models import Alert, AlertDelivery, SchedulerLeader
from outreach.planning.workspace import load, plan_days
from outreach.web import create_app
from outreach.web.calendar_pages import Day
from outreach.web.permissions import OPEN_GET_ROUTES

OUTREACH = [sys.executable, "-m", "outreach"]
REPO = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-for-tests-0123456789"
MORNING_PROGRAMS = 30  # the sample county's 30 villages, one morning program each on 2026-12-10


def _banner(page: str) -> str:
    """The scheduler banner's text if it shows (not hidden), else ''."""
    found = re.search(r'<p class="flash error banner" id="scheduler-down" role="alert"( hidden)?>(.*?)</p>', page, re.S)
    assert found, "the scheduler banner is always in the page (hidden while the scheduler runs)"
    return "" if found.group(1) else re.sub(r"<[^>]+>", "", found.group(2))


def _beat(site: Site, at: datetime, owner: str = "county-server:4242:abcd") -> None:
    """A leading scheduler's heartbeat at `at`, as Leadership writes it."""
    assert Leadership(site.engine, owner, 30.0).try_acquire(at)


def _slot_now_workspace(tmp_path: Path) -> Path:
    """A workspace whose morning slot starts at 00:00 for every village, with no grace: past at any time of day."""
    ws = tmp_path / "cli-ws"
    for name in ("audio_scripts", "schedules"):
        shutil.copytree(REPO / name, ws / name)
    shutil.copy2(REPO / "outreach.toml", ws / "outreach.toml")
    county = ws / "schedules" / "county.yaml"
    county.write_text(re.sub(r"(?m)^\s+slots: \{.*\}.*\n", "", county.read_text(encoding="utf-8")), encoding="utf-8")
    slots = ws / "schedules" / "slots.yaml"
    text = re.sub(r'morning: \{start: "[0-9:]+"', 'morning: {start: "00:00"', slots.read_text(encoding="utf-8"))
    slots.write_text(re.sub(r'evening: \{start: "[0-9:]+"', 'evening: {start: "23:45"', text), encoding="utf-8")
    toml = ws / "outreach.toml"
    toml.write_text(re.sub(r"(?m)^grace_s = .*$", "grace_s = 0", toml.read_text(encoding="utf-8")), encoding="utf-8")
    return ws


def _status(ws: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTREACH, "status", "--json", "-w", str(ws)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": f"sqlite:///{db}", "TZ": "UTC"})


# --- the observation: no scheduler at slot time -----------------------------------------------------------


def test_no_scheduler_at_slot_time(site: Site, editor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No `outreach run` process: the morning is past, nothing aired and nothing wrote a row. 今天 shows every
    morning program 漏播 with the banner first, and `outreach status` exits non-zero."""
    page = editor.get("/today").text  # 2026-12-10 09:30: the morning slots (06:00-07:00) are past grace
    body = page.split("<main>", 1)[1]
    assert body.lstrip().startswith('<p class="flash error banner" id="scheduler-down"'), body[:300]
    assert _banner(page).startswith("调度器没有运行（最后一次：从未运行过）") and "outreach run" in _banner(page)
    data = editor.get("/today.json").json()
    assert data["scheduler"]["up"] is False and data["scheduler"]["message"].startswith("调度器没有运行")
    assert data["totals"]["missed"] == MORNING_PROGRAMS and data["totals"]["planned"] == MORNING_PROGRAMS
    morning = [s for s in data["slots"] if s["slot"] == "morning"]
    assert len(morning) == MORNING_PROGRAMS and {s["status"] for s in morning} == {"missed"}
    assert all(s["status_label"] == "漏播" and s["reason"].startswith("漏播：") for s in morning)
    by_village = {s["village_id"]: s["reason"] for s in morning}
    assert "调度器" in by_village["dazhuang-01"] and "U 盘" in by_village["dazhuang-05"]  # said per channel
    assert data["slots"][0]["status"] == "missed"  # problems first
    # `outreach status` on a workspace whose morning is past, with no scheduler ever run: exit 2.
    ws = _slot_now_workspace(tmp_path)
    now = datetime.now(TZ)
    programs = plan_days(load(load_config(ws)), now.date(), now.date()).programs
    morning_programs = sum(1 for p in programs if p.slot == "morning")
    proc = _status(ws, tmp_path / "cli.db")
    assert proc.returncode == 2, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["scheduler"]["up"] is False
    assert out["problems"][0] == out["scheduler"]["message"] == "调度器没有运行（最后一次：从未运行过）"
    assert out["today"]["programs"] == len(programs) and morning_programs > 0
    assert out["today"]["by_status"]["missed"] >= morning_programs
    assert out["today"]["by_status"]["missed"] + out["today"]["by_status"]["planned"] == len(programs)


def test_status_tells_when_the_scheduler_was_last_heard_and_exits_0_while_it_beats(tmp_path: Path) -> None:
    ws = _slot_now_workspace(tmp_path)
    db = tmp_path / "beat.db"
    assert _status(ws, db).returncode == 2  # creates the database
    from outreach.db import make_engine

    engine = make_engine(f"sqlite:///{db}")
    try:
        now = datetime.now(TZ)
        leader = Leadership(engine, "county-server:4242:abcd", 30.0)
        assert leader.try_acquire(now - timedelta(minutes=5))
        down = json.loads(_status(ws, db).stdout)["scheduler"]
        when = (now - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M")
        assert down["up"] is False and f"最后一次心跳 {when}" in down["message"] and "北京时间" in down["message"]
        assert down["heartbeat_at"].endswith("+08:00") and 290 <= down["heartbeat_age_s"] <= 400
        assert leader.beat(datetime.now(TZ))
        proc = _status(ws, db)
        assert proc.returncode == 0 and json.loads(proc.stdout)["scheduler"]["up"] is True
        text = subprocess.run([*OUTREACH, "status", "-w", str(ws)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DATABASE_URL": f"sqlite:///{db}", "TZ": "UTC"})
        assert text.returncode == 0 and text.stdout.startswith("调度器在运行（主调度器 county-server:4242:abcd")
        record_stepped_down(engine, "county-server:4242:abcd", now=datetime.now(TZ))
        leader.release()  # a clean stop deletes the leader row; the stopped row keeps 最后一次
        text = subprocess.run([*OUTREACH, "status", "-w", str(ws)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DATABASE_URL": f"sqlite:///{db}", "TZ": "UTC"})
        assert text.returncode == 2 and text.stdout.startswith("调度器没有运行（最后一次心跳 ")
        assert "已正常停止" in text.stdout.splitlines()[0]
    finally:
        engine.dispose()


def test_the_banner_follows_the_heartbeat(site: Site, editor) -> None:  # type: ignore[no-untyped-def]
    _beat(site, NOW - timedelta(seconds=30))
    assert _banner(editor.get("/today").text) == "" and editor.get("/today.json").json()["scheduler"]["up"] is True
    with session(site.engine) as s:  # the heartbeat stops (kill -9, machine off): down after 2 minutes
        s.execute(sa.update(SchedulerLeader).values(heartbeat_at=NOW - timedelta(minutes=3)))
    text = _banner(editor.get("/today").text)
    assert text.startswith("调度器没有运行（最后一次心跳 2026-12-10 09:27:00 北京时间，3 分钟前")
    assert "可能已崩溃" in text


# --- 漏播 on the other pages ---------------------------------------------------------------------------------


def test_stations_page_puts_the_banner_first_and_shows_today_per_box(site: Site, editor) -> None:  # type: ignore[no-untyped-def]
    county = site.workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text(encoding="utf-8").replace(
        "{id: dazhuang-02, name: 前营村, township: dazhuang, population: 1420, speaker: networked}",
        "{id: dazhuang-02, name: 前营村, township: dazhuang, population: 1420, speaker: station}"), encoding="utf-8")
    loaded = load(load_config(site.workspace))
    reg = add_station(site.engine, loaded, "dazhuang-02", now=NOW, server_url="http://127.0.0.1", broker=None)
    record_presence(site.engine, reg["station_id"], now=NOW, online=True)
    page = editor.get("/stations").text
    body = page.split("<main>", 1)[1]
    assert body.lstrip().startswith('<p class="flash error banner" id="scheduler-down"') and _banner(page)
    today = re.search(rf'data-station="{reg["station_id"]}".*?data-today="([^"]*)"', page, re.S)
    assert today and today.group(1) == "missed=1,planned=1", today  # morning past grace, evening to come
    assert "漏播 1" in page


def test_village_page_lists_silent_slots_as_missed(site: Site, editor) -> None:  # type: ignore[no-untyped-def]
    # dazhuang-02 has no row at all: no scheduler ever played it. Its past slots are listed 漏播, not hidden.
    page = editor.get("/villages/dazhuang-02?from=2026-12-01&to=2026-12-10").text
    rows = re.findall(r'<tr class="st-(\w+)">\s*<td data-label="日期">(\S+)', page)
    assert len(rows) == 10 * 2 - 1, rows  # Dec 1-10, both slots, except the evening still to come
    assert {st for st, _ in rows} == {"missed"} and "class=\"empty\"" not in page
    assert "县里的调度器" in page
    # dazhuang-05 (USB): exported packs wait for a confirmation; the planned ones never exported are missed.
    page = editor.get("/villages/dazhuang-05?from=2026-12-01&to=2026-12-09").text
    statuses = dict((d + s, st) for st, d, s in re.findall(
        r'<tr class="st-(\w+)">\s*<td data-label="日期">(\S+) 周.</td><td data-label="时段">(\S+)</td>', page))
    assert statuses["2026-12-08早间"] == statuses["2026-12-09晚间"] == "exported"
    assert statuses["2026-12-07晚间"] == statuses["2026-12-01早间"] == "missed"
    assert "没有导出到 U 盘" in page


def test_calendar_colours_planned_days_without_air_as_missed(site: Site, editor) -> None:  # type: ignore[no-untyped-def]
    def states(query: str) -> dict[str, str]:
        page = editor.get(f"/calendar?{query}").text
        return dict(re.findall(r'data-date="([0-9-]+)" data-state="(\w+)"', page))

    silent = states("view=month&date=2026-12-01&village=dazhuang-02")
    assert {silent[f"2026-12-{d:02d}"] for d in range(1, 10)} == {"missed"}  # planned, never aired: not 无安排
    assert silent["2026-12-10"] == "missed" and silent["2026-12-11"] == "planned"
    played = states("view=month&date=2026-12-01&village=dazhuang-01")
    assert played["2026-12-04"] == "aired" and played["2026-12-05"] == "partial"  # evening of the 5th missed
    assert played["2026-12-26"] == "none"  # 考研 blackout: nothing planned, so 无安排 is true
    usb = states("view=month&date=2026-12-01&village=dazhuang-05")
    assert usb["2026-12-08"] == "waiting" and usb["2026-12-07"] == "missed"
    page = editor.get("/calendar?view=month&date=2026-12-01&village=dazhuang-02").text
    assert 'class="cal-state st-missed"' in page and "漏播 2 场" in page
    county = states("view=week&date=2026-12-02")  # the whole county: most villages never aired
    assert county["2026-12-02"] == county["2026-12-06"] == "partial"
    assert county["2026-11-30"] == "untracked"  # planned, but before the first record: not 漏播, not 无安排


def test_a_day_state_is_never_none_when_something_was_planned() -> None:
    day = Day(date(2026, 12, 1), True)
    assert day.state == "none"
    for outcomes, state in [({"missed": 2}, "missed"), ({"failed": 1, "played": 1}, "partial"),
                            ({"planned": 2}, "planned"), ({"played": 1, "confirmed": 1}, "aired"),
                            ({"exported": 1, "played": 1}, "waiting"), ({"interrupted": 1, "planned": 1}, "missed")]:
        day.outcomes.clear()
        day.outcomes.update(outcomes)
        assert day.state == state, outcomes


# --- /metrics -----------------------------------------------------------------------------------------------


def _metrics_app(site: Site, token: str | None):  # type: ignore[no-untyped-def]
    toml = site.workspace / "outreach.toml"
    text = toml.read_text(encoding="utf-8")
    if token:
        text = text.replace("[web]\n", f'[web]\nmetrics_token = "{token}"\n') if "[web]\n" in text else \
            text + f'\n[web]\nmetrics_token = "{token}"\n'
    toml.write_text(text, encoding="utf-8")
    from fastapi.testclient import TestClient

    return TestClient(create_app(load_config(site.workspace), now=site.clock, engine=site.engine))


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_off_without_a_token_setting(site: Site) -> None:
    client = _metrics_app(site, None)
    response = client.get("/metrics")
    assert response.status_code == 404 and "metrics_token" in response.text


def test_metrics_need_the_token_and_read_the_database_when_scraped(site: Site) -> None:
    client = _metrics_app(site, TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "outreach_" not in refused.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with session(site.engine) as s:  # an alert played after 3 s on one box and 45 s on another
        sent = NOW - timedelta(hours=1)
        s.add(Alert(id="a1", script_id="fraud-96110", sha256="0" * 64, targets='["s1", "s2", "s3"]', sent_at=sent,
                    expires_at=sent + timedelta(hours=2)))
        s.add(AlertDelivery(alert_id="a1", station_id="s1", delivered_at=sent, played_at=sent + timedelta(seconds=3)))
        s.add(AlertDelivery(alert_id="a1", station_id="s2", delivered_at=sent, played_at=sent + timedelta(seconds=45)))
        s.add(AlertDelivery(alert_id="a1", station_id="s3", delivered_at=sent))  # not played yet
    response = client.get("/metrics", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    v = _values(response.text)
    assert v[("outreach_scheduler_up", ())] == 0.0
    assert ("outreach_scheduler_heartbeat_age_seconds", ()) not in v  # no scheduler ever ran
    assert v[("outreach_programs_today", (("status", "missed"),))] == MORNING_PROGRAMS
    assert v[("outreach_programs_today", (("status", "planned"),))] == MORNING_PROGRAMS
    assert v[("outreach_programs_today", (("status", "played"),))] == 0.0
    assert v[("outreach_stations_total", ())] == v[("outreach_stations_online", ())] == 0.0
    assert v[("outreach_plan_ok", ())] == 1.0 and v[("outreach_usb_villages", ())] == 10.0
    newest = datetime(2026, 12, 9, 18, 31, tzinfo=TZ)  # the seeded export of dazhuang-05's evening of the 9th
    assert v[("outreach_export_age_seconds", ())] == pytest.approx((NOW - newest).total_seconds())
    assert v[("outreach_alert_latency_seconds_bucket", (("le", "2"),))] == 0.0
    assert v[("outreach_alert_latency_seconds_bucket", (("le", "5"),))] == 1.0
    assert v[("outreach_alert_latency_seconds_bucket", (("le", "60"),))] == 2.0
    assert v[("outreach_alert_latency_seconds_bucket", (("le", "+Inf"),))] == 2.0
    assert v[("outreach_alert_latency_seconds_count", ())] == 2.0
    assert v[("outreach_alert_latency_seconds_sum", ())] == 48.0
    # Read at scrape time: a scheduler in another process starts beating, the clock moves, a station comes up.
    _beat(site, NOW)
    site.clock.now = NOW + timedelta(seconds=20)
    v = _values(client.get("/metrics", headers=auth).text)
    assert v[("outreach_scheduler_up", ())] == 1.0
    assert v[("outreach_scheduler_heartbeat_age_seconds", ())] == pytest.approx(20.0)
    site.clock.now = NOW + timedelta(minutes=3)
    assert _values(client.get("/metrics", headers=auth).text)[("outreach_scheduler_up", ())] == 0.0


# --- permissions: every GET route needs a login, or says what guards it instead ------------------------------


def _get_routes(app: object) -> set[str]:
    found: set[str] = set()

    def walk(routes: list, prefix: str = "") -> None:  # type: ignore[type-arg]
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + getattr(getattr(r, "include_context", None), "prefix", ""))
            elif "GET" in (getattr(r, "methods", None) or ()):
                found.add(prefix + r.path)
            elif getattr(r, "routes", None) and not hasattr(r, "methods"):
                walk(r.routes, prefix + getattr(r, "path", ""))

    walk(app.routes)  # type: ignore[attr-defined]
    return found


def test_every_get_route_needs_a_login_or_is_listed_as_open(site: Site) -> None:
    routes = _get_routes(site.app)
    assert "/metrics" in routes and "/today" in routes and "/api/station/time" in routes  # the walk finds them
    assert not set(OPEN_GET_ROUTES) - routes, "entries for GET routes that no longer exist"
    anonymous = site.client()
    for path in sorted(routes - set(OPEN_GET_ROUTES)):
        url = re.sub(r"\{(\w+)(:path)?\}", "x", path)
        response = anonymous.get(url)
        assert response.status_code in (303, 401) and "/login" in response.headers.get("location", "/login"), \
            f"GET {path} answers {response.status_code} without a login: guard it, or list it in OPEN_GET_ROUTES"

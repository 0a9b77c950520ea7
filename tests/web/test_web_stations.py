"""The station pages through FastAPI's TestClient: 终端在线率, station warnings, and 紧急插播 sent through a real Mosquitto.

The send test starts a private Mosquitto the way tests/station_harness.py does,
registers two stations (password file + ACL + SIGHUP), listens as those stations
with their own tokens, and acks the alert; the page's JSON shows the delivery.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from station_harness import Broker, free_port, mark_station_villages, wait_for

from outreach.config import load_config
from outreach.db import session
from outreach.delivery.stations.accounts import add_station, hash_token
from outreach.models import Alert, Station
from outreach.planning.workspace import load, open_database
from outreach.station.protocol import Leaf, topic
from outreach.web import create_app
from outreach.web.auth import USERS_FILE, UserStore

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "qinghe-2026"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HAS_MOSQUITTO = shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")
STATION_VILLAGES = ("dazhuang-01", "dazhuang-02")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _client(app: object, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    token = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"csrf_token": token, "name": name, "password": PASSWORD,
                                       "next": "/"}).status_code == 303
    return client


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def make_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    engines = []

    def make(ws: Path, now: datetime):  # type: ignore[no-untyped-def]
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'web.db'}")
        mark_station_villages(ws, STATION_VILLAGES)
        loaded = load(load_config(ws))
        engine = open_database(loaded)  # loads villages and townships into the database
        engines.append(engine)
        store = UserStore(ws / USERS_FILE, FAST_HASHER)
        store.add("wang", "editor", PASSWORD, now=now)
        store.add("zhao", "viewer", PASSWORD, now=now)
        clock = Clock(now)
        return loaded, engine, clock, create_app(loaded.config, now=clock, engine=engine)

    yield make
    for e in engines:
        e.dispose()


def _station_row(engine: sa.Engine, sid: str, village: str, now: datetime, **values: object) -> None:
    with session(engine) as s:
        s.add(Station(id=sid, village_id=village, token_sha256=hash_token(sid), broker_hash="x", created_at=now,
                      **values))


def _rows(html: str, table: str) -> dict[str, str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r'<tr[^>]*data-station="([^"]+)".*?</tr>', body, re.S)}


def test_stations_page_shows_online_rate_and_warnings(workspace: Path, make_site) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
    _, engine, _, app = make_site(workspace, now)
    seen = now - timedelta(seconds=20)
    good_buffer = date(2026, 12, 16)
    _station_row(engine, "dazhuang-01-aaaaaa", "dazhuang-01", now, online=True, last_seen=seen,
                 buffered_until=good_buffer, clock_offset_s=0.4, version="0.9.1", last_play="2026-12-10 morning played")
    _station_row(engine, "dazhuang-02-bbbbbb", "dazhuang-02", now, online=False, last_seen=now - timedelta(hours=3),
                 buffered_until=good_buffer, clock_offset_s=-0.2, version="0.9.1")
    _station_row(engine, "hexi-04-cccccc", "hexi-04", now, online=True, last_seen=seen,
                 buffered_until=date(2026, 12, 11), clock_offset_s=45.5, version="0.9.0")
    _station_row(engine, "hexi-05-dddddd", "hexi-05", now, online=False, revoked_at=now - timedelta(days=1))
    viewer = _client(app, "zhao")
    page = viewer.get("/stations")
    assert page.status_code == 200, page.text
    html = page.text
    assert "终端在线率" in html and "发送紧急插播" not in html  # viewers cannot send
    towns = html.split('id="townships"', 1)[1].split("</table>", 1)[0]
    # 大庄镇: 1 of 2 online; 河西镇: 1 of 1 active (the revoked box does not count).
    dz = re.search(r"大庄镇</td>(.*?)</tr>", towns, re.S).group(1)  # type: ignore[union-attr]
    hx = re.search(r"河西镇</td>(.*?)</tr>", towns, re.S).group(1)  # type: ignore[union-attr]
    assert [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", dz, re.S)] == \
        ["2", "1", "50%", "1"]
    assert [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", hx, re.S)] == \
        ["1", "1", "100%", "1"]
    assert re.search(r"<b>67%</b><span>终端在线率", html)  # 2 of 3 active stations
    rows = _rows(html, "stations")
    assert list(rows)[:2] in (["dazhuang-02-bbbbbb", "hexi-04-cccccc"], ["hexi-04-cccccc", "dazhuang-02-bbbbbb"])
    assert "离线" in rows["dazhuang-02-bbbbbb"] and 'data-warning="offline"' in rows["dazhuang-02-bbbbbb"]
    assert 'data-warning="clock_skew"' in rows["hexi-04-cccccc"] and "+45.5 秒" in rows["hexi-04-cccccc"]
    assert 'data-warning="low_buffer"' in rows["hexi-04-cccccc"] and "2026-12-11" in rows["hexi-04-cccccc"]
    assert "data-warning" not in rows["dazhuang-01-aaaaaa"] and "在线" in rows["dazhuang-01-aaaaaa"]
    assert "09:29:40" in rows["dazhuang-01-aaaaaa"]  # last seen in Beijing time, not UTC
    assert "2026-12-10 morning played" in rows["dazhuang-01-aaaaaa"] and "0.9.1" in rows["dazhuang-01-aaaaaa"]
    assert "已注销" in rows["hexi-05-dddddd"]
    # 390 px: every cell of the card tables carries its label (the phone CSS turns rows into cards).
    for table in ("townships", "stations"):
        body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
        cells = re.findall(r"<td[^>]*>", body)
        assert cells and all("data-label=" in c for c in cells), table
    assert 'href="/stations"' in html  # the nav link


def test_alert_form_is_for_editors_and_only_approved_scripts(workspace: Path, make_site) -> None:  # type: ignore[no-untyped-def]
    _, engine, _, app = make_site(workspace, datetime(2026, 12, 10, 9, 30, tzinfo=TZ))
    viewer = _client(app, "zhao")
    assert viewer.get("/alerts/new").status_code == 403
    token = _csrf(viewer, "/stations")
    refused = viewer.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "county",
                                           "expires": "2h"})
    assert refused.status_code == 403 and "查看员" in refused.text
    editor = _client(app, "wang")
    form = editor.get("/alerts/new")
    assert form.status_code == 200
    options = re.findall(r'<option value="([^"]+)">', form.text.split('name="script"', 1)[1].split("</select>")[0])
    assert "fraud-96110" in options and "fraud-seven-tools" not in options  # a draft is not offered
    token = CSRF.search(form.text).group(1)  # type: ignore[union-attr]
    draft = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-seven-tools", "scope": "county",
                                         "expires": "2h"})
    assert draft.status_code == 400 and "签发" in draft.text
    no_csrf = editor.post("/alerts", data={"script": "fraud-96110", "scope": "county", "expires": "2h"})
    assert no_csrf.status_code == 403
    empty_township = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "township",
                                                  "expires": "2h"})
    assert empty_township.status_code == 400 and "乡镇" in empty_township.text
    bad_expiry = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "county",
                                              "expires": "99y"})
    assert bad_expiry.status_code == 400
    with session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0
    assert editor.get("/alerts/0123456789abcdef").status_code == 404


def test_alert_refused_clearly_when_broker_unreachable(rendered_workspace: Path, make_site,  # type: ignore[no-untyped-def]
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(TZ)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("OUTREACH_BROKER_URL", f"mqtt://127.0.0.1:{port}")
    monkeypatch.setenv("OUTREACH_BROKER_PASSWORD", "x")
    _, engine, _, app = make_site(rendered_workspace, now)
    _station_row(engine, "dazhuang-01-aaaaaa", "dazhuang-01", now, online=True)
    editor = _client(app, "wang")
    token = _csrf(editor, "/alerts/new")
    out = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "village",
                                       "village": "dazhuang-01", "expires": "30m"})
    assert out.status_code == 400 and "连不上消息服务器" in out.text and str(port) in out.text
    with session(engine) as s:  # nothing was sent, so no alert is left looking undelivered
        assert s.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MOSQUITTO, reason="Mosquitto is not installed (tools/test installs it)")
def test_alert_sent_through_mosquitto_and_delivery_shown_live(rendered_workspace: Path, make_site,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as mqtt

    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        for key, value in broker.env().items():
            monkeypatch.setenv(key, value)
        now = datetime.now(TZ)
        loaded, engine, clock, app = make_site(rendered_workspace, now)
        regs = [add_station(engine, loaded, v, now=now, server_url="http://127.0.0.1", broker=broker.settings)
                for v in STATION_VILLAGES]
        got: dict[str, dict] = {}
        lock = threading.Lock()
        boxes = []
        for reg in regs:  # each box logs in with its own token and reads only its own alert topic
            sid = reg["station_id"]
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=sid, protocol=mqtt.MQTTv5)
            c.username_pw_set(sid, reg["token"])
            subscribed = threading.Event()
            c.on_subscribe = lambda *a, ev=subscribed: ev.set()
            c.on_connect = lambda cl, u, f, rc, p=None, sid=sid: cl.subscribe(topic(sid, Leaf.ALERT), qos=1)

            def on_message(cl, u, msg, sid=sid):  # type: ignore[no-untyped-def]
                with lock:
                    got[sid] = json.loads(msg.payload)

            c.on_message = on_message
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            boxes.append((c, subscribed))
        for _, ev in boxes:
            assert ev.wait(10), "a station could not subscribe"
        with TestClient(app, follow_redirects=False) as raw:  # runs the lifespan: the server's MQTT listener
            token = CSRF.search(raw.get("/login").text).group(1)  # type: ignore[union-attr]
            assert raw.post("/login", data={"csrf_token": token, "name": "wang", "password": PASSWORD,
                                            "next": "/"}).status_code == 303
            token = _csrf(raw, "/alerts/new")
            choice = {"csrf_token": token, "script": "fraud-96110", "scope": "township", "township": "dazhuang",
                      "expires": "30m"}
            ask = raw.post("/alerts", data=choice)  # a whole township is confirmed first
            assert ask.status_code == 200 and 'id="confirm"' in ask.text, ask.text
            confirm = re.search(r'name="confirm" value="([0-9a-f]+)"', ask.text).group(1)  # type: ignore[union-attr]
            sent = raw.post("/alerts", data={**choice, "confirm": confirm})
            assert sent.status_code == 303, sent.text
            alert_id = sent.headers["location"].rsplit("/", 1)[1]
            page = raw.get(sent.headers["location"])
            assert page.status_code == 200 and "/static/alert.js" in page.text and "已发出" in page.text
            # 大庄镇: the 2 station boxes, 5 networked villages (through the scheduler), 3 U盘村 listed
            assert re.search(r'data-count="targets">7<', page.text) and re.search(r'data-count="played">0<', page.text)
            assert "3 个村无法即时插播（U盘村）" in page.text
            wait_for("both stations to get the alert", lambda: len(got) == 2, 15)
            assert {m["alert_id"] for m in got.values()} == {alert_id}
            assert all(m["script_id"] == "fraud-96110" for m in got.values())
            sent_at = datetime.fromisoformat(got[regs[0]["station_id"]]["sent_at"])
            # The boxes report back on their own ack topics, as outreach.station.control does.
            for (c, _), reg, delay in zip(boxes, regs, (2.0, 5.0)):
                t = topic(reg["station_id"], Leaf.ACK)
                c.publish(t, json.dumps({"alert_id": alert_id, "state": "delivered",
                                         "at": (sent_at + timedelta(seconds=1)).isoformat()}), qos=1).wait_for_publish(5)
            status = wait_for("the server to record both deliveries",
                              lambda: (j := raw.get(f"/alerts/{alert_id}.json").json())["counts"]["delivered"] == 2
                              and j, 15)
            assert {k: status["counts"][k] for k in ("targets", "delivered", "played", "stations_delivered")} == \
                {"targets": 7, "delivered": 2, "played": 0, "stations_delivered": 2}
            c, _ = boxes[0]
            c.publish(topic(regs[0]["station_id"], Leaf.ACK), json.dumps(
                {"alert_id": alert_id, "state": "played", "at": (sent_at + timedelta(seconds=2)).isoformat()}),
                qos=1).wait_for_publish(5)
            # A box cannot ack for another: the broker's ACL drops a publish on someone else's topic.
            c.publish(topic(regs[1]["station_id"], Leaf.ACK), json.dumps(
                {"alert_id": alert_id, "state": "played", "at": (sent_at + timedelta(seconds=1)).isoformat()}),
                qos=1).wait_for_publish(5)
            c2, _ = boxes[1]
            c2.publish(topic(regs[1]["station_id"], Leaf.ACK), json.dumps(
                {"alert_id": alert_id, "state": "played", "at": (sent_at + timedelta(seconds=5)).isoformat()}),
                qos=1).wait_for_publish(5)
            status = wait_for("both plays", lambda: (j := raw.get(f"/alerts/{alert_id}.json").json())["counts"]
                              ["played"] == 2 and j, 15)
            assert status["latency_s"] == {"p50": 3.5, "p95": 5.0, "max": 5.0}
            page = raw.get(f"/alerts/{alert_id}").text
            assert re.search(r'data-count="played">2<', page) and re.search(r'data-latency="max">5.0<', page)
            assert page.count('class="badge played">已播出') == 2
            listing = raw.get("/stations").text
            assert f'href="/alerts/{alert_id}"' in listing
        for c, _ in boxes:
            c.disconnect()
            c.loop_stop()
    finally:
        broker.stop()


# --- 紧急插播 for every village: the form, the confirmation step, networked and USB villages ----------------


def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """No broker configured (tools/test exports one for the whole run)."""
    for key in ("OUTREACH_BROKER_URL", "OUTREACH_BROKER_USERNAME", "OUTREACH_BROKER_PASSWORD"):
        monkeypatch.delenv(key, raising=False)


def _channel_counts(html: str, township: str) -> dict[str, str]:
    row = re.search(rf'<li data-township="{township}".*?</li>', html, re.S).group(0)  # type: ignore[union-attr]
    return dict(re.findall(r'data-channel="(\w+)">(\d+)<', row))


def test_alert_form_shows_who_it_reaches_by_channel_and_the_broker_before_sending(  # type: ignore[no-untyped-def]
        workspace: Path, make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_broker(monkeypatch)
    now = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
    _, engine, _, app = make_site(workspace, now)
    _station_row(engine, "dazhuang-01-aaaaaa", "dazhuang-01", now)  # dazhuang-02 is a station village with no box
    html = _client(app, "wang").get("/alerts/new").text
    before = html.split('id="alert-form"', 1)[0]
    assert "没有配置消息服务器" in before and "联网村不受影响" in before  # said up front, not after 发送
    assert 'id="scheduler-state"' in before  # no scheduler runs: networked villages would wait for it
    assert _channel_counts(html, "大庄镇") == {"stations": "1", "live": "5", "usb": "3", "unregistered": "1"}
    assert _channel_counts(html, "全县") == {"stations": "1", "live": "18", "usb": "10", "unregistered": "1"}
    assert "李家洼村（U盘）" in html and "前营村（播放盒）" in html and "后营村</label>" in html
    listen = html.split('id="listen"', 1)[1].split("</details>", 1)[0]  # 试听 every approved script first
    assert '<audio controls preload="none" src="/audio/clips/fraud-96110"></audio>' in listen
    assert "全县（发出前要确认）" in html


def test_alert_form_mistakes_come_back_inline_with_the_choices_kept(  # type: ignore[no-untyped-def]
        workspace: Path, make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_broker(monkeypatch)
    _, engine, _, app = make_site(workspace, datetime(2026, 12, 10, 9, 30, tzinfo=TZ))
    editor = _client(app, "wang")
    token = _csrf(editor, "/alerts/new")
    no_village = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "village",
                                              "township": "lishu", "expires": "30m"})
    assert no_village.status_code == 400 and 'id="alert-form"' in no_village.text
    html = no_village.text
    assert re.search(r'id="form-error">[^<]*没有勾选村', html)
    assert '<option value="fraud-96110" selected>' in html and '<option value="30m" selected>' in html
    assert re.search(r'value="village"\s+checked', html) and re.search(r'value="lishu"\s+checked', html)
    draft = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-seven-tools", "scope": "township",
                                         "township": "dazhuang", "expires": "6h"})
    assert draft.status_code == 400 and "签发" in draft.text and 'id="alert-form"' in draft.text
    assert re.search(r'value="dazhuang"\s+checked', draft.text) and '<option value="6h" selected>' in draft.text
    usb_only = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "village",
                                            "village": "dazhuang-05", "expires": "30m"})
    assert usb_only.status_code == 400 and "1 个U盘村无法即时插播" in usb_only.text
    assert re.search(r'value="dazhuang-05"\s+checked', usb_only.text)
    with session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_township_alert_is_confirmed_then_reaches_networked_villages_and_lists_usb(  # type: ignore[no-untyped-def]
        rendered_workspace: Path, make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from outreach.cli import cli
    from outreach.delivery.live import alerts as live_alerts

    _no_broker(monkeypatch)
    now = datetime.now(TZ)
    _, engine, _, app = make_site(rendered_workspace, now)
    _station_row(engine, "dazhuang-01-aaaaaa", "dazhuang-01", now)
    editor = _client(app, "wang")
    token = _csrf(editor, "/alerts/new")
    boxes_only = editor.post("/alerts", data={"csrf_token": token, "script": "fraud-96110", "scope": "village",
                                              "village": "dazhuang-01", "expires": "30m"})
    assert boxes_only.status_code == 400 and "没有配置消息服务器" in boxes_only.text  # nothing else could hear it
    choice = {"csrf_token": token, "script": "fraud-96110", "scope": "township", "township": "dazhuang",
              "expires": "30m"}
    ask = editor.post("/alerts", data=choice)
    assert ask.status_code == 200, ask.text
    panel = ask.text.split('id="confirm"', 1)[1].split("</section>", 1)[0]
    assert 'data-confirm="stations">1<' in panel and 'data-confirm="live">5<' in panel
    assert "3 个村无法即时插播（U盘村）：李家洼村、西岗村、枣园村" in panel and "没有配置消息服务器" in panel
    assert '<audio controls preload="metadata" src="/audio/clips/fraud-96110">' in panel
    confirm = re.search(r'name="confirm" value="([0-9a-f]+)"', panel).group(1)  # type: ignore[union-attr]
    changed = editor.post("/alerts", data={**choice, "expires": "1h", "confirm": confirm})
    assert changed.status_code == 200 and 'id="confirm"' in changed.text  # another choice is asked again
    with session(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0
    sent = editor.post("/alerts", data={**choice, "confirm": confirm})
    assert sent.status_code == 303, sent.text
    alert_id = sent.headers["location"].rsplit("/", 1)[1]
    page = editor.get(sent.headers["location"]).text
    assert "5 个联网村" in page and "播放盒没有收到：没有配置消息服务器" in page
    assert "3 个村无法即时插播（U盘村）：李家洼村、西岗村、枣园村" in page
    assert re.search(r'data-count="targets">5<', page) and page.count("（联网村）") == 5
    # The leading scheduler takes it once (live.alerts) and reports it played, as a box acks.
    waiting = live_alerts.waiting(engine, {"dazhuang-03"}, now)
    assert [a.alert_id for a in waiting] == [alert_id]
    assert live_alerts.take(engine, waiting[0], now) and not live_alerts.take(engine, waiting[0], now)
    assert live_alerts.waiting(engine, {"dazhuang-03"}, now) == []
    assert live_alerts.waiting(engine, {"dazhuang-04"}, now + timedelta(minutes=31)) == []  # expired
    live_alerts.mark_played(engine, waiting[0], now + timedelta(seconds=3))
    status = editor.get(f"/alerts/{alert_id}.json").json()
    assert status["delivered"] == status["played"] == ["live:dazhuang-03"] and status["latency_s"]["max"] == 3.0
    assert (status["counts"]["live_played"], status["counts"]["live_targets"]) == (1, 5)
    assert status["usb"] == ["dazhuang-05", "dazhuang-07", "dazhuang-09"]
    out = CliRunner().invoke(cli, ["alert", "status", alert_id, "-w", str(rendered_workspace)])
    assert out.exit_code == 0 and "联网村 1/5" in out.output and "3 个U盘村无法即时插播" in out.output, out.output

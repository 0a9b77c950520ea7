"""Stations stay in their lane: what a hostile station (with its own valid token) must not be able to do.

- take over another station's MQTT session by using its client id (real Mosquitto);
- make the server record plays that were never sent to it, or at impossible times;
- block its own uploads with one bad event, or crash the server with odd JSON;
- exhaust the server's memory with a huge body;
- collide with another station's event ids.
And the blob store serves RFC 9110 ranges, the station drops refused events and moves on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import types
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from station_harness import (
    SERVER_PASSWORD, TZ, Broker, Server, cli, db_rows, mark_station_villages, set_slots, wait_for,
)

from outreach.config import load_config
from outreach.db import session
from outreach.delivery.stations.accounts import add_station
from outreach.delivery.stations.manifests import blob_dir, store_blob
from outreach.models import Alert, AlertDelivery, Broadcast, StationEvent, StationEventRejected
from outreach.planning.workspace import load, open_database
from outreach.station.protocol import AsRunEvent, CampaignPart, EventKind, Leaf, topic
from outreach.web import create_app

pytestmark = pytest.mark.security
HAS_MOSQUITTO = shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")
VILLAGES = ("dazhuang-01", "dazhuang-02")
SLOT = "morning"
_BROKER_ENV = ("OUTREACH_BROKER_URL", "OUTREACH_BROKER_USERNAME", "OUTREACH_BROKER_PASSWORD",
               "OUTREACH_BROKER_PASSWORD_FILE", "OUTREACH_BROKER_ACL_FILE", "OUTREACH_BROKER_PID_FILE")


def _eid() -> str:
    return uuid.uuid4().hex


# --- a county server in-process (TestClient), with the morning slot moved to one minute ago -------------------


@pytest.fixture
def site(rendered_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'sec.db'}")
    for key in _BROKER_ENV:
        monkeypatch.delenv(key, raising=False)
    mark_station_villages(rendered_workspace, VILLAGES)
    loaded = load(load_config(rendered_workspace))
    engine = open_database(loaded)
    now = datetime.now(TZ)
    slots = tmp_path / "slots.json"
    start = now - timedelta(seconds=60)
    set_slots(slots, [{"village_id": v, "date": now.date().isoformat(), "slot": SLOT, "start": start.isoformat()}
                      for v in VILLAGES])
    app = create_app(loaded.config, engine=engine, slot_starts=slots)
    regs = {v: add_station(engine, loaded, v, now=now, server_url="http://127.0.0.1", broker=None) for v in VILLAGES}
    with TestClient(app) as client:
        yield {"client": client, "engine": engine, "loaded": loaded, "regs": regs, "now": now, "start": start}
    engine.dispose()


def _auth(reg: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {reg['token']}"}


def _entry(site: dict[str, Any], village: str) -> dict[str, Any]:
    """Today's morning entry of the village's manifest, as the station receives it."""
    out = site["client"].get("/api/station/manifest?days=2", headers=_auth(site["regs"][village]))
    assert out.status_code == 200, out.text
    manifest = out.json()
    entry = next(e for e in manifest["entries"] if e["date"] == site["now"].date().isoformat() and e["slot"] == SLOT)
    entry["fallback"] = manifest["fallback"]
    return entry


def _played(entry: dict[str, Any], at: datetime, **changes: Any) -> dict[str, Any]:
    ev = {"event_id": _eid(), "kind": "played", "at": at.isoformat(), "entry_id": entry["entry_id"],
          "date": entry["date"], "slot": entry["slot"], "scheduled_at": entry["start"], "sha256": entry["sha256"],
          "engine": entry["engine"], "campaigns": entry["campaigns"], "alert_id": "", "detail": ""}
    return ev | changes


def _post(site: dict[str, Any], village: str, events: Any) -> Any:
    return site["client"].post("/api/station/events", headers=_auth(site["regs"][village]),
                               content=json.dumps({"events": events}))


def _broadcast(engine: sa.Engine, village: str, day: str, slot: str) -> dict[str, str]:
    with session(engine) as s:
        return {c: str(st) for c, st in s.execute(sa.select(Broadcast.campaign_id, Broadcast.status).where(
            Broadcast.village_id == village, Broadcast.date == datetime.fromisoformat(day).date(),
            Broadcast.slot == slot)).all()}


# --- 1. the broker ties the client id to the user name --------------------------------------------------------


@pytest.mark.skipif(not HAS_MOSQUITTO, reason="Mosquitto is not installed (tools/test installs it)")
def test_a_station_cannot_knock_another_off_with_its_client_id(tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt

    from outreach.delivery.stations.broker import mosquitto_hash, server_client, write_auth_files

    broker = Broker(tmp_path / "broker")
    tokens = {"dazhuang-01-aaaaaa": "token-a-" + _eid(), "dazhuang-02-bbbbbb": "token-b-" + _eid()}
    a, b = tokens
    write_auth_files(broker.settings, [(sid, mosquitto_hash(t)) for sid, t in tokens.items()],
                     server_hash=mosquitto_hash(SERVER_PASSWORD))
    broker.start()
    clients: list[Any] = []
    try:
        got: list[bytes] = []
        b_down = threading.Event()
        b_ready = threading.Event()
        cb = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=b, protocol=mqtt.MQTTv5)
        cb.username_pw_set(b, tokens[b])
        cb.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic(b, Leaf.ALERT), qos=1)
        cb.on_subscribe = lambda *args: b_ready.set()
        cb.on_disconnect = lambda *args: b_down.set()
        cb.on_message = lambda c, u, msg: got.append(msg.payload)
        cb.connect("127.0.0.1", broker.port)
        cb.loop_start()
        clients.append(cb)
        assert b_ready.wait(10), "station B could not subscribe"
        # The server's listener is connected too; an alert sender must not knock it off either.
        listener_down = threading.Event()
        listener_ready = threading.Event()
        listener = server_client(broker.settings)
        listener.on_connect = lambda c, u, f, rc, p=None: listener_ready.set()
        listener.on_disconnect = lambda *args: listener_down.set()
        listener.connect("127.0.0.1", broker.port)
        listener.loop_start()
        clients.append(listener)
        assert listener_ready.wait(10)
        # Station A logs in with its own token but B's client id.
        a_in = threading.Event()
        ca = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=b, protocol=mqtt.MQTTv5)
        ca.username_pw_set(a, tokens[a])
        ca.on_connect = lambda c, u, f, rc, p=None: a_in.set()
        ca.connect("127.0.0.1", broker.port)
        ca.loop_start()
        clients.append(ca)
        assert a_in.wait(10)
        time.sleep(1.5)
        assert not b_down.is_set(), "station A's connection dropped station B"
        # B keeps receiving: the server sends it an alert under its alert account.
        sender = server_client(broker.settings, role="alert")
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        clients.append(sender)
        sender.publish(topic(b, Leaf.ALERT), b"alert-for-b", qos=1).wait_for_publish(5)
        wait_for("station B to get its alert", lambda: got == [b"alert-for-b"], 10, 0.05)
        assert not b_down.is_set() and not listener_down.is_set()
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.stop()


def test_broker_configs_tie_client_id_to_user_name() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "use_username_as_clientid true" in (root / "tools" / "test").read_text()
    assert "use_username_as_clientid true" in (root / "README.md").read_text()


# --- 2. events are checked against what the server sent that station ---------------------------------------------


def test_events_not_sent_to_the_station_are_refused_one_by_one(site: dict[str, Any]) -> None:
    v = VILLAGES[0]
    entry = _entry(site, v)
    now, start = datetime.now(TZ), site["start"]
    good = _played(entry, now)
    fallback = entry["fallback"]
    fallback_play = _played(entry, now, event_id=_eid(), entry_id=f"fallback/{entry['entry_id']}",
                            sha256=fallback["sha256"], campaigns=fallback["campaigns"])
    bad = {
        "unknown campaign": _played(entry, now, campaigns=[{"campaign_id": "no-such-campaign",
                                                            "script_ids": ["not-a-script"]}]),
        "unknown script": _played(entry, now, campaigns=[{"campaign_id": entry["campaigns"][0]["campaign_id"],
                                                          "script_ids": ["not-a-script"]}]),
        "400 days ahead": _played(entry, now + timedelta(days=400),
                                  date=(now + timedelta(days=400)).date().isoformat()),
        "3 days before its slot": _played(entry, start - timedelta(days=3)),
        "in the future": _played(entry, now + timedelta(minutes=10)),
        "unknown slot": _played(entry, now, slot="noon", entry_id=""),
        "no campaigns": _played(entry, now, campaigns=[]),
        "entry of another slot": _played(entry, now, entry_id=f"{entry['date']}/evening"),
    }
    out = _post(site, v, [bad["unknown campaign"], good, *list(bad.values())[1:], fallback_play])
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["accepted"] == [good["event_id"], fallback_play["event_id"]]
    results = {r["event_id"]: r for r in body["results"]}
    for what, ev in bad.items():
        r = results[ev["event_id"]]
        assert r["status"] == 422 and r["reason"], (what, r)
        assert any("\u4e00" <= c <= "\u9fff" for c in r["reason"]), (what, r)  # a Chinese reason
    assert "no-such-campaign" in results[bad["unknown campaign"]["event_id"]]["reason"]
    assert results[good["event_id"]]["status"] == 200
    # Only the good play reached the as-run log; the refused ones are kept for the dashboard.
    rows = _broadcast(site["engine"], v, entry["date"], SLOT)
    assert "no-such-campaign" not in rows and rows and set(rows.values()) == {"played"}
    with session(site["engine"]) as s:
        refused = s.scalars(sa.select(StationEventRejected)).all()
        assert {r.event_id for r in refused} == {ev["event_id"] for ev in bad.values()}
        assert all(r.station_id == site["regs"][v]["station_id"] and r.payload.startswith("{") for r in refused)
    # Sending the same batch again changes nothing and adds no rows.
    again = _post(site, v, [good, bad["unknown campaign"]]).json()
    assert again["accepted"] == [good["event_id"]] and again["results"][1]["status"] == 422
    with session(site["engine"]) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(StationEventRejected)) == len(bad)


def test_alert_played_only_for_an_alert_sent_to_this_station(site: dict[str, Any]) -> None:
    a, b = (site["regs"][v]["station_id"] for v in VILLAGES)
    now = datetime.now(TZ)
    with session(site["engine"]) as s:
        s.add(Alert(id="a1b2c3d4e5f60718", script_id="fraud-96110", sha256="0" * 64, targets=json.dumps([a]),
                    sent_at=now - timedelta(minutes=1), expires_at=now + timedelta(hours=1)))

    def alert(alert_id: str) -> dict[str, Any]:
        return {"event_id": _eid(), "kind": "alert_played", "at": now.isoformat(), "alert_id": alert_id}

    other, empty, unknown = alert("a1b2c3d4e5f60718"), alert(""), alert("ffffffffffffffff")
    out = _post(site, VILLAGES[1], [other, empty, unknown]).json()
    assert out["accepted"] == []
    assert [r["status"] for r in out["results"]] == [403, 422, 422]
    own = alert("a1b2c3d4e5f60718")
    assert _post(site, VILLAGES[0], [own]).json()["accepted"] == [own["event_id"]]
    with session(site["engine"]) as s:
        assert sorted(r.station_id for r in s.scalars(sa.select(AlertDelivery))) == [a]
        # The MQTT ack path refuses the same: B cannot mark A's alert played.
        from outreach.delivery.stations.alerts import record_alert_play

        record_alert_play(s, "a1b2c3d4e5f60718", b, now)
    from outreach.delivery.stations.alerts import alert_status

    assert alert_status(site["engine"], "a1b2c3d4e5f60718")["played"] == [a]


# --- 3. one bad event never blocks the others, and never makes a 500 ------------------------------------------------


def test_malformed_events_get_a_400_each_and_never_a_500(site: dict[str, Any]) -> None:
    v = VILLAGES[0]
    entry = _entry(site, v)
    good = _played(entry, datetime.now(TZ))
    odd: list[Any] = [1, None, [], [[]], "x", {"event_id": "short"},
                      _played(entry, datetime.now(TZ)) | {"at": "9999-12-31T23:59:59-08:00"},
                      _played(entry, datetime.now(TZ)) | {"at": "0001-01-01T00:00:00+08:00"},
                      _played(entry, datetime.now(TZ)) | {"at": "2026-12-06T12:00:00"},
                      _played(entry, datetime.now(TZ)) | {"kind": "exploded"},
                      _played(entry, datetime.now(TZ)) | {"campaigns": "abc"},
                      _played(entry, datetime.now(TZ)) | {"campaigns": [[]]},
                      _played(entry, datetime.now(TZ)) | {"slot": 7}]
    out = _post(site, v, [*odd, good])
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["accepted"] == [good["event_id"]]
    assert [r["status"] for r in body["results"]] == [400] * len(odd) + [200]
    assert _broadcast(site["engine"], v, entry["date"], SLOT) and \
        set(_broadcast(site["engine"], v, entry["date"], SLOT).values()) == {"played"}
    # Whole-batch problems are a 4xx with a reason, never a 500.
    deep = site["client"].post("/api/station/events", headers=_auth(site["regs"][v]),
                               content=b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert deep.status_code == 400 and "嵌套" in deep.json()["error"]
    for raw in (b"[1]", b"null", b"{not json", b'{"events": 1}'):
        r = site["client"].post("/api/station/events", headers=_auth(site["regs"][v]), content=raw)
        assert r.status_code == 400, (raw, r.text)


# --- 4. event ids are scoped per station ---------------------------------------------------------------------------


def test_event_ids_are_unique_per_station_not_county_wide(site: dict[str, Any]) -> None:
    shared = "same-event-id-0001"
    for v in VILLAGES:
        entry = _entry(site, v)
        out = _post(site, v, [_played(entry, datetime.now(TZ), event_id=shared)]).json()
        assert out["accepted"] == [shared]
        assert set(_broadcast(site["engine"], v, entry["date"], SLOT).values()) == {"played"}, v
    with session(site["engine"]) as s:
        assert sorted(s.scalars(sa.select(StationEvent.station_id).where(StationEvent.event_id == shared))) == \
            sorted(site["regs"][v]["station_id"] for v in VILLAGES)


# --- 5. bodies are capped --------------------------------------------------------------------------------------------


def test_bodies_are_capped_by_length_and_while_streaming(site: dict[str, Any]) -> None:
    v = VILLAGES[0]
    entry = _entry(site, v)
    big = json.dumps({"events": [_played(entry, datetime.now(TZ), detail="x" * 1_500_000)]}).encode()
    r = site["client"].post("/api/station/events", headers=_auth(site["regs"][v]), content=big)
    assert r.status_code == 413 and "字节" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for i in range(0, len(big), 64 * 1024):
            yield big[i:i + 64 * 1024]

    r = site["client"].post("/api/station/events", headers=_auth(site["regs"][v]), content=chunks())
    assert r.status_code == 413
    with session(site["engine"]) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(StationEvent)) == 0


# --- 6. RFC 9110 ranges -----------------------------------------------------------------------------------------------


def test_blob_ranges_follow_rfc_9110(site: dict[str, Any], tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    src = tmp_path / "clip.mp3"
    src.write_bytes(data)
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    store_blob(blob_dir(site["loaded"]), src, sha)
    headers = _auth(site["regs"][VILLAGES[0]])

    def get(rng: str) -> Any:
        return site["client"].get(f"/api/station/blobs/{sha}", headers=headers | {"Range": rng})

    r = get("bytes=-10")
    assert r.status_code == 206 and r.content == data[-10:]
    assert r.headers["content-range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
    r = get("bytes=-5000")
    assert r.status_code == 206 and r.content == data
    r = get("bytes=1000-")
    assert r.status_code == 206 and r.content == data[1000:]
    r = get("bytes=10-19")
    assert r.status_code == 206 and r.content == data[10:20]
    for rng in (f"bytes={len(data)}-", "bytes=-0"):
        r = get(rng)
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}", rng


# --- 3 (station side). the box drops refused events after they are reported, so it is never stuck ------------------


def test_station_keeps_refused_events_aside_and_is_never_stuck(rendered_workspace: Path, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from outreach.station.runner import Runtime
    from outreach.station.store import Store
    from outreach.station.sync import Client

    ws = rendered_workspace
    mark_station_villages(ws, VILLAGES)
    now = datetime.now(TZ)
    slots = tmp_path / "slots.json"
    set_slots(slots, [{"village_id": VILLAGES[0], "date": now.date().isoformat(), "slot": SLOT,
                       "start": (now - timedelta(seconds=60)).isoformat()}])
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and k not in _BROKER_ENV} | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    server = Server(ws, env, "--slot-starts", str(slots))
    server.start()
    try:
        reg = cli(ws, env, "station", "add", VILLAGES[0], "--server-url", server.url, "--json")
        client = Client(server.url, reg["token"], timeout_s=30)
        manifest, _ = client.manifest(2)
        entry = next(e for e in manifest.entries if e.date == now.date().isoformat() and e.slot == SLOT)
        store = Store(tmp_path / "station.sqlite")
        at = datetime.now(TZ).isoformat()
        good = AsRunEvent(_eid(), EventKind.PLAYED, at, entry.entry_id, entry.date, entry.slot, entry.start,
                          entry.sha256, entry.engine, entry.campaigns)
        # 150 refused events ahead of the good one: more than one batch of 100, as a station stuck before would hold.
        bad = [AsRunEvent(_eid(), EventKind.PLAYED, at, entry.entry_id, entry.date, entry.slot, entry.start,
                          entry.sha256, entry.engine, (CampaignPart("no-such-campaign", ("not-a-script",)),))
               for _ in range(150)]
        for i, ev in enumerate([*bad, good]):
            store.finish_play(f"k{i}", ev)
        box = types.SimpleNamespace(store=store, client=client)
        with caplog.at_level(logging.WARNING, logger="outreach.station"):
            assert Runtime.upload_once(box) == 1  # type: ignore[arg-type]
        assert store.pending_events() == []
        refused = store.refused_events()
        assert len(refused) == 150 and all("no-such-campaign" in reason for _, reason in refused)
        assert any("县服务器拒收了播出记录" in m for m in caplog.messages)
        assert Runtime.upload_once(box) == 0  # type: ignore[arg-type]  # nothing is sent again
        store.close()
        assert db_rows(ws, "SELECT status FROM broadcast WHERE village_id = ? AND date = ? AND slot = ?",
                       (VILLAGES[0], entry.date, SLOT)) and \
            {r[0] for r in db_rows(ws, "SELECT status FROM broadcast WHERE village_id = ? AND date = ? AND slot = ?",
                                   (VILLAGES[0], entry.date, SLOT))} == {"played"}
        assert db_rows(ws, "SELECT COUNT(*) FROM station_event_rejected")[0][0] == 150
    finally:
        server.stop()


def test_stations_page_shows_refused_events(site: dict[str, Any]) -> None:
    import re

    from argon2 import PasswordHasher

    from outreach.web.auth import USERS_FILE, UserStore

    v = VILLAGES[0]
    entry = _entry(site, v)
    bad = _played(entry, datetime.now(TZ), campaigns=[{"campaign_id": "no-such-campaign", "script_ids": ["x"]}])
    assert _post(site, v, [bad]).json()["results"][0]["status"] == 422
    store = UserStore(site["loaded"].config.workspace / USERS_FILE, PasswordHasher(time_cost=1, memory_cost=8,
                                                                                   parallelism=1))
    store.add("zhao", "viewer", "qinghe-2026", now=site["now"])
    c = site["client"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"csrf_token": token, "name": "zhao", "password": "qinghe-2026", "next": "/"},
                  follow_redirects=False).status_code == 303
    page = c.get("/stations").text
    assert "被拒收的播出记录" in page and 'id="refused"' in page
    section = page.split('id="refused"', 1)[1].split("</table>", 1)[0]
    assert bad["event_id"] in section and "no-such-campaign" in section
    assert re.search(r"共 <b>1</b> 条", page)


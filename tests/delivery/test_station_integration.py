"""Village stations end to end: real Mosquitto, real `outreach serve`, stations as subprocesses (file output).

Slots are moved to a few seconds ahead through `serve --slot-starts FILE`; the
fake output plays 20x faster than real time and writes the decoded PCM. The alert tests are in
test_station_alerts.py, on a county of their own (station_county.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from station_county import (  # noqa: F401 (county: a fixture)
    MARKS, TODAY, as_run_rows, county, override, starts, station,
)
from station_harness import TZ, Broker, cli, db_rows, wait_for

pytestmark = MARKS


def test_first_sync_slot_on_time_and_server_down_slot_arrives_once(county: dict) -> None:
    st = station(county, "dazhuang-01", "st1")
    st.start()
    wait_for("first sync (manifest + every blob verified)", st.synced, 60)
    override(county, "dazhuang-01", "morning", 8)
    override(county, "dazhuang-01", "evening", 30)
    wanted = county["overrides"][-2]["start"]
    wait_for("a re-sync with the moved slot", lambda: any(
        e["start"] == wanted for e in (st.manifest() or {"entries": []})["entries"]), 10)
    m = st.manifest()
    assert m["village_id"] == "dazhuang-01" and m["station_id"] == st.station_id
    assert m["fallback"] and len({e["date"] for e in m["entries"]}) >= 6
    tokens = json.loads((county["ws"] / "users.json").read_text()) if (county["ws"] / "users.json").exists() else {}
    assert st.reg["token"] not in json.dumps(tokens)
    # slot A: played on time
    label_a = f"{TODAY()}/morning"
    start_a = next(e["start"] for e in m["entries"] if e["entry_id"] == label_a)
    first = wait_for("slot A to start", lambda: starts(st, label_a), 20)
    assert abs(first[0]["t"] - datetime.fromisoformat(start_a).timestamp()) < 2.0, st.log()
    wait_for("slot A as-run row played",
             lambda: {r[0] for r in as_run_rows(county, "dazhuang-01", "morning")} == {"played"}, 30)
    # slot B: server and broker down for the slot
    county["server"].stop()
    county["broker"].stop()
    label_b = f"{TODAY()}/evening"
    wait_for("slot B to play with the server down", lambda: [p for p in st.plays()
                                                             if p["label"] == label_b and p["event"] == "end"], 60)
    assert {r[0] for r in as_run_rows(county, "dazhuang-01", "evening")} <= {"planned"}
    county["broker"].start()
    county["server"].start()
    wait_for("slot B as-run after the server returns",
             lambda: {r[0] for r in as_run_rows(county, "dazhuang-01", "evening")} == {"played"}, 30)
    events = db_rows(county["ws"], "SELECT kind, count(*) FROM station_event WHERE station_id = ? GROUP BY kind",
                     (st.station_id,))
    assert dict(events) == {"played": 2}
    # the PCM written is the program's length: it really aired whole
    pcm = st.out / f"{label_b.replace('/', '_')}.pcm"
    duration = next(e["duration_s"] for e in m["entries"] if e["entry_id"] == label_b)
    assert pcm.stat().st_size / 2 / 22050 == pytest.approx(duration, abs=2.5)
    # an upload repeated after a lost reply changes nothing
    payload = json.loads(subprocess.run(
        ["sqlite3", str(st.data / "station.sqlite"), "SELECT json_group_array(json(payload)) FROM events"],
        capture_output=True, text=True, timeout=30).stdout or "[]") if shutil.which("sqlite3") else None
    if payload is None:
        import sqlite3

        con = sqlite3.connect(str(st.data / "station.sqlite"))
        payload = [json.loads(r[0]) for r in con.execute("SELECT payload FROM events")]
        con.close()
    before = db_rows(county["ws"], "SELECT id, status, played_at, updated_at FROM broadcast WHERE village_id = ?",
                     ("dazhuang-01",))
    req = urllib.request.Request(county["server"].url + "/api/station/events", method="POST",
                                 data=json.dumps({"events": payload}).encode(),
                                 headers={"Authorization": f"Bearer {st.reg['token']}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert sorted(json.loads(resp.read())["accepted"]) == sorted(e["event_id"] for e in payload)
    after = db_rows(county["ws"], "SELECT id, status, played_at, updated_at FROM broadcast WHERE village_id = ?",
                    ("dazhuang-01",))
    assert before == after
    assert len(starts(st, label_a)) == 1 and len(starts(st, label_b)) == 1


def test_download_resumes_from_a_killed_part_and_rejects_corruption(county: dict, tmp_path: Path) -> None:
    from outreach.station.sync import Client

    st = county["stations"][0]
    m = st.manifest()
    sha, size = m["fallback"]["sha256"], m["fallback"]["size"]
    whole = (st.data / "blobs" / f"{sha}.mp3").read_bytes()
    folder = tmp_path / "blobs"
    folder.mkdir()
    (folder / f"{sha}.part").write_bytes(whole[: size // 3])  # what a kill -9 mid-download leaves
    client = Client(county["server"].url, st.reg["token"])
    out = client.download(sha, folder, expected_size=size)
    assert out.read_bytes() == whole and not (folder / f"{sha}.part").exists()
    out.unlink()
    (folder / f"{sha}.part").write_bytes(b"\0" * (size // 2))  # a torn part with wrong bytes
    with pytest.raises(Exception, match="sha256"):
        client.download(sha, folder, expected_size=size)
    assert not (folder / f"{sha}.part").exists()
    assert client.download(sha, folder, expected_size=size).read_bytes() == whole
    # a Range request past the end is refused, a middle range is served as 206
    req = urllib.request.Request(f"{county['server'].url}/api/station/blobs/{sha}",
                                 headers={"Authorization": f"Bearer {st.reg['token']}", "Range": "bytes=10-19"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 206 and resp.read() == whole[10:20]


def test_station_killed_mid_download_resumes_and_completes(county: dict) -> None:
    st = station(county, "dazhuang-08", "st8")
    st.start()
    wait_for("the first sync to begin", lambda: (st.data / "blobs").exists(), 20, 0.005)
    time.sleep(0.05)
    part = sorted(p.name for p in (st.data / "blobs").iterdir())
    st.kill9()
    st.start()
    wait_for("sync to complete after kill -9", st.synced, 20)
    assert not list((st.data / "blobs").glob("*.part")), part


def test_kill9_mid_play_never_plays_twice_and_is_recorded_interrupted(county: dict) -> None:
    override(county, "dazhuang-02", "morning", 8)
    st = station(county, "dazhuang-02", "st2")
    st.start()
    wait_for("sync", st.synced, 20)
    label = f"{TODAY()}/morning"
    wait_for("the play to start", lambda: starts(st, label), 20)
    time.sleep(1.5)
    st.kill9()
    st.start()
    wait_for("interrupted as-run",
             lambda: {r[0] for r in as_run_rows(county, "dazhuang-02", "morning")} == {"interrupted"}, 30)
    time.sleep(3)
    assert len(starts(st, label)) == 1, st.plays()
    rows = as_run_rows(county, "dazhuang-02", "morning")
    assert all("不再重播" in (r[3] or "") and st.station_id in (r[3] or "") for r in rows), rows
    assert db_rows(county["ws"], "SELECT count(*) FROM station_event WHERE station_id = ?", (st.station_id,)) == [(1,)]


def _mosquitto(tool: str, broker: Broker, user: str, password: str, *args: str, timeout: float = 10) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run([tool, "-h", "127.0.0.1", "-p", str(broker.port), "-u", user, "-P", password, *args],
                          capture_output=True, text=True, timeout=timeout)


def test_revoked_token_is_refused_by_http_and_broker(county: dict) -> None:
    reg = cli(county["ws"], county["env"], "station", "add", "dazhuang-03", "--server-url", county["server"].url,
              "--json")
    url = county["server"].url + "/api/station/manifest?days=1"
    auth = {"Authorization": f"Bearer {reg['token']}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=30) as resp:
        assert json.loads(resp.read())["village_id"] == "dazhuang-03"
    ok = _mosquitto("mosquitto_sub", county["broker"], reg["station_id"], reg["token"], "-t",
                    f"outreach/station/{reg['station_id']}/alert", "-W", "1")
    assert ok.returncode == 27, ok.stderr  # 27: connected, then timed out waiting for messages
    cli(county["ws"], county["env"], "station", "revoke", reg["station_id"])
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10)
    assert err.value.code == 401
    refused = _mosquitto("mosquitto_sub", county["broker"], reg["station_id"], reg["token"], "-t",
                         f"outreach/station/{reg['station_id']}/alert", "-W", "2")
    assert refused.returncode == 5 and "not authorised" in refused.stderr.lower(), refused


def test_a_station_cannot_read_or_write_another_stations_topics(county: dict) -> None:
    a, b = county["stations"][0], county["stations"][2]
    broker = county["broker"]
    # HTTP: the manifest is chosen by the token; there is no way to name another station
    req = urllib.request.Request(county["server"].url + f"/api/station/manifest?station_id={b.station_id}",
                                 headers={"Authorization": f"Bearer {a.reg['token']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["station_id"] == a.station_id
    # MQTT: A publishes on B's heartbeat and on its own; only its own arrives
    spy = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "outreach-server-alert",
                            "-P", "server-secret-for-tests", "-t", f"outreach/station/{b.station_id}/heartbeat",
                            "-t", f"outreach/station/{a.station_id}/ack", "-v", "-W", "6"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    for t, msg in ((f"outreach/station/{b.station_id}/heartbeat", "forged-by-a"),
                   (f"outreach/station/{a.station_id}/ack", "own-topic-by-a")):
        out = _mosquitto("mosquitto_pub", broker, a.station_id, a.reg["token"], "-t", t, "-m", msg, "-q", "1")
        assert out.returncode == 0, out.stderr
    seen, _ = spy.communicate(timeout=15)
    assert "own-topic-by-a" in seen and "forged-by-a" not in seen, seen
    # and A cannot subscribe to B's alerts
    snoop = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", a.station_id,
                              "-P", a.reg["token"], "-t", f"outreach/station/{b.station_id}/alert", "-W", "5"],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    _mosquitto("mosquitto_pub", broker, "outreach-server-alert", "server-secret-for-tests", "-t",
               f"outreach/station/{b.station_id}/alert", "-m", "secret-for-b", "-q", "1")
    got, _ = snoop.communicate(timeout=15)
    assert "secret-for-b" not in got


def test_buffer_run_out_plays_the_fallback_program_at_the_slot(county: dict) -> None:
    """A box cut off for longer than its buffer still airs something at every slot: its fallback program."""
    from datetime import timedelta

    from station_harness import free_port

    st = station(county, "dazhuang-03", "stfb")
    st.start()
    wait_for("first sync (fallback downloaded)", st.synced, 60)
    st.stop()
    # The slot is placed now, not before the first sync, whose length varies with the machine's load.
    # The server checks each reported play against the slot's time: it is told the slot moved too.
    slot_at = override(county, "dazhuang-03", "morning", 10)
    if slot_at.date() != datetime.now(TZ).date():
        pytest.skip("too close to midnight in Asia/Shanghai for a same-day slot")
    # As if the box had been offline past its whole buffer: no entry covers today, and the
    # server is unreachable, so only its own fallback can fill the slot (moved to seconds ahead).
    m = st.manifest()
    fallback = m["fallback"]
    yesterday = (datetime.now(TZ).date() - timedelta(days=1)).isoformat()
    m.update(entries=[e for e in m["entries"] if e["date"] <= yesterday], buffered_until=yesterday,
             slots={"morning": slot_at.strftime("%H:%M:%S")})
    (st.data / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    st.server_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    st.start()
    label = f"fallback/{TODAY()}/morning"
    start = wait_for("the fallback to start at the slot", lambda: starts(st, label), 30)
    assert abs(start[0]["t"] - slot_at.timestamp()) < 2.0, st.log()
    assert start[0]["file"] == f"{fallback['sha256']}.mp3"
    wait_for("the fallback to air whole", lambda: [p for p in st.plays() if p["label"] == label
                                                  and p["event"] == "end"], 60)
    pcm = st.out / f"{label.replace('/', '_')}.pcm"
    assert pcm.stat().st_size / 2 / 22050 == pytest.approx(fallback["duration_s"], abs=2.5)
    # Back online: the fallback play lands once, as the slot's as-run row, with the default campaign.
    st.stop()
    st.server_url = county["server"].url
    st.start()
    wait_for("the fallback's as-run row", lambda: {r[0] for r in db_rows(
        county["ws"], "SELECT status FROM broadcast WHERE village_id = 'dazhuang-03' AND date = ? AND slot = "
        "'morning' AND campaign_id = ?", (TODAY(), fallback["campaigns"][0]["campaign_id"]))} == {"played"}, 30)
    events = db_rows(county["ws"], "SELECT kind, count(*) FROM station_event WHERE station_id = ? GROUP BY kind",
                     (st.station_id,))
    assert dict(events) == {"played": 1}
    assert len(starts(st, label)) == 1

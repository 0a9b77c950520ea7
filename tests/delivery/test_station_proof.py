"""Proof of air at village stations: `--monitor` on the box, the proof figures in its as-run events, and the
server's checks and records (evidence heard or player, aired_at the play start, the figures kept).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from scipy.io import wavfile
from station_harness import (
    TZ, Broker, Server, StationProc, at, cli, db_rows, mark_station_villages, set_slots, wait_for,
)

from conftest import copy_workspace
from outreach.config import load_config
from outreach.db import session
from outreach.delivery.stations.accounts import add_station
from outreach.delivery.stations.asrun import ingest_batch
from outreach.models import Broadcast, Station
from outreach.planning.workspace import load, open_database, plan_days
from outreach.station.listen import Listener, describe
from outreach.station.protocol import StationError

from benchmark_module import load_benchmark

REPO = Path(__file__).resolve().parents[2]
VILLAGE = "dazhuang-01"
DAY = date(2026, 12, 1)
HAS_MOSQUITTO = shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")


def _bench():
    return load_benchmark("proof_of_air")


# --- the server: proof figures are checked, then stored with the evidence they give ------------------------------


@pytest.fixture
def county(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'proof.db'}")
    mark_station_villages(workspace, (VILLAGE,))
    loaded = load(load_config(workspace))
    engine = open_database(loaded)
    programs = {p.slot: p for p in plan_days(loaded, DAY, DAY, village_ids=[VILLAGE]).programs}
    reg = add_station(engine, loaded, VILLAGE, now=programs["morning"].start, server_url="http://127.0.0.1",
                      broker=None)
    with session(engine) as s:
        station = s.get(Station, reg["station_id"])
        s.expunge(station)
    yield {"engine": engine, "loaded": loaded, "station": station, "programs": programs}
    engine.dispose()


def _played(program: Any, **proof: Any) -> dict[str, Any]:
    parts: dict[str, list[str]] = {}
    for item in program.items:
        parts.setdefault(item.campaign_id, []).append(item.script_id)
    return {"event_id": uuid.uuid4().hex, "kind": "played", "at": (program.start + timedelta(seconds=3)).isoformat(),
            "entry_id": f"{DAY}/{program.slot}", "date": DAY.isoformat(), "slot": program.slot,
            "scheduled_at": program.start.isoformat(), "sha256": "", "engine": "neural",
            "campaigns": [{"campaign_id": c, "script_ids": s} for c, s in parts.items()], "alert_id": "",
            "detail": ""} | proof


def _ingest(county: dict[str, Any], events: list[Any]) -> list[Any]:
    now = county["programs"]["evening"].start + timedelta(minutes=20)
    return ingest_batch(county["engine"], county["loaded"], county["station"], events, now=now)


def _rows(county: dict[str, Any], slot: str) -> set[tuple[Any, ...]]:
    with session(county["engine"]) as s:
        return set(s.execute(sa.select(Broadcast.status, Broadcast.evidence, Broadcast.proof_score,
                                       Broadcast.proof_delay_s, Broadcast.proof_snr_db, Broadcast.aired_at).where(
            Broadcast.village_id == VILLAGE, Broadcast.date == DAY, Broadcast.slot == slot)).all())


def test_a_heard_play_is_stored_with_its_figures_and_heard_evidence(county: dict[str, Any]) -> None:
    morning, evening = county["programs"]["morning"], county["programs"]["evening"]
    heard = _played(morning, proof_heard=True, proof_score=0.83, proof_delay_s=0.42, proof_snr_db=-3.5)
    quiet = _played(evening, proof_heard=False, proof_score=0.21, proof_delay_s=1.1, proof_snr_db=-20.0)
    assert [r.status for r in _ingest(county, [heard, quiet])] == [200, 200]
    aired = morning.start + timedelta(seconds=3)
    assert _rows(county, "morning") == {("played", "heard", 0.83, 0.42, -3.5, aired)}
    assert _rows(county, "evening") == {("played", "player", 0.21, 1.1, -20.0, evening.start + timedelta(seconds=3))}


def test_a_play_without_a_microphone_is_player_evidence_with_no_figures(county: dict[str, Any]) -> None:
    morning = county["programs"]["morning"]
    plain = _played(morning, proof_heard=None, proof_score=None, proof_delay_s=None, proof_snr_db=None)
    assert [r.status for r in _ingest(county, [plain])] == [200]
    assert _rows(county, "morning") == {("played", "player", None, None, None, morning.start + timedelta(seconds=3))}


@pytest.mark.security
@pytest.mark.parametrize(("proof", "words"), [
    ({"proof_heard": True, "proof_score": 1.5}, ["proof_score", "0 到 1"]),
    ({"proof_heard": "yes", "proof_score": 0.9}, ["proof_heard"]),
    ({"proof_heard": True, "proof_score": 0.2}, ["不符"]),
    ({"proof_heard": False, "proof_score": 0.9}, ["不符"]),
    ({"proof_heard": True, "proof_score": 0.9, "proof_delay_s": math.nan}, ["proof_delay_s"]),
    ({"proof_heard": True, "proof_score": 0.9, "proof_delay_s": 3600}, ["proof_delay_s"]),
    ({"proof_heard": True, "proof_score": 0.9, "proof_snr_db": "10"}, ["proof_snr_db"]),
    ({"proof_heard": True, "proof_score": True}, ["proof_score"]),
    ({"proof_snr_db": 3.0}, ["proof_heard"]),
    ({"proof_heard": True}, ["proof_score"]),
    ({"kind": "failed", "proof_heard": True, "proof_score": 0.9}, ["played"]),
], ids=lambda v: str(v)[:60])
def test_proof_figures_out_of_range_or_inconsistent_are_refused(county: dict[str, Any], proof: dict[str, Any],
                                                                words: list[str]) -> None:
    bad = _played(county["programs"]["morning"], **proof)
    result = _ingest(county, [bad])[0]
    assert result.status == 400 and all(w in result.reason for w in words), result
    assert _rows(county, "morning") == set()  # nothing of the refused event reached the as-run log


# --- the box: --monitor checked at start-up, a helper process per play ------------------------------------------


RATE = 16000


@pytest.fixture(scope="module")
def program_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """A 30 s syllable-like program as a WAV file (the monitor decodes WAV as it does the stations' MP3)."""
    from scipy import signal

    rng = np.random.default_rng(3)
    out, t = np.zeros(30 * RATE), 0.0
    while t < 29.5:
        n = int(rng.uniform(0.08, 0.25) * RATE)
        centre = rng.uniform(400, 3000)
        sos = signal.butter(2, [centre / 1.4, centre * 1.4], btype="bandpass", fs=RATE, output="sos")
        out[int(t * RATE):int(t * RATE) + n] += signal.sosfilt(sos, rng.standard_normal(n)) * np.hanning(n)
        t += n / RATE + rng.uniform(0.02, 0.35)
    program = (0.3 * out / np.abs(out).max()).astype(np.float32)
    path = tmp_path_factory.mktemp("program") / "program.wav"
    wavfile.write(path, RATE, program)
    return program, path


def test_a_monitor_that_cannot_open_stops_the_station_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(StationError, match="alsa:no-such-mic"):
        Listener("alsa:no-such-mic").check()
    token = tmp_path / "token"
    token.write_text("t" * 40)
    out = subprocess.run([sys.executable, "-m", "outreach.station", "run", "--server", "http://127.0.0.1:9",
                          "--station-id", "dazhuang-01-abcdef", "--token-file", str(token), "--data",
                          str(tmp_path / "data"), "--output", f"file:{tmp_path / 'out'}", "--monitor", "mic"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "错误：--monitor 'mic'：不认识的监听来源" in out.stderr, out.stderr


def test_the_helper_process_hears_a_play_and_the_box_keeps_only_figures(program_wav, tmp_path: Path) -> None:
    bench = _bench()
    program, path = program_wav
    drop = tmp_path / "mic"
    drop.mkdir()
    caps = bench.hear(np.random.default_rng(4), program, [0.0], delay_s=0.9, drift=-0.003, snr_db=0.0,
                      kind="traffic", window_s=32.0)
    wavfile.write(drop / "1.wav", RATE, caps[0].samples)
    wavfile.write(drop / "2.wav", RATE, (0.05 * np.random.default_rng(5).standard_normal(32 * RATE)).astype(np.float32))
    listener = Listener(f"file:{drop}")
    listener.check()
    first = listener.begin(path, 30.0, time.monotonic(), "2026-12-01/morning")
    assert first is not None
    fields = first.finish(timeout_s=120)
    assert fields["proof_heard"] is True and fields["proof_score"] >= 0.5, fields
    assert fields["proof_delay_s"] == pytest.approx(0.9, abs=0.15)
    assert "听到了节目" in describe(fields)
    second = listener.begin(path, 30.0, time.monotonic(), "2026-12-01/evening").finish(timeout_s=120)
    assert second["proof_heard"] is False and second["proof_score"] < 0.5 and "没有听到" in describe(second)
    assert list(drop.iterdir()) == []  # each recording was one play's capture: gone once matched


# --- end to end: a station with a microphone, a real server ----------------------------------------------------


class _MonitoredStation(StationProc):
    """The harness's station subprocess, with `--monitor file:DIR`."""

    def __init__(self, *args: Any, mic: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mic = mic

    def start(self) -> None:
        log = (self.folder / "station.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "outreach.station", "run", "--server", self.server_url, "--station-id",
             self.station_id, "--token-file", str(self.token_file), "--data", str(self.data), "--output",
             f"file:{self.out}@{self.speed}", "--sync-s", "2", "--upload-s", "1", "--heartbeat-s", "1",
             "--monitor", f"file:{self.mic}"], env=self.env, stdout=log, stderr=log)


@pytest.mark.slow
@pytest.mark.faults
@pytest.mark.skipif(not HAS_MOSQUITTO, reason="Mosquitto is not installed (tools/test installs it)")
def test_a_station_with_a_microphone_reports_heard_and_the_server_records_it(
        tmp_path: Path, rendered_build: Path) -> None:
    bench = _bench()
    ws = copy_workspace(tmp_path / "ws")
    shutil.copytree(rendered_build, ws / "build")
    mark_station_villages(ws, (VILLAGE,))
    broker = Broker(tmp_path / "broker")
    broker.start()
    slots = tmp_path / "slots.json"
    set_slots(slots, [])
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | broker.env() | {"PYTHONPATH": str(REPO)}
    server = Server(ws, env, "--slot-starts", str(slots))
    st = None
    try:
        server.start()
        reg = cli(ws, env, "station", "add", VILLAGE, "--server-url", server.url, "--json")
        st = _MonitoredStation(tmp_path / "st", server.url, reg["station_id"], reg["token"], env, mic=tmp_path / "mic")
        st.mic.mkdir()
        st.start()
        wait_for("first sync", st.synced, 90)
        _check_heard_and_not_heard(bench, ws, st, slots)
    finally:
        if st is not None:
            st.stop()
        server.stop()
        broker.stop()


def _check_heard_and_not_heard(bench: Any, ws: Path, st: StationProc, slots: Path) -> None:
    today = datetime.now(TZ).date().isoformat()
    entries = {e["slot"]: e for e in st.manifest()["entries"] if e["date"] == today}
    morning = entries["morning"]
    blob = bench.decode(st.data / "blobs" / f"{morning['sha256']}.mp3")
    caps = bench.hear(np.random.default_rng(6), blob, [0.0], delay_s=0.6, drift=0.002, snr_db=0.0, kind="babble",
                      babble=[bench.decode(p) for p in sorted((ws / "build" / "clips").glob("fraud-9*.mp3"))],
                      window_s=morning["duration_s"] + 2)
    wavfile.write(st.mic / "1-morning.wav", RATE, caps[0].samples)  # the evening gets no recording: the mic is dead
    set_slots(slots, [{"village_id": VILLAGE, "date": today, "slot": s, "start": at(t).isoformat()}
                      for s, t in (("morning", 8), ("evening", 40))])

    def rows(slot: str) -> set[tuple[Any, ...]]:
        return set(db_rows(ws, "SELECT status, evidence, proof_score, proof_delay_s, aired_at = played_at "
                               "FROM broadcast WHERE village_id = ? AND date = ? AND slot = ?", (VILLAGE, today, slot)))

    heard = wait_for("the morning play heard", lambda: {r for r in rows("morning") if r[0] == "played"}, 120)
    assert {(r[1], r[2] >= 0.5, abs(r[3] - 0.6) < 0.15, r[4]) for r in heard} == {("heard", True, True, 1)}, heard
    assert not list(st.mic.iterdir())  # the recording was discarded once matched
    evening = wait_for("the evening play", lambda: {r for r in rows("evening") if r[0] == "played"}, 120)
    assert {(r[1], r[2]) for r in evening} == {("player", 0.0)}, evening

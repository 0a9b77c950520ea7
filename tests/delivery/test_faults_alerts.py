"""紧急插播 on a networked village with a real `outreach run`: it cuts in within seconds, and the program it
interrupted is replayed from its start; both are logged.

The slot is placed at the current minute, so the starting scheduler plays it at once; the fake player
logs every start (program: 6 s, alert: 2 s), and the alert is sent while the program is on air.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_faults_scheduler import Run, fast, program_rows, slot_now, starts, wait

from outreach.config import TZ, load_config
from outreach.db import make_engine, session
from outreach.delivery.stations.alerts import alert_status, alert_targets, send_alert
from outreach.models import Alert, BroadcastStatus
from outreach.planning.workspace import load

pytestmark = [pytest.mark.faults, pytest.mark.slow]

VILLAGE = "dazhuang-03"  # networked: played by the county's scheduler
PROGRAM_S, ALERT_S = 6.0, 2.0


def test_alert_cuts_into_a_networked_program_which_is_then_replayed(rendered_workspace: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ws, log = rendered_workspace, tmp_path / "starts.jsonl"
    fast(ws, log, PROGRAM_S, "--alert-sleep", str(ALERT_S))
    slot = slot_now(ws)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    run = Run(ws, {**os.environ, "TZ": "UTC"}, "run")

    def plays() -> list[dict]:
        return [e for e in starts(log) if e["args"][1] == VILLAGE]

    try:
        wait(lambda: plays() or run.proc.poll() is not None, 60, f"{VILLAGE}'s program on air")
        assert plays(), run.text()[-3000:]
        engine = make_engine(url)
        loaded = load(load_config(ws))
        targets = alert_targets(engine, loaded, county=False, villages=[VILLAGE])
        sent_at = datetime.now(TZ)
        out = send_alert(engine, loaded, None, "fraud-96110", targets, expires=timedelta(minutes=10), now=sent_at)
        today = sent_at.date()
        wait(lambda: len(plays()) >= 3 and all(r.status == BroadcastStatus.PLAYED
                                              for r in program_rows(engine, slot, today)[VILLAGE]), 25,
             "the alert, then the program replayed and logged")
        status = alert_status(engine, out["alert_id"])
    finally:
        assert run.stop() == 0, run.text()[-3000:]
    program, alert, replay = plays()[:3]
    assert [program["args"][4], alert["args"][4], replay["args"][4]] == [slot, "alert", slot], plays()
    assert alert["time"] - sent_at.timestamp() < 10, "the village hears the alert within 10 s of sending"
    assert alert["time"] - program["time"] < PROGRAM_S, "the alert cut into the program on air"
    assert replay["time"] - alert["time"] >= ALERT_S - 0.2, "the program is replayed after the alert"
    assert alert["args"][0].endswith(".mp3") and replay["args"][0] == program["args"][0]
    assert len([e for e in starts(log) if "alert" in e["args"]]) == 1, "one village, one alert play"
    rows = program_rows(engine, slot, today)
    assert all("紧急插播" in (r.note or "") and r.error is None for r in rows[VILLAGE]), \
        [(r.status, r.note, r.error) for r in rows[VILLAGE]]
    assert all(r.status == BroadcastStatus.PLAYED and not r.note for v, rs in rows.items() if v != VILLAGE
               for r in rs)
    assert status["played"] == status["delivered"] == [f"live:{VILLAGE}"] and status["latency_s"]["max"] < 10
    assert status["channels"]["live"] == {"targets": 1, "delivered": 1, "played": 1}
    with session(engine) as s:
        assert json.loads(s.scalars(sa.select(Alert.targets)).one()) == [f"live:{VILLAGE}"]
    assert "紧急插播" in run.text() and "从头重播" in run.text()


def test_a_slot_falling_due_during_an_alert_waits_for_it(rendered_workspace: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from outreach.delivery.live import claims
    from outreach.delivery.live.runtime import LiveRuntime
    from outreach.planning.workspace import open_database

    ws, log = rendered_workspace, tmp_path / "starts.jsonl"
    fast(ws, log, 1.0, "--alert-sleep", "3")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'held.db'}")
    loaded = load(load_config(ws))
    engine = open_database(loaded)
    runtime = LiveRuntime(loaded, engine, claims.new_owner())  # the play runtime of `outreach run`, in process
    runtime.start()
    now = datetime.now(TZ)
    try:
        send_alert(engine, loaded, None, "fraud-96110", alert_targets(engine, loaded, county=False, villages=[VILLAGE]),
                   expires=timedelta(minutes=5), now=now)
        wait(lambda: starts(log), 10, "the alert on air")
        runtime.submit([(VILLAGE, "morning", now.date())], datetime.now(TZ))  # the slot falls due meanwhile
        wait(lambda: len(starts(log)) == 2 and all(
            r.status == BroadcastStatus.PLAYED for r in program_rows(engine, "morning", now.date())[VILLAGE]), 15,
            "the program after the alert")
    finally:
        runtime.shutdown()
    alert, program = starts(log)
    assert alert["args"][4] == "alert" and program["args"][4] == "morning"
    assert program["time"] - alert["time"] >= 3 - 0.2, "the slot waited for the alert to end"
    assert all(not r.note for r in program_rows(engine, "morning", now.date())[VILLAGE])  # it was never cut off

"""APScheduler wiring: Asia/Shanghai job times, misfires across restarts, no double play, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from outreach.config import load_config
from outreach.db import make_engine, session
from outreach.media import ffmpeg_exe
from outreach.models import Broadcast, BroadcastStatus
from outreach.plan import TZ
from outreach.scheduler import prepare, stop_scheduler

OUTREACH = [sys.executable, "-m", "outreach"]


def use_null_player(ws: Path) -> None:
    toml = ws / "outreach.toml"
    player = json.dumps([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", "{file}", "-f", "null", "-"])
    text = toml.read_text(encoding="utf-8")
    start = text.index("player = [")
    end = text.index("\n", start)
    toml.write_text(text[:start] + f"player = {player}" + text[end:], encoding="utf-8")


def test_jobs_run_at_shanghai_slot_times_whatever_the_machine_zone(workspace: Path) -> None:
    config = load_config(workspace)
    scheduler, counts = prepare(config, "play", blocking=False)
    stop_scheduler(scheduler)
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run([*OUTREACH, "jobs", "--json", "-w", str(workspace)], env=env, capture_output=True,
                         text=True, check=True).stdout
    jobs = {j["id"]: j["next_run_time"] for j in json.loads(out)}
    from outreach.registry import load_registry

    registry = load_registry(config.schedules_dir)
    networked = [v for v in registry.villages.values() if v.speaker == "networked"]
    assert counts["added"] == len(jobs) == 2 * len(networked) + 1
    assert jobs["export-next-day"].endswith("T20:00:00+08:00")
    for village in networked:
        for slot in registry.village_slots(village.id):
            when = datetime.fromisoformat(jobs[f"play:{village.id}:{slot.name}"])
            assert when.utcoffset() == timedelta(hours=8)
            assert when.time() == slot.start.replace(tzinfo=None)


def _wait(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")


def _statuses(engine, village: str) -> list[tuple[str, BroadcastStatus, datetime | None]]:
    with session(engine) as s:
        found = s.exec(select(Broadcast).where(Broadcast.village_id == village, Broadcast.slot == "morning")).all()
        return [(r.campaign_id, r.status, r.played_at) for r in found]


@pytest.mark.slow
def test_restart_plays_late_within_grace_and_logs_missed_beyond_it(rendered_workspace: Path, database_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    use_null_player(rendered_workspace)
    config = load_config(rendered_workspace)
    now = datetime.now(TZ)
    scheduler, _ = prepare(config, "play", blocking=False)
    scheduler.modify_job("play:dazhuang-02:morning", next_run_time=now - timedelta(minutes=5))
    scheduler.modify_job("play:dazhuang-03:morning", next_run_time=now - timedelta(hours=2))
    stop_scheduler(scheduler)  # the machine goes down before the slots fire

    scheduler, counts = prepare(config, "play", blocking=False)
    assert counts["added"] == 0 and counts["kept"] > 0, "a restart must keep the stored next run times"
    scheduler.resume()
    engine = make_engine(config.resolved_database_url())
    try:
        _wait(lambda: any(s == BroadcastStatus.PLAYED for _, s, _ in _statuses(engine, "dazhuang-02")))
        _wait(lambda: any(s == BroadcastStatus.MISSED for _, s, _ in _statuses(engine, "dazhuang-03")))
    finally:
        stop_scheduler(scheduler)
    played = _statuses(engine, "dazhuang-02")

    # Another restart with the same slot due again: the log says it was played, so it is not played twice.
    scheduler, _ = prepare(config, "play", blocking=False)
    scheduler.modify_job("play:dazhuang-02:morning", next_run_time=datetime.now(TZ) - timedelta(minutes=1))
    scheduler.resume()
    try:
        _wait(lambda: scheduler.get_job("play:dazhuang-02:morning").next_run_time > datetime.now(TZ))
        time.sleep(1.0)
    finally:
        stop_scheduler(scheduler)
    assert _statuses(engine, "dazhuang-02") == played


def test_sigterm_stops_the_scheduler_cleanly(workspace: Path) -> None:
    proc = subprocess.Popen([*OUTREACH, "run", "-w", str(workspace)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TZ": "UTC"})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "scheduler running" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "stopped cleanly" in rest

"""APScheduler wiring: Asia/Shanghai job times, misfires across restarts, no double play, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from outreach.audio.ffmpeg import ffmpeg_exe
from outreach.config import TZ, load_config
from outreach.db import make_engine, session
from outreach.delivery.scheduler import prepare, stop_scheduler
from outreach.models import Broadcast, BroadcastStatus

OUTREACH = [sys.executable, "-m", "outreach"]


def use_null_player(ws: Path) -> None:
    toml = ws / "outreach.toml"
    player = json.dumps([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", "{file}", "-f", "null", "-"])
    text = toml.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^player = .*$", f"player = {player}", text)
    # ffmpeg decodes faster than real time: the length check is off here (test_played_evidence.py tests it).
    text = re.sub(r"(?m)^min_play_fraction = .*$", "min_play_fraction = 0", text)
    toml.write_text(text, encoding="utf-8")


def test_jobs_run_at_shanghai_slot_times_whatever_the_machine_zone(workspace: Path) -> None:
    config = load_config(workspace)
    scheduler, counts = prepare(config, "play", blocking=False)
    stop_scheduler(scheduler)
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run([*OUTREACH, "jobs", "--json", "-w", str(workspace)], env=env, capture_output=True,
                         text=True, check=True).stdout
    jobs = {j["id"]: j["next_run_time"] for j in json.loads(out)}
    from outreach.planning.registry import load_registry

    registry = load_registry(config.schedules_dir)
    networked = [v for v in registry.villages.values() if v.speaker == "networked"]
    times = {s.start.replace(tzinfo=None) for v in networked for s in registry.village_slots(v.id)}
    assert counts["added"] == len(jobs) == len(times) + 2, "one play job per slot time, pre-flight, export"
    assert jobs["export-next-day"].endswith("T20:00:00+08:00")
    first = min(times)
    assert jobs["preflight"].endswith(f"T{first.hour - 3:02d}:{first.minute:02d}:00+08:00")
    for t in times:
        when = datetime.fromisoformat(jobs[f"play@{t:%H:%M}"])
        assert when.utcoffset() == timedelta(hours=8)
        assert when.time() == t


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


# Late play within grace after a restart, missed beyond it (day by day), and no double play
# across restarts and schedulers: tests/delivery/test_faults_scheduler.py, with real processes.


def test_sigterm_stops_the_scheduler_cleanly(workspace: Path) -> None:
    use_null_player(workspace)
    proc = subprocess.Popen([*OUTREACH, "run", "-w", str(workspace)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TZ": "UTC"})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if "调度器已运行" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "调度已正常停止" in rest

"""Scheduler faults with real processes: two schedulers, kill -9 mid-slot, long outages, forking players, bad config.

Slots are placed at the current minute (already begun, within grace), so a
starting scheduler plays them at once; a fake player logs every start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from outreach.config import TZ, load_config
from outreach.db import make_engine, session
from outreach.models import Broadcast, BroadcastStatus

pytestmark = pytest.mark.faults

OUTREACH = [sys.executable, "-m", "outreach"]
FAKE = str(Path(__file__).resolve().parents[1] / "fake_player.py")
N_NETWORKED = 20
N_VILLAGES = 30  # the sample county: 20 networked, 10 fed by USB stick


def set_player(ws: Path, player: list[str], **deliver: object) -> None:
    """Rewrite [deliver] player (and other [deliver] keys) in the workspace's outreach.toml."""
    toml = ws / "outreach.toml"
    text = toml.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^player = .*$", "player = " + json.dumps(player), text)
    for key, value in deliver.items():
        line = f"{key} = {json.dumps(value) if not isinstance(value, str) else value}"
        text, n = re.subn(rf"(?m)^{key} = .*$", line, text)
        if not n:
            text = text.replace("[deliver]\n", f"[deliver]\n{line}\n")
    toml.write_text(text, encoding="utf-8")


def fake(log: Path, sleep: float, *extra: str) -> list[str]:
    return [sys.executable, FAKE, "--log", str(log), "--sleep", str(sleep), *extra, "--", "{file}", "{village}",
            "{village_name}", "{township}", "{slot}", "{date}"]


def slot_now(ws: Path) -> str:
    """Make one slot of every village start at the current Shanghai minute; return its name."""
    now = datetime.now(TZ)
    county = ws / "schedules" / "county.yaml"
    county.write_text(re.sub(r"(?m)^\s+slots: \{.*\}.*\n", "", county.read_text(encoding="utf-8")),
                      encoding="utf-8")
    slots = ws / "schedules" / "slots.yaml"
    if now.hour * 60 + now.minute < 23 * 60 + 30:
        morning, evening, name = now.strftime("%H:%M"), "23:40", "morning"
    else:
        morning, evening, name = "00:10", now.strftime("%H:%M"), "evening"
    text = slots.read_text(encoding="utf-8")
    text = re.sub(r'morning: \{start: "[0-9:]+"', f'morning: {{start: "{morning}"', text)
    text = re.sub(r'evening: \{start: "[0-9:]+"', f'evening: {{start: "{evening}"', text)
    slots.write_text(text, encoding="utf-8")
    return name


def fast(ws: Path, log: Path, sleep: float, *extra: str) -> None:
    # The fake player runs for seconds, not for the program's minutes: the length check is off here
    # (tests/delivery/test_played_evidence.py tests it).
    set_player(ws, fake(log, sleep, *extra), heartbeat_s=0.5, stale_s=3, standby_poll_s=0.5, grace_s=600,
               min_play_fraction=0)


def starts(log: Path, role: str = "player") -> list[dict]:
    if not log.exists():
        return []
    return [e for e in map(json.loads, log.read_text().splitlines()) if e["role"] == role]


class Run:
    """An `outreach run` subprocess with its stderr in a file."""

    def __init__(self, ws: Path, env: dict[str, str], name: str) -> None:
        self.err = ws.parent / f"{name}.log"
        with self.err.open("wb") as f:
            self.proc = subprocess.Popen([*OUTREACH, "run", "-w", str(ws)], stderr=f, stdout=subprocess.DEVNULL,
                                         env=env)

    def text(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, words: str, timeout: float = 90) -> None:
        wait(lambda: words in self.text() or self.proc.poll() is not None, timeout, f"{words!r} in {self.err}")
        assert words in self.text(), self.text()[-3000:]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait(predicate, timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout} s")


def program_rows(engine, slot: str, day: date) -> dict[str, list[Broadcast]]:
    with session(engine) as s:
        found = s.exec(select(Broadcast).where(Broadcast.slot == slot, Broadcast.date == day)).all()
    out: dict[str, list[Broadcast]] = {}
    for r in found:
        out.setdefault(r.village_id, []).append(r)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "TZ": "UTC"}


@pytest.mark.slow
def test_two_schedulers_play_each_slot_once_and_the_standby_takes_over(rendered_workspace: Path, env) -> None:
    ws, log = rendered_workspace, rendered_workspace.parent / "starts.jsonl"
    fast(ws, log, 1.0)
    slot = slot_now(ws)
    a = Run(ws, env, "a")
    b = None
    try:
        a.wait_for("调度器已运行")
        b = Run(ws, env, "b")
        b.wait_for("备用调度器")
        engine = make_engine(env["DATABASE_URL"])
        today = datetime.now(TZ).date()
        wait(lambda: len(program_rows(engine, slot, today)) == N_NETWORKED and all(
            r.status == BroadcastStatus.PLAYED for rows in program_rows(engine, slot, today).values() for r in rows),
            60, "every networked village played")
        a.kill9()  # the leader dies; the standby takes over well within 60 s
        b.wait_for("接管为主调度器", timeout=60)
        b.wait_for("调度器已运行")
        time.sleep(2.0)
    finally:
        a.stop()
        if b is not None:
            b.stop()
    played = starts(log)
    assert len(played) == N_NETWORKED, f"{len(played)} player starts for {N_NETWORKED} village slots"
    assert len({e["args"][1] for e in played}) == N_NETWORKED
    first = played[0]["args"]
    assert first[0].endswith(".mp3") and first[4] == slot and first[5] == today.isoformat()
    assert first[2] and first[3], "village name and township are routed to the player"
    line = next(x for x in b.text().splitlines() if "备用调度器" in x)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 ", line), line


CLAIM_RACE = textwrap.dedent("""
    import sys, time
    from datetime import datetime
    from outreach.delivery.live import claims
    from outreach.config import load_config
    from outreach.config import TZ
    from outreach.delivery.live.runtime import LiveRuntime
    from outreach.planning.workspace import load, open_database

    def main():
        loaded = load(load_config(sys.argv[1]))
        engine = open_database(loaded)
        rt = LiveRuntime(loaded, engine, claims.new_owner())
        rt.start()
        now = datetime.now(TZ)
        # The slot's own minute and day (argv), not the clock's: a slow start-up may cross a minute.
        day = datetime.strptime(sys.argv[4], "%Y-%m-%d").date()
        keys = [(v, s, day) for v, s in rt.villages_at(sys.argv[3])]
        while time.time() < float(sys.argv[2]):
            time.sleep(0.005)
        print(len(rt.start_batch(keys, now)), flush=True)
        while rt.running:
            time.sleep(0.2)
        rt.shutdown()

    if __name__ == "__main__":
        main()
""")


@pytest.mark.slow
def test_racing_players_without_a_leader_still_play_each_slot_once(rendered_workspace: Path, env) -> None:
    """The claim alone guards exactly-once: two runtimes started at the same instant on one database."""
    ws, log = rendered_workspace, rendered_workspace.parent / "starts.jsonl"
    fast(ws, log, 0.5)
    slot = slot_now(ws)
    start = re.search(rf'{slot}: {{start: "([0-9:]+)"', (ws / "schedules" / "slots.yaml").read_text(encoding="utf-8"))[1]
    day = datetime.now(TZ).date()
    go = time.time() + 8
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_RACE, str(ws), str(go), start, day.isoformat()],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    won = [int(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert sum(won) == N_NETWORKED, won
    assert len(starts(log)) == N_NETWORKED


@pytest.mark.slow
def test_kill_9_mid_slot_stops_orphans_logs_interrupted_and_replays_whole(rendered_workspace: Path, env) -> None:
    ws, log = rendered_workspace, rendered_workspace.parent / "starts.jsonl"
    fast(ws, log, 60.0)
    slot = slot_now(ws)
    today = datetime.now(TZ).date()
    a = Run(ws, env, "a")
    try:
        a.wait_for("调度器已运行")
        wait(lambda: len(starts(log)) >= N_NETWORKED, 60, "20 players on air")
        time.sleep(1.0)
        a.kill9()
    finally:
        a.stop()
    orphans = [e["pid"] for e in starts(log)]
    assert all(alive(pid) for pid in orphans), "players outlive a kill -9 of their scheduler"
    fast(ws, log, 0.5)  # the replay is short
    b = Run(ws, env, "b")
    try:
        b.wait_for("调度器已运行")
        engine = make_engine(env["DATABASE_URL"])
        wait(lambda: all(r.status == BroadcastStatus.PLAYED for rows in program_rows(engine, slot, today).values()
                         for r in rows), 60, "every village replayed")
    finally:
        b.stop()
    assert not any(alive(pid) for pid in orphans), "orphaned player groups are stopped"
    rows = program_rows(engine, slot, today)
    assert len(rows) == N_NETWORKED
    for village, found in rows.items():
        assert all(r.status == BroadcastStatus.PLAYED and "中断：调度器" in (r.note or "") for r in found), village
    assert len(starts(log)) == 2 * N_NETWORKED
    assert "从头完整重播" in b.text()


@pytest.mark.slow
def test_three_day_outage_logs_every_missed_slot_day_by_day(rendered_workspace: Path, env,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from outreach.delivery.scheduler import prepare, stop_scheduler

    ws, log = rendered_workspace, rendered_workspace.parent / "starts.jsonl"
    fast(ws, log, 0.2)
    monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
    config = load_config(ws)
    now = datetime.now(TZ)
    scheduler, _ = prepare(config, "play", blocking=False)
    for job in scheduler.get_jobs():
        if job.id.startswith("play@"):
            scheduler.modify_job(job.id, next_run_time=job.next_run_time - timedelta(days=4))
    stop_scheduler(scheduler)  # the machine goes down for days
    run = Run(ws, env, "outage")
    try:
        run.wait_for("调度器已运行")
    finally:
        run.stop()
    engine = make_engine(env["DATABASE_URL"])
    for back in (1, 2, 3):
        day = now.date() - timedelta(days=back)
        for slot in ("morning", "evening"):
            rows = program_rows(engine, slot, day)
            # Networked villages missed their plays; the USB villages' packs were never exported, so
            # their slots are missed too (the sweep works from the plan, not from the job store).
            assert len(rows) == N_VILLAGES, (day, slot)
            assert {r.status for found in rows.values() for r in found} == {BroadcastStatus.MISSED}, (day, slot)
    assert "记为漏播" in run.text()


def test_player_timeout_stops_a_forking_wrapper_and_its_child(rendered_workspace: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, database_url) -> None:
    from outreach.delivery.live.play import play_program
    from outreach.planning.workspace import load, open_database

    monkeypatch.setenv("DATABASE_URL", database_url)
    log = tmp_path / "starts.jsonl"
    loaded = load(load_config(rendered_workspace))
    engine = open_database(loaded)
    day = date(2026, 12, 1)
    outcome = play_program(loaded, engine, "dazhuang-02", "evening", day, now=datetime(2026, 12, 1, 18, 30, tzinfo=TZ),
                           player=fake(log, 30, "--fork"), timeout_s=3)
    assert outcome.status == "failed" and "已停止它的进程组" in outcome.detail
    wrapper, child = starts(log, "player"), starts(log, "child")
    assert len(wrapper) == len(child) == 1
    wait(lambda: not alive(wrapper[0]["pid"]) and not alive(child[0]["pid"]), 5, "wrapper and child stopped")
    rows = program_rows(engine, "evening", day)["dazhuang-02"]
    assert all(r.status == BroadcastStatus.FAILED and "仍未结束" in r.error for r in rows)


@pytest.mark.parametrize("setting, words", [
    ('player = []', "须为非空的文字列表"),
    ('player = ["ffplay", "-nodisp"]', "须在某一项里写上 {file}"),
    ('player = ["ffplay", "{file}", "{speaker}"]', "未知的占位符 {speaker}"),
    ('player_timeout_s = 1e308', "player_timeout_s"),
    ('player_timeout_s = nan', "player_timeout_s"),
    ('player = ["/nonexistent/ip-broadcast", "{file}"]', "找不到播放程序 '/nonexistent/ip-broadcast'"),
], ids=["empty", "no-file", "unknown-placeholder", "huge-timeout", "nan-timeout", "missing-program"])
def test_bad_player_settings_are_refused_before_start(workspace: Path, setting: str, words: str) -> None:
    toml = workspace / "outreach.toml"
    key = setting.split(" =")[0]
    toml.write_text(re.sub(rf"(?m)^{key} = .*$", setting, toml.read_text(encoding="utf-8")), encoding="utf-8")
    proc = subprocess.run([*OUTREACH, "run", "-w", str(workspace)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TZ": "UTC"})
    assert proc.returncode == 1, proc.stderr
    assert "错误：" in proc.stderr and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _alert_campaign_from_today(ws: Path) -> None:
    """Keep the sample's urgent campaign running today, whatever day the test runs on."""
    today = datetime.now(TZ).date()
    path = ws / "schedules" / "campaigns.yaml"
    text = path.read_text(encoding="utf-8")
    text, n_from = re.subn(r"(?m)^    from: 2026-11-30 ", f"    from: {today - timedelta(days=1)} ", text)
    text, n_to = re.subn(r"(?m)^    to: 2026-12-13 ", f"    to: {today + timedelta(days=7)} ", text)
    assert n_from == n_to == 1, "the sample's urgent campaign dates moved; update this test"
    path.write_text(text, encoding="utf-8")


@pytest.mark.slow
def test_an_edited_urgent_script_is_logged_failed_and_the_slot_airs_the_rest(rendered_workspace: Path, env) -> None:
    """Issue 7: one character of an approved urgent script changes and nothing is re-rendered.

    The real scheduler plays the slot: every village's loudspeaker still airs a program, the
    edited script is logged failed as "draft after edit", and no row is left behind.
    """
    ws, log = rendered_workspace, rendered_workspace.parent / "starts.jsonl"
    _alert_campaign_from_today(ws)
    script = ws / "audio_scripts" / "fraud-96110.md"
    text = script.read_text(encoding="utf-8")
    assert "一定要接听" in text
    script.write_text(text.replace("一定要接听", "一定要接通", 1), encoding="utf-8")
    fast(ws, log, 0.5)
    slot = slot_now(ws)
    today = datetime.now(TZ).date()
    run = Run(ws, env, "edited")
    engine = make_engine(env["DATABASE_URL"])

    def settled() -> bool:
        rows = program_rows(engine, slot, today)
        return len(rows) == N_NETWORKED and all(r.status != BroadcastStatus.PLANNED
                                                for found in rows.values() for r in found)
    try:
        run.wait_for("调度器已运行")
        wait(settled, 90, "every networked village settled")
    finally:
        run.stop()
    rows = program_rows(engine, slot, today)
    played = starts(log)
    silent = {v: [(r.campaign_id, r.status.value, r.script_ids, r.error) for r in found]
              for v, found in rows.items() if not any(r.status == BroadcastStatus.PLAYED for r in found)}
    assert not silent, f"villages whose loudspeaker aired nothing: {silent}"
    assert len(played) == N_NETWORKED, "every village's loudspeaker aired a program, once"
    blocked_villages = 0
    for village, found in rows.items():
        alert = [r for r in found if r.campaign_id == "alert-fake-refund"]
        assert len(alert) == 1, (village, [(r.campaign_id, r.status) for r in found])
        if "fraud-96110" in (alert[0].error or ""):
            blocked_villages += 1
            assert "批准后又被修改，已退回草稿" in alert[0].error
            assert alert[0].status in (BroadcastStatus.FAILED, BroadcastStatus.PLAYED)
        else:
            assert alert[0].status == BroadcastStatus.PLAYED
        assert any(r.status == BroadcastStatus.PLAYED and r.script_ids for r in found), \
            f"{village}: the slot still aired the other clips"
        assert all("fraud-96110" not in r.script_ids.split(",") for r in found if r.status == BroadcastStatus.PLAYED), \
            "the edited script never airs"
    assert blocked_villages > 0, "the rotation put the edited script in some village's slot"

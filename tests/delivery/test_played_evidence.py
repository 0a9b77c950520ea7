"""`played` means sound went out (issue 17, item 1).

A player's run time is checked against the program's length; the built-in player (this
machine's sound card through the stations' miniaudio output) fails loudly without a device;
no view lists a script that did not air; a late or replayed slot gets the pre-flight's clip check.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from outreach.audio.ffmpeg import ffmpeg_exe
from outreach.audio.render import verified_clip
from outreach.config import TZ, load_config
from outreach.content.script_writer import approve_script
from outreach.coverage import village_coverage
from outreach.db import session
from outreach.delivery.live import claims, players
from outreach.delivery.live.play import finish_player, play_program, spoken_length, too_short
from outreach.delivery.live.runtime import LiveRuntime
from outreach.errors import ConfigError
from outreach.models import Broadcast, BroadcastScript, BroadcastStatus, Evidence
from outreach.planning.workspace import load, open_database
from outreach.web.board import today_board
from outreach.web.data_records import village_history

FAKE = str(Path(__file__).resolve().parents[1] / "fake_player.py")
DAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 6, 30, 5, tzinfo=TZ)
VILLAGE = "dazhuang-02"
S = BroadcastStatus


def fake(log: Path, sleep: float) -> list[str]:
    return [sys.executable, FAKE, "--log", str(log), "--sleep", str(sleep), "--", "{file}"]


def set_deliver(ws: Path, **keys: object) -> None:
    """Set [deliver] keys of the workspace's outreach.toml (a list or number as TOML)."""
    toml = ws / "outreach.toml"
    text = toml.read_text(encoding="utf-8")
    for key, value in keys.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {json.dumps(value)}", text)
        if not n:
            text = text.replace("[deliver]\n", f"[deliver]\n{key} = {json.dumps(value)}\n")
    toml.write_text(text, encoding="utf-8")


def use_players(ws: Path, **chosen: tuple[str, list[str]]) -> None:
    """Define named players and pick one per village: village=(name, command)."""
    toml = ws / "outreach.toml"
    lines = "".join(f"{name} = {json.dumps(cmd)}\n" for name, cmd in chosen.values())
    toml.write_text(toml.read_text(encoding="utf-8").replace("[players]\n", "[players]\n" + lines), encoding="utf-8")
    county = ws / "schedules" / "county.yaml"
    text = county.read_text(encoding="utf-8")
    for village, (name, _) in chosen.items():
        text, n = re.subn(rf"(- \{{id: {village}, [^}}]*speaker: networked)\}}", rf"\1, player: {name}}}", text)
        assert n == 1, village
    county.write_text(text, encoding="utf-8")


def open_ws(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'played.db'}")
    loaded = load(load_config(ws))
    return loaded, open_database(loaded)


def rows(engine, village: str = VILLAGE, slot: str = "morning") -> list[Broadcast]:
    with session(engine) as s:
        return list(s.exec(select(Broadcast).where(Broadcast.village_id == village, Broadcast.slot == slot,
                                                   Broadcast.date == DAY)).all())


def wait_settled(engine, keys: list[tuple[str, str]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [rows(engine, v, s) for v, s in keys]
        if all(f and all(r.status != S.PLANNED for r in f) for f in found):
            return
        time.sleep(0.2)
    raise AssertionError(f"{keys} not settled within {timeout} s")


def tone(path: Path, seconds: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=800:duration={seconds}",
                    "-ar", "22050", "-ac", "1", "-b:a", "64k", str(path)], check=True)
    return path


# --- the length check -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_player_that_exits_0_at_once_is_failed_and_counted_nowhere(rendered_workspace: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: ffplay had no audio device, exited 0 after 0.44 s, and 17 villages were logged 已播."""
    loaded, engine = open_ws(rendered_workspace, tmp_path, monkeypatch)
    assert loaded.config.deliver.min_play_fraction == 0.9
    outcome = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW, player=fake(tmp_path / "l", 0),
                           timeout_s=60)
    assert outcome.status == "failed", outcome
    assert re.search(r"播放程序 '.+' \d\.\d 秒就退出（节目 \d+ 分 \d+ 秒）：可能没有声卡或功放没开", outcome.detail), outcome
    logged = rows(engine)
    assert logged and all(r.status == S.FAILED and "就退出" in (r.error or "") for r in logged)
    assert all(r.evidence == Evidence.NONE and r.aired_at is None and r.played_at is None for r in logged)
    board = today_board(engine, loaded.config, DAY, NOW + timedelta(minutes=10))
    mine = [sl for sl in board.slots if sl.village_id == VILLAGE and sl.slot == "morning"]
    assert [sl.status for sl in mine] == ["failed"] and board.totals["played"] == 0
    with session(engine) as s:
        cov = [c for c in village_coverage(s, start=DAY, end=DAY) if c.village_id == VILLAGE]
    assert cov and sum(c.played for c in cov) == 0 and sum(c.reached for c in cov) == 0
    assert sum(c.failed for c in cov) == len(logged)


@pytest.mark.slow
def test_the_scheduler_fails_a_short_play_and_credits_a_full_one_with_its_start(rendered_workspace: Path,
                                                                                tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ws, log = rendered_workspace, tmp_path / "starts.jsonl"
    # 1% of a 4–6 minute program is 2.7–3.6 s: a 5 s player lasts, one that exits at once does not.
    set_deliver(ws, min_play_fraction=0.01)
    use_players(ws, **{"dazhuang-01": ("lasts", fake(log, 5.0)), VILLAGE: ("quits", fake(log, 0))})
    loaded, engine = open_ws(ws, tmp_path, monkeypatch)
    runtime = LiveRuntime(loaded, engine, claims.new_owner())
    runtime.start()
    try:
        started = runtime.start_batch([("dazhuang-01", "morning", DAY), (VILLAGE, "morning", DAY)], NOW)
        assert len(started) == 2
        wait_settled(engine, [("dazhuang-01", "morning"), (VILLAGE, "morning")])
    finally:
        runtime.shutdown()
    full, short = rows(engine, "dazhuang-01"), rows(engine, VILLAGE)
    assert all(r.status == S.PLAYED and r.evidence == Evidence.PLAYER for r in full), \
        [(r.status, r.evidence, r.error) for r in full]
    aired = {r.aired_at for r in full}
    assert len(aired) == 1 and NOW <= aired.pop() < NOW + timedelta(seconds=2), "aired_at is the play start"
    assert all(r.played_at > NOW + timedelta(seconds=4) for r in full), "played_at is when the play ended"
    assert all(r.status == S.FAILED and "就退出" in (r.error or "") and "可能没有声卡或功放没开" in r.error
               and r.evidence == Evidence.NONE for r in short), [(r.status, r.error) for r in short]


def test_a_reason_reads_in_minutes_and_seconds() -> None:
    assert spoken_length(0.44) == "0.4 秒" and spoken_length(42.4) == "42 秒" and spoken_length(312) == "5 分 12 秒"
    assert too_short("ffplay", 0.44, 312) == "播放程序 'ffplay' 0.4 秒就退出（节目 5 分 12 秒）：可能没有声卡或功放没开"
    assert too_short("ffplay", 0.44, 312, "audio open failed").endswith("；播放程序的输出：audio open failed")


def test_with_the_check_off_a_clean_exit_is_played_with_no_evidence(tmp_path: Path) -> None:
    mp3 = tone(tmp_path / "p.mp3", 2.0)
    cmd = players.fill(fake(tmp_path / "l", 0), {"file": str(mp3)})
    for fraction, expected in ((0.0, (S.PLAYED, Evidence.NONE)), (0.9, (S.FAILED, Evidence.NONE))):
        ended = finish_player(players.spawn(cmd, tmp_path / "players", 30), "fake", 30, wait=True,
                              length_s=players.program_length(mp3), min_fraction=fraction)
        assert ended is not None and (ended.status, ended.evidence) == expected, ended


# --- the built-in player ----------------------------------------------------------------------


def test_builtin_is_the_default_player_and_a_reserved_name(workspace: Path) -> None:
    config = load_config(workspace)
    assert config.deliver.player == "builtin" and config.default_player == ["builtin", "{file}"]
    county = workspace / "schedules" / "county.yaml"
    county.write_text(county.read_text("utf-8").replace("  - {id: hexi, name: 河西镇}",
                                                        "  - {id: hexi, name: 河西镇, player: builtin}"), "utf-8")
    load(config)  # county.yaml may pick the built-in player by name
    toml = workspace / "outreach.toml"
    toml.write_text(toml.read_text("utf-8").replace("[players]\n", '[players]\nbuiltin = ["mpg123", "{file}"]\n'),
                    "utf-8")
    with pytest.raises(ConfigError, match="内置播放程序"):
        load_config(workspace)


def test_the_builtin_player_plays_in_real_time_on_miniaudio_null_output(tmp_path: Path) -> None:
    mp3 = tone(tmp_path / "p.mp3", 1.5)
    length = players.program_length(mp3)
    assert length == pytest.approx(1.5, abs=0.1)
    cmd = players.fill(["builtin", "--output", "null", "{file}"], {"file": str(mp3)})
    t0 = time.monotonic()
    ended = finish_player(players.spawn(cmd, tmp_path / "players", 30), players.display_name(cmd), 30, wait=True,
                          length_s=length, min_fraction=0.9)
    assert time.monotonic() - t0 >= 0.9 * length
    assert ended is not None and ended.status == S.PLAYED and ended.evidence == Evidence.PLAYER, ended


@pytest.mark.skipif(players.builtin_problem() is None, reason="this machine has a sound card")
def test_the_builtin_player_without_a_sound_card_fails_loudly(rendered_workspace: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    loaded, engine = open_ws(rendered_workspace, tmp_path, monkeypatch)
    with caplog.at_level(logging.ERROR, "outreach.playout"):
        players.check_players(loaded.registry, loaded.config, [VILLAGE])  # `run` starts, but says so
    assert "内置播放打不开声音输出" in caplog.text and "记为失败" in caplog.text
    outcome = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW, player=loaded.config.default_player,
                           timeout_s=60)
    assert outcome.status == "failed" and "'内置播放' 异常退出" in outcome.detail, outcome
    assert "打不开声音输出" in outcome.detail and "声卡" in outcome.detail and "ALSA lib" not in outcome.detail
    assert all(r.status == S.FAILED and "打不开声音输出" in (r.error or "") for r in rows(engine))


# --- what aired is all any view lists ---------------------------------------------------------


@pytest.mark.slow
def test_no_view_lists_a_script_that_did_not_air(rendered_workspace: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One campaign's clip is missing and another's script was edited after approval (blocked):
    the program plays the rest, and 今天, the village page and coverage list only what aired."""
    ws = rendered_workspace
    script = ws / "audio_scripts" / "fraud-96110.md"  # the urgent alert's script in this slot
    script.write_text(script.read_text("utf-8").replace("一定要接听", "一定要接通", 1), "utf-8")
    loaded, engine = open_ws(ws, tmp_path, monkeypatch)
    verified_clip(loaded.config, loaded.scripts["traffic-drunk-driving"]).unlink()  # winter-traffic's one item
    outcome = play_program(loaded, engine, VILLAGE, "morning", DAY, now=NOW, player=fake(tmp_path / "l", 0),
                           timeout_s=60, min_fraction=0)
    assert outcome.status == "played", outcome
    by_campaign = {r.campaign_id: r for r in rows(engine)}
    assert by_campaign["winter-traffic"].status == S.FAILED and by_campaign["alert-fake-refund"].status == S.FAILED
    not_aired = {"traffic-drunk-driving", "fraud-96110"}
    titles = {s.id: s.title for s in loaded.library}
    board = today_board(engine, loaded.config, DAY, NOW + timedelta(minutes=10))
    slot = next(sl for sl in board.slots if sl.village_id == VILLAGE and sl.slot == "morning")
    assert slot.status == "played" and slot.scripts
    assert not {titles[s] for s in not_aired} & set(slot.scripts), slot.scripts
    history = next(r for r in village_history(engine, VILLAGE, DAY, DAY) if r.slot == "morning")
    assert history.script_ids and not not_aired & set(history.script_ids), history.script_ids
    with session(engine) as s:
        heard = set(s.scalars(sa.select(BroadcastScript.script_id).join(
            Broadcast, Broadcast.id == BroadcastScript.broadcast_id).where(
            Broadcast.village_id == VILLAGE, Broadcast.status == S.PLAYED)))
    assert heard == set(history.script_ids), "coverage's per-script rows agree with the pages"


# --- a late or replayed slot gets the pre-flight's clip check ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("approved_before_start", [False, True],
                         ids=["approval-just-before-the-slot", "late-replay-after-approval"])
def test_an_approval_is_rendered_before_the_slot_airs(rendered_workspace: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      approved_before_start: bool) -> None:
    """Issue 17: a script approved in the browser was not rendered; the next slot (a late replay
    before the pre-flight, or a slot moments after the approval) aired without it, logged 已播."""
    ws = rendered_workspace
    set_deliver(ws, min_play_fraction=0, player=fake(tmp_path / "l", 0))
    script = ws / "audio_scripts" / "fraud-96110.md"
    script.write_text(script.read_text("utf-8").replace("一定要接听", "一定要接通", 1), "utf-8")
    if approved_before_start:  # approved, never rendered; `run` starts and replays the slot late
        approve_script(script, by="王秀兰", on=DAY)
    loaded, engine = open_ws(ws, tmp_path, monkeypatch)
    runtime = LiveRuntime(loaded, engine, claims.new_owner())
    if not approved_before_start:  # the scheduler ran its pre-flight; the approval comes just before the slot
        runtime.preflight(NOW, hours=1)
        assert runtime.prepared[(VILLAGE, "morning", DAY)].not_aired
        time.sleep(0.01)
        approve_script(script, by="王秀兰", on=DAY)
    runtime.start()
    try:
        assert runtime.start_batch([(VILLAGE, "morning", DAY)], NOW) == [(VILLAGE, "morning", DAY)]
        wait_settled(engine, [(VILLAGE, "morning")], timeout=120)
    finally:
        runtime.shutdown()
    found = {r.campaign_id: r for r in rows(engine)}
    alert = found["alert-fake-refund"]
    assert alert.status == S.PLAYED and alert.script_ids == "fraud-96110" and alert.error is None, \
        (alert.status, alert.script_ids, alert.error)
    assert all(r.status == S.PLAYED and not r.error for r in found.values())
    fresh = load(load_config(ws))
    assert verified_clip(fresh.config, fresh.scripts["fraud-96110"]).exists(), "the approved text was rendered"


# --- proof of air: `outreach run --monitor` -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("heard", [True, False], ids=["the-program", "only-noise"])
def test_a_play_the_microphone_hears_is_logged_heard(rendered_workspace: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, heard: bool) -> None:
    from outreach.delivery.live import airproof
    from outreach.delivery.prepare import prepare_programs, program_for

    ws = rendered_workspace
    set_deliver(ws, min_play_fraction=0.01, player=fake(tmp_path / "l", 4.0))
    loaded, engine = open_ws(ws, tmp_path, monkeypatch)
    program = prepare_programs(loaded, [program_for(loaded, VILLAGE, "morning", DAY)])[(VILLAGE, "morning", DAY)]
    mic = tmp_path / "mic"
    mic.mkdir()
    # What the microphone recorded from the play's start: the program 0.4 s late, or street noise alone.
    source = ["-i", str(program.audio), "-af", "adelay=400"] if heard else \
        ["-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.3:duration=400"]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *source, "-ar", "16000", "-ac", "1", str(mic / "play.wav")],
                   check=True)
    runtime = LiveRuntime(loaded, engine, claims.new_owner(), monitor=airproof.open_monitor(f"file:{mic}"))
    runtime.start()
    try:
        runtime.start_batch([(VILLAGE, "morning", DAY)], NOW)
        wait_settled(engine, [(VILLAGE, "morning")], timeout=90)
    finally:
        runtime.shutdown()
    logged = rows(engine)
    assert all(r.status == S.PLAYED for r in logged)
    if heard:
        assert all(r.evidence == Evidence.HEARD and r.proof_score >= 0.5 for r in logged), \
            [(r.evidence, r.proof_score) for r in logged]
        assert all(r.proof_delay_s == pytest.approx(0.4, abs=0.1) and r.proof_snr_db is not None for r in logged)
    else:
        assert all(r.evidence == Evidence.PLAYER and r.proof_score < 0.5 for r in logged), \
            [(r.evidence, r.proof_score) for r in logged]
    assert not list(mic.iterdir()), "captured audio is not kept"


def test_run_refuses_a_monitor_it_cannot_open(workspace: Path) -> None:
    for spec, words in (("bogus", "不认识的监听来源"), ("file:/nonexistent/mic", "不存在")):
        done = subprocess.run([sys.executable, "-m", "outreach", "run", "--monitor", spec, "-w", str(workspace)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr, done.stderr

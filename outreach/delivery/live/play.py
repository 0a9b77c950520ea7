"""Play a resolved program once on a village loudspeaker and log every campaign's outcome.

At slot time the player gets only what airs; the as-run log gets one row per campaign: `played`
when any of its items aired (the others named in `error`), `failed` with the reasons when none did.
A player that ends before `[deliver] min_play_fraction` of the program's length made no sound
worth the name (no sound card, an amplifier off): that play is `failed`, never `played`. A play
that lasted is `played` with evidence `player` and `aired_at` its start.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from outreach.audio.ffmpeg import ffmpeg_exe
from outreach.audio.render import clip_durations
from outreach.db import session
from outreach.delivery.live import claims, players
from outreach.delivery.prepare import Key, Prepared, prepare_programs, program_for, urgent_carry, with_carry
from outreach.errors import OutreachError
from outreach.models import REACHED, Broadcast, BroadcastScript, BroadcastStatus, Evidence
from outreach.planning.plan import Program
from outreach.planning.workspace import Loaded
from outreach.records import broadcast_plans, program_status, record_planned

log = logging.getLogger("outreach.deliver")

S = BroadcastStatus
NO_CLIP = "本节目没有可以播出的录音"
# Rows a play outcome may overwrite: a replay after a failure or an interruption is allowed.
_OPEN = (S.PLANNED, S.FAILED, S.INTERRUPTED)


def null_player() -> list[str]:
    """A player that decodes the whole program and discards it (demo, tests)."""
    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", "{file}", "-f", "null", "-"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one village's slot."""

    village_id: str
    slot: str
    day: date
    status: str  # played | failed | skipped | missed | silent | interrupted
    detail: str = ""


def _rows_where(key: Key) -> list[Any]:
    v, s, d = key
    return [Broadcast.date == d, Broadcast.slot == s, Broadcast.village_id == v]


def record_outcome(s: Session, prep: Prepared, status: S, *, at: datetime, detail: str = "",
                   evidence: Evidence = Evidence.NONE, aired_at: datetime | None = None,
                   proof: dict[str, float | None] | None = None) -> None:
    """Log one program's outcome per campaign row.

    played: a campaign with aired items is `played` (its script list becomes what
    aired; the rest are named in `error`), one with none is `failed`. failed or
    interrupted: every row, with `detail` and the items that could not air.
    A played row carries `evidence` (how we know), `aired_at` (when the sound went out) and,
    when a microphone listened (--monitor), the match figures in `proof` (proof_score, proof_delay_s, proof_snr_db).
    """
    reasons: dict[str, list[str]] = {}
    for item, why in prep.not_aired:
        reasons.setdefault(item.campaign_id, []).append(f"{item.script_id}：{why}")
    for campaign_id in prep.program.campaign_ids:
        aired = [i.script_id for i in prep.aired if i.campaign_id == campaign_id]
        missing = reasons.get(campaign_id, [])
        values: dict[str, Any] = {"updated_at": at, "engine": prep.engine}
        if status is S.PLAYED and aired:
            values |= {"status": S.PLAYED, "played_at": at, "program_sha256": prep.sha256,
                       "script_ids": ",".join(aired), "error": ("未播出：" + "；".join(missing)) if missing else None,
                       "evidence": evidence, "aired_at": aired_at or at, **(proof or {})}
        elif status is S.PLAYED:
            values |= {"status": S.FAILED, "error": "本宣传活动没有一条广播稿能播出：" + "；".join(missing)}
        else:
            values |= {"status": status, "error": "；".join([detail, *missing]) if detail else "；".join(missing)}
        sources = (S.PLANNED,) if status is S.INTERRUPTED else _OPEN
        where = [*_rows_where(prep.key), Broadcast.campaign_id == campaign_id, Broadcast.status.in_(sources)]
        stmt = sa.update(Broadcast).where(*where).values(values).returning(Broadcast.id)
        ids = s.execute(stmt, execution_options={"synchronize_session": False}).scalars().all()
        if ids and values["status"] is S.PLAYED and missing:
            s.execute(sa.delete(BroadcastScript).where(BroadcastScript.broadcast_id.in_(ids),
                                                       BroadcastScript.script_id.not_in(aired)))


def interrupt_rows(s: Session, key: Key, *, at: datetime, detail: str) -> int:
    """Mark a program's still-planned rows `interrupted` (a play cut short by a crash)."""
    stmt = sa.update(Broadcast).where(*_rows_where(key), Broadcast.status == S.PLANNED).values(
        status=S.INTERRUPTED, error=detail, note=detail, updated_at=at)  # note survives a replay
    return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


def fail_rows(s: Session, key: Key, *, at: datetime, detail: str) -> int:
    """Mark a program's open rows `failed` with the reason (any error in a job)."""
    stmt = sa.update(Broadcast).where(*_rows_where(key), Broadcast.status.in_((S.PLANNED, S.INTERRUPTED))).values(
        status=S.FAILED, error=detail, updated_at=at)
    return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


def mark_missed_programs(engine: Engine, programs: Sequence[Program], *, now: datetime) -> int:
    """Log programs that were not played within their grace time as missed (rows still planned, or none)."""
    if not programs:
        return 0
    changed = 0
    with session(engine) as s:
        record_planned(s, broadcast_plans(programs), now=now)
        for p in programs:
            changed += int(s.execute(sa.update(Broadcast).where(
                *_rows_where((p.village_id, p.slot, p.date)), Broadcast.status == S.PLANNED).values(
                status=S.MISSED, error="漏播：宽限时间内没有播出", updated_at=now)).rowcount)
    return changed


def mark_missed(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date, *, now: datetime) -> int:
    """Log a slot that was not played within its grace time as missed."""
    program = program_for(loaded, village_id, slot, day)
    return mark_missed_programs(engine, [program] if program else [], now=now)


def play_program(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date, *, now: datetime,
                 player: Sequence[str], timeout_s: float, min_fraction: float | None = None) -> Outcome:
    """Claim, play and log one village slot, waiting for the player (demo, tests); never raises.

    The scheduler does the same in batches (outreach.playout); this is the one-slot form.
    `min_fraction` overrides [deliver] min_play_fraction (0: a simulated play, logged with no evidence).
    """
    key = (village_id, slot, day)
    try:
        program = program_for(loaded, village_id, slot, day)
        if program is None:
            return Outcome(village_id, slot, day, "silent", "停播日或没有安排节目")
        with session(engine) as s:
            if program_status(s, day=day, slot=slot, village_id=village_id) in REACHED:
                return Outcome(village_id, slot, day, "skipped", "已播过")
        owner = claims.new_owner()
        if key not in claims.claim(engine, owner, [key], now):
            # A finished claim whose play failed may be retried; a live one belongs to someone else.
            old = claims.read_claims(engine, [key])
            if not (old and old[0].state == claims.FINISHED and claims.take_over(engine, old[0], owner, now)):
                return Outcome(village_id, slot, day, "skipped", "已被另一个调度器认领")
        carry = urgent_carry(loaded, engine, village_id, slot, day)
        if carry:
            program = with_carry(program, carry, clip_durations(loaded.config, loaded.library))
        with session(engine) as s:
            record_planned(s, broadcast_plans([program]), now=now)
        prep = prepare_programs(loaded, [program])[key]
        fraction = loaded.config.deliver.min_play_fraction if min_fraction is None else min_fraction
        ended = play_prepared(loaded, engine, owner, prep, player, timeout_s, now, min_fraction=fraction)
        status, detail = ended.status, ended.detail
        with session(engine) as s:
            record_outcome(s, prep, status, at=now, detail=detail, evidence=ended.evidence, aired_at=ended.aired_at)
        claims.set_state(engine, owner, [key], claims.FINISHED)
    except Exception as exc:  # every started play ends with an outcome
        log.exception("%s %s %s 播出失败", village_id, day, slot)
        detail = f"程序出错（{type(exc).__name__}）：{exc}"
        try:
            with session(engine) as s:
                fail_rows(s, key, at=now, detail=detail)
        except Exception:
            log.exception("无法把 %s %s %s 的失败写入数据库", village_id, day, slot)
        return Outcome(village_id, slot, day, "failed", detail)
    full = "；".join(x for x in (detail, prep.problems()) if x)
    if status is S.FAILED:
        log.error("%s %s %s 播出失败：%s", village_id, day, slot, full)
    return Outcome(village_id, slot, day, status.value, full)


class Ended(NamedTuple):
    """How a play ended: its status, the reason if it failed, how we know it aired, and when it began."""

    status: S
    detail: str
    evidence: Evidence = Evidence.NONE
    aired_at: datetime | None = None
    proof: dict[str, float | None] | None = None  # proof_score, proof_delay_s, proof_snr_db (--monitor)


def play_prepared(loaded: Loaded, engine: Engine, owner: str, prep: Prepared, player: Sequence[str],
                  timeout_s: float, now: datetime, *, min_fraction: float = 0.0) -> Ended:
    """Run the player on a prepared program and wait for it."""
    if prep.audio is None:
        return Ended(S.FAILED, NO_CLIP)
    v, slot, day = prep.key
    cmd = players.fill(player, {"file": str(prep.audio), "village": v, "slot": slot, "date": day.isoformat(),
                                "village_name": loaded.registry.villages[v].name,
                                "township": loaded.registry.villages[v].township_id})
    begun = time.monotonic()
    try:
        proc = players.spawn(cmd, loaded.config.build_path / "players", timeout_s)
    except OutreachError as exc:
        return Ended(S.FAILED, str(exc))
    claims.set_playing(engine, owner, [(prep.key, proc.pgid, proc.started)], now)
    ended = finish_player(proc, players.display_name(cmd), timeout_s, wait=True,
                          length_s=players.program_length(prep.audio), min_fraction=min_fraction)
    if ended is None:
        return Ended(S.FAILED, "播放程序没有正常结束")
    return ended._replace(aired_at=now + timedelta(seconds=proc.t0 - begun))


def spoken_length(seconds: float) -> str:
    """A length as staff read it: 0.4 秒, 42 秒, 5 分 12 秒."""
    if seconds < 10:
        return f"{seconds:.1f} 秒"
    whole = round(seconds)
    return f"{whole} 秒" if whole < 60 else f"{whole // 60} 分 {whole % 60} 秒"


def too_short(program: str, ran_s: float, length_s: float, tail: str = "") -> str:
    """Why a player that ended early is a failed play (the 今天 page shows it)."""
    return (f"播放程序 '{program}' {spoken_length(ran_s)}就退出（节目 {spoken_length(length_s)}）：可能没有声卡或功放没开"
            + (f"；播放程序的输出：{tail}" if tail else ""))


def finish_player(proc: players.Player, program: str, timeout_s: float, *, wait: bool,
                  length_s: float | None = None, min_fraction: float = 0.0) -> Ended | None:
    """The outcome of a player once it ended (None while it still runs and `wait` is False).

    A player past its deadline has its whole process group stopped; so do the
    leftovers of a player that exited (a wrapper's child must not play on).
    A player that exits 0 is checked against the program: ended before `min_fraction`
    of `length_s`, it is failed; lasted, it is played with evidence `player`. Without a
    length or with the check off (0), a clean exit is played with no evidence.
    """
    if wait:
        try:
            proc.proc.wait(timeout=max(0.0, proc.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    code = proc.proc.poll()
    ran_s = time.monotonic() - proc.t0
    if code is None and time.monotonic() < proc.deadline:
        return None
    if code is None:
        players.stop_group(proc.pgid, leader=proc.proc)
        proc.cleanup()
        return Ended(S.FAILED, f"播放程序 '{program}' 运行 {timeout_s:.0f} 秒后仍未结束，已停止它的进程组"
                               "（节目较长时请调大 deliver.player_timeout_s）")
    players.stop_group(proc.pgid, grace_s=0.5)
    tail = proc.stderr_tail()
    proc.cleanup()
    if code != 0:
        return Ended(S.FAILED, f"播放程序 '{program}' 异常退出（退出码 {code}）" + (f"：{tail}" if tail else ""))
    if min_fraction <= 0 or not length_s:
        return Ended(S.PLAYED, "")
    if ran_s < min_fraction * length_s:
        return Ended(S.FAILED, too_short(program, ran_s, length_s, tail))
    return Ended(S.PLAYED, "", Evidence.PLAYER)

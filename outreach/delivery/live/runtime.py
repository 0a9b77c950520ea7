"""The play runtime of the leading scheduler: due village slots are claimed and started in batches, then watched.

Slot time does only the quick part: claim (one INSERT for the whole batch),
log the rows `planned`, start each player in its own process group. Programs
are resolved and joined ahead by the pre-flight. One monitor thread watches
every running player: timeouts stop the whole group, heartbeats keep claims
and leadership fresh, and each ended player gets its outcome in the log.
There is no worker pool to queue behind, so 1,000 villages start together.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from outreach.audio.render import clip_durations
from outreach.config import TZ
from outreach.db import session
from outreach.delivery import Channel, served_by
from outreach.delivery.live import claims, players
from outreach.delivery.live.play import NO_CLIP, fail_rows, finish_player, interrupt_rows, record_outcome
from outreach.delivery.prepare import (
    Key, Prepared, Resolved, plan_programs, prepare_programs, render_needed, urgent_carries, with_carry,
)
from outreach.labels import STATUS, label
from outreach.models import REACHED, Broadcast, BroadcastStatus
from outreach.planning.workspace import Loaded, plan_days
from outreach.records import broadcast_plans, record_planned

log = logging.getLogger("outreach.playout")
_BATCH_WINDOW_S = 0.05


def live_clock() -> datetime:
    """The county's wall clock (Asia/Shanghai): read by the live channel and the scheduler's job functions."""
    return datetime.now(TZ)


@dataclass
class Playing:
    """A program on air: what it is and the player process playing it."""

    prep: Prepared
    player: players.Player
    program: str
    timeout_s: float


class LiveRuntime:
    """Claims, starts and watches plays for one leading scheduler."""

    def __init__(self, loaded: Loaded, engine: sa.Engine, owner: str,
                 leadership: claims.Leadership | None = None) -> None:
        self.loaded, self.engine, self.owner, self.leadership = loaded, engine, owner, leadership
        self.prepared: dict[Key, Prepared] = {}
        # What the pre-flight checked and joined, and its clip durations: slot time reuses them.
        self.resolved = Resolved()
        self.durations: dict[str, float] | None = None
        self.lost = threading.Event()  # set when leadership is lost: the scheduler must stop
        self._queue: queue.Queue[tuple[list[Key], datetime]] = queue.Queue()
        self._running: dict[Key, Playing] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._dispatch_loop, "outreach-dispatch"), (self._monitor_loop, "outreach-monitor")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def shutdown(self) -> None:
        """Stop dispatching; stop players still on air and log them interrupted (replayed on restart within grace)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        now = live_clock()
        with self._lock:
            playing = list(self._running.values())
            self._running.clear()
        for p in playing:
            players.stop_group(p.player.pgid, leader=p.player.proc)
            p.player.cleanup()
        if playing:
            with session(self.engine) as s:
                for p in playing:
                    interrupt_rows(s, p.prep.key, at=now, detail="中断：调度器已停止")
            log.warning("已停止 %d 个正在播出的播放程序；重启后在宽限时间内会重播这些时段", len(playing))

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # --- what is due ---------------------------------------------------------------------

    def villages_at(self, hhmm: str) -> list[tuple[str, str]]:
        """(village, slot) of every networked village whose slot starts at HH:MM."""
        reg = self.loaded.registry
        return [(v.id, s.name) for v in served_by(reg, Channel.LIVE)
                for s in reg.village_slots(v.id) if s.start.strftime("%H:%M") == hhmm]

    def slot_start(self, key: Key) -> datetime:
        village, slot, day = key
        spec = next(s for s in self.loaded.registry.village_slots(village) if s.name == slot)
        return datetime.combine(day, spec.start.replace(tzinfo=None), tzinfo=TZ)

    def submit(self, keys: Sequence[Key], now: datetime) -> None:
        """Queue village slots to play now (thread-safe; returns at once)."""
        if keys:
            self._queue.put((list(keys), now))

    # --- dispatch ------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                keys, now = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            end = time.monotonic() + _BATCH_WINDOW_S
            while time.monotonic() < end:
                try:
                    keys += self._queue.get(timeout=max(0.0, end - time.monotonic()))[0]
                except queue.Empty:
                    break
            try:
                self.start_batch(keys, now)
            except Exception as exc:  # a job must never take the scheduler down, nor leave `planned`
                log.exception("启动 %d 个时段失败", len(keys))
                self._fail(keys, f"程序出错（{type(exc).__name__}）：{exc}")

    def _fail(self, keys: Iterable[Key], detail: str) -> None:
        now = live_clock()
        try:
            with session(self.engine) as s:
                for key in keys:
                    fail_rows(s, key, at=now, detail=detail)
            claims.set_state(self.engine, self.owner, keys, claims.FINISHED)
        except Exception:
            log.exception("无法把 %d 个时段的失败写入数据库", len(list(keys)))

    def _already_done(self, keys: Sequence[Key]) -> set[Key]:
        if not keys:
            return set()
        b = Broadcast
        with session(self.engine) as s:
            rows = s.execute(sa.select(b.village_id, b.slot, b.date).where(
                b.date.in_({d for _, _, d in keys}), b.village_id.in_({v for v, _, _ in keys}),
                b.status.in_(REACHED)).distinct()).all()
        return {(v, sl, d) for v, sl, d in rows} & set(keys)

    def start_batch(self, keys: Sequence[Key], now: datetime) -> list[Key]:
        """Claim, log and start every key this scheduler wins; return the keys started."""
        keys = list(dict.fromkeys(keys))
        with self._lock:
            keys = [k for k in keys if k not in self._running]
        done = self._already_done(keys)
        for k in done:
            log.info("%s %s %s：已播过，跳过", k[0], k[2], k[1])
        todo = [k for k in keys if k not in done]
        won = claims.claim(self.engine, self.owner, todo, now)
        lost = [k for k in todo if k not in won]
        orphans: list[claims.Claim] = []
        for c in claims.read_claims(self.engine, lost):
            if c.owner == self.owner:
                if c.state == claims.CLAIMED:  # taken over from a dead scheduler: replay it
                    won.add(c.key)
                continue
            if c.state == claims.FINISHED:
                log.info("%s %s %s：已播过，跳过（认领者 %s）", *c.key[::2], c.key[1], c.owner)
            elif claims.owner_alive(c.owner, c.heartbeat_at, now, self.loaded.config.deliver.stale_s):
                log.info("%s %s %s：已被调度器 %s 认领，跳过", c.key[0], c.key[2], c.key[1], c.owner)
            else:
                orphans.append(c)
        won.update(self.settle_orphans(orphans, now))
        return self._launch([k for k in todo if k in won], now)

    def _programs(self, keys: Sequence[Key]) -> dict[Key, Prepared]:
        out = {k: self.prepared[k] for k in keys if k in self.prepared}
        missing = [k for k in keys if k not in out]
        if missing:  # not in the pre-flight's window: planned now; clips it checked are not checked again
            out |= prepare_programs(self.loaded, plan_programs(self.loaded, missing).values(), resolved=self.resolved)
        carries = urgent_carries(self.loaded, self.engine, [k for k in keys if k in out])
        if carries:
            if self.durations is None:
                self.durations = clip_durations(self.loaded.config, self.loaded.library)
            out |= prepare_programs(self.loaded, [with_carry(out[k].program, c, self.durations)
                                                  for k, c in carries.items()], resolved=self.resolved)
        return out

    def _launch(self, keys: list[Key], now: datetime) -> list[Key]:
        if not keys:
            return []
        preps = self._programs(keys)
        silent = [k for k in keys if k not in preps]
        for k in silent:
            log.info("%s %s %s：不播（停播日或没有安排节目）", k[0], k[2], k[1])
        claims.set_state(self.engine, self.owner, silent, claims.FINISHED)
        with session(self.engine) as s:
            record_planned(s, broadcast_plans([preps[k].program for k in keys if k in preps]), now=now)
        deliver = self.loaded.config.deliver
        started: list[tuple[Key, int, int | None]] = []
        ended: list[tuple[Prepared, BroadcastStatus, str]] = []
        for k in keys:
            prep = preps.get(k)
            if prep is None:
                continue
            if prep.audio is None:
                ended.append((prep, BroadcastStatus.FAILED, NO_CLIP))
                continue
            try:
                cmd = players.route(self.loaded.registry, self.loaded.config, k[0], k[1], k[2], prep.audio)
                player = players.spawn(cmd, self.loaded.config.build_path / "players", deliver.player_timeout_s)
            except Exception as exc:
                ended.append((prep, BroadcastStatus.FAILED, str(exc)))
                continue
            with self._lock:
                self._running[k] = Playing(prep, player, cmd[0], deliver.player_timeout_s)
            started.append((k, player.pgid, player.started))
        claims.set_playing(self.engine, self.owner, started, now)
        self._record(ended, now)
        if started:
            log.info("已启动 %d 个播放程序（%d 个启动失败，%d 个不播）", len(started), len(ended), len(silent))
        return [k for k, _, _ in started]

    def _record(self, ended: Sequence[tuple[Prepared, BroadcastStatus, str]], now: datetime) -> None:
        if not ended:
            return
        with session(self.engine) as s:
            for prep, status, detail in ended:
                record_outcome(s, prep, status, at=now, detail=detail)
        claims.set_state(self.engine, self.owner, [p.key for p, _, _ in ended], claims.FINISHED)
        for prep, status, detail in ended:
            v, slot, day = prep.key
            text = "；".join(x for x in (detail, prep.problems()) if x)
            (log.error if status is BroadcastStatus.FAILED else log.info)(
                "%s %s %s：%s %s", v, day, slot, label(STATUS, status), text)

    def settle_orphans(self, found: Sequence[claims.Claim], now: datetime) -> list[Key]:
        """Settle claims whose scheduler is gone: stop their player groups (together), log `interrupted`,
        and take each over for a whole replay if its slot is still within grace; return those keys."""
        stopped = players.stop_orphans([(c.player_pgid, c.player_started) for c in found if c.player_pgid])
        return [c.key for c in found if self.settle_orphan(c, now, stopped=c.player_pgid in stopped)]

    def settle_orphan(self, c: claims.Claim, now: datetime, *, stopped: bool | None = None) -> bool:
        """Settle one claim whose scheduler is gone (see settle_orphans); True if it is to be replayed."""
        if stopped is None:
            stopped = bool(c.player_pgid) and bool(players.stop_orphans([(c.player_pgid, c.player_started)]))
        detail = f"中断：调度器 {c.owner} 在播出中途停止" + (
            f"；它的播放程序（进程组 {c.player_pgid}）已被停止" if stopped else "")
        with session(self.engine) as s:
            interrupt_rows(s, c.key, at=now, detail=detail)
        if not claims.take_over(self.engine, c, self.owner, now):
            return False
        late = (now - self.slot_start(c.key)).total_seconds()
        if late <= self.loaded.config.deliver.grace_s:
            log.warning("%s %s %s：%s；从头完整重播（晚了 %.0f 秒）", c.key[0], c.key[2], c.key[1], detail, late)
            return True
        claims.set_state(self.engine, self.owner, [c.key], claims.FINISHED)
        log.warning("%s %s %s：%s；已过宽限时间，不再重播", c.key[0], c.key[2], c.key[1], detail)
        return False

    # --- watching players ------------------------------------------------------------------

    def _monitor_loop(self) -> None:
        deliver = self.loaded.config.deliver
        last_beat = 0.0
        while not self._stop.wait(0.2):
            try:
                with self._lock:
                    items = list(self._running.items())
                ended = []
                for key, p in items:
                    result = finish_player(p.player, p.program, p.timeout_s, wait=False)
                    if result is not None:
                        ended.append((p.prep, *result))
                        with self._lock:
                            self._running.pop(key, None)
                self._record(ended, live_clock())
                if time.monotonic() - last_beat >= deliver.heartbeat_s:
                    last_beat = time.monotonic()
                    now = live_clock()
                    claims.beat(self.engine, self.owner, now)
                    if self.leadership is not None and not self.leadership.beat(now):
                        log.critical("另一个调度器接管了这个数据库；本调度器停止")
                        self.lost.set()
            except Exception:
                log.exception("检查播放程序时出错；稍后重试")

    # --- pre-flight ------------------------------------------------------------------------

    def preflight(self, now: datetime, *, hours: int = 48) -> dict[str, int]:
        """Make sure every clip of the next `hours` of programs exists and verifies; resolve and join
        the networked villages' programs ahead, so slot time only starts players."""
        loaded = self.loaded
        grace = timedelta(seconds=loaded.config.deliver.grace_s)
        end = now + timedelta(hours=hours)
        result = plan_days(loaded, (now - grace).astimezone(TZ).date(), end.astimezone(TZ).date())
        programs = [p for p in result.programs if now - grace <= p.start <= end]
        made, failures = render_needed(loaded, programs)
        for script_id, message in failures.items():
            log.error("预检：%s 的录音无法生成：%s", script_id, message)
        for line in result.alerts:  # one loud line per urgent campaign and edited script, not per program
            log.error("预检：%s", line)
        networked = {v.id for v in served_by(loaded.registry, Channel.LIVE)}
        resolved = Resolved()  # a new pre-flight checks every clip afresh
        ready = prepare_programs(loaded, [p for p in programs if p.village_id in networked], resolved=resolved)
        self.prepared, self.resolved = ready, resolved
        self.durations = clip_durations(loaded.config, loaded.library)
        cannot = sum(len(p.not_aired) for p in ready.values())
        log.info("预检：%d 个节目已就绪（未来 %d 小时），新生成录音 %d 条，%d 项无法播出",
                 len(ready), hours, made, cannot)
        return {"programs": len(ready), "rendered": made, "failures": len(failures), "cannot_air": cannot}


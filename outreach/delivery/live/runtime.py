"""The play runtime of the leading scheduler: due village slots are claimed and started in batches, then watched.

Slot time does only the quick part: claim (one INSERT for the whole batch),
log the rows `planned`, start each player in its own process group. Programs
are resolved and joined ahead by the pre-flight. One monitor thread watches
every running player: timeouts stop the whole group, heartbeats keep claims
and leadership fresh, and each ended player gets its outcome in the log.
There is no worker pool to queue behind, so 1,000 villages start together.
A 紧急插播 for a networked village cuts in through live.alerts.AlertPlayout, the other half of this class.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from outreach.audio.render import clip_durations
from outreach.config import TZ, Config, load_config
from outreach.db import session
from outreach.delivery import Channel, served_by
from outreach.delivery.live import airproof, claims, players
from outreach.delivery.live import alerts as live_alerts
from outreach.delivery.live.play import NO_CLIP, Ended, fail_rows, finish_player, interrupt_rows, record_outcome
from outreach.delivery.prepare import (
    Key, Prepared, Resolved, plan_programs, prepare_programs, render_needed, urgent_carries, with_carry,
)
from outreach.labels import STATUS, label
from outreach.models import REACHED, Broadcast, BroadcastStatus
from outreach.planning.plan import Program
from outreach.planning.workspace import Loaded, load, plan_days
from outreach.records import broadcast_plans, record_planned

log = logging.getLogger("outreach.playout")
_BATCH_WINDOW_S = 0.05


def live_clock() -> datetime:
    """The county's wall clock (Asia/Shanghai): read by the live channel and the scheduler's job functions."""
    return datetime.now(TZ)


def workspace_stamp(config: Config) -> float:
    """Newest modification time of the files a workspace is loaded from (settings, schedules, scripts)."""
    paths = [config.workspace / "outreach.toml", *config.schedules_dir.glob("*.yaml"), *config.scripts_dir.glob("*")]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


@dataclass
class Playing:
    """A program on air: what it is and the player process playing it."""

    prep: Prepared
    player: players.Player
    program: str
    timeout_s: float
    length_s: float | None = None  # the program's length, which the player must run for
    aired_at: datetime | None = None  # when the player started: when the sound went out
    proof: Any = None  # the microphone's PlayMonitor listening to this play (--monitor), if any
    ended: Ended | None = None  # set once the player ended while its proof is still being matched


class LiveRuntime(live_alerts.AlertPlayout):
    """Claims, starts and watches plays for one leading scheduler."""

    def __init__(self, loaded: Loaded, engine: sa.Engine, owner: str,
                 leadership: claims.Leadership | None = None, monitor: Any = None) -> None:
        self.loaded, self.engine, self.owner, self.leadership = loaded, engine, owner, leadership
        self.monitor = monitor  # the capture source of `--monitor` (airproof.open_monitor), or None
        self.stamp = workspace_stamp(loaded.config)  # of the files `loaded` was read from
        self.prepared: dict[Key, Prepared] = {}
        # What the pre-flight checked and joined, and its clip durations: slot time reuses them.
        self.resolved = Resolved()
        self.durations: dict[str, float] | None = None
        self.lost = threading.Event()  # set when leadership is lost: the scheduler must stop
        self._queue: queue.Queue[tuple[list[Key], datetime]] = queue.Queue()
        self._running: dict[Key, Playing] = {}
        # Villages whose horn an alert holds (None while it is being set up), and the slots waiting for it.
        self._alerts: dict[str, live_alerts.OnAir | None] = {}
        self._held: dict[str, list[Key]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._dispatch_loop, "outreach-dispatch"), (self._monitor_loop, "outreach-monitor"),
                             (self._alert_loop, "outreach-alerts")):
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
        done = [(p.prep, p.ended) for p in playing if p.ended is not None]  # played; proof still matching
        for p in playing:
            if p.proof is not None:
                p.proof.cancel()
        playing = [p for p in playing if p.ended is None]
        self._record(done, now)
        self._stop_alerts()
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

    def refresh(self) -> bool:
        """Reload the workspace if its files changed since it was loaded (a script approved in the browser
        just before its slot); the pre-flight's programs and clip checks are then dropped. True if reloaded."""
        stamp = workspace_stamp(self.loaded.config)
        if stamp == self.stamp:
            return False
        fresh = load(load_config(self.loaded.config.workspace))
        self.loaded, self.stamp, self.prepared, self.resolved, self.durations = fresh, stamp, {}, Resolved(), None
        log.info("工作区文件有改动：播出前已重新加载")
        return True

    def _checked(self, programs: list[Program]) -> dict[Key, Prepared]:
        """Resolve programs the pre-flight did not (a late or replayed slot, a carry, a changed workspace)
        through the pre-flight's clip check: render the clips they need first, then resolve."""
        if not programs:
            return {}
        made, failures = render_needed(self.loaded, programs)
        for script_id, message in failures.items():
            log.error("%s 的录音无法生成：%s", script_id, message)
        if made or failures:  # a clip found missing earlier is checked again
            self.resolved.clips = {k: v for k, v in self.resolved.clips.items() if not isinstance(v, str)}
        return prepare_programs(self.loaded, programs, resolved=self.resolved)

    def _programs(self, keys: Sequence[Key]) -> dict[Key, Prepared]:
        try:
            self.refresh()
        except Exception:
            log.exception("工作区文件有改动，但无法加载；继续使用之前的版本")
            self.stamp = workspace_stamp(self.loaded.config)
        out = {k: self.prepared[k] for k in keys if k in self.prepared}
        missing = [k for k in keys if k not in out]
        if missing:  # not in the pre-flight's window: planned and checked now; clips it checked are not checked again
            out |= self._checked(list(plan_programs(self.loaded, missing).values()))
        carries = urgent_carries(self.loaded, self.engine, [k for k in keys if k in out])
        if carries:
            if self.durations is None:
                self.durations = clip_durations(self.loaded.config, self.loaded.library)
            out |= self._checked([with_carry(out[k].program, c, self.durations) for k, c in carries.items()])
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
        started: list[tuple[Key, int, int | None]] = []
        ended: list[tuple[Prepared, Ended]] = []
        lengths: dict[str, float | None] = {}
        listen = self._listen([k for k in keys if k in preps and preps[k].audio is not None])
        launched = time.monotonic()  # `now` is this instant: a player's start is `now` plus its offset
        for k in keys:
            prep = preps.get(k)
            if prep is None:
                continue
            if prep.audio is None:
                ended.append((prep, Ended(BroadcastStatus.FAILED, NO_CLIP)))
                continue
            if str(prep.audio) not in lengths:
                lengths[str(prep.audio)] = players.program_length(prep.audio)
            try:
                player = self._start_player(k, prep, lengths[str(prep.audio)], listen, now, launched)
            except Exception as exc:
                ended.append((prep, Ended(BroadcastStatus.FAILED, str(exc))))
                continue
            if player is not None:
                started.append((k, player.pgid, player.started))
        claims.set_playing(self.engine, self.owner, started, now)
        self._record(ended, now)
        if started:
            log.info("已启动 %d 个播放程序（%d 个启动失败，%d 个不播）", len(started), len(ended), len(silent))
        return [k for k, _, _ in started]

    def _start_player(self, k: Key, prep: Prepared, length: float | None, listen: bool, now: datetime,
                      launched: float) -> players.Player | None:
        """Start one program's player and put it on air; None while an alert holds the village's horn (the
        slot then waits for it). The check and the start share one lock, so an alert cannot cut in between."""
        assert prep.audio is not None
        deliver = self.loaded.config.deliver
        with self._lock:
            if k[0] in self._alerts:
                self._held.setdefault(k[0], []).append(k)
                log.info("%s %s %s：正在紧急插播，插播后再播", k[0], k[2], k[1])
                return None
            cmd = players.route(self.loaded.registry, self.loaded.config, k[0], k[1], k[2], prep.audio)
            player = players.spawn(cmd, self.loaded.config.build_path / "players", deliver.player_timeout_s)
            proof = airproof.watch(self.monitor, prep.audio, length, player.t0) if listen else None
            self._running[k] = Playing(prep, player, players.display_name(cmd), deliver.player_timeout_s,
                                       length, now + timedelta(seconds=player.t0 - launched), proof)
        return player

    def _listen(self, keys: Sequence[Key]) -> bool:
        """Whether the microphone (--monitor) checks these plays: only one on air alone (one microphone, one horn)."""
        if self.monitor is None or not keys:
            return False
        with self._lock:
            alone = len(keys) == 1 and not self._running
        if not alone:
            log.info("播出监听：同时播出 %d 个节目，话筒只核对单独播出的节目，这一批不核对", len(keys) + self.running)
        return alone

    def _prove(self, key: Key, p: Playing) -> None:
        """Thread: wait for the microphone's verdict on a play that ran through, then log the play."""
        assert p.ended is not None
        ended = airproof.with_proof(p.ended, p.proof, f"{key[0]} {key[2]} {key[1]}")
        with self._lock:
            if self._running.get(key) is not p:  # shutdown logged it meanwhile, or an alert took it off air
                return
            del self._running[key]
        self._record([(p.prep, ended)], live_clock())

    def _record(self, ended: Sequence[tuple[Prepared, Ended]], now: datetime) -> None:
        if not ended:
            return
        with session(self.engine) as s:
            for prep, e in ended:
                record_outcome(s, prep, e.status, at=now, detail=e.detail, evidence=e.evidence, aired_at=e.aired_at,
                               proof=e.proof)
        claims.set_state(self.engine, self.owner, [p.key for p, _ in ended], claims.FINISHED)
        for prep, e in ended:
            v, slot, day = prep.key
            text = "；".join(x for x in (e.detail, prep.problems()) if x)
            (log.error if e.status is BroadcastStatus.FAILED else log.info)(
                "%s %s %s：%s %s", v, day, slot, label(STATUS, e.status), text)

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

    def _alert_loop(self) -> None:
        """Thread: every POLL_S, play the alerts waiting for networked villages (live.alerts.AlertPlayout)."""
        while not self._stop.wait(live_alerts.POLL_S):
            try:
                self.take_alerts(live_clock())
            except Exception:  # the loop must outlive a database hiccup
                log.exception("检查紧急插播时出错；稍后重试")

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
                    if p.ended is not None:  # ran through; its proof of air is being matched (_prove)
                        continue
                    result = finish_player(p.player, p.program, p.timeout_s, wait=False, length_s=p.length_s,
                                           min_fraction=self.loaded.config.deliver.min_play_fraction)
                    if result is None:
                        continue
                    result = result._replace(aired_at=p.aired_at)
                    if p.proof is not None and result.status is BroadcastStatus.PLAYED:
                        p.ended = result
                        threading.Thread(target=self._prove, args=(key, p), daemon=True, name="outreach-proof").start()
                        continue
                    with self._lock:
                        if self._running.get(key) is not p:  # an alert took it off air: settled there
                            continue
                        del self._running[key]
                    if p.proof is not None:
                        p.proof.cancel()
                    ended.append((p.prep, result))
                self._record(ended, live_clock())
                self._watch_alerts(live_clock())
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
        if self.loaded is loaded:  # else the workspace was reloaded meanwhile: these programs are stale
            self.prepared, self.resolved = ready, resolved
            self.durations = clip_durations(loaded.config, loaded.library)
        cannot = sum(len(p.not_aired) for p in ready.values())
        log.info("预检：%d 个节目已就绪（未来 %d 小时），新生成录音 %d 条，%d 项无法播出",
                 len(ready), hours, made, cannot)
        return {"programs": len(ready), "rendered": made, "failures": len(failures), "cannot_air": cannot}


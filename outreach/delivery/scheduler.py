"""APScheduler 3.x wiring: one leading scheduler per database plays every village slot exactly once.

Times are Asia/Shanghai whatever the machine's zone. Jobs live in the project
database (SQLAlchemy job store): one play job per slot start time (it hands
every networked village due then to the play runtime, outreach.playout), a
daily pre-flight, and the daily export. A second `run` on the same database
waits as a hot standby and takes over when the leader dies. On taking the
lead, a scheduler settles what the last one left: orphaned plays are stopped
and logged `interrupted` (replayed whole within grace), slots that were due
while nothing ran play late within grace or are logged `missed`, day by day. The leader then sweeps
every channel for slots past start plus grace with no outcome (delivery.sweep: from the plan, the
as-run log and the claims, not from the job store), on taking the lead and every few minutes. Its
heartbeat (every heartbeat_s) is what `outreach status`, /metrics and the pages read (delivery.health).
These job functions and `run` are the only delivery code that reads the clock.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from outreach.config import TZ, Config, load_config
from outreach.dates import json_time
from outreach.db import make_engine, open_migrated, session
from outreach.delivery import Channel, served_by, sweep
from outreach.delivery.health import record_stepped_down
from outreach.delivery.live import airproof, claims, players
from outreach.delivery.live.play import mark_missed_programs
from outreach.delivery.live.runtime import LiveRuntime, live_clock
from outreach.delivery.prepare import Key, plan_programs, slot_day
from outreach.delivery.usb.export import export_days
from outreach.delivery.usb.stale import refresh_and_log
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.workspace import Loaded, load, open_database

log = logging.getLogger("outreach.scheduler")

PLAY_FUNC = "outreach.delivery.scheduler:play_due_job"
EXPORT_FUNC = "outreach.delivery.scheduler:export_job"
PREFLIGHT_FUNC = "outreach.delivery.scheduler:preflight_job"
EXPORT_JOB_ID = "export-next-day"
PREFLIGHT_JOB_ID = "preflight"

# Chinese names of the counts `prepare` and `run` return, for the lines staff read.
_COUNT_LABELS = {"added": "新增任务", "updated": "更新任务", "removed": "删除任务", "kept": "保留任务",
                 "replayed": "重播", "late": "晚播", "missed": "漏播"}

_RUNTIMES: dict[str, LiveRuntime] = {}
_BY_SCHEDULER: dict[int, LiveRuntime] = {}


def describe_counts(counts: dict[str, int]) -> str:
    """`counts` as a short Chinese summary: 新增任务 3，保留任务 2，重播 0 …"""
    if counts.get("standby"):
        return "一直作为备用调度器等待，没有接管"
    return "，".join(f"{_COUNT_LABELS.get(k, k)} {v}" for k, v in counts.items())


def _stamp(config: Config) -> float:
    """Newest modification time of the files a workspace is loaded from."""
    paths = [config.workspace / "outreach.toml", *config.schedules_dir.glob("*.yaml"), *config.scripts_dir.glob("*")]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


# --- job functions (module-level, persisted by reference) -------------------------------


def play_due_job(workspace: str, hhmm: str) -> None:
    """Job: hand every networked village whose slot starts at HH:MM to the play runtime. Never raises."""
    try:
        runtime = _RUNTIMES.get(workspace)
        if runtime is None:
            log.error("播出 %s：本进程里没有运行播出模块（本调度器是主调度器吗？）", hhmm)
            return
        now = live_clock()
        keys = [(v, s, slot_day(datetime.strptime(hhmm, "%H:%M").time(), now)) for v, s in runtime.villages_at(hhmm)]
        runtime.submit(keys, now)
    except Exception:  # a job must never take the scheduler down
        log.exception("播出 %s 失败", hhmm)


def play_slot_job(workspace: str, village_id: str, slot: str) -> None:
    """Job of earlier versions (one per village slot); kept so old stored jobs still load."""
    runtime = _RUNTIMES.get(workspace)
    if runtime is not None:
        spec = next(s for s in runtime.loaded.registry.village_slots(village_id) if s.name == slot)
        now = live_clock()
        runtime.submit([(village_id, slot, slot_day(spec.start, now))], now)


def preflight_job(workspace: str) -> None:
    """Job: make sure the next 48 hours of programs can air. Never raises."""
    try:
        runtime = _RUNTIMES.get(workspace)
        if runtime is not None:
            runtime.preflight(live_clock())
    except Exception:
        log.exception("预检失败")


def export_job(workspace: str) -> None:
    """Job: write tomorrow's USB packs. Never raises."""
    try:
        config = load_config(Path(workspace))
        loaded = load(config)
        engine = make_engine(config.resolved_database_url())
        now = live_clock()
        tomorrow = now.date() + timedelta(days=1)
        out = config.workspace / config.deliver.export_dir
        report = export_days(loaded, engine, tomorrow, tomorrow, out, now=now)
        log.info("导出 %s：写入 %d 个文件，未变 %d 个，失败 %d 个", tomorrow, len(report.written),
                 len(report.unchanged), len(report.failures))
    except Exception:
        log.exception("导出失败")


def _on_missed(runtime: LiveRuntime, event: JobExecutionEvent) -> None:
    """Listener: a play occurrence past its grace time (machine suspended) is logged missed."""
    if not event.job_id.startswith("play@"):
        return
    try:
        hhmm = event.job_id.removeprefix("play@")
        day = event.scheduled_run_time.astimezone(TZ).date()
        keys = [(v, s, day) for v, s in runtime.villages_at(hhmm)]
        log_missed(runtime, keys, live_clock())
    except Exception:
        log.exception("无法记录错过的任务 %s", event.job_id)


# --- jobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """A job that should exist: its id, function, arguments and cron time."""

    id: str
    func: str  # "module:function", as APScheduler stores it
    args: tuple[str, ...]
    hour: int  # Beijing time
    minute: int


def wanted_jobs(loaded: Loaded, mode: str) -> list[JobSpec]:
    """Play mode: a play job per distinct slot start time of networked villages, a pre-flight
    `preflight_lead_h` before the first of them, and the export of offline villages' packs.
    Export mode: only the daily export (every village is fed by USB stick)."""
    ws = str(loaded.config.workspace)
    deliver = loaded.config.deliver
    specs = [JobSpec(EXPORT_JOB_ID, EXPORT_FUNC, (ws,), deliver.export_hour, 0)]
    if mode == "play":
        times = sorted({s.start.strftime("%H:%M") for v in served_by(loaded.registry, Channel.LIVE)
                        for s in loaded.registry.village_slots(v.id)})
        for hhmm in times:
            specs.append(JobSpec(f"play@{hhmm}", PLAY_FUNC, (ws, hhmm), int(hhmm[:2]), int(hhmm[3:])))
        if times:
            first = datetime.strptime(times[0], "%H:%M") - timedelta(hours=deliver.preflight_lead_h)
            specs.append(JobSpec(PREFLIGHT_JOB_ID, PREFLIGHT_FUNC, (ws,), first.hour, first.minute))
    return specs


def _trigger(spec: JobSpec) -> CronTrigger:
    return CronTrigger(hour=spec.hour, minute=spec.minute, timezone=TZ)


def sync_jobs(scheduler: BaseScheduler, loaded: Loaded, mode: str) -> dict[str, int]:
    """Make the job store hold exactly the wanted jobs; unchanged jobs keep their stored next run time."""
    counts = {"added": 0, "updated": 0, "removed": 0, "kept": 0}
    wanted = {spec.id: spec for spec in wanted_jobs(loaded, mode)}
    for job in scheduler.get_jobs():
        spec = wanted.get(job.id)
        if spec is None:
            job.remove()
            counts["removed"] += 1
        elif tuple(job.args) != spec.args or str(job.trigger) != str(_trigger(spec)):
            scheduler.remove_job(job.id)
        else:
            counts["kept"] += 1
            del wanted[job.id]
    for spec in wanted.values():
        existed = scheduler.get_job(spec.id) is not None
        scheduler.add_job(spec.func, _trigger(spec), args=list(spec.args), id=spec.id, name=spec.id,
                          replace_existing=True)
        counts["updated" if existed else "added"] += 1
    return counts


def build_scheduler(config: Config, *, blocking: bool, engine: sa.Engine | None = None) -> BaseScheduler:
    """A scheduler on Asia/Shanghai time with its jobs in the project database.

    Jobs only hand work to the play runtime, so a small pool never queues a
    slot; without coalescing, each occurrence missed while the process was
    suspended reaches the missed listener on its own.
    """
    if engine is None:
        engine = open_migrated(config.resolved_database_url())
    cls = BlockingScheduler if blocking else BackgroundScheduler
    return cls(
        timezone=TZ,
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": False, "max_instances": 3, "misfire_grace_time": config.deliver.grace_s},
    )


# --- taking the lead -------------------------------------------------------------------


def log_missed(runtime: LiveRuntime, keys: list[Key], now: datetime) -> int:
    """Log village slots nobody played as `missed` (claimed ones are settled elsewhere)."""
    claimed = {c.key for c in claims.read_claims(runtime.engine, keys)}
    todo = [k for k in keys if k not in claimed]
    programs = list(plan_programs(runtime.loaded, todo).values())
    changed = mark_missed_programs(runtime.engine, programs, now=now)
    if changed:
        log.warning("%d 个村的时段记为漏播（%s … %s）", len(programs), min(p.date for p in programs),
                    max(p.date for p in programs))
    return changed


def _untouched(runtime: LiveRuntime, keys: list[Key]) -> list[Key]:
    """Keys with no claim and no row past `planned` (nobody started them)."""
    if not keys:
        return []
    claimed = {c.key for c in claims.read_claims(runtime.engine, keys)}
    b = Broadcast
    with session(runtime.engine) as s:
        settled = set(s.execute(sa.select(b.village_id, b.slot, b.date).where(
            b.date.in_({d for _, _, d in keys}), b.village_id.in_({v for v, _, _ in keys}),
            b.status != BroadcastStatus.PLANNED)).all())
    return [k for k in keys if k not in claimed and k not in settled]


def catch_up(scheduler: BaseScheduler, runtime: LiveRuntime, now: datetime) -> dict[str, int]:
    """Settle what happened while no scheduler led: orphaned plays, slots due in the gap."""
    deliver = runtime.loaded.config.deliver
    grace = timedelta(seconds=deliver.grace_s)
    replay = runtime.settle_orphans([
        c for c in claims.read_claims(runtime.engine, open_only=True)
        if c.owner != runtime.owner and not claims.owner_alive(c.owner, c.heartbeat_at, now, deliver.stale_s)], now)
    late: list[Key] = []
    missed: list[Key] = []
    for job in scheduler.get_jobs():
        if not job.id.startswith("play@"):
            continue
        hhmm = job.id.removeprefix("play@")
        stored = job.next_run_time
        low = min(stored, now - grace) if stored else now - grace
        at = datetime.strptime(hhmm, "%H:%M").time()
        day = low.astimezone(TZ).date()
        while day <= now.astimezone(TZ).date():
            when = datetime.combine(day, at, tzinfo=TZ)
            if low <= when <= now:
                keys = _untouched(runtime, [(v, s, day) for v, s in runtime.villages_at(hhmm)])
                (late if now - when <= grace else missed).extend(keys)
            day += timedelta(days=1)
        if stored is not None and stored <= now:
            scheduler.modify_job(job.id, next_run_time=job.trigger.get_next_fire_time(None, now))
    runtime.submit(replay + late, now)
    n_missed = 0
    for i in range(0, len(missed), 5000):
        n_missed += log_missed(runtime, missed[i:i + 5000], now)
    return {"replayed": len(replay), "late": len(late), "missed": len(missed)}


def prepare(config: Config, mode: str, *, blocking: bool, loaded: Loaded | None = None,
            engine: sa.Engine | None = None, owner: str | None = None,
            leadership: claims.Leadership | None = None, monitor: Any = None) -> tuple[BaseScheduler, dict[str, int]]:
    """As the leader: build the scheduler and its play runtime, sync the jobs, settle the gap.

    The scheduler is returned paused; `resume()` starts it. Pre-flight runs in the background.
    `monitor` is the microphone beside the horn (live.airproof.open_monitor), or None.
    """
    loaded = loaded or load(config)
    engine = engine or open_database(loaded)
    owner = owner or claims.new_owner()
    runtime = LiveRuntime(loaded, engine, owner, leadership, monitor)
    scheduler = build_scheduler(config, blocking=blocking, engine=engine)
    scheduler.add_listener(lambda event: _on_missed(runtime, event), EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    counts = sync_jobs(scheduler, loaded, mode)
    ws = str(config.workspace)
    _RUNTIMES[ws] = runtime
    _BY_SCHEDULER[id(scheduler)] = runtime
    runtime.start()
    if mode == "play":
        counts |= catch_up(scheduler, runtime, live_clock())
        threading.Thread(target=_preflight_then_watch, args=(scheduler, runtime, mode), daemon=True,
                         name="outreach-preflight").start()
    counts["missed"] = counts.get("missed", 0) + _sweep_at_start(runtime)
    refresh_and_log(runtime.loaded, engine, now=live_clock())  # USB packs the plan changed since their export
    return scheduler, counts


def _sweep_at_start(runtime: LiveRuntime) -> int:
    """Log `missed` every silent slot since the database's first use (delivery.sweep), then keep sweeping in
    the background; returns the programs logged. A failed sweep never keeps the slots from playing."""
    now = live_clock()
    since, found = now.astimezone(TZ).date() - timedelta(days=1), 0
    try:
        swept = sweep.sweep_missed(runtime.loaded, runtime.engine, now=now)
        since, found = swept.last, swept.programs
    except Exception:
        log.exception("检查漏播失败；%.0f 秒后重试", sweep.EVERY_S)
    threading.Thread(target=_sweep_every, args=(runtime, since), daemon=True, name="outreach-sweep").start()
    return found


def _sweep_every(runtime: LiveRuntime, since: date) -> None:
    """Every sweep.EVERY_S while leading: log `missed` the slots of every channel past start plus grace."""
    while not runtime._stop.wait(sweep.EVERY_S):
        try:
            since = sweep.sweep_missed(runtime.loaded, runtime.engine, now=live_clock(), since=since).last
        except Exception:  # the sweep must never take the scheduler down
            log.exception("检查漏播失败；%.0f 秒后重试", sweep.EVERY_S)


def _preflight_then_watch(scheduler: BaseScheduler, runtime: LiveRuntime, mode: str) -> None:
    """Pre-flight at start-up, then again whenever a script, campaign or config file changes."""
    config = runtime.loaded.config
    stamp = _stamp(config)
    try:
        runtime.preflight(live_clock())
    except Exception:
        log.exception("预检失败")
    stopped = runtime._stop
    while not stopped.wait(config.deliver.watch_s):
        try:
            now_stamp = _stamp(config)
            if now_stamp == stamp:
                continue
            stamp = now_stamp
            fresh = load(load_config(config.workspace))
            runtime.loaded, runtime.prepared = fresh, {}
            sync_jobs(scheduler, fresh, mode)
            refresh_and_log(fresh, runtime.engine, now=live_clock())
            log.info("工作区文件有改动：已重新加载，正在预检")
            runtime.preflight(live_clock())
        except Exception:
            log.exception("工作区文件有改动，但无法加载；继续使用之前的版本")


def run(config: Config, mode: str, *, monitor: str | None = None) -> dict[str, int]:
    """Lead (or wait as a hot standby) and run the scheduler until SIGTERM or SIGINT; then stop cleanly.

    `monitor` (`--monitor alsa:DEVICE|file:PATH`) names a microphone beside the horn: a play heard
    through it is logged with evidence `heard` (live.airproof).
    Raises ConfigError before anything starts if a networked village's player program is missing,
    MonitorError if the monitor cannot be opened.
    """
    loaded = load(config)
    deliver = config.deliver
    source = airproof.open_monitor(monitor) if monitor else None
    if mode == "play":
        networked = sorted(v.id for v in served_by(loaded.registry, Channel.LIVE))
        players.check_players(loaded.registry, loaded.config, networked)
    engine = open_database(loaded)
    owner = claims.new_owner()
    leadership = claims.Leadership(engine, owner, deliver.stale_s)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("收到信号 %d：正在停止调度", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not leadership.try_acquire(live_clock()):
        current = leadership.leader()
        log.warning("备用调度器：%s 是这个数据库的主调度器；本调度器（%s）热备等待，它停止后 %.0f 秒内接管",
                    current.owner if current else "（未知）", owner,
                    deliver.stale_s + deliver.standby_poll_s)
        while not stop.wait(deliver.standby_poll_s):
            if leadership.try_acquire(live_clock()):
                break
        if stop.is_set():
            return {"standby": 1}
        log.warning("接管为主调度器（%s）", owner)
    scheduler, counts = prepare(config, mode, blocking=False, loaded=loaded, engine=engine, owner=owner,
                                leadership=leadership, monitor=source)
    runtime = _BY_SCHEDULER[id(scheduler)]
    scheduler.resume()
    log.info("调度器已运行，主调度器 %s：%s", owner, describe_counts(counts))
    while not stop.wait(0.5):
        if runtime.lost.is_set():
            break
    stop_scheduler(scheduler)
    try:
        record_stepped_down(engine, owner, now=live_clock())  # what the status pages show as 最后一次
    finally:
        leadership.release()
    return counts


def stop_scheduler(scheduler: BaseScheduler, *, wait: bool = True) -> None:
    """Shut down without touching stored jobs, then stop the play runtime.

    APScheduler 3 processes due jobs once more while a paused scheduler shuts
    down, which would advance their stored run times and lose the catch-up on
    the next start; detaching the job store first prevents that.
    """
    scheduler.pause()
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=wait)
    runtime = _BY_SCHEDULER.pop(id(scheduler), None)
    if runtime is not None:
        runtime.shutdown()
        for ws, rt in list(_RUNTIMES.items()):
            if rt is runtime:
                del _RUNTIMES[ws]


def list_jobs(config: Config) -> list[dict[str, str | None]]:
    """Every stored job with its next run time (ISO 8601, Asia/Shanghai offset).

    Reads the job store without starting a scheduler, so listing never runs
    or reschedules a job.
    """
    engine = open_migrated(config.resolved_database_url())
    store = SQLAlchemyJobStore(engine=engine)
    store.start(BackgroundScheduler(timezone=TZ), "default")
    try:
        return [{"id": job.id, "next_run_time": json_time(job.next_run_time)} for job in store.get_all_jobs()]
    finally:
        store.shutdown()

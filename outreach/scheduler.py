"""APScheduler 3.x wiring: persistent jobs that play or export at slot time.

Times are Asia/Shanghai whatever the machine's zone. Jobs live in the project
database (SQLAlchemy job store), so a restart keeps them; on a restart a slot
missed by less than its grace time still plays (late, and whole), and one
missed by more is logged as missed, its urgent items moving to the next slot.
These job functions are the only delivery code that reads the clock.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from outreach.config import Config, load_config
from outreach.db import make_engine, upgrade
from outreach.deliver import export_days, mark_missed, play_program, slot_day
from outreach.plan import TZ
from outreach.workspace import Loaded, load, open_database

log = logging.getLogger("outreach.scheduler")

PLAY_FUNC = "outreach.scheduler:play_slot_job"
EXPORT_FUNC = "outreach.scheduler:export_job"
EXPORT_JOB_ID = "export-next-day"

_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, Loaded]] = {}
_engines: dict[str, Any] = {}


def _stamp(config: Config) -> float:
    """Newest modification time of the files a workspace is loaded from."""
    paths = [config.workspace / "outreach.toml", *config.schedules_dir.glob("*.yaml"), *config.scripts_dir.glob("*")]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def _loaded(workspace: str) -> tuple[Loaded, Any]:
    """The workspace and its database engine, reloaded only when files changed."""
    config = load_config(Path(workspace))
    with _cache_lock:
        stamp = _stamp(config)
        hit = _cache.get(workspace)
        if hit is None or hit[0] != stamp:
            hit = (stamp, load(config))
            _cache[workspace] = hit
        url = config.resolved_database_url()
        if url not in _engines:
            _engines[url] = make_engine(url)
        return hit[1], _engines[url]


def play_slot_job(workspace: str, village_id: str, slot: str) -> None:
    """Job: play a village's program for the slot that is due now. Never raises."""
    try:
        loaded, engine = _loaded(workspace)
        now = datetime.now(TZ)
        spec = next(s for s in loaded.registry.village_slots(village_id) if s.name == slot)
        outcome = play_program(loaded, engine, village_id, slot, slot_day(spec.start, now), now=now,
                               player=loaded.config.deliver.player, timeout_s=loaded.config.deliver.player_timeout_s)
        log.info("%s %s %s: %s %s", village_id, outcome.day, slot, outcome.status, outcome.detail)
    except Exception:  # a job must never take the scheduler down
        log.exception("play %s %s failed", village_id, slot)


def export_job(workspace: str) -> None:
    """Job: write tomorrow's USB packs. Never raises."""
    try:
        loaded, engine = _loaded(workspace)
        now = datetime.now(TZ)
        tomorrow = now.date() + timedelta(days=1)
        out = loaded.config.workspace / loaded.config.deliver.export_dir
        report = export_days(loaded, engine, tomorrow, tomorrow, out, now=now)
        log.info("export %s: %d written, %d unchanged, %d failed", tomorrow, len(report.written),
                 len(report.unchanged), len(report.failures))
    except Exception:
        log.exception("export failed")


def _on_missed(workspace: str, event: JobExecutionEvent) -> None:
    """Listener: a play job past its grace time is logged as missed."""
    if event.code == EVENT_JOB_ERROR or not event.job_id.startswith("play:"):
        return
    try:
        _, village_id, slot = event.job_id.split(":")
        loaded, engine = _loaded(workspace)
        day = event.scheduled_run_time.astimezone(TZ).date()
        mark_missed(loaded, engine, village_id, slot, day, now=datetime.now(TZ))
        log.warning("%s %s %s missed (past the grace time)", village_id, day, slot)
    except Exception:
        log.exception("could not log missed job %s", event.job_id)


def build_scheduler(config: Config, *, blocking: bool) -> BaseScheduler:
    """A scheduler on Asia/Shanghai time with its jobs in the project database."""
    engine = make_engine(config.resolved_database_url())
    upgrade(engine)
    cls = BlockingScheduler if blocking else BackgroundScheduler
    return cls(
        timezone=TZ,
        jobstores={"default": SQLAlchemyJobStore(engine=engine)},
        executors={"default": ThreadPoolExecutor(max_workers=8)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": config.deliver.grace_s},
    )


@dataclass(frozen=True)
class JobSpec:
    """A job that should exist: its id, function, arguments and cron time."""

    id: str
    func: str
    args: tuple[str, ...]
    hour: int
    minute: int


def wanted_jobs(loaded: Loaded, mode: str) -> list[JobSpec]:
    """Play mode: a job per networked village slot, plus the export of offline villages'
    packs. Export mode: only the daily export (every village is fed by USB stick)."""
    ws = str(loaded.config.workspace)
    specs = [JobSpec(EXPORT_JOB_ID, EXPORT_FUNC, (ws,), loaded.config.deliver.export_hour, 0)]
    if mode == "play":
        for village in loaded.registry.villages.values():
            if village.speaker != "networked":
                continue
            for slot in loaded.registry.village_slots(village.id):
                specs.append(JobSpec(f"play:{village.id}:{slot.name}", PLAY_FUNC, (ws, village.id, slot.name),
                                     slot.start.hour, slot.start.minute))
    return specs


def sync_jobs(scheduler: BaseScheduler, loaded: Loaded, mode: str) -> dict[str, int]:
    """Make the job store hold exactly the wanted jobs.

    Existing jobs with an unchanged time are left alone, so their stored next
    run time survives a restart and APScheduler's misfire rules apply to it.
    """
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


def _trigger(spec: JobSpec) -> CronTrigger:
    return CronTrigger(hour=spec.hour, minute=spec.minute, timezone=TZ)


def prepare(config: Config, mode: str, *, blocking: bool) -> tuple[BaseScheduler, dict[str, int]]:
    """Load the workspace, mirror the registry into the database, build and fill the scheduler."""
    loaded = load(config)
    open_database(loaded)
    scheduler = build_scheduler(config, blocking=blocking)
    ws = str(config.workspace)
    scheduler.add_listener(lambda event: _on_missed(ws, event), EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    scheduler.start(paused=True)
    counts = sync_jobs(scheduler, loaded, mode)
    return scheduler, counts


def run(config: Config, mode: str) -> dict[str, int]:
    """Run the scheduler until SIGTERM or SIGINT; then stop cleanly."""
    scheduler, counts = prepare(config, mode, blocking=False)

    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the scheduler", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scheduler.resume()
    log.info("scheduler running: %s", counts)
    while not stop.wait(1.0):
        pass
    stop_scheduler(scheduler)
    return counts


def stop_scheduler(scheduler: BaseScheduler, *, wait: bool = True) -> None:
    """Shut down without touching stored jobs.

    APScheduler 3 processes due jobs once more while a paused scheduler shuts
    down, which would advance their stored run times and lose the misfire
    rules on the next start; detaching the job store first prevents that.
    """
    scheduler.pause()
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=wait)


def list_jobs(config: Config) -> list[dict[str, str | None]]:
    """Every stored job with its next run time (ISO 8601, Asia/Shanghai offset).

    Reads the job store without starting a scheduler, so listing never runs
    or reschedules a job.
    """
    engine = make_engine(config.resolved_database_url())
    upgrade(engine)
    store = SQLAlchemyJobStore(engine=engine)
    store.start(BackgroundScheduler(timezone=TZ), "default")
    try:
        return [{"id": job.id, "next_run_time": job.next_run_time.astimezone(TZ).isoformat()
                 if job.next_run_time else None} for job in store.get_all_jobs()]
    finally:
        store.shutdown()

"""Is delivery alive: the leading scheduler's heartbeat and the county at a glance, read from the database.

`outreach status`, the /metrics scrape and the banners of 今天 and /stations read these, so they are
true whichever process (or machine) runs the scheduler, and whether or not it runs. Nothing here
writes, except `record_stepped_down`, which a scheduler calls when it stops cleanly. Every function
takes `now`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import TZ, Config
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery.live.claims import LEADER_NAME
from outreach.delivery.prepare import Key
from outreach.delivery.stations.accounts import list_stations
from outreach.delivery.usb.export import usb_villages
from outreach.errors import OutreachError
from outreach.labels import STATUS
from outreach.models import PROBLEMS, STATUS_PROGRESS, Broadcast, BroadcastStatus, SchedulerLeader
from outreach.planning.plan import Program
from outreach.planning.workspace import Loaded, load, plan_days
from outreach.records.broadcasts import shown_status, shown_status_sql

__all__ = ["DOWN_AFTER_S", "SchedulerHealth", "CountyStatus", "scheduler_health", "record_stepped_down",
           "program_statuses", "merge_statuses", "county_status", "ago"]

log = logging.getLogger("outreach.health")

DOWN_AFTER_S = 120.0
"""No leader heartbeat for this long and the scheduler counts as down (it beats every heartbeat_s, at most 60 s)."""
STOPPED_NAME = "scheduler-stopped"
"""The scheduler_leader row that keeps the last leader after it stepped down (the leader row itself is deleted)."""
EXPORT_LATE_S = 36 * 3600.0
"""USB villages and no new pack for this long: the nightly export (export_hour) did not run."""
START_FIX = "请在服务器上启动 outreach run（或检查运行它的系统服务）；它停着的时候，到点的节目都不会播出。"


def ago(seconds: float) -> str:
    """A duration as people say it: 45 秒、12 分钟、3 小时 12 分钟、2 天 3 小时."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分钟"
    if s < 86400:
        return f"{s // 3600} 小时" + (f" {s % 3600 // 60} 分钟" if s % 3600 >= 60 else "")
    return f"{s // 86400} 天" + (f" {s % 86400 // 3600} 小时" if s % 86400 >= 3600 else "")


@dataclass(frozen=True)
class SchedulerHealth:
    """The leading scheduler as the database last heard of it."""

    up: bool
    owner: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None  # its last heartbeat (of the stopped leader when none leads)
    age_s: float | None = None
    stepped_down: bool = False  # the last leader stopped cleanly (SIGTERM, Ctrl+C)

    @property
    def message(self) -> str:
        """调度器没有运行（最后一次 …） when down, in Beijing time; empty when up."""
        if self.up:
            return ""
        if self.heartbeat_at is None or self.age_s is None:
            return "调度器没有运行（最后一次：从未运行过）"
        when = self.heartbeat_at.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")
        how = "已正常停止" if self.stepped_down else "之后没有心跳，可能已崩溃或机器已关"
        return f"调度器没有运行（最后一次心跳 {when} 北京时间，{ago(self.age_s)}前；{how}）"

    @property
    def fix(self) -> str:
        """What to do about it (empty when up)."""
        return "" if self.up else START_FIX

    def as_dict(self) -> dict[str, Any]:
        return {"up": self.up, "message": self.message, "fix": self.fix,
                "owner": self.owner, "started_at": json_time(self.started_at),
                "heartbeat_at": json_time(self.heartbeat_at),
                "heartbeat_age_s": None if self.age_s is None else round(self.age_s, 1),
                "down_after_s": DOWN_AFTER_S, "stepped_down": self.stepped_down}


def scheduler_health(engine: Engine, *, now: datetime) -> SchedulerHealth:
    """Up when the leader row's heartbeat is younger than DOWN_AFTER_S; otherwise when it was last heard of."""
    with session(engine) as s:
        rows = {r.name: r for r in s.scalars(sa.select(SchedulerLeader).where(
            SchedulerLeader.name.in_((LEADER_NAME, STOPPED_NAME))))}
    leader, stopped = rows.get(LEADER_NAME), rows.get(STOPPED_NAME)
    found = leader or stopped
    if found is None:
        return SchedulerHealth(up=False)
    age = (now - found.heartbeat_at).total_seconds()
    return SchedulerHealth(up=leader is not None and age <= DOWN_AFTER_S, owner=found.owner,
                           started_at=found.started_at, heartbeat_at=found.heartbeat_at, age_s=max(0.0, age),
                           stepped_down=leader is None)


def record_stepped_down(engine: Engine, owner: str, *, now: datetime) -> None:
    """Keep who led last and when it stopped: stepping down deletes the leader row, and status pages still
    want to say 最后一次 …. Call before `Leadership.release()`."""
    with session(engine) as s:
        leader = s.get(SchedulerLeader, LEADER_NAME)
        started = leader.started_at if leader is not None and leader.owner == owner else now
        s.execute(sa.delete(SchedulerLeader).where(SchedulerLeader.name == STOPPED_NAME))
        s.add(SchedulerLeader(name=STOPPED_NAME, owner=owner, started_at=started, heartbeat_at=now))


# --- programs and their shown status ----------------------------------------------------------


def program_statuses(engine: Engine, start: date, end: date, *, now: datetime, grace_s: float,
                     village_ids: Collection[str] | None = None) -> dict[Key, str]:
    """(village, slot, day) -> shown status of every program in the as-run log from start to end.

    A program's campaign rows fold to the furthest along (models.STATUS_PROGRESS), each row read through
    records.shown_status_sql first: a row still `planned` after its start plus grace counts as missed.
    """
    rank = sa.case({st.value: i for i, st in enumerate(STATUS_PROGRESS)},
                   value=shown_status_sql(now=now, grace_s=grace_s), else_=-1)
    b = Broadcast
    stmt = (sa.select(b.village_id, b.slot, b.date, sa.func.max(rank))
            .where(b.date >= start, b.date <= end).group_by(b.village_id, b.slot, b.date))
    chunks: list[list[str] | None] = [None]
    if village_ids is not None:
        ids = sorted(village_ids)
        chunks = [ids[i:i + 500] for i in range(0, len(ids), 500)]
    out: dict[Key, str] = {}
    with session(engine) as s:
        for chunk in chunks:
            query = stmt if chunk is None else stmt.where(b.village_id.in_(chunk))
            for village, slot, day, r in s.execute(query):
                if r is not None and r >= 0:
                    out[(village, slot, day)] = STATUS_PROGRESS[r].value
    return out


def merge_statuses(programs: Iterable[Program], logged: Mapping[Key, str], *, now: datetime,
                   grace_s: float) -> dict[Key, str]:
    """Every program of the plan and of the log: a logged one by its log, one only planned is `planned`,
    or `missed` once its start plus grace has passed (records.shown_status)."""
    out = dict(logged)
    for p in programs:
        key = (p.village_id, p.slot, p.date)
        if key not in out:
            out[key] = shown_status(BroadcastStatus.PLANNED, p.start, now=now, grace_s=grace_s).value
    return out


# --- the county at a glance ---------------------------------------------------------------------


@dataclass
class CountyStatus:
    """What a county clerk (or a monitor) needs first: is the scheduler up, how today goes, stations, exports."""

    at: datetime
    scheduler: SchedulerHealth
    day: date
    programs: Counter[str] = field(default_factory=Counter)  # today's village programs by shown status
    plan_problem: str = ""  # why today's plan could not be computed (then only logged programs count)
    stations_total: int = 0
    stations_online: int = 0
    offline: list[dict[str, Any]] = field(default_factory=list)  # {station_id, village_id, last_seen}
    usb_villages: int = 0
    newest_export: datetime | None = None
    export_hour: int = 20  # [deliver] export_hour: when `outreach run` writes the next day's packs

    @property
    def export_age_s(self) -> float | None:
        return None if self.newest_export is None else max(0.0, (self.at - self.newest_export).total_seconds())

    def problems(self) -> list[str]:
        """The lines that need someone, most urgent first."""
        out = [self.scheduler.message] if not self.scheduler.up else []
        bad = {st.value: self.programs[st.value] for st in PROBLEMS if self.programs[st.value]}
        if bad:
            out.append("今天有节目没有播出：" + "，".join(f"{STATUS[k]} {n} 个" for k, n in bad.items()))
        if self.plan_problem:
            out.append(f"今天的安排算不出来：{self.plan_problem}")
        if self.offline:
            out.append(f"{len(self.offline)} 个村广播站的播放盒离线：{'、'.join(o['station_id'] for o in self.offline[:5])}"
                       + (" 等" if len(self.offline) > 5 else ""))
        age = self.export_age_s
        if self.usb_villages and (age is None or age > EXPORT_LATE_S):
            out.append(f"{self.usb_villages} 个村靠 U 盘节目包，但"
                       + ("还没有导出过节目包" if age is None else f"最近一次导出节目包是 {ago(age)}前")
                       + f"；outreach run 每天 {self.export_hour} 点导出第二天的，也可以手动运行 outreach export")
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `outreach status --json` (times in Beijing time with +08:00)."""
        age = self.export_age_s
        return {
            "at": json_time(self.at), "ok": self.scheduler.up, "scheduler": self.scheduler.as_dict(),
            "today": {"date": self.day.isoformat(), "programs": sum(self.programs.values()),
                      "by_status": {st.value: self.programs[st.value] for st in STATUS_PROGRESS},
                      "problem": self.plan_problem},
            "stations": {"total": self.stations_total, "online": self.stations_online,
                         "online_rate": round(self.stations_online / self.stations_total, 4)
                         if self.stations_total else None, "offline": self.offline},
            "export": {"usb_villages": self.usb_villages, "newest_at": json_time(self.newest_export),
                       "age_s": None if age is None else round(age, 1)},
            "problems": self.problems(),
        }


def county_status(config: Config, engine: Engine, *, now: datetime, loaded: Loaded | None = None) -> CountyStatus:
    """The county at `now`, from the database and (for today's plan) the workspace files."""
    day = now.astimezone(TZ).date()
    grace = float(config.deliver.grace_s)
    out = CountyStatus(at=now, scheduler=scheduler_health(engine, now=now), day=day,
                       export_hour=config.deliver.export_hour)
    programs: list[Program] = []
    try:
        loaded = loaded or load(config)
        programs = plan_days(loaded, day, day).programs
        out.usb_villages = len(usb_villages(loaded))
    except OutreachError as exc:
        out.plan_problem = str(exc)
    statuses = merge_statuses(programs, program_statuses(engine, day, day, now=now, grace_s=grace), now=now,
                              grace_s=grace)
    out.programs = Counter(statuses.values())
    for st in list_stations(engine, now=now):
        if st["revoked"]:
            continue
        out.stations_total += 1
        out.stations_online += int(st["online"])
        if not st["online"]:
            seen = datetime.fromisoformat(st["last_seen"]) if st["last_seen"] else None
            out.offline.append({"station_id": st["station_id"], "village_id": st["village_id"],
                                "last_seen": json_time(seen)})
    with session(engine) as s:
        out.newest_export = s.scalar(sa.select(sa.func.max(Broadcast.exported_at)))
    return out


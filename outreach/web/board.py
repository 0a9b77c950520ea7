"""What the 今天 page, the audio players and the pack ZIPs need: today's board, program audio, pack grouping."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.audio.programs import program_audio
from outreach.audio.render import verified_clip
from outreach.config import Config
from outreach.db import session
from outreach.delivery.health import SchedulerHealth, scheduler_health
from outreach.delivery.stations.accounts import list_stations
from outreach.delivery.sweep import missed_reason, village_channel
from outreach.errors import DeliveryError, OutreachError
from outreach.models import (
    ATTENTION_ORDER, PROBLEMS, REACHED, STATUS_PROGRESS, Broadcast, BroadcastStatus, Township, Village,
)
from outreach.planning.workspace import load, plan_days
from outreach.records.broadcasts import shown_status
from outreach.records.broadcasts import program_scripts
from outreach.records.confirmations import last_reached
from outreach.web.data_packs import PackEntry

_ORDER = {s: i for i, s in enumerate(ATTENTION_ORDER)}


@dataclass
class Slot:
    """One village program today, as the 今天 page shows it."""

    village_id: str
    village: str
    township_id: str
    township: str
    slot: str
    start: datetime | None
    status: str
    reason: str = ""
    scripts: list[str] = field(default_factory=list)
    last_success: datetime | None = None  # when the village's last reached program aired
    last_entered: datetime | None = None  # when that was typed in, if it was a confirmation
    online: bool | None = None  # None: no village station

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


@dataclass
class Board:
    """Today's programs, problems first; counts per township; a problem loading the plan, if any;
    and the scheduler's health, whose banner goes first when it is down."""

    day: date
    slots: list[Slot]
    counts: dict[str, Counter[str]]
    township_names: dict[str, str]
    problem: str = ""
    scheduler: SchedulerHealth = field(default_factory=lambda: SchedulerHealth(up=True))

    @property
    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.counts.values():
            out.update(c)
        return out


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def _furthest(statuses: list[str]) -> str:
    """Which status a program shows when its campaign rows differ: the furthest along (models.STATUS_PROGRESS)."""
    return max(statuses, key=lambda st: STATUS_PROGRESS.index(st) if st in STATUS_PROGRESS else -1)


def _planned_slots(config: Config, day: date, villages: dict[str, Village], towns: dict[str, str],
                   ) -> tuple[dict[tuple[str, str], Slot], dict[str, str], str]:
    """Today's planned programs as `planned` slots, the script titles, and why the plan failed (if it did)."""
    slots: dict[tuple[str, str], Slot] = {}
    try:
        loaded = load(config)
    except OutreachError as exc:
        return slots, {}, str(exc)
    titles = {sc.id: sc.title for sc in loaded.library}
    for p in plan_days(loaded, day, day).programs:
        v = villages.get(p.village_id)
        slots[(p.village_id, p.slot)] = Slot(
            p.village_id, v.name if v else p.village_id, p.township_id, towns.get(p.township_id, p.township_id),
            p.slot, p.start, "planned", scripts=[titles.get(i, i) for i in p.script_ids])
    return slots, titles, ""


def _station_presence(engine: Engine, now: datetime) -> dict[str, bool]:
    """village id -> whether any of its active stations is online."""
    try:
        stations = list_stations(engine, now=now)
    except Exception:  # a station table problem must not take the landing page down
        stations = []
    online: dict[str, bool] = {}
    for st in stations:
        if not st["revoked"]:
            online[st["village_id"]] = online.get(st["village_id"], False) or st["online"]
    return online


def today_board(engine: Engine, config: Config, day: date, now: datetime, township: str = "") -> Board:
    """Every village's programs on `day` with the status people see, failures and misses first.

    A slot still planned after its start plus grace shows 漏播 (records.shown_status), whether or not
    anything wrote it: a stopped scheduler writes nothing.
    """
    grace = float(config.deliver.grace_s)
    with session(engine) as s:
        villages = {v.id: v for v in s.scalars(sa.select(Village))}
        towns = {t.id: t.name for t in s.scalars(sa.select(Township))}
        rows = list(s.scalars(sa.select(Broadcast).where(Broadcast.date == day)))
        last = last_reached(s, until=day)  # the air time, never the typing time
    slots, titles, problem = _planned_slots(config, day, villages, towns)
    folded: dict[tuple[str, str], list[Broadcast]] = defaultdict(list)
    for b in rows:
        folded[(b.village_id, b.slot)].append(b)
    for key, group in folded.items():
        found = slots.get(key)
        if found is None:
            v = villages.get(key[0])
            tid = v.township_id if v else ""
            found = slots[key] = Slot(key[0], v.name if v else key[0], tid, towns.get(tid, tid), key[1],
                                      min(b.scheduled_at for b in group), "planned")
        if any(b.status in REACHED for b in group) or not found.scripts:  # once aired, only what aired
            found.scripts = [titles.get(i, i) for i in program_scripts(group)]
        found.status = _furthest([_status(shown_status(BroadcastStatus(_status(b.status)), b.scheduled_at, now=now,
                                                       grace_s=grace)) for b in group])
        found.reason = next((b.error for b in group if b.error), "") if found.status in PROBLEMS else ""
    online = _station_presence(engine, now)
    out = [sl for sl in slots.values() if not township or sl.township_id == township]
    for sl in out:
        if sl.status == "planned" and sl.start is not None:
            sl.status = _status(shown_status(BroadcastStatus.PLANNED, sl.start, now=now, grace_s=grace))
        if sl.status == "missed" and not sl.reason:
            v = villages.get(sl.village_id)
            sl.reason = missed_reason(config, village_channel(config, v.speaker if v else None))
        sl.last_success, sl.last_entered = last.get(sl.village_id, (None, None))
        sl.online = online.get(sl.village_id)
    out.sort(key=lambda sl: (_ORDER.get(sl.status, 9) if sl.problem else 5, sl.start or now, sl.township_id,
                             sl.village_id))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for sl in out:
        counts[sl.township_id][sl.status] += 1
    return Board(day, out, dict(sorted(counts.items())), towns, problem, scheduler_health(engine, now=now))


def board_json(board: Board, labels: dict[str, str], slot_labels: dict[str, str], tz: Any) -> dict[str, Any]:
    """The board as the page's refresh script reads it."""
    def local(value: datetime | None, fmt: str) -> str:
        return value.astimezone(tz).strftime(fmt) if value else ""

    return {
        "scheduler": {"up": board.scheduler.up, "message": board.scheduler.message, "fix": board.scheduler.fix},
        "day": board.day.isoformat(), "problem": board.problem,
        "totals": dict(board.totals),
        "townships": [{"id": t, "name": board.township_names.get(t, t), "counts": dict(c)}
                      for t, c in board.counts.items()],
        "slots": [{"village_id": s.village_id, "village": s.village, "township": s.township, "slot": s.slot,
                   "slot_label": slot_labels.get(s.slot, s.slot), "start": local(s.start, "%H:%M"),
                   "status": s.status, "status_label": labels.get(s.status, s.status), "reason": s.reason,
                   "scripts": s.scripts, "last_success": local(s.last_success, "%m-%d %H:%M"),
                   "last_entered": local(s.last_entered, "%m-%d %H:%M"), "online": s.online}
                  for s in board.slots],
    }


# --- program audio ---------------------------------------------------------------------


def program_clip(config: Config, village_id: str, day: date, slot: str) -> Path:
    """The MP3 of one village's program (its airable scripts joined), built on first use.

    Raises DeliveryError when there is no such program or a clip is not rendered.
    """
    loaded = load(config)
    program = next((p for p in plan_days(loaded, day, day, village_ids=[village_id]).programs if p.slot == slot), None)
    if program is None or not program.airable_items:
        raise DeliveryError(f"{village_id} 在 {day} 这个时段没有要播的节目")
    clips = [verified_clip(config, loaded.scripts[i.script_id], voice=program.voice) for i in program.airable_items]
    return program_audio(config, clips)


# --- packs -----------------------------------------------------------------------------


@dataclass
class PackVillage:
    village_id: str
    name: str
    entries: list[PackEntry]


@dataclass
class PackTownship:
    township_id: str
    name: str
    villages: list[PackVillage]

    @property
    def count(self) -> int:
        return sum(len(v.entries) for v in self.villages)


def group_packs(entries: list[PackEntry], villages: dict[str, Village], towns: dict[str, Township]) -> list[PackTownship]:
    """Pack files by township, then village, each village's in airing order (date, start time)."""
    by_town: dict[str, dict[str, list[PackEntry]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        v = villages.get(e.village_id)
        by_town[v.township_id if v else ""][e.village_id].append(e)
    out = []
    for tid in sorted(by_town):
        t = towns.get(tid)
        vs = [PackVillage(vid, villages[vid].name if vid in villages else vid,
                          sorted(es, key=lambda e: (e.date, e.start, e.path)))
              for vid, es in sorted(by_town[tid].items())]
        out.append(PackTownship(tid, t.name if t else (tid or "其他"), vs))
    return out

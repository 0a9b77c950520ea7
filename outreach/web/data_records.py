"""The as-run history of a village, confirmations and market handouts, as the dashboard reads and writes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach import records
from outreach.config import TZ, Config
from outreach.db import session
from outreach.delivery import sweep
from outreach.errors import OutreachError, RecordError
from outreach.models import STATUS_PROGRESS, Broadcast, BroadcastStatus, Handout
from outreach.planning.workspace import load, plan_days
from outreach.records import record_handout
from outreach.records.broadcasts import program_scripts, shown_status
from outreach.web.data_places import village

HISTORY_LIMIT = 500


@dataclass(frozen=True)
class ProgramRow:
    """One village program (date, slot) with its campaign rows folded together."""

    date: date
    slot: str
    status: str
    campaigns: list[str]
    script_ids: list[str]
    scheduled_at: datetime | None
    played_at: datetime | None
    exported_at: datetime | None
    confirmed_at: datetime | None
    confirmed_by: str
    error: str
    aired_at: datetime | None = None  # when the sound went out (a confirmation's slot start), not the entry time
    entered_by: str = ""  # who typed a confirmation in (扫码: the village's QR page)

    @property
    def confirmable(self) -> bool:
        return self.status in (BroadcastStatus("played").value, BroadcastStatus("exported").value)


def village_history(engine: Engine, village_id: str, start: date, end: date, *, config: Config | None = None,
                    now: datetime | None = None) -> list[ProgramRow]:
    """The village's as-run log from start to end, newest first, one row per program.

    With `config` and `now`, each program shows the status people see (records.shown_status: a slot still
    planned after its start plus grace reads 漏播), and the planned programs that left no row at all and are
    past it are listed 漏播 too, from the database's first use on (delivery.sweep.first_use): silence is listed.
    """
    with session(engine) as s:
        rows = list(s.scalars(
            sa.select(Broadcast)
            .where(Broadcast.village_id == village_id, Broadcast.date >= start, Broadcast.date <= end)
            .order_by(Broadcast.date.desc(), Broadcast.scheduled_at.desc(), Broadcast.campaign_id)
            .limit(HISTORY_LIMIT * 4)))
    grace = float(config.deliver.grace_s) if config is not None else 0.0
    missed_reason = _missed_reason(config, engine, village_id)
    programs: dict[tuple[date, str], list[Broadcast]] = {}
    for b in rows:
        programs.setdefault((b.date, b.slot), []).append(b)
    out = []
    for (day, slot), group in list(programs.items())[:HISTORY_LIMIT]:
        statuses = [str(getattr(b.status, "value", b.status)) if now is None else
                    shown_status(BroadcastStatus(b.status), b.scheduled_at, now=now, grace_s=grace).value
                    for b in group]
        scripts = program_scripts(group)  # once aired, only what aired

        def first(attr: str) -> Any:
            return next((getattr(b, attr) for b in group if getattr(b, attr)), None)

        status = max(statuses, key=lambda st: STATUS_PROGRESS.index(st) if st in STATUS_PROGRESS else -1)
        out.append(ProgramRow(
            # A folded program shows the furthest-along status of its rows, as records.program_status does.
            date=day, slot=slot, status=status,
            campaigns=[b.campaign_id for b in group], script_ids=scripts, scheduled_at=first("scheduled_at"),
            played_at=first("played_at"), exported_at=first("exported_at"), confirmed_at=first("confirmed_at"),
            confirmed_by=first("confirmed_by") or "",
            error=first("error") or (missed_reason if status == BroadcastStatus.MISSED.value else ""),
            aired_at=first("aired_at"), entered_by=first("entered_by") or "",
        ))
    if config is not None and now is not None:
        out += _silent_programs(config, engine, village_id, start, end, set(programs), now)
        out.sort(key=lambda r: (r.date, r.scheduled_at.timestamp() if r.scheduled_at else 0.0), reverse=True)
    return out[:HISTORY_LIMIT]


def _missed_reason(config: Config | None, engine: Engine, village_id: str) -> str:
    """Why a program of the village reads 漏播 with no reason written yet (read-time missed), for its channel."""
    if config is None:
        return ""
    v = village(engine, village_id)
    return sweep.missed_reason(config, sweep.village_channel(config, v.speaker if v else None))


def _silent_programs(config: Config, engine: Engine, village_id: str, start: date, end: date,
                     logged: set[tuple[date, str]], now: datetime) -> list[ProgramRow]:
    """Planned programs of the village with no row at all whose start plus grace has passed: 漏播 rows."""
    first = max(start, sweep.first_use(engine, now))
    last = min(end, now.astimezone(TZ).date())
    if first > last:
        return []
    try:
        planned = plan_days(load(config), first, last, village_ids=[village_id]).programs
    except OutreachError:
        return []
    grace = float(config.deliver.grace_s)
    reason = _missed_reason(config, engine, village_id)
    return [ProgramRow(date=p.date, slot=p.slot, status=BroadcastStatus.MISSED.value, campaigns=list(p.campaign_ids),
                       script_ids=list(p.script_ids), scheduled_at=p.start, played_at=None, exported_at=None,
                       confirmed_at=None, confirmed_by="", error=reason)
            for p in planned if (p.date, p.slot) not in logged
            and shown_status(BroadcastStatus.PLANNED, p.start, now=now, grace_s=grace) is BroadcastStatus.MISSED]


def confirm_program(engine: Engine, *, village_id: str, day: date, slot: str, by: str, at: datetime) -> int:
    """Confirm a played or exported program through the same rules as the CLI; 0 if it was already confirmed.

    The logged-in staff member both hears the village's word and enters it. Raises RecordError
    when the program does not exist, has not started yet, or is not exported or played.
    """
    with session(engine) as s:
        return int(records.confirm_program(s, village_id=village_id, day=day, slot=slot, confirmed_by=by,
                                           entered_by=by, now=at))


def handouts(engine: Engine, market_id: str, start: date, end: date) -> list[Handout]:
    with session(engine) as s:
        return list(s.scalars(
            sa.select(Handout).where(Handout.market_id == market_id, Handout.date >= start, Handout.date <= end)
            .order_by(Handout.date.desc(), Handout.id.desc()).limit(HISTORY_LIMIT)))


class DuplicateHandout(RecordError):
    """The very same handout record is already stored; nothing was added."""


def add_handout(engine: Engine, *, market_id: str, day: date, leaflets: int, people: int, topics: list[str],
                staff: str, note: str, now: datetime) -> Handout:
    """Store one handout record. Raises DuplicateHandout for a record already stored, RecordError for an invalid one."""
    try:
        with session(engine) as s:
            return record_handout(s, market_id=market_id, day=day, leaflets=leaflets, people=people,
                                  topics=topics, staff=staff, note=note, now=now)
    except RecordError as exc:
        try:
            key = records.handout_key(market_id, day, leaflets, people, records.parse_topics(topics), staff, note)
        except RecordError:
            raise exc from None
        with session(engine) as s:
            if s.scalars(sa.select(Handout.id).where(Handout.natural_key == key)).first() is not None:
                raise DuplicateHandout(str(exc)) from exc
        raise

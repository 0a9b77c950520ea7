"""The missed sweep: a slot whose start plus grace has passed with no outcome is logged `missed`, on every channel.

It is derived from the plan, the as-run log and the slot claims, never from APScheduler's job store,
so a slot is swept whether or not a job was ever held for it: a scheduler that was down, a job store
that was wiped, a USB pack that was never exported. The leading scheduler sweeps when it takes the
lead and every EVERY_S after. Pages do not wait for it: records.shown_status shows the same at read time.

What it never sweeps:
- a program with an unfinished slot claim (a play on air, or one a restarted scheduler is settling);
- an `exported` USB program: it waits for the village's confirmation, it is not missed;
- from the plan, days before the database's first as-run row or claim (`first_use`: the county was not
  using outreach yet), nor more than MAX_DAYS back.
A village station plays from its buffer while offline and uploads its as-run log later, so its slots
are swept like the others, and its late `played` (or `failed`) still replaces the swept `missed`:
station ingest passes `late_evidence` to records.mark_program.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from outreach.config import TZ, Config
from outreach.db import session
from outreach.delivery import CHANNELS, Channel, channel_of
from outreach.delivery.live.claims import FINISHED
from outreach.delivery.prepare import Key
from outreach.models import Broadcast, BroadcastStatus, SlotClaim
from outreach.planning.registry import Speaker
from outreach.planning.workspace import Loaded, plan_days
from outreach.records import broadcast_plans, record_planned

__all__ = ["EVERY_S", "MAX_DAYS", "MARGIN_S", "SweepResult", "village_channel", "missed_reason", "first_use",
           "first_day", "sweep_missed"]

log = logging.getLogger("outreach.sweep")

EVERY_S = 120.0
"""How often the leading scheduler sweeps."""
MAX_DAYS = 14
"""How far back a sweep plans slots that left no row at all (coverage.UNRECORDED_DAYS reads as far back). Longer
outages of centrally played villages are still logged day by day from the job store (scheduler.catch_up)."""
MARGIN_S = 60.0
"""A late play may still be starting at start + grace (APScheduler's misfire grace): leave it a minute more."""
_CHUNK = 500


def village_channel(config: Config, speaker: str | None) -> Channel | None:
    """The channel serving a village of this speaker kind (county.yaml `speaker:`, or the Village mirror's
    column): every village is fed by USB stick in export mode; None for an unknown kind."""
    if config.deliver.mode == "export":
        return Channel.USB
    try:
        return CHANNELS[Speaker(speaker or "")]
    except ValueError:
        return None


def missed_reason(config: Config, channel: Channel | None) -> str:
    """Why a slot with no outcome is missed, in words for the channel that should have carried it."""
    grace = config.deliver.grace_s
    minutes = f"{grace // 60} 分钟" if grace >= 60 else f"{grace} 秒"
    if channel is Channel.USB:
        return "漏播：这个时段的节目包没有导出到 U 盘，村里无节目可播"
    if channel is Channel.STATIONS:
        return f"漏播：开播 {minutes}后村广播站仍没有上报播出；播放盒补报播出记录后会改为已播"
    if channel is Channel.LIVE:
        return f"漏播：开播 {minutes}后仍没有播出记录（县里的调度器 outreach run 没有播出这个时段）"
    return f"漏播：开播 {minutes}后仍没有播出记录"


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did: the days it planned from, and the programs and rows it logged missed."""

    first: date | None
    last: date
    programs: int = 0
    rows: int = 0


def first_use(engine: Engine, now: datetime) -> date:
    """The first day outreach was in use: the database's first as-run row or slot claim (else today).

    Before it a planned program that left no row is not 漏播: the county was not using outreach yet
    (coverage.readtime.first_use reads it the same way)."""
    today = now.astimezone(TZ).date()
    with session(engine) as s:
        used = [d for d in (s.scalar(sa.select(sa.func.min(Broadcast.date))),
                            s.scalar(sa.select(sa.func.min(SlotClaim.date)))) if d is not None]
    return min([*used, today])


def first_day(engine: Engine, now: datetime) -> date:
    """The first day a sweep plans from: `first_use`, at most MAX_DAYS back."""
    return max(first_use(engine, now), now.astimezone(TZ).date() - timedelta(days=MAX_DAYS))


def _keys(s: Session, model: type[Broadcast] | type[SlotClaim], first: date, last: date) -> set[Key]:
    """The (village, slot, day) keys with a row of `model` from first to last."""
    rows = s.execute(sa.select(model.village_id, model.slot, model.date)
                     .where(model.date >= first, model.date <= last).distinct())
    return {(v, sl, d) for v, sl, d in rows}


def _log_unrecorded(loaded: Loaded, engine: Engine, first: date, last: date, cutoff: datetime,
                    now: datetime) -> None:
    """Log as `planned` the planned programs past the cutoff that left no row and no claim (the update then
    makes them missed). Programs with rows are left as they are: a campaign added to the files after a slot
    aired must not appear in its log."""
    programs = [p for p in plan_days(loaded, first, last).programs if p.start < cutoff]
    if not programs:
        return
    with session(engine) as s:
        known = _keys(s, Broadcast, first, last) | _keys(s, SlotClaim, first, last)
        todo = [p for p in programs if (p.village_id, p.slot, p.date) not in known]
        if todo:
            record_planned(s, broadcast_plans(todo), now=now)


def _groups(loaded: Loaded) -> list[tuple[str, list[str] | None]]:
    """(reason, villages) per channel; the last group (None) is every village no longer in the registry."""
    config = loaded.config
    by_reason: dict[str, list[str]] = {}
    for v in loaded.registry.villages.values():
        channel = Channel.USB if config.deliver.mode == "export" else channel_of(v)
        by_reason.setdefault(missed_reason(config, channel), []).append(v.id)
    return [*by_reason.items(), (missed_reason(config, None), None)]


def _mark(engine: Engine, cutoff: datetime, since: date | None, reason: str, villages: Collection[str] | None,
          known: Collection[str], now: datetime) -> list[Key]:
    """planned -> missed for rows past the cutoff of `villages` (None: those not in `known`), no open claim."""
    b, c = Broadcast, SlotClaim
    open_claim = sa.exists().where(c.date == b.date, c.slot == b.slot, c.village_id == b.village_id,
                                   c.state != FINISHED)
    where = [b.status == BroadcastStatus.PLANNED, b.scheduled_at < cutoff, ~open_claim]
    if since is not None:
        where.append(b.date >= since)
    if villages is None:
        chunks = [where + ([b.village_id.not_in(sorted(known))] if known else [])]
    else:
        ids = sorted(villages)
        chunks = [where + [b.village_id.in_(ids[i:i + _CHUNK])] for i in range(0, len(ids), _CHUNK)]
    changed: list[Key] = []
    with session(engine) as s:
        for conditions in chunks:
            stmt = (sa.update(b).where(*conditions)
                    .values(status=BroadcastStatus.MISSED, error=reason, updated_at=now)
                    .returning(b.village_id, b.slot, b.date))
            changed += [(v, sl, d) for v, sl, d in s.execute(stmt, execution_options={"synchronize_session": False})]
    return changed


def sweep_missed(loaded: Loaded, engine: Engine, *, now: datetime, since: date | None = None) -> SweepResult:
    """Log `missed` every slot whose start plus grace (plus MARGIN_S) has passed with no outcome.

    `since` None (taking the lead): plan from `first_day` and sweep every planned row of any date.
    A date (the periodic sweep): plan and sweep only from that day on. Returns what was logged.
    """
    cutoff = now - timedelta(seconds=loaded.config.deliver.grace_s + MARGIN_S)
    last = cutoff.astimezone(TZ).date()
    first = since if since is not None else first_day(engine, now)
    if first <= last:
        _log_unrecorded(loaded, engine, first, last, cutoff, now)
    known = set(loaded.registry.villages)
    changed: list[Key] = []
    for reason, villages in _groups(loaded):
        changed += _mark(engine, cutoff, since, reason, villages, known, now)
    programs = set(changed)
    if programs:
        log.warning("%d 个节目开播超过宽限时间仍没有播出记录，记为漏播（%s … %s）", len(programs),
                    min(d for _, _, d in programs), max(d for _, _, d in programs))
    return SweepResult(first if first <= last else None, last, len(programs), len(changed))

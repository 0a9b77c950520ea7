"""Stale USB packs: exported programs the plan has changed since, what changed, and what to export again.

An exported row records what the stick carries (its scripts, slot start and export time); the
plan may change after it (a campaign edited, a script re-approved, a slot moved). `refresh_stale`
plans the exported days again, compares, and writes `Broadcast.stale_reason` on the exported
rows (节目包已过期 and why), clearing it when plan and stick agree again. A re-export rewrites the
rows to what the new pack carries, so it clears them too. Only rows still `exported` from today
on are judged: a confirmed or past program is history, and keeps the reason it had.

What is compared, per village program: the scripts (added, removed), their order within each
campaign, the slot start, and scripts approved again after the export (the stick has the old
recording). The order of whole campaigns within a program is not recorded per row, so a change of
campaign priority alone is not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import TZ, Config
from outreach.db import session
from outreach.delivery.prepare import Key, plan_programs
from outreach.models import Broadcast, BroadcastStatus, ScriptEvent
from outreach.planning.plan import Program
from outreach.planning.workspace import Loaded

__all__ = ["STALE", "ExportedPart", "StalePack", "exports_stamp", "plan_stamp", "refresh_stale", "stale_packs",
           "stale_ranges", "stale_reason", "refresh_and_log"]

log = logging.getLogger("outreach.deliver")
STALE = "节目包已过期"
NOT_PLANNED = "这个时段现在不安排播出了；U盘上的这个节目不要再播"


@dataclass(frozen=True)
class ExportedPart:
    """One exported row of a village program: one campaign's scripts as the stick carries them."""

    row_id: int
    campaign_id: str
    script_ids: tuple[str, ...]
    scheduled_at: datetime
    exported_at: datetime | None  # when it went onto a stick; None where that was not recorded
    stale_reason: str | None


@dataclass(frozen=True)
class StalePack:
    """An exported village program whose pack no longer matches the plan, and what changed."""

    village_id: str
    day: date
    slot: str
    scheduled_at: datetime
    reason: str


def _named(titles: Mapping[str, str], ids: Iterable[str]) -> str:
    return "、".join(f"「{titles.get(i, i)}」" for i in ids)


def stale_reason(parts: Sequence[ExportedPart], program: Program | None, *, titles: Mapping[str, str],
                 reapproved: Mapping[str, datetime]) -> str | None:
    """Why the pack of one village program no longer matches `program` (its plan now); None when it does.

    `parts` are the program's exported rows; `reapproved` the last approval time of each script,
    an approval after the export meaning the stick carries the wording from before.
    """
    if program is None or not program.airable_items:
        return NOT_PLANNED
    old = list(dict.fromkeys(sid for p in parts for sid in p.script_ids))
    new = [i.script_id for i in program.airable_items]
    reasons = []
    added, removed = [s for s in new if s not in old], [s for s in old if s not in new]
    if added or removed:
        what = [f"加了{_named(titles, added)}"] if added else []
        what += [f"去掉了{_named(titles, removed)}"] if removed else []
        reasons.append(f"稿件变了：{'，'.join(what)}")
    elif any(list(p.script_ids) != [s for s in new if s in p.script_ids] for p in parts):
        reasons.append("节目顺序变了")
    then = min(p.scheduled_at for p in parts)
    if then != program.start:
        reasons.append(f"播出时间变了：{then.astimezone(TZ):%H:%M} → {program.start.astimezone(TZ):%H:%M}")
    exported = min((p.exported_at for p in parts if p.exported_at), default=None)
    redone = [s for s in old if s in new and exported and (at := reapproved.get(s)) and at > exported]
    if redone:
        reasons.append(f"{_named(titles, redone)}导出后改过并重新批准，U盘上还是改之前的录音")
    return "；".join(reasons) or None


def _exported(s: Any, today: date, village_ids: Collection[str] | None = None, *,
              only_stale: bool = False) -> dict[Key, list[ExportedPart]]:
    """The rows still `exported` from `today` on (only those marked stale, with `only_stale`), by village program."""
    b = Broadcast
    stmt = sa.select(b.id, b.date, b.slot, b.village_id, b.campaign_id, b.script_ids, b.scheduled_at,
                     b.exported_at, b.stale_reason).where(b.status == BroadcastStatus.EXPORTED, b.date >= today)
    if village_ids is not None:
        stmt = stmt.where(b.village_id.in_(sorted(village_ids)))
    if only_stale:
        stmt = stmt.where(b.stale_reason.is_not(None))
    out: dict[Key, list[ExportedPart]] = {}
    for r in s.execute(stmt.order_by(b.date, b.village_id, b.slot, b.id)):
        out.setdefault((r.village_id, r.slot, r.date), []).append(ExportedPart(
            r.id, r.campaign_id, tuple(x for x in r.script_ids.split(",") if x), r.scheduled_at, r.exported_at,
            r.stale_reason))
    return out


def _approvals(s: Any, script_ids: Collection[str]) -> dict[str, datetime]:
    """When each script was last approved (the review trail), for the scripts that have an approval."""
    if not script_ids:
        return {}
    rows = s.execute(sa.select(ScriptEvent.script_id, sa.func.max(ScriptEvent.at)).where(
        ScriptEvent.action == "approved", ScriptEvent.script_id.in_(sorted(script_ids))).group_by(
        ScriptEvent.script_id)).all()
    return {sid: at if at.tzinfo else at.replace(tzinfo=timezone.utc) for sid, at in rows if at is not None}


def refresh_stale(loaded: Loaded, engine: Engine, *, now: datetime, fresh: Collection[Key] = ()) -> list[StalePack]:
    """Plan every still-exported program from today on again, and write or clear its `stale_reason`.

    `fresh` are programs this very export wrote and read back: their stick matches its plan's
    recordings, so a re-approval before it does not count. Returns the stale packs, in airing order.
    Raises OutreachError when the workspace cannot be planned.
    """
    today = now.astimezone(TZ).date()
    with session(engine) as s:
        parts = _exported(s, today)
        if not parts:
            return []
        approvals = _approvals(s, {sid for ps in parts.values() for p in ps for sid in p.script_ids})
    planned = plan_programs(loaded, parts)
    titles = {sc.id: sc.title for sc in loaded.library}
    out, changes = [], []
    for key, ps in parts.items():
        reason = stale_reason(ps, planned.get(key), titles=titles, reapproved={} if key in fresh else approvals)
        changes += [{"b_id": p.row_id, "b_reason": reason} for p in ps if p.stale_reason != reason]
        if reason is not None:
            out.append(StalePack(key[0], key[2], key[1], min(p.scheduled_at for p in ps), reason))
    if changes:
        table = Broadcast.__table__  # type: ignore[attr-defined]
        with session(engine) as s:
            s.execute(table.update().where(table.c.id == sa.bindparam("b_id")).values(
                stale_reason=sa.bindparam("b_reason", type_=table.c.stale_reason.type)), changes)
    return sorted(out, key=lambda p: (p.scheduled_at, p.village_id, p.slot))


def stale_packs(engine: Engine, *, today: date, village_ids: Collection[str] | None = None) -> list[StalePack]:
    """The stale packs found by the last `refresh_stale` (no planning): exported programs from `today` on."""
    with session(engine) as s:
        parts = _exported(s, today, village_ids, only_stale=True)
    out = [StalePack(k[0], k[2], k[1], min(p.scheduled_at for p in ps), reason)
           for k, ps in parts.items() if (reason := next((p.stale_reason for p in ps if p.stale_reason), None))]
    return sorted(out, key=lambda p: (p.scheduled_at, p.village_id, p.slot))


def stale_ranges(engine: Engine, packs: Iterable[StalePack], *, today: date) -> dict[tuple[date, date], list[str]]:
    """The days each stale pack's village has on its stick (exported, from today on), villages grouped by range.

    A village's pack folder holds exactly its exported days, so it is exported again whole.
    """
    villages = sorted({p.village_id for p in packs})
    if not villages:
        return {}
    with session(engine) as s:
        rows = s.execute(sa.select(Broadcast.village_id, sa.func.min(Broadcast.date), sa.func.max(Broadcast.date))
                         .where(Broadcast.village_id.in_(villages), Broadcast.date >= today,
                                Broadcast.exported_at.is_not(None)).group_by(Broadcast.village_id)).all()
    out: dict[tuple[date, date], list[str]] = {}
    for vid, first, last in rows:
        out.setdefault((_day(first), _day(last)), []).append(vid)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def plan_stamp(config: Config) -> tuple[float, int]:
    """Newest modification time and number of the files the plan is made from (a cheap change check)."""
    folders = [config.schedules_dir, config.scripts_dir]
    paths: list[Path] = [config.workspace / "outreach.toml", *folders]
    for folder in folders:
        paths += folder.glob("*") if folder.is_dir() else []
    times = [p.stat().st_mtime for p in paths if p.exists()]
    return max(times, default=0.0), len(times)


def exports_stamp(engine: Engine, *, today: date) -> tuple[Any, ...]:
    """What changes when an export, a confirmation or a stale check touches the exported rows from `today` on."""
    b = Broadcast
    with session(engine) as s:
        row = s.execute(sa.select(sa.func.count(), sa.func.max(b.exported_at), sa.func.max(b.updated_at)).where(
            b.exported_at.is_not(None), b.date >= today)).one()
    return tuple(row)


def refresh_and_log(loaded: Loaded, engine: Engine, *, now: datetime) -> list[StalePack]:
    """`refresh_stale` for the scheduler (at start and when a workspace file changes): logs, never raises."""
    try:
        packs = refresh_stale(loaded, engine, now=now)
    except Exception:  # a check must never take the scheduler down
        log.exception("检查U盘节目包是否过期失败")
        return []
    for p in packs:
        log.warning("%s：%s %s %s：%s", STALE, p.village_id, p.day.isoformat(), p.slot, p.reason)
    if packs:
        log.warning("%d 个U盘节目包已过期；请运行 `outreach export --stale --out U盘文件夹` 重新导出", len(packs))
    return packs

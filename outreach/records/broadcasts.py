"""The as-run log: planned broadcasts, their outcomes, and what a USB export really wrote."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from outreach.models import Broadcast, BroadcastScript, BroadcastStatus
from outreach.planning.plan import Program

__all__ = ["BroadcastPlan", "TRANSITIONS", "record_planned", "record_exported", "mark_program", "program_status"]

S = BroadcastStatus
TRANSITIONS: dict[BroadcastStatus, frozenset[BroadcastStatus]] = {
    S.PLANNED: frozenset({S.PLAYED, S.EXPORTED, S.MISSED, S.FAILED, S.INTERRUPTED}),
    S.FAILED: frozenset({S.PLAYED, S.MISSED}),
    # A play cut short by a crash is replayed whole within grace, or ends missed or failed.
    S.INTERRUPTED: frozenset({S.PLAYED, S.MISSED, S.FAILED}),
    S.EXPORTED: frozenset({S.CONFIRMED}),
    S.PLAYED: frozenset({S.CONFIRMED}),
}
"""Allowed status changes. Played is never re-marked played: that is what stops a double play after a restart."""

# program_status reports the furthest-along status of a program's rows, so a
# program that aired once never looks unplayed because a campaign was added later.
_PROGRESS = [S.PLANNED, S.FAILED, S.INTERRUPTED, S.MISSED, S.EXPORTED, S.PLAYED, S.CONFIRMED]
_STAMP = {S.PLAYED: "played_at", S.EXPORTED: "exported_at", S.CONFIRMED: "confirmed_at"}
_BATCH = 5000
# Rows an export may rewrite: nothing was heard from them yet.
_REWRITABLE = (S.PLANNED, S.EXPORTED)


def _aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} 必须是带时区的时间（timezone-aware datetime），现在是 {value!r}")


@dataclass(frozen=True)
class BroadcastPlan:
    """One campaign's part of one village program, as the planner wants it aired."""

    day: dt.date
    slot: str
    village_id: str
    township_id: str
    campaign_id: str
    script_ids: tuple[str, ...]
    scheduled_at: dt.datetime


def broadcast_plans(programs: Iterable[Program], *, airable_only: bool = False) -> list[BroadcastPlan]:
    """One as-run row per program and campaign, with that campaign's scripts.

    With `airable_only`, items blocked at plan time are left out (what a pack really carries).
    """
    rows: list[BroadcastPlan] = []
    for p in programs:
        items = p.airable_items if airable_only else p.items
        for campaign_id in dict.fromkeys(i.campaign_id for i in items):
            scripts = tuple(i.script_id for i in items if i.campaign_id == campaign_id)
            rows.append(BroadcastPlan(day=p.date, slot=p.slot, village_id=p.village_id, township_id=p.township_id,
                                      campaign_id=campaign_id, script_ids=scripts, scheduled_at=p.start))
    return rows


def record_planned(session: Session, plans: Iterable[BroadcastPlan], *, now: dt.datetime) -> int:
    """Insert missing plans as 'planned' and refresh rows that are still 'planned'.

    Rows that already played, were exported, confirmed, missed or failed are
    never touched. A later plan for the same (day, slot, village, campaign)
    wins. Returns the number of rows inserted or changed (0 on a re-run).
    """
    _aware("now", now)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in plans:
        _aware(f"scheduled_at of {p.village_id} {p.day} {p.slot}", p.scheduled_at)
        rows[(p.day, p.slot, p.village_id, p.campaign_id)] = {
            "date": p.day, "slot": p.slot, "village_id": p.village_id, "township_id": p.township_id,
            "campaign_id": p.campaign_id, "script_ids": ",".join(p.script_ids), "scheduled_at": p.scheduled_at,
        }
    upsert = _upsert_postgres if session.get_bind().dialect.name == "postgresql" else _upsert_sqlite
    todo = list(rows.values())
    return sum(upsert(session, todo[i:i + _BATCH], now) for i in range(0, len(todo), _BATCH))


_PLAN_COLUMNS = {"date": "date", "slot": "varchar", "village_id": "varchar", "township_id": "varchar",
                 "campaign_id": "varchar", "script_ids": "varchar", "scheduled_at": "timestamptz"}
_PG_UPSERT = sa.text(f"""
    INSERT INTO broadcast ({", ".join(_PLAN_COLUMNS)}, status, updated_at)
    SELECT u.*, 'planned', :now
    FROM unnest({", ".join(f"CAST(:{c} AS {t}[])" for c, t in _PLAN_COLUMNS.items())}) AS u({", ".join(_PLAN_COLUMNS)})
    ON CONFLICT (date, slot, village_id, campaign_id) DO UPDATE
    SET script_ids = excluded.script_ids, township_id = excluded.township_id,
        scheduled_at = excluded.scheduled_at, updated_at = excluded.updated_at
    WHERE broadcast.status = 'planned'
      AND (broadcast.script_ids, broadcast.township_id, broadcast.scheduled_at)
          IS DISTINCT FROM (excluded.script_ids, excluded.township_id, excluded.scheduled_at)
    RETURNING id, xmax = 0 AS inserted""")
_PG_SCRIPTS = sa.text("""
    INSERT INTO broadcast_script (broadcast_id, position, script_id)
    SELECT b.id, u.ord - 1, u.script_id FROM broadcast b
    CROSS JOIN LATERAL unnest(string_to_array(b.script_ids, ',')) WITH ORDINALITY AS u(script_id, ord)
    WHERE b.id = ANY(CAST(:ids AS integer[]))""")


def _upsert_postgres(session: Session, chunk: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    # One statement per chunk with array parameters: ~10x faster than a
    # many-VALUES insert through psycopg, and the script rows are built in SQL.
    params = {c: [r[c] for r in chunk] for c in _PLAN_COLUMNS} | {"now": now}
    written = session.execute(_PG_UPSERT, params).all()
    updated = [bid for bid, inserted in written if not inserted]
    if updated:
        session.execute(sa.delete(BroadcastScript).where(BroadcastScript.broadcast_id == sa.any_(
            sa.bindparam("ids", updated, type_=postgresql.ARRAY(sa.Integer)))))
    if written:
        session.execute(_PG_SCRIPTS, {"ids": [bid for bid, _ in written]})
    return len(written)


def _upsert_sqlite(session: Session, chunk: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    c = Broadcast.__table__.c
    stmt = sqlite.insert(Broadcast.__table__)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.date, c.slot, c.village_id, c.campaign_id],
        set_={"script_ids": new.script_ids, "township_id": new.township_id,
              "scheduled_at": new.scheduled_at, "updated_at": new.updated_at},
        where=(c.status == S.PLANNED) & sa.or_(
            c.script_ids != new.script_ids, c.township_id != new.township_id, c.scheduled_at != new.scheduled_at),
    ).returning(c.id, c.script_ids)
    written = session.execute(stmt, [r | {"status": S.PLANNED, "updated_at": now} for r in chunk]).all()
    if not written:
        return 0
    link = BroadcastScript.__table__
    session.execute(sa.delete(link).where(link.c.broadcast_id.in_([bid for bid, _ in written])))
    scripts = [{"broadcast_id": bid, "position": pos, "script_id": sid}
               for bid, joined in written if joined for pos, sid in enumerate(joined.split(","))]
    if scripts:
        session.execute(sa.insert(link), scripts)
    return len(written)


def _program(day: dt.date, slot: str, village_id: str) -> list[Any]:
    return [Broadcast.date == day, Broadcast.slot == slot, Broadcast.village_id == village_id]


def mark_program(
    session: Session, *, day: dt.date, slot: str, village_id: str, status: BroadcastStatus, at: dt.datetime,
    program_sha256: str | None = None, engine: str | None = None, error: str | None = None,
    confirmed_by: str | None = None, entered_by: str | None = None, note: str | None = None,
) -> int:
    """Move every campaign row of one village program to `status`, where TRANSITIONS allow it.

    Sets played_at / exported_at / confirmed_at to `at` for those statuses and
    stores the program hash, engine, error, confirmer (the village person), the
    staff member who entered it, and note when given. Returns the number
    of rows changed: 0 means nothing was allowed to change (e.g. already played).
    """
    _aware("at", at)
    status = BroadcastStatus(status)
    sources = [src for src, targets in TRANSITIONS.items() if status in targets]
    if not sources:
        raise ValueError(f"节目不能改成 {status!s} 状态（没有哪种状态能改成它）")
    values: dict[str, Any] = {"status": status, "updated_at": at}
    if status in _STAMP:
        values[_STAMP[status]] = at
    for key, value in (("program_sha256", program_sha256), ("engine", engine), ("error", error),
                       ("confirmed_by", confirmed_by), ("entered_by", entered_by), ("note", note)):
        if value is not None:
            values[key] = value
    stmt = sa.update(Broadcast).where(*_program(day, slot, village_id), Broadcast.status.in_(sources)).values(values)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def program_status(session: Session, *, day: dt.date, slot: str, village_id: str) -> BroadcastStatus | None:
    """The furthest-along status among the program's rows, or None if nothing is planned."""
    found = set(session.scalars(sa.select(Broadcast.status).where(*_program(day, slot, village_id)).distinct()))
    return max(found, key=_PROGRESS.index) if found else None


def record_exported(session: Session, plans: Sequence[BroadcastPlan], *, program_sha256: str, engine: str | None,
                    at: dt.datetime) -> int:
    """Log what a USB export really wrote for one village program: exactly `plans`, with this checksum.

    `plans` are the campaign parts of the one program (day, slot, village)
    that was written to the pack. Rows of that program not yet heard
    (planned or exported) are rewritten to these campaigns and scripts and
    marked exported with `program_sha256`; rows of campaigns no longer in the
    program are removed, because the file that would have carried them was
    replaced. A program already played or confirmed is history and is left
    alone. Returns the number of rows marked exported (0 if nothing changed).
    """
    _aware("at", at)
    keys = {(p.day, p.slot, p.village_id) for p in plans}
    if len(keys) != 1:
        raise ValueError(f"record_exported 一次只记一个节目的排播，这里有 {len(keys)} 个节目")
    day, slot, village_id = next(iter(keys))
    where = _program(day, slot, village_id)
    existing = {r.campaign_id: r for r in session.execute(
        sa.select(Broadcast.id, Broadcast.campaign_id, Broadcast.status, Broadcast.script_ids,
                  Broadcast.program_sha256).where(*where))}
    if any(r.status in (S.PLAYED, S.CONFIRMED) for r in existing.values()):
        return 0
    wanted = {p.campaign_id: p for p in plans}
    unchanged = set(existing) == set(wanted) and all(
        r.status == S.EXPORTED and r.program_sha256 == program_sha256
        and r.script_ids == ",".join(wanted[c].script_ids) for c, r in existing.items())
    if unchanged:
        return 0
    record_planned(session, plans, now=at)
    stale = [r.id for c, r in existing.items() if c not in wanted and r.status in _REWRITABLE]
    link = BroadcastScript.__table__
    if stale:
        session.execute(sa.delete(link).where(link.c.broadcast_id.in_(stale)))
        session.execute(sa.delete(Broadcast).where(Broadcast.id.in_(stale)))
    ids = dict(session.execute(sa.select(Broadcast.campaign_id, Broadcast.id).where(
        *where, Broadcast.campaign_id.in_(list(wanted)), Broadcast.status.in_(_REWRITABLE))).all())
    if not ids:
        return 0
    for campaign_id, bid in ids.items():
        p = wanted[campaign_id]
        session.execute(sa.update(Broadcast).where(Broadcast.id == bid).values(
            status=S.EXPORTED, script_ids=",".join(p.script_ids), township_id=p.township_id,
            scheduled_at=p.scheduled_at, program_sha256=program_sha256, engine=engine, exported_at=at,
            updated_at=at, error=None))
    session.execute(sa.delete(link).where(link.c.broadcast_id.in_(list(ids.values()))))
    scripts = [{"broadcast_id": bid, "position": pos, "script_id": sid}
               for campaign_id, bid in ids.items() for pos, sid in enumerate(wanted[campaign_id].script_ids)]
    if scripts:
        session.execute(sa.insert(link), scripts)
    return len(ids)

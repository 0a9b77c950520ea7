"""The as-run log: planned broadcasts, their outcomes, and what a USB export really wrote."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from outreach.models import (
    REACHED,
    STATUS_PROGRESS,
    Broadcast,
    BroadcastScript,
    BroadcastStatus,
    Evidence,
)
from outreach.planning.plan import Program

__all__ = ["BroadcastPlan", "TRANSITIONS", "LATE_EVIDENCE", "record_planned", "record_exported", "record_exported_many", "mark_program",
           "program_scripts", "program_status", "shown_status", "shown_status_sql"]

TRANSITIONS: dict[BroadcastStatus, frozenset[BroadcastStatus]] = {
    BroadcastStatus.PLANNED: frozenset({BroadcastStatus.PLAYED, BroadcastStatus.EXPORTED, BroadcastStatus.MISSED,
                                        BroadcastStatus.FAILED, BroadcastStatus.INTERRUPTED}),
    BroadcastStatus.FAILED: frozenset({BroadcastStatus.PLAYED, BroadcastStatus.MISSED}),
    # A play cut short by a crash is replayed whole within grace, or ends missed or failed.
    BroadcastStatus.INTERRUPTED: frozenset({BroadcastStatus.PLAYED, BroadcastStatus.MISSED, BroadcastStatus.FAILED}),
    BroadcastStatus.EXPORTED: frozenset({BroadcastStatus.CONFIRMED}),
    BroadcastStatus.PLAYED: frozenset({BroadcastStatus.CONFIRMED}),
}
"""Allowed status changes. Played is never re-marked played: that is what stops a double play after a restart."""

LATE_EVIDENCE: dict[BroadcastStatus, frozenset[BroadcastStatus]] = {
    BroadcastStatus.PLAYED: frozenset({BroadcastStatus.MISSED}),
    BroadcastStatus.FAILED: frozenset({BroadcastStatus.MISSED}),
}
"""What a village station's late report may still overturn (`mark_program(late_evidence=True)`): the scheduler's
sweep (delivery.sweep) logs `missed` a slot nobody reported by start plus grace, but a station plays from its
buffer while offline and uploads its as-run log when it is back."""

_PROOF_COLUMNS = ("proof_score", "proof_delay_s", "proof_snr_db")  # figures of a proof-of-air match (audio/proof.py)
_STAMP = {BroadcastStatus.PLAYED: "played_at", BroadcastStatus.EXPORTED: "exported_at",
          BroadcastStatus.CONFIRMED: "confirmed_at"}
_BATCH = 5000
# Rows an export may rewrite: nothing was heard from them yet.
_REWRITABLE = (BroadcastStatus.PLANNED, BroadcastStatus.EXPORTED)


def require_aware(name: str, value: dt.datetime) -> None:
    """Raise ValueError unless `value` (the argument `name`) carries a timezone."""
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
    require_aware("now", now)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in plans:
        require_aware(f"scheduled_at of {p.village_id} {p.day} {p.slot}", p.scheduled_at)
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
        where=(c.status == BroadcastStatus.PLANNED) & sa.or_(
            c.script_ids != new.script_ids, c.township_id != new.township_id, c.scheduled_at != new.scheduled_at),
    ).returning(c.id, c.script_ids)
    written = session.execute(stmt, [r | {"status": BroadcastStatus.PLANNED, "updated_at": now} for r in chunk]).all()
    if not written:
        return 0
    link = BroadcastScript.__table__
    session.execute(sa.delete(link).where(link.c.broadcast_id.in_([bid for bid, _ in written])))
    scripts = [{"broadcast_id": bid, "position": pos, "script_id": sid}
               for bid, joined in written if joined for pos, sid in enumerate(joined.split(","))]
    if scripts:
        session.execute(sa.insert(link), scripts)
    return len(written)


def shown_status(status: BroadcastStatus, scheduled_at: dt.datetime, *, now: dt.datetime,
                 grace_s: float) -> BroadcastStatus:
    """The status people see: a slot still `planned` after its start plus grace is missed, whatever wrote it.

    Computed when read, so a stopped scheduler (which writes nothing) can never make silence look pending.
    """
    require_aware("now", now)
    if status == BroadcastStatus.PLANNED and scheduled_at + dt.timedelta(seconds=grace_s) < now:
        return BroadcastStatus.MISSED
    return BroadcastStatus(status)


def shown_status_sql(*, now: dt.datetime, grace_s: float) -> sa.ColumnElement[Any]:
    """`shown_status` as a SQL expression over Broadcast, for queries that count or filter by status."""
    require_aware("now", now)
    overdue = sa.and_(Broadcast.status == BroadcastStatus.PLANNED,
                      Broadcast.scheduled_at < now - dt.timedelta(seconds=grace_s))
    return sa.case((overdue, sa.literal(BroadcastStatus.MISSED.value)), else_=Broadcast.status)


def program_rows(day: dt.date, slot: str, village_id: str) -> list[Any]:
    """The WHERE conditions selecting every campaign row of one village program."""
    return [Broadcast.date == day, Broadcast.slot == slot, Broadcast.village_id == village_id]


def mark_program(
    session: Session, *, day: dt.date, slot: str, village_id: str, status: BroadcastStatus, at: dt.datetime,
    program_sha256: str | None = None, engine: str | None = None, error: str | None = None,
    confirmed_by: str | None = None, entered_by: str | None = None, note: str | None = None,
    evidence: Evidence | None = None, aired_at: dt.datetime | None = None, late_evidence: bool = False,
    proof: Mapping[str, float | None] | None = None,
) -> int:
    """Move every campaign row of one village program to `status`, where TRANSITIONS allow it
    (and LATE_EVIDENCE too with `late_evidence`: only for a village station's own as-run report).

    `evidence` is how we know (models.Evidence); `aired_at` when the sound went out, which for a
    confirmation is the slot start or play start, not the time it was typed in (`at`).
    `proof` holds the figures of a proof-of-air match ({proof_score, proof_delay_s, proof_snr_db}).

    Sets played_at / exported_at / confirmed_at to `at` for those statuses and
    stores the program hash, engine, error, confirmer (the village person), the
    staff member who entered it, and note when given. Returns the number
    of rows changed: 0 means nothing was allowed to change (e.g. already played).
    """
    require_aware("at", at)
    status = BroadcastStatus(status)
    sources = [src for src, targets in TRANSITIONS.items() if status in targets]
    if late_evidence:
        sources += LATE_EVIDENCE.get(status, frozenset())
    if not sources:
        raise ValueError(f"节目不能改成 {status!s} 状态（没有哪种状态能改成它）")
    values: dict[str, Any] = {"status": status, "updated_at": at}
    if late_evidence and status is BroadcastStatus.PLAYED:
        values["error"] = None  # the sweep's 漏播 reason no longer holds
    if status in _STAMP:
        values[_STAMP[status]] = at
    for key, value in (("program_sha256", program_sha256), ("engine", engine), ("error", error),
                       ("confirmed_by", confirmed_by), ("entered_by", entered_by), ("note", note),
                       ("evidence", evidence), ("aired_at", aired_at)):
        if value is not None:
            values[key] = value
    for key, figure in (proof or {}).items():  # proof of air: proof_score, proof_delay_s, proof_snr_db
        if key not in _PROOF_COLUMNS:
            raise ValueError(f"proof 只能含 {'、'.join(_PROOF_COLUMNS)}，不能含 {key!r}")
        values[key] = figure
    stmt = (sa.update(Broadcast).where(*program_rows(day, slot, village_id), Broadcast.status.in_(sources))
            .values(values))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def program_scripts(rows: Iterable[Any]) -> list[str]:
    """The scripts a program (its campaign rows folded together) lists, in order, each once.

    Once any row reached the village (REACHED) only what aired: a played row's script_ids are
    what aired, and a row whose campaign failed or was blocked in the same play keeps its planned
    scripts, which did not air. Before that, what is planned. Every view (今天, the village page)
    lists a program's scripts through this one rule, so none shows a script as aired that did not air.
    """
    rows = list(rows)
    reached = [r for r in rows if BroadcastStatus(r.status) in REACHED]
    return list(dict.fromkeys(sid for r in (reached or rows) for sid in (r.script_ids or "").split(",") if sid))


def program_status(session: Session, *, day: dt.date, slot: str, village_id: str) -> BroadcastStatus | None:
    """The furthest-along status (models.STATUS_PROGRESS) among the program's rows, or None if nothing is planned."""
    found = set(session.scalars(sa.select(Broadcast.status).where(*program_rows(day, slot, village_id)).distinct()))
    return max(found, key=STATUS_PROGRESS.index) if found else None


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
    return record_exported_many(session, [(plans, program_sha256, engine)], at=at)


ExportedProgram = tuple[Sequence[BroadcastPlan], str, str | None]
"""One village program a USB export wrote: its campaign parts, the file's sha256, the engines."""


def _program_rows(session: Session, keys: set[tuple[dt.date, str, str]]) -> dict[tuple[dt.date, str, str], list[Any]]:
    """The as-run rows of many village programs, by (day, slot, village), read in chunks."""
    out: dict[tuple[dt.date, str, str], list[Any]] = {k: [] for k in keys}
    villages = sorted({v for _, _, v in keys})
    days = {d for d, _, _ in keys}
    for i in range(0, len(villages), 500):
        for r in session.execute(sa.select(
                Broadcast.id, Broadcast.date, Broadcast.slot, Broadcast.village_id, Broadcast.campaign_id,
                Broadcast.status, Broadcast.script_ids, Broadcast.program_sha256, Broadcast.scheduled_at,
                Broadcast.stale_reason).where(
                Broadcast.date.in_(days), Broadcast.village_id.in_(villages[i:i + 500]))):
            if (k := (r.date, r.slot, r.village_id)) in out:
                out[k].append(r)
    return out


def record_exported_many(session: Session, programs: Sequence[ExportedProgram], *, at: dt.datetime) -> int:
    """`record_exported` for many village programs at once, in a few statements instead of a few per program.

    Each entry is (plans, program_sha256, engine) of one program; the outcome is the same as
    calling record_exported for each in turn. Returns the number of rows marked exported.
    """
    require_aware("at", at)
    wanted: dict[tuple[dt.date, str, str], tuple[dict[str, BroadcastPlan], str, str | None]] = {}
    for plans, sha, engine in programs:
        keys = {(p.day, p.slot, p.village_id) for p in plans}
        if len(keys) != 1:
            raise ValueError(f"record_exported 一次只记一个节目的排播，这里有 {len(keys)} 个节目")
        wanted[next(iter(keys))] = ({p.campaign_id: p for p in plans}, sha, engine)
    existing = _program_rows(session, set(wanted))
    todo = {k: w for k, w in wanted.items() if not any(r.status in REACHED for r in existing[k]) and not (
        {r.campaign_id for r in existing[k]} == set(w[0]) and all(
            r.status == BroadcastStatus.EXPORTED and r.program_sha256 == w[1] and r.stale_reason is None
            and r.scheduled_at == w[0][r.campaign_id].scheduled_at
            and r.script_ids == ",".join(w[0][r.campaign_id].script_ids) for r in existing[k]))}
    if not todo:
        return 0
    record_planned(session, [p for plans, _, _ in todo.values() for p in plans.values()], now=at)
    link, table = BroadcastScript.__table__, Broadcast.__table__
    stale = [r.id for k in todo for r in existing[k] if r.campaign_id not in todo[k][0] and r.status in _REWRITABLE]
    rows = [r for k, rs in _program_rows(session, set(todo)).items() for r in rs
            if r.campaign_id in todo[k][0] and r.status in _REWRITABLE]
    for i in range(0, max(len(stale), len(rows)), _BATCH):
        ids = stale[i:i + _BATCH] + [r.id for r in rows[i:i + _BATCH]]
        session.execute(sa.delete(link).where(link.c.broadcast_id.in_(ids)))
        if stale[i:i + _BATCH]:
            session.execute(sa.delete(table).where(table.c.id.in_(stale[i:i + _BATCH])))
    if not rows:
        return 0
    params, scripts = [], []
    for r in rows:
        p = todo[(r.date, r.slot, r.village_id)][0][r.campaign_id]
        sha, engine = todo[(r.date, r.slot, r.village_id)][1:]
        params.append({"b_id": r.id, "b_scripts": ",".join(p.script_ids), "b_township": p.township_id,
                       "b_at": p.scheduled_at, "b_sha": sha, "b_engine": engine})
        scripts += [{"broadcast_id": r.id, "position": pos, "script_id": sid} for pos, sid in enumerate(p.script_ids)]
    c = table.c
    session.execute(table.update().where(c.id == sa.bindparam("b_id")).values(
        status=BroadcastStatus.EXPORTED, script_ids=sa.bindparam("b_scripts", type_=c.script_ids.type),
        township_id=sa.bindparam("b_township", type_=c.township_id.type),
        scheduled_at=sa.bindparam("b_at", type_=c.scheduled_at.type),
        program_sha256=sa.bindparam("b_sha", type_=c.program_sha256.type),
        engine=sa.bindparam("b_engine", type_=c.engine.type), exported_at=at, updated_at=at, error=None,
        stale_reason=None), params)
    for i in range(0, len(scripts), _BATCH):
        session.execute(sa.insert(link), scripts[i:i + _BATCH])
    return len(rows)

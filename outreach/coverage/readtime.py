"""The moment coverage is read at: silence past its slot reads as 漏播, whether or not anything wrote it down.

A slot still `planned` after its start plus grace is missed (records.shown_status), and so is a
program the plan holds that left no row at all, because the scheduler never ran to log it. Nothing
here reads the clock or writes a row: the CLI and the web pass `now` in, and the scheduler's sweep
writes the `missed` rows for good.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.config import TZ
from outreach.coverage.common import BROADCASTS, fetch_all
from outreach.models import BroadcastStatus, SlotClaim
from outreach.records.broadcasts import BroadcastPlan, broadcast_plans, shown_status, shown_status_sql

if TYPE_CHECKING:
    from outreach.planning.workspace import Loaded

CLAIMS = SlotClaim.__table__.c  # type: ignore[attr-defined]

UNRECORDED_DAYS = 14
"""How far back before today coverage asks the plan for programs that left no row at all.

The next scheduler start writes such programs `missed`; this window only has to bridge the time a
scheduler was down, and planning a long past for a large county costs seconds."""


@dataclass(frozen=True)
class ReadTime:
    """When coverage is read (`now`, aware), the grace a slot has, and the programs the plan expected."""

    now: dt.datetime
    grace_s: float = 0.0
    expected: tuple[BroadcastPlan, ...] = ()  # broadcast_plans of the plan; programs with no row at all count

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError(f"ReadTime.now 必须是带时区的时间（timezone-aware datetime），现在是 {self.now!r}")

    def overdue(self, scheduled_at: dt.datetime) -> bool:
        """True when a slot starting at `scheduled_at` has passed its grace without an outcome."""
        return shown_status(BroadcastStatus.PLANNED, scheduled_at, now=self.now,
                            grace_s=self.grace_s) == BroadcastStatus.MISSED


def status_column(read: ReadTime | None) -> sa.ColumnElement[Any]:
    """The status a row shows: the stored one, or with `read` a planned slot past grace as missed."""
    if read is None:
        return BROADCASTS.status
    return shown_status_sql(now=read.now, grace_s=read.grace_s)


def expected_plans(loaded: Loaded, start: dt.date, end: dt.date, *, today: dt.date,
                   campaign_id: str | None = None) -> tuple[BroadcastPlan, ...]:
    """The plan's campaign parts from start..end, from UNRECORDED_DAYS before `today` on (for ReadTime.expected).

    Raises OutreachError when the workspace cannot be planned.
    """
    from outreach.planning.workspace import plan_days  # the planner is loaded only by those who plan

    first = max(start, today - dt.timedelta(days=UNRECORDED_DAYS - 1))
    if end < first:
        return ()
    plans = broadcast_plans(plan_days(loaded, first, end).programs)
    return tuple(p for p in plans if campaign_id is None or p.campaign_id == campaign_id)


def first_use(session: Session, read: ReadTime) -> dt.date:
    """The first day outreach was in use: the database's first as-run row or slot claim (else the day of `now`).

    Days before it are not 漏播: the county was not using outreach yet (the scheduler's sweep agrees).
    """
    used = [d for d in (session.scalar(sa.select(sa.func.min(BROADCASTS.date))),
                        session.scalar(sa.select(sa.func.min(CLAIMS.date)))) if d is not None]
    return min([*(_day(d) for d in used), read.now.astimezone(TZ).date()])


def unrecorded(
    session: Session, read: ReadTime | None, *, start: dt.date, end: dt.date,
    campaign_id: str | None = None, township_id: str | None = None,
) -> list[BroadcastPlan]:
    """The expected campaign parts in start..end whose program (day, slot, village) has no row and no claim.

    A program with any row or claim was handled by something that logged it; only a program nothing
    logged is counted, so a campaign added to an aired program later does not make it look missed.
    Days before `first_use` are left out.
    """
    if read is None or not read.expected:
        return []
    start = max(start, first_use(session, read))
    plans = [p for p in read.expected if start <= p.day <= end
             and (campaign_id is None or p.campaign_id == campaign_id)
             and (township_id is None or p.township_id == township_id)]
    if not plans:
        return []
    villages = sorted({p.village_id for p in plans})
    logged: set[tuple[dt.date, str, str]] = set()
    for table in (BROADCASTS, CLAIMS):
        for i in range(0, len(villages), 500):
            stmt = (sa.select(table.date, table.slot, table.village_id).distinct()
                    .where(table.date >= start, table.date <= end, table.village_id.in_(villages[i:i + 500])))
            logged |= {(_day(r.date), r.slot, r.village_id) for r in fetch_all(session, stmt)}
    return [p for p in plans if (p.day, p.slot, p.village_id) not in logged]


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def split_due(read: ReadTime | None, plans: Sequence[BroadcastPlan]) -> tuple[list[BroadcastPlan], list[BroadcastPlan]]:
    """Unrecorded plans split into (overdue: 漏播, still to come: 待播)."""
    if read is None:
        return [], list(plans)
    due = [p for p in plans if read.overdue(p.scheduled_at)]
    ahead = [p for p in plans if not read.overdue(p.scheduled_at)]
    return due, ahead

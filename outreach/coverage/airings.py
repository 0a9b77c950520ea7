"""Scripts aired: how often each campaign script reached each township, with evidence."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCAST_SCRIPTS, BROADCASTS, TOWNSHIPS, as_date, check_campaign, check_period, fetch_all, is_reach, scripts_join,
)
from outreach.models import Township


@dataclass(frozen=True)
class ScriptAiring:
    """How often a script reached a township: slots with evidence (common.is_reach)."""

    township_id: str
    township_name: str
    script_id: str
    airings: int
    villages: int
    last_aired: dt.date | None


def scripts_aired(
    session: Session,
    *,
    start: dt.date,
    end: dt.date,
    campaign_id: str | None = None,  # None: every campaign
    township_id: str | None = None,  # None: the whole county
) -> list[ScriptAiring]:
    """Per township and script: airings with evidence (common.is_reach), villages and last date in the range.

    Raises CoverageError for an unknown campaign or a bad range.
    """
    check_period(start, end)
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    where = [BROADCASTS.date >= start, BROADCASTS.date <= end, is_reach()]
    if campaign_id is not None:
        where.append(BROADCASTS.campaign_id == campaign_id)
    if township_id is not None:
        where.append(BROADCASTS.township_id == township_id)
    agg = (
        sa.select(
            BROADCASTS.township_id.label("township_id"), BROADCAST_SCRIPTS.script_id.label("script_id"),
            sa.func.count().label("airings"),
            sa.func.count(sa.distinct(BROADCASTS.village_id)).label("villages"),
            sa.func.max(BROADCASTS.date).label("last_aired"),
        )
        .select_from(scripts_join())
        .where(*where)
        .group_by(BROADCASTS.township_id, BROADCAST_SCRIPTS.script_id)
        .subquery("agg")
    )
    stmt = (
        sa.select(agg, sa.func.coalesce(TOWNSHIPS.name, agg.c.township_id).label("township_name"))
        .select_from(agg.outerjoin(Township.__table__, TOWNSHIPS.id == agg.c.township_id))  # type: ignore[attr-defined]
        .order_by(agg.c.township_id, agg.c.script_id)
    )
    return [
        ScriptAiring(r.township_id, r.township_name, r.script_id, int(r.airings), int(r.villages),
                     as_date(r.last_aired))
        for r in fetch_all(session, stmt)
    ]

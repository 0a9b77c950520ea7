"""Leaflet handouts at markets: totals per market and the per-day timeline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import HANDOUTS, MARKETS, as_date, check_period, fetch_all
from outreach.errors import CoverageError
from outreach.models import Market, Topic


@dataclass(frozen=True)
class MarketCoverage:
    """Leaflet handouts at one market over a period."""

    market_id: str
    market_name: str
    days: int
    leaflets: int
    people: int
    last_date: dt.date | None


@dataclass(frozen=True)
class HandoutDay:
    """Leaflets and people at one market on one day (for the timeline chart)."""

    date: dt.date
    market_id: str
    leaflets: int
    people: int


def market_coverage(
    session: Session, *, start: dt.date, end: dt.date, topic: str | None = None,
) -> list[MarketCoverage]:
    """Per market: handout days, leaflets, people and last date in the range.

    Every market of the registry appears (zeros if nobody went), plus any
    market in the handout log that has since left the registry.
    """
    check_period(start, end)
    where = [HANDOUTS.date >= start, HANDOUTS.date <= end]
    if topic is not None:
        known = [t.value for t in Topic]
        if topic not in known:
            raise CoverageError(f"未知的主题 {topic!r}；已有：{'、'.join(known)}")
        # topics is comma-joined; match a whole item (LIKE wildcards escaped).
        where.append(("," + HANDOUTS.topics + ",").contains(f",{topic},", autoescape=True))
    agg = (
        sa.select(
            HANDOUTS.market_id.label("market_id"),
            sa.func.count(sa.distinct(HANDOUTS.date)).label("days"),
            sa.func.coalesce(sa.func.sum(HANDOUTS.leaflets), 0).label("leaflets"),
            sa.func.coalesce(sa.func.sum(HANDOUTS.people), 0).label("people"),
            sa.func.max(HANDOUTS.date).label("last_date"),
        )
        .where(*where).group_by(HANDOUTS.market_id).subquery("agg")
    )
    keys = sa.union(sa.select(MARKETS.id.label("market_id")), sa.select(agg.c.market_id)).subquery("keys")
    stmt = (
        sa.select(
            keys.c.market_id, sa.func.coalesce(MARKETS.name, keys.c.market_id).label("market_name"),
            sa.func.coalesce(agg.c.days, 0).label("days"),
            sa.func.coalesce(agg.c.leaflets, 0).label("leaflets"),
            sa.func.coalesce(agg.c.people, 0).label("people"),
            agg.c.last_date,
        )
        .select_from(
            keys.outerjoin(agg, agg.c.market_id == keys.c.market_id)
            .outerjoin(Market.__table__, MARKETS.id == keys.c.market_id)  # type: ignore[attr-defined]
        )
        .order_by(keys.c.market_id)
    )
    return [
        MarketCoverage(r.market_id, r.market_name, int(r.days), int(r.leaflets), int(r.people), as_date(r.last_date))
        for r in fetch_all(session, stmt)
    ]


def handout_timeline(session: Session, *, start: dt.date, end: dt.date) -> list[HandoutDay]:
    """Leaflets and people per market and day in the range, by date."""
    check_period(start, end)
    stmt = (
        sa.select(HANDOUTS.date, HANDOUTS.market_id, sa.func.sum(HANDOUTS.leaflets).label("leaflets"),
                  sa.func.sum(HANDOUTS.people).label("people"))
        .where(HANDOUTS.date >= start, HANDOUTS.date <= end)
        .group_by(HANDOUTS.date, HANDOUTS.market_id)
        .order_by(HANDOUTS.date, HANDOUTS.market_id)
    )
    return [HandoutDay(as_date(r.date), r.market_id, int(r.leaflets), int(r.people))  # type: ignore[arg-type]
            for r in fetch_all(session, stmt)]

"""Reach per village and township, estimated listeners, and scripts aired."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCAST_SCRIPTS, BROADCASTS, CAMPAIGNS, REACHED, TOWNSHIPS, VILLAGES, as_date, check_campaign, check_period,
    check_township, fetch_all, scripts_join,
)
from outreach.errors import CoverageError
from outreach.models import BroadcastStatus, Campaign, Township, Village

LISTEN_SHARE = 0.30
"""Share of a village's residents assumed to hear one played slot (see estimate_listeners)."""


# --- result rows ----------------------------------------------------------------


@dataclass(frozen=True)
class VillageCoverage:
    """One campaign in one village over a period: slot counts by status and estimated listeners."""

    village_id: str
    village_name: str
    township_id: str
    township_name: str
    campaign_id: str
    campaign_name: str
    planned: int
    played: int
    confirmed: int
    exported: int
    missed: int
    failed: int
    last_reached: dt.date | None
    population: int
    listeners: int
    interrupted: int = 0  # plays cut short by a crash; already counted in `failed`

    @property
    def reached(self) -> int:
        """Slots that were heard: played live, or played from a USB pack and confirmed."""
        return self.played + self.confirmed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings)."""
        return {
            "village_id": self.village_id,
            "village_name": self.village_name,
            "township_id": self.township_id,
            "township_name": self.township_name,
            "campaign_id": self.campaign_id,
            "campaign_name": self.campaign_name,
            "planned": self.planned,
            "played": self.played,
            "confirmed": self.confirmed,
            "exported": self.exported,
            "missed": self.missed,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "reached": self.reached,
            "last_reached": self.last_reached.isoformat() if self.last_reached else None,
            "population": self.population,
            "listeners": self.listeners,
        }


@dataclass(frozen=True)
class TownshipCoverage:
    """One campaign rolled up over the villages of one township."""

    township_id: str
    township_name: str
    campaign_id: str
    villages_targeted: int
    villages_reached: int
    played: int
    confirmed: int
    exported: int
    missed: int
    failed: int
    population: int
    listeners: int
    last_reached: dt.date | None
    interrupted: int = 0  # already counted in `failed`

    @property
    def reached(self) -> int:
        return self.played + self.confirmed


@dataclass(frozen=True)
class ScriptAiring:
    """How often a script was heard in a township (played or confirmed slots)."""

    township_id: str
    township_name: str
    script_id: str
    airings: int
    villages: int
    last_aired: dt.date | None



# --- listener model ----------------------------------------------------------------


def estimate_listeners(population: int, reached_slots: int, share: float = LISTEN_SHARE) -> int:
    """Distinct residents estimated to have heard at least one of `reached_slots` slots.

    Each played or confirmed slot in a village is assumed to be heard by a fixed
    share of its residents (`LISTEN_SHARE`, 30 %: people at home or in the fields
    within earshot of the horn at 06:30 or 19:00). Slots are treated as
    independent draws, so after n reached slots the estimated number of distinct
    listeners is ``population * (1 - (1 - share) ** n)``: 30 % after one slot, 51 %
    after two, 83 % after five; it approaches but never exceeds the population.
    Township and county figures are sums of village estimates. This is a planning
    yardstick to compare villages, not a measurement.
    """
    if population <= 0 or reached_slots <= 0:
        return 0
    return min(population, round(population * (1.0 - (1.0 - share) ** reached_slots)))


# --- reach per village and township ----------------------------------------------------


def village_coverage(
    session: Session,
    *,
    start: dt.date,
    end: dt.date,
    campaign_id: str | None = None,
    township_id: str | None = None,
    target_village_ids: Iterable[str] = (),
    share: float = LISTEN_SHARE,
) -> list[VillageCoverage]:
    """Slot counts per village and campaign between `start` and `end` (inclusive).

    A village appears if it has any broadcast row for the campaign in the range
    or (with `campaign_id`) is one of `target_village_ids`, which then shows
    with zeros. Rows are sorted by township, village and campaign.

    Raises CoverageError for an unknown campaign or township, or a bad range.
    """
    check_period(start, end)
    targets = list(target_village_ids)
    if targets and campaign_id is None:
        raise CoverageError("目标村只能针对一个宣传活动；请加上 --campaign")
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    if township_id is not None:
        check_township(session, township_id)

    agg = _counts_per_village(start, end, campaign_id, township_id)
    stmt = _coverage_query(agg, targets, campaign_id, township_id)
    return [_village_row(r, share) for r in fetch_all(session, stmt)]


def _counts_per_village(start: dt.date, end: dt.date, campaign_id: str | None, township_id: str | None) -> Any:
    """The CTE of slot counts per (campaign, village) by status, and the last day each was reached."""
    where = [BROADCASTS.date >= start, BROADCASTS.date <= end]
    if campaign_id is not None:
        where.append(BROADCASTS.campaign_id == campaign_id)
    if township_id is not None:
        where.append(BROADCASTS.village_id.in_(sa.select(VILLAGES.id).where(VILLAGES.township_id == township_id)))
    # Count per (campaign, village, status) first: that is exactly the prefix of
    # ix_broadcast_coverage, so SQLite streams it without evaluating a CASE per row;
    # the pivot to one row per village then runs over a few rows per village.
    per_status = (
        sa.select(BROADCASTS.campaign_id, BROADCASTS.village_id, BROADCASTS.status, sa.func.count().label("n"),
                  sa.func.max(BROADCASTS.date).label("last"))
        .where(*where)
        .group_by(BROADCASTS.campaign_id, BROADCASTS.village_id, BROADCASTS.status)
        .cte("per_status")
    )

    def n_of(status: BroadcastStatus) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((per_status.c.status == status, per_status.c.n), else_=0))

    return (
        sa.select(
            per_status.c.campaign_id.label("campaign_id"),
            per_status.c.village_id.label("village_id"),
            n_of(BroadcastStatus.PLANNED).label("planned"),
            n_of(BroadcastStatus.PLAYED).label("played"),
            n_of(BroadcastStatus.CONFIRMED).label("confirmed"),
            n_of(BroadcastStatus.EXPORTED).label("exported"),
            n_of(BroadcastStatus.MISSED).label("missed"),
            # Failed counts every attempt that did not reach the village: a play
            # cut short by a crash (interrupted) is a failure too, and also shown apart.
            (n_of(BroadcastStatus.FAILED) + n_of(BroadcastStatus.INTERRUPTED)).label("failed"),
            n_of(BroadcastStatus.INTERRUPTED).label("interrupted"),
            sa.func.max(sa.case((per_status.c.status.in_(REACHED), per_status.c.last))).label("last_reached"),
        )
        .group_by(per_status.c.campaign_id, per_status.c.village_id)
        .cte("agg")
    )


def _coverage_query(agg: Any, targets: list[str], campaign_id: str | None, township_id: str | None) -> Any:
    """One row per village (and campaign): the counts of `agg` with names, population, and zeros for targets."""
    if targets:
        # Targets come from the registry, which is mirrored into the village table.
        keys_sel = sa.union(
            sa.select(agg.c.village_id.label("village_id")),
            sa.select(VILLAGES.id.label("village_id")).where(VILLAGES.id.in_(targets)),
        ).subquery("keys")
        base: Any = keys_sel.outerjoin(agg, agg.c.village_id == keys_sel.c.village_id)
        key_col = keys_sel.c.village_id
    else:
        base = agg
        key_col = agg.c.village_id
    base = base.outerjoin(Village.__table__, VILLAGES.id == key_col)  # type: ignore[attr-defined]
    # The township comes from the registry mirror, not from broadcast.township_id: that keeps
    # the aggregate inside ix_broadcast_coverage (an index-only scan, ~10x faster on 5M rows).
    township_col = sa.func.coalesce(VILLAGES.township_id, "")
    base = base.outerjoin(Township.__table__, TOWNSHIPS.id == VILLAGES.township_id)  # type: ignore[attr-defined]
    campaign_col = sa.func.coalesce(agg.c.campaign_id, campaign_id or "")
    base = base.outerjoin(Campaign.__table__, CAMPAIGNS.id == campaign_col)  # type: ignore[attr-defined]

    zero = sa.literal(0)
    stmt = sa.select(
        key_col.label("village_id"),
        sa.func.coalesce(VILLAGES.name, key_col).label("village_name"),
        township_col.label("township_id"),
        sa.func.coalesce(TOWNSHIPS.name, township_col).label("township_name"),
        campaign_col.label("campaign_id"),
        sa.func.coalesce(CAMPAIGNS.name, campaign_col).label("campaign_name"),
        sa.func.coalesce(agg.c.planned, zero).label("planned"),
        sa.func.coalesce(agg.c.played, zero).label("played"),
        sa.func.coalesce(agg.c.confirmed, zero).label("confirmed"),
        sa.func.coalesce(agg.c.exported, zero).label("exported"),
        sa.func.coalesce(agg.c.missed, zero).label("missed"),
        sa.func.coalesce(agg.c.failed, zero).label("failed"),
        sa.func.coalesce(agg.c.interrupted, zero).label("interrupted"),
        agg.c.last_reached,
        sa.func.coalesce(VILLAGES.population, zero).label("population"),
    ).select_from(base)
    if township_id is not None:
        stmt = stmt.where(township_col == township_id)
    return stmt.order_by(township_col, key_col, campaign_col)


def _village_row(r: Any, share: float) -> VillageCoverage:
    """A row of _coverage_query as a VillageCoverage, with its estimated listeners."""
    played, confirmed = int(r.played), int(r.confirmed)
    population = int(r.population)
    return VillageCoverage(
        village_id=r.village_id, village_name=r.village_name,
        township_id=r.township_id, township_name=r.township_name,
        campaign_id=r.campaign_id, campaign_name=r.campaign_name,
        planned=int(r.planned), played=played, confirmed=confirmed,
        exported=int(r.exported), missed=int(r.missed), failed=int(r.failed),
        last_reached=as_date(r.last_reached), population=population,
        listeners=estimate_listeners(population, played + confirmed, share), interrupted=int(r.interrupted),
    )


def township_rollup(villages: Iterable[VillageCoverage]) -> list[TownshipCoverage]:
    """Roll per-village rows (already aggregated in SQL) up to township and campaign.

    Listeners are summed village estimates; this runs over one row per village,
    not over broadcast rows, because the listener estimate is not linear.
    """
    groups: dict[tuple[str, str], list[VillageCoverage]] = {}
    for v in villages:
        groups.setdefault((v.township_id, v.campaign_id), []).append(v)
    out = []
    for (tid, cid), rows in sorted(groups.items()):
        dates = [v.last_reached for v in rows if v.last_reached]
        out.append(TownshipCoverage(
            township_id=tid, township_name=rows[0].township_name, campaign_id=cid,
            villages_targeted=len(rows),
            villages_reached=sum(1 for v in rows if v.reached > 0),
            played=sum(v.played for v in rows), confirmed=sum(v.confirmed for v in rows),
            exported=sum(v.exported for v in rows), missed=sum(v.missed for v in rows),
            failed=sum(v.failed for v in rows), population=sum(v.population for v in rows),
            listeners=sum(v.listeners for v in rows), last_reached=max(dates) if dates else None,
            interrupted=sum(v.interrupted for v in rows),
        ))
    return out


# --- scripts --------------------------------------------------------------------


def scripts_aired(
    session: Session,
    *,
    start: dt.date,
    end: dt.date,
    campaign_id: str | None = None,
    township_id: str | None = None,
) -> list[ScriptAiring]:
    """Per township and script: played/confirmed airings, villages and last date in the range.

    Raises CoverageError for an unknown campaign or a bad range.
    """
    check_period(start, end)
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    where = [BROADCASTS.date >= start, BROADCASTS.date <= end, BROADCASTS.status.in_(REACHED)]
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

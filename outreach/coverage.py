"""Coverage queries: reach per village and township, scripts aired, markets, gaps, heatmap.

Every figure is a SQL aggregate (COUNT/SUM/MAX over CASE, GROUP BY) computed by
the database; Python only shapes the aggregated rows (one per village, market
or village-day), never the broadcast rows themselves. Filters are bound
parameters. No function reads the clock: `today` and date ranges are arguments.

Listener model
--------------
Each played or confirmed slot in a village is assumed to be heard by a fixed
share of its residents (`LISTEN_SHARE`, 30 %: people at home or in the fields
within earshot of the horn at 06:30 or 19:00). Slots are treated as
independent draws, so after n reached slots the estimated number of distinct
listeners is ``population * (1 - (1 - share) ** n)``: 30 % after one slot, 51 %
after two, 83 % after five; it approaches but never exceeds the population.
Township and county figures are sums of village estimates. This is a planning
yardstick to compare villages, not a measurement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.dates import check_range, parse_date
from outreach.errors import CoverageError, OutreachError
from outreach.models import (
    Broadcast,
    BroadcastScript,
    BroadcastStatus,
    Campaign,
    Handout,
    Market,
    Topic,
    Township,
    Village,
)

__all__ = [
    "LISTEN_SHARE",
    "MAX_DAYS",
    "Heatmap",
    "HeatmapRow",
    "HandoutDay",
    "MarketCoverage",
    "ScriptAiring",
    "ScriptGap",
    "TownshipCoverage",
    "UnconfirmedExport",
    "VillageCoverage",
    "VillageGap",
    "check_campaign",
    "check_period",
    "check_township",
    "estimate_listeners",
    "handout_timeline",
    "market_coverage",
    "parse_period",
    "script_gaps",
    "scripts_aired",
    "township_rollup",
    "unconfirmed_exports",
    "village_coverage",
    "village_day_matrix",
    "village_gaps",
]

LISTEN_SHARE = 0.30
"""Share of a village's residents assumed to hear one played slot (see module docstring)."""

MAX_DAYS = 366
"""Longest date range a coverage query accepts."""

EXPORT_GRACE_DAYS = 2
"""Days an offline village has to send back its confirmation before an export counts as unconfirmed."""

REACHED = (BroadcastStatus.PLAYED.value, BroadcastStatus.CONFIRMED.value)
PENDING = (BroadcastStatus.PLANNED.value, BroadcastStatus.EXPORTED.value)

_B = Broadcast.__table__.c  # type: ignore[attr-defined]
_BS = BroadcastScript.__table__.c  # type: ignore[attr-defined]
_H = Handout.__table__.c  # type: ignore[attr-defined]
_V = Village.__table__.c  # type: ignore[attr-defined]
_T = Township.__table__.c  # type: ignore[attr-defined]
_M = Market.__table__.c  # type: ignore[attr-defined]
_C = Campaign.__table__.c  # type: ignore[attr-defined]


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


@dataclass(frozen=True)
class VillageGap:
    """A village that a campaign has not reached within the last N days (or ever)."""

    village_id: str
    village_name: str
    township_id: str
    township_name: str
    last_reached: dt.date | None
    days_silent: int | None  # None: never reached


@dataclass(frozen=True)
class ScriptGap:
    """A campaign script never heard in a township."""

    township_id: str
    township_name: str
    script_id: str


@dataclass(frozen=True)
class UnconfirmedExport:
    """An offline village with exported programs whose confirmation is overdue."""

    village_id: str
    village_name: str
    township_id: str
    slots: int
    first_date: dt.date
    last_date: dt.date


@dataclass(frozen=True)
class HeatmapRow:
    """One village's line in the village x day matrix."""

    village_id: str
    village_name: str
    township_id: str
    township_name: str
    reached: list[int]  # played/confirmed slots per day
    pending: list[int]  # planned or exported (awaiting confirmation) slots per day
    scheduled: list[int]  # broadcast rows of the campaign per day, any status


@dataclass(frozen=True)
class Heatmap:
    """Reached slots per village and day, for a heatmap."""

    dates: list[dt.date]
    rows: list[HeatmapRow] = field(default_factory=list)


# --- validation -----------------------------------------------------------------


def parse_period(
    start_text: str | None, end_text: str | None, *, today: dt.date,
    start_field: str = "--from", end_field: str = "--to",
) -> tuple[dt.date, dt.date]:
    """Turn optional --from/--to texts into a checked (start, end) range.

    A missing end means `today`; a missing start means the first day of the
    end's month ("this month so far").

    Raises CoverageError for a malformed date, a backwards range or one over MAX_DAYS days.
    """
    try:
        end = parse_date(end_text, end_field) if end_text else today
        start = parse_date(start_text, start_field) if start_text else end.replace(day=1)
    except OutreachError as exc:
        raise CoverageError(str(exc)) from exc
    check_period(start, end, what=f"{start_field}/{end_field}")
    return start, end


def check_period(start: dt.date, end: dt.date, *, what: str = "date range") -> None:
    """Check start..end runs forwards and spans at most MAX_DAYS days.

    Raises CoverageError saying how to fix the range.
    """
    try:
        check_range(start, end, max_days=MAX_DAYS, what=what)
    except OutreachError as exc:
        raise CoverageError(str(exc)) from exc


def _known(session: Session, column: sa.ColumnElement[Any]) -> list[str]:
    return [r[0] for r in session.exec(sa.select(column).order_by(column).limit(31)).all()]  # type: ignore[call-overload]


def _listing(ids: list[str]) -> str:
    if not ids:
        return "(none)"
    shown = ", ".join(ids[:30])
    return shown + (", ..." if len(ids) > 30 else "")


def check_campaign(session: Session, campaign_id: str) -> str:
    """Return the campaign's name; raise CoverageError if the Campaign table lacks it."""
    name = session.exec(sa.select(_C.name).where(_C.id == campaign_id)).first()  # type: ignore[call-overload]
    if name is None:
        raise CoverageError(
            f"unknown campaign {campaign_id!r}; known: {_listing(_known(session, _C.id))} "
            "(campaign ids come from schedules/campaigns.yaml)"
        )
    return str(name[0])


def check_township(session: Session, township_id: str) -> str:
    """Return the township's name; raise CoverageError if the Township table lacks it."""
    name = session.exec(sa.select(_T.name).where(_T.id == township_id)).first()  # type: ignore[call-overload]
    if name is None:
        raise CoverageError(
            f"unknown township {township_id!r}; known: {_listing(_known(session, _T.id))} "
            "(township ids come from schedules/county.yaml)"
        )
    return str(name[0])


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise CoverageError(f"--days: {days} is out of range; give a number of days from 1 to {MAX_DAYS}")


# --- helpers --------------------------------------------------------------------


def estimate_listeners(population: int, reached_slots: int, share: float = LISTEN_SHARE) -> int:
    """Distinct residents estimated to have heard at least one of `reached_slots` slots."""
    if population <= 0 or reached_slots <= 0:
        return 0
    return min(population, round(population * (1.0 - (1.0 - share) ** reached_slots)))


def _count(status: str) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((_B.status == status, 1), else_=0)), 0)


def _run(session: Session, stmt: sa.Executable) -> Sequence[Any]:
    return session.exec(stmt).all()  # type: ignore[call-overload]


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
        raise CoverageError("target villages only make sense for one campaign; pass --campaign")
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    if township_id is not None:
        check_township(session, township_id)

    where = [_B.date >= start, _B.date <= end]
    if campaign_id is not None:
        where.append(_B.campaign_id == campaign_id)
    if township_id is not None:
        where.append(_B.village_id.in_(sa.select(_V.id).where(_V.township_id == township_id)))
    reached_date = sa.case((_B.status.in_(REACHED), _B.date))
    agg = (
        sa.select(
            _B.campaign_id.label("campaign_id"),
            _B.village_id.label("village_id"),
            _count(BroadcastStatus.PLANNED).label("planned"),
            _count(BroadcastStatus.PLAYED).label("played"),
            _count(BroadcastStatus.CONFIRMED).label("confirmed"),
            _count(BroadcastStatus.EXPORTED).label("exported"),
            _count(BroadcastStatus.MISSED).label("missed"),
            _count(BroadcastStatus.FAILED).label("failed"),
            sa.func.max(reached_date).label("last_reached"),
        )
        .where(*where)
        .group_by(_B.campaign_id, _B.village_id)
        .cte("agg")
    )

    if targets:
        # Targets come from the registry, which is mirrored into the village table.
        keys_sel = sa.union(
            sa.select(agg.c.village_id.label("village_id")),
            sa.select(_V.id.label("village_id")).where(_V.id.in_(targets)),
        ).subquery("keys")
        base: Any = keys_sel.outerjoin(agg, agg.c.village_id == keys_sel.c.village_id)
        key_col = keys_sel.c.village_id
    else:
        base = agg
        key_col = agg.c.village_id
    base = base.outerjoin(Village.__table__, _V.id == key_col)  # type: ignore[attr-defined]
    # The township comes from the registry mirror, not from broadcast.township_id: that keeps
    # the aggregate inside ix_broadcast_coverage (an index-only scan, ~10x faster on 5M rows).
    township_col = sa.func.coalesce(_V.township_id, "")
    base = base.outerjoin(Township.__table__, _T.id == _V.township_id)  # type: ignore[attr-defined]
    campaign_col = sa.func.coalesce(agg.c.campaign_id, campaign_id or "")
    base = base.outerjoin(Campaign.__table__, _C.id == campaign_col)  # type: ignore[attr-defined]

    zero = sa.literal(0)
    stmt = sa.select(
        key_col.label("village_id"),
        sa.func.coalesce(_V.name, key_col).label("village_name"),
        township_col.label("township_id"),
        sa.func.coalesce(_T.name, township_col).label("township_name"),
        campaign_col.label("campaign_id"),
        sa.func.coalesce(_C.name, campaign_col).label("campaign_name"),
        sa.func.coalesce(agg.c.planned, zero).label("planned"),
        sa.func.coalesce(agg.c.played, zero).label("played"),
        sa.func.coalesce(agg.c.confirmed, zero).label("confirmed"),
        sa.func.coalesce(agg.c.exported, zero).label("exported"),
        sa.func.coalesce(agg.c.missed, zero).label("missed"),
        sa.func.coalesce(agg.c.failed, zero).label("failed"),
        agg.c.last_reached,
        sa.func.coalesce(_V.population, zero).label("population"),
    ).select_from(base)
    if township_id is not None:
        stmt = stmt.where(township_col == township_id)
    stmt = stmt.order_by(township_col, key_col, campaign_col)

    out = []
    for r in _run(session, stmt):
        played, confirmed = int(r.played), int(r.confirmed)
        population = int(r.population)
        out.append(VillageCoverage(
            village_id=r.village_id, village_name=r.village_name,
            township_id=r.township_id, township_name=r.township_name,
            campaign_id=r.campaign_id, campaign_name=r.campaign_name,
            planned=int(r.planned), played=played, confirmed=confirmed,
            exported=int(r.exported), missed=int(r.missed), failed=int(r.failed),
            last_reached=_as_date(r.last_reached), population=population,
            listeners=estimate_listeners(population, played + confirmed, share),
        ))
    return out


def _as_date(value: Any) -> dt.date | None:
    # MAX over a CASE comes back as text from SQLite on some paths; normalise.
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


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
        ))
    return out


# --- scripts --------------------------------------------------------------------


def _script_join() -> Any:
    return BroadcastScript.__table__.join(Broadcast.__table__, _B.id == _BS.broadcast_id)  # type: ignore[attr-defined]


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
    where = [_B.date >= start, _B.date <= end, _B.status.in_(REACHED)]
    if campaign_id is not None:
        where.append(_B.campaign_id == campaign_id)
    if township_id is not None:
        where.append(_B.township_id == township_id)
    agg = (
        sa.select(
            _B.township_id.label("township_id"), _BS.script_id.label("script_id"),
            sa.func.count().label("airings"),
            sa.func.count(sa.distinct(_B.village_id)).label("villages"),
            sa.func.max(_B.date).label("last_aired"),
        )
        .select_from(_script_join())
        .where(*where)
        .group_by(_B.township_id, _BS.script_id)
        .subquery("agg")
    )
    stmt = (
        sa.select(agg, sa.func.coalesce(_T.name, agg.c.township_id).label("township_name"))
        .select_from(agg.outerjoin(Township.__table__, _T.id == agg.c.township_id))  # type: ignore[attr-defined]
        .order_by(agg.c.township_id, agg.c.script_id)
    )
    return [
        ScriptAiring(r.township_id, r.township_name, r.script_id, int(r.airings), int(r.villages),
                     _as_date(r.last_aired))
        for r in _run(session, stmt)
    ]


def script_gaps(
    session: Session,
    *,
    campaign_id: str,
    script_ids: Sequence[str],
    target_village_ids: Iterable[str] = (),
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[ScriptGap]:
    """Scripts of the campaign never heard (played/confirmed) in a township.

    Townships considered: those of the target villages and those with any
    broadcast row of the campaign. `start`/`end` optionally bound "never".

    Raises CoverageError for an unknown campaign.
    """
    check_campaign(session, campaign_id)
    if start is not None and end is not None:
        check_period(start, end)
    wanted = sorted(set(script_ids))
    if not wanted:
        return []
    has_rows = sa.exists().where(_B.campaign_id == campaign_id, _B.village_id == _V.id)
    candidates = has_rows
    targets = sorted(set(target_village_ids))
    if targets:
        candidates = sa.or_(_V.id.in_(targets), has_rows)
    towns = sa.select(_V.township_id.label("township_id")).where(candidates).distinct().subquery("towns")
    # A short literal list (SQLite cannot name the columns of a VALUES list).
    scripts = sa.union_all(*(sa.select(sa.literal(sid, sa.String).label("script_id")) for sid in wanted))
    scripts_sq = scripts.subquery("scripts")
    aired = (
        sa.select(sa.literal(1)).select_from(_script_join())
        .where(_BS.script_id == scripts_sq.c.script_id, _B.township_id == towns.c.township_id,
               _B.campaign_id == campaign_id, _B.status.in_(REACHED))
    )
    if start is not None:
        aired = aired.where(_B.date >= start)
    if end is not None:
        aired = aired.where(_B.date <= end)
    stmt = (
        sa.select(towns.c.township_id, sa.func.coalesce(_T.name, towns.c.township_id).label("township_name"),
                  scripts_sq.c.script_id)
        .select_from(towns.join(scripts_sq, sa.true())
                     .outerjoin(Township.__table__, _T.id == towns.c.township_id))  # type: ignore[attr-defined]
        .where(~aired.exists())
        .order_by(towns.c.township_id, scripts_sq.c.script_id)
    )
    # NOT EXISTS stops at the first airing found, through ix_broadcast_script_script_id.
    return [ScriptGap(r.township_id, r.township_name, r.script_id) for r in _run(session, stmt)]


# --- markets --------------------------------------------------------------------


def market_coverage(
    session: Session, *, start: dt.date, end: dt.date, topic: str | None = None,
) -> list[MarketCoverage]:
    """Per market: handout days, leaflets, people and last date in the range.

    Every market of the registry appears (zeros if nobody went), plus any
    market in the handout log that has since left the registry.
    """
    check_period(start, end)
    where = [_H.date >= start, _H.date <= end]
    if topic is not None:
        known = [t.value for t in Topic]
        if topic not in known:
            raise CoverageError(f"unknown topic {topic!r}; known: {', '.join(known)}")
        # topics is comma-joined; match a whole item (LIKE wildcards escaped).
        where.append(("," + _H.topics + ",").contains(f",{topic},", autoescape=True))
    agg = (
        sa.select(
            _H.market_id.label("market_id"),
            sa.func.count(sa.distinct(_H.date)).label("days"),
            sa.func.coalesce(sa.func.sum(_H.leaflets), 0).label("leaflets"),
            sa.func.coalesce(sa.func.sum(_H.people), 0).label("people"),
            sa.func.max(_H.date).label("last_date"),
        )
        .where(*where).group_by(_H.market_id).subquery("agg")
    )
    keys = sa.union(sa.select(_M.id.label("market_id")), sa.select(agg.c.market_id)).subquery("keys")
    stmt = (
        sa.select(
            keys.c.market_id, sa.func.coalesce(_M.name, keys.c.market_id).label("market_name"),
            sa.func.coalesce(agg.c.days, 0).label("days"),
            sa.func.coalesce(agg.c.leaflets, 0).label("leaflets"),
            sa.func.coalesce(agg.c.people, 0).label("people"),
            agg.c.last_date,
        )
        .select_from(
            keys.outerjoin(agg, agg.c.market_id == keys.c.market_id)
            .outerjoin(Market.__table__, _M.id == keys.c.market_id)  # type: ignore[attr-defined]
        )
        .order_by(keys.c.market_id)
    )
    return [
        MarketCoverage(r.market_id, r.market_name, int(r.days), int(r.leaflets), int(r.people), _as_date(r.last_date))
        for r in _run(session, stmt)
    ]


def handout_timeline(session: Session, *, start: dt.date, end: dt.date) -> list[HandoutDay]:
    """Leaflets and people per market and day in the range, by date."""
    check_period(start, end)
    stmt = (
        sa.select(_H.date, _H.market_id, sa.func.sum(_H.leaflets).label("leaflets"),
                  sa.func.sum(_H.people).label("people"))
        .where(_H.date >= start, _H.date <= end)
        .group_by(_H.date, _H.market_id)
        .order_by(_H.date, _H.market_id)
    )
    return [HandoutDay(_as_date(r.date), r.market_id, int(r.leaflets), int(r.people))  # type: ignore[arg-type]
            for r in _run(session, stmt)]


# --- gaps -----------------------------------------------------------------------


def village_gaps(
    session: Session,
    *,
    campaign_id: str,
    today: dt.date,
    days: int,
    target_village_ids: Iterable[str] = (),
    township_id: str | None = None,
) -> list[VillageGap]:
    """Villages the campaign has not reached in the `days` days ending `today` (or ever).

    Candidates are the target villages and every village with a broadcast row
    of the campaign. Sorted by township, then village.

    Raises CoverageError for an unknown campaign or township or a bad day count.
    """
    _check_days(days)
    check_campaign(session, campaign_id)
    if township_id is not None:
        check_township(session, township_id)
    since = today - dt.timedelta(days=days - 1)
    hist = (
        sa.select(
            _B.village_id.label("village_id"),
            sa.func.max(sa.case((_B.status.in_(REACHED) & (_B.date <= today), _B.date))).label("last_reached"),
        )
        .where(_B.campaign_id == campaign_id)
        .group_by(_B.village_id)
        .cte("hist")
    )
    sources = [sa.select(hist.c.village_id.label("village_id"))]
    targets = sorted(set(target_village_ids))
    if targets:
        sources.append(sa.select(_V.id.label("village_id")).where(_V.id.in_(targets)))
    keys = sa.union(*sources).subquery("keys")
    township_col = sa.func.coalesce(_V.township_id, "")
    stmt = (
        sa.select(
            keys.c.village_id, sa.func.coalesce(_V.name, keys.c.village_id).label("village_name"),
            township_col.label("township_id"), sa.func.coalesce(_T.name, township_col).label("township_name"),
            hist.c.last_reached,
        )
        .select_from(
            keys.outerjoin(hist, hist.c.village_id == keys.c.village_id)
            .outerjoin(Village.__table__, _V.id == keys.c.village_id)  # type: ignore[attr-defined]
            .outerjoin(Township.__table__, _T.id == _V.township_id)  # type: ignore[attr-defined]
        )
        .where(sa.or_(hist.c.last_reached.is_(None), hist.c.last_reached < since))
        .order_by(township_col, keys.c.village_id)
    )
    if township_id is not None:
        stmt = stmt.where(_V.township_id == township_id)
    out = []
    for r in _run(session, stmt):
        last = _as_date(r.last_reached)
        out.append(VillageGap(r.village_id, r.village_name, r.township_id, r.township_name,
                              last, (today - last).days if last else None))
    return out


def unconfirmed_exports(
    session: Session,
    *,
    today: dt.date,
    grace_days: int = EXPORT_GRACE_DAYS,
    campaign_id: str | None = None,
    township_id: str | None = None,
) -> list[UnconfirmedExport]:
    """Offline villages with programs exported to USB but not confirmed after `grace_days`.

    A row counts when its status is still `exported` and its date is before
    ``today - grace_days``. Sorted by oldest first.
    """
    if grace_days < 0:
        raise CoverageError(f"grace of {grace_days} days is negative; give 0 or more days")
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    cutoff = today - dt.timedelta(days=grace_days)
    where = [_B.status == BroadcastStatus.EXPORTED.value, _B.date < cutoff]
    if campaign_id is not None:
        where.append(_B.campaign_id == campaign_id)
    if township_id is not None:
        where.append(_B.township_id == township_id)
    # One program (date+slot) carries several campaign rows; count programs, not rows.
    slot_key = sa.func.count(sa.distinct(sa.cast(_B.date, sa.String) + "/" + _B.slot))
    agg = (
        sa.select(
            _B.village_id.label("village_id"), sa.func.max(_B.township_id).label("township_id"),
            slot_key.label("slots"), sa.func.min(_B.date).label("first_date"),
            sa.func.max(_B.date).label("last_date"),
        )
        .where(*where).group_by(_B.village_id).subquery("agg")
    )
    stmt = (
        sa.select(agg, sa.func.coalesce(_V.name, agg.c.village_id).label("village_name"))
        .select_from(agg.outerjoin(Village.__table__, _V.id == agg.c.village_id))  # type: ignore[attr-defined]
        .order_by(agg.c.first_date, agg.c.village_id)
    )
    return [
        UnconfirmedExport(r.village_id, r.village_name, r.township_id, int(r.slots),
                          _as_date(r.first_date), _as_date(r.last_date))  # type: ignore[arg-type]
        for r in _run(session, stmt)
    ]


# --- heatmap --------------------------------------------------------------------


def village_day_matrix(
    session: Session,
    *,
    campaign_id: str,
    start: dt.date,
    end: dt.date,
    target_village_ids: Iterable[str] = (),
    township_id: str | None = None,
) -> Heatmap:
    """Reached and scheduled slots per village and day: the data of the coverage heatmap.

    Rows are the target villages plus villages with rows in the range, sorted by
    township then village; columns are every day from `start` to `end`.

    Raises CoverageError for an unknown campaign or a bad range.
    """
    check_period(start, end)
    check_campaign(session, campaign_id)
    where = [_B.campaign_id == campaign_id, _B.date >= start, _B.date <= end]
    if township_id is not None:
        where.append(_B.township_id == township_id)
    cells_stmt = (
        sa.select(
            _B.village_id, _B.date,
            sa.func.sum(sa.case((_B.status.in_(REACHED), 1), else_=0)).label("reached"),
            sa.func.sum(sa.case((_B.status.in_(PENDING), 1), else_=0)).label("pending"),
            sa.func.count().label("scheduled"),
        )
        .where(*where).group_by(_B.village_id, _B.date)
    )
    cells = _run(session, cells_stmt)
    dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    index = {d: i for i, d in enumerate(dates)}
    ids = {c.village_id for c in cells} | set(target_village_ids)
    names: dict[str, tuple[str, str, str]] = {}
    if ids:
        known = (
            sa.select(_V.id, _V.name, _V.township_id, sa.func.coalesce(_T.name, _V.township_id).label("township_name"))
            .select_from(Village.__table__.outerjoin(Township.__table__, _T.id == _V.township_id))  # type: ignore[attr-defined]
            .where(_V.id.in_(sorted(ids)))
        )
        names = {r.id: (r.name, r.township_id, r.township_name) for r in _run(session, known)}
    if township_id is not None:
        ids = {i for i in ids if i in names and names[i][1] == township_id}
    rows = {
        vid: HeatmapRow(vid, *names.get(vid, (vid, "", "")), [0] * len(dates), [0] * len(dates), [0] * len(dates))
        for vid in ids
    }
    for c in cells:  # one per village-day, already aggregated
        row = rows.get(c.village_id)
        if row is not None:
            j = index[_as_date(c.date)]  # type: ignore[index]
            row.reached[j] = int(c.reached)
            row.pending[j] = int(c.pending)
            row.scheduled[j] = int(c.scheduled)
    return Heatmap(dates, sorted(rows.values(), key=lambda r: (r.township_id, r.village_id)))

"""Reach per village and township, by evidence, and estimated listeners."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCASTS, CAMPAIGNS, SHOWN_EVIDENCE, TOWNSHIPS, VILLAGES, aired_text, aired_time, as_date, as_datetime,
    check_campaign, check_period, check_township, evidence_level, fetch_all, level_rows,
)
from outreach.coverage.readtime import ReadTime, split_due, unrecorded
from outreach.dates import json_time
from outreach.errors import CoverageError
from outreach.models import Broadcast, BroadcastStatus, Campaign, Township, Village
from outreach.records.broadcasts import shown_status_sql

LISTEN_SHARE = 0.30
"""Share of a village's residents assumed to hear one played slot (see estimate_listeners)."""


# --- result rows ----------------------------------------------------------------


class _ByEvidence:
    """Reach figures shared by village and township rows, from their counts by evidence."""

    reached_confirmed: int
    reached_heard: int
    reached_player: int
    last_aired: Mapping[str, dt.datetime | None]

    @property
    def reached(self) -> int:
        """Slots we know reached the village: confirmed by a person, heard by a microphone, or played in full."""
        return self.reached_confirmed + self.reached_heard + self.reached_player

    @property
    def last_aired_at(self) -> dt.datetime | None:
        """When a program of this campaign last went out here, with any evidence."""
        return _latest(self.last_aired)

    @property
    def last_aired_text(self) -> str:
        """上次成功播出 per evidence, for pages: `11-28 06:30（已确认）；12-01 19:00（已监听）`."""
        return aired_text(self.last_aired)


@dataclass(frozen=True)
class VillageCoverage(_ByEvidence):
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
    reached_confirmed: int = 0  # reached, by evidence (see common.evidence_level)
    reached_heard: int = 0
    reached_player: int = 0
    unproven: int = 0  # played rows without evidence: already in `played`, not reached
    unrecorded: int = 0  # planned programs past grace that left no row at all: already in `missed`
    last_aired: Mapping[str, dt.datetime | None] = field(default_factory=dict)  # evidence -> when it last went out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: dates as ISO strings, instants in Beijing time (dates.json_time)."""
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
            "reached_confirmed": self.reached_confirmed,
            "reached_heard": self.reached_heard,
            "reached_player": self.reached_player,
            "unproven": self.unproven,
            "unrecorded": self.unrecorded,
            "last_aired_at": json_time(self.last_aired_at),
            **{f"last_aired_{level}": json_time(self.last_aired.get(level)) for level in SHOWN_EVIDENCE},
        }


def _latest(times: Mapping[str, dt.datetime | None]) -> dt.datetime | None:
    found = [t for t in times.values() if t is not None]
    return max(found) if found else None


@dataclass(frozen=True)
class TownshipCoverage(_ByEvidence):
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
    reached_confirmed: int = 0
    reached_heard: int = 0
    reached_player: int = 0
    unproven: int = 0
    unrecorded: int = 0
    last_aired: Mapping[str, dt.datetime | None] = field(default_factory=dict)


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
    read: ReadTime | None = None,
) -> list[VillageCoverage]:
    """Slot counts per village and campaign between `start` and `end` (inclusive), reach by evidence.

    A village appears if it has any broadcast row for the campaign in the range
    or (with `campaign_id`) is one of `target_village_ids`, which then shows
    with zeros. Rows are sorted by township, village and campaign.

    With `read`, counts are as of `read.now`: a planned slot past its start plus grace is
    missed, and so is a program of `read.expected` that left no row at all (`unrecorded`).
    Without it they are the stored statuses.

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

    extra = unrecorded(session, read, start=start, end=end, campaign_id=campaign_id, township_id=township_id)
    if campaign_id is not None:
        targets = sorted(set(targets) | {p.village_id for p in extra})
    agg = _counts_per_village(start, end, campaign_id, township_id, read)
    stmt = _coverage_query(agg, targets, campaign_id, township_id)
    rows = [_village_row(r, share) for r in fetch_all(session, stmt)]
    return _with_unrecorded(session, rows, extra, read, share)


def _counts_per_village(start: dt.date, end: dt.date, campaign_id: str | None, township_id: str | None,
                        read: ReadTime | None) -> Any:
    """The CTE of slot counts per (campaign, village) by status and evidence, and when each level was last reached."""
    where = [BROADCASTS.date >= start, BROADCASTS.date <= end]
    if campaign_id is not None:
        where.append(BROADCASTS.campaign_id == campaign_id)
    if township_id is not None:
        where.append(BROADCASTS.village_id.in_(sa.select(VILLAGES.id).where(VILLAGES.township_id == township_id)))
    # Count per (campaign, village, status, evidence) first: only indexable columns, so an index in that
    # order answers it without reading rows. Read-time misses and air times are looked up beside it,
    # from the few groups that have them.
    per_status = (
        sa.select(BROADCASTS.campaign_id, BROADCASTS.village_id, BROADCASTS.status, BROADCASTS.evidence,
                  sa.func.count().label("n"), sa.func.max(BROADCASTS.date).label("last"))
        .where(*where)
        .group_by(BROADCASTS.campaign_id, BROADCASTS.village_id, BROADCASTS.status, BROADCASTS.evidence)
        .cte("per_status")
    )
    c = per_status.c
    level = evidence_level(c.status, c.evidence)

    def n_of(status: BroadcastStatus) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((c.status == status.value, c.n), else_=0))

    counts = (
        sa.select(
            c.campaign_id.label("campaign_id"), c.village_id.label("village_id"),
            *(n_of(status).label(status.value) for status in (
                BroadcastStatus.PLANNED, BroadcastStatus.PLAYED, BroadcastStatus.CONFIRMED, BroadcastStatus.EXPORTED,
                BroadcastStatus.MISSED, BroadcastStatus.FAILED, BroadcastStatus.INTERRUPTED)),
            *(sa.func.sum(sa.case((level == lv, c.n), else_=0)).label(f"reached_{lv}") for lv in SHOWN_EVIDENCE),
            sa.func.sum(sa.case((sa.and_(c.status == BroadcastStatus.PLAYED.value, level.is_(None)), c.n),
                                else_=0)).label("unproven"),
            sa.func.max(sa.case((level.is_not(None), c.last))).label("last_reached"),
            *(sa.func.max(sa.case((level == lv, c.last))).label(f"last_{lv}") for lv in SHOWN_EVIDENCE),
        )
        .group_by(c.campaign_id, c.village_id)
        .cte("counts")
    )
    return _with_lookups(counts, where, read)


def _with_lookups(counts: Any, where: list[Any], read: ReadTime | None) -> Any:
    """`counts` with read-time misses moved from planned to missed, and each level's last air time."""
    k = counts.c
    overdue = None
    if read is not None:
        # Only the planned rows of groups that have some: a seek per group, not a scan of the range.
        late = shown_status_sql(now=read.now, grace_s=read.grace_s) == BroadcastStatus.MISSED.value
        overdue = (
            sa.select(BROADCASTS.campaign_id, BROADCASTS.village_id, sa.func.count().label("n"))
            .select_from(counts.join(Broadcast.__table__, sa.and_(  # type: ignore[attr-defined]
                BROADCASTS.campaign_id == k.campaign_id, BROADCASTS.village_id == k.village_id)))
            .where(k.planned > 0, BROADCASTS.status == BroadcastStatus.PLANNED.value, late, *where)
            .group_by(BROADCASTS.campaign_id, BROADCASTS.village_id)
            .cte("overdue")
        )
    aired = _aired_at_last(counts)
    late_n = sa.func.coalesce(overdue.c.n, 0) if overdue is not None else sa.literal(0)
    # Failed counts every attempt that did not reach the village: a play cut short by a crash
    # (interrupted) is a failure too, and also shown apart.
    stmt = sa.select(
        k.campaign_id, k.village_id, (k.planned - late_n).label("planned"), k.played, k.confirmed, k.exported,
        (k.missed + late_n).label("missed"), (k.failed + k.interrupted).label("failed"), k.interrupted,
        *(k[f"reached_{lv}"] for lv in SHOWN_EVIDENCE), k.unproven, k.last_reached,
        *(aired.c[f"aired_{lv}"] for lv in SHOWN_EVIDENCE),
    )
    base = counts.outerjoin(aired, sa.and_(aired.c.campaign_id == k.campaign_id, aired.c.village_id == k.village_id))
    if overdue is not None:
        base = base.outerjoin(overdue, sa.and_(overdue.c.campaign_id == k.campaign_id,
                                               overdue.c.village_id == k.village_id))
    return stmt.select_from(base).cte("agg")


def _aired_at_last(counts: Any) -> Any:
    """Per (campaign, village): when each reach level last went out, read from the rows of its last day only."""
    k = counts.c
    parts = [
        sa.select(k.campaign_id, k.village_id, sa.literal(lv).label("level"), sa.func.max(aired_time()).label("at"))
        .select_from(counts.join(Broadcast.__table__, sa.and_(  # type: ignore[attr-defined]
            BROADCASTS.campaign_id == k.campaign_id, BROADCASTS.village_id == k.village_id,
            BROADCASTS.date == k[f"last_{lv}"], *level_rows(lv))))
        .group_by(k.campaign_id, k.village_id)
        for lv in SHOWN_EVIDENCE
    ]
    times = sa.union_all(*parts).subquery("times")
    return (
        sa.select(times.c.campaign_id, times.c.village_id,
                  *(sa.func.max(sa.case((times.c.level == lv, times.c.at))).label(f"aired_{lv}")
                    for lv in SHOWN_EVIDENCE))
        .group_by(times.c.campaign_id, times.c.village_id)
        .cte("aired")
    )


_COUNTS = ("planned", "played", "confirmed", "exported", "missed", "failed", "interrupted",
           *(f"reached_{level}" for level in SHOWN_EVIDENCE), "unproven")


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
    # the aggregate off the township column and inside ix_broadcast_coverage's prefix.
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
        *(sa.func.coalesce(agg.c[name], zero).label(name) for name in _COUNTS),
        agg.c.last_reached,
        *(agg.c[f"aired_{level}"] for level in SHOWN_EVIDENCE),
        sa.func.coalesce(VILLAGES.population, zero).label("population"),
    ).select_from(base)
    if township_id is not None:
        stmt = stmt.where(township_col == township_id)
    return stmt.order_by(township_col, key_col, campaign_col)


def _village_row(r: Any, share: float) -> VillageCoverage:
    """A row of _coverage_query as a VillageCoverage, with its estimated listeners."""
    counts = {name: int(getattr(r, name)) for name in _COUNTS}
    population = int(r.population)
    reached = sum(counts[f"reached_{level}"] for level in SHOWN_EVIDENCE)
    return VillageCoverage(
        village_id=r.village_id, village_name=r.village_name,
        township_id=r.township_id, township_name=r.township_name,
        campaign_id=r.campaign_id, campaign_name=r.campaign_name, **counts,
        last_reached=as_date(r.last_reached), population=population,
        listeners=estimate_listeners(population, reached, share),
        last_aired={level: as_datetime(getattr(r, f"aired_{level}")) for level in SHOWN_EVIDENCE},
    )


def _with_unrecorded(session: Session, rows: list[VillageCoverage], extra: list[Any], read: ReadTime | None,
                     share: float) -> list[VillageCoverage]:
    """`rows` with the programs that left no row added: overdue ones as missed (and unrecorded), the rest planned."""
    if not extra:
        return rows
    due, ahead = split_due(read, extra)
    missed = Counter((p.campaign_id, p.village_id) for p in due)
    planned = Counter((p.campaign_id, p.village_id) for p in ahead)
    by_key = {(r.campaign_id, r.village_id): r for r in rows}
    absent = sorted((set(missed) | set(planned)) - set(by_key))
    for key, row in zip(absent, _zero_rows(session, absent, share), strict=True):
        by_key[key] = row
    out = [dataclasses.replace(r, missed=r.missed + missed[k], unrecorded=missed[k], planned=r.planned + planned[k])
           for k, r in by_key.items()]
    if absent:
        out.sort(key=lambda r: (r.township_id, r.village_id, r.campaign_id))
    return out


def _zero_rows(session: Session, keys: list[tuple[str, str]], share: float) -> list[VillageCoverage]:
    """Rows of zeros, with names from the registry mirror, for (campaign, village) pairs that have no row."""
    names = {r.id: r for r in fetch_all(session, sa.select(
        VILLAGES.id, VILLAGES.name, VILLAGES.township_id, VILLAGES.population,
        sa.func.coalesce(TOWNSHIPS.name, VILLAGES.township_id).label("township_name"),
    ).select_from(Village.__table__.outerjoin(Township.__table__, TOWNSHIPS.id == VILLAGES.township_id))  # type: ignore[attr-defined]
        .where(VILLAGES.id.in_(sorted({v for _, v in keys}))))}
    campaigns = {r.id: r.name for r in fetch_all(session, sa.select(CAMPAIGNS.id, CAMPAIGNS.name).where(
        CAMPAIGNS.id.in_(sorted({c for c, _ in keys}))))}
    out = []
    for cid, vid in keys:
        v = names.get(vid)
        out.append(VillageCoverage(
            village_id=vid, village_name=v.name if v else vid, township_id=v.township_id if v else "",
            township_name=v.township_name if v else "", campaign_id=cid, campaign_name=campaigns.get(cid, cid),
            planned=0, played=0, confirmed=0, exported=0, missed=0, failed=0, last_reached=None,
            population=int(v.population) if v else 0, listeners=0,
            last_aired={level: None for level in SHOWN_EVIDENCE},
        ))
    return out


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

        def total(name: str, rows: list[VillageCoverage] = rows) -> int:
            return sum(getattr(v, name) for v in rows)

        aired = {level: max((t for v in rows if (t := v.last_aired.get(level))), default=None)
                 for level in SHOWN_EVIDENCE}
        out.append(TownshipCoverage(
            township_id=tid, township_name=rows[0].township_name, campaign_id=cid,
            villages_targeted=len(rows), villages_reached=sum(1 for v in rows if v.reached > 0),
            last_reached=max(dates) if dates else None, last_aired=aired,
            **{name: total(name) for name in ("played", "confirmed", "exported", "missed", "failed", "population",
                                              "listeners", "interrupted", "reached_confirmed", "reached_heard",
                                              "reached_player", "unproven", "unrecorded")},
        ))
    return out

"""The village x day matrix behind the coverage heatmap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCASTS, TOWNSHIPS, VILLAGES, as_date, check_campaign, check_period, fetch_all, is_reach,
)
from outreach.coverage.readtime import ReadTime, split_due, status_column, unrecorded
from outreach.models import BroadcastStatus, Township, Village

_NOT_AIRED = (BroadcastStatus.MISSED.value, BroadcastStatus.FAILED.value, BroadcastStatus.INTERRUPTED.value)


@dataclass(frozen=True)
class HeatmapRow:
    """One village's line in the village x day matrix."""

    village_id: str
    village_name: str
    township_id: str
    township_name: str
    reached: list[int]  # slots per day that reached the village with evidence (common.is_reach)
    pending: list[int]  # still to come, exported awaiting the village's word, or played without evidence
    scheduled: list[int]  # broadcast rows of the campaign per day, any status, and planned programs with no row
    missed: list[int] = field(default_factory=list)  # missed, failed or interrupted; past grace with no outcome


@dataclass(frozen=True)
class Heatmap:
    """Reached slots per village and day, for a heatmap."""

    dates: list[dt.date]
    rows: list[HeatmapRow] = field(default_factory=list)


def village_day_matrix(
    session: Session,
    *,
    campaign_id: str,
    start: dt.date,
    end: dt.date,
    target_village_ids: Iterable[str] = (),
    township_id: str | None = None,
    read: ReadTime | None = None,
) -> Heatmap:
    """Reached, pending, missed and scheduled slots per village and day: the data of the coverage heatmap.

    Rows are the target villages plus villages with rows (or, with `read`, planned programs) in
    the range, sorted by township then village; columns are every day from `start` to `end`.
    With `read`, a planned slot past grace counts as missed, and so does a program of
    `read.expected` that left no row: a planned day without air is never a day without a plan.

    Raises CoverageError for an unknown campaign or a bad range.
    """
    check_period(start, end)
    check_campaign(session, campaign_id)
    where = [BROADCASTS.campaign_id == campaign_id, BROADCASTS.date >= start, BROADCASTS.date <= end]
    if township_id is not None:
        where.append(BROADCASTS.township_id == township_id)
    reach, status = is_reach(), status_column(read)
    cells_stmt = (
        sa.select(
            BROADCASTS.village_id, BROADCASTS.date,
            sa.func.sum(sa.case((reach, 1), else_=0)).label("reached"),
            sa.func.sum(sa.case((status.in_(_NOT_AIRED), 1), else_=0)).label("missed"),
            sa.func.count().label("scheduled"),
        )
        .where(*where).group_by(BROADCASTS.village_id, BROADCASTS.date)
    )
    cells = fetch_all(session, cells_stmt)
    extra = unrecorded(session, read, start=start, end=end, campaign_id=campaign_id, township_id=township_id)
    dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    index = {d: i for i, d in enumerate(dates)}
    ids = {c.village_id for c in cells} | set(target_village_ids) | {p.village_id for p in extra}
    names = _names(session, ids)
    if township_id is not None:
        ids = {i for i in ids if i in names and names[i][1] == township_id}
    n = len(dates)
    rows = {vid: HeatmapRow(vid, *names.get(vid, (vid, "", "")), [0] * n, [0] * n, [0] * n, [0] * n) for vid in ids}
    for c in cells:  # one per village-day, already aggregated
        row = rows.get(c.village_id)
        if row is not None:
            j = index[as_date(c.date)]  # type: ignore[index]
            row.reached[j], row.missed[j], row.scheduled[j] = int(c.reached), int(c.missed), int(c.scheduled)
            row.pending[j] = row.scheduled[j] - row.reached[j] - row.missed[j]
    due, ahead = split_due(read, extra)
    for plans, cell in ((due, "missed"), (ahead, "pending")):
        for p in plans:
            if (row := rows.get(p.village_id)) is not None:
                getattr(row, cell)[index[p.day]] += 1
                row.scheduled[index[p.day]] += 1
    return Heatmap(dates, sorted(rows.values(), key=lambda r: (r.township_id, r.village_id)))


def _names(session: Session, ids: set[str]) -> dict[str, tuple[str, str, str]]:
    """Village id -> (name, township id, township name) from the registry mirror."""
    if not ids:
        return {}
    known = (
        sa.select(VILLAGES.id, VILLAGES.name, VILLAGES.township_id,
                  sa.func.coalesce(TOWNSHIPS.name, VILLAGES.township_id).label("township_name"))
        .select_from(Village.__table__.outerjoin(Township.__table__, TOWNSHIPS.id == VILLAGES.township_id))  # type: ignore[attr-defined]
        .where(VILLAGES.id.in_(sorted(ids)))
    )
    return {r.id: (r.name, r.township_id, r.township_name) for r in fetch_all(session, known)}

"""The village x day matrix behind the coverage heatmap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCASTS, PENDING, REACHED, TOWNSHIPS, VILLAGES, as_date, check_campaign, check_period, fetch_all,
)
from outreach.models import Township, Village


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
    where = [BROADCASTS.campaign_id == campaign_id, BROADCASTS.date >= start, BROADCASTS.date <= end]
    if township_id is not None:
        where.append(BROADCASTS.township_id == township_id)
    cells_stmt = (
        sa.select(
            BROADCASTS.village_id, BROADCASTS.date,
            sa.func.sum(sa.case((BROADCASTS.status.in_(REACHED), 1), else_=0)).label("reached"),
            sa.func.sum(sa.case((BROADCASTS.status.in_(PENDING), 1), else_=0)).label("pending"),
            sa.func.count().label("scheduled"),
        )
        .where(*where).group_by(BROADCASTS.village_id, BROADCASTS.date)
    )
    cells = fetch_all(session, cells_stmt)
    dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    index = {d: i for i, d in enumerate(dates)}
    ids = {c.village_id for c in cells} | set(target_village_ids)
    names: dict[str, tuple[str, str, str]] = {}
    if ids:
        known = (
            sa.select(VILLAGES.id, VILLAGES.name, VILLAGES.township_id, sa.func.coalesce(TOWNSHIPS.name, VILLAGES.township_id).label("township_name"))
            .select_from(Village.__table__.outerjoin(Township.__table__, TOWNSHIPS.id == VILLAGES.township_id))  # type: ignore[attr-defined]
            .where(VILLAGES.id.in_(sorted(ids)))
        )
        names = {r.id: (r.name, r.township_id, r.township_name) for r in fetch_all(session, known)}
    if township_id is not None:
        ids = {i for i in ids if i in names and names[i][1] == township_id}
    rows = {
        vid: HeatmapRow(vid, *names.get(vid, (vid, "", "")), [0] * len(dates), [0] * len(dates), [0] * len(dates))
        for vid in ids
    }
    for c in cells:  # one per village-day, already aggregated
        row = rows.get(c.village_id)
        if row is not None:
            j = index[as_date(c.date)]  # type: ignore[index]
            row.reached[j] = int(c.reached)
            row.pending[j] = int(c.pending)
            row.scheduled[j] = int(c.scheduled)
    return Heatmap(dates, sorted(rows.values(), key=lambda r: (r.township_id, r.village_id)))

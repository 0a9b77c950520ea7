"""Gaps: villages not reached lately, scripts never heard, USB exports left unconfirmed."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCAST_SCRIPTS, BROADCASTS, TOWNSHIPS, VILLAGES, as_date, check_campaign, check_days, check_period,
    check_township, fetch_all, is_reach, scripts_join,
)
from outreach.coverage.readtime import ReadTime, split_due, status_column, unrecorded
from outreach.errors import CoverageError
from outreach.models import BroadcastStatus, Township, Village

EXPORT_GRACE_DAYS = 2
"""Days an offline village has to send back its confirmation before an export counts as unconfirmed."""


# --- result rows ----------------------------------------------------------------


@dataclass(frozen=True)
class VillageGap:
    """A village that a campaign has not reached within the last N days (or ever)."""

    village_id: str
    village_name: str
    township_id: str
    township_name: str
    last_reached: dt.date | None
    days_silent: int | None  # None: never reached
    missed: int = 0  # slots missed in the window, read-time ones and programs that left no row included


@dataclass(frozen=True)
class ScriptGap:
    """A campaign script never heard in a township."""

    township_id: str
    township_name: str
    script_id: str
    script_title: str = ""  # the title people know it by; the id when the library does not have it

    @property
    def script_name(self) -> str:
        return self.script_title or self.script_id


@dataclass(frozen=True)
class UnconfirmedExport:
    """An offline village with exported programs whose confirmation is overdue."""

    village_id: str
    village_name: str
    township_id: str
    slots: int
    first_date: dt.date
    last_date: dt.date
    township_name: str = ""


ValidWindow = tuple[dt.date | None, dt.date | None]
"""A script's (valid_from, valid_until); None is an open end."""


def valid_on(valid: Mapping[str, ValidWindow] | None, script_id: str, day: dt.date) -> bool:
    """True when the script may air on `day` by its valid_from/valid_until (unknown scripts: always)."""
    low, high = (valid or {}).get(script_id, (None, None))
    return (low is None or low <= day) and (high is None or day <= high)


# --- villages and scripts ---------------------------------------------------------


def village_gaps(
    session: Session,
    *,
    campaign_id: str,
    today: dt.date,
    days: int,
    target_village_ids: Iterable[str] = (),
    township_id: str | None = None,
    read: ReadTime | None = None,
) -> list[VillageGap]:
    """Villages the campaign has not reached (with evidence) in the `days` days ending `today` (or ever).

    Candidates are the target villages and every village with a broadcast row
    of the campaign. Sorted by township, then village. Each gap counts the slots
    missed in the window; with `read`, a planned slot past grace and a program of
    `read.expected` that left no row count as missed (see readtime).

    Raises CoverageError for an unknown campaign or township or a bad day count.
    """
    check_days(days)
    check_campaign(session, campaign_id)
    if township_id is not None:
        check_township(session, township_id)
    since = today - dt.timedelta(days=days - 1)
    hist = _history(campaign_id, since, today, read)
    due, _ = split_due(read, unrecorded(session, read, start=since, end=today, campaign_id=campaign_id,
                                        township_id=township_id))
    silent = Counter(p.village_id for p in due)
    sources = [sa.select(hist.c.village_id.label("village_id"))]
    targets = sorted(set(target_village_ids) | set(silent))
    if targets:
        sources.append(sa.select(VILLAGES.id.label("village_id")).where(VILLAGES.id.in_(targets)))
    keys = sa.union(*sources).subquery("keys")
    township_col = sa.func.coalesce(VILLAGES.township_id, "")
    stmt = (
        sa.select(
            keys.c.village_id, sa.func.coalesce(VILLAGES.name, keys.c.village_id).label("village_name"),
            township_col.label("township_id"), sa.func.coalesce(TOWNSHIPS.name, township_col).label("township_name"),
            hist.c.last_reached, sa.func.coalesce(hist.c.missed, 0).label("missed"),
        )
        .select_from(
            keys.outerjoin(hist, hist.c.village_id == keys.c.village_id)
            .outerjoin(Village.__table__, VILLAGES.id == keys.c.village_id)  # type: ignore[attr-defined]
            .outerjoin(Township.__table__, TOWNSHIPS.id == VILLAGES.township_id)  # type: ignore[attr-defined]
        )
        .where(sa.or_(hist.c.last_reached.is_(None), hist.c.last_reached < since))
        .order_by(township_col, keys.c.village_id)
    )
    if township_id is not None:
        stmt = stmt.where(VILLAGES.township_id == township_id)
    out = []
    for r in fetch_all(session, stmt):
        last = as_date(r.last_reached)
        out.append(VillageGap(r.village_id, r.village_name, r.township_id, r.township_name,
                              last, (today - last).days if last else None, int(r.missed) + silent[r.village_id]))
    return out


def _history(campaign_id: str, since: dt.date, today: dt.date, read: ReadTime | None) -> Any:
    """The CTE of each village's last reach (up to `today`) and its slots missed from `since` to `today`."""
    in_window = (BROADCASTS.date >= since) & (BROADCASTS.date <= today)
    return (
        sa.select(
            BROADCASTS.village_id.label("village_id"),
            sa.func.max(sa.case((is_reach() & (BROADCASTS.date <= today), BROADCASTS.date))).label("last_reached"),
            sa.func.sum(sa.case((in_window & (status_column(read) == BroadcastStatus.MISSED.value), 1),
                                else_=0)).label("missed"),
        )
        .where(BROADCASTS.campaign_id == campaign_id)
        .group_by(BROADCASTS.village_id)
        .cte("hist")
    )


def script_gaps(
    session: Session,
    *,
    campaign_id: str,
    script_ids: Sequence[str],
    target_village_ids: Iterable[str] = (),
    start: dt.date | None = None,
    end: dt.date | None = None,
    valid: Mapping[str, ValidWindow] | None = None,
    titles: Mapping[str, str] | None = None,
) -> list[ScriptGap]:
    """Scripts of the campaign never heard (a reach with evidence, common.is_reach) in a township.

    A script counts as heard whatever campaign carried it: a program holds each script once, under
    the campaign that won it (an urgent one airing fraud-96110 takes it from the routine one).
    Townships considered: those of the target villages and those with any
    broadcast row of the campaign. `start`/`end` optionally bound "never".
    `valid` maps a script to its (valid_from, valid_until), either open: a
    script is only a gap on days it may air, so one whose window does not
    hold `end` (the day the gaps are counted for) is left out. `titles` (script id → title) names them.

    Raises CoverageError for an unknown campaign.
    """
    check_campaign(session, campaign_id)
    if start is not None and end is not None:
        check_period(start, end)
    wanted = sorted(sid for sid in set(script_ids) if end is None or valid_on(valid, sid, end))
    if not wanted:
        return []
    has_rows = sa.exists().where(BROADCASTS.campaign_id == campaign_id, BROADCASTS.village_id == VILLAGES.id)
    candidates = has_rows
    targets = sorted(set(target_village_ids))
    if targets:
        candidates = sa.or_(VILLAGES.id.in_(targets), has_rows)
    towns = sa.select(VILLAGES.township_id.label("township_id")).where(candidates).distinct().subquery("towns")
    # A short literal list (SQLite cannot name the columns of a VALUES list).
    scripts = sa.union_all(*(sa.select(sa.literal(sid, sa.String).label("script_id")) for sid in wanted))
    scripts_sq = scripts.subquery("scripts")
    aired = (
        sa.select(sa.literal(1)).select_from(scripts_join())
        .where(BROADCAST_SCRIPTS.script_id == scripts_sq.c.script_id, BROADCASTS.township_id == towns.c.township_id,
               is_reach())
    )
    if start is not None:
        aired = aired.where(BROADCASTS.date >= start)
    if end is not None:
        aired = aired.where(BROADCASTS.date <= end)
    stmt = (
        sa.select(towns.c.township_id, sa.func.coalesce(TOWNSHIPS.name, towns.c.township_id).label("township_name"),
                  scripts_sq.c.script_id)
        .select_from(towns.join(scripts_sq, sa.true())
                     .outerjoin(Township.__table__, TOWNSHIPS.id == towns.c.township_id))  # type: ignore[attr-defined]
        .where(~aired.exists())
        .order_by(towns.c.township_id, scripts_sq.c.script_id)
    )
    # NOT EXISTS stops at the first airing found, through ix_broadcast_script_script_id.
    return [ScriptGap(r.township_id, r.township_name, r.script_id, (titles or {}).get(r.script_id, ""))
            for r in fetch_all(session, stmt)]


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
        raise CoverageError(f"宽限天数 {grace_days} 是负数；请给 0 或更多天")
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    cutoff = today - dt.timedelta(days=grace_days)
    where = [BROADCASTS.status == BroadcastStatus.EXPORTED.value, BROADCASTS.date < cutoff]
    if campaign_id is not None:
        where.append(BROADCASTS.campaign_id == campaign_id)
    if township_id is not None:
        where.append(BROADCASTS.township_id == township_id)
    # One program (date+slot) carries several campaign rows; count programs, not rows.
    slot_key = sa.func.count(sa.distinct(sa.cast(BROADCASTS.date, sa.String) + "/" + BROADCASTS.slot))
    agg = (
        sa.select(
            BROADCASTS.village_id.label("village_id"), sa.func.max(BROADCASTS.township_id).label("township_id"),
            slot_key.label("slots"), sa.func.min(BROADCASTS.date).label("first_date"),
            sa.func.max(BROADCASTS.date).label("last_date"),
        )
        .where(*where).group_by(BROADCASTS.village_id).subquery("agg")
    )
    stmt = (
        sa.select(agg, sa.func.coalesce(VILLAGES.name, agg.c.village_id).label("village_name"),
                  sa.func.coalesce(TOWNSHIPS.name, agg.c.township_id).label("township_name"))
        .select_from(agg.outerjoin(Village.__table__, VILLAGES.id == agg.c.village_id)  # type: ignore[attr-defined]
                     .outerjoin(Township.__table__, TOWNSHIPS.id == agg.c.township_id))  # type: ignore[attr-defined]
        .order_by(agg.c.first_date, agg.c.village_id)
    )
    return [
        UnconfirmedExport(r.village_id, r.village_name, r.township_id, int(r.slots),
                          as_date(r.first_date), as_date(r.last_date), r.township_name)  # type: ignore[arg-type]
        for r in fetch_all(session, stmt)
    ]

"""Shared ground of the coverage queries: limits, status sets, input checks and SQL helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach import models
from outreach.config import TZ
from outreach.content.names import did_you_mean
from outreach.dates import check_range, parse_date
from outreach.labels import EVIDENCE
from outreach.errors import CoverageError, OutreachError
from outreach.models import (
    EVIDENCE_STRENGTH, Broadcast, BroadcastScript, BroadcastStatus, Campaign, Evidence, Handout, Market, Township,
    Village,
)

MAX_DAYS = 366
"""Longest date range a coverage query accepts."""

# models.REACHED as plain strings, for SQL `IN (...)` on the status column and on subqueries of it.
REACHED = tuple(status.value for status in models.REACHED)
PENDING = (BroadcastStatus.PLANNED.value, BroadcastStatus.EXPORTED.value)

REACH_EVIDENCE: tuple[str, ...] = tuple(
    e.value for e in EVIDENCE_STRENGTH[EVIDENCE_STRENGTH.index(Evidence.PLAYER):])
"""The evidence that makes a reached status a reach: the player ran, a microphone heard it, or a person said so.

`exported` is not among them: a stick that was written has not been played."""
SHOWN_EVIDENCE: tuple[str, ...] = tuple(reversed(REACH_EVIDENCE))
"""The reach levels as outputs list them, strongest first: confirmed, heard, player."""

# The columns of each table the queries read, named like the table: BROADCASTS.village_id.
BROADCASTS = Broadcast.__table__.c  # type: ignore[attr-defined]
BROADCAST_SCRIPTS = BroadcastScript.__table__.c  # type: ignore[attr-defined]
HANDOUTS = Handout.__table__.c  # type: ignore[attr-defined]
VILLAGES = Village.__table__.c  # type: ignore[attr-defined]
TOWNSHIPS = Township.__table__.c  # type: ignore[attr-defined]
MARKETS = Market.__table__.c  # type: ignore[attr-defined]
CAMPAIGNS = Campaign.__table__.c  # type: ignore[attr-defined]


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


def check_period(start: dt.date, end: dt.date, *, what: str = "日期范围") -> None:
    """Check start..end runs forwards and spans at most MAX_DAYS days.

    Raises CoverageError saying how to fix the range.
    """
    try:
        check_range(start, end, max_days=MAX_DAYS, what=what)
    except OutreachError as exc:
        raise CoverageError(str(exc)) from exc


def _listing(ids: list[str]) -> str:
    if not ids:
        return "（无）"
    shown = "、".join(ids[:30])
    return shown + ("、……" if len(ids) > 30 else "")


def _named(session: Session, table: Any, kind: str, key: str, source: str) -> str:
    """The name of row `key` of a registry mirror table; CoverageError with 您是不是要找 and the known ids if absent."""
    name = session.exec(sa.select(table.name).where(table.id == key)).first()  # type: ignore[call-overload]
    if name is None:
        names = dict(session.exec(sa.select(table.id, table.name).order_by(table.id)).all())  # type: ignore[call-overload]
        raise CoverageError(f"未知的{kind}编号 {key!r}；{did_you_mean(key, names)}已有：{_listing(list(names)[:31])}"
                            f"（{kind}编号来自 {source}）")
    return str(name[0])


def campaign_by_name(session: Session, text: str) -> str:
    """The id of the campaign whose id or name is `text` (as typed after --campaign); else `text` itself,
    which check_campaign then refuses with 您是不是要找."""
    wanted = text.strip()
    if session.exec(sa.select(CAMPAIGNS.id).where(CAMPAIGNS.id == wanted)).first() is not None:  # type: ignore[call-overload]
        return wanted
    named = session.exec(sa.select(CAMPAIGNS.id).where(CAMPAIGNS.name == wanted)).all()  # type: ignore[call-overload]
    return str(named[0][0]) if len(named) == 1 else wanted


def check_campaign(session: Session, campaign_id: str) -> str:
    """Return the campaign's name; raise CoverageError if the Campaign table lacks it."""
    return _named(session, CAMPAIGNS, "宣传活动", campaign_id, "schedules/campaigns.yaml")


def check_township(session: Session, township_id: str) -> str:
    """Return the township's name; raise CoverageError if the Township table lacks it."""
    return _named(session, TOWNSHIPS, "乡镇", township_id, "schedules/county.yaml")


def check_days(days: int) -> None:
    """Raise CoverageError unless `days` (a --days option) lies within 1..MAX_DAYS."""
    if not 1 <= days <= MAX_DAYS:
        raise CoverageError(f"--days：{days} 超出范围；请给 1 到 {MAX_DAYS} 之间的天数")


# --- SQL helpers ----------------------------------------------------------------


def fetch_all(session: Session, stmt: sa.Executable) -> Sequence[Any]:
    """Every row of `stmt`."""
    return session.exec(stmt).all()  # type: ignore[call-overload]


def scripts_join() -> Any:
    """BroadcastScript joined to its Broadcast row (which script aired in which program)."""
    return BroadcastScript.__table__.join(  # type: ignore[attr-defined]
        Broadcast.__table__, BROADCASTS.id == BROADCAST_SCRIPTS.broadcast_id)  # type: ignore[attr-defined]


def as_date(value: Any) -> dt.date | None:
    """A date column's value as a date (or None)."""
    # MAX over a CASE comes back as text from SQLite on some paths; normalise.
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def evidence_level(status: Any = None, evidence: Any = None) -> sa.ColumnElement[Any]:
    """A broadcast row's reach level (one of REACH_EVIDENCE), or NULL when the row is no reach.

    A confirmed row rests on a person's word whatever an older field says. A played row counts
    only with its evidence: the player ran its length, or a microphone heard it. A played row
    with none (a play logged before evidence existed, or a player that proved nothing) is not a
    reach; outputs count it apart as `unproven`. `status` and `evidence` default to the
    broadcast table's columns; pass a subquery's to classify its groups.
    """
    status = BROADCASTS.status if status is None else status
    evidence = BROADCASTS.evidence if evidence is None else evidence
    return sa.case(
        (status == BroadcastStatus.CONFIRMED.value, sa.literal(Evidence.CONFIRMED.value)),
        (sa.and_(status == BroadcastStatus.PLAYED.value, evidence.in_(REACH_EVIDENCE)), evidence),
        else_=sa.null(),
    )


def is_reach() -> sa.ColumnElement[bool]:
    """True for a broadcast row that is a reach: evidence_level() is not NULL, as a plain WHERE condition."""
    return sa.or_(BROADCASTS.status == BroadcastStatus.CONFIRMED.value,
                  sa.and_(BROADCASTS.status == BroadcastStatus.PLAYED.value, BROADCASTS.evidence.in_(REACH_EVIDENCE)))


def level_rows(level: str) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the rows at one reach level, written so that an index on status can seek them."""
    played = sa.and_(BROADCASTS.status == BroadcastStatus.PLAYED.value, BROADCASTS.evidence == level)
    if level == Evidence.CONFIRMED.value:
        return [sa.or_(BROADCASTS.status == BroadcastStatus.CONFIRMED.value, played)]
    return [played]


def aired_time() -> sa.ColumnElement[Any]:
    """When a row's program went out: aired_at; for rows logged before it existed, the play start
    (played_at), and for a confirmation without either, the slot start. Never confirmed_at, the typing time."""
    return sa.func.coalesce(BROADCASTS.aired_at, BROADCASTS.played_at, BROADCASTS.scheduled_at)


def as_datetime(value: Any) -> dt.datetime | None:
    """A timestamp aggregate (MAX over a CASE) as an aware UTC datetime (or None).

    MAX() loses the column's type, so SQLite hands back naive text and PostgreSQL an aware value.
    """
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def aired_text(last_aired: Mapping[str, dt.datetime | None]) -> str:
    """When a place was last reached, per evidence, strongest first: `11-28 06:30（已确认）；12-01 19:00（已监听）`."""
    return "；".join(f"{t.astimezone(TZ):%m-%d %H:%M}（{EVIDENCE[level]}）"
                    for level in SHOWN_EVIDENCE if (t := last_aired.get(level)) is not None)

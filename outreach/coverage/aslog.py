"""The as-run log as a list: one row per broadcast (a campaign's part of one village program), with names.

The same rows feed `outreach log` (table, CSV, JSON, XLSX) and the web's Excel download. Statuses are
as of a ReadTime: a slot past its start plus grace shows 漏播, and so does a program the plan held that
nothing logged (no row at all); those rows have no id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from outreach.coverage.common import (
    BROADCASTS, CAMPAIGNS, TOWNSHIPS, VILLAGES, as_date, as_datetime, check_campaign, check_period, check_township,
    fetch_all,
)
from outreach.coverage.readtime import ReadTime, split_due, unrecorded
from outreach.coverage.sheets import Table
from outreach.dates import json_time
from outreach.errors import CoverageError
from outreach.labels import EVIDENCE, SLOT, STATUS, label
from outreach.models import Broadcast, BroadcastStatus, Evidence, Village
from outreach.records.broadcasts import shown_status_sql

__all__ = ["LogRow", "LOG_HEADERS", "MAX_LOG_ROWS", "NO_RECORD", "broadcast_log", "log_table", "log_json"]

LOG_HEADERS = ("乡镇", "村", "日期", "时段", "状态", "证据", "稿件标题", "活动名称", "计划时间", "播出时间", "确认人",
               "说明", "记录编号", "乡镇编号", "村编号", "活动编号", "稿件编号")
MAX_LOG_ROWS = 100_000
"""Rows one log listing may hold: its XLSX takes about 15 s to write (a 300-village county's month is ~45,000)."""
NO_RECORD = "没有任何播出记录（当时调度器可能没有运行）"
NOT_LOGGED = "计划中，还没有写入播出记录"
# Evidence is shown for the statuses it speaks about; a 待播 or 漏播 row has none to show.
_WITH_EVIDENCE = {BroadcastStatus.PLAYED.value, BroadcastStatus.CONFIRMED.value, BroadcastStatus.EXPORTED.value}


@dataclass(frozen=True)
class LogRow:
    """One broadcast row as people read it: names beside ids, the status as of the read time."""

    id: int | None  # None: a planned program that left no row at all
    day: dt.date
    slot: str
    township_id: str
    township_name: str
    village_id: str
    village_name: str
    campaign_id: str
    campaign_name: str
    script_ids: tuple[str, ...]
    status: str  # models.BroadcastStatus value, as shown (read-time 漏播)
    evidence: str  # models.Evidence value
    scheduled_at: dt.datetime
    aired_at: dt.datetime | None
    confirmed_by: str | None = None
    note: str = ""

    @property
    def evidence_label(self) -> str:
        """证据 as shown: for aired, confirmed and exported rows only."""
        if self.status not in _WITH_EVIDENCE:
            return ""
        # A confirmation rests on a person's word and an export awaits one, whatever an older field says.
        fixed = {BroadcastStatus.CONFIRMED.value: Evidence.CONFIRMED.value,
                 BroadcastStatus.EXPORTED.value: Evidence.EXPORTED.value}
        return label(EVIDENCE, fixed.get(self.status, self.evidence))


def broadcast_log(session: Session, *, start: dt.date, end: dt.date, read: ReadTime | None = None,
                  campaign_id: str | None = None, township_id: str | None = None,
                  village_id: str | None = None) -> list[LogRow]:
    """Every broadcast row from `start` to `end` (inclusive), by date, township, village and slot time.

    With `read`, statuses are as of `read.now`, and the programs of `read.expected` that nothing logged
    are added (overdue: 漏播; still ahead: 待播). Raises CoverageError for an unknown campaign or
    township, or a range over coverage.MAX_DAYS.
    """
    check_period(start, end)
    if campaign_id is not None:
        check_campaign(session, campaign_id)
    if township_id is not None:
        check_township(session, township_id)
    status = shown_status_sql(now=read.now, grace_s=read.grace_s) if read is not None else BROADCASTS.status
    stmt = (sa.select(BROADCASTS.id, BROADCASTS.date, BROADCASTS.slot, BROADCASTS.village_id,
                      sa.func.coalesce(VILLAGES.township_id, BROADCASTS.township_id).label("township_id"),
                      BROADCASTS.campaign_id, BROADCASTS.script_ids, status.label("shown"), BROADCASTS.evidence,
                      BROADCASTS.scheduled_at, BROADCASTS.aired_at, BROADCASTS.confirmed_by, BROADCASTS.error,
                      BROADCASTS.note)
            .select_from(Broadcast.__table__.outerjoin(Village.__table__, VILLAGES.id == BROADCASTS.village_id))
            .where(BROADCASTS.date >= start, BROADCASTS.date <= end))
    if campaign_id is not None:
        stmt = stmt.where(BROADCASTS.campaign_id == campaign_id)
    if township_id is not None:
        stmt = stmt.where(sa.func.coalesce(VILLAGES.township_id, BROADCASTS.township_id) == township_id)
    if village_id is not None:
        stmt = stmt.where(BROADCASTS.village_id == village_id)
    found = session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0
    if found > MAX_LOG_ROWS:
        raise CoverageError(f"{start} 至 {end} 有 {found} 条播出记录，一次最多列出 {MAX_LOG_ROWS} 条；"
                            "请缩短日期范围，或只看一个活动、一个乡镇")
    names = _names(session)
    rows = [_row(r, names) for r in fetch_all(session, stmt)]
    extra = unrecorded(session, read, start=start, end=end, campaign_id=campaign_id, township_id=township_id)
    due, ahead = split_due(read, [p for p in extra if village_id is None or p.village_id == village_id])
    rows += [_planned(p, names, BroadcastStatus.MISSED, NO_RECORD) for p in due]
    rows += [_planned(p, names, BroadcastStatus.PLANNED, NOT_LOGGED) for p in ahead]
    return sorted(rows, key=lambda r: (r.day, r.township_id, r.village_id, r.scheduled_at, r.campaign_id))


def _names(session: Session) -> dict[str, dict[str, str]]:
    """Names of the registry mirror: townships, villages and campaigns by id."""
    return {kind: {r.id: r.name for r in fetch_all(session, sa.select(table.id, table.name))}
            for kind, table in (("township", TOWNSHIPS), ("village", VILLAGES), ("campaign", CAMPAIGNS))}


def _row(r: Any, names: Mapping[str, Mapping[str, str]]) -> LogRow:
    note = "；".join(text for text in (r.error, r.note) if text)
    return LogRow(
        id=r.id, day=as_date(r.date) or r.date, slot=r.slot, township_id=r.township_id,
        township_name=names["township"].get(r.township_id, r.township_id), village_id=r.village_id,
        village_name=names["village"].get(r.village_id, r.village_id), campaign_id=r.campaign_id,
        campaign_name=names["campaign"].get(r.campaign_id, r.campaign_id),
        script_ids=tuple(s for s in (r.script_ids or "").split(",") if s), status=str(r.shown),
        evidence=str(getattr(r.evidence, "value", r.evidence)), scheduled_at=as_datetime(r.scheduled_at),  # type: ignore[arg-type]
        aired_at=as_datetime(r.aired_at), confirmed_by=r.confirmed_by, note=note)


def _planned(p: Any, names: Mapping[str, Mapping[str, str]], status: BroadcastStatus, note: str) -> LogRow:
    return LogRow(
        id=None, day=p.day, slot=p.slot, township_id=p.township_id,
        township_name=names["township"].get(p.township_id, p.township_id), village_id=p.village_id,
        village_name=names["village"].get(p.village_id, p.village_id), campaign_id=p.campaign_id,
        campaign_name=names["campaign"].get(p.campaign_id, p.campaign_id), script_ids=tuple(p.script_ids),
        status=status.value, evidence=Evidence.NONE.value, scheduled_at=p.scheduled_at, aired_at=None, note=note)


def _titles(ids: Sequence[str], titles: Mapping[str, str]) -> str:
    return "；".join(titles.get(sid, sid) for sid in ids)


def log_table(rows: Sequence[LogRow], titles: Mapping[str, str]) -> Table:
    """The log for people (CSV, XLSX): names and titles first, ids in the last columns."""
    return Table("播出记录", LOG_HEADERS, [
        (r.township_name, r.village_name, r.day, label(SLOT, r.slot), label(STATUS, r.status), r.evidence_label,
         _titles(r.script_ids, titles), r.campaign_name, r.scheduled_at, r.aired_at, r.confirmed_by or "", r.note,
         r.id, r.township_id, r.village_id, r.campaign_id, "、".join(r.script_ids))
        for r in rows
    ])


def log_json(rows: Sequence[LogRow], titles: Mapping[str, str]) -> list[dict[str, Any]]:
    """The log for machines: ids and codes, with names and titles beside them; instants in Beijing time."""
    return [{
        "id": r.id, "date": r.day.isoformat(), "slot": r.slot, "township_id": r.township_id,
        "township_name": r.township_name, "village_id": r.village_id, "village_name": r.village_name,
        "campaign_id": r.campaign_id, "campaign_name": r.campaign_name, "script_ids": list(r.script_ids),
        "script_titles": [titles.get(sid, sid) for sid in r.script_ids], "status": r.status,
        "evidence": r.evidence, "scheduled_at": json_time(r.scheduled_at), "aired_at": json_time(r.aired_at),
        "confirmed_by": r.confirmed_by, "note": r.note,
    } for r in rows]

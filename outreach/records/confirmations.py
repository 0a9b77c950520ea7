"""Village committee confirmations that a USB-fed (or live) program really played."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from outreach.config import TIMEZONE
from outreach.dates import date_note, nearest_date
from outreach.errors import RecordError
from outreach.labels import SLOT, STATUS, label
from outreach.models import STATUS_PROGRESS, Broadcast, BroadcastStatus, ImportKind, Village
from outreach.planning.registry import SLOT_NAMES
from outreach.records.broadcasts import mark_program, program_rows, require_aware
from outreach.records.csvread import ImportReport, run_import
from outreach.records.limits import MIN_RECORD_DATE, check_name, check_note

__all__ = ["CONFIRMATION_COLUMNS", "SLOT_ALIASES", "NO_REGISTRY", "import_confirmations", "confirm_program",
           "parse_day", "row_day"]

CONFIRMATION_COLUMNS = ("village_id", "date", "slot", "confirmed_by")
SLOT_ALIASES = {"早": "morning", "早上": "morning", "上午": "morning", "早间": "morning",
                "晚": "evening", "晚上": "evening", "傍晚": "evening", "晚间": "evening"}
NO_REGISTRY = "请在工作区文件夹里运行命令（或用 -w DIR 指定工作区），以便读入其中的 schedules/"
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_MONTH_DAY = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*日?$")


def parse_day(text: str, *, today: dt.date | None = None) -> dt.date:
    """YYYY-MM-DD, also with / or . or 年月日 and without leading zeros (as Excel writes dates);
    with `today` (the county's date), also 12月1日: the such day nearest to `today`."""
    m = _DATE.match(text.strip())
    with contextlib.suppress(ValueError):
        if m is not None:
            day = dt.date(*(int(g) for g in m.groups()))
        elif today is not None and (md := _MONTH_DAY.match(text.strip())) is not None:
            day = nearest_date(int(md[1]), int(md[2]), today)
        else:
            day = None
        if day is not None and day >= MIN_RECORD_DATE:
            return day
    raise RecordError(f"无法识别日期 '{text}'；请写成 2024-05-03（或 2024/5/3、5月3日）")


def row_day(row: dict[str, str], report: ImportReport, line: int, now: dt.datetime) -> dt.date:
    """A CSV row's date; a row written without its year gets a warning saying which date was taken."""
    raw = row.get("date", "").strip()
    day = parse_day(raw, today=now.astimezone(ZoneInfo(TIMEZONE)).date())
    if _MONTH_DAY.match(raw):
        report.warnings.append((line, date_note(raw, day)))
    return day


def confirm_program(session: Session, *, village_id: str, day: dt.date, slot: str, confirmed_by: str,
                    entered_by: str | None, now: dt.datetime, note: str | None = None) -> bool:
    """Confirm one village program; False if it was already confirmed.

    `confirmed_by` is the village person who says it played; `entered_by` the
    staff member recording it. Raises RecordError if the program does not
    exist, has not started yet at `now`, or is not exported or played.
    """
    require_aware("now", now)
    confirmed_by = check_name(confirmed_by, "confirmed_by")
    entered = check_name(entered_by, "entered_by", required=False) if entered_by is not None else None
    note = check_note(note or "") or None
    where = program_rows(day, slot, village_id)
    slot_zh = label(SLOT, slot)
    found = session.execute(sa.select(Broadcast.status, Broadcast.scheduled_at).where(*where)).all()
    if not found:
        raise RecordError(f"村 '{village_id}' 在 {day} {slot_zh}时段没有安排播出；请检查日期和时段")
    starts = min(at for _, at in found)
    if starts > now:
        local = starts.astimezone(ZoneInfo(TIMEZONE))
        raise RecordError(
            f"村 '{village_id}' {day} 的{slot_zh}节目 {local:%Y-%m-%d %H:%M}（北京时间）才开始，还没有播出；"
            "请在播出之后再录入确认记录"
        )
    if mark_program(session, day=day, slot=slot, village_id=village_id, status=BroadcastStatus.CONFIRMED, at=now,
                    confirmed_by=confirmed_by, entered_by=entered or None, note=note):
        return True
    statuses = {status for status, _ in found}
    if statuses == {BroadcastStatus.CONFIRMED}:
        return False
    status = max(statuses - {BroadcastStatus.CONFIRMED}, key=STATUS_PROGRESS.index)
    raise RecordError(
        f"村 '{village_id}' {day} 的{slot_zh}节目状态为“{label(STATUS, status)}”，"
        "既没有导出也没有播出，不能确认"
    )


def import_confirmations(session: Session, csv_path: Path, *, now: dt.datetime,
                         entered_by: str | None = None) -> ImportReport:
    """Mark exported or played programs as confirmed from a village committee CSV.

    Columns: village_id,date,slot,confirmed_by[,note]; UTF-8 with or without
    a BOM. Good rows are kept and bad rows reported by line number; rows whose
    programs are already confirmed are skipped, so the same file (fixed or
    not) can be imported again. `entered_by` is the staff member importing.

    Raises RecordError if the file cannot be read, is not UTF-8, lacks a
    column, or no villages are loaded.
    """
    require_aware("now", now)
    path = Path(csv_path)
    if entered_by is not None:
        entered_by = check_name(entered_by, "--by")

    def prepare():  # type: ignore[no-untyped-def]
        villages = set(session.scalars(sa.select(Village.id)))
        if not villages:
            raise RecordError(f"{path}：数据库里还没有村；{NO_REGISTRY}")

        def handle(row: dict[str, str], report: ImportReport, line: int) -> bool:
            village_id = row.get("village_id", "")
            raw_slot = row.get("slot", "")
            slot = SLOT_ALIASES.get(raw_slot, raw_slot.lower())
            if village_id not in villages:
                raise RecordError(f"未知的村编号 '{village_id}'；请使用县名录里的村编号")
            day = row_day(row, report, line, now)
            if slot not in SLOT_NAMES:
                raise RecordError(f"未知的时段 '{raw_slot}'；请写 {' 或 '.join(SLOT_NAMES)}（也可写 早上、晚上）")
            if not row.get("confirmed_by", "").strip():
                raise RecordError("confirmed_by 是空的；请写上村委会里确认播出的人")
            return confirm_program(session, village_id=village_id, day=day, slot=slot,
                                   confirmed_by=row["confirmed_by"], entered_by=entered_by, now=now,
                                   note=row.get("note"))
        return handle

    return run_import(session, path, CONFIRMATION_COLUMNS, ImportKind.CONFIRMATIONS, now, prepare)

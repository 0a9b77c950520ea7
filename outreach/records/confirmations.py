"""Village committee confirmations that a USB-fed (or live) program really played.

A confirmation credits only what was carried: the campaign rows of the program
that were exported (or played), never rows planned after the export. It records
who said so (`confirmed_by`), who typed it in (`entered_by`: a staff member, or
扫码 for the QR page), when it was typed in (`confirmed_at`) and when the sound
went out (`aired_at`: the slot start of an exported program, the play start of
a played one), with evidence `confirmed`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from outreach.config import TIMEZONE, TZ
from outreach.dates import read_date
from outreach.errors import OutreachError, RecordError, RegistryError
from outreach.labels import SLOT, STATUS, label
from outreach.models import REACHED, STATUS_PROGRESS, Broadcast, BroadcastStatus, Evidence, ImportKind, Village
from outreach.planning.registry import SLOT_NAMES, resolve_village as registry_village
from outreach.records.broadcasts import TRANSITIONS, program_rows, require_aware
from outreach.records.csvread import ImportReport, Layout, Pasted, run_import
from outreach.records.limits import MIN_RECORD_DATE, check_name, check_note

__all__ = ["CONFIRMATION_COLUMNS", "CONFIRMATION_LAYOUT", "SLOT_ALIASES", "NO_REGISTRY", "PLACEHOLDER_NAME",
           "import_confirmations", "confirm_program", "carried_notes", "parse_day", "row_day", "resolve_village",
           "AIR_TIME", "last_reached"]

CONFIRMATION_COLUMNS = ("village_id", "date", "slot", "confirmed_by")
CONFIRMATION_LAYOUT = Layout(
    required=CONFIRMATION_COLUMNS,
    # The order of the lines 播放说明.txt asks for: dazhuang-07,2026-12-01,早间,姓名
    positional=(*CONFIRMATION_COLUMNS, "note"),
    aliases=MappingProxyType({"村": "village_id", "村编号": "village_id", "村名": "village_id", "日期": "date",
                              "时段": "slot", "姓名": "confirmed_by", "确认人": "confirmed_by", "备注": "note"}),
)
SLOT_ALIASES = {"早": "morning", "早上": "morning", "上午": "morning", "早间": "morning",
                "晚": "evening", "晚上": "evening", "傍晚": "evening", "晚间": "evening"}
NO_REGISTRY = "请在工作区文件夹里运行命令（或用 -w DIR 指定工作区），以便读入其中的 schedules/"
PLACEHOLDER_NAME = "姓名"
"""What 播放说明.txt writes where the village person's name goes."""
_YEAR = re.compile(r"^\s*\d{4}")
AIR_TIME = sa.func.coalesce(Broadcast.aired_at, Broadcast.played_at, Broadcast.scheduled_at)
"""When a reached row's sound went out: aired_at; for rows from before it was kept, the play or slot start."""
_SOURCES = tuple(src for src, targets in TRANSITIONS.items() if BroadcastStatus.CONFIRMED in targets)


def parse_day(text: str, *, today: dt.date | None = None) -> dt.date:
    """A date as the CLI options take it (outreach.dates.read_date): 2024-05-03, 2024/5/3, 2024年5月3日;
    with `today` (the county's date), also 5月3日: the such day nearest to `today`."""
    cleaned = text.strip()
    if today is not None or _YEAR.match(cleaned):
        try:
            day, _ = read_date(cleaned, "日期", today=today or MIN_RECORD_DATE)
        except OutreachError:
            day = None
        if day is not None and day >= MIN_RECORD_DATE:
            return day
    raise RecordError(f"无法识别日期 '{text}'；请写成 2024-05-03（或 2024/5/3、5月3日）")


def row_day(row: dict[str, str], report: ImportReport, line: int, now: dt.datetime) -> dt.date:
    """A CSV row's date; a row written without its year gets a warning saying which date was taken."""
    raw = row.get("date", "").strip()
    day = parse_day(raw, today=now.astimezone(ZoneInfo(TIMEZONE)).date())
    if not _YEAR.match(raw):
        report.warnings.append((line, f"日期 {raw} → {day.isoformat()}"))
    return day


@dataclass(frozen=True)
class _Villages:
    """What planning.registry.resolve_village reads of a registry: villages by id, each with a name."""

    villages: Mapping[str, Any]


def resolve_village(text: str, villages: Mapping[str, Any]) -> str:
    """The village id for an id or a name (西岗村, also 西岗), as the CLI's --village takes it.

    `villages` maps ids to objects with a `name` (registry villages, or the database's Village rows).
    Raises RecordError with the CLI's message (near misses as 您是不是要找).
    """
    try:
        return registry_village(_Villages(villages), text)  # type: ignore[arg-type]
    except RegistryError as exc:
        wanted = unicodedata.normalize("NFKC", text).strip()
        named = [i for i, v in villages.items() if wanted and v.name == f"{wanted}村"]
        if len(named) == 1:
            return named[0]
        raise RecordError(str(exc)) from None


def slot_of(text: str) -> str:
    """The slot name for morning/evening or 早间/晚上 and the like; RecordError naming the forms."""
    cleaned = text.strip()
    slot = SLOT_ALIASES.get(cleaned, cleaned.lower())
    if slot not in SLOT_NAMES:
        raise RecordError(f"未知的时段 '{text}'；请写 {' 或 '.join(SLOT_NAMES)}（也可写 早上、晚上）")
    return slot


def carried_notes(session: Session, *, village_id: str, day: dt.date, slot: str) -> list[str]:
    """What a confirmation of this program will not credit, or credits as exported before a change: for warnings."""
    found = session.execute(sa.select(Broadcast.campaign_id, Broadcast.status, Broadcast.stale_reason).where(
        *program_rows(day, slot, village_id))).all()
    notes = []
    carried = [r for r in found if r.status in _SOURCES]
    left = sorted(r.campaign_id for r in found if r.status not in _SOURCES and r.status != BroadcastStatus.CONFIRMED)
    if carried and left:
        notes.append(f"活动 {'、'.join(left)} 是导出之后才排进这个节目的，U盘上没有，不算已播")
    stale = sorted({r.stale_reason for r in carried if r.stale_reason})
    if stale:
        notes.append(f"这个节目导出后安排有变（{'；'.join(stale)}），记下的是U盘上导出的那一版")
    return notes


def last_reached(session: Session, *, until: dt.date) -> dict[str, tuple[dt.datetime, dt.datetime | None]]:
    """Per village: when its newest reached program (up to `until`) aired, and when that was entered if it
    was a confirmation: 上次成功播出 is the air time, never the typing time.

    One aggregate over the reached rows, then the entry times of the few newest programs that were
    confirmed, found by their days (an air time falls on its program's day, give or take one).
    """
    confirmed = Broadcast.status == BroadcastStatus.CONFIRMED
    newest = session.execute(
        sa.select(Broadcast.village_id, sa.func.max(AIR_TIME), sa.func.max(sa.case((confirmed, AIR_TIME))))
        .where(Broadcast.status.in_(REACHED), Broadcast.date <= until).group_by(Broadcast.village_id)).all()
    out: dict[str, tuple[dt.datetime, dt.datetime | None]] = {vid: (air, None) for vid, air, _ in newest}
    wanted = {vid: air for vid, air, air_confirmed in newest if air_confirmed is not None and air_confirmed == air}
    days = {air.astimezone(TZ).date() + dt.timedelta(days=d) for air in wanted.values() for d in (-1, 0, 1)}
    for i in range(0, len(wanted), 500):
        for vid, air, entered in session.execute(
                sa.select(Broadcast.village_id, AIR_TIME, sa.func.max(Broadcast.confirmed_at))
                .where(confirmed, Broadcast.village_id.in_(sorted(wanted)[i:i + 500]), Broadcast.date.in_(days))
                .group_by(Broadcast.village_id, AIR_TIME)):
            if air == wanted[vid]:
                out[vid] = (air, entered)
    return out


def _mark_confirmed(session: Session, where: list[Any], sources: Sequence[BroadcastStatus], *, confirmed_by: str,
                    entered_by: str | None, note: str | None, now: dt.datetime) -> int:
    """Move the program's rows in `sources` to confirmed.

    aired_at is kept when set, else it becomes the slot start (exported) or the play start (played).
    """
    aired = sa.func.coalesce(Broadcast.aired_at, sa.case(
        (Broadcast.status == BroadcastStatus.EXPORTED, Broadcast.scheduled_at), else_=Broadcast.played_at))
    values: dict[str, Any] = {"status": BroadcastStatus.CONFIRMED, "updated_at": now, "confirmed_at": now,
                              "confirmed_by": confirmed_by, "evidence": Evidence.CONFIRMED, "aired_at": aired}
    if entered_by:
        values["entered_by"] = entered_by
    if note:
        values["note"] = note
    stmt = sa.update(Broadcast).where(*where, Broadcast.status.in_(list(sources))).values(values)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def confirm_program(session: Session, *, village_id: str, day: dt.date, slot: str, confirmed_by: str,
                    entered_by: str | None, now: dt.datetime, note: str | None = None,
                    sources: Sequence[BroadcastStatus] = _SOURCES) -> bool:
    """Confirm one village program; False if it was already confirmed.

    `confirmed_by` is the village person who says it played; `entered_by` the
    staff member recording it (扫码 for the QR page); `now` the entry time.
    Only rows in `sources` (exported or played; the QR page passes exported
    only) are credited. Raises RecordError if the program does not exist, has
    not started yet at `now`, or has no row that was exported or played.
    """
    require_aware("now", now)
    confirmed_by = check_name(confirmed_by, "confirmed_by")
    if confirmed_by == PLACEHOLDER_NAME:
        raise RecordError("confirmed_by 还是“姓名”两个字；请换成村里确认播出的人的名字")
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
    if _mark_confirmed(session, where, sources, confirmed_by=confirmed_by, entered_by=entered or None, note=note,
                       now=now):
        return True
    statuses = {status for status, _ in found}
    if statuses == {BroadcastStatus.CONFIRMED}:
        return False
    status = max(statuses - {BroadcastStatus.CONFIRMED}, key=STATUS_PROGRESS.index)
    raise RecordError(
        f"村 '{village_id}' {day} 的{slot_zh}节目状态为“{label(STATUS, status)}”，"
        "既没有导出也没有播出，不能确认"
    )


def import_confirmations(session: Session, source: Path | Pasted, *, now: dt.datetime,
                         entered_by: str | None = None) -> ImportReport:
    """Mark exported or played programs as confirmed from a village committee CSV, or pasted lines.

    Columns: village_id,date,slot,confirmed_by[,note] under a header row, or
    the lines of 播放说明.txt as they are (dazhuang-07,2026-12-01,早间,王支书),
    without one. A village may be given by name (西岗村) and a date as the CLI
    takes it (12月1日, 2026年12月1日). UTF-8 with or without a BOM. Good rows
    are kept and bad rows reported by line number; rows whose programs are
    already confirmed are skipped, so the same file (fixed or not) can be
    imported again. `entered_by` is the staff member importing.

    Raises RecordError if the file cannot be read, is not UTF-8, lacks a
    column, or no villages are loaded.
    """
    require_aware("now", now)
    where = source.name if isinstance(source, Pasted) else Path(source)
    if entered_by is not None:
        entered_by = check_name(entered_by, "--by")

    def prepare():  # type: ignore[no-untyped-def]
        names = {v.id: v for v in session.scalars(sa.select(Village))}
        if not names:
            raise RecordError(f"{where}：数据库里还没有村；{NO_REGISTRY}")

        def handle(row: dict[str, str], report: ImportReport, line: int) -> bool:
            village_id = resolve_village(row.get("village_id", ""), names)
            day = row_day(row, report, line, now)
            slot = slot_of(row.get("slot", ""))
            if not row.get("confirmed_by", "").strip():
                raise RecordError("confirmed_by 是空的；请写上村委会里确认播出的人")
            notes = carried_notes(session, village_id=village_id, day=day, slot=slot)
            done = confirm_program(session, village_id=village_id, day=day, slot=slot,
                                   confirmed_by=row["confirmed_by"], entered_by=entered_by, now=now,
                                   note=row.get("note"))
            if done:
                report.warnings += [(line, note) for note in notes]
            return done
        return handle

    return run_import(session, source if isinstance(source, Pasted) else Path(source), CONFIRMATION_LAYOUT,
                      ImportKind.CONFIRMATIONS, now, prepare)

"""The as-run log and field records: planned broadcasts, their outcomes, village confirmations, market handouts."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from outreach.errors import RecordError
from outreach.models import (
    Broadcast, BroadcastScript, BroadcastStatus, Handout, ImportKind, ImportRecord, Market, Topic, Village,
)
from outreach.registry import SLOT_NAMES

S = BroadcastStatus
TRANSITIONS: dict[BroadcastStatus, frozenset[BroadcastStatus]] = {
    S.PLANNED: frozenset({S.PLAYED, S.EXPORTED, S.MISSED, S.FAILED}),
    S.FAILED: frozenset({S.PLAYED, S.MISSED}),
    S.EXPORTED: frozenset({S.CONFIRMED}),
    S.PLAYED: frozenset({S.CONFIRMED}),
}
"""Allowed status changes. Played is never re-marked played: that is what stops a double play after a restart."""

# program_status reports the furthest-along status of a program's rows, so a
# program that aired once never looks unplayed because a campaign was added later.
_PROGRESS = [S.PLANNED, S.FAILED, S.MISSED, S.EXPORTED, S.PLAYED, S.CONFIRMED]
_STAMP = {S.PLAYED: "played_at", S.EXPORTED: "exported_at", S.CONFIRMED: "confirmed_at"}
_BATCH = 5000
CONFIRMATION_COLUMNS = ("village_id", "date", "slot", "confirmed_by")
HANDOUT_COLUMNS = ("market_id", "date", "leaflets", "people", "topics", "staff")
TOPIC_ALIASES = {
    "交通": Topic.TRAFFIC, "交通安全": Topic.TRAFFIC,
    "反诈": Topic.ANTI_FRAUD, "反诈骗": Topic.ANTI_FRAUD, "防诈": Topic.ANTI_FRAUD, "防诈骗": Topic.ANTI_FRAUD,
    "anti-fraud": Topic.ANTI_FRAUD,
}
SLOT_ALIASES = {"早": "morning", "早上": "morning", "上午": "morning", "早间": "morning",
                "晚": "evening", "晚上": "evening", "傍晚": "evening", "晚间": "evening"}
_NO_REGISTRY = "run `outreach plan` (or `outreach demo`) first to load the registry"


@dataclass(frozen=True)
class BroadcastPlan:
    """One campaign's part of one village program, as the planner wants it aired."""

    day: dt.date
    slot: str
    village_id: str
    township_id: str
    campaign_id: str
    script_ids: tuple[str, ...]
    scheduled_at: dt.datetime


@dataclass
class ImportReport:
    """What a CSV import did: rows kept, rows already there, bad rows by line number."""

    path: Path
    rows_ok: int = 0
    rows_skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    duplicate_file: bool = False
    first_imported_at: dt.datetime | None = None


def _aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


# --- broadcasts ------------------------------------------------------------------


def record_planned(session: Session, plans: Iterable[BroadcastPlan], *, now: dt.datetime) -> int:
    """Insert missing plans as 'planned' and refresh rows that are still 'planned'.

    Rows that already played, were exported, confirmed, missed or failed are
    never touched. A later plan for the same (day, slot, village, campaign)
    wins. Returns the number of rows inserted or changed (0 on a re-run).
    """
    _aware("now", now)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in plans:
        _aware(f"scheduled_at of {p.village_id} {p.day} {p.slot}", p.scheduled_at)
        rows[(p.day, p.slot, p.village_id, p.campaign_id)] = {
            "date": p.day, "slot": p.slot, "village_id": p.village_id, "township_id": p.township_id,
            "campaign_id": p.campaign_id, "script_ids": ",".join(p.script_ids), "scheduled_at": p.scheduled_at,
        }
    upsert = _upsert_postgres if session.get_bind().dialect.name == "postgresql" else _upsert_sqlite
    todo = list(rows.values())
    return sum(upsert(session, todo[i:i + _BATCH], now) for i in range(0, len(todo), _BATCH))


_PLAN_COLUMNS = {"date": "date", "slot": "varchar", "village_id": "varchar", "township_id": "varchar",
                 "campaign_id": "varchar", "script_ids": "varchar", "scheduled_at": "timestamptz"}
_PG_UPSERT = sa.text(f"""
    INSERT INTO broadcast ({", ".join(_PLAN_COLUMNS)}, status, updated_at)
    SELECT u.*, 'planned', :now
    FROM unnest({", ".join(f"CAST(:{c} AS {t}[])" for c, t in _PLAN_COLUMNS.items())}) AS u({", ".join(_PLAN_COLUMNS)})
    ON CONFLICT (date, slot, village_id, campaign_id) DO UPDATE
    SET script_ids = excluded.script_ids, township_id = excluded.township_id,
        scheduled_at = excluded.scheduled_at, updated_at = excluded.updated_at
    WHERE broadcast.status = 'planned'
      AND (broadcast.script_ids, broadcast.township_id, broadcast.scheduled_at)
          IS DISTINCT FROM (excluded.script_ids, excluded.township_id, excluded.scheduled_at)
    RETURNING id, xmax = 0 AS inserted""")
_PG_SCRIPTS = sa.text("""
    INSERT INTO broadcast_script (broadcast_id, position, script_id)
    SELECT b.id, u.ord - 1, u.script_id FROM broadcast b
    CROSS JOIN LATERAL unnest(string_to_array(b.script_ids, ',')) WITH ORDINALITY AS u(script_id, ord)
    WHERE b.id = ANY(CAST(:ids AS integer[]))""")


def _upsert_postgres(session: Session, chunk: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    # One statement per chunk with array parameters: ~10x faster than a
    # many-VALUES insert through psycopg, and the script rows are built in SQL.
    params = {c: [r[c] for r in chunk] for c in _PLAN_COLUMNS} | {"now": now}
    written = session.execute(_PG_UPSERT, params).all()
    updated = [bid for bid, inserted in written if not inserted]
    if updated:
        session.execute(sa.delete(BroadcastScript).where(BroadcastScript.broadcast_id == sa.any_(
            sa.bindparam("ids", updated, type_=postgresql.ARRAY(sa.Integer)))))
    if written:
        session.execute(_PG_SCRIPTS, {"ids": [bid for bid, _ in written]})
    return len(written)


def _upsert_sqlite(session: Session, chunk: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    c = Broadcast.__table__.c
    stmt = sqlite.insert(Broadcast.__table__)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.date, c.slot, c.village_id, c.campaign_id],
        set_={"script_ids": new.script_ids, "township_id": new.township_id,
              "scheduled_at": new.scheduled_at, "updated_at": new.updated_at},
        where=(c.status == S.PLANNED) & sa.or_(
            c.script_ids != new.script_ids, c.township_id != new.township_id, c.scheduled_at != new.scheduled_at),
    ).returning(c.id, c.script_ids)
    written = session.execute(stmt, [r | {"status": S.PLANNED, "updated_at": now} for r in chunk]).all()
    if not written:
        return 0
    link = BroadcastScript.__table__
    session.execute(sa.delete(link).where(link.c.broadcast_id.in_([bid for bid, _ in written])))
    scripts = [{"broadcast_id": bid, "position": pos, "script_id": sid}
               for bid, joined in written if joined for pos, sid in enumerate(joined.split(","))]
    if scripts:
        session.execute(sa.insert(link), scripts)
    return len(written)


def _program(day: dt.date, slot: str, village_id: str) -> list[Any]:
    return [Broadcast.date == day, Broadcast.slot == slot, Broadcast.village_id == village_id]


def mark_program(
    session: Session, *, day: dt.date, slot: str, village_id: str, status: BroadcastStatus, at: dt.datetime,
    program_sha256: str | None = None, engine: str | None = None, error: str | None = None,
    confirmed_by: str | None = None, note: str | None = None,
) -> int:
    """Move every campaign row of one village program to `status`, where TRANSITIONS allow it.

    Sets played_at / exported_at / confirmed_at to `at` for those statuses and
    stores the program hash, engine, error, confirmer and note when given. Returns the number
    of rows changed: 0 means nothing was allowed to change (e.g. already played).
    """
    _aware("at", at)
    status = BroadcastStatus(status)
    sources = [src for src, targets in TRANSITIONS.items() if status in targets]
    if not sources:
        raise ValueError(f"a program cannot be marked {status!s}")
    values: dict[str, Any] = {"status": status, "updated_at": at}
    if status in _STAMP:
        values[_STAMP[status]] = at
    for key, value in (("program_sha256", program_sha256), ("engine", engine), ("error", error),
                       ("confirmed_by", confirmed_by), ("note", note)):
        if value is not None:
            values[key] = value
    stmt = sa.update(Broadcast).where(*_program(day, slot, village_id), Broadcast.status.in_(sources)).values(values)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def program_status(session: Session, *, day: dt.date, slot: str, village_id: str) -> BroadcastStatus | None:
    """The furthest-along status among the program's rows, or None if nothing is planned."""
    found = set(session.scalars(sa.select(Broadcast.status).where(*_program(day, slot, village_id)).distinct()))
    return max(found, key=_PROGRESS.index) if found else None


# --- CSV reading -----------------------------------------------------------------


def _read_csv(path: Path, required: Sequence[str]) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """Return the file's SHA-256 and its data rows as (line number, {column: value})."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordError(f"{path}: cannot read the file ({e.strerror}); check the path") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordError(
            f"{path}: not UTF-8 text (byte {e.start}); in Excel use 'Save As' → 'CSV UTF-8 (逗号分隔)' and import again"
        ) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [h.strip().lower() for h in record]
                missing = [col for col in required if col not in header]
                if missing:
                    raise RecordError(
                        f"{path}: line {start}: missing column(s) {', '.join(missing)}; "
                        f"the first line must name the columns {','.join(required)}"
                    )
                continue
            extra = record[len(header):]
            row = {name: value.strip() for name, value in zip(header, record) if name}
            if any(cell.strip() for cell in extra):
                row["__error__"] = f"{len(record)} fields but the header has {len(header)}; check for stray commas"
            rows.append((start, row))
    except csv.Error as e:
        raise RecordError(f"{path}: line {reader.line_num}: {e}; fix the quoting") from e
    if header is None:
        raise RecordError(f"{path}: the file is empty; the first line must name the columns {','.join(required)}")
    return hashlib.sha256(data).hexdigest(), rows


def _import(session: Session, path: Path, columns: Sequence[str], kind: ImportKind, now: dt.datetime,
            handle: Callable[[dict[str, str]], bool]) -> ImportReport:
    """Run `handle` on every row of a CSV file not imported before; it returns False for a skip."""
    sha, rows = _read_csv(path, columns)
    earlier = session.get(ImportRecord, sha)
    if earlier is not None:
        return ImportReport(path=path, duplicate_file=True, first_imported_at=earlier.imported_at)
    record = ImportRecord(sha256=sha, kind=kind, filename=path.name, imported_at=now)
    session.add(record)
    try:
        session.flush()  # on SQLite this also takes the write lock before any row work
    except IntegrityError as e:
        raise RecordError(f"{path}: another outreach process is importing this file; run again to see its result") from e
    report = ImportReport(path=path)
    for line, row in rows:
        try:
            if "__error__" in row:
                raise RecordError(row["__error__"])
            if handle(row):
                report.rows_ok += 1
            else:
                report.rows_skipped += 1
        except RecordError as e:
            report.errors.append((line, str(e)))
    record.rows_ok, record.rows_bad = report.rows_ok, len(report.errors)
    session.flush()
    return report


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def _parse_date(text: str) -> dt.date:
    """YYYY-MM-DD, also with / or . or 年月日 and without leading zeros (as Excel writes dates)."""
    m = _DATE.match(text.strip())
    with contextlib.suppress(ValueError):
        if m is not None:
            return dt.date(*(int(g) for g in m.groups()))
    raise RecordError(f"bad date '{text}'; write it as 2024-05-03")


# --- confirmations -------------------------------------------------------------


def import_confirmations(session: Session, csv_path: Path, *, now: dt.datetime) -> ImportReport:
    """Mark exported or played programs as confirmed from a village committee CSV.

    Columns: village_id,date,slot,confirmed_by[,note]; UTF-8 with or without
    a BOM. Good rows are kept and bad rows reported by line number; rows whose
    broadcasts are already confirmed are skipped. A file imported before
    (same bytes) adds nothing and comes back with duplicate_file=True.

    Raises RecordError if the file cannot be read, is not UTF-8, lacks a
    column, or no villages are loaded.
    """
    _aware("now", now)
    path = Path(csv_path)
    villages = set(session.scalars(sa.select(Village.id)))
    if not villages:
        raise RecordError(f"{path}: the database has no villages yet; {_NO_REGISTRY}")
    return _import(session, path, CONFIRMATION_COLUMNS, ImportKind.CONFIRMATIONS, now,
                   lambda row: _confirm_row(session, row, villages, now))


def _confirm_row(session: Session, row: dict[str, str], villages: set[str], now: dt.datetime) -> bool:
    """Confirm one row's program; False if it was already confirmed. Raises RecordError."""
    village_id, by = row.get("village_id", ""), row.get("confirmed_by", "")
    slot = SLOT_ALIASES.get(row.get("slot", ""), row.get("slot", "").lower())
    if village_id not in villages:
        raise RecordError(f"unknown village '{village_id}'; use a village id from the registry")
    day = _parse_date(row.get("date", ""))
    if slot not in SLOT_NAMES:
        raise RecordError(f"unknown slot '{row.get('slot', '')}'; use {' or '.join(SLOT_NAMES)}")
    if not by:
        raise RecordError("confirmed_by is empty; write who at the village committee confirmed")
    where = _program(day, slot, village_id)
    found = set(session.scalars(sa.select(Broadcast.status).where(*where)))
    if not found:
        raise RecordError(f"no broadcast for village '{village_id}' on {day} in the {slot} slot; check the date and slot")
    if mark_program(session, day=day, slot=slot, village_id=village_id, status=S.CONFIRMED, at=now,
                    confirmed_by=by, note=row.get("note") or None):
        return True
    if found == {S.CONFIRMED}:
        return False
    status = max(found - {S.CONFIRMED}, key=_PROGRESS.index)
    raise RecordError(
        f"the {slot} program of '{village_id}' on {day} is {status}, not exported or played; it cannot be confirmed"
    )


# --- handouts -------------------------------------------------------------------


def parse_topics(value: str | Iterable[str]) -> list[Topic]:
    """Topics, in canonical order, from a list or a string separated by , ; 、 (反诈, 交通 accepted)."""
    items = [value] if isinstance(value, str) else list(value)
    topics: list[Topic] = []
    for part in (p.strip() for item in items for p in re.split(r"[,;、，；\s]+", item)):
        if not part:
            continue
        topic = TOPIC_ALIASES.get(part) or next((t for t in Topic if t.value == part.lower()), None)
        if topic is None:
            raise RecordError(f"unknown topic '{part}'; use {' or '.join(t.value for t in Topic)}")
        if topic not in topics:
            topics.append(topic)
    if not topics:
        raise RecordError(f"no topic given; use {' and/or '.join(t.value for t in Topic)}")
    return sorted(topics, key=list(Topic).index)


def handout_key(market_id: str, day: dt.date, leaflets: int, people: int, topics: Iterable[Topic],
                staff: str, note: str) -> str:
    """The natural key of a handout record: a hash of everything in it, topic order ignored."""
    canon = "\x1f".join([market_id, day.isoformat(), str(leaflets), str(people),
                         ",".join(sorted(topics)), staff.strip(), note.strip()])
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def _markets(session: Session) -> set[str]:
    markets = set(session.scalars(sa.select(Market.id)))
    if not markets:
        raise RecordError(f"the database has no markets yet; {_NO_REGISTRY}")
    return markets


def _new_handout(markets: set[str], *, market_id: str, day: dt.date, leaflets: int, people: int,
                 topics: str | Iterable[str], staff: str, note: str, now: dt.datetime) -> Handout:
    if market_id not in markets:
        raise RecordError(f"unknown market '{market_id}'; use one of: {', '.join(sorted(markets))}")
    for name, value in (("leaflets", leaflets), ("people", people)):
        if value < 0:
            raise RecordError(f"{name} must be 0 or more (got {value})")
    parsed = parse_topics(topics)
    staff, note = staff.strip(), note.strip()
    return Handout(
        market_id=market_id, date=day, leaflets=leaflets, people=people, topics=",".join(parsed),
        staff=staff, note=note, created_at=now,
        natural_key=handout_key(market_id, day, leaflets, people, parsed, staff, note),
    )


def record_handout(session: Session, *, market_id: str, day: dt.date, leaflets: int, people: int,
                   topics: list[str], staff: str, note: str = "", now: dt.datetime) -> Handout:
    """Record one market-day handout and return it (with its id).

    Raises RecordError for an unknown market, a negative count, an unknown
    topic, no markets loaded, or the very same record already stored.
    """
    _aware("now", now)
    h = _new_handout(_markets(session), market_id=market_id, day=day, leaflets=leaflets, people=people,
                     topics=topics, staff=staff, note=note, now=now)
    same = session.scalars(sa.select(Handout.id).where(Handout.natural_key == h.natural_key)).first()
    if same is not None:
        raise RecordError(f"this handout is already recorded as #{same}; nothing added")
    session.add(h)
    session.flush()
    return h


def _count(row: dict[str, str], name: str) -> int:
    text = row.get(name, "")
    try:
        return int(text)
    except ValueError:
        raise RecordError(f"{name} '{text}' is not a whole number") from None


def import_handouts(session: Session, csv_path: Path, *, now: dt.datetime) -> ImportReport:
    """Import handout records from CSV; rows already stored (same natural key) are skipped.

    Columns: market_id,date,leaflets,people,topics,staff[,note]; topics are
    separated by ; or 、. Good rows are kept, bad rows reported by line number.

    Raises RecordError if the file cannot be read, is not UTF-8, lacks a
    column, or no markets are loaded.
    """
    _aware("now", now)
    path = Path(csv_path)
    markets = _markets(session)
    seen = set(session.scalars(sa.select(Handout.natural_key)))

    def handle(row: dict[str, str]) -> bool:
        h = _new_handout(
            markets, market_id=row.get("market_id", ""), day=_parse_date(row.get("date", "")),
            leaflets=_count(row, "leaflets"), people=_count(row, "people"), topics=row.get("topics", ""),
            staff=row.get("staff", ""), note=row.get("note", ""), now=now,
        )
        if h.natural_key in seen:
            return False
        seen.add(h.natural_key)
        session.add(h)
        return True

    return _import(session, path, HANDOUT_COLUMNS, ImportKind.HANDOUTS, now, handle)

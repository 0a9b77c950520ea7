"""Market-day handouts: leaflets given out and people spoken to, one record per market and day."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from outreach.errors import RecordError
from outreach.models import Handout, ImportKind, Market, Topic
from outreach.records.broadcasts import require_aware
from outreach.records.confirmations import NO_REGISTRY, row_day
from outreach.records.csvread import ImportReport, run_import
from outreach.records.limits import check_count, check_name, check_note, check_record_day, parse_count

__all__ = ["HANDOUT_COLUMNS", "TOPIC_ALIASES", "MarketDays", "parse_topics", "handout_key", "record_handout",
           "import_handouts", "market_day_warning"]

HANDOUT_COLUMNS = ("market_id", "date", "leaflets", "people", "topics", "staff")
TOPIC_ALIASES = {
    "交通": Topic.TRAFFIC, "交通安全": Topic.TRAFFIC,
    "反诈": Topic.ANTI_FRAUD, "反诈骗": Topic.ANTI_FRAUD, "防诈": Topic.ANTI_FRAUD, "防诈骗": Topic.ANTI_FRAUD,
    "anti-fraud": Topic.ANTI_FRAUD,
}
MarketDays = Callable[[str, dt.date], bool | None]
"""is_market_day(market_id, day): True/False from the market's rule, None when the market is not known."""


def parse_topics(value: str | Iterable[str]) -> list[Topic]:
    """Topics, in canonical order, from a list or a string separated by , ; 、 (反诈, 交通 accepted)."""
    items = [value] if isinstance(value, str) else list(value)
    topics: list[Topic] = []
    for part in (p.strip() for item in items for p in re.split(r"[,;、，；\s]+", item)):
        if not part:
            continue
        topic = TOPIC_ALIASES.get(part) or next((t for t in Topic if t.value == part.lower()), None)
        if topic is None:
            raise RecordError(f"未知的主题 '{part[:40]}'；请写 {' 或 '.join(t.value for t in Topic)}（也可写 交通、反诈）")
        if topic not in topics:
            topics.append(topic)
    if not topics:
        raise RecordError(f"没有填写主题；请写 {'、'.join(t.value for t in Topic)} 中的一个或多个")
    return sorted(topics, key=list(Topic).index)


def handout_key(market_id: str, day: dt.date, leaflets: int, people: int, topics: Iterable[Topic],
                staff: str, note: str) -> str:
    """The natural key of a handout record: a hash of everything in it, topic order ignored."""
    canon = "\x1f".join([market_id, day.isoformat(), str(leaflets), str(people),
                         ",".join(sorted(topics)), staff.strip(), note.strip()])
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def market_day_warning(is_market_day: MarketDays | None, market_id: str, day: dt.date) -> str | None:
    """A warning when `day` is not one of the market's days (the record is still kept)."""
    if is_market_day is None or is_market_day(market_id, day) is not False:
        return None
    return f"按 schedules/markets.yaml 里的规则，{day} 不是集市 '{market_id}' 的集日；已按所填日期保存"


def _markets(session: Session) -> set[str]:
    markets = set(session.scalars(sa.select(Market.id)))
    if not markets:
        raise RecordError(f"数据库里还没有集市；{NO_REGISTRY}")
    return markets


def _new_handout(markets: set[str], *, market_id: str, day: dt.date, leaflets: int, people: int,
                 topics: str | Iterable[str], staff: str, note: str, now: dt.datetime) -> Handout:
    if market_id not in markets:
        raise RecordError(f"未知的集市 '{market_id[:64]}'；请使用其中之一：{'、'.join(sorted(markets))}")
    check_record_day(day, now, "发放")
    leaflets, people = check_count(leaflets, "leaflets"), check_count(people, "people")
    parsed = parse_topics(topics)
    staff, note = check_name(staff, "staff", required=False), check_note(note)
    return Handout(
        market_id=market_id, date=day, leaflets=leaflets, people=people, topics=",".join(parsed),
        staff=staff, note=note, created_at=now,
        natural_key=handout_key(market_id, day, leaflets, people, parsed, staff, note),
    )


def _insert(session: Session, h: Handout) -> int | None:
    """Insert unless a record with the same natural key exists; the new id, or None (portable, race-free)."""
    table = Handout.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {c.name: getattr(h, c.name) for c in table.columns if c.name != "id"}
    stmt = insert(table).values(values).on_conflict_do_nothing(index_elements=[table.c.natural_key])
    return session.execute(stmt.returning(table.c.id)).scalar()


def record_handout(session: Session, *, market_id: str, day: dt.date, leaflets: int, people: int,
                   topics: list[str], staff: str, note: str = "", now: dt.datetime) -> Handout:
    """Record one market-day handout and return it (with its id).

    Raises RecordError for an unknown market, a date in the future, a count
    below 0 or above its cap (MAX_LEAFLETS, MAX_PEOPLE), an unknown topic, a
    name with a control character, no markets loaded, or the very same
    record already stored. Use market_day_warning() to tell the user when
    the day is not one of the market's days; such a record is kept.
    """
    require_aware("now", now)
    h = _new_handout(_markets(session), market_id=market_id, day=day, leaflets=leaflets, people=people,
                     topics=topics, staff=staff, note=note, now=now)
    new_id = _insert(session, h)
    if new_id is None:
        same = session.scalars(sa.select(Handout.id).where(Handout.natural_key == h.natural_key)).first()
        raise RecordError(f"这条发放记录已经登记过（#{same}）；没有重复添加")
    h.id = new_id
    return h


def import_handouts(session: Session, csv_path: Path, *, now: dt.datetime,
                    is_market_day: MarketDays | None = None) -> ImportReport:
    """Import handout records from CSV; rows already stored (same natural key) are skipped.

    Columns: market_id,date,leaflets,people,topics,staff[,note]; topics are
    separated by ; or 、. Good rows are kept, bad rows reported by line number,
    and a row on a day that is not a market day (by `is_market_day`) is kept
    with a warning. A file can be imported again after fixing its bad rows.

    Raises RecordError if the file cannot be read, is not UTF-8, lacks a
    column, or no markets are loaded.
    """
    require_aware("now", now)
    path = Path(csv_path)

    def prepare():  # type: ignore[no-untyped-def]
        markets = _markets(session)

        def handle(row: dict[str, str], report: ImportReport, line: int) -> bool:
            h = _new_handout(
                markets, market_id=row.get("market_id", ""), day=row_day(row, report, line, now),
                leaflets=parse_count(row.get("leaflets", ""), "leaflets"),
                people=parse_count(row.get("people", ""), "people"), topics=row.get("topics", ""),
                staff=row.get("staff", ""), note=row.get("note", ""), now=now,
            )
            if _insert(session, h) is None:
                return False
            warning = market_day_warning(is_market_day, h.market_id, h.date)
            if warning:
                report.warnings.append((line, warning))
            return True
        return handle

    return run_import(session, path, HANDOUT_COLUMNS, ImportKind.HANDOUTS, now, prepare)

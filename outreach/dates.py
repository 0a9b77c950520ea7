"""Date parsing and date-range checks shared by the CLI and planning (no clock reading)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, overload

from pydantic import BeforeValidator

from outreach.config import TZ
from outreach.errors import PlanError

__all__ = ["parse_date", "read_date", "nearest_date", "date_note", "check_range", "days", "text_date", "TextDate",
           "json_time", "json_value"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
# What a person types: 2026-12-01, 2026/12/01, 2026.12.1, 2026年12月1日; and 12月1日 (the nearest such day).
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_MD = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
DATE_FORMS = "2026-12-01、2026/12/01 或 12月1日"


def nearest_date(month: int, day: int, today: date) -> date:
    """The date with this month and day nearest to `today` (last, this or next year; a tie goes forward).

    Raises ValueError when no year has that day (2月30日); 2月29日 finds the nearest leap year of the three.
    """
    found = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            found.append(date(year, month, day))
        except ValueError:
            continue
    if not found:
        raise ValueError(f"{month}月{day}日 在哪一年都不存在")
    return min(found, key=lambda d: (abs((d - today).days), d < today))


def read_date(text: str, field: str, *, today: date) -> tuple[date, str | None]:
    """A date as a person types it, and a note saying which date was taken when the form was not ISO.

    Accepts 2026-12-01, 2026/12/01 (also 2026.12.1 and 2026年12月1日) and 12月1日, which means the
    such day nearest to `today` (the county's date, passed in). Raises PlanError in Chinese naming
    `field` (e.g. "--from") and the accepted forms. The note reads `日期 12月1日 → 2026-12-01`.
    """
    cleaned = text.strip()
    try:
        if _ISO.fullmatch(cleaned):
            return date.fromisoformat(cleaned), None
        if m := _YMD.fullmatch(cleaned):
            found = date(int(m[1]), int(m[2]), int(m[3]))
            return found, date_note(cleaned, found)
        if m := _MD.fullmatch(cleaned):
            found = nearest_date(int(m[1]), int(m[2]), today)
            return found, date_note(cleaned, found)
    except ValueError:
        raise PlanError(f"{field}：“{cleaned}”不是真实存在的日期；请检查月和日") from None
    raise PlanError(f"{field}：“{text}”不是日期；请写成 {DATE_FORMS}")


def date_note(text: str, found: date) -> str:
    """The one line that says which date a non-ISO form was read as."""
    return f"日期 {text} → {found.isoformat()}"


def parse_date(text: str, field: str) -> date:
    """Parse an ISO date (YYYY-MM-DD) given for `field` (e.g. "--from").

    Raises PlanError naming the field and the expected form. Only the plain
    YYYY-MM-DD form is accepted (not 20260101 or week dates), so that what a
    user typed is what they get.
    """
    cleaned = text.strip()
    if _ISO.fullmatch(cleaned):
        try:
            return date.fromisoformat(cleaned)
        except ValueError:
            pass
    raise PlanError(f"{field}：{text!r} 不是日期；请写成 YYYY-MM-DD")


def check_range(start: date, end: date, *, max_days: int = 366, what: str = "日期范围") -> None:
    """Check that start..end (inclusive) runs forwards and spans at most `max_days` days.

    Raises PlanError for a backwards range or one that is too long.
    """
    if end < start:
        raise PlanError(
            f"{what}：{start.isoformat()}..{end.isoformat()} 前后颠倒了；结束日期不能早于开始日期"
        )
    n = (end - start).days + 1
    if n > max_days:
        raise PlanError(
            f"{what}：{start.isoformat()}..{end.isoformat()} 共 {n} 天；最多 {max_days} 天，请分成几段"
        )


@overload
def json_time(value: datetime) -> str: ...


@overload
def json_time(value: None) -> None: ...


def json_time(value: datetime | None) -> str | None:
    """The one form of an instant in every JSON output: ISO 8601 in Beijing time with its offset.

    `2026-12-01T06:30:00+08:00` whatever zone `value` carries (the database hands back UTC);
    None stays None. Raises ValueError for a naive datetime, whose zone nobody knows.
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"不带时区的时间 {value!r} 不能写进 JSON；请传入带时区的时间（timezone-aware datetime）")
    return value.astimezone(TZ).isoformat()


def json_value(value: Any) -> Any:
    """`json.dumps(..., default=json_value)`: instants by `json_time`, dates as YYYY-MM-DD, anything else as text."""
    if isinstance(value, datetime):
        return json_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def days(start: date, end: date) -> list[date]:
    """Every date from `start` to `end`, both included; empty if end < start."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def text_date(value: Any) -> date:
    """A date from config: a YAML date or the text YYYY-MM-DD; never a number or a date with a time.

    For pydantic's BeforeValidator: raises ValueError with the fix, so the
    loader's message names the file, line and key. Without this, pydantic
    reads `from: 1764547200` as seconds since 1970 and a typo becomes a date.
    """
    if isinstance(value, datetime):
        raise ValueError(f"{value!s} 带了时刻；只写日期，格式 YYYY-MM-DD")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        cleaned = value.strip()
        if _ISO.fullmatch(cleaned):
            try:
                return date.fromisoformat(cleaned)
            except ValueError:
                raise ValueError(f"{cleaned!r} 不是真实存在的日期；"
                                 "请检查月和日") from None
        raise ValueError(f"{value!r} 不是日期；请写成 YYYY-MM-DD，如 2026-12-01")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"数字 {value!r} 不是日期；请写成 YYYY-MM-DD，如 2026-12-01")
    raise ValueError(f"{value!r} 不是日期；请写成 YYYY-MM-DD，如 2026-12-01")


TextDate = Annotated[date, BeforeValidator(text_date)]
"""A pydantic date field that accepts only real dates written as dates (see text_date)."""

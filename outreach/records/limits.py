"""Caps and checks shared by every way a record comes in: the CLI, CSV files and the web dashboard.

Defined once here so that `outreach handout --leaflets`, a handout CSV and the
dashboard form refuse the same values with the same limits.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from zoneinfo import ZoneInfo

from outreach.config import TIMEZONE
from outreach.errors import RecordError

__all__ = [
    "MAX_LEAFLETS", "MAX_PEOPLE", "MAX_NAME_CHARS", "MAX_NOTE_CHARS", "MIN_RECORD_DATE",
    "check_name", "check_note", "check_count", "parse_count", "county_today", "check_record_day",
]

MAX_LEAFLETS = 100_000
"""Most leaflets one handout record (one market, one day) may count."""
MAX_PEOPLE = 100_000
"""Most people one handout record may count."""
MAX_NAME_CHARS = 100
"""Longest name of a person (confirmed_by, entered_by, staff, --by)."""
MAX_NOTE_CHARS = 500
"""Longest free-text note."""
MIN_RECORD_DATE = dt.date(2000, 1, 1)
"""Earliest date a field record may carry; anything older is a typo."""

_CAPS = {"leaflets": MAX_LEAFLETS, "people": MAX_PEOPLE}
_DIGITS = re.compile(r"[0-9]{1,4000}")  # a CSV line is at most 4,000 characters


def _bad_char(text: str) -> str | None:
    # Cc: control characters (NUL, tab, newline ...); Zl/Zp: line and paragraph separators.
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return f"U+{ord(ch):04X}"
    return None


def check_name(value: str, field: str, *, required: bool = True, max_chars: int = MAX_NAME_CHARS) -> str:
    """A person's name, stripped: one line, no control characters, at most `max_chars` characters.

    Raises RecordError naming `field` and the fix.
    """
    text = str(value).strip()
    bad = _bad_char(text)
    if bad is not None:
        raise RecordError(f"{field} 含有控制字符（{bad}，例如换行）；请写在一行里")
    if required and not text:
        raise RecordError(f"{field} 是空的；请填写姓名")
    if len(text) > max_chars:
        raise RecordError(f"{field} 有 {len(text)} 个字符；最多 {max_chars} 个")
    return text


def check_note(value: str, field: str = "note") -> str:
    """A free-text note, stripped: no control characters, at most MAX_NOTE_CHARS characters."""
    return check_name(value, field, required=False, max_chars=MAX_NOTE_CHARS)


def check_count(value: int, field: str) -> int:
    """A count within 0..its cap (MAX_LEAFLETS, MAX_PEOPLE). Raises RecordError."""
    cap = _CAPS.get(field, MAX_PEOPLE)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{field} '{value}' 不是整数")
    if value < 0:
        raise RecordError(f"{field} 不能小于 0（填的是 {value}）")
    if value > cap:
        shown = str(value) if value < 10**30 else f"（一个 {len(str(value))} 位数）"
        raise RecordError(f"{field} {shown} 超过了单条记录的上限 {cap:,}；请检查数字，"
                          "或按集日分成多条记录")
    return value


def parse_count(text: str, field: str) -> int:
    """A count written as digits (full-width digits accepted), checked by check_count."""
    cleaned = unicodedata.normalize("NFKC", str(text)).strip()
    if not _DIGITS.fullmatch(cleaned):
        if cleaned.startswith("-") and _DIGITS.fullmatch(cleaned[1:]):
            return check_count(-int(cleaned[1:]), field)
        if len(cleaned) > 40:
            cleaned = cleaned[:40] + "…"
        raise RecordError(f"{field} '{cleaned}' 不是整数")
    return check_count(int(cleaned), field)


def county_today(now: dt.datetime) -> dt.date:
    """The county's (Asia/Shanghai) date at the aware instant `now`."""
    return now.astimezone(ZoneInfo(TIMEZONE)).date()


def check_record_day(day: dt.date, now: dt.datetime, what: str) -> dt.date:
    """A record's date: not in the future (county time) and not before MIN_RECORD_DATE. Raises RecordError."""
    today = county_today(now)
    if day > today:
        raise RecordError(f"{what}日期 {day} 还没到（今天是 {today}，北京时间）；"
                          "请到那一天或之后再登记")
    if day < MIN_RECORD_DATE:
        raise RecordError(f"{what}日期 {day} 早于 {MIN_RECORD_DATE}；请检查年份")
    return day

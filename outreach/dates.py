"""Date parsing and date-range checks shared by the CLI and planning (no clock reading)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Annotated, Any, overload

from pydantic import BeforeValidator

from outreach.config import TZ
from outreach.errors import PlanError

__all__ = ["parse_date", "read_date", "nearest_date", "date_note", "check_range", "days", "text_date", "TextDate",
           "json_time", "json_value", "DATE_FORMS", "DATE_WORDS"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
# What a person types: 2026-12-01, 2026/12/01, 2026.12.1, 2026年12月1日; and 12月1日 (the nearest such day).
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_MD = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
# 12-1, 12/1, 12.1: month then day, as on a calendar or a notice.
_MD_SHORT = re.compile(r"(\d{1,2})\s*[-/.]\s*(\d{1,2})")
# 周五, 星期五, 礼拜天; with 上/这/本/下/下下 in front for another week.
_WEEKDAY = re.compile(r"(上上|上|这|本|下下|下)?\s*(?:周|星期|礼拜)([一二三四五六日天1-7])")
_WEEKDAYS = "一二三四五六日"
_WEEK_OFFSET = {None: 0, "这": 0, "本": 0, "上": -1, "上上": -2, "下": 1, "下下": 2}
_RELATIVE = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3, "昨天": -1, "昨日": -1, "前天": -2}
# 十二月一日, 二〇二六年十二月一日: Chinese numerals, read as digits before the forms above.
_CN_NUMBER = re.compile(r"[〇零一二三四五六七八九十]+")
_CN_DIGIT = {ch: i for i, ch in enumerate("〇一二三四五六七八九")} | {"零": 0}
DATE_FORMS = "2026-12-01、2026/12/01 或 12月1日"
DATE_WORDS = "今天、明天、后天、昨天、周五、下周一、12-1、12月1日、十二月一日"
"""The words and short forms read_date takes besides full dates (for help texts and messages)."""


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


def _cn_number(match: re.Match[str]) -> str:
    """一 → 1, 十二 → 12, 三十一 → 31, 二〇二六 → 2026 (digit by digit when there is no 十)."""
    text = match[0]
    if "十" not in text:
        return "".join(str(_CN_DIGIT[ch]) for ch in text)
    tens, _, units = text.partition("十")
    if len(tens) > 1 or len(units) > 1 or "十" in units:
        return text  # not a month or a day; the forms below refuse it
    return str((_CN_DIGIT[tens] if tens else 1) * 10 + (_CN_DIGIT[units] if units else 0))


def _word_date(text: str, today: date) -> date | None:
    """今天/明天/后天/昨天… and 周五/下周一…, counted from `today`; None for any other text.

    A weekday names that day of the week it is in (weeks run Monday to Sunday, as in China):
    周五 is this week's Friday even when it has passed; 下周五 is next week's.
    """
    if text in _RELATIVE:
        return today + timedelta(days=_RELATIVE[text])
    if m := _WEEKDAY.fullmatch(text):
        wanted = int(m[2]) - 1 if m[2].isdigit() else _WEEKDAYS.index("日" if m[2] == "天" else m[2])
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=_WEEK_OFFSET[m[1]])
        return monday + timedelta(days=wanted)
    return None


def read_date(text: str, field: str, *, today: date) -> tuple[date, str | None]:
    """A date as a person types it, and a note saying which date was taken when the form was not ISO.

    Accepts 2026-12-01, 2026/12/01 (also 2026.12.1 and 2026年12月1日); 12月1日, 12-1, 12/1, 12.1 and
    十二月一日, which mean the such day nearest to `today` (nearest_date: the county's date, passed in);
    and the words 今天, 明天, 后天, 大后天, 昨天, 前天, 周五, 下周一 (see _word_date). Raises PlanError in
    Chinese naming `field` (e.g. "--from") and the accepted forms. The note reads `日期 明天 → 2026-12-02`.
    """
    cleaned = unicodedata.normalize("NFKC", text).strip()
    try:
        if _ISO.fullmatch(cleaned):
            return date.fromisoformat(cleaned), None
        found = _word_date(cleaned, today)
        if found is None:
            digits = _CN_NUMBER.sub(_cn_number, cleaned)
            if m := _YMD.fullmatch(digits):
                found = date(int(m[1]), int(m[2]), int(m[3]))
            elif m := _MD.fullmatch(digits) or _MD_SHORT.fullmatch(digits):
                found = nearest_date(int(m[1]), int(m[2]), today)
        if found is not None:
            return found, date_note(cleaned, found)
    except (ValueError, OverflowError):
        raise PlanError(f"{field}：“{cleaned}”不是真实存在的日期；请检查月和日") from None
    raise PlanError(f"{field}：“{text}”不是日期；请写成 {DATE_FORMS}，也可以写 {DATE_WORDS}")


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

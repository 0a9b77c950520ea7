"""Query and form values checked with messages in Chinese that say how to fix them (400 pages)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import Request

from outreach.config import TZ
from outreach.dates import read_date
from outreach.errors import PlanError
from outreach.records.limits import MIN_RECORD_DATE
from outreach.web.page_kit import bad_request

MAX_TEXT = 200
# Dates the dashboard accepts. Pages add up to a year to a date; far from these
# bounds (year 1 or 9999) that arithmetic would overflow.
MIN_DAY = MIN_RECORD_DATE
MAX_DAY = date(2099, 12, 31)
WORDS_FIX = "也可以写 今天、明天、12月1日 或 12-1"


def _shown(text: str) -> str:
    text = text if len(text) <= 40 else text[:40] + "…"
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def parse_day(text: str | None, label: str, default: date | None, *, today: date | None = None) -> date:
    """A date as people write it (dates.read_date: 2026-12-01, 12月1日, 12-1, 明天, 周五); blank means `default`
    (required when default is None). Words count from `today`, the county's date (default: the clock now)."""
    if text is None or not text.strip():
        if default is None:
            raise bad_request(f"「{label}」没有填写。", f"请按 年-月-日 的格式填写，例如 2026-12-01，{WORDS_FIX}。")
        return default
    try:
        day, _ = read_date(text, label, today=today or datetime.now(TZ).date())
    except PlanError:
        raise bad_request(f"「{label}」填写的是「{_shown(text)}」，不是有效的日期。",
                          f"请按 年-月-日 的格式填写，例如 2026-12-01，{WORDS_FIX}。") from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise bad_request(f"「{label}」是 {day}，超出了能处理的日期范围。",
                          f"请填写 {MIN_DAY} 到 {MAX_DAY} 之间的日期。")
    return day


def parse_int(text: str | None, label: str, default: int | None, lo: int, hi: int, unit: str = "") -> int:
    """A whole number from lo to hi; blank means `default` (required when default is None)."""
    if text is None or not text.strip():
        if default is None:
            raise bad_request(f"「{label}」没有填写。", f"请填写 {lo} 到 {hi} 之间的整数{unit}。")
        return default
    cleaned = text.strip()
    if not re.fullmatch(r"[+-]?\d+", cleaned):
        raise bad_request(f"「{label}」填写的是「{_shown(text)}」，不是整数。",
                          f"请填写 {lo} 到 {hi} 之间的整数{unit}，只写阿拉伯数字。")
    if len(cleaned.lstrip("+-0")) > 15:  # never parse a huge number just to say it is too big
        raise bad_request(f"「{label}」填写的数字太大，超出了范围。", f"请填写 {lo} 到 {hi} 之间的整数{unit}。")
    value = int(cleaned)
    if not lo <= value <= hi:
        raise bad_request(f"「{label}」是 {value}{unit}，超出了范围。", f"请填写 {lo} 到 {hi} 之间的整数{unit}。")
    return value


def check_range(start: date, end: date, max_days: int, what: str = "日期范围") -> None:
    """start..end must run forwards and span at most `max_days` days."""
    if end < start:
        raise bad_request(f"{what}的结束日期 {end} 早于开始日期 {start}，范围是空的。",
                          "请把结束日期改成开始日期当天或之后。")
    if start < MIN_DAY or end > MAX_DAY:
        raise bad_request(f"{what} {start} 至 {end} 超出了能处理的日期范围。",
                          f"请查看 {MIN_DAY} 到 {MAX_DAY} 之间的日期。")
    n = (end - start).days + 1
    if n > max_days:
        raise bad_request(f"{what} {start} 至 {end} 共 {n} 天，太长了。",
                          f"一次最多查看 {max_days} 天，请缩短日期范围。")


def parse_range(start_text: str | None, end_text: str | None, *, default_start: date, default_end: date,
                max_days: int, what: str = "日期范围", today: date | None = None) -> tuple[date, date]:
    """A checked (start, end) from two optional date fields (parse_day; words count from `today`)."""
    start = parse_day(start_text, "开始日期", default_start, today=today)
    end = parse_day(end_text, "结束日期", default_end, today=today)
    check_range(start, end, max_days, what)
    return start, end


def days_back(today: date, days: int) -> date:
    return today - timedelta(days=days - 1)


def text_field(value: object, label: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str:
    """A single-line form text, stripped; too long or missing (when required) is a 400."""
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise bad_request(f"「{label}」没有填写。", f"请填写{label}。")
    if len(text) > max_len:
        raise bad_request(f"「{label}」有 {len(text)} 个字，太长了。", f"请控制在 {max_len} 个字以内。")
    # As outreach.records.limits: one line, no control characters (the CLI and CSV refuse them too).
    if any(not ch.isprintable() or unicodedata.category(ch) in ("Zl", "Zp") for ch in text):
        raise bad_request(f"「{label}」里有换行或无法显示的控制字符。", "请写成一行，删除这些字符后重新填写。")
    return text


def query_value(request: Request, name: str) -> str | None:
    """A query parameter; a repeated one counts as its last value."""
    values = request.query_params.getlist(name)
    return values[-1] if values else None


def form_text(value: Any) -> str:
    """A form value as text; a missing value or an uploaded file counts as empty."""
    return value if isinstance(value, str) else ""

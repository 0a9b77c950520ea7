"""Tests for outreach/dates.py: ISO parsing, range checks, inclusive day lists."""

from __future__ import annotations

from datetime import date

import pytest

from outreach.dates import check_range, days, parse_date
from outreach.errors import PlanError


def test_parse_date_accepts_iso() -> None:
    assert parse_date("2026-01-31", "--from") == date(2026, 1, 31)
    assert parse_date(" 2028-02-29 ", "--to") == date(2028, 2, 29)


def test_parse_date_message_names_field_and_form() -> None:
    with pytest.raises(PlanError) as info:
        parse_date("2026-13-01", "--from")
    assert str(info.value) == "--from：'2026-13-01' 不是日期；请写成 YYYY-MM-DD"


@pytest.mark.parametrize(
    "text",
    ["20260101", "2026-1-1", "2026/01/01", "2027-02-29", "2026-W01-1", "", "明天"],
    ids=["compact", "no-zero-pad", "slashes", "not-leap-year", "week-date", "empty", "chinese-word"],
)
def test_parse_date_rejects(text: str) -> None:
    with pytest.raises(PlanError, match=r"^--to：.* 不是日期；请写成 YYYY-MM-DD$"):
        parse_date(text, "--to")


def test_check_range_accepts_single_day_and_max_length() -> None:
    check_range(date(2026, 1, 1), date(2026, 1, 1))
    check_range(date(2026, 1, 1), date(2027, 1, 1))  # 366 days inclusive


def test_check_range_backwards() -> None:
    with pytest.raises(PlanError) as info:
        check_range(date(2026, 2, 1), date(2026, 1, 31), what="--from/--to")
    assert str(info.value).startswith("--from/--to：2026-02-01..2026-01-31 前后颠倒了；")


def test_check_range_too_long() -> None:
    with pytest.raises(PlanError, match=r"共 367 天；最多 366 天"):
        check_range(date(2026, 1, 1), date(2027, 1, 2))
    with pytest.raises(PlanError, match=r"^plan：.* 共 8 天；最多 7 天，"):
        check_range(date(2026, 1, 1), date(2026, 1, 8), max_days=7, what="plan")


def test_days_inclusive() -> None:
    assert days(date(2028, 2, 28), date(2028, 3, 1)) == [date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)]
    assert days(date(2026, 5, 5), date(2026, 5, 5)) == [date(2026, 5, 5)]
    assert days(date(2026, 5, 6), date(2026, 5, 5)) == []
    assert len(days(date(2026, 1, 1), date(2026, 12, 31))) == 365


# --- text_date: dates in config files (issue 8) ------------------------------------------

import datetime as _dt  # noqa: E402
import re  # noqa: E402

from outreach.dates import text_date  # noqa: E402


@pytest.mark.parametrize("value, expected", [
    pytest.param(_dt.date(2026, 12, 1), _dt.date(2026, 12, 1), id="yaml-date"),
    pytest.param(" 2026-12-01 ", _dt.date(2026, 12, 1), id="text"),
])
def test_text_date_accepts_dates_written_as_dates(value, expected):
    assert text_date(value) == expected


@pytest.mark.parametrize("value, message", [
    pytest.param(1764547200, "数字 1764547200 不是日期；请写成 YYYY-MM-DD", id="unix-seconds"),
    pytest.param(2026.5, "数字 2026.5 不是日期", id="float"),
    pytest.param(True, "True 不是日期", id="bool"),
    pytest.param("2026-02-30", "'2026-02-30' 不是真实存在的日期；请检查月和日", id="feb-30"),
    pytest.param("2026-2-3", "'2026-2-3' 不是日期；请写成 YYYY-MM-DD", id="no-zero-padding"),
    pytest.param(_dt.datetime(2026, 12, 1, 6, 30), "带了时刻；只写日期", id="datetime"),
])
def test_text_date_refuses_numbers_impossible_days_and_times(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        text_date(value)

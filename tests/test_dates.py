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
    assert str(info.value) == "--from: '2026-13-01' is not a date; use YYYY-MM-DD"


@pytest.mark.parametrize(
    "text",
    ["20260101", "2026-1-1", "2026/01/01", "2027-02-29", "2026-W01-1", "", "明天"],
    ids=["compact", "no-zero-pad", "slashes", "not-leap-year", "week-date", "empty", "chinese-word"],
)
def test_parse_date_rejects(text: str) -> None:
    with pytest.raises(PlanError, match=r"^--to: .* is not a date; use YYYY-MM-DD$"):
        parse_date(text, "--to")


def test_check_range_accepts_single_day_and_max_length() -> None:
    check_range(date(2026, 1, 1), date(2026, 1, 1))
    check_range(date(2026, 1, 1), date(2027, 1, 1))  # 366 days inclusive


def test_check_range_backwards() -> None:
    with pytest.raises(PlanError) as info:
        check_range(date(2026, 2, 1), date(2026, 1, 31), what="--from/--to")
    assert str(info.value).startswith("--from/--to: 2026-02-01..2026-01-31 is backwards;")


def test_check_range_too_long() -> None:
    with pytest.raises(PlanError, match=r"spans 367 days; at most 366"):
        check_range(date(2026, 1, 1), date(2027, 1, 2))
    with pytest.raises(PlanError, match=r"^plan: .* spans 8 days; at most 7 "):
        check_range(date(2026, 1, 1), date(2026, 1, 8), max_days=7, what="plan")


def test_days_inclusive() -> None:
    assert days(date(2028, 2, 28), date(2028, 3, 1)) == [date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)]
    assert days(date(2026, 5, 5), date(2026, 5, 5)) == [date(2026, 5, 5)]
    assert days(date(2026, 5, 6), date(2026, 5, 5)) == []
    assert len(days(date(2026, 1, 1), date(2026, 12, 31))) == 365

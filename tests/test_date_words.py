"""Dates as people say them (issue 18): 今天, 明天, 周五, 12-1, 十二月一日, everywhere a date is taken."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from outreach.cli import cli
from outreach.config import TZ
from outreach.dates import read_date
from outreach.errors import PlanError

MONDAY = date(2026, 11, 30)
SATURDAY = date(2026, 12, 5)


@pytest.mark.parametrize(("text", "today", "expected"), [
    pytest.param("今天", MONDAY, MONDAY, id="today"),
    pytest.param("明天", MONDAY, date(2026, 12, 1), id="tomorrow"),
    pytest.param("后天", MONDAY, date(2026, 12, 2), id="day-after"),
    pytest.param("大后天", MONDAY, date(2026, 12, 3), id="in-three-days"),
    pytest.param("昨天", MONDAY, date(2026, 11, 29), id="yesterday"),
    pytest.param("前天", date(2027, 1, 1), date(2026, 12, 30), id="across-new-year"),
    pytest.param(" 明天 ", date(2026, 12, 31), date(2027, 1, 1), id="blank-around"),
    pytest.param("12-1", MONDAY, date(2026, 12, 1), id="dash"),
    pytest.param("12.1", MONDAY, date(2026, 12, 1), id="dot"),
    pytest.param("12/1", MONDAY, date(2026, 12, 1), id="slash"),
    pytest.param("12-01", MONDAY, date(2026, 12, 1), id="zero-padded"),
    pytest.param("12月1日", MONDAY, date(2026, 12, 1), id="month-day"),
    pytest.param("十二月一日", MONDAY, date(2026, 12, 1), id="chinese-numerals"),
    pytest.param("十二月三十一号", MONDAY, date(2026, 12, 31), id="chinese-thirty-one"),
    pytest.param("二〇二七年一月二十日", MONDAY, date(2027, 1, 20), id="chinese-year"),
    pytest.param("１２月１日", MONDAY, date(2026, 12, 1), id="full-width"),
    pytest.param("1-3", date(2026, 12, 28), date(2027, 1, 3), id="nearest-across-new-year"),
    pytest.param("12-1", date(2027, 1, 10), date(2026, 12, 1), id="nearest-back"),
    pytest.param("周五", MONDAY, date(2026, 12, 4), id="friday-this-week"),
    pytest.param("周五", SATURDAY, date(2026, 12, 4), id="friday-passed-still-this-week"),
    pytest.param("星期天", MONDAY, date(2026, 12, 6), id="sunday-ends-the-week"),
    pytest.param("下周一", SATURDAY, date(2026, 12, 7), id="next-monday"),
    pytest.param("下周五", MONDAY, date(2026, 12, 11), id="next-week-friday"),
    pytest.param("上周五", MONDAY, date(2026, 11, 27), id="last-week-friday"),
    pytest.param("礼拜3", MONDAY, date(2026, 12, 2), id="weekday-digit"),
])
def test_read_date_takes_words_and_short_forms(text: str, today: date, expected: date) -> None:
    found, note = read_date(text, "--date", today=today)
    assert found == expected
    assert note == f"日期 {text.strip().replace('１', '1').replace('２', '2')} → {expected.isoformat()}"


def test_iso_dates_still_come_back_without_a_note() -> None:
    assert read_date("2026-12-01", "--date", today=MONDAY) == (date(2026, 12, 1), None)


@pytest.mark.parametrize(("text", "words"), [
    pytest.param("2-30", "不是真实存在的日期", id="no-such-day"),
    pytest.param("十三月一日", "不是真实存在的日期", id="no-such-month"),
    pytest.param("下个月", "也可以写 今天、明天", id="unknown-word"),
    pytest.param("周八", "不是日期", id="no-such-weekday"),
    pytest.param("12-1-5", "不是日期", id="three-parts"),
])
def test_read_date_refuses_what_is_no_date(text: str, words: str) -> None:
    with pytest.raises(PlanError, match=words) as info:
        read_date(text, "--from", today=MONDAY)
    assert str(info.value).startswith("--from：")


def test_cli_options_take_the_words(workspace: Path) -> None:
    """`markets --from 今天 --to 后天` plans from the county's date and says which dates it took."""
    today = datetime.now(TZ).date()
    result = CliRunner().invoke(cli, ["markets", "--from", "今天", "--to", "后天", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert f"日期 今天 → {today.isoformat()}" in result.stderr
    assert f"日期 后天 → {(today + timedelta(days=2)).isoformat()}" in result.stderr


def test_export_without_date_means_tomorrow_and_says_so(workspace: Path, tmp_path: Path) -> None:
    """Once `export` refused to run without --date; now it takes tomorrow and says so (the stick then fails:
    the folder is not there, so nothing is rendered)."""
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)
    result = CliRunner().invoke(cli, ["export", "--out", str(tmp_path / "no-stick"), "-w", str(workspace)])
    assert f"没写 --date：导出明天（{tomorrow.isoformat()}）的节目包" in result.stderr
    assert "缺少 --date" not in result.stderr
    assert result.exit_code == 1 and "不存在" in result.stderr  # it went on to check the stick


def test_web_pages_take_the_words() -> None:
    from outreach.web.params import parse_day

    assert parse_day("明天", "开始日期", None, today=MONDAY) == date(2026, 12, 1)
    assert parse_day("12-1", "开始日期", None, today=date(2027, 1, 10)) == date(2026, 12, 1)
    assert parse_day("", "开始日期", MONDAY, today=SATURDAY) == MONDAY

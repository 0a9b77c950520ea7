"""Tests for outreach/planning/market_days.py (market-day rules) and the `outreach markets` command."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from borax.calendars.lunardate import LunarDate
from click.testing import CliRunner

from outreach.cli import cli
from outreach.errors import MarketRuleError
from outreach.planning.market_days import MarketRule, lunar_day, lunar_label, parse_rule

REPO_ROOT = Path(__file__).resolve().parents[2]


def d(text: str) -> date:
    return date.fromisoformat(text)


def ds(*texts: str) -> list[date]:
    return [d(t) for t in texts]


# ---- lunar rules

def test_lunar_three_eight_january_2026_known_dates() -> None:
    # 2026-01-01 is 冬月十三, 01-21 腊月初三, 01-31 腊月十三 (checked against printed almanacs).
    got = parse_rule("逢农历三、八").dates(d("2026-01-01"), d("2026-01-31"))
    assert got == ds("2026-01-01", "2026-01-06", "2026-01-11", "2026-01-16",
                     "2026-01-21", "2026-01-26", "2026-01-31")


def test_lunar_rule_agrees_with_borax_over_two_years() -> None:
    start, end = d("2025-01-01"), d("2026-12-31")
    expected = []
    day = start
    while day <= end:
        if LunarDate.from_solar(day).day in (3, 8, 13, 18, 23, 28):
            expected.append(day)
        day += timedelta(days=1)
    got = parse_rule("逢农历三、八").dates(start, end)
    assert got == expected and len(got) > 140


def test_lunar_year_with_leap_month_has_thirteen_months_of_markets() -> None:
    # Lunar year 乙巳 (2025): 正月初一 = 2025-01-29 .. 腊月廿九 = 2026-02-16, with 闰六月.
    assert lunar_label(d("2025-01-29")) == "正月初一" and lunar_label(d("2026-02-16")) == "腊月廿九"
    assert len(parse_rule("逢农历三、八").dates(d("2025-01-29"), d("2026-02-16"))) == 13 * 6


def test_leap_month_days_are_market_days() -> None:
    assert LunarDate.from_solar(d("2025-07-27")).leap == 1  # 闰六月初三, per borax
    assert lunar_label(d("2025-07-27")) == "闰六月初三"
    got = parse_rule("逢农历三").dates(d("2025-07-01"), d("2025-08-31"))
    # 六月十三, 六月廿三, 闰六月初三/十三/廿三, 七月初三
    assert got == ds("2025-07-07", "2025-07-17", "2025-07-27", "2025-08-06", "2025-08-16", "2025-08-25")


def test_ten_means_day_numbers_ending_in_zero_and_29_day_months_have_no_thirtieth() -> None:
    # 冬月 2025 has 30 days (2026-01-18 is 三十); 腊月 2025 has 29 (2026-02-16 is 廿九, then 正月初一).
    assert lunar_day(d("2026-01-18")) == 30
    assert lunar_day(d("2026-02-16")) == 29 and lunar_day(d("2026-02-17")) == 1
    got = parse_rule("逢十").dates(d("2026-01-01"), d("2026-02-28"))
    assert got == ds("2026-01-08", "2026-01-18", "2026-01-28", "2026-02-07", "2026-02-26")
    assert d("2026-02-16") not in got  # not moved to 廿九


def test_lunar_is_the_default_calendar() -> None:
    assert parse_rule("逢一、六").calendar == "lunar"
    assert parse_rule("逢一、六").dates(d("2026-01-01"), d("2026-01-31")) == ds(
        "2026-01-04", "2026-01-09", "2026-01-14", "2026-01-19", "2026-01-24", "2026-01-29")


# ---- Gregorian rules

def test_gregorian_one_six_includes_31st_only_in_long_months() -> None:
    got = parse_rule("逢公历一、六").dates(d("2026-03-25"), d("2026-05-02"))
    assert got == ds("2026-03-26", "2026-03-31", "2026-04-01", "2026-04-06", "2026-04-11",
                     "2026-04-16", "2026-04-21", "2026-04-26", "2026-05-01")


def test_gregorian_ten_has_no_thirtieth_in_february() -> None:
    got = parse_rule("逢阳历五、十").dates(d("2026-02-01"), d("2026-03-10"))
    assert got == ds("2026-02-05", "2026-02-10", "2026-02-15", "2026-02-20", "2026-02-25",
                     "2026-03-05", "2026-03-10")


@pytest.mark.parametrize(("text", "expected"), [
    ("逢单日", ["2026-01-29", "2026-01-31", "2026-02-01", "2026-02-03"]),
    ("逢双日", ["2026-01-30", "2026-02-02"]),
    ("逢公历双日", ["2026-01-30", "2026-02-02"]),
], ids=["odd", "even", "even-named"])
def test_odd_even_days_are_gregorian(text: str, expected: list[str]) -> None:
    rule = parse_rule(text)
    assert rule.calendar == "gregorian"
    assert rule.dates(d("2026-01-29"), d("2026-02-03")) == ds(*expected)


def test_lunar_odd_days_when_named() -> None:
    # 2026-02-16 is 腊月廿九 and 02-17 正月初一: two lunar odd days in a row.
    rule = parse_rule("逢农历单日")
    assert rule.calendar == "lunar"
    assert rule.dates(d("2026-02-15"), d("2026-02-18")) == ds("2026-02-16", "2026-02-17")


def test_explicit_dates() -> None:
    rule = parse_rule("2026-12-05, 2026-12-20")
    assert rule.calendar == "gregorian"
    assert rule.dates(d("2026-12-01"), d("2026-12-31")) == ds("2026-12-05", "2026-12-20")
    assert parse_rule("2026-12-20、2026-12-05").dates(d("2026-12-06"), d("2026-12-31")) == ds("2026-12-20")


# ---- accepted spellings

@pytest.mark.parametrize("text", [
    "逢农历三、八", "逢阴历3,8", "逢三八", "农历三、八日", "逢三逢八", "逢 3 8", "逢农历３、８", "逢三，八", "逢3日、8日",
])
def test_spellings_of_three_eight(text: str) -> None:
    rule = parse_rule(text)
    assert (rule.calendar, rule.endings, rule.text) == ("lunar", frozenset({3, 8}), text)


@pytest.mark.parametrize(("text", "calendar", "endings"), [
    ("逢三六九", "lunar", {3, 6, 9}),
    ("逢公历五、十", "gregorian", {5, 0}),
    ("逢新历1、10", "gregorian", {1, 0}),
    ("逢二、七", "lunar", {2, 7}),
])
def test_digit_forms(text: str, calendar: str, endings: set[int]) -> None:
    rule = parse_rule(text)
    assert (rule.calendar, rule.endings) == (calendar, frozenset(endings))


def test_matches_agrees_with_dates() -> None:
    rule = parse_rule("逢农历二、七")
    start, end = d("2026-06-01"), d("2026-06-30")
    assert rule.dates(start, end) == [day for day in (start + timedelta(i) for i in range(30)) if rule.matches(day)]
    assert isinstance(rule, MarketRule) and str(rule) == "逢农历二、七"


@pytest.mark.parametrize("text", [
    "", "逢", "逢公历", "逢三、X", "逢36", "每周三", "2026-02-30", "2026-12-05, 逢三",
], ids=["empty", "no-digits", "calendar-only", "bad-char", "arabic-run", "weekly", "no-such-date", "mixed"])
def test_bad_rules_say_what_is_accepted(text: str) -> None:
    with pytest.raises(MarketRuleError) as info:
        parse_rule(text)
    message = str(info.value)
    assert message.startswith(f"集日规则 {text!r}：")
    assert "可用的写法：逢农历三、八" in message and "逢单日" in message


def test_lunar_dates_outside_borax_range() -> None:
    with pytest.raises(MarketRuleError, match="^1900-01-01：农历只能查到 1900-01-31 至 2101-01-28 之间的日期；请选"):
        parse_rule("逢三").matches(d("1900-01-01"))


# ---- CLI

@pytest.fixture
def ws(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "schedules", tmp_path / "schedules")
    (tmp_path / "outreach.toml").write_text("", encoding="utf-8")
    return tmp_path


def test_cli_rule_json_exact(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["markets", "--rule", "逢农历三、八", "--from", "2026-01-01",
                                      "--to", "2026-01-31", "--json", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        '[\n  "2026-01-01",\n  "2026-01-06",\n  "2026-01-11",\n  "2026-01-16",\n'
        '  "2026-01-21",\n  "2026-01-26",\n  "2026-01-31"\n]\n'
    )


def test_cli_rule_table_shows_lunar_day(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["markets", "--rule", "逢农历三", "--from", "2025-07-27",
                                      "--to", "2025-07-27", "-w", str(ws)])
    assert result.exit_code == 0
    assert result.stdout == "2025-07-27  周日  农历闰六月初三\n"


def test_cli_workspace_markets_json(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["markets", "--from", "2026-01-01", "--to", "2026-01-10",
                                      "--json", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"market_id": "dazhuang-ji", "name": "大庄集", "dates": ["2026-01-01", "2026-01-06"]},
        {"market_id": "lishu-ji", "name": "梨树集", "dates": ["2026-01-04", "2026-01-09"]},
        {"market_id": "hexi-ji", "name": "河西集", "dates": ["2026-01-05", "2026-01-10"]},
        {"market_id": "county-ji", "name": "县城大集",
         "dates": ["2026-01-02", "2026-01-04", "2026-01-06", "2026-01-08", "2026-01-10"]},
    ]


def test_cli_workspace_markets_table(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["markets", "--from", "2026-01-01", "--to", "2026-01-10", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["集市", "规则", "日期"]
    assert lines[1].split() == ["大庄集(dazhuang-ji)", "逢农历三、八", "1/1、1/6"]
    assert len(lines) == 5


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-13-01", "--to", "2026-01-31"], "错误：--from：“2026-13-01”不是真实存在的日期；请检查月和日\n"),
    (["--from", "2026-02-01", "--to", "2026-01-31"],
     "错误：--from/--to：2026-02-01..2026-01-31 前后颠倒了；结束日期不能早于开始日期\n"),
], ids=["bad-date", "backwards"])
def test_cli_date_errors(ws: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["markets", "--rule", "逢三", *args, "-w", str(ws)])
    assert result.exit_code == 1
    assert result.stderr == message


def test_cli_bad_rule(ws: Path) -> None:
    result = CliRunner().invoke(cli, ["markets", "--rule", "逢三、X", "--from", "2026-01-01",
                                      "--to", "2026-01-31", "-w", str(ws)])
    assert result.exit_code == 1
    assert result.stderr.startswith("错误：集日规则 '逢三、X'：'X' 不是日子的数字（应为 一..十 或 0..9）；可用的写法：")


def test_cli_broken_registry_is_reported(ws: Path) -> None:
    (ws / "schedules" / "markets.yaml").unlink()
    result = CliRunner().invoke(cli, ["markets", "--from", "2026-01-01", "--to", "2026-01-31", "-w", str(ws)])
    assert result.exit_code == 1
    assert "markets.yaml: 文件不存在；请创建它" in result.stderr


@pytest.mark.parametrize(("text", "why"), [
    ("逢农历三十一", "'三十一'（31）不是真实存在的日子"),
    ("逢公历三十二", "'三十二'（32）不是真实存在的日子"),
    ("逢十五", "'十五'（15）是完整的日子，不是末位数字"),
    ("逢二十", "'二十'（20）是完整的日子，不是末位数字"),
    ("逢农历32", "'32' 不是真实存在的日子"),
], ids=["lunar-31", "gregorian-32", "fifteen", "twenty", "arabic-32"])
def test_only_real_day_digits_are_accepted(text: str, why: str) -> None:
    """逢农历三十一 once read as digits 3, 0 and 1 and gave markets on days ending in 1, 3 and 0."""
    with pytest.raises(MarketRuleError) as info:
        parse_rule(text)
    assert str(info.value).startswith(f"集日规则 {text!r}：{why}；")


def test_a_bad_day_number_in_markets_yaml_names_file_line_and_market(tmp_path: Path) -> None:
    import shutil

    from outreach.errors import RegistryError
    from outreach.planning.registry import load_registry

    shutil.copytree(Path(__file__).resolve().parents[2] / "schedules", tmp_path / "schedules")
    path = tmp_path / "schedules" / "markets.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("rule: 逢农历三、八", "rule: 逢农历三十一", 1), encoding="utf-8")
    line = next(i for i, s in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "id: dazhuang-ji" in s)
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path / "schedules")
    assert f"{path}:{line}: markets[dazhuang-ji].rule：集日规则 '逢农历三十一'：'三十一'（31）不是真实存在的日子" \
        in str(info.value)

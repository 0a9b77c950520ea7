"""What the long pages fold away (web/folds.py) and the one-row phone header, in-process: 今天 lists problems
first with the fine villages folded by township, the plan folds by township and day, a village by day; a
fold with a problem opens; the nav comes from one list."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from web_site import Site, client_as

from outreach.planning.plan import Program, ProgramItem
from outreach.web.board import Slot
from outreach.web.data_records import ProgramRow
from outreach.web.folds import fine_by_township, history_by_day, plan_by_township

TZ = ZoneInfo("Asia/Shanghai")
D = date(2026, 12, 10)


def _slot(village: str, township: str, slot: str, status: str) -> Slot:
    return Slot(village, f"{village}村", township, {"a": "甲镇", "b": "乙乡"}[township], slot, None, status)


def test_fine_programs_fold_by_township_and_problems_stay_out() -> None:
    slots = [_slot("b1", "b", "morning", "failed"), _slot("b1", "b", "evening", "planned"),
             _slot("a1", "a", "morning", "played"), _slot("a2", "a", "morning", "played"),
             _slot("a2", "a", "evening", "planned"), _slot("a3", "a", "morning", "missed")]
    folds = fine_by_township(slots)
    assert [(f.key, f.title, f.open) for f in folds] == [("a", "甲镇", False), ("b", "乙乡", False)]
    assert [(s.village_id, s.slot) for s in folds[0].items] == [("a1", "morning"), ("a2", "morning"), ("a2", "evening")]
    assert folds[0].summary == "2 个村 3 场：待播 1，已播 2" and folds[1].summary == "1 个村 1 场：待播 1"
    assert fine_by_township(slots[:1]) == []


def _row(day: date, slot: str, status: str) -> ProgramRow:
    return ProgramRow(day, slot, status, [], [], None, None, None, None, "", "")


def test_a_village_record_folds_by_day_with_problem_days_and_today_open() -> None:
    rows = [_row(D, "evening", "planned"), _row(D, "morning", "played"), _row(date(2026, 12, 9), "evening", "missed"),
            _row(date(2026, 12, 9), "morning", "played"), _row(date(2026, 12, 8), "morning", "exported"),
            _row(date(2026, 12, 8), "evening", "confirmed")]
    folds = history_by_day(rows, D)
    assert [(f.key, f.title, f.open, f.problems) for f in folds] == [
        ("2026-12-10", "12月10日 周四", True, 0), ("2026-12-09", "12月9日 周三", True, 1),
        ("2026-12-08", "12月8日 周二", False, 0)]
    assert folds[1].summary == "早间 已播，晚间 漏播" and [r.slot for r in folds[2].items] == ["morning", "evening"]


def _program(village: str, township: str, day: date, slot: str, *blocked: str | None) -> Program:
    items = tuple(ProgramItem(f"s{i}", "c", blocked=b) for i, b in enumerate(blocked or (None,)))
    return Program(day, slot, village, township, datetime(day.year, day.month, day.day, 6, 30, tzinfo=TZ), items, 90.0)


def test_the_plan_folds_by_township_and_day_and_opens_where_something_will_not_air() -> None:
    days = [D, date(2026, 12, 11)]
    programs = [_program("a1", "a", D, "morning"), _program("a1", "a", D, "evening"),
                _program("a2", "a", days[1], "morning", None, "批准后被修改"), _program("b1", "b", D, "morning")]
    names = {"a1": "一村", "a2": "二村", "b1": "三村"}
    folds = plan_by_township(programs, days, {"b": ["b1"], "a": ["a1", "a2"]}, {"a": "甲镇", "b": "乙乡"}, names)
    a, b = folds
    assert (a.key, a.title, a.open, a.problems, b.open) == ("a", "甲镇", True, 1, False)
    assert a.summary == "2 个村，2 天 3 场节目，1 条不播" and b.summary == "1 个村，2 天 1 场节目"
    assert [(d.title, d.open, d.summary) for d in a.items] == [
        ("12月10日 周四", False, "2 场节目，1 个村没有节目"), ("12月11日 周五", True, "1 场节目，1 条不播，1 个村没有节目")]
    row = a.items[0].items[0]
    assert (row.village, row.programs["morning"] is programs[0], row.programs["evening"] is programs[1]) == \
        ("一村", True, True)
    # One township, or one day, or one village: all there is opens.
    one_day = plan_by_township(programs, days[:1], {"b": ["b1"], "a": ["a1", "a2"]}, {}, names)
    assert all(d.open for t in one_day for d in t.items)
    one_village = plan_by_township(programs, days, {"b": ["b1"]}, {}, names)
    assert one_village[0].open and all(d.open for d in one_village[0].items)


# --- the pages ---------------------------------------------------------------------------------------------

FOLD = re.compile(r'<details class="fold[^"]*" data-key="([^"]+)"( open)?>')


def test_today_lists_problems_first_and_folds_the_fine_villages(site: Site, editor: TestClient) -> None:
    # 2026-12-10 09:30: nothing was logged today, so every morning is 漏播 and every evening still 待播.
    page = editor.get("/today").text
    problems, fine = page.split('id="problems"')[1].split('id="fine"')
    assert set(re.findall(r'<tr class="st-(\w+)">', problems)) == {"missed"}
    assert set(re.findall(r'<tr class="st-(\w+)">', fine)) == {"planned"}
    assert FOLD.findall(fine) == [("dazhuang", ""), ("hexi", ""), ("lishu", "")]  # closed
    data = editor.get("/today.json").json()
    folded = {p for f in data["folds"] for p in f["programs"]}
    assert folded == {f"{s['village_id']}/{s['slot']}" for s in data["slots"] if s["status"] == "planned"}
    first = data["folds"][0]
    assert first["title"] == "大庄镇" and first["summary"].endswith(f"场：待播 {len(first['programs'])}")
    # The phone's short list has no folds at all.
    short = editor.get("/today?only=problems").text
    assert 'id="fine"' not in short and editor.get("/today.json?only=problems").json()["folds"] == []


def test_the_plan_and_a_village_fold_by_township_and_day(site: Site, editor: TestClient) -> None:
    week = editor.get("/plan?from=2026-12-10").text
    assert [key for key, _ in FOLD.findall(week)][:8] == ["dazhuang", "2026-12-10", "2026-12-11", "2026-12-12",
                                                          "2026-12-13", "2026-12-14", "2026-12-15", "2026-12-16"]
    assert ("dazhuang", "") in FOLD.findall(week) and "个村，7 天" in week
    day = editor.get("/plan?from=2026-12-11&days=1&township=dazhuang").text  # where a calendar day links
    assert FOLD.findall(day) == [("dazhuang", " open"), ("2026-12-11", " open")]
    village = editor.get("/villages/dazhuang-01?from=2026-12-01&to=2026-12-09").text
    days = dict(FOLD.findall(village))
    assert days["2026-12-05"] == " open" and days["2026-12-04"] == ""  # the evening of the 5th was missed
    assert "早间 已播，晚间 漏播" in village


def test_the_calendar_names_the_townships_whose_programs_did_not_air(site: Site, editor: TestClient) -> None:
    county = editor.get("/calendar?view=week&date=2026-12-02").text
    day = county.split('data-date="2026-12-02"')[1].split("</a>")[0]
    assert re.search(r'class="cal-trouble warn">大庄镇 \d+ 场、梨树乡 \d+ 场、河西镇 \d+ 场没播出<', day), day
    assert "cal-trouble" not in editor.get("/calendar?view=week&date=2026-12-02&village=dazhuang-02").text


def test_the_header_is_one_nav_list_behind_a_menu_button(site: Site, editor: TestClient) -> None:
    page = editor.get("/records/import").text
    header = page.split("<header", 1)[1].split("</header>", 1)[0]
    assert '<input type="checkbox" id="menu-open"' in header and '<label for="menu-open" class="menu-button"' in header
    assert re.search(r'class="menu-here">播出确认<', header)
    links = re.findall(r'<a href="([^"]+)"( class="on" aria-current="page")?>([^<]+)</a>', header)
    assert [label for _, _, label in links][:3] == ["今天", "宣传活动", "村庄"] and "用户" not in header
    assert [(href, label) for href, on, label in links if on] == [("/records/import", "播出确认")]
    admin = client_as(site, "guanli", "admin").get("/stations").text.split("</header>", 1)[0]
    assert '<a href="/users">用户</a>' in admin
    assert re.search(r'class="menu-here">播放盒<', admin)

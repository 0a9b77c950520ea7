"""Editor actions on records: confirmations of exported programs and market handouts."""

from __future__ import annotations

import warnings
from datetime import date

import pytest

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import (
    NOW,
    S,
    Site,
    rows,
    token,
)

from outreach.config import load_config
from outreach.db import session
from outreach.models import Broadcast, Handout
from outreach.planning.workspace import load, plan_days
from outreach.records import broadcast_plans, mark_program, record_planned
from outreach.records.limits import MAX_LEAFLETS

# --- editor actions ------------------------------------------------------------------------------


def test_editor_confirms_an_exported_program(site: Site, editor: TestClient) -> None:
    page = editor.get("/villages/dazhuang-05")
    assert "确认已播" in page.text and "已导出" in page.text
    response = editor.post("/villages/dazhuang-05/confirm",
                           data={"csrf_token": token(editor, "/villages/dazhuang-05"), "date": "2026-12-08",
                                 "slot": "morning"})
    assert response.status_code == 303
    done = rows(site.engine, Broadcast, Broadcast.village_id == "dazhuang-05", Broadcast.date == date(2026, 12, 8),
                Broadcast.slot == "morning")
    assert done and all(b.status == S("confirmed") and b.confirmed_by == "wang" for b in done)
    assert all(b.confirmed_at == NOW for b in done)
    assert "已确认" in editor.get("/villages/dazhuang-05").text


def test_confirming_a_program_that_has_not_started_is_refused(site: Site, editor: TestClient) -> None:
    """The dashboard follows the CLI's rule: a USB program cannot be confirmed before its slot starts."""
    loaded = load(load_config(site.workspace))
    day = date(2026, 12, 11)  # NOW is 12-10 09:30: tomorrow's pack is on the stick, not yet on air
    with session(site.engine) as s:
        programs = [p for p in plan_days(loaded, day, day, village_ids=["dazhuang-05"]).programs
                    if p.slot == "morning"]
        record_planned(s, broadcast_plans(programs), now=NOW)
        mark_program(s, day=day, slot="morning", village_id="dazhuang-05", status=S("exported"), at=NOW)
    response = editor.post("/villages/dazhuang-05/confirm",
                           data={"csrf_token": token(editor, "/villages/dazhuang-05"), "date": day.isoformat(),
                                 "slot": "morning"}, follow_redirects=True)
    assert response.status_code == 200 and "没有确认" in response.text and "2026-12-11 06:30" in response.text
    found = rows(site.engine, Broadcast, Broadcast.village_id == "dazhuang-05", Broadcast.date == day)
    assert found and all(b.status == S("exported") for b in found)


def test_confirming_a_planned_program_changes_nothing(site: Site, editor: TestClient) -> None:
    response = editor.post("/villages/hexi-04/confirm", data={"csrf_token": token(editor, "/villages"),
                                                               "date": "2026-12-02", "slot": "evening"},
                           follow_redirects=True)
    assert response.status_code == 200 and "没有确认" in response.text
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))


def test_editor_logs_a_handout(site: Site, editor: TestClient) -> None:
    response = editor.post("/markets/dazhuang-ji/handouts", data={
        "csrf_token": token(editor, "/markets/dazhuang-ji"), "date": "2026-12-08", "leaflets": "300",
        "people": "210", "topics": ["traffic", "anti_fraud"], "staff": "王秀兰", "note": "人多，三轮车多"})
    assert response.status_code == 303
    new = rows(site.engine, Handout, Handout.date == date(2026, 12, 8))
    assert [(h.leaflets, h.people, h.topics, h.staff) for h in new] == [(300, 210, "traffic,anti_fraud", "王秀兰")]
    page = editor.get("/markets/dazhuang-ji")
    assert "已登记" in page.text and "人多，三轮车多" in page.text and "反诈骗" in page.text


@pytest.mark.parametrize("change,message", [
    ({"leaflets": "many"}, "不是整数"),
    ({"leaflets": "-5"}, "超出了范围"),
    ({"people": "99999999"}, "超出了范围"),
    ({"date": "2026-02-30"}, "不是有效的日期"),
    ({"date": ""}, "没有填写"),
    ({"date": "2026-12-11"}, "之后"),
    ({"topics": "weather"}, "宣传主题"),
    ({"topics": []}, "宣传主题"),
    ({"staff": "  "}, "发放人员"),
    ({"note": "长" * 501}, "太长"),
    ({"leaflets": str(MAX_LEAFLETS + 1)}, "超出了范围"),
    ({"people": "2000000000"}, "超出了范围"),
    ({"date": "0001-01-01"}, "超出了能处理的日期范围"),
    ({"date": "1999-12-31"}, "超出了能处理的日期范围"),
    ({"staff": "王\n秀兰"}, "换行"),
], ids=["text-count", "negative", "huge", "bad-date", "no-date", "future", "bad-topic", "no-topic", "no-staff",
        "long-note", "over-cap", "two-billion", "year-1", "before-2000", "newline"])
def test_bad_handout_is_400_with_the_fix_and_keeps_the_form(site: Site, editor: TestClient,
                                                           change: dict[str, object], message: str) -> None:
    form: dict[str, object] = {"date": "2026-12-08", "leaflets": "30", "people": "20", "topics": "traffic",
                               "staff": "王秀兰", "note": "备注甲", **change}
    response = editor.post("/markets/dazhuang-ji/handouts",
                           data={**form, "csrf_token": token(editor, "/markets/dazhuang-ji")})
    assert response.status_code == 400
    assert message in response.text
    assert 'value="王秀兰"' in response.text or "staff" in change
    assert len(rows(site.engine, Handout)) == 1


def test_duplicate_handout_is_refused(site: Site, editor: TestClient) -> None:
    form = {"date": "2026-12-03", "leaflets": "120", "people": "85", "topics": "traffic", "staff": "李警官",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form)
    assert response.status_code == 400 and "已经登记过了" in response.text
    assert len(rows(site.engine, Handout)) == 1


def test_an_editor_cannot_approve(site: Site, editor: TestClient) -> None:
    response = editor.post("/scripts/fraud-seven-tools/approve", data={"csrf_token": token(editor, "/scripts")})
    assert response.status_code == 403 and "审核员" in response.text
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")

"""The confirmation loop on the web (issue 17): the village phone page behind a pack's QR code (/c/<token>, no
login, one village only, expiring, revocable, rate-limited), the paste box for the lines villages send back,
and 上次成功播出 that shows the air time with the entry time apart."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from web_site import CSRF, NOW, TZ, Site, rows

from outreach import records
from outreach.cli import cli
from outreach.db import session
from outreach.models import Broadcast, BroadcastStatus, Evidence

S = BroadcastStatus
MINE, OTHER = "dazhuang-05", "hexi-04"  # 李家洼村 (its 12-08 and 12-09 packs are exported) and 沙窝村
DAYS = (date(2026, 12, 8), date(2026, 12, 9))


def link(site: Site, village: str = MINE, now: datetime = NOW) -> str:
    with session(site.engine) as s:
        return records.issue_link(s, village_id=village, first_day=DAYS[0], last_day=DAYS[1], now=now, valid_days=30)


@pytest.fixture
def tokens(site: Site) -> tuple[str, str]:
    """A link for 李家洼村 and one for 沙窝村, whose 12-08 and 12-09 programs are exported too."""
    with session(site.engine) as s:
        for day in DAYS:
            for slot in ("morning", "evening"):
                records.mark_program(s, day=day, slot=slot, village_id=OTHER, status=S.EXPORTED,
                                     at=datetime(2026, 12, 7, 20, 0, tzinfo=TZ))
    return link(site), link(site, OTHER)


def program_rows(site: Site, village: str, day: date, slot: str) -> list[Broadcast]:
    return rows(site.engine, Broadcast, Broadcast.village_id == village, Broadcast.date == day, Broadcast.slot == slot)


def tap(phone: TestClient, token: str, program: str, name: str = "王支书"):  # type: ignore[no-untyped-def]
    """What the 已播放 button posts: the page's CSRF token, the name field and the program."""
    page = phone.get(f"/c/{token}")
    assert page.status_code == 200, page.text[-300:]
    return phone.post(f"/c/{token}", data={"csrf_token": CSRF.search(page.text).group(1), "confirmed_by": name,
                                           "program": program})


def test_the_phone_page_needs_no_login_and_shows_only_its_villages_exported_programs(site: Site, tokens) -> None:
    mine, _ = tokens
    page = site.client().get(f"/c/{mine}")
    assert page.status_code == 200
    text = page.text
    assert "李家洼村 播出确认" in text and "12月8日" in text and "12月9日" in text
    assert set(re.findall(r'name="program" value="([^"]+)"', text)) == {
        "2026-12-08|morning", "2026-12-08|evening", "2026-12-09|morning", "2026-12-09|evening"}
    assert "戴好头盔" in text or re.search(r'<div class="what">[^<]*[\u4e00-\u9fff]', text)  # script titles, not ids
    for other in ("沙窝村", OTHER, "大庄村", "dazhuang-01", "<nav>", "/logout"):
        assert other not in text, other
    assert 'name="confirmed_by"' in text and "required" in text
    assert 'content="width=device-width, initial-scale=1"' in text


def test_tapping_aired_records_a_confirmation_entered_by_qr_with_the_slot_start(site: Site, tokens) -> None:
    mine, _ = tokens
    phone = site.client()
    response = tap(phone, mine, "2026-12-09|evening")
    assert response.status_code == 303 and response.headers["location"] == f"/c/{mine}"
    after = phone.get(f"/c/{mine}").text
    assert "已记录：12月9日 晚间的节目已播放（王支书）。谢谢！" in after
    assert 'value="王支书"' in after  # the name is remembered for the next program
    assert 'value="2026-12-09|evening"' not in after and "已确认" in after and "录入于 12-10 09:30" in after
    for row in program_rows(site, MINE, DAYS[1], "evening"):
        assert (row.status, row.evidence, row.confirmed_by, row.entered_by) == (
            S.CONFIRMED, Evidence.CONFIRMED, "王支书", "扫码")
        assert row.aired_at == row.scheduled_at and row.confirmed_at == NOW
    assert {r.status for r in rows(site.engine, Broadcast, Broadcast.village_id == OTHER,
                                   Broadcast.date.in_(DAYS))} == {S.EXPORTED}


def test_a_link_cannot_reach_another_villages_programs(site: Site, tokens) -> None:
    mine, theirs = tokens
    phone = site.client()
    # The village comes from the token, never from the form: a post names only a day and a slot.
    assert tap(phone, mine, "2026-12-07|morning").status_code == 303
    assert "不在这个二维码对应的U盘里" in phone.get(f"/c/{mine}").text
    assert {r.status for r in rows(site.engine, Broadcast, Broadcast.village_id == OTHER)} <= {S.EXPORTED, S.PLANNED}
    assert tap(phone, theirs, "2026-12-08|morning").status_code == 303
    assert {r.status for r in program_rows(site, OTHER, DAYS[0], "morning")} == {S.CONFIRMED}
    assert {r.status for r in program_rows(site, MINE, DAYS[0], "morning")} == {S.EXPORTED}


def test_a_post_without_a_name_or_the_pages_csrf_token_records_nothing(site: Site, tokens) -> None:
    mine, _ = tokens
    phone = site.client()
    assert tap(phone, mine, "2026-12-08|morning", name=" ").status_code == 303
    assert "请先在上面写上您的名字" in phone.get(f"/c/{mine}").text
    forged = site.client().post(f"/c/{mine}", data={"csrf_token": "x", "confirmed_by": "王",
                                                    "program": "2026-12-08|morning"})
    assert forged.status_code == 303
    assert {r.status for r in program_rows(site, MINE, DAYS[0], "morning")} == {S.EXPORTED}


def test_posts_are_limited_per_link_per_minute(site: Site, tokens) -> None:
    mine, theirs = tokens
    phone = site.client()
    csrf = CSRF.search(phone.get(f"/c/{mine}").text).group(1)
    form = {"csrf_token": csrf, "confirmed_by": "王支书", "program": "2026-12-08|morning"}
    codes = [phone.post(f"/c/{mine}", data=form).status_code for _ in range(21)]
    assert codes[:20] == [303] * 20 and codes[20] == 429
    refused = phone.post(f"/c/{mine}", data=form)
    assert refused.status_code == 429 and "每分钟最多 20 次" in refused.text
    assert tap(site.client(), theirs, "2026-12-08|morning").status_code == 303  # another link is not held up


def test_an_expired_a_revoked_and_an_unknown_link_say_so_and_record_nothing(site: Site, tokens) -> None:
    mine, theirs = tokens
    phone = site.client()
    csrf = CSRF.search(phone.get(f"/c/{mine}").text).group(1)
    site.clock.now = datetime(2027, 1, 9, 0, 0, tzinfo=TZ)  # 30 days after 12-09 ended
    expired = phone.get(f"/c/{mine}")
    assert expired.status_code == 410 and "这个二维码已过期（有效期到 2027-01-09 00:00）" in expired.text
    posted = phone.post(f"/c/{mine}", data={"csrf_token": csrf, "confirmed_by": "王", "program": "2026-12-08|morning"})
    assert posted.status_code == 410
    site.clock.now = NOW
    result = CliRunner().invoke(cli, ["confirm-link", "revoke", "沙窝村", "-w", str(site.workspace)])
    assert result.exit_code == 0, result.output
    revoked = site.client().get(f"/c/{theirs}")
    assert revoked.status_code == 410 and "停用" in revoked.text and "沙窝村" not in revoked.text
    unknown = site.client().get("/c/" + "A" * 22)
    assert unknown.status_code == 404 and "没有这个二维码链接" in unknown.text
    assert {r.status for r in rows(site.engine, Broadcast, Broadcast.date.in_(DAYS),
                                   Broadcast.village_id.in_([MINE, OTHER]))} == {S.EXPORTED}


def test_today_shows_the_air_time_with_the_entry_time_apart(site: Site, tokens, editor: TestClient) -> None:
    """Once 上次成功播出 read the time the confirmation was typed in."""
    mine, _ = tokens
    site.clock.now = NOW + timedelta(hours=9)  # 18:30: entered long after the 12-09 evening slot aired
    assert tap(site.client(), mine, "2026-12-09|evening").status_code == 303
    data = editor.get("/today.json").json()
    lijiawa = next(x for x in data["slots"] if x["village_id"] == MINE)
    assert (lijiawa["last_success"], lijiawa["last_entered"]) == ("12-09 18:30", "12-10 18:30")
    page = editor.get("/today").text
    row = re.search(r'<tr class="st-\w+">\s*<td data-label="村"><a href="/villages/dazhuang-05">.*?</tr>', page, re.S)
    assert "12-09 18:30" in row.group(0) and "录入于 12-10 18:30" in row.group(0)
    village = editor.get(f"/villages/{MINE}").text
    assert "播出 2026-12-09 18:30" in village and "王支书 确认" in village and "扫码 录入于 2026-12-10 18:30" in village


# --- the paste box ---------------------------------------------------------------------------------


def test_pasted_lines_are_confirmed_by_the_editor_and_bad_lines_named_with_their_text(site: Site,
                                                                                  editor: TestClient) -> None:
    page = editor.get("/records/import")
    assert page.status_code == 200 and '<textarea name="lines"' in page.text and "播出确认" in page.text
    lines = "李家洼村，12月8日，早间，王支书\ndazhuang-05,2026-12-08,晚间,姓名\n"
    response = editor.post("/records/import", data={"csrf_token": CSRF.search(page.text).group(1), "lines": lines})
    assert response.status_code == 200
    text = response.text
    assert "已确认 <b>1</b> 行" in text
    assert "第 2 行 <code>dazhuang-05,2026-12-08,晚间,姓名</code>：confirmed_by 还是“姓名”两个字" in text
    assert "第 1 行：提醒：日期 12月8日 → 2026-12-08" in text
    assert "dazhuang-05,2026-12-08,晚间,姓名\n</textarea>" in text  # kept for the fix
    for row in program_rows(site, MINE, DAYS[0], "morning"):
        assert (row.status, row.confirmed_by, row.entered_by, row.aired_at) == (S.CONFIRMED, "王支书", "wang",
                                                                                row.scheduled_at)
    listed = editor.get("/records/import").text.split('id="recent"')[1]
    assert "李家洼村" in listed and "wang 录入于 12-10 09:30" in listed and "12-08 06:30" in listed


def test_the_paste_box_refuses_empty_input_and_viewers(site: Site, editor: TestClient, viewer: TestClient) -> None:
    csrf = CSRF.search(editor.get("/records/import").text).group(1)
    empty = editor.post("/records/import", data={"csrf_token": csrf, "lines": "  \n"})
    assert empty.status_code == 400 and "没有粘贴任何内容" in empty.text
    page = viewer.get("/records/import")
    assert page.status_code == 200 and '<textarea name="lines"' not in page.text
    refused = viewer.post("/records/import", data={"csrf_token": CSRF.search(page.text).group(1),
                                                   "lines": "dazhuang-05,2026-12-08,早间,王支书"})
    assert refused.status_code == 403
    assert {r.status for r in program_rows(site, MINE, DAYS[0], "morning")} == {S.EXPORTED}
    with session(site.engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Broadcast).where(
            Broadcast.status == S.CONFIRMED)) == 0

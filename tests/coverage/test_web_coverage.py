"""The dashboard's coverage pages: reach by evidence, 上次成功播出 as the air time, and silence read as 漏播."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient
from web_site import Site, editor, seeded_db, site  # noqa: F401  (fixtures)

from outreach.db import session
from outreach.models import Broadcast


def stat(page: str, label: str) -> int:
    found = re.search(rf"<b>(\d+)</b><span>{label}", page)
    assert found, f"no {label} figure on the page"
    return int(found.group(1))


def test_campaign_page_shows_reach_by_evidence_and_reads_silence_as_missed(site: Site, editor: TestClient) -> None:
    page = editor.get("/campaigns/winter-traffic").text
    for header in ("已确认", "已监听", "仅有播放记录", "已导出待确认", "上次成功播出"):
        assert f"<th class=\"num\">{header}</th>" in page or f"<th>{header}</th>" in page
    assert "（仅有播放记录）" in page  # 大庄村's plays rest on the player alone
    with session(site.engine) as s:
        stored = s.scalar(sa.select(sa.func.count()).select_from(Broadcast).where(
            Broadcast.campaign_id == "winter-traffic", Broadcast.status == "missed"))
    # 沙窝村 (hexi-04) was planned 12-01..12-09 and never played: on 12-10 that is 漏播, not 待播.
    assert stat(page, "漏播") > stored
    overview = editor.get("/campaigns").text
    assert "仅有播放记录" in overview and "上次成功播出" in overview


def test_gaps_page_counts_the_missed_slots(editor: TestClient) -> None:
    page = editor.get("/gaps?campaign=winter-traffic&days=7").text
    row = re.search(r'沙窝村</a></td><td[^>]*>[^<]*</td>\s*<td[^>]*>[^<]*</td><td[^>]*>[^<]*</td><td data-label="漏播"[^>]*>'
                    r"(\d+)</td>", page)
    assert row and int(row.group(1)) > 0

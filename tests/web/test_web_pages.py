"""Pages show the data: 今天, campaigns, villages, gaps, plan, markets, packs and ZIPs; bad input; secret and users file."""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import (
    DOWNLOAD,
    TZ,
    S,
    Site,
    client_as,
    login,
    rows,
    token,
    write_pack,
)

from outreach.config import load_config
from outreach.db import session
from outreach.models import Broadcast
from outreach.records import mark_program
from outreach.web import create_app
from outreach.web.auth import SECRET_FILE, USERS_FILE


def test_today_puts_failures_first_with_their_reason(site: Site, editor: TestClient) -> None:
    site.clock.now = datetime(2026, 12, 5, 6, 40, tzinfo=TZ)  # the 06:30 slots are still within grace
    with session(site.engine) as s:
        mark_program(s, day=date(2026, 12, 5), slot="morning", village_id="hexi-04", status=S("failed"),
                     at=datetime(2026, 12, 5, 6, 31, tzinfo=TZ), error="播放器没有声音输出")
    assert editor.get("/").headers["location"] == "/today"
    page = editor.get("/today").text
    first = re.search(r'<tbody>\s*<tr class="st-(\w+)">(.*?)</tr>', page.split('id="slots"')[1], re.S)
    assert first.group(1) == "failed" and "播放器没有声音输出" in first.group(2)
    data = editor.get("/today.json").json()
    assert data["slots"][0]["status"] in ("failed", "missed") and data["totals"]["failed"] == 1
    # dazhuang-01's evening (logged missed) and dazhuang-04's 06:00 slot: nothing aired by 06:15, nothing wrote it.
    assert data["totals"]["missed"] == 2
    assert {t["id"] for t in data["townships"]} >= {"dazhuang", "hexi"}
    dz = next(x for x in data["slots"] if x["village_id"] == "dazhuang-01")
    assert dz["last_success"].startswith("12-05")
    assert dz["online"] is None
    # On a phone: only what needs attention, in the page and in its refresh; the counts stay whole.
    short = editor.get("/today?only=problems").text
    rows = re.findall(r'<tr class="st-(\w+)">', short.split('id="slots"')[1])
    assert rows and set(rows) <= {"failed", "missed", "interrupted"} and len(rows) == 3
    assert 'data-src="/today.json?only=problems"' in short and "看全部" in short
    only = editor.get("/today.json?only=problems").json()
    assert [x["status"] for x in only["slots"]] == rows and only["totals"] == data["totals"]
    assert len(data["slots"]) > len(only["slots"])
    quiet = editor.get("/today.json?only=problems&township=lishu").json()
    assert quiet["slots"] == [] and "今天没有出问题的节目。" in editor.get("/today?only=problems&township=lishu").text


def test_pack_page_links_a_zip_per_village_and_township(site: Site, editor: TestClient) -> None:
    # What the ZIP holds (the exported pack) is tested in tests/delivery/test_usb_zip.py.
    write_pack(site.workspace)
    page = editor.get("/packs").text
    assert "<audio" in page and "/packs/zip?village=dazhuang-05" in page and "/packs/zip?township=dazhuang" in page
    for query in ("village=hexi-04", "village=x", "township=nowhere"):  # x: the tampered manifest entry
        assert editor.get(f"/packs/zip?{query}").status_code == 404
    assert not list(site.workspace.rglob("*.zip")) and not list(site.workspace.rglob("*.part"))


def test_a_viewer_hears_the_pack_but_cannot_zip_it(site: Site, viewer: TestClient) -> None:
    # A ZIP is an export: it logs the rows as exported and carries a QR link that confirms broadcasts.
    write_pack(site.workspace)
    page = viewer.get("/packs").text
    assert "<audio" in page and "/packs/zip" not in page
    refused = viewer.get("/packs/zip?village=dazhuang-05")
    assert refused.status_code == 403 and "打包下载节目包" in refused.text


def test_csp_allows_own_scripts_and_media_only(editor: TestClient) -> None:
    csp = editor.get("/today").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "media-src 'self'" in csp and "unsafe-inline" not in csp


# --- bad input ----------------------------------------------------------------------------------------


SQLISH = "x' OR '1'='1"


@pytest.mark.parametrize("path,status,text", [
    ("/campaigns/no-such-campaign", 404, "没有宣传活动"),
    (f"/campaigns/{SQLISH}", 404, "没有宣传活动"),
    ("/villages/nowhere-99", 404, "没有村庄"),
    ("/villages/dazhuang-01'; DROP TABLE broadcast; --", 404, "没有村庄"),
    ("/markets/no-market", 404, "没有集市"),
    ("/gaps?campaign=nope", 404, "没有宣传活动"),
    (f"/gaps?campaign={SQLISH}", 404, "没有宣传活动"),
    ("/gaps?days=0", 400, "超出了范围"),
    ("/gaps?days=-3", 400, "超出了范围"),
    ("/gaps?days=100000", 400, "超出了范围"),
    ("/gaps?days=1;DROP", 400, "不是整数"),
    ("/gaps?days=", 200, "覆盖缺口"),
    ("/plan?from=2026-13-01", 400, "不是有效的日期"),
    ("/plan?from=12/10/2026", 400, "年-月-日"),
    ("/plan?from=' OR 1=1 --", 400, "不是有效的日期"),
    ("/plan?days=0", 400, "超出了范围"),
    ("/plan?days=400", 400, "超出了范围"),
    ("/plan?days=9999999999999999999999", 400, "超出了范围"),
    ("/plan?days=" + "9" * 5000, 400, "超出了范围"),
    ("/plan?village=nowhere", 404, "没有村庄"),
    (f"/plan?village={SQLISH}", 404, "没有村庄"),
    ("/villages/dazhuang-01?from=2026-12-09&to=2026-12-01", 400, "早于开始日期"),
    ("/villages/dazhuang-01?from=2020-01-01&to=2026-12-01", 400, "太长"),
    ("/villages/dazhuang-01?from=yesterday", 400, "不是有效的日期"),
    ("/markets/dazhuang-ji?from=2026-12-09&to=2026-12-01", 400, "早于开始日期"),
    ("/markets/dazhuang-ji?to=9999-99-99", 400, "不是有效的日期"),
    ("/plan?from=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/plan?from=9999-12-31&days=1", 400, "超出了能处理的日期范围"),
    ("/plan?from=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/plan?from=2099-12-01&days=31", 200, "广播安排"),
    ("/plan?from=2099-12-31&days=31", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?from=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?to=0001-01-01", 400, "超出了能处理的日期范围"),
    ("/villages/dazhuang-01?from=9999-12-31&to=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/markets/dazhuang-ji?from=0001-01-01&to=0001-01-02", 400, "超出了能处理的日期范围"),
    ("/markets/dazhuang-ji?to=9999-12-31", 400, "超出了能处理的日期范围"),
    ("/scripts/../../etc", 404, ""),
    ("/no/such/page", 404, "页面不存在"),
])
def test_bad_input_is_400_or_404_never_500(editor: TestClient, path: str, status: int, text: str) -> None:
    response = editor.get(path)
    assert response.status_code == status, response.text[-500:]
    assert text in response.text
    if status >= 400:
        assert '<html lang="zh-CN">' in response.text


@pytest.mark.parametrize("path,form,status", [
    ("/villages/dazhuang-05/confirm", {"date": "2026-12-08", "slot": "noon"}, 400),
    ("/villages/dazhuang-05/confirm", {"date": "08.12.2026", "slot": "morning"}, 400),
    ("/villages/dazhuang-05/confirm", {"slot": "morning"}, 400),
    (f"/villages/{SQLISH}/confirm", {"date": "2026-12-08", "slot": "morning"}, 404),
    ("/markets/nowhere/handouts", {"date": "2026-12-08"}, 404),
    ("/scripts/no-such-script/approve", {}, 404),
    (f"/scripts/{SQLISH}/approve", {}, 404),
])
def test_bad_posts_are_400_or_404(site: Site, editor: TestClient, path: str, form: dict[str, str],
                                  status: int) -> None:
    # Approving is a reviewer's action: an editor is refused (403) before the script is looked up.
    client = client_as(site, "li", "reviewer") if path.endswith("/approve") else editor
    response = client.post(path, data={**form, "csrf_token": token(client, "/campaigns")})
    assert response.status_code == status
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))


def test_get_on_a_form_action_is_405_in_chinese(editor: TestClient) -> None:
    response = editor.get("/markets/dazhuang-ji/handouts")
    assert response.status_code == 405 and "操作方式不对" in response.text


def test_broken_campaigns_file_is_a_400_page_not_a_500(site: Site, editor: TestClient) -> None:
    (site.workspace / "schedules" / "campaigns.yaml").write_text("campaigns: [unclosed\n", encoding="utf-8")
    response = editor.get("/plan")
    assert response.status_code == 400 and "无法完成" in response.text and "campaigns.yaml" in response.text
    overview = editor.get("/campaigns")
    assert overview.status_code == 200 and "目标村名单读取失败" in overview.text


def test_unexpected_error_is_a_chinese_500_page_and_logged(site: Site, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from outreach.web import data_places

    client = TestClient(site.app, raise_server_exceptions=False, follow_redirects=False)  # type: ignore[arg-type]
    login(client)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(data_places, "villages", boom)
    with caplog.at_level("ERROR", logger="outreach.web"):
        response = client.get("/villages")
    assert response.status_code == 500 and "系统内部错误" in response.text
    assert "disk on fire" not in response.text
    assert any("disk on fire" in r.getMessage() or (r.exc_info and "disk on fire" in str(r.exc_info[1]))
               for r in caplog.records)


# --- pages show the data ----------------------------------------------------------------------------


def test_campaign_overview_counts_and_rolls_up_by_township(editor: TestClient) -> None:
    page = editor.get("/campaigns").text
    assert "冬季道路交通安全宣传" in page and "大庄镇" in page and "已覆盖村 / 目标村" in page
    detail = editor.get("/campaigns/winter-traffic").text
    assert "按乡镇汇总" in detail and "大庄村" in detail and "从未播出" in detail  # targeted, never reached


def test_village_page_lists_its_as_run_history(editor: TestClient) -> None:
    page = editor.get("/villages/dazhuang-01?from=2026-12-01&to=2026-12-09").text
    assert "已播" in page and "漏播" in page and "2026-12-05" in page
    assert "播出 2026-12-01 06:31" in page  # UTC in the database, Beijing time on the page


def test_gaps_page_lists_unreached_villages_and_unconfirmed_exports(editor: TestClient) -> None:
    page = editor.get("/gaps?campaign=winter-traffic&days=7").text
    assert "沙窝村" in page  # hexi-04: planned but never played
    assert "李家洼村" in page  # dazhuang-05: exported 12-08, not confirmed


def test_week_plan_starts_today_in_shanghai(site: Site, editor: TestClient) -> None:
    site.clock.now = datetime(2026, 12, 10, 17, 0, tzinfo=ZoneInfo("UTC"))  # 01:00 on Dec 11 in Beijing
    page = editor.get("/plan?village=lishu-07").text
    assert "2026-12-11 起 7 天" in page and "12月17日" in page and "12月10日" not in page
    assert "马家店村" in page and "早" in page and "晚" in page


def test_market_page_shows_totals_and_upcoming_market_days(editor: TestClient) -> None:
    page = editor.get("/markets/dazhuang-ji").text
    assert "大庄集" in page and "120" in page and "李警官" in page and "近期集日" in page
    assert "县城大集" in editor.get("/markets").text


# --- pack downloads ----------------------------------------------------------------------------


def test_pack_list_and_download(site: Site, editor: TestClient) -> None:
    file = write_pack(site.workspace)
    page = editor.get("/packs").text
    assert "李家洼村" in page and "下载" in page and "secret.txt" not in page
    response = editor.get(DOWNLOAD)
    assert response.status_code == 200 and response.content == file.read_bytes()
    assert "dazhuang-05_2026-12-11_morning.mp3" in response.headers["content-disposition"]


@pytest.mark.parametrize("path", [
    "/packs/files/../secret.txt",
    "/packs/files/..%2Fsecret.txt",
    "/packs/files/%2e%2e/secret.txt",
    "/packs/files/%2e%2e%2fsecret.txt",
    "/packs/files/..%5Csecret.txt",
    "/packs/files//etc/passwd",
    "/packs/files/%2Fetc%2Fpasswd",
    "/packs/files/manifest.json",
    "/packs/files/dazhuang_大庄镇/../../outreach.toml",
    "/packs/files/dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-11_morning.mp3%00.txt",
    "/packs/files/",
])
def test_pack_download_cannot_leave_the_pack_folder(site: Site, editor: TestClient, path: str) -> None:
    write_pack(site.workspace)
    response = editor.get(path)
    assert response.status_code == 404
    assert "top secret" not in response.text and "database_url" not in response.text


def test_pack_symlink_out_of_the_folder_is_not_served(site: Site, editor: TestClient) -> None:
    file = write_pack(site.workspace)
    file.unlink()
    file.symlink_to(site.workspace / "secret.txt")
    assert editor.get(DOWNLOAD).status_code == 404


def test_broken_manifest_shows_a_message(site: Site, editor: TestClient) -> None:
    write_pack(site.workspace)
    (site.workspace / "packs" / "manifest.json").write_text("{not json", encoding="utf-8")
    page = editor.get("/packs")
    assert page.status_code == 200 and "读不出来" in page.text
    assert editor.get(DOWNLOAD).status_code == 404


# --- secret, users file, CLI ------------------------------------------------------------------------


def test_secret_file_is_private_and_reused(site: Site) -> None:
    path = site.workspace / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    client = site.client()
    login(client)
    again = create_app(load_config(site.workspace), now=site.clock, engine=site.engine)
    assert path.read_text() == before
    follower = TestClient(again, follow_redirects=False)
    follower.cookies.update(client.cookies)
    assert follower.get("/villages").status_code == 200  # the same secret signs the same sessions


def test_tampered_session_cookie_is_ignored(site: Site, editor: TestClient) -> None:
    value = editor.cookies.get("outreach_session")
    assert value
    editor.cookies.clear()  # replace the cookie, rather than send a second one beside it
    editor.cookies.set("outreach_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert editor.get("/villages").status_code == 303


def test_cli_user_add_and_list(workspace: Path) -> None:
    from outreach.cli import web_cmds  # noqa: F401  (registers `serve` and `user`)
    from outreach.cli.base import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["user", "add", "王秀兰", "--role", "editor", "--password-stdin", "-w",
                                 str(workspace)], input="long-enough-pw\n")
    assert result.exit_code == 0, result.output
    users_file = workspace / USERS_FILE
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    stored = json.loads(users_file.read_text("utf-8"))["users"][0]
    assert stored["name"] == "王秀兰" and stored["hash"].startswith("$argon2id$") and "long-enough-pw" not in str(stored)
    listed = runner.invoke(cli, ["user", "list", "--json", "-w", str(workspace)])
    assert json.loads(listed.output) == [{"name": "王秀兰", "role": "editor", "created": stored["created"]}]
    dup = runner.invoke(cli, ["user", "add", "王秀兰", "--role", "viewer", "--password-stdin", "-w",
                              str(workspace)], input="long-enough-pw\n")
    assert dup.exit_code == 1 and "用户 '王秀兰' 已经在" in dup.output and "请先删除这个用户" in dup.output
    short = runner.invoke(cli, ["user", "add", "li", "--role", "viewer", "--password-stdin", "-w", str(workspace)],
                          input="short\n")
    assert short.exit_code == 1 and "密码只有 5 个字符；至少要 8 个" in short.output
    role = runner.invoke(cli, ["user", "add", "li", "--role", "root", "--password-stdin", "-w", str(workspace)],
                         input="long-enough-pw\n")
    assert role.exit_code == 2


def test_serve_without_users_says_how_to_add_one(workspace: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from outreach.cli import web_cmds  # noqa: F401
    from outreach.cli.base import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert calls == [("127.0.0.1", 8123)]
    assert "outreach user add" in result.output
    assert os.path.exists(workspace / SECRET_FILE)

"""Security review of the script review path: approval seals exactly the version heard, a browser edit of an
approved script blocks only that script, one title cap, and approval keeps a file's bytes (BOM, line endings)."""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import heard_page

from outreach.authoring import review
from outreach.cli import cli
from outreach.config import Config, load_config
from outreach.content.script_model import MAX_TITLE, Script
from outreach.content.script_writer import ScriptChanged, approve_script
from outreach.content.scripts import check_content, read_script
from outreach.db import open_migrated
from outreach.errors import OutreachError, ScriptError
from outreach.files import write_text_atomic
from outreach.planning.plan import DRAFT_AFTER_EDIT
from outreach.web import create_app
from outreach.web.auth import USERS_FILE, UserStore

pytestmark = pytest.mark.security

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 10, 9, 30, tzinfo=TZ)
TODAY = NOW.date()
PASSWORD = "qinghe-2026"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TRIES = 200

RACE_ID = "traffic-race"
FIELDS = {"id": RACE_ID, "topic": "traffic", "title": "骑车戴头盔", "engine": "espeak", "voice": "", "rate": "4",
          "repeat": "1", "priority": "5", "valid_from": "", "valid_until": ""}
TEXTS = ("村民朋友们，骑电动车一定要戴好头盔，有事请拨打110。",
         "村民朋友们，骑电动车不戴头盔也没关系，有事不用拨打110。")  # what nobody may seal unheard


# --- approval is a compare-and-swap of the version heard ------------------------------------------------------


@dataclass
class Desk:
    """A workspace, its database and the two previews a reviewer may have heard (one per text)."""

    config: Config
    engine: sa.Engine
    path: Path
    heard: dict[str, str]        # content hash -> sha256 of that version's preview clip
    texts: dict[str, str]        # content hash -> the text of that version


@pytest.fixture
def desk(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'review.db'}")
    config = load_config(workspace)
    engine = open_migrated(config.resolved_database_url())
    path = config.scripts_dir / f"{RACE_ID}.md"
    heard: dict[str, str] = {}
    texts: dict[str, str] = {}
    for i, text in enumerate(TEXTS):
        content = review.compose(FIELDS, text)
        script, problems = review.check_form(config.scripts_dir, content, RACE_ID, config.render.max_chars)
        assert script is not None, problems
        if i == 0:
            review.save_draft(engine, config, content, RACE_ID, base=None, actor="wang", now=NOW)
        pv = review.render_preview(config, script)
        review.record(engine, RACE_ID, "previewed", "wang", NOW, content_hash=pv.content_hash, audio_sha256=pv.sha256)
        heard[pv.content_hash], texts[pv.content_hash] = pv.sha256, text
    yield Desk(config, engine, path, heard, texts)
    engine.dispose()


def _current(desk: Desk) -> tuple[Script, str]:
    script, problems, content = read_script(desk.path)
    assert script is not None and content is not None, problems
    return script, content


def _editor_saves(desk: Desk, stop: threading.Event) -> None:
    """An editor saving the two texts in turn through the browser's save path, as fast as it can."""
    while not stop.is_set():
        try:
            script, content = _current(desk)
        except (AssertionError, OSError):
            continue
        other = TEXTS[1] if script.text == TEXTS[0] else TEXTS[0]
        try:
            review.save_draft(desk.engine, desk.config, review.compose(FIELDS, other, content), RACE_ID,
                              base=content, actor="wang", now=NOW)
        except OutreachError:  # stale (an approval came first) or the lock was busy: try again
            pass


def _plain_rewrites(desk: Desk, stop: threading.Event) -> None:
    """Something outside the program (an editor on the server, a copy) rewriting the file, ignoring any lock."""
    drafts = [review.compose(FIELDS, text) for text in TEXTS]
    i = 0
    while not stop.is_set():
        write_text_atomic(desk.path, drafts[i % 2])
        i += 1


def _race(desk: Desk, writer: Callable[[Desk, threading.Event], None]) -> tuple[int, int, list[str]]:
    """TRIES approvals through review.approve against `writer`; (sealed, refused, mismatches)."""
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(desk, stop), daemon=True)
    thread.start()
    sealed = refused = 0
    mismatches: list[str] = []
    try:
        tries = 0
        while tries < TRIES:
            try:
                script, _ = _current(desk)  # what the reviewer's page showed
            except (AssertionError, OSError):
                continue
            if script.approved:
                continue  # wait for the next edit
            tries += 1
            version = script.content_hash
            try:
                approved = review.approve(desk.engine, desk.config, script, reviewer="li",
                                          heard_sha256=desk.heard[version], version=version, today=TODAY, now=NOW)
            except OutreachError:
                refused += 1
                continue
            sealed += 1
            if approved.content_hash != version or approved.text != desk.texts[version]:
                mismatches.append(f"heard {version}, sealed {approved.content_hash}")
    finally:
        stop.set()
        thread.join()
    # The audit trail: every approval names the audio heard, and that audio is of the version sealed.
    heard_of = {sha: h for h, sha in desk.heard.items()}
    for e in review.trail(desk.engine, RACE_ID):
        if e.action == "approved" and heard_of[e.audio_sha256] != e.content_hash:
            mismatches.append(f"trail: approved {e.content_hash} with the audio of {heard_of[e.audio_sha256]}")
    # Whatever the file says now: a valid seal is a seal of a version somebody heard.
    script, _ = _current(desk)
    if script.approved and script.content_hash not in desk.heard:
        mismatches.append(f"file sealed {script.content_hash}, never heard")
    return sealed, refused, mismatches


def test_editors_racing_approvals_never_get_unheard_text_sealed(desk: Desk) -> None:
    sealed, refused, mismatches = _race(desk, _editor_saves)
    assert mismatches == [], f"{len(mismatches)} of {sealed} approvals sealed text that was not heard"
    assert sealed > 0 and sealed + refused == TRIES


def test_a_plain_rewrite_racing_approvals_never_gets_unheard_text_sealed(desk: Desk) -> None:
    sealed, refused, mismatches = _race(desk, _plain_rewrites)
    assert mismatches == [], f"{len(mismatches)} of {sealed} approvals sealed text that was not heard"
    assert sealed + refused == TRIES


def test_approval_of_a_changed_version_is_refused_with_the_difference(desk: Desk) -> None:
    script, content = _current(desk)
    heard = desk.heard[script.content_hash]
    review.save_draft(desk.engine, desk.config, review.compose(FIELDS, TEXTS[1], content), RACE_ID, base=content,
                      actor="wang", now=NOW)
    with pytest.raises(review.StaleForm) as caught:
        review.approve(desk.engine, desk.config, script, reviewer="li", heard_sha256=heard,
                       version=script.content_hash, today=TODAY, now=NOW)
    assert "被改过了" in str(caught.value) and "现在的文字没有被签发" in str(caught.value)
    assert f"-{TEXTS[0]}" in caught.value.diff and f"+{TEXTS[1]}" in caught.value.diff
    now, _ = _current(desk)
    assert now.status == "draft" and now.text == TEXTS[1]
    assert not [e for e in review.trail(desk.engine, RACE_ID) if e.action == "approved"]
    # The scripts layer alone: a seal asked for another version writes nothing.
    before = desk.path.read_bytes()
    with pytest.raises(ScriptChanged, match="要批准的版本 .* 已经被改过了"):
        approve_script(desk.path, by="李审核", on=TODAY, expect=script.content_hash)
    assert desk.path.read_bytes() == before


# --- the browser ------------------------------------------------------------------------------------------------


@dataclass
class Site:
    workspace: Path
    engine: sa.Engine
    app: object

    def client(self, name: str) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        csrf = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
        assert client.post("/login", data={"csrf_token": csrf, "name": name, "password": PASSWORD,
                                           "next": "/"}).status_code == 303
        return client


def _site(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'web.db'}")
    config = load_config(workspace)
    engine = open_migrated(config.resolved_database_url())
    store = UserStore(workspace / USERS_FILE, FAST_HASHER)
    store.add("wang", "editor", PASSWORD, now=NOW)
    store.add("li", "reviewer", PASSWORD, now=NOW)
    yield Site(workspace, engine, create_app(config, now=lambda: NOW, engine=engine))
    engine.dispose()


@pytest.fixture
def site(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(workspace, tmp_path, monkeypatch)


@pytest.fixture
def rendered_site(rendered_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from _site(rendered_workspace, tmp_path, monkeypatch)


def _edit_form(client: TestClient, script_id: str) -> dict[str, str]:
    """The editor form of a script as the browser would post it back."""
    import html

    page = client.get(f"/scripts/{script_id}/edit").text
    form = {m.group(1): m.group(2) for m in re.finditer(r'<input (?:type="date" )?name="(\w+)" value="([^"]*)"', page)}
    for m in re.finditer(r'<select name="(\w+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', m.group(2))
        form[m.group(1)] = chosen.group(1) if chosen else ""
    text = re.search(r'<textarea name="text"[^>]*>(.*?)</textarea>', page, re.S)
    base = re.search(r'<textarea name="base" hidden>(.*?)</textarea>', page, re.S)
    assert text and base, page[:2000]
    form = {k: html.unescape(v) for k, v in form.items()}
    return form | {"csrf_token": CSRF.search(page).group(1), "text": html.unescape(text.group(1)),  # type: ignore[union-attr]
                   "base": html.unescape(base.group(1)), "action": "save"}


def _browser_edit(site: Site, script_id: str, old: str, new: str) -> TestClient:
    editor = site.client("wang")
    form = _edit_form(editor, script_id)
    assert old in form["text"]
    form["text"] = form["text"].replace(old, new)
    saved = editor.post("/scripts/save", data=form)
    assert saved.status_code == 303, saved.text
    return editor


def test_browser_approval_carries_the_version_shown_and_a_changed_file_gets_the_diff(site: Site) -> None:
    path = site.workspace / "audio_scripts" / "fraud-seven-tools.md"
    editor = site.client("wang")
    form = _edit_form(editor, "fraud-seven-tools")
    form["title"] = "七种工具（改）"
    assert editor.post("/scripts/save", data=form).status_code == 303
    csrf = CSRF.search(editor.get("/scripts/fraud-seven-tools").text).group(1)  # type: ignore[union-attr]
    assert editor.post("/scripts/fraud-seven-tools/preview", data={"csrf_token": csrf}).status_code == 303

    reviewer = site.client("li")
    page = heard_page(reviewer, "fraud-seven-tools")  # 试听 renders in the background (issue 18)
    heard = re.search(r'name="heard" value="([0-9a-f]{64})"', page).group(1)  # type: ignore[union-attr]
    version = re.search(r'name="version" value="([0-9a-f]{16})"', page).group(1)  # type: ignore[union-attr]
    csrf_r = CSRF.search(page).group(1)  # type: ignore[union-attr]
    # Without the version the page showed, nothing is sealed.
    missing = reviewer.post("/scripts/fraud-seven-tools/approve", data={"csrf_token": csrf_r, "heard": heard})
    assert missing.status_code == 403 and "请刷新稿件页面" in missing.text
    # The editor saves again while the reviewer is about to click.
    form = _edit_form(editor, "fraud-seven-tools")
    form["title"] = "七种工具（又改）"
    assert editor.post("/scripts/save", data=form).status_code == 303
    late = reviewer.post("/scripts/fraud-seven-tools/approve",
                         data={"csrf_token": csrf_r, "heard": heard, "version": version})
    assert late.status_code == 409 and "现在的文字没有被签发" in late.text
    assert "-标题：七种工具（改）" in late.text and "+标题：七种工具（又改）" in late.text
    assert "status: draft" in path.read_text("utf-8")


def test_a_browser_edit_of_an_approved_urgent_script_blocks_it_but_the_county_keeps_working(
        rendered_site: Site, tmp_path: Path) -> None:
    site = rendered_site
    ws = site.workspace
    path = ws / "audio_scripts" / "fraud-96110.md"
    assert "status: approved" in path.read_text("utf-8")
    editor = _browser_edit(site, "fraud-96110", "一定要接听，", "一定要接听！")
    text = path.read_text("utf-8")
    assert "status: draft" in text and "approved_by:" in text  # the voided approval is kept as its record
    assert "重新签发之前不会播出" in editor.get("/scripts/fraud-96110").text

    plan = CliRunner().invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-07", "--json", "-w", str(ws)])
    assert plan.exit_code == 0, plan.output
    rows = json.loads(plan.stdout)
    blocked = [b for r in rows for b in r["blocked"]]
    assert blocked and all(b["script_id"] == "fraud-96110" and b["reason"] == DRAFT_AFTER_EDIT for b in blocked)
    assert all("fraud-96110" not in r["script_ids"] for r in rows)
    assert "警报：紧急宣传活动 'alert-fake-refund'：广播稿 'fraud-96110' 在 " in plan.stderr

    out = tmp_path / "usb"
    export = CliRunner().invoke(cli, ["export", "--out", str(out), "--mkdir", "--past", "-w", str(ws),
                                       "--date", "2026-12-01"])
    assert export.exit_code == 0, export.output
    assert "警报：紧急宣传活动 'alert-fake-refund'" in export.stderr
    files = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert files and all("96110来电，一定要接" not in f["scripts"] for f in files)

    check = CliRunner().invoke(cli, ["scripts", "check", "-w", str(ws)])
    assert check.exit_code == 0 and "批准后又被修改过，已退回草稿" in check.output

    viewer = site.client("li")
    week = viewer.get("/plan?from=2026-12-01&days=3")
    assert week.status_code == 200 and "不播：" + DRAFT_AFTER_EDIT in week.text and "警报" in week.text
    assert viewer.get("/calendar").status_code == 200
    assert editor.get("/campaigns/alert-fake-refund/edit").status_code == 200
    assert editor.get("/campaigns/alert-fake-refund").status_code == 200
    # `run` asks the workspace the same question before it starts.
    from outreach.planning.workspace import load, urgent_draft_alerts

    assert urgent_draft_alerts(load(load_config(ws)), date(2026, 12, 1), date(2026, 12, 7))

    # A draft that was never approved is a mistake of whoever listed it in campaigns.yaml (the campaign
    # editor refuses it on save), so it still stops the plan with the fix, as before.
    path.write_text(re.sub(r"(approved_by|approved_on|approval_hash):.*\n", "", path.read_text("utf-8")), "utf-8")
    plan = CliRunner().invoke(cli, ["plan", "--from", "2026-12-01", "--to", "2026-12-01", "-w", str(ws)])
    assert plan.exit_code == 1
    assert "广播稿 'fraud-96110' 还没有批准（状态 draft）；请先批准，或把它从这个宣传活动里删掉" in plan.stderr


# --- small ones ------------------------------------------------------------------------------------------------


GOOD = ("---\nid: traffic-test\ntopic: traffic\ntitle: {title}\nrepeat: 2\npriority: 5\nstatus: draft\n---\n"
        "乡亲们请注意：骑车戴头盔。槐川县公安局交警大队提醒您。\n")


def test_one_title_cap_for_scripts_check_and_the_browser(site: Site, tmp_path: Path) -> None:
    workspace = site.workspace
    (workspace / "audio_scripts" / "traffic-test.md").write_text(GOOD.format(title="长" * 10_000), "utf-8")
    check = CliRunner().invoke(cli, ["scripts", "check", "-w", str(workspace)])
    assert check.exit_code == 1
    assert f"字段 'title'：标题有 10000 个字，超过 {MAX_TITLE} 个字的上限；请缩短标题" in check.output
    ok, problems, _ = check_content(tmp_path / "traffic-test.md", GOOD.format(title="长" * MAX_TITLE), None)
    assert ok is not None and not problems
    script, grouped = review.check_form(tmp_path, GOOD.format(title="长" * (MAX_TITLE + 1)), "traffic-test", 400)
    assert script is None and "超过 100 个字的上限" in grouped["title"][0]
    page = site.client("wang").get("/scripts/new").text
    assert f'name="title" value="" required maxlength="{MAX_TITLE}"' in page


def test_cli_approve_keeps_the_bom_and_every_line_ending(workspace: Path) -> None:
    UserStore(workspace / USERS_FILE, FAST_HASHER).add("王秀兰", "reviewer", PASSWORD, now=NOW)
    body = "乡亲们请注意：\r\n骑车戴头盔。\n\n槐川县公安局交警大队提醒您。\r\n"
    front = "---\r\nid: traffic-test\r\ntopic: traffic  # 交通\r\ntitle: 测试\r\nrepeat: 2\r\npriority: 5\r\nstatus: draft\r\n---\r\n"
    path = workspace / "audio_scripts" / "traffic-test.md"
    path.write_bytes(b"\xef\xbb\xbf" + (front + body).encode("utf-8"))
    result = CliRunner().invoke(cli, ["scripts", "approve", "traffic-test", "--by", "王秀兰", "--on", "2026-12-01",
                                      "--password-stdin", "--heard", "-w", str(workspace)], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf---\r\n")
    assert raw.endswith(("---\r\n" + body).encode("utf-8"))  # the body's own mix of endings, byte for byte
    head = raw[3:raw.index(b"\r\n---\r\n") + 2].decode("utf-8")
    assert re.fullmatch(r"(?:[^\r\n]*\r\n)+", head)  # every front matter line, old and new, ends in CRLF
    assert "status: approved\r\napproved_by: 王秀兰\r\napproved_on: 2026-12-01\r\napproval_hash: " in head
    assert "topic: traffic  # 交通\r\n" in head
    script, problems, _ = read_script(path)
    assert script is not None and script.approved, problems


def test_cli_approve_with_a_hash_seals_only_that_version(workspace: Path) -> None:
    UserStore(workspace / USERS_FILE, FAST_HASHER).add("王秀兰", "reviewer", PASSWORD, now=NOW)
    path = workspace / "audio_scripts" / "traffic-test.md"
    path.write_text(GOOD.format(title="测试"), "utf-8")
    args = ["scripts", "approve", "traffic-test", "--by", "王秀兰", "--password-stdin", "--heard", "-w", str(workspace)]
    wrong = CliRunner().invoke(cli, [*args, "--hash", "0123456789abcdef"], input=PASSWORD + "\n")
    assert wrong.exit_code == 1 and "要批准的版本 0123456789abcdef 已经被改过了" in wrong.stderr
    assert "status: draft" in path.read_text("utf-8")
    script, _, _ = read_script(path)
    assert script is not None
    ok = CliRunner().invoke(cli, [*args, "--hash", script.content_hash], input=PASSWORD + "\n")
    assert ok.exit_code == 0, ok.output
    assert f"approval_hash: {script.content_hash}" in path.read_text("utf-8")


def test_a_draft_keeps_only_a_whole_approval_record(tmp_path: Path) -> None:
    partial = GOOD.format(title="测试").replace("status: draft\n", "status: draft\napproval_hash: 0123456789abcdef\n")
    script, problems, _ = check_content(tmp_path / "traffic-test.md", partial, None)
    assert script is None and problems[0].field == "approval_hash" and "草稿不应有此字段" in problems[0].message
    whole = GOOD.format(title="测试").replace(
        "status: draft\n", "status: draft\napproved_by: 王秀兰\napproved_on: 2026-11-20\n")
    script, problems, _ = check_content(tmp_path / "traffic-test.md", whole, None)
    assert script is not None and not problems
    assert script.edited_after_approval and not script.approved and "王秀兰 于 2026-11-20 批准后" in script.review_note
    path = tmp_path / "traffic-test.md"
    path.write_text(whole, "utf-8")
    assert approve_script(path, by="赵建国", on=date(2026, 11, 21)).approved  # such a draft is approved again
    with pytest.raises(ScriptError, match="无需再批准"):
        approve_script(path, by="赵建国", on=date(2026, 11, 21))

"""Scripts in the browser: draft, preview, review, approve, reject; users managed by an admin."""

from __future__ import annotations

import re
import warnings

import pytest

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import (
    CSRF,
    DRAFT,
    FAST_HASHER,
    Site,
    client_as,
    heard_page,
    page_form,
    rows,
    token,
)

from outreach.config import load_config
from outreach.web.auth import USERS_FILE, UserStore


def test_draft_preview_review_approve_and_an_edit_voids_it(site: Site, editor: TestClient) -> None:
    from outreach.audio.render import verified_clip
    from outreach.content.scripts import load_library
    from outreach.errors import DeliveryError
    from outreach.models import ScriptEvent

    csrf = token(editor, "/scripts/new")
    bad = editor.post("/scripts/save", data={**DRAFT, "repeat": "9", "text": "ab#", "csrf_token": csrf})
    assert bad.status_code == 400
    assert re.search(r'class="field-error" data-field="repeat">[^<]*9 超出范围；请用 1 到 5 的整数', bad.text)
    assert 'data-field="text"' in bad.text
    path = site.workspace / "audio_scripts" / "traffic-test-draft.md"
    assert not path.exists()

    # 试听 saves the draft and goes back to the script page, where the preview is made (issue 18).
    listen = editor.post("/scripts/save", data={**DRAFT, "action": "preview", "csrf_token": csrf},
                         follow_redirects=False)
    assert listen.status_code == 303 and listen.headers["location"] == "/scripts/traffic-test-draft#preview"
    assert "status: draft" in path.read_text("utf-8")
    src = re.search(r'src="(/audio/previews/[^"]+)"', heard_page(editor, "traffic-test-draft")).group(1)
    audio = editor.get(src)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg" and len(audio.content) > 5000

    unchanged = editor.post("/scripts/save", data={**DRAFT, "action": "save", "csrf_token": csrf})
    assert unchanged.status_code == 400 and "已经有稿件了" in unchanged.text
    config = load_config(site.workspace)
    script = next(s for s in load_library(config.scripts_dir, max_chars=400) if s.id == "traffic-test-draft")
    with pytest.raises(DeliveryError):  # a preview is never the clip that airs
        verified_clip(config, script)

    page = editor.get("/scripts/traffic-test-draft").text
    assert "<mark>幺幺零</mark>" in page and "拟稿" in page

    # The same person cannot approve their own script, even as a reviewer.
    own = editor.post("/scripts/traffic-test-draft/approve", data={"csrf_token": token(editor, "/scripts")})
    assert own.status_code == 403
    reviewer = client_as(site, "li", "reviewer")
    page = reviewer.get("/scripts/traffic-test-draft").text
    assert "/approve" in page  # the editor's preview of this very version can be heard
    csrf_r = CSRF.search(page).group(1)
    assert reviewer.post("/scripts/traffic-test-draft/preview", data={"csrf_token": csrf_r}).status_code == 303
    page = heard_page(reviewer, "traffic-test-draft")
    heard = re.search(r'name="heard" value="([0-9a-f]{64})"', page).group(1)
    version = re.search(r'name="version" value="([0-9a-f]{16})"', page).group(1)  # the version the page showed
    assert reviewer.get(f"/audio/previews/traffic-test-draft/{heard}").status_code == 200
    wrong = reviewer.post("/scripts/traffic-test-draft/approve",
                          data={"csrf_token": csrf_r, "heard": "0" * 64, "version": version})
    assert wrong.status_code == 403 and "试听" in wrong.text
    ok = reviewer.post("/scripts/traffic-test-draft/approve",
                       data={"csrf_token": csrf_r, "heard": heard, "version": version})
    assert ok.status_code == 303
    text = path.read_text("utf-8")
    assert "status: approved" in text and "approved_by: li" in text and "approved_on: 2026-12-10" in text
    events = rows(site.engine, ScriptEvent, ScriptEvent.script_id == "traffic-test-draft")
    approved = [e for e in events if e.action == "approved"]
    assert len(approved) == 1 and approved[0].actor == "li" and approved[0].audio_sha256 == heard
    assert approved[0].content_hash == re.search(r"approval_hash: (\w+)", text).group(1)

    # An edit in the browser voids the approval and is kept with its diff.
    form = page_form(editor, "/scripts/traffic-test-draft/edit")
    form["text"] = form["text"].replace("戴好头盔", "戴好安全头盔")
    assert editor.post("/scripts/save", data={**form, "action": "save"}).status_code == 303
    # It stays a draft that keeps the record of the voided approval ("draft after edit": planned, never aired).
    assert "status: draft\napproved_by: li\napproved_on: 2026-12-10\napproval_hash: " in path.read_text("utf-8")
    edited = [e for e in rows(site.engine, ScriptEvent, ScriptEvent.script_id == "traffic-test-draft")
              if e.action == "edited"]
    assert len(edited) == 1 and "+村民朋友们，骑电动车一定要戴好安全头盔" in edited[0].detail
    page = reviewer.get("/scripts/traffic-test-draft").text
    assert "草稿" in page and "修改" in page and "签发" in page

    # A reviewer who last edited it cannot approve it either.
    form = page_form(reviewer, "/scripts/traffic-test-draft/edit")
    form["text"] = form["text"].replace("一定要", "务必")
    assert reviewer.post("/scripts/save", data={**form, "action": "save"}).status_code == 303
    csrf_r = token(reviewer, "/scripts/traffic-test-draft")
    reviewer.post("/scripts/traffic-test-draft/preview", data={"csrf_token": csrf_r})
    heard_page(reviewer, "traffic-test-draft")
    heard = [e for e in rows(site.engine, ScriptEvent, ScriptEvent.action == "previewed")][-1].audio_sha256
    own = reviewer.post("/scripts/traffic-test-draft/approve",
                        data={"csrf_token": csrf_r, "heard": heard, "version": version})
    assert own.status_code == 403 and "不能由您自己签发" in own.text
    assert "status: draft" in path.read_text("utf-8")


def test_a_stale_form_is_refused_and_shows_the_difference(site: Site, editor: TestClient) -> None:
    path = site.workspace / "audio_scripts" / "fraud-seven-tools.md"
    form = page_form(editor, "/scripts/fraud-seven-tools/edit")
    before = path.read_text("utf-8")
    path.write_text(before.replace("priority:", "# changed on the server\npriority:"), "utf-8")
    form["title"] = "改过的标题"
    response = editor.post("/scripts/save", data={**form, "action": "save"})
    assert response.status_code == 409 and "被别人（或命令行）改过了" in response.text
    assert "+# changed on the server" in response.text
    assert "改过的标题" not in path.read_text("utf-8")


def test_reject_needs_a_comment_and_is_recorded(site: Site) -> None:
    from outreach.models import ScriptEvent

    reviewer = client_as(site, "li", "reviewer")
    csrf = token(reviewer, "/scripts/fraud-seven-tools")
    assert reviewer.post("/scripts/fraud-seven-tools/reject", data={"csrf_token": csrf, "comment": " "}).status_code == 400
    assert reviewer.post("/scripts/fraud-seven-tools/reject",
                         data={"csrf_token": csrf, "comment": "热线号码请再核对"}).status_code == 303
    events = rows(site.engine, ScriptEvent, ScriptEvent.action == "rejected")
    assert [(e.actor, e.detail) for e in events] == [("li", "热线号码请再核对")]
    assert "热线号码请再核对" in reviewer.get("/scripts/fraud-seven-tools").text


def test_spoken_form_endpoint_marks_numbers(editor: TestClient) -> None:
    pieces = editor.get("/spoken", params={"text": "请拨打96110，8:30集合"}).json()["pieces"]
    assert ["九六幺幺零", True] in pieces and ["八点三十分", True] in pieces
    assert "".join(p for p, _ in pieces).startswith("请拨打九六幺幺零")


def test_admin_manages_users_in_the_browser(site: Site, editor: TestClient) -> None:
    assert editor.get("/users").status_code == 403
    admin = client_as(site, "boss", "admin")
    csrf = token(admin, "/users")
    added = admin.post("/users", data={"csrf_token": csrf, "action": "add", "name": "新人", "role": "reviewer",
                                       "password": "long-enough-1"})
    assert added.status_code == 303
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    assert store.get("新人").role.value == "reviewer"
    admin.post("/users", data={"csrf_token": csrf, "action": "role", "name": "wang", "role": "viewer"})
    assert store.get("wang").role.value == "viewer"
    assert editor.get("/scripts", follow_redirects=False).status_code == 303  # role change ended the session
    admin.post("/users", data={"csrf_token": csrf, "action": "remove", "name": "zhao"})
    assert store.get("zhao") is None
    assert admin.post("/users", data={"csrf_token": csrf, "action": "remove", "name": "boss"}).status_code == 400

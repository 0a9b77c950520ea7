"""Login, access control, CSRF, roles, the login rate limit, server-side sessions and Origin checks."""

from __future__ import annotations

import json
import threading
import warnings
from datetime import timedelta

import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # starlette 1.x warns that httpx should become httpx2
    warnings.filterwarnings("ignore", message=".*httpx2", category=UserWarning)
    from fastapi.testclient import TestClient

from web_site import (
    DOWNLOAD,
    FAST_HASHER,
    NOW,
    PAGES,
    PASSWORD,
    S,
    Site,
    login,
    rows,
    token,
    write_pack,
)

from outreach.config import load_config
from outreach.models import Broadcast, Handout
from outreach.web import create_app
from outreach.web.auth import USERS_FILE, LoginLimiter, Refusal, UserStore

# --- login -----------------------------------------------------------------------------


def test_login_page_is_chinese_and_sets_no_data(site: Site) -> None:
    response = site.client().get("/login")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text and "登录" in response.text and "用户名" in response.text
    assert "大庄村" not in response.text


def test_login_success_goes_to_next_and_shows_the_user(site: Site) -> None:
    client = site.client()
    response = login(client, next_="/villages")
    assert response.status_code == 303 and response.headers["location"] == "/villages"
    page = client.get("/villages")
    assert page.status_code == 200 and "大庄村" in page.text and "wang（编辑员）" in page.text


@pytest.mark.parametrize("name,password", [("wang", "wrong-password"), ("nobody", PASSWORD), ("", ""),
                                           ("wang", "")], ids=["wrong-password", "unknown-user", "empty", "no-pw"])
def test_login_failure_is_401_in_chinese(site: Site, name: str, password: str) -> None:
    client = site.client()
    response = login(client, name, password)
    assert response.status_code == 401
    assert "用户名或密码不对" in response.text
    assert client.get("/campaigns").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(site: Site, target: str) -> None:
    response = login(site.client(), next_=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_login_page_says_how_to_create_the_first_user(site: Site) -> None:
    (site.workspace / USERS_FILE).unlink()
    response = site.client().get("/login")
    assert "outreach user add" in response.text


def test_logout_needs_csrf_and_ends_the_session(editor: TestClient) -> None:
    assert editor.post("/logout", data={}).status_code == 403
    assert editor.get("/villages").status_code == 200
    response = editor.post("/logout", data={"csrf_token": token(editor, "/villages")})
    assert response.status_code == 303
    assert editor.get("/villages").status_code == 303


def test_removed_user_loses_access_at_once(site: Site, editor: TestClient) -> None:
    UserStore(site.workspace / USERS_FILE).remove("wang")
    response = editor.get("/villages")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_changed_password_ends_old_sessions(site: Site, editor: TestClient) -> None:
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    store.remove("wang")
    store.add("wang", "editor", "another-pass-1", now=NOW)
    assert editor.get("/villages").status_code == 303


# --- access control ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, DOWNLOAD, "/packs/files/../../etc/passwd"])
def test_logged_out_get_redirects_to_login(site: Site, path: str) -> None:
    write_pack(site.workspace)
    response = site.client().get(path)
    if ".." in path:  # normalised away by the client: no such page
        assert response.status_code == 404
    else:
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert "大庄" not in response.text and "ID3" not in response.text


@pytest.mark.parametrize("path", ["/villages/dazhuang-01/confirm", "/markets/dazhuang-ji/handouts",
                                  "/scripts/fraud-seven-tools/approve"])
def test_logged_out_post_is_401(site: Site, path: str) -> None:
    client = site.client()
    response = client.post(path, data={"csrf_token": token(client)})
    assert response.status_code == 401 and "请先登录" in response.text


def test_every_page_renders_for_a_viewer(viewer: TestClient) -> None:
    for path in PAGES:
        response = viewer.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert '<html lang="zh-CN">' in response.text


def test_pages_send_security_headers_and_a_safe_cookie(site: Site) -> None:
    client = site.client()
    cookie = login(client).headers["set-cookie"].lower()
    assert "outreach_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    response = client.get("/campaigns")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


# --- CSRF ---------------------------------------------------------------------------------


def test_login_without_csrf_is_403(site: Site) -> None:
    client = site.client()
    client.get("/login")
    response = client.post("/login", data={"name": "wang", "password": PASSWORD})
    assert response.status_code == 403 and "安全校验码" in response.text
    assert client.get("/campaigns").status_code == 303


@pytest.mark.parametrize("bad", [None, "", "forged-token"], ids=["missing", "empty", "forged"])
def test_editor_post_without_valid_csrf_is_403(site: Site, editor: TestClient, bad: str | None) -> None:
    form = {"date": "2026-12-09", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王"}
    if bad is not None:
        form["csrf_token"] = bad
    response = editor.post("/markets/dazhuang-ji/handouts", data=form)
    assert response.status_code == 403 and "表单已失效" in response.text
    assert len(rows(site.engine, Handout)) == 1


def test_csrf_token_of_another_session_is_rejected(site: Site, editor: TestClient) -> None:
    other = site.client()
    stolen = token(other)
    response = editor.post("/scripts/fraud-seven-tools/approve", data={"csrf_token": stolen})
    assert response.status_code == 403
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")


def test_login_rotates_the_csrf_token(site: Site) -> None:
    client = site.client()
    before = token(client)
    login(client)
    assert token(client, "/scripts") != before


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("path,form", [
    ("/villages/dazhuang-05/confirm", {"date": "2026-12-08", "slot": "morning"}),
    ("/markets/dazhuang-ji/handouts", {"date": "2026-12-09", "leaflets": "10", "people": "5", "topics": "traffic",
                                       "staff": "赵"}),
    ("/scripts/fraud-seven-tools/approve", {}),
], ids=["confirm", "handout", "approve"])
def test_viewer_cannot_do_editor_actions(site: Site, viewer: TestClient, path: str, form: dict[str, str]) -> None:
    response = viewer.post(path, data={**form, "csrf_token": token(viewer, "/campaigns")})
    assert response.status_code == 403 and "查看员" in response.text
    assert len(rows(site.engine, Handout)) == 1
    assert not rows(site.engine, Broadcast, Broadcast.status == S("confirmed"))
    assert "status: draft" in (site.workspace / "audio_scripts" / "fraud-seven-tools.md").read_text("utf-8")


def test_viewer_sees_no_editor_buttons(viewer: TestClient) -> None:
    assert 'action="/villages/dazhuang-05/confirm"' not in viewer.get("/villages/dazhuang-05").text
    assert 'action="/markets/dazhuang-ji/handouts"' not in viewer.get("/markets/dazhuang-ji").text
    assert "/approve" not in viewer.get("/scripts").text


# --- rate limit -----------------------------------------------------------------------------------


def test_five_failed_logins_lock_the_name_for_five_minutes(site: Site) -> None:
    client = site.client()
    for _ in range(5):
        assert login(client, "wang", "wrong-password").status_code == 401
    locked = login(client, "wang", PASSWORD)
    assert locked.status_code == 429 and "登录尝试太多" in locked.text
    assert int(locked.headers["retry-after"]) > 0
    assert login(client, "zhao", PASSWORD).status_code == 303  # another name is not locked
    site.clock.now = NOW + timedelta(minutes=4, seconds=59)
    assert login(site.client(), "wang", PASSWORD).status_code == 429
    site.clock.now = NOW + timedelta(minutes=5, seconds=1)
    assert login(site.client(), "wang", PASSWORD).status_code == 303


def test_a_successful_login_resets_the_count(site: Site) -> None:
    client = site.client()
    for _ in range(4):
        login(client, "wang", "wrong-password")
    assert login(client, "wang", PASSWORD).status_code == 303
    for _ in range(4):
        assert login(site.client(), "wang", "wrong-password").status_code == 401
    assert login(site.client(), "wang", PASSWORD).status_code == 303


def test_parallel_attempts_cannot_pass_the_limit_together() -> None:
    limiter = LoginLimiter()
    barrier = threading.Barrier(40)
    results: list[Refusal | None] = []

    def guess() -> None:
        barrier.wait()
        results.append(limiter.attempt("wang", "10.0.0.1", NOW).refusal)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(None) == limiter.max_failures == 5
    assert {r.scope for r in results if r} == {"account"}


def test_the_address_limit_covers_every_account() -> None:
    limiter = LoginLimiter()
    allowed = [limiter.attempt(f"guess-{i}", "10.0.0.9", NOW).refusal is None for i in range(30)]
    assert allowed.count(True) == limiter.max_per_address == 20
    refused = limiter.attempt("wang", "10.0.0.9", NOW).refusal
    assert refused is not None and refused.scope == "address" and refused.retry_after_s > 0
    assert limiter.attempt("wang", "10.0.0.10", NOW).refusal is None  # another computer may still try
    assert limiter.attempt("wang", "10.0.0.9", NOW + timedelta(minutes=5, seconds=1)).refusal is None


def test_the_account_limit_holds_from_every_address() -> None:
    limiter = LoginLimiter()
    for i in range(5):
        assert limiter.attempt("wang", f"10.0.1.{i}", NOW).refusal is None
    refused = limiter.attempt("Wang", "10.0.2.1", NOW).refusal
    assert refused is not None and refused.scope == "account"


def test_success_takes_back_its_own_count_but_not_concurrent_guesses() -> None:
    limiter = LoginLimiter()
    for _ in range(30):
        attempt = limiter.attempt("wang", "10.0.0.1", NOW)
        assert attempt.refusal is None
        limiter.succeeded("wang", "10.0.0.1", attempt.ticket)
    assert limiter.retry_after("zhao", "10.0.0.1", NOW) == 0
    right = limiter.attempt("wang", "10.0.0.1", NOW)
    guesses = [limiter.attempt("wang", "10.0.0.1", NOW) for _ in range(4)]  # still being checked
    limiter.succeeded("wang", "10.0.0.1", right.ticket)
    assert all(g.refusal is None for g in guesses)
    assert limiter.attempt("wang", "10.0.0.1", NOW).refusal is None
    assert limiter.attempt("wang", "10.0.0.1", NOW).refusal is not None  # the 4 guesses still count


# --- sessions end on the server, Origin, Secure cookies ---------------------------------------------


def test_logout_kills_a_copy_of_the_cookie(site: Site, editor: TestClient) -> None:
    copy = site.client()
    copy.cookies.update(editor.cookies)
    assert copy.get("/villages").status_code == 200
    assert editor.post("/logout", data={"csrf_token": token(editor, "/villages")}).status_code == 303
    response = copy.get("/villages")  # the old cookie, replayed after logout
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    stored = json.loads((site.workspace / USERS_FILE).read_text("utf-8"))["users"]
    assert {u["name"]: u["session"] for u in stored} == {"wang": 1, "zhao": 0}


def test_logout_leaves_other_users_logged_in_and_a_new_login_works(site: Site, editor: TestClient,
                                                                   viewer: TestClient) -> None:
    editor.post("/logout", data={"csrf_token": token(editor, "/villages")})
    assert viewer.get("/villages").status_code == 200
    again = site.client()
    assert login(again).status_code == 303 and again.get("/villages").status_code == 200


def test_user_cli_and_logouts_do_not_lose_each_others_writes(site: Site) -> None:
    store = UserStore(site.workspace / USERS_FILE, FAST_HASHER)
    threads = [threading.Thread(target=store.end_sessions, args=("wang",)) for _ in range(20)]
    threads.append(threading.Thread(target=store.add, args=("li", "viewer", PASSWORD), kwargs={"now": NOW}))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert store.get("wang").session_version == 20 and store.get("li") is not None


@pytest.mark.parametrize("headers", [
    {"origin": "http://evil.example"},
    {"origin": "http://testserver.evil.example"},
    {"origin": "http://testserver:8080"},
    {"origin": "null"},
    {"sec-fetch-site": "cross-site"},
], ids=["other-site", "suffix", "other-port", "opaque", "fetch-metadata"])
def test_a_post_from_another_site_is_refused(site: Site, editor: TestClient, headers: dict[str, str]) -> None:
    form = {"date": "2026-12-08", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form, headers=headers)
    assert response.status_code == 403 and "请求来源不对" in response.text
    assert len(rows(site.engine, Handout)) == 1
    logout = editor.post("/logout", data={"csrf_token": form["csrf_token"]}, headers=headers)
    assert logout.status_code == 403 and editor.get("/villages").status_code == 200


def test_a_post_from_the_dashboard_itself_passes_the_origin_check(site: Site, editor: TestClient) -> None:
    form = {"date": "2026-12-08", "leaflets": "10", "people": "5", "topics": "traffic", "staff": "王",
            "csrf_token": token(editor, "/markets/dazhuang-ji")}
    response = editor.post("/markets/dazhuang-ji/handouts", data=form,
                           headers={"origin": "http://TestServer", "sec-fetch-site": "same-origin"})
    assert response.status_code == 303


def test_https_only_sets_secure_cookies_and_wants_https_origins(site: Site) -> None:
    config = load_config(site.workspace)
    client = TestClient(create_app(config, now=site.clock, engine=site.engine, https_only=True),
                        base_url="https://testserver", follow_redirects=False)
    response = login(client)
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()
    assert response.headers["strict-transport-security"].startswith("max-age=")
    form = {"csrf_token": token(client, "/villages")}
    assert client.post("/logout", data=form, headers={"origin": "http://testserver"}).status_code == 403
    assert client.post("/logout", data=form, headers={"origin": "https://testserver"}).status_code == 303


def test_https_only_comes_from_outreach_toml_or_the_serve_flag(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from outreach.cli import web_cmds  # noqa: F401
    from outreach.cli.base import cli

    plain = site.client().get("/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    toml = site.workspace / "outreach.toml"
    text = toml.read_text("utf-8")  # the sample has a [web] table: add the key to it, or add the table
    toml.write_text(text.replace("\n[web]\n", "\n[web]\nhttps_only = true\n", 1) if "\n[web]\n" in text
                    else text + "\n[web]\nhttps_only = true\n", "utf-8")
    config = load_config(site.workspace)
    assert config.web.https_only is True
    app = create_app(config, now=site.clock, engine=site.engine)
    cookie = TestClient(app, base_url="https://testserver").get("/login").headers["set-cookie"]
    assert "secure" in cookie.lower()
    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: apps.append(app))
    for flag, expected in (([], True), (["--no-https-only"], False)):
        result = CliRunner().invoke(cli, ["serve", *flag, "-w", str(site.workspace)])
        assert result.exit_code == 0, result.output
        assert apps[-1].state.ctx.https_only is expected  # type: ignore[attr-defined]

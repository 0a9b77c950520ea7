"""Fault injection on the dashboard: a real `outreach serve` process under parallel logins, replayed
cookies, cross-site POSTs and extreme dates."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.faults

PASSWORD = "qinghe-2026"
USERS = ("wang", "zhao", "li", "chen", "sun")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LIMIT_ACCOUNT = 5   # outreach.web.auth.LoginLimiter defaults
LIMIT_ADDRESS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    workspace: Path
    proc: subprocess.Popen[bytes]

    def client(self, address: str = "127.0.0.1") -> httpx.Client:
        """A client whose connections come from `address` (any 127.x.y.z is loopback on Linux)."""
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=self.base, transport=transport, follow_redirects=False, timeout=60)


def _start(workspace: Path, env: dict[str, str], *extra: str) -> Iterator[Server]:
    port = _free_port()
    log = open(workspace / f"serve-{port}.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "outreach", "serve", "--port", str(port), *extra,
                             "-w", str(workspace)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (workspace / f"serve-{port}.log").read_text("utf-8", "replace")
            try:
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "outreach serve did not answer within 90 s"
            time.sleep(0.2)
        yield Server(base, workspace, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db = tmp_path_factory.mktemp("sessions-db") / "web.db"
    return {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Server]:
    """One real `outreach serve` for the module, with five editors (real argon2 hashes)."""
    from outreach.web.auth import USERS_FILE, UserStore
    from tests.conftest import copy_workspace

    workspace = copy_workspace(tmp_path_factory.mktemp("sessions") / "ws")
    store = UserStore(workspace / USERS_FILE)  # argon2 at its real cost, as `outreach user add` makes it
    for name in USERS:
        store.add(name, "editor", PASSWORD, now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    yield from _start(workspace, env)


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


def _burst(server: Server, attempts: list[tuple[str, str]], address: str = "127.0.0.1") -> list[int]:
    """POST every (name, password) to /login at once, each from its own browser session; their statuses."""
    clients = [server.client(address) for _ in attempts]
    tokens = [_login_form(c) for c in clients]
    barrier = threading.Barrier(len(attempts))

    def post(i: int) -> int:
        name, password = attempts[i]
        barrier.wait(30)
        return clients[i].post("/login", data={"csrf_token": tokens[i], "name": name, "password": password,
                                               "next": "/villages"}).status_code

    try:
        with ThreadPoolExecutor(len(attempts)) as pool:
            return list(pool.map(post, range(len(attempts))))
    finally:
        for c in clients:
            c.close()


def test_forty_parallel_wrong_passwords_are_refused_beyond_the_limit(site: Server) -> None:
    statuses = Counter(_burst(site, [("wang", f"wrong-{i}") for i in range(40)]))
    assert statuses == {401: LIMIT_ACCOUNT, 429: 40 - LIMIT_ACCOUNT}
    # The limit is reached: a burst of 30 that holds the right password gets nowhere.
    burst = [("wang", f"wrong-b{i}") for i in range(29)]
    burst.insert(17, ("wang", PASSWORD))
    statuses = Counter(_burst(site, burst))
    assert statuses == {429: 30}


def test_a_burst_with_the_right_password_checks_at_most_the_limit(site: Server) -> None:
    burst = [("zhao", f"wrong-{i}") for i in range(29)]
    burst.insert(11, ("zhao", PASSWORD))
    statuses = Counter(_burst(site, burst))
    # A right password takes back only the failures counted before it, so guesses racing it
    # still count: at most the limit before it and the limit after it are ever checked.
    assert statuses[401] + statuses[303] <= 2 * LIMIT_ACCOUNT
    assert statuses[429] >= 30 - 2 * LIMIT_ACCOUNT
    assert statuses[303] <= 1


def test_one_address_cannot_spray_every_account(site: Server) -> None:
    statuses = Counter(_burst(site, [(f"nobody-{i}", PASSWORD) for i in range(40)], address="127.0.0.2"))
    assert statuses == {401: LIMIT_ADDRESS, 429: 40 - LIMIT_ADDRESS}
    assert _burst(site, [("chen", PASSWORD)], address="127.0.0.2") == [429]  # even the right password
    assert _burst(site, [("chen", PASSWORD)], address="127.0.0.3") == [303]  # another computer may log in


def test_one_account_is_locked_from_every_address(site: Server) -> None:
    for i in range(LIMIT_ACCOUNT):
        assert _burst(site, [("li", "wrong")], address=f"127.0.1.{i + 1}") == [401]
    assert _burst(site, [("li", PASSWORD)], address="127.0.2.1") == [429]


def _logged_in(server: Server, name: str) -> httpx.Client:
    client = server.client()
    response = client.post("/login", data={"csrf_token": _login_form(client), "name": name, "password": PASSWORD})
    assert response.status_code == 303
    return client


def test_a_cookie_replayed_after_logout_is_dead(site: Server) -> None:
    browser = _logged_in(site, "sun")
    stolen = browser.cookies["outreach_session"]
    with site.client("127.0.0.9") as thief:
        thief.cookies.set("outreach_session", stolen)
        assert thief.get("/villages").status_code == 200
        page = browser.get("/villages")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
        replay = thief.get("/villages")
        assert replay.status_code == 303 and replay.headers["location"].startswith("/login")
        assert thief.post("/villages/dazhuang-01/confirm",
                          data={"csrf_token": token, "date": "2026-12-01", "slot": "morning"}).status_code == 401
    users = json.loads((site.workspace / "users.json").read_text("utf-8"))["users"]
    assert next(u["session"] for u in users if u["name"] == "sun") >= 1
    browser.close()


def test_a_post_from_another_site_is_refused(site: Server) -> None:
    browser = _logged_in(site, "sun")
    token = CSRF.search(browser.get("/villages").text).group(1)  # type: ignore[union-attr]
    evil = browser.post("/logout", data={"csrf_token": token}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "请求来源不对" in evil.text
    assert browser.get("/villages").status_code == 200  # still logged in: the logout did not happen
    own = browser.post("/logout", data={"csrf_token": token}, headers={"Origin": site.base})
    assert own.status_code == 303
    browser.close()


@pytest.mark.parametrize("path", [
    "/plan?from=9999-12-31", "/plan?from=0001-01-01", "/plan?from=9999-12-31&days=1",
    "/plan?from=2099-12-31&days=31", "/villages/dazhuang-01?from=0001-01-01",
    "/villages/dazhuang-01?from=9999-12-25&to=9999-12-31", "/markets/dazhuang-ji?from=0001-01-01&to=0001-01-05",
    "/markets/dazhuang-ji?to=9999-12-31", "/gaps?days=99999999999999999999999",
])
def test_extreme_dates_get_a_400_page(site: Server, path: str) -> None:
    browser = _logged_in(site, "sun")
    response = browser.get(path)
    assert response.status_code == 400, response.text[-300:]
    assert '<html lang="zh-CN">' in response.text and "请求有误" in response.text
    browser.close()


def test_serve_https_only_sets_secure_cookies(site: Server, env: dict[str, str]) -> None:
    for server in _start(site.workspace, env, "--https-only"):
        response = httpx.get(server.base + "/login")
        cookie = response.headers["set-cookie"].lower()
        assert "outreach_session=" in cookie and "; secure" in cookie and "httponly" in cookie
        assert response.headers["strict-transport-security"].startswith("max-age=")

"""Commands are set by admins only (outreach.toml), never by a form field, and never through a shell;
and one permission table decides which role may post which dashboard form."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from fastapi import Request
from web_site import CSRF, Site, client_as, login, seeded_db, site, token  # noqa: F401  (fixtures)

from outreach.config import load_config
from outreach.delivery.live import players
from outreach.errors import ConfigError, RegistryError
from outreach.planning.registry import load_registry
from outreach.planning.workspace import load
from outreach.web.page_kit import post_form
from outreach.web.permissions import ALLOWED, FORM_ROUTES, OPEN_ROUTES, Role

pytestmark = pytest.mark.security

OUTREACH = [sys.executable, "-m", "outreach"]
FAKE = str(Path(__file__).resolve().parents[1] / "fake_player.py")
EXPLOIT = "sh -c touch$IFS'pwned';: {file}"


# --- helpers ---------------------------------------------------------------------------------


def _county(ws: Path) -> Path:
    return ws / "schedules" / "county.yaml"


def _set_village(ws: Path, village_id: str, extra: str) -> None:
    """Add `extra` (e.g. 'player: card2') to a flow-style village line of county.yaml."""
    path = _county(ws)
    text, n = re.subn(rf"(- \{{id: {village_id}, [^}}]*)\}}", rf"\1, {extra}}}", path.read_text(encoding="utf-8"))
    assert n == 1
    path.write_text(text, encoding="utf-8")


def _add_players(ws: Path, **named: list[str]) -> None:
    toml = ws / "outreach.toml"
    lines = "".join(f"{name} = {json.dumps(cmd)}\n" for name, cmd in named.items())
    toml.write_text(toml.read_text(encoding="utf-8").replace("[players]\n", "[players]\n" + lines), encoding="utf-8")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTREACH, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TZ": "UTC"})


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under the workspace, by its sha256: to show a refused request wrote nothing."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _post_routes(app: object) -> set[str]:
    """The path of every route of `app` that takes POST (or another unsafe method), routers included."""
    found: set[str] = set()

    def walk(routes: list, prefix: str = "") -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)  # FastAPI >= 0.16x keeps included routers whole
            if inner is not None:
                walk(inner.routes, prefix + getattr(getattr(r, "include_context", None), "prefix", ""))
            elif getattr(r, "methods", None) and set(r.methods) - {"GET", "HEAD", "OPTIONS"}:
                found.add(prefix + r.path)
            elif getattr(r, "routes", None) and not hasattr(r, "methods"):
                walk(r.routes, prefix + getattr(r, "path", ""))

    walk(app.routes)  # type: ignore[attr-defined]
    return found


def _village_form(client, village_id: str = "dazhuang-01") -> dict[str, str]:  # type: ignore[no-untyped-def]
    page = client.get(f"/villages/{village_id}/edit")
    assert page.status_code == 200, page.text[-300:]
    base = re.search(r'name="base" value="([^"]+)"', page.text)
    assert base
    return {"csrf_token": CSRF.search(page.text).group(1), "base": base.group(1), "slot_morning": "",
            "slot_evening": "", "speaker": "networked", "player": ""}


# --- the exploit ------------------------------------------------------------------------------


def test_the_exploit_post_is_refused_and_nothing_lands_in_county_yaml(site: Site) -> None:
    editor = site.client()
    assert login(editor).status_code == 303
    before = _county(site.workspace).read_bytes()
    response = editor.post("/villages/dazhuang-01/edit", data={**_village_form(editor), "player": EXPLOIT})
    assert response.status_code == 400
    assert re.search(r'data-field="player">[^<]*不是已定义的播放程序；只能从下拉框里选「默认」或 card2、ffplay', response.text)
    assert _county(site.workspace).read_bytes() == before
    # The form offers names, never a command box.
    page = editor.get("/villages/dazhuang-01/edit").text
    assert '<select name="player">' in page and '<input name="player"' not in page
    assert re.findall(r'<option value="([^"]*)"', page.split('name="player"')[1].split("</select>")[0]) == \
        ["", "card2", "ffplay"]


def test_the_village_form_accepts_only_configured_players_known_speakers_and_hhmm(site: Site) -> None:
    editor = site.client()
    assert login(editor).status_code == 303
    county = _county(site.workspace)
    refused = [
        ("player", EXPLOIT), ("player", "nosuch"), ("player", "ffplay -nodisp {file}"),
        ("player", '["sh", "-c", "id", "{file}"]'), ("player", "ffplay\nplayer: x"), ("player", "FFPLAY"),
        ("speaker", "loud"), ("speaker", "networked; rm -rf /"), ("speaker", ""),
        ("slot_morning", "6pm"), ("slot_morning", "06:30:00"), ("slot_morning", "24:00"),
        ("slot_evening", "19:60"), ("slot_evening", "１９:３０"), ("slot_evening", '19:30"}\nplayer: x'),
    ]
    for field, value in refused:
        before = county.read_bytes()
        response = editor.post("/villages/dazhuang-01/edit", data={**_village_form(editor), field: value})
        assert response.status_code == 400, (field, value, response.status_code)
        assert f'data-field="{field}"' in response.text, (field, value)
        assert county.read_bytes() == before, (field, value)
    # A configured name is saved as `player: NAME`, and the workspace loads with it.
    response = editor.post("/villages/dazhuang-01/edit", data={**_village_form(editor), "player": "card2",
                                                               "slot_morning": "6:45", "speaker": "offline"})
    assert response.status_code == 303, response.text[-500:]
    line = next(ln for ln in county.read_text("utf-8").splitlines() if ln.startswith("  - {id: dazhuang-01,"))
    assert "speaker: offline" in line and line.endswith(", player: card2}"), line
    village = load(load_config(site.workspace)).registry.villages["dazhuang-01"]
    assert (village.player, village.speaker, village.slot_overrides["morning"].strftime("%H:%M")) == \
        ("card2", "offline", "06:45")
    # 默认 removes the key again.
    assert editor.post("/villages/dazhuang-01/edit", data=_village_form(editor)).status_code == 303
    line = next(ln for ln in county.read_text("utf-8").splitlines() if ln.startswith("  - {id: dazhuang-01,"))
    assert "player" not in line, line


# --- hand-edited files ------------------------------------------------------------------------


def test_a_command_written_in_county_yaml_is_refused_at_load_with_the_fix(workspace: Path) -> None:
    _set_village(workspace, "dazhuang-01", 'player: ["sh", "-c", "touch pwned", "{file}"]')
    line = next(i for i, ln in enumerate(_county(workspace).read_text("utf-8").splitlines(), 1)
                if "id: dazhuang-01," in ln)
    proc = _cli("plan", "-w", str(workspace), "--from", "2026-12-01", "--to", "2026-12-01")
    assert proc.returncode == 1, proc.stdout[-500:]
    assert f"county.yaml:{line}" in proc.stderr and "villages[dazhuang-01].player" in proc.stderr
    assert "不能在这里直接写播放命令" in proc.stderr and "[players]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (workspace / "pwned").exists()


def test_an_unknown_player_name_is_refused_at_load_listing_the_names(workspace: Path) -> None:
    _set_village(workspace, "hexi-01", "player: ipcast")
    proc = _cli("export", "-w", str(workspace), "--date", "2026-12-01", "--past",
                "--out", str(workspace / "out"), "--mkdir")
    assert proc.returncode == 1
    assert "villages[hexi-01].player" in proc.stderr and "未知的播放程序名称 'ipcast'" in proc.stderr, proc.stderr
    assert "card2、ffplay" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(RegistryError, match="未知的播放程序名称 'ipcast'"):
        load_registry(workspace / "schedules", players=load_config(workspace).players)


@pytest.mark.parametrize("where, command, words", [
    ("players", ["sh", "-c", "mpg123 {file}"], "sh -c"),
    ("players", ["busybox", "sh", "-c", "play {file} {village_name}"], "busybox sh -c"),
    ("players", ["/bin/bash", "-ec", "aplay {file}"], "bash -ec"),
    ("players", ["/usr/bin/env", "dash", "-c", "x", "{file}"], "dash -c"),
    ("players", ["python3", "-c", "import os; os.system('{file}')"], "python3 -c"),
    ("players", ["env", "-S", "sh -c {village_name}", "{file}"], "env -S"),
    ("players", ["{village}", "{file}"], "不能含占位符"),
    ("deliver", ["zsh", "-c", "ffplay {file}"], "zsh -c"),
], ids=["sh", "busybox", "bash-ec", "env-dash", "python", "env-S", "placeholder-program", "deliver-zsh"])
def test_a_player_that_runs_text_as_code_is_refused_at_config_load(workspace: Path, where: str,
                                                                    command: list[str], words: str) -> None:
    toml = workspace / "outreach.toml"
    if where == "players":
        _add_players(workspace, horn=command)
    else:
        toml.write_text(re.sub(r"(?m)^player = .*$", "player = " + json.dumps(command), toml.read_text("utf-8")),
                        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(workspace)
    message = str(err.value)
    assert "outreach.toml" in message and ("players.horn" if where == "players" else "deliver.player") in message
    assert words in message and ("脚本文件" in message or "占位符" in message), message


def test_a_shell_player_stops_the_real_cli_before_anything_runs(workspace: Path) -> None:
    _add_players(workspace, horn=["sh", "-c", "touch pwned; ffplay {file}"])
    proc = _cli("run", "-w", str(workspace))
    assert proc.returncode == 1 and "错误：" in proc.stderr and "sh -c" in proc.stderr and "脚本文件" in proc.stderr
    assert "Traceback" not in proc.stderr and not (workspace / "pwned").exists()


# --- routing a named player -------------------------------------------------------------------


def test_run_routes_a_village_to_its_named_player_and_a_name_stays_one_argument(workspace: Path,
                                                                                 tmp_path: Path) -> None:
    log = tmp_path / "starts.jsonl"
    _add_players(workspace, rec=[sys.executable, FAKE, "--log", str(log), "--", "{file}", "{village_name}",
                                 "{slot}"])
    _set_village(workspace, "dazhuang-01", "player: rec")
    county = _county(workspace)
    county.write_text(county.read_text("utf-8").replace("name: 大庄村,", "name: 大庄村$(touch pwned);`id`,"),
                      encoding="utf-8")
    loaded = load(load_config(workspace))  # what `outreach run` loads
    audio = tmp_path / "p.mp3"
    cmd = players.route(loaded.registry, loaded.config, "dazhuang-01", "morning", date(2026, 12, 1), audio)
    assert cmd == [sys.executable, FAKE, "--log", str(log), "--", str(audio), "大庄村$(touch pwned);`id`", "morning"]
    assert players.route(loaded.registry, loaded.config, "dazhuang-02", "morning", date(2026, 12, 1), audio) == \
        ["builtin", str(audio)]  # the sample's [deliver] player: the built-in one (this machine's sound card)
    players.check_players(loaded.registry, loaded.config, ["dazhuang-01"])  # run's pre-start check passes
    player = players.spawn(cmd, tmp_path / "players", 30)
    assert player.proc.wait(timeout=30) == 0
    started = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["args"] for s in started] == [[str(audio), "大庄村$(touch pwned);`id`", "morning"]]
    assert not (workspace / "pwned").exists() and not Path("pwned").exists()


def test_run_names_a_missing_named_player_and_where_it_is_chosen(workspace: Path) -> None:
    _add_players(workspace, ipcast=["/nonexistent/ipcast", "{file}", "{township}"])
    county = _county(workspace)
    county.write_text(county.read_text("utf-8").replace("  - {id: hexi, name: 河西镇}",
                                                       "  - {id: hexi, name: 河西镇, player: ipcast}"), encoding="utf-8")
    proc = _cli("run", "-w", str(workspace))
    assert proc.returncode == 1, proc.stderr
    assert "找不到播放程序 '/nonexistent/ipcast'" in proc.stderr and "[players] ipcast" in proc.stderr
    assert "乡镇 hexi" in proc.stderr and "hexi-01" in proc.stderr and "Traceback" not in proc.stderr


# --- the permission table ---------------------------------------------------------------------


def test_every_post_route_has_an_entry_in_the_permission_table(site: Site) -> None:
    routes = _post_routes(site.app)
    assert "/villages/{village_id}/edit" in routes and "/api/station/events" in routes  # the walk finds them
    assert not set(FORM_ROUTES) & set(OPEN_ROUTES)
    missing = routes - set(FORM_ROUTES) - set(OPEN_ROUTES)
    assert not missing, f"POST routes without an entry in outreach/web/permissions.py: {sorted(missing)}"
    assert not (set(FORM_ROUTES) | set(OPEN_ROUTES)) - routes, "entries for routes that no longer exist"
    assert set(ALLOWED) >= set(FORM_ROUTES.values())


def test_a_post_route_missing_from_the_table_is_refused_for_everyone(site: Site) -> None:
    called = []

    async def sneaky(request: Request) -> dict[str, str]:
        await post_form(request, editor=True)
        called.append(1)
        return {"ok": "yes"}

    site.app.post("/sneaky")(sneaky)  # type: ignore[attr-defined]
    assert "/sneaky" in _post_routes(site.app) - set(FORM_ROUTES)  # so the test above would fail
    admin = client_as(site, "boss", "admin")
    response = admin.post("/sneaky", data={"csrf_token": token(admin, "/users")})
    assert response.status_code == 403 and "没有登记在权限表里" in response.text and not called


# Path parameters for walking the form routes: real ids, or an unknown script (so an allowed
# preview does not render audio: it stops at 404 after the guard).
PARAMS = {"village_id": "dazhuang-05", "market_id": "dazhuang-ji", "script_id": "no-such-script"}


def _fill(path: str) -> str:
    names = re.findall(r"\{(\w+)\}", path)
    assert set(names) <= set(PARAMS), f"add a value for {set(names) - set(PARAMS)} to PARAMS"
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]], path)


def test_each_role_may_post_exactly_what_the_table_allows(site: Site) -> None:
    clients = {Role.VIEWER: site.client(), Role.EDITOR: site.client()}
    assert login(clients[Role.VIEWER], "zhao").status_code == 303
    assert login(clients[Role.EDITOR], "wang").status_code == 303
    clients[Role.REVIEWER] = client_as(site, "li", "reviewer")
    clients[Role.ADMIN] = client_as(site, "boss", "admin")
    assert set(clients) == set(Role)
    anonymous = site.client()
    anonymous_csrf = token(anonymous)
    for path, action in sorted(FORM_ROUTES.items()):
        url = _fill(path)
        before = _snapshot(site.workspace)
        refused = anonymous.post(url, data={"csrf_token": anonymous_csrf})
        assert refused.status_code == 401 and "请先登录" in refused.text, url
        assert _snapshot(site.workspace) == before, url
        for role, client in clients.items():
            csrf = token(client, "/campaigns")
            before = _snapshot(site.workspace)
            response = client.post(url, data={"csrf_token": csrf})
            if role in ALLOWED[action]:
                assert response.status_code not in (401, 403) and response.status_code < 500, \
                    (url, role, response.status_code, response.text[-300:])
            else:
                assert response.status_code == 403 and "没有权限" in response.text, (url, role, response.status_code)
                assert "只有" in response.text and _snapshot(site.workspace) == before, (url, role)


def test_an_oversized_form_body_is_refused_before_it_is_read(site: Site) -> None:
    """Dashboard forms are a few KB: 2 MB is refused (413) by its length, and without one while read."""
    editor = site.client()
    assert login(editor).status_code == 303
    before = _county(site.workspace).read_bytes()
    form = {**_village_form(editor), "note": "x" * 2_000_000}
    assert editor.post("/villages/dazhuang-01/edit", data=form).status_code == 413

    def chunks():
        yield b"csrf_token=x&"
        for _ in range(40):
            yield b"a" * 65_536

    response = editor.post("/villages/dazhuang-01/edit", content=chunks(),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "内容太大" in response.text
    assert _county(site.workspace).read_bytes() == before
    small = editor.post("/villages/dazhuang-01/edit", data=_village_form(editor))
    assert small.status_code == 303, small.text[-500:]

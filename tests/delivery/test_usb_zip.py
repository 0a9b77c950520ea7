"""The dashboard's pack ZIP is the pack `outreach export` writes (issue 18): same files, tags, playlist, 播放说明,
QR page, folder layout; named by place and days; the temporary folder it is built in is removed."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3
from test_confirm_sheets import PUBLIC, with_public_url
from web_site import FAST_HASHER, PASSWORD, Clock, login

from outreach.cli import cli
from outreach.config import load_config
from outreach.db import make_engine
from outreach.delivery.usb.zipped import ZIP_KIND
from outreach.web import create_app
from outreach.web.auth import USERS_FILE, UserStore

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=TZ)
VILLAGE = "dazhuang_大庄镇/dazhuang-05_李家洼村"
OTHER = "dazhuang_大庄镇/dazhuang-07_西岗村"


@pytest.fixture
def site(rendered_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    """Two USB villages exported for 12-07..12-08 into the workspace's packs/ by the CLI; a logged-in client."""
    ws = rendered_workspace
    with_public_url(ws)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'zip.db'}")
    result = CliRunner().invoke(cli, ["export", "--date", "2026-12-07", "--to", "2026-12-08", "--out", str(ws / "packs"),
                                      "--mkdir", "--past", "--village", "dazhuang-05", "--village", "dazhuang-07",
                                      "-w", str(ws)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = load_config(ws)
    engine = make_engine(config.resolved_database_url())
    UserStore(ws / USERS_FILE, FAST_HASHER).add("wang", "editor", PASSWORD, now=NOW)
    clock = Clock(NOW)
    from fastapi.testclient import TestClient

    client = TestClient(create_app(config, now=clock, engine=engine), follow_redirects=False)  # type: ignore[arg-type]
    assert login(client).status_code == 303
    yield client, clock, ws / "packs"
    engine.dispose()


def _download(client, query: str) -> tuple[str, str, zipfile.ZipFile]:  # type: ignore[no-untyped-def]
    response = client.get(f"/packs/zip?{query}")
    assert response.status_code == 200, response.text[-500:]
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.isascii()
    fallback = disposition.split('filename="')[1].split('"')[0]
    name = unquote(disposition.split("filename*=UTF-8''")[1])
    zf = zipfile.ZipFile(io.BytesIO(response.content))
    assert zf.testzip() is None
    return name, fallback, zf


def _left_over() -> list[str]:
    return [p for p in os.listdir(tempfile.gettempdir()) if p.startswith(f"outreach-{ZIP_KIND}-{os.getpid()}-")]


def test_village_zip_is_the_exported_pack_with_tags_playlist_instructions_and_qr(site) -> None:  # type: ignore[no-untyped-def]
    client, _clock, packs = site
    name, fallback, zf = _download(client, "village=dazhuang-05")
    assert name == "大庄镇_李家洼村_12月7日-12月8日.zip" and fallback == "dazhuang-05_2026-12-07_2026-12-08.zip"
    exported = sorted(p.relative_to(packs).as_posix() for p in (packs / VILLAGE).iterdir())
    assert {"playlist.m3u", "播放说明.txt", "扫码确认.png", "扫码确认.html"} <= {Path(p).name for p in exported}
    assert sum(p.endswith(".mp3") for p in exported) == 4
    assert zf.namelist() == sorted(["manifest.json", "扫码确认单.html", *exported])  # the same layout as the stick
    for rel in exported:
        if rel.endswith((".mp3", ".m3u", ".txt")):  # audio with its tags, playlist and 播放说明: byte for byte
            assert zf.read(rel) == (packs / rel).read_bytes(), rel
    tags = ID3(io.BytesIO(zf.read(f"{VILLAGE}/2026-12-08_1830_晚间.mp3")))
    assert str(tags["TIT2"]) == "李家洼村 12月8日 晚间" and str(tags["TRCK"]) == "4/4"
    mine = [f for f in json.loads((packs / "manifest.json").read_text("utf-8"))["files"] if f["path"].startswith(VILLAGE)]
    assert json.loads(zf.read("manifest.json"))["files"] == mine
    # A QR page bound to a fresh link of the same village and days; the pack's sheet has this village only.
    page = zf.read(f"{VILLAGE}/扫码确认.html").decode()
    assert f'href="{PUBLIC}/c/' in page and "李家洼村" in page
    assert "李家洼村" in zf.read("扫码确认单.html").decode() and "西岗村" not in zf.read("扫码确认单.html").decode()
    assert zf.read(f"{VILLAGE}/扫码确认.png").startswith(b"\x89PNG")
    assert _left_over() == []  # the temporary export folder is gone once the ZIP was sent


def test_township_zip_names_the_township_and_holds_only_days_still_to_air(site) -> None:  # type: ignore[no-untyped-def]
    client, clock, packs = site
    clock.now = NOW.replace(day=8)
    name, fallback, zf = _download(client, "township=dazhuang")
    assert name == "大庄镇_12月8日.zip" and fallback == "dazhuang_2026-12-08.zip"
    mp3s = [n for n in zf.namelist() if n.endswith(".mp3")]
    assert mp3s == [f"{folder}/2026-12-08_{t}.mp3" for folder in (VILLAGE, OTHER) for t in ("0630_早间", "1830_晚间")]
    assert {f"{folder}/{n}" for folder in (VILLAGE, OTHER) for n in ("playlist.m3u", "播放说明.txt")} <= set(zf.namelist())
    assert "12月7日" not in zf.read(f"{OTHER}/播放说明.txt").decode("utf-8-sig")
    for query in ("village=hexi-04", "township=lishu", "village=", "village=../x"):
        assert client.get(f"/packs/zip?{query}").status_code == 404, query
    clock.now = NOW.replace(day=9)
    late = client.get("/packs/zip?village=dazhuang-05")
    assert late.status_code == 409 and "已经过去" in late.text
    assert _left_over() == []

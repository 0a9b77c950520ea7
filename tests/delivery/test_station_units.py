"""Station pieces without a network: import isolation, the broker files, the local store, Range parsing."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from outreach.config import TZ
from outreach.delivery.stations.broker import BrokerSettings, acl_text, mosquitto_hash, write_auth_files
from outreach.station.protocol import EventKind, ManifestEntry, StationError, check_sha, parse_topic, topic
from outreach.station.store import Store

SHA = "a" * 64


def test_station_help_and_argument_errors_are_chinese() -> None:
    run = [sys.executable, "-m", "outreach.station"]
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("用法：outreach station run"), out
    assert "显示本帮助并退出" in out.stdout and "\n选项：\n" in out.stdout and "--token-file 文件" in out.stdout
    assert "usage:" not in out.stdout and "options" not in out.stdout
    out = subprocess.run([*run, "run", "--server", "http://x"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "错误：缺少必需的参数：--station-id, --token-file, --data" in out.stderr, out
    out = subprocess.run([*run, "run", "--server", "x", "--station-id", "a", "--token-file", "t", "--data", "d",
                          "--days", "seven"], capture_output=True, text=True, timeout=60)
    assert "参数 --days：无效的 int 值：'seven'" in out.stderr, out


def test_station_start_up_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    from outreach.station.sync import Client, Unreachable

    token = tmp_path / "station.token"
    token.write_text("")
    out = subprocess.run([sys.executable, "-m", "outreach.station", "run", "--server", "http://127.0.0.1:9",
                          "--station-id", "a", "--token-file", str(token), "--data", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == f"错误：{token} 是空的；请写入 `outreach station add` 打印的令牌"
    with pytest.raises(Unreachable, match="连不上县服务器 http://127.0.0.1:9"):
        Client("http://127.0.0.1:9", "t", timeout_s=2).manifest()


def test_mosquitto_hash_is_pbkdf2_sha512_as_mosquitto_passwd_writes_it() -> None:
    h = mosquitto_hash("secret", salt=b"0123456789ab")
    _, seven, iterations, salt, digest = h.split("$")
    assert (seven, iterations) == ("7", "101")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", 101)


def test_auth_files_keep_owner_and_mode_and_acl_confines_each_station(tmp_path: Path) -> None:
    pw, acl = tmp_path / "pw", tmp_path / "acl"
    pw.write_text("")
    pw.chmod(0o600)
    s = BrokerSettings("mqtt://127.0.0.1:1", "srv", "p", pw, acl)
    assert write_auth_files(s, [("v1-abc", "$7$hash")], server_hash="$7$srv")
    assert pw.read_text().splitlines() == ["srv:$7$srv", "srv-alert:$7$srv", "v1-abc:$7$hash"]
    assert pw.stat().st_mode & 0o777 == 0o600
    text = acl_text("srv")
    assert "pattern write outreach/station/%u/heartbeat" in text and "pattern read outreach/station/%u/alert" in text
    assert "pattern write outreach/station/%u/alert" not in text


def test_topics_and_digests() -> None:
    assert parse_topic(topic("v1-abc", "heartbeat")) == ("v1-abc", "heartbeat")
    assert parse_topic("outreach/station/x/../y") is None
    with pytest.raises(StationError):
        check_sha("../../etc/passwd")


def _entry(eid: str = "2026-12-01/morning") -> ManifestEntry:
    return ManifestEntry(eid, "2026-12-01", "morning", "2026-12-01T06:30:00+08:00", SHA, 10, 60.0, "neural", ())


def test_store_begins_a_play_once_and_recovers_a_crash_as_interrupted(tmp_path: Path) -> None:
    now = datetime(2026, 12, 1, 6, 30, tzinfo=TZ)
    store = Store(tmp_path / "s.sqlite")
    first = store.begin_play(_entry(), now)
    assert first and store.begin_play(_entry(), now) is None  # never twice
    store.close()
    store = Store(tmp_path / "s.sqlite")  # the station restarted after a kill -9
    (ev,) = store.recover()
    assert ev.event_id == first and ev.kind is EventKind.INTERRUPTED and "不再重播" in ev.detail
    assert store.recover() == [] and store.begin_play(_entry(), now) is None
    assert [e.event_id for e in store.pending_events()] == [first]
    store.mark_uploaded([first])
    assert store.pending_events() == []


def test_blob_store_keeps_one_copy_per_program_linked_or_copied_where_links_fail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from outreach.delivery.stations.manifests import store_blob
    from outreach.files import sha256_file

    programs = tmp_path / "programs"
    programs.mkdir()
    a, b = programs / "program-a.mp3", programs / "program-b.mp3"
    a.write_bytes(b"ID3" + os.urandom(5000))
    b.write_bytes(b"ID3" + os.urandom(7000))
    store = tmp_path / "blobs"
    # 1,000 stations' manifests naming two distinct programs: the store holds two files, linked to the build.
    for _ in range(500):
        for src in (a, b):
            store_blob(store, src, sha256_file(src))
    files = sorted(store.iterdir())
    assert [f.name for f in files] == sorted(f"{sha256_file(p)}.mp3" for p in (a, b))
    assert all(f.stat().st_ino in (a.stat().st_ino, b.stat().st_ino) for f in files)  # hard links, no bytes copied
    assert a.stat().st_nlink == 2

    def no_links(src: object, dst: object) -> None:  # FAT32/exFAT: link(2) fails with EPERM
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    fat = tmp_path / "fat"
    for _ in range(3):
        store_blob(fat, a, sha256_file(a))
    [copy] = list(fat.iterdir())
    assert copy.read_bytes() == a.read_bytes() and copy.stat().st_ino != a.stat().st_ino
    assert not list(fat.glob(".*"))  # no temp part left behind

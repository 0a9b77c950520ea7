"""The pack write path: batches synced once, every file read back from the disk, a lying stick caught."""

from __future__ import annotations

import json
import os
import threading
from datetime import date, time
from pathlib import Path

import pytest

import outreach.delivery.usb.packs as packs
from outreach.delivery.usb.packs import PackItem, export_pack


def items(tmp_path: Path, count: int) -> list[PackItem]:
    audio = tmp_path / "program.mp3"
    audio.write_bytes(os.urandom(300_000))  # the pack copies program bytes as they are
    return [PackItem(rel_path=f"大庄镇/v{n:03d}_村{n}/2026-12-0{1 + n % 7}_0630_早间.mp3", audio=audio,
                     duration_s=60.0, village_id=f"v{n:03d}", village_name=f"村{n}", township_name="大庄镇",
                     slot="morning", date=date(2026, 12, 1 + n % 7), start=time(6, 30), title=f"村{n} 早间",
                     artist="交警大队", album="", scripts=("戴头盔",)) for n in range(count)]


def test_a_batch_is_synced_once_before_its_files_are_read_back(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def logged(kind: str, real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = real(*args, **kwargs)
            with lock:
                events.append((kind, str(getattr(result, "tmp", args[0]))))
            return result
        return call

    monkeypatch.setattr(packs, "_write", logged("write", packs._write))
    monkeypatch.setattr(packs, "sync_filesystem", logged("sync", packs.sync_filesystem))
    monkeypatch.setattr(packs, "_read_back", logged("read", packs._read_back))
    monkeypatch.setattr(packs, "_BATCH_BYTES", 10 * 300_000)  # ten files a batch
    out = tmp_path / "usb"
    report = export_pack(items(tmp_path, 25), out)
    assert len(report.written) == 25 and not report.failures
    kinds = [k for k, _ in events]
    assert kinds.count("write") == kinds.count("read") == 25
    assert kinds.count("sync") == 3, "one sync per batch of ten, not one per file"
    for n, (kind, path) in enumerate(events):
        if kind == "read":  # its write, then a sync, then this read
            wrote = events.index(("write", path))
            assert "sync" in kinds[wrote:n], f"{path} read back before a sync"
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 1_300_003])
def test_read_back_reads_the_device_not_the_cache(tmp_path: Path, monkeypatch, size: int) -> None:
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT here")
    flags: list[int] = []
    real_open = os.open
    monkeypatch.setattr(packs.os, "open", lambda path, how, *a: (flags.append(how), real_open(path, how, *a))[1])
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert packs._read_back(path) == data
    assert flags[0] & os.O_DIRECT


def test_read_back_drops_the_cached_pages_where_direct_io_is_refused(tmp_path: Path, monkeypatch) -> None:
    if not hasattr(os, "posix_fadvise"):
        pytest.skip("no posix_fadvise here")
    advised: list[int] = []
    real = os.posix_fadvise
    monkeypatch.setattr(packs, "_read_direct", lambda path, size: None)  # as on tmpfs
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, how: (advised.append(how), real(fd, off, n, how))[1])
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 5000)
    assert packs._read_back(path) == b"x" * 5000
    assert advised == [os.POSIX_FADV_DONTNEED]


def test_a_stick_that_keeps_other_bytes_fails_that_file_only(tmp_path: Path, monkeypatch) -> None:
    """The disk keeps one file's bytes wrong (as a failing or fake-capacity stick does): only it is refused."""
    real_write = os.write
    bad = "村3 早间".encode("utf-16-le")[:6]  # the victim's title tag, as ID3v2.3 stores it

    def lying_write(fd: int, data) -> int:  # type: ignore[no-untyped-def]
        data = bytes(data)
        if getattr(lying_write, "victim", None) == fd and len(data) > 1000:
            data = data[:500] + bytes([data[500] ^ 0xFF]) + data[501:]
            lying_write.victim = None  # type: ignore[attr-defined]
        if bad in data[:400]:
            lying_write.victim = fd  # type: ignore[attr-defined]
        return real_write(fd, data)

    monkeypatch.setattr(packs.os, "write", lying_write)
    out = tmp_path / "usb"
    six = items(tmp_path, 6)
    report = export_pack(six, out)
    monkeypatch.setattr(packs.os, "write", real_write)
    assert [path for path, _ in report.failures] == [six[3].rel_path]
    assert "校验和与写入的内容不一致" in report.failures[0][1]
    assert not (out / six[3].rel_path).exists() and not list(out.rglob("*.part"))
    listed = {f["path"] for f in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]}
    assert len(listed) == 5 and six[3].rel_path not in listed

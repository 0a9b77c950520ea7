"""USB-stick packs a village secretary can use: files in airing order, ID3 tags, playlist, 播放说明, manifest.

A pack folder per village holds exactly the exported days: `2026-12-01_0630_早间.mp3`
names sort in airing order. Each file is the shared program audio with its own ID3v2.3
tag in front, written to a temporary name, synced, read back from the disk (not the page
cache: a stick that lies is caught) and compared, then renamed; manifest.json lists only
files that were written and verified. Files are written a batch at a time and the batch
synced once; each program's audio is read once.

The staged program audio (build/programs) is one file per distinct program. Pack
files are copies, never hard links: each carries its own village/date title and
track tag, so no two are byte-identical (and FAT32/exFAT sticks cannot link).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import mmap
import os
import re
import stat
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from outreach.errors import OutputError
from outreach.files import (
    describe_os_error,
    open_temp_beside,
    remove_stale_parts,
    sync_filesystem,
    write_text_if_changed,
)
from outreach.labels import SLOT, label

MANIFEST = "manifest.json"
PLAYLIST = "playlist.m3u"
README = "播放说明.txt"
# Program files of a pack, in this format or the older `2026-12-01_morning.mp3`.
_PACK_FILE = re.compile(r"\d{4}-\d{2}-\d{2}_[^/]+\.mp3")
FILE_MODE = 0o644
# Characters FAT sticks and Windows refuse in names, and control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f:*?"<>|]')


def slot_label(slot: str) -> str:
    """The Chinese label of a slot (早间, 晚间)."""
    return label(SLOT, slot)


def path_part(name: str, what: str) -> str:
    """`name` made safe as one folder name on a FAT stick.

    Raises OutputError for a name with a path separator or '..', which could leave the pack folder.
    """
    if "/" in name or "\\" in name or ".." in name:
        raise OutputError(f"{what} {name!r} 含有 '/'、'\\' 或 '..'，会让路径跑出节目包文件夹；"
                          "请在 schedules/county.yaml 里改名")
    safe = _UNSAFE.sub("_", name).strip().rstrip(".")
    if not safe:
        raise OutputError(f"{what} {name!r} 去掉不安全的字符后就空了；请在 schedules/ 里改名")
    return safe


def village_folder(township_id: str, township_name: str, village_id: str, village_name: str) -> str:
    """`dazhuang_大庄镇/dazhuang-05_李家洼村`: a village's pack folder, ids first so folders sort."""
    return str(PurePosixPath(path_part(f"{township_id}_{township_name}", "乡镇名称"),
                             path_part(f"{village_id}_{village_name}", "村名称")))


def pack_rel_path(township_id: str, township_name: str, village_id: str, village_name: str, day: date,
                  start: time, slot: str) -> str:
    """`dazhuang_大庄镇/dazhuang-05_李家洼村/2026-12-01_0630_早间.mp3`: names sort in airing order."""
    folder = village_folder(township_id, township_name, village_id, village_name)
    return f"{folder}/{day.isoformat()}_{start:%H%M}_{path_part(slot_label(slot), '时段名称')}.mp3"


def inside(out_dir: Path, rel: str) -> Path:
    """`out_dir/rel`, refused (OutputError) if it would lie outside `out_dir`."""
    root = out_dir.resolve()
    target = (root / rel).resolve()
    if PurePosixPath(rel).is_absolute() or not target.is_relative_to(root) or target == root:
        raise OutputError(f"{rel}：这个路径会跑出输出文件夹 {out_dir}，没有写入")
    return target


@dataclass(frozen=True)
class PackFile:
    """One file of an export, as listed in manifest.json."""

    path: str
    sha256: str
    duration_s: float
    village_id: str
    slot: str
    date: str
    start: str  # HH:MM, Beijing time
    title: str
    scripts: tuple[str, ...]  # titles of the scripts it contains, in play order
    source: str  # program audio and tag it was made from: an unchanged source is not rewritten


@dataclass(frozen=True)
class PackItem:
    """A program to place in a pack: where it goes, the audio it is and how it is labelled."""

    rel_path: str
    audio: Path
    duration_s: float
    village_id: str
    village_name: str
    township_name: str
    slot: str
    date: date
    start: time
    title: str  # e.g. 大庄村 12月1日 早间
    artist: str  # the county brigade
    album: str  # the program's leading campaign (urgent first, then by priority)
    scripts: tuple[str, ...]


@dataclass
class ExportReport:
    """What an export wrote, kept unchanged, removed, left out, or failed on."""

    written: list[PackFile] = field(default_factory=list)
    unchanged: list[PackFile] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # pack-relative paths of earlier days deleted
    blocked: list[tuple[str, str, str]] = field(default_factory=list)  # (path, script id, reason) left out
    alerts: list[str] = field(default_factory=list)
    rendered: int = 0

    @property
    def files(self) -> list[PackFile]:
        return sorted(self.written + self.unchanged, key=lambda f: f.path)


def id3_tag(item: PackItem, track: int, total: int) -> bytes:
    """An ID3v2.3 tag (UTF-16 text, as cheap players read) for one pack file."""
    from mutagen.id3 import COMM, ID3, TALB, TCON, TIT2, TPE1, TRCK, TYER

    tag = ID3()
    tag.add(TIT2(encoding=1, text=item.title))
    tag.add(TPE1(encoding=1, text=item.artist))
    tag.add(TALB(encoding=1, text=item.album))
    tag.add(TRCK(encoding=1, text=f"{track}/{total}"))
    tag.add(TYER(encoding=1, text=str(item.date.year)))
    tag.add(TCON(encoding=1, text="Speech"))
    tag.add(COMM(encoding=1, lang="chi", desc="", text="；".join(item.scripts)))
    out = io.BytesIO()
    tag.save(out, v2_version=3, padding=lambda _info: 0)
    return out.getvalue()


def _audio_offset(path: Path) -> int:
    """Bytes of the ID3v2 tag at the start of `path` (0 if none): the pack file gets its own tag."""
    with path.open("rb") as fh:
        head = fh.read(10)
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + size + (10 if head[5] & 0x10 else 0)


class _Bodies:
    """Program audio without its ID3 tag, read once per distinct program; the last few are kept in memory."""

    def __init__(self, keep: int = 8) -> None:
        self._kept: OrderedDict[Path, bytes] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def get(self, audio: Path) -> bytes:
        with self._lock:
            if audio not in self._kept:
                self._kept[audio] = audio.read_bytes()[_audio_offset(audio):]
                while len(self._kept) > self._keep:
                    self._kept.popitem(last=False)
            self._kept.move_to_end(audio)
            return self._kept[audio]


@dataclass(frozen=True)
class _Written:
    """A pack file written under a temporary name, waiting for the batch sync and its read-back."""

    item: PackItem
    tag: bytes
    body: bytes
    tmp: Path
    target: Path
    entry: PackFile


def _entry(item: PackItem, digest: str, source: str) -> PackFile:
    return PackFile(item.rel_path, digest, round(item.duration_s, 2), item.village_id, item.slot,
                    item.date.isoformat(), f"{item.start:%H:%M}", item.title, item.scripts, source)


def _write(item: PackItem, tag: bytes, body: bytes, target: Path,
           existing: Mapping[str, PackFile]) -> _Written | PackFile:
    """Write tag + program audio (`body`) under a temporary name beside `target`, unless the same file is there.

    Returns the unchanged file's entry, or what was written for `_settle` after the batch is synced.
    """
    source = hashlib.sha256(tag + f"{item.audio.name}/{len(body)}".encode()).hexdigest()[:24]
    known = existing.get(item.rel_path)
    if (known is not None and known.source == source and target.is_file()
            and target.stat().st_size == len(tag) + len(body)):
        if stat.S_IMODE(target.stat().st_mode) != FILE_MODE:
            target.chmod(FILE_MODE)  # packs written before files were made world-readable
        return _entry(item, known.sha256, source)
    digest = hashlib.sha256(tag)
    digest.update(body)
    fd, tmp = open_temp_beside(target)
    try:
        try:
            for part in (tag, body):
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(describe_os_error(target, exc)) from exc
    return _Written(item, tag, body, tmp, target, _entry(item, digest.hexdigest(), source))


def _settle(written: _Written) -> PackFile:
    """Read a synced file back from the disk, then rename it into place; on any failure remove it."""
    target = written.target
    try:
        _verify(written.tmp, written.item, written.tag, written.body)
        os.chmod(written.tmp, FILE_MODE)
        os.replace(written.tmp, target)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from exc
    finally:
        written.tmp.unlink(missing_ok=True)
    return written.entry


_ALIGN = 4096  # O_DIRECT wants buffer, offset and length aligned to the device's block size
_direct = threading.local()


def _direct_buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned read buffer of at least `size` bytes (an anonymous mmap is page-aligned)."""
    need = -(-max(size, 1) // _ALIGN) * _ALIGN
    buf = getattr(_direct, "buf", None)
    if buf is None or len(buf) < need:
        _direct.buf = buf = mmap.mmap(-1, need)
    return buf


def _read_direct(path: Path, size: int) -> memoryview | None:
    """`path` read with O_DIRECT, or None where the file system refuses direct I/O (tmpfs, some FUSE mounts).

    The view is of this thread's buffer, valid until the thread's next read: it is compared in place,
    not copied (copying and comparing each file cost about as much CPU time as reading it from the disk).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return None
    buf = _direct_buffer(size + 1)  # one byte more than expected: a file that grew is caught
    try:
        with memoryview(buf) as view:
            got = 0
            while (n := os.readv(fd, [view[got:]])) > 0:
                got += n
                if got % _ALIGN:  # a short, unaligned read is the end of the file
                    break
        return memoryview(buf)[:got]
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_back(path: Path) -> bytes | memoryview:
    """The bytes of `path` as the disk has them, not as the page cache remembers them (it was synced).

    O_DIRECT reads the device itself and leaves the cache alone. Where the file system refuses it,
    the file's cached pages are dropped first and it is read normally.
    """
    if hasattr(os, "O_DIRECT") and (direct := _read_direct(path, path.stat().st_size)) is not None:
        return direct
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):  # not on macOS or Windows: there the read may come from the cache
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _same(data: bytes | memoryview, offset: int, expected: bytes) -> bool:
    """Whether data[offset:offset + len(expected)] is `expected`, compared in place (slicing would copy
    both, and comparing memoryviews goes byte by byte)."""
    return bool(np.array_equal(np.frombuffer(data, np.uint8, len(expected), offset),
                               np.frombuffer(expected, np.uint8)))


def _verify(path: Path, item: PackItem, tag: bytes, body: bytes) -> None:
    """Read back a written pack file from the disk: its size and every byte must be what was written.

    The tag is compared byte for byte with the one `id3_tag` built, so its title is checked with it.
    """
    size = len(tag) + len(body)
    back = _read_back(path)
    problem = ""
    if len(back) != size:
        problem = f"大小是 {len(back)} 字节，应为 {size} 字节"
    elif not (_same(back, 0, tag) and _same(back, len(tag), body)):
        problem = "校验和与写入的内容不一致"
    if problem:
        raise OutputError(f"{item.rel_path}：写入的文件校验没通过（{problem}）；"
                          "请检查U盘或磁盘后重新导出")


def read_manifest(out_dir: Path) -> dict[str, PackFile]:
    """The files listed in `out_dir`/manifest.json, by pack-relative path; {} when there is no manifest.

    An entry that is not a file record is left out. Raises OutputError naming
    the manifest when it cannot be read or has no "files" list.
    """
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OutputError(f"{path}：无法读取（{exc.strerror}）；请检查U盘或文件夹") from exc
    except ValueError as exc:
        raise OutputError(f"{path}：不是有效的 JSON（{exc}）；请重新导出") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise OutputError(f'{path}：缺少 "files" 列表；请重新导出')
    out: dict[str, PackFile] = {}
    for f in files:
        try:
            entry = PackFile(str(f["path"]), str(f.get("sha256", "")), float(f.get("duration_s", 0)),
                             str(f.get("village_id", "")), str(f.get("slot", "")), str(f.get("date", "")),
                             str(f.get("start", "")), str(f.get("title", "")),
                             tuple(str(t) for t in f.get("scripts", ())), str(f.get("source", "")))
        except (KeyError, TypeError, ValueError):
            continue
        out[entry.path] = entry
    return out


def _length(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}分{s:02d}秒"


def playlist_text(entries: Sequence[PackFile]) -> str:
    """An M3U of the files in airing order (their names sort that way)."""
    lines = ["#EXTM3U"]
    for f in sorted(entries, key=lambda e: e.path):
        lines += [f"#EXTINF:{round(f.duration_s)},{f.title or f.date}", PurePosixPath(f.path).name]
    return "\n".join(lines) + "\n"


def readme_text(item: PackItem, entries: Sequence[PackFile]) -> str:
    """播放说明.txt: what is on the stick, how to play it and how to confirm, for the village secretary."""
    ordered = sorted(entries, key=lambda e: e.path)
    lines = [f"{item.township_name} {item.village_name}（村编号 {item.village_id}）大喇叭节目 U 盘",
             f"共 {len(ordered)} 个节目，文件名按播出时间排好了顺序。", "",
             "一、节目单（日期、时段、开始时间、时长、内容）"]
    for f in ordered:
        day = date.fromisoformat(f.date)
        lines += [f"{PurePosixPath(f.path).name}",
                  f"    {day.year}年{day.month}月{day.day}日  {slot_label(f.slot)}  {f.start} 开始  约 {_length(f.duration_s)}",
                  f"    内容：{'；'.join(f.scripts)}"]
    lines += ["", "二、怎么播放",
              "1. 把 U 盘插到村里大喇叭功放（或播放器）的 USB 口。",
              "2. 到了上面写的开始时间，播放当天、当时段的那一个文件，播完即停，不要循环。",
              "3. 播放器如果按播放列表播放，选 playlist.m3u，顺序和上面一样。",
              "4. 不要改文件名，不要删除文件；过期的节目下次导出时会自动删除。", "",
              "三、播完后怎么回报（确认）",
              "最方便的办法：用手机微信扫一扫本文件夹里 扫码确认.png（或乡镇打印的扫码确认单）上的二维码，",
              "在打开的网页上，点播过的那个节目的「已播放」，写上您的名字就行了，不用登录。",
              "",
              f"扫不了码时，每播完一个节目，请把对应的一行发给{item.township_name}负责宣传的同志（微信、短信或电话都可以），",
              "把“姓名”换成您的名字；没播成的请说明原因：", ""]
    lines += [f"{item.village_id},{f.date},{slot_label(f.slot)},姓名" for f in ordered]
    lines += ["", "乡镇工作人员收到后把这些行原样粘贴到网页的“播出确认”页（或用 outreach confirm 录入），"
                  "全县的播出统计就会算上您村。"]
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


def blocking_file(out_dir: Path, folder: str) -> str | None:
    """Why `folder` cannot hold a pack: a file stands where it or a parent folder should be; else None."""
    parts = PurePosixPath(folder).parts
    for n in range(1, len(parts) + 1):
        rel = "/".join(parts[:n])
        path = out_dir / rel
        if path.exists() and not path.is_dir():
            return (f"这里应该是文件夹，但 {out_dir} 里的 {rel} 是一个文件，这个村的节目没有写入；"
                    "请删除或改名这个文件后重新导出")
    return None


def _prune(out_dir: Path, folder: str, keep: set[str]) -> list[str]:
    """Delete program files in one village folder that this export did not write or keep."""
    removed = []
    try:
        names = sorted(p.name for p in inside(out_dir, folder).iterdir())
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise OutputError(describe_os_error(out_dir / folder, exc)) from exc
    for name in names:
        rel = f"{folder}/{name}"
        if _PACK_FILE.fullmatch(name) and rel not in keep:
            try:
                (out_dir / rel).unlink()
            except OSError as exc:
                raise OutputError(describe_os_error(out_dir / rel, exc)) from exc
            removed.append(rel)
    return removed


def _write_sheets(here: Path, mine: list[PackFile], items: Sequence[PackItem] | None) -> None:
    """A village folder's playlist.m3u and 播放说明.txt for its files; both removed when it has none."""
    if not mine or not items:
        for name in (PLAYLIST, README):
            (here / name).unlink(missing_ok=True)
        return
    write_text_if_changed(here / PLAYLIST, playlist_text(mine))
    write_text_if_changed(here / README, readme_text(items[0], mine))


# Pack files are written a batch at a time by a few threads, the batch's file system is synced once,
# then every file is read back from the disk and renamed: one sync per batch instead of one per file,
# which on a stick (or any journalled disk) costs far more than the bytes.
_WRITERS = 3
_READERS = 2
_BATCH_BYTES = 256 << 20


def _batches(order: Sequence[int], todo: Sequence[tuple[PackItem, int, int]]) -> Iterable[list[int]]:
    """`order` cut into runs of about _BATCH_BYTES of program audio each."""
    batch: list[int] = []
    size = 0
    for n in order:
        batch.append(n)
        size += todo[n][0].audio.stat().st_size
        if size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _place_all(todo: Sequence[tuple[PackItem, int, int]], out_dir: Path, existing: Mapping[str, PackFile], *,
               progress: bool) -> list[tuple[PackFile, bool] | str]:
    """Write, sync, read back and rename every (item, track, of tracks); each outcome in `todo` order.

    A failure is its message. Files of one program are placed one after another, so its audio is read once.
    """
    bodies = _Bodies()
    # Each village folder is made and resolved once: resolving a path lstat()s every part of it,
    # which for every one of thousands of files cost a tenth of the export's time.
    folders: dict[str, Path] = {}
    for folder in {str(PurePosixPath(item.rel_path).parent) for item, _, _ in todo}:
        with contextlib.suppress(OSError, OutputError):  # a folder that cannot be made fails its files, one by one
            folders[folder] = inside(out_dir, folder)
            folders[folder].mkdir(parents=True, exist_ok=True)

    def target_of(rel: str) -> Path:
        folder, _, name = rel.rpartition("/")
        if folder in folders and name not in ("", ".", ".."):
            return folders[folder] / name
        return inside(out_dir, rel)  # raises OutputError where `rel` would leave the pack

    def write(n: int) -> _Written | PackFile | str:
        item, track, total = todo[n]
        try:
            return _write(item, id3_tag(item, track, total), bodies.get(item.audio), target_of(item.rel_path),
                          existing)
        except (OutputError, OSError) as exc:
            return str(exc)

    def settle(written: _Written | PackFile | str) -> tuple[PackFile, bool] | str:
        if isinstance(written, (str, PackFile)):
            return written if isinstance(written, str) else (written, False)
        try:
            return _settle(written), True
        except OutputError as exc:
            return str(exc)

    order = sorted(range(len(todo)), key=lambda n: (str(todo[n][0].audio), n))
    out: list[tuple[PackFile, bool] | str] = [""] * len(todo)
    # Batch N is read back by the readers while batch N+1 is written: the disk reads and writes at once.
    pending: list[tuple[list[int], list[Future[tuple[PackFile, bool] | str]]]] = []
    with tqdm(total=len(todo), desc="export", unit="file", file=sys.stderr, disable=not progress) as bar, \
            ThreadPoolExecutor(_WRITERS) as writers, ThreadPoolExecutor(_READERS) as readers:

        def collect(keep: int) -> None:
            while len(pending) > keep:
                done, futures = pending.pop(0)
                for n, future in zip(done, futures):
                    out[n] = future.result()
                    bar.update()

        for batch in _batches(order, todo):
            written = list(writers.map(write, batch))
            if any(isinstance(w, _Written) for w in written):
                sync_filesystem(out_dir)  # on the stick, so the read-back reads what the stick kept
            pending.append((batch, [readers.submit(settle, w) for w in written]))
            collect(keep=1)  # at most one batch waits for its read-back: memory stays bounded
        collect(keep=0)
    return out


def export_pack(items: Sequence[PackItem], out_dir: Path, *, folders: Iterable[str] = (),
                progress: bool = False) -> ExportReport:
    """Write pack files, playlists, 播放说明 and manifest.json; idempotent and resumable.

    Each village folder of `items` (and of `folders`) ends up holding exactly the files of
    this export: earlier days there are removed and listed in the report. Failures are
    collected; the rest of the pack is still written. manifest.json lists only files that
    were written and verified (or found unchanged), and is not written when there are none.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_os_error(out_dir, exc)) from exc
    remove_stale_parts(out_dir)  # left on the stick by an export that crashed
    try:
        existing = read_manifest(out_dir)
    except OutputError:
        existing = {}  # an unreadable manifest is rewritten from the files this export places
    report = ExportReport()
    by_folder: dict[str, list[PackItem]] = {}
    for item in sorted(items, key=lambda i: i.rel_path):
        by_folder.setdefault(str(PurePosixPath(item.rel_path).parent), []).append(item)
    # A village whose folder is blocked by a file is reported once; every other village is still written.
    blocked = {f: why for f in sorted(set(by_folder) | set(folders)) if (why := blocking_file(out_dir, f))}
    report.failures += sorted(blocked.items())
    by_folder = {f: group for f, group in by_folder.items() if f not in blocked}
    folders = [f for f in folders if f not in blocked]
    todo = [(item, n + 1, len(group)) for group in by_folder.values() for n, item in enumerate(group)]
    for (item, _, _), placed in zip(todo, _place_all(todo, out_dir, existing, progress=progress)):
        if isinstance(placed, str):
            report.failures.append((item.rel_path, placed))
        else:
            (report.written if placed[1] else report.unchanged).append(placed[0])

    ok = {f.path: f for f in report.files}
    ok_by_folder: dict[str, list[PackFile]] = {}
    for path, f in ok.items():
        ok_by_folder.setdefault(str(PurePosixPath(path).parent), []).append(f)
    touched = set(by_folder) | set(folders)
    keep = set(ok)
    for folder in sorted(touched):
        try:
            report.removed += _prune(out_dir, folder, keep)
        except OutputError as exc:
            report.failures.append((folder, str(exc)))
    merged = {p: f for p, f in existing.items()
              if str(PurePosixPath(p).parent) not in touched and (out_dir / p).is_file()}
    merged.update(ok)
    for folder in sorted(touched):
        try:
            _write_sheets(out_dir / folder, ok_by_folder.get(folder, []), by_folder.get(folder))
        except (OutputError, OSError) as exc:
            report.failures.append((folder, str(exc) if isinstance(exc, OutputError)
                                    else describe_os_error(out_dir / folder, exc)))
    if merged:
        manifest = {"files": [vars(f) for f in sorted(merged.values(), key=lambda f: f.path)]}
        write_text_if_changed(out_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    else:
        (out_dir / MANIFEST).unlink(missing_ok=True)
    return report

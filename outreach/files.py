"""Atomic file writes (a reader never sees a half-written file) and clean-up after a crash.

Temporary files and folders carry the creating process id in their names
(`.NAME.PID.XXXX.part`, `outreach-KIND-PID-XXXX`), so the next command can remove
what a dead process left behind without touching a live process's work.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from outreach.errors import OutputError

log = logging.getLogger("outreach.files")


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


_LIBC = _libc()  # for syncfs(2), which the os module lacks

TEMP_PREFIX = "outreach-"
_PART = re.compile(r"\..+?(?:\.(\d+))?\.[^./]*\.part")
_TEMP_DIR = re.compile(re.escape(TEMP_PREFIX) + r"[a-z]+-(?:(\d+)-)?.*")
# /proc start times are rounded to clock ticks and boot time to seconds.
_CLOCK_SLACK_S = 2.0


def process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None if it is not running or cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# This process's start: anything of ours-or-older that a dead process left is stale.
PROCESS_START: float = process_start(os.getpid()) or time.time()


def temp_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder in the system temp dir named `outreach-KIND-PID-…`, removed on exit."""
    return tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{kind}-{os.getpid()}-")


def describe_os_error(path: Path, exc: OSError) -> str:
    """Turn an OSError on `path` into a message that says what to fix."""
    if exc.errno == errno.ENOSPC:
        return f"{path}: 磁盘已满；请腾出空间后再运行"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: 文件夹不可写；请换一个输出文件夹，或修改它的权限"
    return f"{path}: 无法写入（{exc.strerror}）；请检查输出文件夹"


def open_temp_beside(target: Path) -> tuple[int, Path]:
    """A new empty temporary file beside `target`, open for writing (the caller closes the descriptor),
    named so that `remove_stale_parts` finds it after a crash."""
    try:
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from exc
    return fd, Path(tmp_name)


def temp_beside(target: Path) -> Path:
    """A new empty temporary file beside `target`, closed (see open_temp_beside)."""
    fd, tmp = open_temp_beside(target)
    os.close(fd)
    return tmp


def sync_filesystem(path: Path) -> None:
    """Flush every written file of the file system holding `path` to its device (syncfs; sync where there is none)."""
    syncfs = getattr(_LIBC, "syncfs", None) if _LIBC is not None else None
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OutputError(describe_os_error(Path(path), OSError(err, os.strerror(err))))
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` (with `mode`) on success.

    On any failure the temporary file is removed and `target` is untouched, so
    no partial or empty file is ever left under the final name.
    """
    target = Path(target)
    tmp = temp_beside(target)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OutputError(f"{target}: 什么也没写入，文件没有生成")
        os.chmod(tmp, mode)  # mkstemp makes 0600; pack files must be readable by everyone
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file and a rename."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    """Write UTF-8 `text` to `target` through a temporary file and a rename."""
    write_bytes_atomic(target, text.encode("utf-8"))


def write_text_if_changed(target: Path, text: str) -> bool:
    """Write `text` atomically unless `target` already holds exactly it (byte for byte: CRLF lines and a BOM count)."""
    try:
        if target.read_bytes() == text.encode("utf-8"):
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(target, text)
    return True


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _newest_mtime(path: Path) -> float:
    """The newest modification time of `path` and, for a folder, of everything in it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def _stale(path: Path, pid_text: str | None, before: float) -> bool:
    """True when `path` was last touched before `before` and no live process that made it still runs."""
    try:
        newest = _newest_mtime(path)
    except OSError:
        return False
    if newest >= before:
        return False
    if pid_text is None or int(pid_text) == os.getpid():
        return True
    started = process_start(int(pid_text))
    # A live process with that id owns the file only if it started before the file was written.
    return started is None or started > newest + _CLOCK_SLACK_S


def remove_stale_parts(folder: Path, *, before: float = PROCESS_START) -> list[Path]:
    """Delete `.part` files under `folder` left by dead processes before `before`; return them."""
    removed: list[Path] = []
    if not Path(folder).is_dir():
        return removed
    for root, _dirs, files in os.walk(folder):
        for name in files:
            match = _PART.fullmatch(name)
            path = Path(root) / name
            if match and _stale(path, match.group(1), before):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def remove_stale_temp_dirs(temp_root: Path | None = None, *, before: float = PROCESS_START) -> list[Path]:
    """Delete `outreach-*` folders in the system temp dir left by dead processes before `before`."""
    root = Path(temp_root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TEMP_DIR.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and _stale(path, match.group(1), before):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


def clean_after_crash(folders: Iterable[Path], *, temp_root: Path | None = None,
                      before: float = PROCESS_START) -> list[Path]:
    """Remove stale `.part` files under `folders` and stale outreach temp folders; never raises."""
    removed: list[Path] = []
    for folder in folders:
        removed += remove_stale_parts(folder, before=before)
    removed += remove_stale_temp_dirs(temp_root, before=before)
    if removed:
        log.info("已清理 %d 个先前中断时留下的临时文件或文件夹", len(removed))
    return removed

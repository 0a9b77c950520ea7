"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from outreach.errors import OutputError


def describe_os_error(path: Path, exc: OSError) -> str:
    """Turn an OSError on `path` into a message that says what to fix."""
    if exc.errno == errno.ENOSPC:
        return f"{path}: the disk is full; free some space and run again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{path}: the folder is not writable; choose another output folder or fix its permissions"
    return f"{path}: cannot write ({exc.strerror}); check the output folder"


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` on success.

    On any failure the temporary file is removed and `target` is untouched, so
    no partial or empty file is ever left under the final name.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(describe_os_error(target, exc)) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OutputError(f"{target}: nothing was written; the file was not created")
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
    """Write `text` atomically unless `target` already holds exactly it."""
    try:
        if target.read_text(encoding="utf-8") == text:
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

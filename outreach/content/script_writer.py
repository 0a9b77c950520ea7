"""Rewrite script files in place, one writer at a time: front matter edits, approval and a new recording.

Every rewrite keeps the other bytes of the file (comments, a BOM, line endings) and is atomic.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import yaml

from outreach.config import RECORDING_ENGINE
from outreach.content.script_checks import display_path
from outreach.content.script_model import Script
from outreach.content.scripts import FRONT_MATTER_YAML, check_content, decode, read_script, split_front_matter
from outreach.errors import ScriptError
from outreach.files import atomic_path
from outreach.yamlread import Problem, load_yaml

__all__ = ["LOCK_TIMEOUT_S", "ScriptChanged", "approve_script", "script_lock", "set_front_matter", "set_recording",
           "yaml_scalar"]


def yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: bare when it reads back unchanged, else double-quoted."""
    try:
        if load_yaml(f"k: {value}", FRONT_MATTER_YAML) == {"k": value}:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


class ScriptChanged(ScriptError):
    """The file is no longer the version that was to be approved; nothing was written.

    `current` is the script as the file holds it now (None when it does not parse) and
    `content` the file's text, so the caller can show the difference.
    """

    def __init__(self, message: str, current: Script | None, content: str) -> None:
        super().__init__(message)
        self.current = current
        self.content = content


LOCK_TIMEOUT_S = 10.0
_held = threading.local()


@contextlib.contextmanager
def script_lock(path: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive, across threads and processes, for one read-check-write of the script file `path`.

    Every writer of script files takes it: `approve_script` (CLI and browser approval) and the
    browser editor's save. The lock is an flock on the script's folder itself, so every writer
    agrees on it whoever runs it, and no lock file is left in the library. It is re-entrant
    within one thread (approval holds it while it also records the trail).

    Raises ScriptError when the folder cannot be opened or another writer holds it for `timeout_s`.
    """
    folder = Path(path).parent
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise ScriptError(f"{display_path(folder)}: 无法锁定广播稿文件夹（{exc.strerror}）；"
                          "请确认文件夹存在并且可以读取") from exc
    held: set[tuple[int, int]] = getattr(_held, "keys", None) or set()
    _held.keys = held
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key in held:  # this thread already holds it
            yield
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ScriptError(f"{display_path(folder)}: 别人正在保存或批准广播稿，{timeout_s:.0f} 秒内没有等到；"
                                      "请稍后再试") from None
                time.sleep(0.005)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # closing releases the lock

_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(r"(\r\n|\r|\n)")


def set_front_matter(content: str, values: list[tuple[str, str]], drop: tuple[str, ...] = ()) -> str:
    """`content` with the front matter lines of `values` replaced or added and those of `drop` removed;
    every other byte is kept.

    Each line keeps its own line ending; an added line takes the ending of the opening '---'.
    """
    parts = _EOL.split(content)
    lines, seps = parts[0::2], [*parts[1::2], ""]
    split = split_front_matter(content)
    assert not isinstance(split, str)  # the caller checked the file
    end = split[1]  # the same line numbering: both split at \r\n, \r and \n
    eol = seps[0] or "\n"
    for key in drop:
        at = next((i for i in range(1, end) if re.match(rf"{key}\s*:", lines[i])), None)
        if at is not None:
            del lines[at], seps[at]
            end -= 1
    for key, value in values:
        line = f"{key}: {value}"
        at = next((i for i in range(1, end) if re.match(rf"{key}\s*:", lines[i])), None)
        if at is None:
            lines.insert(end, line)
            seps.insert(end, eol)
            end += 1
        else:
            lines[at] = line
    return "".join(line + sep for line, sep in zip(lines, seps, strict=True))


def approve_script(path: Path, *, by: str, on: date, expect: str | None = None) -> Script:
    """Mark a draft approved by `by` on `on`, rewriting only its review lines, atomically.

    The approval records `approval_hash` of the text, title, voice, engine and rate, so any
    later edit makes the script a draft again; such a script can be approved again.

    With `expect` (the approval hash of the version the reviewer read or heard), the file is
    sealed only if it still is that version: the check and the write happen under
    `script_lock`, and the file must not have changed between reading and renaming.

    Other front matter lines (comments included), the text, a UTF-8 BOM and the line endings
    are kept as they are.

    Raises:
        ScriptChanged: the file is not the `expect` version, or changed while it was sealed.
        ScriptError: the file is invalid, already approved, or `by` is empty.
        OutputError: the file could not be written.
    """
    path = Path(path)
    by = by.strip()
    if not by:
        raise ScriptError(f"{display_path(path)}: 批准人姓名是空的；请用 --by 姓名 指定")
    with script_lock(path):
        raw, content, script, problems = _read_locked(path)
        if expect is not None and (script is None or script.content_hash != expect):
            now = f"现在的版本是 {script.content_hash}" if script is not None else "现在的文件有问题"
            raise ScriptChanged(f"{display_path(path)}: 要批准的版本 {expect} 已经被改过了（{now}）；没有批准。"
                                "请重新查看现在的稿件，确认后再批准", script, content or "")
        if script is None or problems:
            raise ScriptError("\n".join(str(p) for p in problems))
        if script.approved:
            raise ScriptError(
                f"{display_path(path)}: 已由 {script.approved_by} 于 {script.approved_on} 批准，无需再批准")
        seal = script.content_hash
        new_content = set_front_matter(content, [
            ("status", "approved"), ("approved_by", yaml_scalar(by)), ("approved_on", on.isoformat()),
            ("approval_hash", seal)])

        approved, problems, _ = check_content(path, new_content, None)
        if approved is None or problems or not approved.approved or approved.approval_hash != seal:
            detail = "；".join(str(p) for p in problems) or "状态没有改变"
            raise ScriptError(f"{display_path(path)}: 无法改写审核字段（{detail}）；请手工修改")
        _replace_unchanged(path, raw, new_content)
        return approved


def _read_locked(path: Path) -> tuple[bytes, str | None, Script | None, list[Problem]]:
    """A script file's bytes, text, script (None when invalid) and problems, for a writer holding its lock."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{display_path(path)}: 无法读取文件（{exc.strerror}）；请检查文件是否还在") from exc
    content, problems = decode(path, raw)
    script = None
    if content is not None:
        script, problems, _ = check_content(path, content, None)
    return raw, content, script, problems


def set_recording(path: Path, name: str, sha256: str) -> Script:
    """Make the script at `path` play the recording `name` (already in place, see `recording_name`), atomically.

    Writes engine: recording, recording and recording_sha256, drops voice and rate (a person speaks),
    and makes the script a draft: an approved script keeps the record of the approval this voids
    (draft after edit, like an edit in the browser), so it stays planned but does not air until a
    reviewer approves the new recording. Other lines, comments and the text are kept.

    Raises:
        ScriptError: the file has problems other than its recording, or already plays this recording.
        ScriptChanged: the file changed while it was rewritten.
    """
    path = Path(path)
    with script_lock(path):
        raw, content, script, problems = _read_locked(path)
        # A missing or replaced recording is what a new one mends; any other problem is fixed first.
        others = [p for p in problems if p.field not in ("recording", "recording_sha256")]
        if content is None or others:
            raise ScriptError("\n".join(str(p) for p in others or problems))
        if script is not None and script.recording_sha256 == sha256:
            raise ScriptError(f"{display_path(path)}: 这段录音和稿件现在用的录音完全一样，没有改动")
        new_content = set_front_matter(content, [
            ("engine", RECORDING_ENGINE), ("recording", name), ("recording_sha256", sha256), ("status", "draft")],
            drop=("voice", "rate"))
        changed, problems, _ = check_content(path, new_content, None)
        if changed is None or problems:
            raise ScriptError("\n".join(str(p) for p in problems) or f"{display_path(path)}: 无法写入录音字段；请手工修改")
        _replace_unchanged(path, raw, new_content)
        return changed


def _replace_unchanged(path: Path, raw: bytes, new_content: str) -> None:
    """Write `new_content` over `path` (keeping a BOM) atomically, only if the file still holds `raw`.

    Raises ScriptChanged when it does not: a writer that ignores the lock (an editor on the
    server, a copy) must not be overwritten.
    """
    data = (_BOM if raw.startswith(_BOM) else b"") + new_content.encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        try:
            unchanged = path.read_bytes() == raw
        except OSError:
            unchanged = False
        if not unchanged:
            current, _, now_content = read_script(path)
            raise ScriptChanged(f"{display_path(path)}: 批准的同时文件被别的程序改写了；没有批准。"
                                "请重新查看现在的稿件，确认后再批准", current, now_content or "")

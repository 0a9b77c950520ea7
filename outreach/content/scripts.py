"""The script library: load, validate and approve the zh-CN loudspeaker scripts in audio_scripts/.

Each script is one Markdown file: YAML front matter between two ``---`` lines, then
the plain spoken text. `check_library` finds every problem in every file and names
the file, the field and the fix; it never raises for a bad file. `load_library`
raises `ScriptError` when anything is wrong, so nothing half-checked goes on air.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from outreach.config import RATE_RANGE, RECORDING_ENGINE, SCRIPT_ENGINE_CHOICES
from outreach.errors import ScriptError
from outreach.files import atomic_path, sha256_file
from outreach.tts.voices import ALL_VOICES, engine_of_voice, is_known_voice
from outreach.yamlread import Problem, YamlOptions, load_yaml, yaml_problem

__all__ = ["FIELDS", "MAX_TITLE", "MIN_HANZI", "RECORDING_EXTENSIONS", "RECORDINGS_DIR", "REQUIRED", "TOPICS",
           "Problem", "Script", "ScriptChanged", "approval_hash", "approve_script", "check_content", "check_library",
           "load_library", "read_script", "recording_name", "script_lock", "script_path", "set_front_matter", "set_recording",
           "split_front_matter", "yaml_scalar"]

Topic = Literal["traffic", "anti_fraud"]
Engine = Literal[SCRIPT_ENGINE_CHOICES]  # type: ignore[valid-type]  # offline: render.offline_engine
Status = Literal["draft", "approved"]

TOPICS: tuple[str, ...] = get_args(Topic)
ENGINES: tuple[str, ...] = get_args(Engine)
STATUSES: tuple[str, ...] = get_args(Status)
REPEAT_RANGE = (1, 5)
PRIORITY_RANGE = (1, 9)
ID_PATTERN = r"[a-z0-9-]+"
FIELDS = (
    "id", "topic", "title", "voice", "engine", "repeat", "priority",
    "valid_from", "valid_until", "status", "approved_by", "approved_on", "approval_hash",
    "rate", "recording", "recording_sha256",
)
REQUIRED = ("id", "topic", "title", "repeat", "priority", "status")
# Problems about the file as a whole rather than one field of it.
_FILE_LEVEL = ("encoding", "front_matter")
_FILE_LEVEL_LABEL = {"encoding": "编码", "front_matter": "文件头"}
# Markdown/HTML marks a voice would read out loud ("井号", "星号").
_MARKUP = re.compile(r"[#*`<>\[\]|]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A body needs this much spoken Chinese: a body of emoji or digits renders only a chime.
MIN_HANZI = 5
# One cap for a title everywhere (the `scripts check` rules, the browser form, `scripts approve`).
MAX_TITLE = 100
_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HASH = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A recording script (engine: recording) airs an uploaded human voice, kept beside the scripts as
# recordings/<id>-<sha256[:12]>.<ext>; its text stays for review (what the recording says). The name
# carries the checksum, so a new recording is written beside the old one and the script switched
# in one rename: the library never holds a script whose recording is half replaced.
RECORDINGS_DIR = "recordings"
RECORDING_EXTENSIONS = ("mp3", "wav", "m4a")


def recording_name(script_id: str, sha256: str, ext: str) -> str:
    """The front matter `recording:` value of a script's recording: recordings/<id>-<sha256[:12]>.<ext>."""
    return f"{RECORDINGS_DIR}/{script_id}-{sha256[:12]}.{ext}"


def approval_hash(text: str, title: str, voice: str | None, engine: str | None, rate: str | None = None,
                  recording: str | None = None) -> str:
    """What an approval seals: 16 hex digits over the text, title, voice, engine, rate and recording (if set).

    `recording` is the sha256 of a recording script's audio file, so replacing the recording voids
    the approval just as editing the text does.
    """
    sealed: dict[str, Any] = {"text": text, "title": title, "voice": voice, "engine": engine}
    if rate is not None:
        sealed["rate"] = rate
    if recording is not None:
        sealed["recording_sha256"] = recording
    return hashlib.sha256(json.dumps(sealed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class Script(BaseModel):
    """One validated loudspeaker script and its review state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=f"^{ID_PATTERN}$")
    topic: Topic
    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    voice: str | None = None
    engine: Engine | None = None
    rate: float | None = Field(None, ge=RATE_RANGE[0], le=RATE_RANGE[1])  # Hanzi per second
    repeat: int = Field(ge=REPEAT_RANGE[0], le=REPEAT_RANGE[1])
    priority: int = Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    valid_from: date | None = None
    valid_until: date | None = None
    status: Status
    approved_by: str | None = None
    approved_on: date | None = None
    # The approval_hash written by `approve_script`; an edit since then voids the approval.
    approval_hash: str | None = None
    # engine: recording only: the audio file (recordings/<id>.<ext>) and its sha256, which approval seals.
    recording: str | None = None
    recording_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    path: Path

    @model_validator(mode="after")
    def _cross_fields(self) -> Script:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError("valid_from 晚于 valid_until")
        if self.status == "approved" and not (self.approved_by and self.approved_on):
            raise ValueError("已批准的广播稿必须有 approved_by 和 approved_on")
        return self

    @property
    def content_hash(self) -> str:
        """The approval hash of the script as it is now."""
        return approval_hash(self.text, self.title, self.voice, self.engine, getattr(self, "rate", None),
                             self.recording_sha256)

    @property
    def is_recording(self) -> bool:
        """True when the script airs an uploaded recording instead of a synthesised voice."""
        return self.engine == RECORDING_ENGINE

    @property
    def recording_path(self) -> Path | None:
        """The recording's audio file (beside the script files), or None for a TTS script."""
        return self.path.parent / self.recording if self.recording else None

    @property
    def edited_after_approval(self) -> bool:
        """True when the script was approved and has been changed since, so the approval no longer holds.

        Either the text, title, voice, engine or rate no longer match the recorded approval_hash,
        or the browser editor saved it as a draft and kept the record of the approval it voided
        (`status: draft` with approved_by and approved_on).
        """
        if self.approved_by is None or self.approved_on is None:
            return False
        if self.status == "draft":
            return True
        return self.approval_hash is not None and self.approval_hash != self.content_hash

    @property
    def approved(self) -> bool:
        """True when the text has been reviewed, unchanged since, and may go on air."""
        return self.status == "approved" and not self.edited_after_approval

    @property
    def review_note(self) -> str | None:
        """Why an approved-looking script is a draft again, for `scripts check`; None otherwise."""
        if not self.edited_after_approval:
            return None
        return (f"{self.approved_by} 于 {self.approved_on} 批准后又被修改过，已退回草稿，重新批准前不会播出；"
                f"请运行 `outreach scripts approve {self.id} --by 姓名`")

    def valid_on(self, day: date) -> bool:
        """True when `day` lies within valid_from..valid_until (open ends allowed)."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


def _display(path: Path) -> str:
    """`path` relative to the working folder when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _problem(path: Path, field: str, message: str) -> Problem:
    """One thing wrong with a script file or the library folder, worded `path: 字段 'x'：message`."""
    where = _display(path)
    if not field:
        text = f"{where}: {message}"
    elif field in _FILE_LEVEL:
        text = f"{where}: {_FILE_LEVEL_LABEL[field]}：{message}"
    else:
        text = f"{where}: 字段 '{field}'：{message}"
    return Problem(path, field, message, text=text)


# Dates stay text (PyYAML would turn 2026-13-01 into a ValueError with no line; we parse dates
# ourselves with a clear message), and a repeated key is refused.
_OPTIONS = YamlOptions(clock_text=False, dates="text", repeated_key="键 '{key}' 出现了两次；只保留一个",
                       refuse_unhashable=False)


def _decode(path: Path, raw: bytes | None = None) -> tuple[str | None, list[Problem]]:
    """Read a file (or its bytes `raw`) as UTF-8 (a BOM is allowed); report unreadable or non-UTF-8 bytes."""
    try:
        if raw is None:
            raw = path.read_bytes()
    except OSError as exc:
        return None, [_problem(path, "", f"无法读取文件（{exc.strerror}）；请检查文件权限")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, [_problem(path, "encoding", (
            f"第 {line} 行（字节偏移 {exc.start}，字节 0x{raw[exc.start]:02x}）不是 UTF-8 编码；"
            "请把文件另存为 UTF-8"))]


def split_front_matter(content: str) -> tuple[list[str], int] | str:
    """Lines of `content` and the index of the closing '---', or what is wrong with the layout."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].strip() != "---":
        return "文件必须以一行 '---' 开头，接着是各字段，再一行 '---'，然后是正文"
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return "文件头没有结束；请在最后一个字段后加一行 '---'"
    return lines, end


def _body_line(content: str) -> int:
    """The file line (1-based) on which the body text starts, after the front matter and blank lines."""
    split = split_front_matter(content)
    if isinstance(split, str):
        return 1
    lines, end = split
    raw = "\n".join(lines[end + 1:])
    return end + 2 + raw[:len(raw) - len(raw.lstrip())].count("\n")


def _parse(path: Path, content: str) -> tuple[dict[Any, Any] | None, str, list[Problem]]:
    """Split `content` into its front matter fields and its body text."""
    split = split_front_matter(content)
    if isinstance(split, str):
        return None, "", [_problem(path, "front_matter", split)]
    lines, end = split
    try:
        data = load_yaml("\n".join(lines[1:end]), _OPTIONS)
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        at = f"第 {mark.line + 2} 行" if mark is not None else ""  # +2: 0-based, after '---'
        if mark is not None and context is not None and context.line != mark.line:
            at += f"（在从第 {context.line + 2} 行开始的值里）"
        # Our own complaints (a repeated key) carry their fix; PyYAML's get the general one.
        fix = "" if _HANZI.search(getattr(exc, "problem", None) or "") else "；每行写一个 '字段名: 值'，值里有 ': ' 或 ' #' 时请加引号"
        return None, "", [_problem(path, "front_matter", f"YAML 格式有误{'，' + at if at else ''}：{yaml_problem(exc)}{fix}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, "", [_problem(path, "front_matter", "必须是 '字段名: 值' 的格式，每行一个字段")]
    return data, "\n".join(lines[end + 1:]).strip(), []


def _validate(path: Path, data: dict[Any, Any], body: str, max_chars: int | None,
              body_line: int = 1) -> tuple[Script | None, list[Problem]]:
    """Check every field of one parsed file; build the Script only when nothing is wrong."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(_problem(path, field, message))

    given = _check_keys(data, bad)
    v: dict[str, Any] = {}
    _check_id(given, path, v, bad)
    _check_words(given, v, bad)
    _check_numbers(given, v, bad)
    _check_dates(given, v, bad)
    _check_review(given, v, bad)
    _check_recording(given, path, v, bad)
    _check_body(body, max_chars, body_line, bad)

    if problems:
        return None, problems
    try:
        return Script(**v, text=body, path=path), []
    except ValidationError as exc:  # a safety net: the checks above should catch everything first
        return None, [_problem(path, "", f"广播稿无效（{exc.errors()[0]['msg']}）；请改正文件头")]


def _check_keys(data: dict[Any, Any], bad: Callable[[str, str], None]) -> dict[str, Any]:
    """Unknown and missing fields; the fields given a value."""
    for key in data:
        if key not in FIELDS:
            bad(str(key), f"未知字段；请删除或改正字段名（可用字段：{', '.join(FIELDS)}）")
    given = {k: data[k] for k in FIELDS if data.get(k) not in (None, "")}
    for key in REQUIRED:
        if key not in given:
            bad(key, f"缺少此字段；请在文件头里加上 '{key}: ...'")
    return given


def _check_id(given: dict[str, Any], path: Path, v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """The id: well formed and the file's own name."""
    if "id" in given:
        sid = given["id"]
        if not isinstance(sid, str) or not re.fullmatch(ID_PATTERN, sid):
            bad("id", f"{sid!r} 不是有效的编号；只能用小写字母、数字和 '-'，如 traffic-helmet")
        elif sid != path.stem:
            bad("id", f"'{sid}' 与文件名不一致；请把文件改名为 {sid}.md，或改成 id: {path.stem}")
        else:
            v["id"] = sid


def _check_words(given: dict[str, Any], v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """topic, engine and status from their lists; title, voice and approved_by as text; the voice's engine."""
    for key, allowed in (("topic", TOPICS), ("engine", ENGINES), ("status", STATUSES)):
        if key in given:
            if given[key] in allowed:
                v[key] = given[key]
            else:
                bad(key, f"未知的 {key} 值 '{given[key]}'；请用 {' 或 '.join(allowed)}")
    for key in ("title", "voice", "approved_by"):
        if key in given:
            if isinstance(given[key], str) and given[key].strip():
                v[key] = given[key].strip()
            else:
                bad(key, f"{given[key]!r} 不是文字；请写成文字，必要时加引号")
    if "title" in v and len(v["title"]) > MAX_TITLE:
        bad("title", f"标题有 {len(v.pop('title'))} 个字，超过 {MAX_TITLE} 个字的上限；请缩短标题，详细内容写在正文里")
    if "voice" in v and not is_known_voice(v["voice"]):
        names = ", ".join(voice.name for voice in ALL_VOICES)
        bad("voice", f"未知音色 '{v.pop('voice')}'；请从以下音色中选一个：{names}")
    if "voice" in v and v.get("engine") not in (None, RECORDING_ENGINE) and engine_of_voice(v["voice"]) != v["engine"]:
        owner = engine_of_voice(v["voice"])
        bad("voice", (f"'{v['voice']}' 是 {owner} 引擎的音色，但 engine 是 {v['engine']}；"
                      f"请改成 engine: {owner}，或删掉 engine，或换一个 {v['engine']} 引擎的音色"))


def _check_numbers(given: dict[str, Any], v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """repeat and priority (integers in range) and rate."""
    for key, (lo, hi) in (("repeat", REPEAT_RANGE), ("priority", PRIORITY_RANGE)):
        if key in given:
            n = given[key]
            if isinstance(n, bool) or not isinstance(n, int):
                bad(key, f"{n!r} 不是整数；请用 {lo} 到 {hi} 的整数")
            elif not lo <= n <= hi:
                bad(key, f"{n} 超出范围；请用 {lo} 到 {hi} 的整数")
            else:
                v[key] = n
    if "rate" in given:
        n, (lo, hi) = given["rate"], RATE_RANGE
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not lo <= n <= hi:
            bad("rate", f"{n!r} 不是有效的语速；请用每秒 {lo} 到 {hi} 字，如 rate: 3.5")
        else:
            v["rate"] = float(n)


def _check_dates(given: dict[str, Any], v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """valid_from, valid_until and approved_on as YYYY-MM-DD, in order."""
    for key in ("valid_from", "valid_until", "approved_on"):
        if key in given:
            raw = given[key]
            try:
                if not (isinstance(raw, str) and _ISO_DATE.fullmatch(raw.strip())):
                    raise ValueError
                v[key] = date.fromisoformat(raw.strip())
            except ValueError:
                bad(key, f"{str(raw)!r} 不是日期；请写成 YYYY-MM-DD，如 2026-11-20")
    if "valid_from" in v and "valid_until" in v and v["valid_from"] > v["valid_until"]:
        bad("valid_until", f"{v['valid_until']} 早于 valid_from {v['valid_from']}；请对调或改正日期")


def _check_review(given: dict[str, Any], v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """The review fields an approved script needs and a draft may keep."""
    if v.get("status") == "approved":
        if "approved_by" not in given:
            bad("approved_by", "缺少此字段；已批准的广播稿要写审核员姓名，如 approved_by: 王秀兰")
        if "approved_on" not in given:
            bad("approved_on", "缺少此字段；已批准的广播稿要写批准日期，如 approved_on: 2026-11-20")
    if "approval_hash" in given:
        raw_hash = given["approval_hash"]
        if isinstance(raw_hash, str) and _HASH.fullmatch(raw_hash.strip()):
            v["approval_hash"] = raw_hash.strip()
        else:
            bad("approval_hash", f"{str(raw_hash)!r} 不是有效的批准校验值；请删掉这一行，再用 "
                                 "`outreach scripts approve 编号 --by 姓名` 重新批准")
    # A draft may keep the record of an approval that an edit voided (approved_by and approved_on
    # together, approval_hash if it had one): it is then "draft after edit", blocked but planned.
    if v.get("status") == "draft" and not ("approved_by" in given and "approved_on" in given):
        for key in ("approved_by", "approved_on", "approval_hash"):
            if key in given:
                bad(key, "草稿不应有此字段（只有批准后又被修改的草稿才同时保留 approved_by 和 approved_on）；"
                         "请删掉，或用 `outreach scripts approve 编号 --by 姓名` 批准")


_ADD_RECORDING = "请用 `outreach scripts add-recording 编号 文件`（或网页上的稿件页）重新添加录音"


def _check_recording(given: dict[str, Any], path: Path, v: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    """A recording script names its file and checksum, and the file is still that recording; others have neither."""
    rec, sha = given.get("recording"), given.get("recording_sha256")
    if given.get("engine") != RECORDING_ENGINE:
        if rec is not None or sha is not None:
            bad("recording" if rec is not None else "recording_sha256",
                f"只有 engine: {RECORDING_ENGINE} 的稿件才有录音；请删掉 recording 和 recording_sha256 两行，"
                f"或改成 engine: {RECORDING_ENGINE}")
        return
    for key in ("voice", "rate"):
        if key in given:
            v.pop(key, None)
            bad(key, "录音稿播放上传的人声，不用音色和语速；请删掉这一行")
    if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        bad("recording_sha256", f"录音的校验值缺失或无效（应为 64 位十六进制）；{_ADD_RECORDING}")
        return
    sid = given.get("id") if isinstance(given.get("id"), str) else path.stem
    names = [recording_name(sid, sha, ext) for ext in RECORDING_EXTENSIONS]
    if rec is None:
        bad("recording", f"录音稿缺少录音文件；{_ADD_RECORDING}")
        return
    if rec not in names:
        bad("recording", f"{rec!r} 不是这篇稿件的录音文件名；应是 {' 或 '.join(names)}；{_ADD_RECORDING}")
        return
    actual = _recording_sha256(path.parent / rec)
    if actual is None:
        bad("recording", f"找不到录音文件 {rec}；{_ADD_RECORDING}")
    elif actual != sha:
        bad("recording_sha256", f"录音文件 {rec} 和记录的校验值不一致（文件被替换或损坏过）；{_ADD_RECORDING}，"
                                "添加后要重新审核")
    else:
        v["recording"], v["recording_sha256"] = rec, sha


# sha256 of recording files by (path, mtime, size): the library is loaded often, recordings rarely change.
_RECORDING_SHA: dict[tuple[str, int, int], str] = {}


def _recording_sha256(file: Path) -> str | None:
    """The sha256 of a recording file, or None when it is missing or unreadable."""
    try:
        st = file.stat()
        key = (str(file.resolve()), st.st_mtime_ns, st.st_size)
        if key not in _RECORDING_SHA:
            if len(_RECORDING_SHA) > 512:
                _RECORDING_SHA.clear()
            _RECORDING_SHA[key] = sha256_file(file)
        return _RECORDING_SHA[key]
    except OSError:
        return None


def _check_body(body: str, max_chars: int | None, body_line: int, bad: Callable[[str, str], None]) -> None:
    """The spoken text: present, not too long, nothing a voice would read out, enough Chinese."""
    if not body:
        bad("text", "正文是空的；请在结尾的 '---' 行下面写要播的普通话内容")
    elif max_chars is not None and len(body) > max_chars:
        bad("text", f"共 {len(body)} 个字，超过 max_chars {max_chars}；请删短，或拆成两篇广播稿")
    if (mark := _MARKUP.search(body)) is not None:
        bad("text", f"含有 '{mark.group()}'，语音会把它念出来；请只写要念的文字")
    for offset, line_text in enumerate(body.split("\n")):
        control = next((ch for ch in line_text if unicodedata.category(ch) == "Cc" and ch != "\t"), None)
        if control is not None:
            bad("text", f"第 {body_line + offset} 行有控制字符 U+{ord(control):04X}，不能念出来；"
                        "请删掉它（看不见的话，把这一行重新输入一遍）")
            break
    if body and (hanzi := len(_HANZI.findall(body))) < MIN_HANZI:
        bad("text", f"只有 {hanzi} 个汉字；广播稿是要念的普通话，至少要 {MIN_HANZI} 个汉字")


def check_content(path: Path, content: str, max_chars: int | None) -> tuple[Script | None, list[Problem], str | None]:
    """Validate one file's text; also return its raw id (for duplicate checks)."""
    data, body, problems = _parse(path, content)
    if data is None:
        return None, problems, None
    script, problems = _validate(path, data, body, max_chars, _body_line(content))
    raw_id = data.get("id")
    return script, problems, raw_id if isinstance(raw_id, str) else None


def check_library(scripts_dir: Path, *, max_chars: int) -> tuple[list[Script], list[Problem]]:
    """Validate every ``*.md`` script in `scripts_dir`.

    Returns the valid scripts (sorted by file name) and every problem in every file.
    Never raises for a bad file or folder; a file with any problem is left out.
    """
    scripts_dir = Path(scripts_dir)
    if not scripts_dir.is_dir():
        return [], [_problem(scripts_dir, "", "广播稿文件夹不存在；请新建它，每篇广播稿放一个 .md 文件")]
    files = sorted(p for p in scripts_dir.glob("*.md") if p.is_file() and not p.name.startswith("."))
    if not files:
        return [], [_problem(scripts_dir, "", "这个文件夹里没有广播稿（*.md 文件）；每篇广播稿放一个 .md 文件")]

    checked: list[tuple[Script | None, list[Problem]]] = []
    first_with_id: dict[str, Path] = {}
    for path in files:
        content, problems = _decode(path)
        script, raw_id = None, None
        if content is not None:
            script, problems, raw_id = check_content(path, content, max_chars)
        if raw_id is not None:
            if raw_id in first_with_id:
                problems.append(_problem(path, "id", (
                    f"'{raw_id}' 已被 {_display(first_with_id[raw_id])} 使用；每篇广播稿要有自己的编号")))
            else:
                first_with_id[raw_id] = path
        checked.append((script, problems))
    scripts = [s for s, probs in checked if s is not None and not probs]
    return scripts, [p for _, probs in checked for p in probs]


def load_library(scripts_dir: Path, *, max_chars: int) -> list[Script]:
    """Load every script in `scripts_dir`.

    Raises:
        ScriptError: listing every problem, one per line, when any file is invalid.
    """
    scripts, problems = check_library(scripts_dir, max_chars=max_chars)
    if problems:
        lines = "\n".join(str(p) for p in problems)
        raise ScriptError(f"广播稿库里有 {len(problems)} 个问题；改好后再运行：\n{lines}")
    return scripts


def script_path(scripts_dir: Path, script_id: str) -> Path:
    """The file of script `script_id` in `scripts_dir`.

    Raises:
        ScriptError: the id is malformed or no such file exists.
    """
    if not re.fullmatch(ID_PATTERN, script_id):
        raise ScriptError(f"'{script_id}' 不是广播稿编号；只能用小写字母、数字和 '-'，如 traffic-helmet")
    path = Path(scripts_dir) / f"{script_id}.md"
    if not path.is_file():
        raise ScriptError(f"{_display(path)}: 没有这篇广播稿；运行 `outreach scripts list` 查看全部编号")
    return path


def yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: bare when it reads back unchanged, else double-quoted."""
    try:
        if load_yaml(f"k: {value}", _OPTIONS) == {"k": value}:
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
        raise ScriptError(f"{_display(folder)}: 无法锁定广播稿文件夹（{exc.strerror}）；"
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
                    raise ScriptError(f"{_display(folder)}: 别人正在保存或批准广播稿，{timeout_s:.0f} 秒内没有等到；"
                                      "请稍后再试") from None
                time.sleep(0.005)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # closing releases the lock


def read_script(path: Path, max_chars: int | None = None) -> tuple[Script | None, list[Problem], str | None]:
    """Read and check one script file: the script (None when invalid), its problems and its text."""
    content, problems = _decode(Path(path))
    if content is None:
        return None, problems, None
    script, problems, _ = check_content(Path(path), content, max_chars)
    return script, problems, content


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
        raise ScriptError(f"{_display(path)}: 批准人姓名是空的；请用 --by 姓名 指定")
    with script_lock(path):
        raw, content, script, problems = _read_locked(path)
        if expect is not None and (script is None or script.content_hash != expect):
            now = f"现在的版本是 {script.content_hash}" if script is not None else "现在的文件有问题"
            raise ScriptChanged(f"{_display(path)}: 要批准的版本 {expect} 已经被改过了（{now}）；没有批准。"
                                "请重新查看现在的稿件，确认后再批准", script, content or "")
        if script is None or problems:
            raise ScriptError("\n".join(str(p) for p in problems))
        if script.approved:
            raise ScriptError(
                f"{_display(path)}: 已由 {script.approved_by} 于 {script.approved_on} 批准，无需再批准")
        seal = script.content_hash
        new_content = set_front_matter(content, [
            ("status", "approved"), ("approved_by", yaml_scalar(by)), ("approved_on", on.isoformat()),
            ("approval_hash", seal)])

        approved, problems, _ = check_content(path, new_content, None)
        if approved is None or problems or not approved.approved or approved.approval_hash != seal:
            detail = "；".join(str(p) for p in problems) or "状态没有改变"
            raise ScriptError(f"{_display(path)}: 无法改写审核字段（{detail}）；请手工修改")
        _replace_unchanged(path, raw, new_content)
        return approved


def _read_locked(path: Path) -> tuple[bytes, str | None, Script | None, list[Problem]]:
    """A script file's bytes, text, script (None when invalid) and problems, for a writer holding its lock."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{_display(path)}: 无法读取文件（{exc.strerror}）；请检查文件是否还在") from exc
    content, problems = _decode(path, raw)
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
            raise ScriptError(f"{_display(path)}: 这段录音和稿件现在用的录音完全一样，没有改动")
        new_content = set_front_matter(content, [
            ("engine", RECORDING_ENGINE), ("recording", name), ("recording_sha256", sha256), ("status", "draft")],
            drop=("voice", "rate"))
        changed, problems, _ = check_content(path, new_content, None)
        if changed is None or problems:
            raise ScriptError("\n".join(str(p) for p in problems) or f"{_display(path)}: 无法写入录音字段；请手工修改")
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
            raise ScriptChanged(f"{_display(path)}: 批准的同时文件被别的程序改写了；没有批准。"
                                "请重新查看现在的稿件，确认后再批准", current, now_content or "")

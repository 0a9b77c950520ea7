"""Check every front matter field and the body of one parsed script file, and word each problem found."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from outreach.config import RATE_RANGE, RECORDING_ENGINE
from outreach.content.script_model import (
    ENGINES, FIELDS, ID_PATTERN, MAX_TITLE, MIN_HANZI, PRIORITY_RANGE, RECORDING_EXTENSIONS, REPEAT_RANGE, REQUIRED,
    STATUSES, TOPICS, Script, recording_name,
)
from outreach.files import sha256_file
from outreach.tts.voices import ALL_VOICES, engine_of_voice, is_known_voice
from outreach.yamlread import Problem

__all__ = ["HANZI", "display_path", "script_problem", "validate"]

# Problems about the file as a whole rather than one field of it.
_FILE_LEVEL = ("encoding", "front_matter")
_FILE_LEVEL_LABEL = {"encoding": "编码", "front_matter": "文件头"}
# Markdown/HTML marks a voice would read out loud ("井号", "星号").
_MARKUP = re.compile(r"[#*`<>\[\]|]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# One Chinese character (CJK ideographs, extension A, compatibility ideographs).
HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HASH = re.compile(r"[0-9a-f]{16}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def display_path(path: Path) -> str:
    """`path` relative to the working folder when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def script_problem(path: Path, field: str, message: str) -> Problem:
    """One thing wrong with a script file or the library folder, worded `path: 字段 'x'：message`."""
    where = display_path(path)
    if not field:
        text = f"{where}: {message}"
    elif field in _FILE_LEVEL:
        text = f"{where}: {_FILE_LEVEL_LABEL[field]}：{message}"
    else:
        text = f"{where}: 字段 '{field}'：{message}"
    return Problem(path, field, message, text=text)


def validate(path: Path, data: dict[Any, Any], body: str, max_chars: int | None,
              body_line: int = 1) -> tuple[Script | None, list[Problem]]:
    """Check every field of one parsed file; build the Script only when nothing is wrong."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(script_problem(path, field, message))

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
        return None, [script_problem(path, "", f"广播稿无效（{exc.errors()[0]['msg']}）；请改正文件头")]


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
    if body and (hanzi := len(HANZI.findall(body))) < MIN_HANZI:
        bad("text", f"只有 {hanzi} 个汉字；广播稿是要念的普通话，至少要 {MIN_HANZI} 个汉字")

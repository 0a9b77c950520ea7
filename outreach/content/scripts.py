"""The script library: load and validate the zh-CN loudspeaker scripts in audio_scripts/.

Each script is one Markdown file: YAML front matter between two ``---`` lines, then
the plain spoken text. `check_library` finds every problem in every file and names
the file, the field and the fix; it never raises for a bad file. `load_library`
raises `ScriptError` when anything is wrong, so nothing half-checked goes on air.
What a script is lives in `script_model`, the field checks in `script_checks`, and
rewriting a file (approval, a new recording) in `script_writer`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from outreach.content.script_checks import HANZI, display_path, script_problem, validate
from outreach.content.script_model import ID_PATTERN, Script
from outreach.errors import ScriptError
from outreach.yamlread import Problem, YamlOptions, load_yaml, yaml_problem

__all__ = ["FRONT_MATTER_YAML", "Problem", "check_content", "check_library", "decode", "load_library", "read_script",
           "script_path", "split_front_matter"]

# Dates stay text (PyYAML would turn 2026-13-01 into a ValueError with no line; we parse dates
# ourselves with a clear message), and a repeated key is refused.
FRONT_MATTER_YAML = YamlOptions(clock_text=False, dates="text", repeated_key="键 '{key}' 出现了两次；只保留一个",
                                refuse_unhashable=False)


def decode(path: Path, raw: bytes | None = None) -> tuple[str | None, list[Problem]]:
    """Read a file (or its bytes `raw`) as UTF-8 (a BOM is allowed); report unreadable or non-UTF-8 bytes."""
    try:
        if raw is None:
            raw = path.read_bytes()
    except OSError as exc:
        return None, [script_problem(path, "", f"无法读取文件（{exc.strerror}）；请检查文件权限")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, [script_problem(path, "encoding", (
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
        return None, "", [script_problem(path, "front_matter", split)]
    lines, end = split
    try:
        data = load_yaml("\n".join(lines[1:end]), FRONT_MATTER_YAML)
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        at = f"第 {mark.line + 2} 行" if mark is not None else ""  # +2: 0-based, after '---'
        if mark is not None and context is not None and context.line != mark.line:
            at += f"（在从第 {context.line + 2} 行开始的值里）"
        # Our own complaints (a repeated key) carry their fix; PyYAML's get the general one.
        fix = "" if HANZI.search(getattr(exc, "problem", None) or "") else "；每行写一个 '字段名: 值'，值里有 ': ' 或 ' #' 时请加引号"
        return None, "", [script_problem(path, "front_matter", f"YAML 格式有误{'，' + at if at else ''}：{yaml_problem(exc)}{fix}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, "", [script_problem(path, "front_matter", "必须是 '字段名: 值' 的格式，每行一个字段")]
    return data, "\n".join(lines[end + 1:]).strip(), []



def check_content(path: Path, content: str, max_chars: int | None) -> tuple[Script | None, list[Problem], str | None]:
    """Validate one file's text; also return its raw id (for duplicate checks)."""
    data, body, problems = _parse(path, content)
    if data is None:
        return None, problems, None
    script, problems = validate(path, data, body, max_chars, _body_line(content))
    raw_id = data.get("id")
    return script, problems, raw_id if isinstance(raw_id, str) else None


def check_library(scripts_dir: Path, *, max_chars: int) -> tuple[list[Script], list[Problem]]:
    """Validate every ``*.md`` script in `scripts_dir`.

    Returns the valid scripts (sorted by file name) and every problem in every file.
    Never raises for a bad file or folder; a file with any problem is left out.
    """
    scripts_dir = Path(scripts_dir)
    if not scripts_dir.is_dir():
        return [], [script_problem(scripts_dir, "", "广播稿文件夹不存在；请新建它，每篇广播稿放一个 .md 文件")]
    files = sorted(p for p in scripts_dir.glob("*.md") if p.is_file() and not p.name.startswith("."))
    if not files:
        return [], [script_problem(scripts_dir, "", "这个文件夹里没有广播稿（*.md 文件）；每篇广播稿放一个 .md 文件")]

    checked: list[tuple[Script | None, list[Problem]]] = []
    first_with_id: dict[str, Path] = {}
    for path in files:
        content, problems = decode(path)
        script, raw_id = None, None
        if content is not None:
            script, problems, raw_id = check_content(path, content, max_chars)
        if raw_id is not None:
            if raw_id in first_with_id:
                problems.append(script_problem(path, "id", (
                    f"'{raw_id}' 已被 {display_path(first_with_id[raw_id])} 使用；每篇广播稿要有自己的编号")))
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
        raise ScriptError(f"{display_path(path)}: 没有这篇广播稿；运行 `outreach scripts list` 查看全部编号")
    return path


def read_script(path: Path, max_chars: int | None = None) -> tuple[Script | None, list[Problem], str | None]:
    """Read and check one script file: the script (None when invalid), its problems and its text."""
    content, problems = decode(Path(path))
    if content is None:
        return None, problems, None
    script, problems, _ = check_content(Path(path), content, max_chars)
    return script, problems, content

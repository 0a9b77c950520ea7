"""The script library: load, validate and approve the zh-CN loudspeaker scripts in audio_scripts/.

Each script is one Markdown file: YAML front matter between two ``---`` lines, then
the plain spoken text. `check_library` finds every problem in every file and names
the file, the field and the fix; it never raises for a bad file. `load_library`
raises `ScriptError` when anything is wrong, so nothing half-checked goes on air.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from outreach.config import RATE_RANGE
from outreach.errors import ScriptError
from outreach.files import write_text_atomic
from outreach.tts.voices import ALL_VOICES, engine_of_voice, is_known_voice

__all__ = ["FIELDS", "MIN_HANZI", "REQUIRED", "TOPICS", "Problem", "Script", "approval_hash", "approve_script",
           "check_library", "load_library", "script_path"]

Topic = Literal["traffic", "anti_fraud"]
Engine = Literal["neural", "espeak", "edge", "offline"]  # offline: render.offline_engine
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
    "rate",
)
REQUIRED = ("id", "topic", "title", "repeat", "priority", "status")
# Problems about the file as a whole rather than one field of it.
_FILE_LEVEL = ("encoding", "front_matter")
# Markdown/HTML marks a voice would read out loud ("井号", "星号").
_MARKUP = re.compile(r"[#*`<>\[\]|]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A body needs this much spoken Chinese: a body of emoji or digits renders only a chime.
MIN_HANZI = 5
_HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HASH = re.compile(r"[0-9a-f]{16}")


def approval_hash(text: str, title: str, voice: str | None, engine: str | None, rate: str | None = None) -> str:
    """What an approval seals: 16 hex digits over the text, title, voice, engine and (if set) rate."""
    sealed: dict[str, Any] = {"text": text, "title": title, "voice": voice, "engine": engine}
    if rate is not None:
        sealed["rate"] = rate
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
    path: Path

    @model_validator(mode="after")
    def _cross_fields(self) -> Script:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError("valid_from is after valid_until")
        if self.status == "approved" and not (self.approved_by and self.approved_on):
            raise ValueError("an approved script needs approved_by and approved_on")
        return self

    @property
    def content_hash(self) -> str:
        """The approval hash of the script as it is now."""
        return approval_hash(self.text, self.title, self.voice, self.engine, getattr(self, "rate", None))

    @property
    def edited_after_approval(self) -> bool:
        """True when the text, title, voice, engine or rate changed since the recorded approval."""
        return self.status == "approved" and self.approval_hash is not None and self.approval_hash != self.content_hash

    @property
    def approved(self) -> bool:
        """True when the text has been reviewed, unchanged since, and may go on air."""
        return self.status == "approved" and not self.edited_after_approval

    @property
    def review_note(self) -> str | None:
        """Why an approved-looking script is a draft again, for `scripts check`; None otherwise."""
        if not self.edited_after_approval:
            return None
        return (f"edited after approval by {self.approved_by} on {self.approved_on}; it is a draft again and will "
                f"not air until re-approved: outreach scripts approve {self.id} --by NAME")

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


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a script file or the library folder: where, which field, the fix."""

    path: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = _display(self.path)
        if not self.field:
            return f"{where}: {self.message}"
        if self.field in _FILE_LEVEL:
            return f"{where}: {self.field.replace('_', ' ')}: {self.message}"
        return f"{where}: field '{self.field}': {self.message}"


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text (we parse them with a clear message) and rejects repeated keys."""


# PyYAML would turn 2026-13-01 into a ValueError with no line; we parse dates ourselves.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            repeated = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            continue
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice; keep one", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _decode(path: Path) -> tuple[str | None, list[Problem]]:
    """Read a file as UTF-8 (a BOM is allowed); report unreadable or non-UTF-8 bytes."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(path, "", f"cannot read the file ({exc.strerror}); check its permissions")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, [Problem(path, "encoding", (
            f"bytes are not UTF-8 at byte offset {exc.start} (line {line}, byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8"))]


def _split(content: str) -> tuple[list[str], int] | str:
    """Lines of `content` and the index of the closing '---', or what is wrong with the layout."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].strip() != "---":
        return "the file must start with a '---' line, then the fields, then '---' and the text"
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        return "the front matter is not closed; add a '---' line after the last field"
    return lines, end


def _body_line(content: str) -> int:
    """The file line (1-based) on which the body text starts, after the front matter and blank lines."""
    split = _split(content)
    if isinstance(split, str):
        return 1
    lines, end = split
    raw = "\n".join(lines[end + 1:])
    return end + 2 + raw[:len(raw) - len(raw.lstrip())].count("\n")


def _parse(path: Path, content: str) -> tuple[dict[Any, Any] | None, str, list[Problem]]:
    """Split `content` into its front matter fields and its body text."""
    split = _split(content)
    if isinstance(split, str):
        return None, "", [Problem(path, "front_matter", split)]
    lines, end = split
    try:
        data = yaml.load("\n".join(lines[1:end]), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        at = f" at line {mark.line + 2}" if mark is not None else ""  # +2: 0-based, after '---'
        if mark is not None and context is not None and context.line != mark.line:
            at += f" (in the value that starts at line {context.line + 2})"
        what = getattr(exc, "problem", None) or str(exc)
        return None, "", [Problem(path, "front_matter", (
            f"invalid YAML{at}: {what}; write one 'key: value' per line and quote values containing ': ' or ' #'"))]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, "", [Problem(path, "front_matter", "must be 'key: value' lines, one field per line")]
    return data, "\n".join(lines[end + 1:]).strip(), []


def _validate(path: Path, data: dict[Any, Any], body: str, max_chars: int | None,
              body_line: int = 1) -> tuple[Script | None, list[Problem]]:
    """Check every field of one parsed file; build the Script only when nothing is wrong."""
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append(Problem(path, field, message))

    for key in data:
        if key not in FIELDS:
            bad(str(key), f"unknown field; remove it or fix its name (fields: {', '.join(FIELDS)})")
    given = {k: data[k] for k in FIELDS if data.get(k) not in (None, "")}
    for key in REQUIRED:
        if key not in given:
            bad(key, f"missing; add '{key}: ...' to the front matter")

    v: dict[str, Any] = {}
    if "id" in given:
        sid = given["id"]
        if not isinstance(sid, str) or not re.fullmatch(ID_PATTERN, sid):
            bad("id", f"{sid!r} is not a valid id; use lowercase letters, digits and '-', like traffic-helmet")
        elif sid != path.stem:
            bad("id", f"'{sid}' does not match the file name; rename the file to {sid}.md or set id: {path.stem}")
        else:
            v["id"] = sid
    for key, allowed in (("topic", TOPICS), ("engine", ENGINES), ("status", STATUSES)):
        if key in given:
            if given[key] in allowed:
                v[key] = given[key]
            else:
                bad(key, f"unknown {key} '{given[key]}'; use {' or '.join(allowed)}")
    for key in ("title", "voice", "approved_by"):
        if key in given:
            if isinstance(given[key], str) and given[key].strip():
                v[key] = given[key].strip()
            else:
                bad(key, f"{given[key]!r} is not text; write it as text, in quotes if needed")
    if "voice" in v and not is_known_voice(v["voice"]):
        names = ", ".join(voice.name for voice in ALL_VOICES)
        bad("voice", f"unknown voice '{v.pop('voice')}'; use one of {names}")
    if "voice" in v and "engine" in v and engine_of_voice(v["voice"]) != v["engine"]:
        owner = engine_of_voice(v["voice"])
        bad("voice", (f"'{v['voice']}' is an {owner} voice but engine is {v['engine']}; "
                      f"set engine: {owner}, remove engine, or pick an {v['engine']} voice"))
    for key, (lo, hi) in (("repeat", REPEAT_RANGE), ("priority", PRIORITY_RANGE)):
        if key in given:
            n = given[key]
            if isinstance(n, bool) or not isinstance(n, int):
                bad(key, f"{n!r} is not a whole number; use a number from {lo} to {hi}")
            elif not lo <= n <= hi:
                bad(key, f"{n} is out of range; use a whole number from {lo} to {hi}")
            else:
                v[key] = n
    if "rate" in given:
        n, (lo, hi) = given["rate"], RATE_RANGE
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not lo <= n <= hi:
            bad("rate", f"{n!r} is not a speaking rate; use Hanzi per second from {lo} to {hi}, e.g. rate: 3.5")
        else:
            v["rate"] = float(n)
    for key in ("valid_from", "valid_until", "approved_on"):
        if key in given:
            raw = given[key]
            try:
                if not (isinstance(raw, str) and _ISO_DATE.fullmatch(raw.strip())):
                    raise ValueError
                v[key] = date.fromisoformat(raw.strip())
            except ValueError:
                bad(key, f"{str(raw)!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-20")
    if "valid_from" in v and "valid_until" in v and v["valid_from"] > v["valid_until"]:
        bad("valid_until", f"{v['valid_until']} is before valid_from {v['valid_from']}; swap or fix the dates")
    if v.get("status") == "approved":
        if "approved_by" not in given:
            bad("approved_by", "missing; an approved script needs the reviewer's name, e.g. approved_by: 王秀兰")
        if "approved_on" not in given:
            bad("approved_on", "missing; an approved script needs the approval date, e.g. approved_on: 2026-11-20")
    if "approval_hash" in given:
        raw_hash = given["approval_hash"]
        if isinstance(raw_hash, str) and _HASH.fullmatch(raw_hash.strip()):
            v["approval_hash"] = raw_hash.strip()
        else:
            bad("approval_hash", f"{str(raw_hash)!r} is not an approval hash; remove the line and approve again "
                                 "with `outreach scripts approve ID --by NAME`")
    if v.get("status") == "draft":
        for key in ("approved_by", "approved_on", "approval_hash"):
            if key in given:
                bad(key, "set on a draft; remove it, or approve with `outreach scripts approve ID --by NAME`")

    if not body:
        bad("text", "empty; write the spoken Mandarin text below the closing '---' line")
    elif max_chars is not None and len(body) > max_chars:
        bad("text", f"{len(body)} characters, more than max_chars {max_chars}; shorten it or split it into two scripts")
    if (mark := _MARKUP.search(body)) is not None:
        bad("text", f"contains '{mark.group()}', which the voice would read out; write plain spoken text")
    for offset, line_text in enumerate(body.split("\n")):
        control = next((ch for ch in line_text if unicodedata.category(ch) == "Cc" and ch != "\t"), None)
        if control is not None:
            bad("text", f"line {body_line + offset} contains the control character U+{ord(control):04X}, which "
                        "is not speech; delete it (retype the line if you cannot see it)")
            break
    if body and (hanzi := len(_HANZI.findall(body))) < MIN_HANZI:
        bad("text", f"only {hanzi} Chinese character(s); a script is spoken Mandarin and needs at least {MIN_HANZI}")

    if problems:
        return None, problems
    try:
        return Script(**v, text=body, path=path), []
    except ValidationError as exc:  # a safety net: the checks above should catch everything first
        return None, [Problem(path, "", f"invalid script ({exc.errors()[0]['msg']}); fix the front matter")]


def _check_content(path: Path, content: str, max_chars: int | None) -> tuple[Script | None, list[Problem], str | None]:
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
        return [], [Problem(scripts_dir, "", "the script folder does not exist; create it and add one .md file per script")]
    files = sorted(p for p in scripts_dir.glob("*.md") if p.is_file() and not p.name.startswith("."))
    if not files:
        return [], [Problem(scripts_dir, "", "no scripts (*.md files) in this folder; add one .md file per script")]

    checked: list[tuple[Script | None, list[Problem]]] = []
    first_with_id: dict[str, Path] = {}
    for path in files:
        content, problems = _decode(path)
        script, raw_id = None, None
        if content is not None:
            script, problems, raw_id = _check_content(path, content, max_chars)
        if raw_id is not None:
            if raw_id in first_with_id:
                problems.append(Problem(path, "id", (
                    f"'{raw_id}' is already used by {_display(first_with_id[raw_id])}; give each script its own id")))
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
        raise ScriptError(f"{len(problems)} problem(s) in the script library; fix them and run again:\n{lines}")
    return scripts


def script_path(scripts_dir: Path, script_id: str) -> Path:
    """The file of script `script_id` in `scripts_dir`.

    Raises:
        ScriptError: the id is malformed or no such file exists.
    """
    if not re.fullmatch(ID_PATTERN, script_id):
        raise ScriptError(f"'{script_id}' is not a script id; use lowercase letters, digits and '-', like traffic-helmet")
    path = Path(scripts_dir) / f"{script_id}.md"
    if not path.is_file():
        raise ScriptError(f"{_display(path)}: no such script; run `outreach scripts list` to see the ids")
    return path


def _yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: bare when it reads back unchanged, else double-quoted."""
    try:
        if yaml.load(f"k: {value}", Loader=_Loader) == {"k": value}:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def approve_script(path: Path, *, by: str, on: date) -> Script:
    """Mark a draft approved by `by` on `on`, rewriting only its review lines, atomically.

    The approval records `approval_hash` of the text, title, voice, engine and rate, so any
    later edit makes the script a draft again; such a script can be approved again.

    Other front matter lines (comments included) and the text are kept as they are.

    Raises:
        ScriptError: the file is invalid, already approved, or `by` is empty.
        OutputError: the file could not be written.
    """
    path = Path(path)
    by = by.strip()
    if not by:
        raise ScriptError(f"{_display(path)}: the approver's name is empty; pass --by NAME")
    content, problems = _decode(path)
    script = None
    if content is not None:
        script, problems, _ = _check_content(path, content, None)
    if script is None or problems:
        raise ScriptError("\n".join(str(p) for p in problems))
    if script.approved:
        raise ScriptError(
            f"{_display(path)}: already approved by {script.approved_by} on {script.approved_on}; nothing to do")
    seal = script.content_hash

    split = _split(content)
    assert not isinstance(split, str)  # the file parsed above
    lines, end = split
    front = lines[1:end]
    for key, value in (("status", "approved"), ("approved_by", _yaml_scalar(by)), ("approved_on", on.isoformat()),
                       ("approval_hash", seal)):
        line = f"{key}: {value}"
        at = next((i for i, old in enumerate(front) if re.match(rf"{key}\s*:", old)), None)
        if at is None:
            front.append(line)
        else:
            front[at] = line
    eol = "\r\n" if "\r\n" in content else "\n"
    new_content = eol.join([lines[0], *front, *lines[end:]])

    approved, problems, _ = _check_content(path, new_content, None)
    if approved is None or problems or not approved.approved or approved.approval_hash != seal:
        detail = "; ".join(str(p) for p in problems) or "status did not change"
        raise ScriptError(f"{_display(path)}: could not rewrite the review fields ({detail}); edit them by hand")
    write_text_atomic(path, new_content)
    return approved

"""Drafting and review of scripts (拟稿 → 审核 → 签发): form content, stale checks, previews and the audit trail.

The `.md` files stay the source of truth: a draft is checked by the same rules as
`scripts check` and written atomically. Every step is one `ScriptEvent` row.
Preview clips live in `build/previews/`, outside the clip library, so no program
can ever pick one up.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import RECORDING_ENGINE, Config
from outreach.content import textnorm as _tn
from outreach.content.script_model import ID_PATTERN, Script
from outreach.content.script_writer import ScriptChanged, approve_script, script_lock, yaml_scalar
from outreach.content.scripts import Problem, check_content, read_script, split_front_matter
from outreach.db import session
from outreach.errors import ScriptError
from outreach.files import sha256_file, write_text_atomic
from outreach.models import ScriptEvent

__all__ = ["FORM_FIELDS", "ReviewError", "StaleForm", "Preview", "check_form", "compose", "form_of", "save_draft",
           "spoken_segments", "render_preview", "find_preview", "heard_preview", "record", "trail", "authors",
           "refuse_own", "approve", "approve_from_cli", "reject", "diff"]

# The form's fields, in the order they are written to the front matter.
FORM_FIELDS = ("id", "topic", "title", "engine", "voice", "rate", "repeat", "priority", "valid_from", "valid_until")
_NUMBER = re.compile(r"\d+(\.\d+)?")
# Kept on a draft saved over an approved script: the record of the approval the edit voided.
_APPROVAL_RECORD = ("approved_by", "approved_on", "approval_hash")
# Kept while the form says engine: recording (the form has no field for the uploaded file).
_RECORDING_LINES = ("recording", "recording_sha256")
# Trail steps that make someone an author of the version (who may then not approve it).
_AUTHORING = ("drafted", "edited", "recorded")
MAX_COMMENT = 500


class ReviewError(ScriptError):
    """A review step is not allowed (own script, no preview heard, no comment); the message says why in Chinese."""


class StaleForm(ReviewError):
    """The file changed on disk since the form was opened; `diff` shows how."""

    def __init__(self, message: str, diff_text: str) -> None:
        super().__init__(message)
        self.diff = diff_text


def _scalar(key: str, value: str) -> str:
    if key in ("rate", "repeat", "priority") and _NUMBER.fullmatch(value):
        return value  # a number; anything else is quoted, and the checks say it is not one
    return yaml_scalar(value)


def compose(fields: Mapping[str, str], text: str, existing: str | None = None) -> str:
    """The `.md` content of a draft from form values; comment lines of `existing`'s front matter are kept.

    The result is always a draft: an edit voids any approval. When `existing` was approved (or is
    a draft that an edit took back from approval), its approved_by/approved_on/approval_hash lines
    are kept under `status: draft`: the script is then "draft after edit", which keeps its place
    in campaigns as a blocked item (it never airs) instead of stopping every plan.
    """
    comments: list[str] = []
    record: list[str] = []
    recording: list[str] = []
    if existing is not None:
        split = split_front_matter(existing)
        if not isinstance(split, str):
            lines, end = split
            comments = [ln for ln in lines[1:end] if ln.lstrip().startswith("#")]
            found = {key: ln for ln in lines[1:end] for key in (*_APPROVAL_RECORD, *_RECORDING_LINES)
                     if re.match(rf"{key}\s*:", ln)}
            if "approved_by" in found and "approved_on" in found:
                record = [found[key].rstrip() for key in _APPROVAL_RECORD if key in found]
            if str(fields.get("engine") or "").strip() == RECORDING_ENGINE:
                recording = [found[key].rstrip() for key in _RECORDING_LINES if key in found]
    front = [f"{k}: {_scalar(k, v.strip())}" for k in FORM_FIELDS if (v := str(fields.get(k) or "")).strip()]
    front += recording
    body = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return "\n".join(["---", *comments, *front, "status: draft", *record, "---", body]) + "\n"


def check_form(scripts_dir: Path, content: str, script_id: str, max_chars: int) -> tuple[Script | None, dict[str, list[str]]]:
    """Check would-be file content by the rules of `scripts check`; problems grouped by form field ('' = whole file)."""
    path = Path(scripts_dir) / f"{script_id or 'new'}.md"
    script, problems, _ = check_content(path, content, max_chars)
    grouped: dict[str, list[str]] = {}
    for p in problems:
        key = p.field if p.field in (*FORM_FIELDS, "text") else ""
        grouped.setdefault(key, []).append(p.message if key else str(p))
    return (script if not grouped else None), grouped


def form_of(script: Script) -> dict[str, str]:
    """The form values of an existing script."""
    return {k: "" if (v := getattr(script, k, None)) is None else (f"{v:g}" if isinstance(v, float) else str(v))
            for k in FORM_FIELDS}


def diff(old: str, new: str, old_name: str = "之前", new_name: str = "之后") -> str:
    """A unified diff of two file contents (empty when equal)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name))


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return None


def save_draft(engine: Engine, config: Config, content: str, script_id: str, *, base: str | None, actor: str,
               now: datetime) -> Script:
    """Write a checked draft atomically and record it (drafted or edited, with the diff).

    `base` is the file content the form was opened with (None: a new script).
    Raises StaleForm when the file changed since, ReviewError for a new id that is
    taken or an edit that changes nothing, ScriptError when the content is invalid.
    """
    script, problems = check_form(config.scripts_dir, content, script_id, config.render.max_chars)
    if script is None:
        raise ScriptError("；".join(m for ms in problems.values() for m in ms))
    path = config.scripts_dir / f"{script.id}.md"
    # The same lock as approval: a save and an approval never interleave their read and write.
    with script_lock(path):
        current = _read(path)
        if base is None and current is not None:
            raise ReviewError(f"编号「{script.id}」已经有稿件了（{path.name}）；请换一个编号，或打开那篇稿件修改。")
        if base is not None:
            if current is None:
                raise StaleForm(f"{path.name} 在您打开表单后被删除了；没有保存。", diff(base, ""))
            if current.replace("\r\n", "\n") != base.replace("\r\n", "\n"):
                raise StaleForm(f"{path.name} 在您打开表单后被别人（或命令行）改过了；为免覆盖，没有保存。"
                                "请看下面的差异，重新打开稿件后再改。", diff(base, current, "您打开时", "现在的文件"))
            if current.replace("\r\n", "\n") == content:
                raise ReviewError("稿件没有任何改动，没有保存。")
        write_text_atomic(path, content)
        record(engine, script.id, "drafted" if base is None else "edited", actor, now,
               content_hash=script.content_hash, detail="" if base is None else diff(base, content))
    return script


# --- the spoken form ------------------------------------------------------------------


def spoken_segments(text: str, lexicon: _tn.Lexicon | None = None) -> list[tuple[str, bool]]:
    """The spoken form of `text` as (piece, read_from_digits) pairs; joined, they equal textnorm.normalize."""
    widened = _tn._SPACE_NEAR_NUMBER.sub("", _tn._widen_digits(text))
    out: list[tuple[str, bool]] = []
    pos = 0
    for match in _tn._TOKEN.finditer(widened):
        out.append((_tn._apply_lexicon(widened[pos:match.start()], lexicon), False))
        out.append((_tn._read_token(match, widened), True))
        pos = match.end()
    out.append((_tn._apply_lexicon(widened[pos:], lexicon), False))
    out = [(piece, num) for piece, num in out if piece]
    if "".join(p for p, _ in out) != _tn.normalize(text, lexicon):  # never show a form the voice will not say
        return [(_tn.normalize(text, lexicon), False)]
    return out


# --- previews -------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """A try-listen clip of one version of a script; never part of the clip library."""

    script_id: str
    content_hash: str
    path: Path
    sha256: str
    engine: str
    voice: str
    rate: float
    duration_s: float


def previews_dir(config: Config) -> Path:
    return config.build_path / "previews"


def render_preview(config: Config, script: Script) -> Preview:
    """Render `script` as it stands (its engine, voice and rate) into the preview folder, marked as a preview.

    Raises SynthesisFailed / AudioError when the engine cannot speak it.
    """
    from outreach.audio.render import plan_clip, render_job
    from outreach.content.textnorm import load_lexicon

    marked = script.model_copy(update={"title": f"【试听，不播出】{script.title}"})
    job = plan_clip(config, marked, load_lexicon(config.lexicon_path))
    name = f"preview-{script.id}-{script.content_hash}-{job.key[:12]}.mp3"
    job = type(job)(job.script, job.spoken, job.engine, job.voice, job.rate, job.key, previews_dir(config) / name)
    if not (job.path.is_file() and job.meta_path.is_file()):
        render_job(job, config)
        meta = json.loads(job.meta_path.read_text(encoding="utf-8"))
        meta |= {"preview": True, "content_hash": script.content_hash, "version": version_text(script)}
        write_text_atomic(job.meta_path, json.dumps(meta, ensure_ascii=False, indent=1))
    meta = json.loads(job.meta_path.read_text(encoding="utf-8"))
    return Preview(script.id, script.content_hash, job.path, meta["sha256"], meta["engine"], meta["voice"], job.rate,
                   meta["duration_s"])


def version_text(script: Script) -> str:
    """What an approval seals (title, engine, voice, rate, text) as lines, for showing how two versions differ."""
    rate = "" if script.rate is None else f"{script.rate:g}"
    recording = f"录音：{script.recording_sha256}\n" if script.recording_sha256 else ""
    return (f"标题：{script.title}\n引擎：{script.engine or ''}\n音色：{script.voice or ''}\n语速：{rate}\n"
            f"{recording}正文：\n{script.text}\n")


def _heard_version(clip: Path) -> str | None:
    """The version text stored with a preview clip (None for a clip made before it was stored)."""
    try:
        meta = json.loads(clip.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def find_preview(config: Config, script_id: str, audio_sha256: str) -> Path | None:
    """The preview clip of `script_id` with this checksum, if it exists."""
    if not re.fullmatch(ID_PATTERN, script_id) or not re.fullmatch(r"[0-9a-f]{64}", audio_sha256):
        return None
    for meta_path in previews_dir(config).glob(f"preview-{script_id}-*.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        clip = meta_path.with_suffix(".mp3")
        if meta.get("sha256") == audio_sha256 and meta.get("preview") and clip.is_file():
            return clip if sha256_file(clip) == audio_sha256 else None
    return None


# --- the audit trail ------------------------------------------------------------------


def record(engine: Engine, script_id: str, action: str, actor: str, now: datetime, *, content_hash: str = "",
           audio_sha256: str = "", detail: str = "") -> None:
    """Append one step to the script's audit trail."""
    with session(engine) as s:
        s.add(ScriptEvent(script_id=script_id, action=action, actor=actor, at=now, content_hash=content_hash,
                          audio_sha256=audio_sha256, detail=detail))
        s.commit()


def trail(engine: Engine, script_id: str) -> list[ScriptEvent]:
    """Every step of a script, oldest first."""
    with session(engine) as s:
        rows = list(s.scalars(sa.select(ScriptEvent).where(ScriptEvent.script_id == script_id)
                              .order_by(ScriptEvent.at, ScriptEvent.id)))
        for r in rows:
            s.expunge(r)
        return rows


def authors(engine: Engine, script_id: str) -> tuple[str | None, str | None]:
    """Who drafted the script in the browser and who last edited it or gave it a recording (None when unknown)."""
    events = [e for e in trail(engine, script_id) if e.action in _AUTHORING]
    drafted = next((e.actor for e in events if e.action == "drafted"), None)
    return drafted, (events[-1].actor if events else None)


def refuse_own(engine: Engine, script_id: str, reviewer: str, verb: str) -> None:
    """Raise ReviewError when `reviewer` drafted or last edited the script (web or CLI: one rule).

    `verb` is the step refused, in Chinese: 签发, 批准 or 退回.
    """
    drafted, last = authors(engine, script_id)
    if reviewer in (drafted, last):
        role = "撰写" if reviewer == drafted else "最后修改"
        follow = verb if verb in ("签发", "批准") else "审核"
        raise ReviewError(f"广播稿「{script_id}」是您（{reviewer}）{role}的，不能由您自己{verb}；"
                          f"须由另一位审核员{follow}。")



def approve(engine: Engine, config: Config, script: Script, *, reviewer: str, heard_sha256: str, today: date,
            now: datetime, version: str | None = None) -> Script:
    """签发: approve the version of `script` whose preview the reviewer heard; records who, when and what.

    The seal is a compare-and-swap under `script_lock`: it is written only if the file still is
    the version heard (and `version`, the approval hash the page showed, when given), so an edit
    saved while the reviewer clicks can never be sealed in place of the text they heard.

    Raises ReviewError for the author or last editor, or when the clip heard is not a preview of
    that version; StaleForm (with the difference) when the file is no longer that version;
    ScriptError from script_writer.approve_script.
    """
    with script_lock(script.path):
        refuse_own(engine, script.id, reviewer, "签发")
        clip = find_preview(config, script.id, heard_sha256) if heard_sha256 else None
        heard = next((e for e in trail(engine, script.id)
                      if e.action == "previewed" and e.audio_sha256 == heard_sha256), None) if clip else None
        if clip is None or heard is None:
            raise ReviewError("签发前要先试听稿件现在的版本；请点「试听」，听完后再签发。")
        if version is not None and version != heard.content_hash:
            raise ReviewError(f"页面上的版本（{version or '没有写明'}）和您试听的录音（版本 {heard.content_hash}）对不上；"
                              "请刷新稿件页面，试听现在的版本后再签发。")
        heard_text = _heard_version(clip) or ""
        if script.content_hash != heard.content_hash:
            raise StaleForm(_changed_message(script.path.name),
                            diff(heard_text, version_text(script), "您试听的版本", "现在的文件"))
        try:
            approved = approve_script(script.path, by=reviewer, on=today, expect=heard.content_hash)
        except ScriptChanged as exc:
            now_text = version_text(exc.current) if exc.current is not None else exc.content
            raise StaleForm(_changed_message(script.path.name),
                            diff(heard_text, now_text, "您试听的版本", "现在的文件")) from None
        record(engine, script.id, "approved", reviewer, now, content_hash=approved.content_hash,
               audio_sha256=heard_sha256)
    return approved


def heard_preview(engine: Engine, config: Config, script: Script) -> ScriptEvent | None:
    """The newest 试听 of the script as it is now (a preview rendered and recorded), if its clip still exists."""
    for e in reversed(trail(engine, script.id)):
        if (e.action == "previewed" and e.content_hash == script.content_hash
                and find_preview(config, script.id, e.audio_sha256)):
            return e
    return None


def approve_from_cli(engine: Engine, config: Config, path: Path, *, reviewer: str, heard: bool, today: date,
                     now: datetime, expect: str | None = None) -> Script:
    """批准 from the command line, by a reviewer whose password the caller checked: the browser's rules.

    Not the script's author or last editor; the version sealed must have been heard: a 试听 of it is
    in the trail (rendered in the browser), or the reviewer declares with `heard` (--heard) that
    they listened to it some other way. The trail's approval says which. With `expect` (an approval
    hash), only that version is sealed.

    Raises ReviewError (own script, nothing heard), ScriptChanged / ScriptError from approve_script.
    """
    with script_lock(path):
        refuse_own(engine, path.stem, reviewer, "批准")
        script, problems, _ = read_script(path)
        if script is None:
            raise ScriptError(problems_text(problems))
        version = expect or script.content_hash
        preview = heard_preview(engine, config, script)
        if preview is None and not heard and not script.approved and version == script.content_hash:
            raise ReviewError(f"“{script.id}”现在的版本（{script.content_hash}）还没有试听记录，没有批准。"
                              "请先在管理后台的稿件页点「试听」并听完；如果您已用别的方式听过这个版本，"
                              "请加上 --heard（会记入审核记录）")
        approved = approve_script(path, by=reviewer, on=today, expect=version)
        how = (f"命令行批准；试听过这个版本（试听录音 {preview.audio_sha256[:16]}）" if preview is not None
               else "命令行批准；审核员用 --heard 声明已听过这个版本")
        record(engine, approved.id, "approved", reviewer, now, content_hash=approved.content_hash,
               audio_sha256=preview.audio_sha256 if preview is not None else "", detail=how)
    return approved


def _changed_message(name: str) -> str:
    return (f"{name} 在您试听之后被改过了，签发没有完成，现在的文字没有被签发。"
            "请看下面的差异，试听现在的版本后再签发。")


def reject(engine: Engine, script: Script, *, reviewer: str, comment: str, now: datetime) -> None:
    """退回: record a rejection with its comment; the script stays a draft."""
    comment = comment.strip()
    if not comment:
        raise ReviewError("退回时要写明原因，让撰稿人知道怎么改。")
    if len(comment) > MAX_COMMENT:
        raise ReviewError(f"退回意见有 {len(comment)} 个字，请控制在 {MAX_COMMENT} 字以内。")
    refuse_own(engine, script.id, reviewer, "退回")
    record(engine, script.id, "rejected", reviewer, now, content_hash=script.content_hash, detail=comment)


def problems_text(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)

"""拟稿 → 审核 → 签发 in the browser: the script page, the editor form, try-listen, approve/reject, and user admin."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from outreach.audio.recordings import MAX_RECORDING_BYTES, RECORDING_SECONDS
from outreach.audio.render import verified_clip
from outreach.authoring import review
from outreach.authoring.recordings import add_recording
from outreach.config import RECORDING_ENGINE
from outreach.content.script_model import ENGINES, ID_PATTERN, MAX_TITLE, RECORDING_EXTENSIONS, TOPICS, Script
from outreach.content.scripts import split_front_matter
from outreach.content.textnorm import load_lexicon
from outreach.errors import AudioError, OutreachError
from outreach.files import temp_dir
from outreach.labels import ROLE
from outreach.tts.voices import ALL_VOICES
from outreach.web import data_scripts
from outreach.web.auth import Role, User
from outreach.web.page_kit import (
    PageError, ctx_of, flash, not_found, post_form, redirect, render, require_user, signed_in,
)
from outreach.web.preview_jobs import PreviewJob, jobs_of

log = logging.getLogger("outreach.web")
router = APIRouter()
MAX_SPOKEN_INPUT = 2000
# How long 试听 waits for its clip before showing the progress page: a clip made before comes back at once.
PREVIEW_WAIT_S = 1.0
# The script page reloads itself this often while its preview is being made.
PREVIEW_REFRESH_S = 2


def _script(request: Request, script_id: str) -> Script:
    scripts, _ = data_scripts.script_library(ctx_of(request).config)
    found = next((s for s in scripts if s.id == script_id), None)
    if found is None:
        raise not_found("广播稿", script_id, "请从「广播稿」页面点进要看的稿件；有问题的稿件要先在服务器上改好。")
    return found


def _file_text(script: Script) -> str:
    return script.path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")


def _start_preview(request: Request, script: Script, user: User) -> PreviewJob:
    """Render the preview of `script` as it is now in the background; the trail records it when it is made."""
    ctx = ctx_of(request)

    def work() -> None:
        pv = review.render_preview(ctx.config, script)
        review.record(ctx.engine, script.id, "previewed", user.name, ctx.now(), content_hash=pv.content_hash,
                      audio_sha256=pv.sha256)

    return jobs_of(request.app.state).start(script.id, script.content_hash, user.name, ctx.now(), work)


async def _preview_and_return(request: Request, script: Script, user: User) -> Response:
    """Start 试听 of `script`, wait a moment for it, and send the browser back to the script page (303)."""
    job = _start_preview(request, script, user)
    if await run_in_threadpool(job.done.wait, PREVIEW_WAIT_S) and job.error is None:
        flash(request, "试听录音已生成（只供试听，不会播出）。")
    return redirect(f"/scripts/{quote(script.id)}#preview")


def _need(user: User, what: str) -> None:
    allowed = user.can_review if what == "review" else user.can_admin
    if not allowed:
        need = "审核员或管理员" if what == "review" else "管理员"
        raise PageError(403, "没有权限", f"您的账号「{user.name}」是{_role(user)}，这个操作只有{need}能做。",
                        "请联系管理员调整账号角色。")


def _role(user: User) -> str:
    return ROLE.get(user.role.value, user.role.value)


def _editor_values(form: FormData) -> tuple[dict[str, str], str, str | None]:
    fields = {k: v if isinstance(v := form.get(k), str) else "" for k in review.FORM_FIELDS}
    text = form.get("text")
    base = form.get("base")
    return fields, text if isinstance(text, str) else "", base if isinstance(base, str) else None


def _editor(request: Request, *, user: User, fields: dict[str, str], text: str, base: str | None, status: int = 200,
            errors: dict[str, list[str]] | None = None, preview: review.Preview | None = None, stale: str = "",
            message: str = "") -> Response:
    ctx = ctx_of(request)
    lexicon = load_lexicon(ctx.config.lexicon_path)
    # engine: recording comes from an uploaded recording (the script page), never from this list.
    engines = [e for e in ENGINES if e != RECORDING_ENGINE or fields.get("engine") == RECORDING_ENGINE]
    return render(request, "script_edit.html", status=status, user=user, f=fields, text=text, base=base,
                  errors=errors or {}, preview=preview, stale=stale, message=message, topics=TOPICS,
                  engines=engines, voices=ALL_VOICES, id_pattern=ID_PATTERN,
                  spoken=review.spoken_segments(text, lexicon) if text else [],
                  max_chars=ctx.config.render.max_chars, max_title=MAX_TITLE)


@router.get("/spoken")
def spoken(request: Request) -> Response:
    """The spoken form of ?text= as pieces, digits-read pieces marked (for the editor's live view)."""
    require_user(request)
    text = (request.query_params.get("text") or "")[:MAX_SPOKEN_INPUT]
    lexicon = load_lexicon(ctx_of(request).config.lexicon_path)
    return JSONResponse({"pieces": [[p, n] for p, n in review.spoken_segments(text, lexicon)]})


@router.get("/scripts/new", response_class=HTMLResponse)
def new_script(request: Request) -> Response:
    user = require_user(request)
    if not user.can_edit:
        raise PageError(403, "没有权限", f"您的账号「{user.name}」是查看员，不能拟稿。", "请联系管理员开通编辑员账号。")
    fields = dict.fromkeys(review.FORM_FIELDS, "") | {"repeat": "2", "priority": "5", "topic": "traffic"}
    return _editor(request, user=user, fields=fields, text="", base=None)


@router.get("/scripts/{script_id}/edit", response_class=HTMLResponse)
def edit_script(request: Request, script_id: str) -> Response:
    user = require_user(request)
    if not user.can_edit:
        raise PageError(403, "没有权限", f"您的账号「{user.name}」是查看员，不能修改稿件。", "请联系管理员开通编辑员账号。")
    script = _script(request, script_id)
    return _editor(request, user=user, fields=review.form_of(script), text=script.text, base=_file_text(script))


@router.post("/scripts/save", response_class=HTMLResponse)
async def save_script(request: Request) -> Response:
    """Save a draft (new when the form has no base); with action=preview, save it and go to its 试听."""
    user, form = await post_form(request, editor=True)
    ctx = ctx_of(request)
    fields, text, base = _editor_values(form)
    if base is not None:  # an edit keeps its id; the form cannot rename a file
        split = split_front_matter(base)
        fields["id"] = next((ln.split(":", 1)[1].strip() for ln in (split[0] if not isinstance(split, str) else [])
                             if ln.startswith("id:")), fields["id"])
    elif not fields["id"]:  # a new script is named by its title: 快递退款 → kuaidi-tuikuan
        fields["id"] = await run_in_threadpool(data_scripts.new_script_id, ctx.config, ctx.engine, fields["title"])
    existing = base
    content = review.compose(fields, text, existing)
    script, errors = review.check_form(ctx.config.scripts_dir, content, fields["id"], ctx.config.render.max_chars)
    if script is None:
        return _editor(request, user=user, fields=fields, text=text, base=base, status=400, errors=errors,
                       message="稿件有问题，没有保存；请按红字修改。")
    # 试听 of an unchanged edit hears the file as it is; anything else is saved first, so what is
    # heard is the draft a reviewer will see.
    listen = form.get("action") == "preview"
    if listen and base is not None and base.replace("\r\n", "\n") == content:
        return await _preview_and_return(request, script, user)
    try:
        saved = await run_in_threadpool(lambda: review.save_draft(
            ctx.engine, ctx.config, content, script.id, base=base, actor=user.name, now=ctx.now()))
    except review.StaleForm as exc:
        return _editor(request, user=user, fields=fields, text=text, base=base, status=409, stale=exc.diff,
                       message=str(exc))
    except OutreachError as exc:
        return _editor(request, user=user, fields=fields, text=text, base=base, status=400, message=str(exc))
    log.info("广播稿 %s 已由 %s 保存", saved.id, user.name)
    follow = "" if listen else "请试听后交审核员签发。"
    if saved.edited_after_approval:
        flash(request, f"已保存「{saved.title}」（草稿）。原来的签发已作废：这篇稿件在宣传活动里照常排着，"
                       f"但重新签发之前不会播出。{follow}")
    else:
        flash(request, f"已保存「{saved.title}」（草稿）。{follow}")
    if listen:
        return await _preview_and_return(request, saved, user)
    return redirect(f"/scripts/{quote(saved.id)}")


@router.get("/scripts/{script_id}", response_class=HTMLResponse)
def script_page(request: Request, script_id: str) -> Response:
    return _script_page(request, script_id)


def _script_page(request: Request, script_id: str, *, status: int = 200, stale: str | None = None,
                 message: str = "") -> Response:
    user, ctx = signed_in(request)
    script = _script(request, script_id)
    lexicon = load_lexicon(ctx.config.lexicon_path)
    drafted, last = review.authors(ctx.engine, script.id)
    try:
        verified_clip(ctx.config, script)
        has_clip = True
    except OutreachError:
        has_clip = False
    job = jobs_of(request.app.state).get(script.id, script.content_hash)
    preview = review.heard_preview(ctx.engine, ctx.config, script)
    making = job if job is not None and (job.running or job.error) else None  # the newest 试听 of this version
    waited = int((ctx.now() - job.started).total_seconds()) if making is not None else 0
    # Each refresh while a preview is made goes to a new URL (?wait=N): a browser told to refresh to the
    # URL it shows, #preview and all, only scrolls to the anchor, so the page would never reload.
    shown = request.query_params.get("wait", "")
    next_wait = int(shown) + 1 if shown.isdigit() and len(shown) < 6 else 1
    return render(request, "script.html", user=user, s=script, spoken=review.spoken_segments(script.text, lexicon),
                  trail=review.trail(ctx.engine, script.id), preview=preview, job=making, waited=waited,
                  refresh_s=PREVIEW_REFRESH_S, next_wait=next_wait, has_clip=has_clip, own=user.name in (drafted, last), status=status,
                  stale=stale, message=message, formats=RECORDING_EXTENSIONS,
                  max_mb=MAX_RECORDING_BYTES // 1_000_000, max_minutes=RECORDING_SECONDS[1] / 60)


@router.post("/scripts/{script_id}/preview")
async def preview_script(request: Request, script_id: str) -> Response:
    user, _form = await post_form(request, editor=True)
    script = await run_in_threadpool(_script, request, script_id)
    return await _preview_and_return(request, script, user)


@router.post("/scripts/{script_id}/recording")
async def upload_recording(request: Request, script_id: str) -> Response:
    """A recording (MP3, WAV, M4A) in place of TTS: checked, stored beside the scripts; its 试听 starts at once."""
    user, form = await post_form(request, editor=True)
    script = await run_in_threadpool(_script, request, script_id)
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise AudioError("没有选择录音文件；请点「选择文件」选好录音后再上传")
        added = await run_in_threadpool(_add_upload, request, script, upload, user)
    except OutreachError as exc:
        message = f"录音没有上传：{exc}"
        return await run_in_threadpool(lambda: _script_page(request, script_id, status=400, message=message))
    log.info("广播稿 %s 的录音已由 %s 上传", script.id, user.name)
    voided = "原来的签发已作废，重新签发之前不会播出。" if added.voided else ""
    flash(request, f"已上传录音（{added.seconds:.0f} 秒）。{voided}请试听后交审核员签发。")
    return await _preview_and_return(request, added.script, user)


def _add_upload(request: Request, script: Script, upload: UploadFile, user: User) -> Any:
    """Copy the uploaded file (at most MAX_RECORDING_BYTES) to a temporary file and add it as the recording."""
    ctx = ctx_of(request)
    name = Path(upload.filename or "").name
    with temp_dir("upload") as tmp:
        copy = Path(tmp) / f"upload{Path(name).suffix.lower()}"
        with copy.open("wb") as out:
            while chunk := upload.file.read(1 << 20):
                out.write(chunk)
                if out.tell() > MAX_RECORDING_BYTES:
                    raise AudioError(f"“{name}”超过 {MAX_RECORDING_BYTES // 1_000_000} MB 的上限；"
                                     "请剪短，或导出为 MP3/M4A 再上传")
        return add_recording(ctx.engine, script.path, copy, name, actor=user.name, now=ctx.now())


async def _review_form(request: Request, script_id: str) -> tuple[Any, Any, Any, Any]:
    """A reviewer's posted form on one script: the user (who must be allowed to review), form, context, script."""
    user, form = await post_form(request, editor=True)
    ctx = ctx_of(request)
    script = await run_in_threadpool(_script, request, script_id)
    _need(user, "review")
    return user, form, ctx, script


@router.post("/scripts/{script_id}/approve")
async def approve_script(request: Request, script_id: str) -> Response:
    user, form, ctx, script = await _review_form(request, script_id)
    if script.approved:
        flash(request, f"「{script.title}」已经由{script.approved_by}于 {script.approved_on} 签发，无需再签发。", "error")
        return redirect(f"/scripts/{quote(script.id)}")
    heard = form.get("heard")
    # The version (approval hash) the page showed: the seal is written only if the file still is it.
    version = form.get("version")
    try:
        approved = await run_in_threadpool(lambda: review.approve(
            ctx.engine, ctx.config, script, reviewer=user.name, heard_sha256=heard if isinstance(heard, str) else "",
            version=version if isinstance(version, str) else "", today=ctx.today(), now=ctx.now()))
    except review.StaleForm as exc:
        diff, message = exc.diff, str(exc)
        return await run_in_threadpool(lambda: _script_page(request, script_id, status=409, stale=diff,
                                                            message=message))
    except review.ReviewError as exc:
        raise PageError(403, "不能签发", str(exc), "请回到稿件页面。") from None
    except OutreachError as exc:
        raise PageError(409, "没有签发", str(exc), "请回到稿件页面，看清现在的稿件后再签发。") from None
    flash(request, f"已签发「{approved.title}」（{approved.id}），签发人：{user.name}。下次生成节目时开始播出。")
    return redirect(f"/scripts/{quote(script.id)}")


@router.post("/scripts/{script_id}/reject")
async def reject_script(request: Request, script_id: str) -> Response:
    user, form, ctx, script = await _review_form(request, script_id)
    comment = form.get("comment")
    try:
        await run_in_threadpool(lambda: review.reject(ctx.engine, script, reviewer=user.name,
                                                      comment=comment if isinstance(comment, str) else "",
                                                      now=ctx.now()))
    except review.ReviewError as exc:
        raise PageError(400, "不能退回", str(exc), "请回到稿件页面。") from None
    flash(request, f"已退回「{script.title}」，意见已记入审核记录。")
    return redirect(f"/scripts/{quote(script.id)}")


# --- users ------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    user = require_user(request)
    _need(user, "admin")
    return render(request, "users.html", user=user, users=ctx_of(request).users.users(), roles=list(Role))


@router.post("/users")
async def users_action(request: Request) -> Response:
    user, form = await post_form(request, editor=True)
    _need(user, "admin")
    ctx = ctx_of(request)
    action, name, role = (v if isinstance(v := form.get(k), str) else "" for k in ("action", "name", "role"))
    if name.strip() == user.name and action in ("remove", "role"):
        raise PageError(400, "不能修改自己", "管理员不能删除自己或改自己的角色。", "请让另一位管理员来做。")
    try:
        if action == "add":
            password = form.get("password")
            await run_in_threadpool(lambda: ctx.users.add(name, role, password if isinstance(password, str) else "",
                                                          now=ctx.now()))
            flash(request, f"已添加用户「{name.strip()}」。")
        elif action == "role":
            await run_in_threadpool(ctx.users.set_role, name, role)
            flash(request, f"已把「{name}」改为{role}；对方需要重新登录。")
        elif action == "remove":
            await run_in_threadpool(ctx.users.remove, name)
            flash(request, f"已删除用户「{name}」。")
        else:
            raise PageError(400, "请求有误", "不认识的操作。", "请从「用户」页面的按钮提交。")
    except OutreachError as exc:
        flash(request, f"没有完成：{exc}", "error")
    return redirect("/users")

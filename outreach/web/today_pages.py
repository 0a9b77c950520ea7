"""The daily pages: 今天 (and its JSON refresh), audio for clips, programs and previews, pack ZIPs."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from outreach.audio.render import verified_clip
from outreach.authoring import review
from outreach.delivery.usb.zipped import ascii_zip_name, zip_name
from outreach.errors import OutreachError
from outreach.labels import SLOT, STATUS
from outreach.web import board, data_packs, data_places, data_scripts, folds
from outreach.web.page_kit import (
    PageError, TZ, attachment, ctx_of, not_found, render, require_role, require_user, signed_in,
)
from outreach.web.permissions import Action
from outreach.web.params import parse_day

router = APIRouter()
AUDIO = "audio/mpeg"


def _q(request: Request, name: str) -> str:
    values = request.query_params.getlist(name)
    return values[-1].strip() if values else ""


def _today(request: Request) -> tuple[board.Board, str, bool]:
    """Today's board for the page's filters: ?township=ID and ?only=problems (a phone's short list)."""
    ctx = ctx_of(request)
    township, only = _q(request, "township"), _q(request, "only") == "problems"
    b = board.today_board(ctx.engine, ctx.config, ctx.today(), ctx.now(), township)
    if only:
        b.slots = [s for s in b.slots if s.problem]
    return b, township, only


@router.get("/today", response_class=HTMLResponse)
def today_page(request: Request) -> Response:
    user = require_user(request)
    b, township, only = _today(request)
    query = urlencode([(k, v) for k, v in (("township", township), ("only", "problems" if only else "")) if v])
    ctx = ctx_of(request)
    return render(request, "today.html", user=user, b=b, township=township, only=only, query=query,
                  folds=folds.fine_by_township(b.slots), townships=data_places.townships(ctx.engine), refresh_s=30,
                  stale=data_packs.stale_villages(ctx.config, ctx.engine, ctx.now()))


@router.get("/today.json")
def today_json(request: Request) -> Response:
    require_user(request)
    b, _, _ = _today(request)
    payload = board.board_json(b, STATUS, SLOT, TZ) | {"at": ctx_of(request).local_now().strftime("%H:%M:%S")}
    # The page's folds of programs that need nothing: each names its programs as "village_id/slot".
    payload["folds"] = [{"key": f.key, "title": f.title, "summary": f.summary,
                         "programs": [f"{s.village_id}/{s.slot}" for s in f.items]}
                        for f in folds.fine_by_township(b.slots)]
    return JSONResponse(payload)


# --- audio -----------------------------------------------------------------------------


@router.get("/audio/clips/{script_id}")
def clip_audio(request: Request, script_id: str) -> Response:
    """The rendered library clip of a script (what airs)."""
    require_user(request)
    ctx = ctx_of(request)
    scripts, _ = data_scripts.script_library(ctx.config)
    script = next((s for s in scripts if s.id == script_id), None)
    if script is None:
        raise not_found("广播稿", script_id, "请从「广播稿」页面点播放。")
    try:
        path = verified_clip(ctx.config, script)
    except OutreachError:
        raise not_found("录音", script_id, "这篇稿件还没有生成录音；签发后运行 outreach render。") from None
    return FileResponse(path, media_type=AUDIO)


@router.get("/audio/programs/{village_id}/{day}/{slot}")
async def program_audio(request: Request, village_id: str, day: str, slot: str) -> Response:
    """One village's program of one day and slot, joined from its clips."""
    require_user(request)
    ctx = ctx_of(request)
    when = parse_day(day, "日期", None, today=ctx.today())
    if slot not in SLOT:
        raise not_found("时段", slot[:20], "时段只能是早间或晚间。")
    try:
        path = await run_in_threadpool(board.program_clip, ctx.config, village_id, when, slot)
    except OutreachError as exc:
        raise not_found("节目录音", f"{village_id} {when} {SLOT[slot]}", f"{exc}") from None
    return FileResponse(path, media_type=AUDIO)


@router.get("/audio/previews/{script_id}/{sha}")
def preview_audio(request: Request, script_id: str, sha: str) -> Response:
    """A try-listen clip (never aired)."""
    require_user(request)
    path = review.find_preview(ctx_of(request).config, script_id, sha)
    if path is None:
        raise not_found("试听录音", script_id, "请在稿件页面重新点「试听」。")
    return FileResponse(path, media_type=AUDIO)


# --- packs -----------------------------------------------------------------------------


@router.get("/packs", response_class=HTMLResponse)
def packs_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    entries, problem = data_packs.pack_entries(ctx.config)
    villages = {v.id: v for v in data_places.villages(ctx.engine)}
    groups = board.group_packs(entries, villages, data_places.townships(ctx.engine))
    stale = data_packs.stale_villages(ctx.config, ctx.engine, ctx.now())
    return render(request, "packs.html", user=user, groups=groups, problem=problem, count=len(entries), quote=quote,
                  may_zip=user.may(Action.EXPORT_PACK),
                  export_dir=ctx.config.deliver.export_dir, stale=stale, stale_keys=data_packs.stale_index(stale))


@router.get("/packs/zip")
def packs_zip(request: Request) -> Response:
    """One village's (?village=) or township's (?township=) pack as a ZIP: what `outreach export` writes.

    Its listed days from today on are exported again into a temporary folder (logged like an export,
    with a fresh QR link), zipped while sent, and the folder removed. Editors only: the QR link in it
    confirms broadcasts, which a viewer may not.
    """
    require_role(request, Action.EXPORT_PACK, fix="请让编辑员打包下载，或在「节目包下载」页逐个试听。")
    ctx = ctx_of(request)
    village_id, township_id = _q(request, "village"), _q(request, "township")
    entries, _problem = data_packs.pack_entries(ctx.config)
    villages = {v.id: v for v in data_places.villages(ctx.engine)}
    listed = {e.village_id for e in entries if e.village_id in villages}
    towns = data_places.townships(ctx.engine)
    chosen: list[str] = []
    if village_id in listed:
        v = villages[village_id]
        chosen, ids, names = [village_id], [village_id], [towns[v.township_id].name, v.name]
    elif not village_id and township_id in towns:
        chosen = sorted(v for v in listed if villages[v].township_id == township_id)
        ids, names = [township_id], [towns[township_id].name]
    if not chosen:
        raise not_found("节目包", village_id or township_id or "（未指定）", "请从「节目包下载」页面点「打包下载」。")
    try:
        pack = data_packs.pack_zip(ctx.config, ctx.engine, chosen, now=ctx.now())
    except OutreachError as exc:
        raise PageError(409, "节目包没有做成", str(exc), "处理好上面说的问题后，回到「节目包下载」页面重新下载。") from None
    return StreamingResponse(pack.stream(), media_type="application/zip",
                             headers=attachment(zip_name(names, pack.first, pack.last),
                                                ascii_zip_name(ids, pack.first, pack.last)))


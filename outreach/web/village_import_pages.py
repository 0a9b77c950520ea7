"""村庄名单导入 in the browser: upload 村庄.xlsx, see what changes in county.yaml, then 确认导入.

The same domain as `outreach villages import` (authoring.villages_import). The preview form carries the
sheet's rows and the stamp of county.yaml as previewed; 确认导入 applies the rows again to the file as it
is then, and refuses if someone changed the file in between.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from outreach.authoring import villages_import as vi
from outreach.authoring.editing import StaleFile, save
from outreach.config import Config
from outreach.coverage.sheets import XLSX_TYPE
from outreach.errors import OutreachError
from outreach.planning.registry import load_registry
from outreach.web import data_places
from outreach.web.page_kit import attachment, ctx_of, flash, post_form, redirect, render, require_role
from outreach.web.params import form_text
from outreach.web.permissions import Action

log = logging.getLogger("outreach.web")
router = APIRouter()
COUNTY = "county.yaml"
MAX_UPLOAD = 900_000  # bytes; the dashboard refuses bodies over 1 MB, and a county's list is some tens of KB


def _admin(request: Request) -> Any:
    return require_role(request, Action.IMPORT_VILLAGES, "不能导入村庄名单。", "请联系管理员导入。")


def _page(request: Request, *, status: int = 200, problem: str = "", rows: list[str] | None = None,
          preview: vi.ImportPreview | None = None, carried: str = "") -> HTMLResponse:
    return render(request, "village_import.html", status=status, user=_admin(request), problem=problem,
                  rows=rows or [], preview=preview, carried=carried, columns=vi.COLUMNS,
                  speakers=vi.SHEET_SPEAKER.values())


def _preview(config: Config, rows: list[vi.SheetRow]) -> vi.ImportPreview:
    registry = load_registry(config.schedules_dir, players=config.player_names)
    text = (config.schedules_dir / COUNTY).read_bytes().decode("utf-8-sig")
    return vi.preview_import(text, rows, registry, schedules_dir=config.schedules_dir, players=config.player_names)


def _read(config: Config, raw: bytes, name: str) -> tuple[list[vi.SheetRow], vi.ImportPreview]:
    registry = load_registry(config.schedules_dir, players=config.player_names)
    defaults = {n: spec.start.strftime("%H:%M") for n, spec in registry.slots.items()}
    rows = vi.read_sheet(raw, where=name, defaults=defaults)
    return rows, _preview(config, rows)


def _refused(request: Request, exc: OutreachError) -> HTMLResponse:
    rows = exc.rows if isinstance(exc, vi.VillageImportError) else []
    head = str(exc).splitlines()[0] if rows else str(exc)
    return _page(request, status=400, problem=head, rows=rows)


@router.get("/import/villages", response_class=HTMLResponse)
def import_page(request: Request) -> Response:
    return _page(request)


@router.get("/import/villages/template.xlsx")
def template(request: Request) -> Response:
    """The county's villages as a sheet to edit and upload again (as `outreach villages template`)."""
    _admin(request)
    registry = load_registry(ctx_of(request).config.schedules_dir)
    return Response(vi.sample_sheet(vi.registry_rows(registry)), media_type=XLSX_TYPE,
                    headers=attachment("村庄.xlsx", "villages.xlsx"))


@router.post("/import/villages")
async def upload(request: Request) -> Response:
    """The uploaded sheet read and applied to a copy of county.yaml: the preview, nothing written yet."""
    _, form = await post_form(request)
    sheet = form.get("file")
    if not isinstance(sheet, UploadFile) or not sheet.filename:
        return _page(request, status=400, problem="没有选择文件；请点「选择文件」选好村庄名单（.xlsx）再上传")
    raw = await sheet.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        return _page(request, status=400, problem=f"文件超过 {MAX_UPLOAD // 1000} KB；村庄名单通常只有几十 KB，"
                                                  "请删掉多余的工作表和图片后再上传")
    config = ctx_of(request).config
    try:
        rows, preview = await run_in_threadpool(_read, config, raw, sheet.filename)
    except OutreachError as exc:
        return _refused(request, exc)
    carried = json.dumps({"base": preview.base, "rows": vi.rows_to_json(rows)}, ensure_ascii=False)
    return _page(request, preview=preview, carried=carried)


@router.post("/import/villages/confirm")
async def confirm(request: Request) -> Response:
    """确认导入: the previewed rows written into county.yaml, if the file is still as previewed."""
    user, form = await post_form(request)
    ctx = ctx_of(request)
    try:
        carried = json.loads(form_text(form.get("carried")) or "null")
        rows = vi.rows_from_json(carried.get("rows") if isinstance(carried, dict) else None)
        preview = await run_in_threadpool(_preview, ctx.config, rows)
        if preview.base != carried.get("base"):
            raise StaleFile(f"{COUNTY} 在预览之后被别人改过了；为免覆盖别人的修改，没有写入。请重新上传名单，看清改动后再确认")
        await run_in_threadpool(save, ctx.config.schedules_dir / COUNTY, preview.new_text, preview.base)
    except OutreachError as exc:
        return _refused(request, exc)
    problem = await run_in_threadpool(data_places.mirror_registry, ctx.config, ctx.engine)
    log.info("%s 导入了村庄名单：新增 %d 个村，修改 %d 个", user.name, len(preview.added), len(preview.changed))
    flash(request, f"已导入村庄名单：新增 {len(preview.added)} 个村，修改 {len(preview.changed)} 个，"
                   f"不变 {preview.unchanged} 个。" + (f"但工作区现在加载不了，列表要等改好后才更新：{problem}" if problem else ""))
    return redirect("/villages")

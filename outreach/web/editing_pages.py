"""Campaigns and villages edited in the browser: forms, a plan preview before saving, stale-form refusal.

Thin: outreach.editing owns the YAML round-trip and validation; this module shapes forms and pages.
A new campaign's id is made from its name; the rotation keeps the editor's order, and the ↑/↓ buttons
(plain submit buttons, no JavaScript) reorder it by showing the form again before anything is saved.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from outreach.audio.render import clip_durations
from outreach.authoring import editing
from outreach.config import Config
from outreach.content.script_model import Script
from outreach.content.scripts import load_library
from outreach.errors import OutreachError
from outreach.planning.registry import SLOT_NAMES, Registry, load_registry
from outreach.planning.workspace import GAP_S
from outreach.web import data_places, data_scripts
from outreach.web.auth import User
from outreach.web.page_kit import ctx_of, flash, not_found, post_form, redirect, render, require_role, stale_diff
from outreach.web.permissions import Action

log = logging.getLogger("outreach.web")
router = APIRouter()
CAMPAIGNS = "campaigns.yaml"
COUNTY = "county.yaml"
SPEAKERS = {"networked": "联网播放（到点由服务器播放）", "station": "村广播站（本地缓存播放）", "offline": "U盘离线"}


def _editor(request: Request, action: Action = Action.EDIT_CAMPAIGN) -> User:
    return require_role(request, action, "不能修改宣传活动或村庄设置。", "请联系管理员开通编辑员账号。")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutreachError(f"{path}：读不出来（{exc}）；请在服务器上修好这个文件") from exc


def _world(config: Config) -> tuple[Registry, list[Script]]:
    return (load_registry(config.schedules_dir),
            load_library(config.scripts_dir, max_chars=config.render.max_chars))


def _save(request: Request, config: Config, path: Path, new_text: str, base: str) -> bool:
    """Write an edited file if it is still `base` and mirror the registry; False when someone saved it meanwhile."""
    try:
        editing.save(path, new_text, base)
    except editing.StaleFile:
        return False
    _sync(request, config)
    return True


def _sync(request: Request, config: Config) -> None:
    """Mirror the saved files into the database, so the lists and reports show the change at once."""
    problem = data_places.mirror_registry(config, ctx_of(request).engine)
    if problem:  # the file is saved; the mirror catches up when the workspace is whole again
        log.warning("已保存，但工作区现在加载不了，列表和报表要等工作区改好后才更新：%s", problem)


# --- campaigns ----------------------------------------------------------------------------


def _opened(form: FormData) -> str:
    """The entry as the form was opened with it (a hidden field), to show what changed on a stale save."""
    value = form.get("opened")
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _stale_message(file: str, what: str, opened: str, now: str) -> str:
    """What happened on a stale save and what to do, by how the entry changed."""
    head = f"{file} 在您打开这个表单之后被别人改过，为免覆盖别人的修改，这次没有保存。"
    if opened and not now:
        return head + f"{what}已经不在 {file} 里了（被删除或改了编号），下面是它原来的内容；如果还需要它，请回到列表重新添加。"
    if opened.strip() == now.strip():
        return head + "表单里仍是您填写的内容，核对无误后再点「保存」即可。"
    return (head + f"下面是{what}的变化。表单里仍是您填写的内容：请先看清别人改了什么，需要保留的请在表单里一并改上，"
            "然后再点「保存」。")


def _form_values(form: FormData) -> editing.CampaignValues:
    def one(key: str) -> str:
        v = form.get(key)
        return v.strip() if isinstance(v, str) else ""

    def many(key: str) -> list[str]:
        return [v for v in dict.fromkeys(form.getlist(key)) if isinstance(v, str) and v]

    return editing.CampaignValues(
        id=one("id"), name=one("name"), scripts=many("scripts"), start=one("from"), end=one("to"),
        county=one("county") == "1", townships=many("townships"), villages=many("villages"),
        markets=many("markets"), plays_per_slot=one("plays_per_slot") or "1", priority=one("priority") or "5",
        market_day_boost=one("market_day_boost") or "0", urgent=one("urgent") == "1")


def _campaign_form(request: Request, *, user: User, v: editing.CampaignValues, original: str, base: str,
                   opened: str, status: int = 200, checked: editing.Checked | None = None,
                   preview: editing.PlanPreview | None = None, message: str = "", stale: str | None = None,
                   ok: bool = False) -> Response:
    """The form: the rotation in the campaign's order first (a script the library lacks stays, by its id),
    then the scripts that can be added. A browser posts ticked boxes in page order, so that is the order saved."""
    config = ctx_of(request).config
    registry, library = _world(config)
    by_id = {s.id: s for s in library}
    return render(request, "campaign_edit.html", status=status, user=user, v=v, original=original, base=base,
                  opened=opened, errors=checked.fields if checked else {}, other=checked.other if checked else [],
                  preview=preview, message=message, ok=ok, stale=stale, registry=registry,
                  rotation=[(sid, by_id.get(sid)) for sid in v.scripts],
                  scripts=sorted((s for s in library if s.id not in v.scripts),
                                 key=lambda s: (not s.approved, s.topic, s.title)))


def _moved(form: FormData, v: editing.CampaignValues) -> str:
    """Apply a pressed ↑/↓ button (move_up/move_down=<script id>) to the rotation; what to tell, or ''."""
    for key, step, word in (("move_up", -1, "上移"), ("move_down", 1, "下移")):
        sid = form.get(key)
        if isinstance(sid, str) and sid:
            v.scripts = editing.move(v.scripts, sid, step)
            where = f"到第 {v.scripts.index(sid) + 1} 位" if sid in v.scripts else ""
            return f"已{word}{where}。新的顺序还没有保存：排好后请点「保存」。"
    return ""


def _stale_campaign(request: Request, page: dict[str, Any], current: str) -> Response:
    """Refuse a save on a stale form: show how the campaign changed, keep the typed values, and carry the
    file as it is now, so that saving again (after review) is a deliberate choice."""
    v: editing.CampaignValues = page["v"]
    ident = page["original"] or v.id
    opened, now = page["opened"], editing.campaign_entry(current, ident)
    return _campaign_form(request, **(page | {"base": editing.stamp(current), "opened": now}), status=409,
                          stale=stale_diff(opened, now),
                          message=_stale_message(CAMPAIGNS, "这个宣传活动", opened, now))


@router.get("/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request) -> Response:
    user = _editor(request)
    text = _read(ctx_of(request).config.schedules_dir / CAMPAIGNS)
    today = ctx_of(request).today()
    v = editing.CampaignValues(start=today.isoformat(), end=today.isoformat())
    return _campaign_form(request, user=user, v=v, original="", base=editing.stamp(text), opened="")


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def edit_campaign(request: Request, campaign_id: str) -> Response:
    user = _editor(request)
    config = ctx_of(request).config
    text = _read(config.schedules_dir / CAMPAIGNS)
    registry, library = _world(config)
    checked = editing.check_campaigns(text, campaign_id, registry, {s.id: s for s in library})
    found = next((c for c in checked.campaigns if c.id == campaign_id), None)
    if found is None:
        if checked.ok:
            raise not_found("宣传活动", campaign_id, "请从「宣传活动」列表点进要修改的活动。")
        raise OutreachError("campaigns.yaml 有问题，请先在服务器上改好：\n" + "\n".join(checked.other))
    return _campaign_form(request, user=user, v=editing.campaign_values(found), original=campaign_id,
                          base=editing.stamp(text), opened=editing.campaign_entry(text, campaign_id))


@router.post("/campaigns/save", response_class=HTMLResponse)
async def save_campaign(request: Request) -> Response:
    """Check the edited campaign with the CLI's loader; action=preview plans it, action=save also writes."""
    user, form = await post_form(request, editor=True)
    ctx = ctx_of(request)
    config = ctx.config
    path = config.schedules_dir / CAMPAIGNS
    v = _form_values(form)
    original = form.get("original") if isinstance(form.get("original"), str) else ""
    base = form.get("base") if isinstance(form.get("base"), str) else ""
    page: dict[str, Any] = dict(user=user, v=v, original=original, base=base, opened=_opened(form))
    if moved := _moved(form, v):
        return _campaign_form(request, **page, message=moved, ok=True)
    current = _read(path)
    if form.get("action") == "save" and editing.stamp(current) != base:
        return _stale_campaign(request, page, current)
    try:
        # An edit keeps its id (files, records and links use it); a new one is named by its 活动名称.
        v.id = original or v.id or await run_in_threadpool(
            data_scripts.new_campaign_id, ctx.engine, v.name, editing.campaign_ids(current))
        new_text = editing.apply_campaign(current, original or None, v)
    except OutreachError as exc:
        return _campaign_form(request, **page, status=409, message=str(exc))
    registry, library = _world(config)
    scripts = {s.id: s for s in library}
    checked = editing.check_campaigns(new_text, v.id, registry, scripts)
    if not checked.ok:
        return _campaign_form(request, **page, status=400, checked=checked,
                              message="活动设置有问题，没有保存；请按红字修改。")
    if form.get("action") != "save":
        preview = await run_in_threadpool(lambda: editing.preview_plan(
            registry, checked.campaigns, v.id, scripts, clip_durations(config, library), today=ctx.today(),
            gap_s=GAP_S))
        return _campaign_form(request, **page, checked=checked, preview=preview,
                              message="下面是按这些设置排出的节目预览，还没有保存。")
    if not _save(request, config, path, new_text, base):
        return _stale_campaign(request, page, _read(path))
    log.info("宣传活动 %s 已由 %s 保存", v.id, user.name)
    flash(request, f"已保存宣传活动「{v.name}」。")
    return redirect(f"/campaigns/{quote(v.id)}")


# --- villages ------------------------------------------------------------------------------


def _village_form(request: Request, *, user: User, village_id: str, v: editing.VillageValues, base: str,
                  opened: str, status: int = 200, checked: editing.Checked | None = None, message: str = "",
                  stale: str | None = None) -> Response:
    config = ctx_of(request).config
    registry = load_registry(config.schedules_dir)
    village = registry.villages.get(village_id)
    if village is None:
        raise not_found("村庄", village_id, "请从「村庄」列表点进要修改的村庄。")
    township = registry.townships[village.township_id]
    return render(request, "village_edit.html", status=status, user=user, village=village, v=v, base=base,
                  opened=opened, errors=checked.fields if checked else {}, other=checked.other if checked else [],
                  message=message, stale=stale, county_slots=registry.slots, slot_names=SLOT_NAMES, speakers=SPEAKERS,
                  township=township, players=_player_choices(config, township.player, village.player))


def _player_choices(config: Config, township_player: str | None, saved: str | None) -> list[tuple[str, str]]:
    """The village form's player options: (value, label); "" is the default. Names come only from
    outreach.toml [players]; a name county.yaml has (`saved`) that is not defined there is shown so it can be changed."""
    system = config.deliver.player if isinstance(config.deliver.player, str) else config.default_player[0]
    default = f"乡镇设置：{township_player}" if township_player else f"系统设置：{system}"
    choices = [("", f"默认（{default}）")]
    choices += [(name, f"{name}（{cmd[0]}）") for name, cmd in sorted(config.players.items())]
    if saved and saved not in config.players:
        choices.append((saved, f"{saved}（outreach.toml 里没有定义，请改选）"))
    return choices


def _stale_village(request: Request, page: dict[str, Any], current: str) -> Response:
    """Refuse a save on a stale form: show how the village changed, keep the typed values, carry the file as now."""
    village_id = page["village_id"]
    opened, now = page["opened"], editing.village_entry(current, village_id)
    return _village_form(request, **(page | {"base": editing.stamp(current), "opened": now}), status=409,
                         stale=stale_diff(opened, now),
                         message=_stale_message(COUNTY, "这个村", opened, now))


@router.get("/villages/{village_id}/edit", response_class=HTMLResponse)
def edit_village(request: Request, village_id: str) -> Response:
    user = _editor(request, Action.EDIT_VILLAGE)
    config = ctx_of(request).config
    registry = load_registry(config.schedules_dir)
    if village_id not in registry.villages:
        raise not_found("村庄", village_id, "请从「村庄」列表点进要修改的村庄。")
    text = _read(config.schedules_dir / COUNTY)
    return _village_form(request, user=user, village_id=village_id, v=editing.village_values(registry, village_id),
                         base=editing.stamp(text), opened=editing.village_entry(text, village_id))


@router.post("/villages/{village_id}/edit", response_class=HTMLResponse)
async def save_village(request: Request, village_id: str) -> Response:
    user, form = await post_form(request)  # permissions.FORM_ROUTES: EDIT_VILLAGE
    config = ctx_of(request).config
    path = config.schedules_dir / COUNTY

    def one(key: str) -> str:
        value: Any = form.get(key)
        return value.strip() if isinstance(value, str) else ""

    v = editing.VillageValues(slots={n: one(f"slot_{n}") for n in SLOT_NAMES}, speaker=one("speaker"),
                              player=one("player"))
    base = one("base")
    page: dict[str, Any] = dict(user=user, village_id=village_id, v=v, base=base, opened=_opened(form))
    refused = editing.village_field_errors(v, config.players)
    if refused:  # nothing is built from a value outside its closed set, let alone saved
        return _village_form(request, **page, status=400, checked=editing.Checked(fields=refused),
                             message="村庄设置有问题，没有保存；请按红字修改。")
    current = _read(path)
    if editing.stamp(current) != base:
        return _stale_village(request, page, current)
    try:
        new_text = editing.apply_village(current, village_id, v)
    except OutreachError as exc:
        return _village_form(request, **page, status=409, message=str(exc))
    checked = editing.check_county(config.schedules_dir, new_text, village_id, players=config.player_names)
    if not checked.ok:
        return _village_form(request, **page, status=400, checked=checked,
                             message="村庄设置有问题，没有保存；请按红字修改。")
    if not _save(request, config, path, new_text, base):
        return _stale_village(request, page, _read(path))
    log.info("村 %s 已由 %s 保存", village_id, user.name)
    flash(request, "已保存村庄设置。")
    return redirect(f"/villages/{quote(village_id)}")

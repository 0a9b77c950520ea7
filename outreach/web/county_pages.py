"""The county's pages: campaigns, villages (and their confirmations), markets (and handouts), gaps, the plan,
pack files and the script list. Each parses input, calls the web/data_*.py modules and renders a zh-CN template."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from outreach.audio.render import verified_clip
from outreach.delivery import CHANNELS, Channel
from outreach.errors import OutreachError, RecordError
from outreach.labels import SLOT, TOPIC
from outreach.records.limits import MAX_LEAFLETS, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_PEOPLE, MIN_RECORD_DATE
from outreach.web import data_coverage, data_packs, data_places, data_records, data_scripts, folds
from outreach.web.auth import User
from outreach.web.page_kit import (
    Context, PageError, ctx_of, flash, found, not_found, post_form, redirect, render, require_user, signed_in,
)
from outreach.web.params import (
    check_range, days_back, form_text, parse_day, parse_int, parse_range, query_value, text_field,
)

log = logging.getLogger("outreach.web")
router = APIRouter()
T = TypeVar("T")

PLAN_MAX_DAYS = 31
HISTORY_MAX_DAYS = 366
GAP_MAX_DAYS = 366
# The form's input limits, the same as the server's checks below.
HANDOUT_CAPS = {"leaflets": MAX_LEAFLETS, "people": MAX_PEOPLE, "name": MAX_NAME_CHARS, "note": MAX_NOTE_CHARS,
                "min_date": MIN_RECORD_DATE.isoformat()}


def _q(request: Request, name: str) -> str | None:
    """A query parameter; a repeated one counts as its last value."""
    values = request.query_params.getlist(name)
    return values[-1] if values else None


def _str(value: Any) -> str:
    """A form value as text; a missing value or an uploaded file counts as empty."""
    return value if isinstance(value, str) else ""

# --- campaigns ------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    today = ctx.today()
    targets = data_places.campaign_targets(ctx.config)
    read = data_coverage.coverage_read(ctx.config, ctx.local_now())
    summaries = [data_coverage.campaign_summary(ctx.engine, c, today, targets.by_campaign.get(c.id, set()), read)
                 for c in data_places.campaigns(ctx.engine)]
    return render(request, "campaigns.html", user=user, summaries=summaries, problem=targets.problem)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: str) -> Response:
    user, ctx = signed_in(request)
    c = found(data_places.campaign(ctx.engine, campaign_id), "宣传活动", campaign_id, "请从「宣传活动」页面点进要看的活动。")
    targets = data_places.campaign_targets(ctx.config)
    summary = data_coverage.campaign_summary(ctx.engine, c, ctx.today(), targets.by_campaign.get(c.id, set()),
                                             data_coverage.coverage_read(ctx.config, ctx.local_now()))
    return render(request, "campaign.html", user=user, s=summary, problem=targets.problem)


# --- villages -------------------------------------------------------------------------


@router.get("/villages", response_class=HTMLResponse)
def villages_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    return render(request, "villages.html", user=user, villages=data_places.villages(ctx.engine),
                  townships=data_places.townships(ctx.engine))


@router.get("/villages/{village_id}", response_class=HTMLResponse)
def village_page(request: Request, village_id: str) -> Response:
    user, ctx = signed_in(request)
    v = found(data_places.village(ctx.engine, village_id), "村庄", village_id, "请从「村庄」页面点进要看的村。")
    today = ctx.today()
    start, end = parse_range(query_value(request, "from"), query_value(request, "to"), default_start=days_back(today, 30),
                             default_end=today + timedelta(days=6), max_days=HISTORY_MAX_DAYS, what="播出记录的日期范围",
                             today=today)
    history = data_records.village_history(ctx.engine, v.id, start, end, config=ctx.config, now=ctx.now())
    towns = data_places.townships(ctx.engine)
    names = {c.id: c.name for c in data_places.campaigns(ctx.engine)}
    return render(request, "village.html", user=user, v=v, township=towns.get(v.township_id),
                  history=history, days=folds.history_by_day(history, today), start=start, end=end,
                  campaign_names=names,
                  script_titles=data_scripts.script_titles(ctx.config),
                  by_usb=CHANNELS.get(v.speaker) is Channel.USB)  # type: ignore[call-overload]


async def _post_about(request: Request, look_up: Callable[[Engine, str], T | None], key: str, what: str,
                      fix: str) -> tuple[User, FormData, Context, T]:
    """A POST about one village or market: the user, form and context, and the place (a 404 page when it is gone)."""
    user, form = await post_form(request)
    ctx = ctx_of(request)
    return user, form, ctx, found(await run_in_threadpool(look_up, ctx.engine, key), what, key, fix)


@router.post("/villages/{village_id}/confirm")
async def confirm(request: Request, village_id: str) -> Response:
    user, form, ctx, v = await _post_about(request, data_places.village, village_id, "村庄",
                                           "请从「村庄」页面点进要确认的村。")
    day = parse_day(form_text(form.get("date")), "播出日期", None, today=ctx.today())
    slot = form_text(form.get("slot"))
    if slot not in SLOT:
        raise PageError(400, "请求有误", f"时段「{slot[:20]}」不存在。", "时段只能是早间或晚间，请从村庄页面的按钮确认。")
    label = f"{v.name} {day} {SLOT[slot]}"
    try:
        changed = await run_in_threadpool(lambda: data_records.confirm_program(
            ctx.engine, village_id=v.id, day=day, slot=slot, by=user.name, at=ctx.now()))
    except RecordError as exc:
        flash(request, f"没有确认：{label}。{exc}", "error")
        return redirect(f"/villages/{quote(v.id)}")
    if changed:
        flash(request, f"已确认：{label}的节目已播出（确认人：{user.name}）。")
    else:
        flash(request, f"没有确认：{label}的节目不是「已播」或「已导出」状态（可能已经确认过，或还没有播出）。", "error")
    return redirect(f"/villages/{quote(v.id)}")


# --- markets --------------------------------------------------------------------------


def _market_page(request: Request, market_id: str, *, status: int = 200, form_error: str = "",
                 form: dict[str, Any] | None = None) -> Response:
    user, ctx = signed_in(request)
    m = found(data_places.market(ctx.engine, market_id), "集市", market_id, "请从「集市」页面点进要看的集市。")
    today = ctx.today()
    start, end = parse_range(query_value(request, "from"), query_value(request, "to"), default_start=days_back(today, 90),
                             default_end=today, max_days=HISTORY_MAX_DAYS, what="发放记录的日期范围",
                             today=today)
    rows = data_records.handouts(ctx.engine, m.id, start, end)
    totals = data_coverage.market_totals(ctx.engine, start, end).get(m.id)
    upcoming = data_places.market_days(ctx.config, m.id, today, today + timedelta(days=30))[:6]
    values = form or {"date": today.isoformat(), "leaflets": "", "people": "", "topics": [],
                      "staff": user.name, "note": ""}
    return render(request, "market.html", status=status, user=user, m=m, rows=rows, totals=totals,
                  start=start, end=end, upcoming=upcoming, villages=data_places.market_villages(ctx.engine, m.id),
                  form=values, form_error=form_error, topics=TOPIC, caps=HANDOUT_CAPS)


@router.get("/markets", response_class=HTMLResponse)
def markets_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    today = ctx.today()
    start = days_back(today, 90)
    return render(request, "markets.html", user=user, markets=data_places.markets(ctx.engine),
                  totals=data_coverage.market_totals(ctx.engine, start, today), start=start, end=today)


@router.get("/markets/{market_id}", response_class=HTMLResponse)
def market_page(request: Request, market_id: str) -> Response:
    return _market_page(request, market_id)


@router.post("/markets/{market_id}/handouts")
async def add_handout(request: Request, market_id: str) -> Response:
    user, form, ctx, m = await _post_about(request, data_places.market, market_id, "集市",
                                           "请从「集市」页面点进要登记的集市。")
    values = {"date": form_text(form.get("date")), "leaflets": form_text(form.get("leaflets")),
              "people": form_text(form.get("people")), "topics": [t for t in form.getlist("topics") if isinstance(t, str)],
              "staff": form_text(form.get("staff")), "note": form_text(form.get("note"))}
    today = ctx.today()
    try:
        day = parse_day(values["date"], "发放日期", None, today=today)
        if day > today:
            raise PageError(400, "请求有误", f"发放日期 {day} 在今天（{today}）之后。", "只能登记已经发生的发放，请改成今天或以前的日期。")
        # The same caps as `outreach handout` and handout CSV files (outreach.records.limits).
        leaflets = parse_int(values["leaflets"], "发放传单数", None, 0, MAX_LEAFLETS, " 份")
        people = parse_int(values["people"], "接触群众人数", None, 0, MAX_PEOPLE, " 人")
        topics = values["topics"]
        if not topics or any(t not in TOPIC for t in topics):
            raise PageError(400, "请求有误", "没有选择宣传主题。", "请至少勾选一个主题：交通安全或反诈骗。")
        staff = text_field(values["staff"], "发放人员", required=True, max_len=MAX_NAME_CHARS)
        note = text_field(values["note"], "备注", max_len=MAX_NOTE_CHARS)
        handout = await run_in_threadpool(lambda: data_records.add_handout(
            ctx.engine, market_id=m.id, day=day, leaflets=leaflets, people=people, topics=topics,
            staff=staff, note=note, now=ctx.now()))
    except PageError as exc:
        status, form_error = exc.status, f"{exc.message}{exc.fix}"
        return await run_in_threadpool(lambda: _market_page(
            request, m.id, status=status, form_error=form_error, form=values))
    except RecordError as exc:
        message = ("这条发放记录已经登记过了（日期、数量、主题、人员和备注都相同），没有重复添加。"
                   if isinstance(exc, data_records.DuplicateHandout) else f"没有保存：{exc}")
        return await run_in_threadpool(lambda: _market_page(
            request, m.id, status=400, form_error=message, form=values))
    flash(request, f"已登记：{m.name} {handout.date} 发放传单 {handout.leaflets} 份，接触群众 {handout.people} 人。")
    return redirect(f"/markets/{quote(m.id)}")


# --- gaps, plan -------------------------------------------------------------------------


@router.get("/gaps", response_class=HTMLResponse)
def gaps_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    today = ctx.today()
    campaigns = data_places.campaigns(ctx.engine)
    days = parse_int(query_value(request, "days"), "天数", 14, 1, GAP_MAX_DAYS, " 天")
    campaign_id = (query_value(request, "campaign") or "").strip()
    if not campaign_id:
        active = [c for c in campaigns if c.start <= today <= c.end] or campaigns
        campaign_id = active[0].id if active else ""
    chosen = next((c for c in campaigns if c.id == campaign_id), None)
    if campaign_id and chosen is None:
        raise not_found("宣传活动", campaign_id, "请在覆盖缺口页面的下拉框里选择活动。")
    targets = data_places.campaign_targets(ctx.config)
    rows = (data_coverage.gaps(ctx.engine, chosen.id, today, days, targets.by_campaign.get(chosen.id, set()),
                      data_coverage.coverage_read(ctx.config, ctx.local_now()))
            if chosen else [])
    return render(request, "gaps.html", user=user, campaigns=campaigns, chosen=chosen, days=days, rows=rows,
                  scripts=data_coverage.script_gaps(ctx.engine, chosen.id, today, targets) if chosen else [],
                  unconfirmed=data_coverage.unconfirmed(ctx.engine, today), problem=targets.problem)


@router.get("/plan", response_class=HTMLResponse)
def plan_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    today = ctx.today()
    start = parse_day(query_value(request, "from"), "开始日期", today, today=today)
    days = parse_int(query_value(request, "days"), "天数", 7, 1, PLAN_MAX_DAYS, " 天")
    end = start + timedelta(days=days - 1)
    check_range(start, end, PLAN_MAX_DAYS, "安排的日期范围")
    village_id = (query_value(request, "village") or "").strip()
    if village_id:
        known = data_places.registry_village_ids(ctx.config)
        if known is not None and village_id not in known:
            raise not_found("村庄", village_id, "请在下拉框里选择村庄，或留空查看全部村庄。")
    week = data_places.week_plan(ctx.config, start, end, [village_id] if village_id else None)
    dates = [start + timedelta(days=i) for i in range(days)]
    township = (query_value(request, "township") or "").strip()
    by_township: dict[str, list[str]] = defaultdict(list)
    for vid in sorted(week.village_names):
        if (not village_id or vid == village_id) and (not township or week.village_township[vid] == township):
            by_township[week.village_township[vid]].append(vid)
    plan_folds = folds.plan_by_township(week.result.programs, dates, by_township, week.township_names,
                                        week.village_names)
    return render(request, "plan.html", user=user, week=week, dates=dates, folds=plan_folds,
                  start=start, days=days, village_id=village_id, slots=list(SLOT), township=township)


# --- packs ----------------------------------------------------------------------------


@router.get("/packs/files/{rel:path}")
def pack_download(request: Request, rel: str) -> Response:
    require_user(request)
    ctx = ctx_of(request)
    path, entry = found(data_packs.find_pack_file(ctx.config, rel), "节目包文件", rel[:80], "请从「节目包下载」页面的列表里点击下载。")
    name = f"{entry.village_id}_{path.name}" if entry.village_id else path.name
    return FileResponse(path, media_type="audio/mpeg" if path.suffix == ".mp3" else "application/octet-stream",
                        filename=name)


# --- scripts ---------------------------------------------------------------------------


@router.get("/scripts", response_class=HTMLResponse)
def scripts_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    scripts, problems = data_scripts.script_library(ctx.config)
    scripts = sorted(scripts, key=lambda s: (s.approved, s.topic, s.id))
    rendered = set()
    for s in scripts:
        try:
            verified_clip(ctx.config, s)
            rendered.add(s.id)
        except OutreachError:
            pass
    return render(request, "scripts.html", user=user, scripts=scripts, problems=problems, rendered=rendered)

"""The village-station pages: 终端在线率 per township, the station list, and the 紧急插播 send form with live delivery."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from outreach.db import session
from outreach.delivery.health import scheduler_health
from outreach.delivery.stations.accounts import list_stations
from outreach.delivery.stations.alerts import alert_status, parse_duration, send_alert, target_stations
from outreach.delivery.stations.asrun import rejected_events
from outreach.delivery.stations.broker import load_broker_settings
from outreach.models import Alert
from outreach.planning.workspace import load
from outreach.station.protocol import StationError
from outreach.web import data
from outreach.web.page_kit import (
    TZ, PageError, bad_request, ctx_of, flash, not_found, post_form, redirect, render, require_editor, require_user,
)

log = logging.getLogger("outreach.web")
router = APIRouter()

WARNING = {"offline": "离线", "low_buffer": "缓存不足", "clock_skew": "时钟偏差"}
# The send form's expiry choices: value -> label (parse_duration reads the value).
EXPIRY = {"10m": "10 分钟", "30m": "30 分钟", "1h": "1 小时", "2h": "2 小时", "6h": "6 小时", "1d": "1 天", "2d": "2 天"}
REFRESH_S = 2
RECENT_ALERTS = 10
RECENT_REFUSED = 5  # the latest refused station events shown


@dataclass
class TownshipPresence:
    """How many of a township's active stations are online (终端在线率)."""

    id: str
    name: str
    total: int = 0
    online: int = 0
    warnings: int = 0
    stations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.online / self.total if self.total else None


def _presence(request: Request) -> tuple[list[dict[str, Any]], list[TownshipPresence]]:
    ctx = ctx_of(request)
    stations = list_stations(ctx.engine, now=ctx.now())
    villages = {v.id: v for v in data.villages(ctx.engine)}
    towns = data.townships(ctx.engine)
    by_town: dict[str, TownshipPresence] = {}
    for st in stations:
        v = villages.get(st["village_id"])
        tid = v.township_id if v else ""
        st["village"] = v.name if v else st["village_id"]
        st["township_id"] = tid
        st["township"] = towns[tid].name if tid in towns else (tid or "未知乡镇")
        seen = datetime.fromisoformat(st["last_seen"]) if st["last_seen"] else None
        st["last_seen_local"] = seen.astimezone(TZ).strftime("%m-%d %H:%M:%S") if seen else ""
        if st["revoked"]:
            continue
        tp = by_town.setdefault(tid, TownshipPresence(tid, st["township"]))
        tp.total += 1
        tp.online += int(st["online"])
        tp.warnings += int(bool(st["warnings"]))
        tp.stations.append(st)
    # Problems first, so an offline box is at the top of a long list.
    stations.sort(key=lambda s: (s["revoked"], not s["warnings"], s["township_id"], s["village_id"], s["station_id"]))
    return stations, sorted(by_town.values(), key=lambda t: t.id)


def _recent_alerts(request: Request) -> list[dict[str, Any]]:
    with session(ctx_of(request).engine) as s:
        rows = s.scalars(sa.select(Alert).order_by(Alert.sent_at.desc()).limit(RECENT_ALERTS)).all()
        return [{"id": r.id, "script_id": r.script_id, "sent_at": r.sent_at, "expires_at": r.expires_at,
                 "targets": len(json.loads(r.targets))} for r in rows]


def _today_outcomes(request: Request, stations: list[dict[str, Any]]) -> None:
    """Add to each station how its village's programs went today (`today`: shown status -> programs)."""
    ctx = ctx_of(request)
    villages = {s["village_id"] for s in stations if not s["revoked"]}
    if not villages:
        return
    today = ctx.today()
    found = data.program_outcomes(ctx.config, ctx.engine, today, today, now=ctx.now(), village_ids=villages)
    by_village: dict[str, Counter[str]] = {}
    for (village, _slot, _day), status in found.items():
        by_village.setdefault(village, Counter())[status] += 1
    for s in stations:
        s["today"] = by_village.get(s["village_id"], Counter())


@router.get("/stations", response_class=HTMLResponse)
def stations_page(request: Request) -> Response:
    user = require_user(request)
    ctx = ctx_of(request)
    stations, towns = _presence(request)
    _today_outcomes(request, stations)
    active = [s for s in stations if not s["revoked"]]
    online = sum(1 for s in active if s["online"])
    refused = rejected_events(ctx.engine, limit=RECENT_REFUSED)
    for r in refused["latest"]:
        r["received_local"] = datetime.fromisoformat(r["received_at"]).astimezone(TZ).strftime("%m-%d %H:%M:%S")
    return render(request, "stations.html", user=user, stations=stations, towns=towns, active=len(active),
                  online=online, alerts=_recent_alerts(request), WARNING=WARNING, refused=refused,
                  scheduler=scheduler_health(ctx.engine, now=ctx.now()))




def _form_choices(request: Request) -> dict[str, Any]:
    ctx = ctx_of(request)
    scripts, _ = data.script_library(ctx.config)
    return {"scripts": [s for s in scripts if s.approved], "townships": data.townships(ctx.engine),
            "villages": data.villages(ctx.engine), "expiry": EXPIRY}


@router.get("/alerts/new", response_class=HTMLResponse)
def new_alert(request: Request) -> Response:
    user = require_editor(request, "不能发送紧急插播。")
    return render(request, "alert.html", user=user, alert=None, f={"scope": "township", "expires": "2h"},
                  **_form_choices(request))


def _strings(form: Any, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str) and v]


@router.post("/alerts")
async def send_alert_form(request: Request) -> Response:
    """Send an approved script to the chosen county / townships / villages, then show its delivery page."""
    user, form = await post_form(request, editor=True)
    ctx = ctx_of(request)
    script_id = form.get("script")
    scope = form.get("scope")
    expires = form.get("expires")
    if not isinstance(script_id, str) or not script_id:
        raise bad_request("没有选择广播稿。", "请在「紧急插播」页面选一篇已签发的广播稿。")
    if scope not in ("county", "township", "village"):
        raise bad_request("没有选择播出范围。", "请选择全县、乡镇或村。")
    if not isinstance(expires, str) or expires not in EXPIRY:
        raise bad_request("有效期不对。", "请从下拉框里选择有效期。")
    townships = _strings(form, "township") if scope == "township" else []
    villages = _strings(form, "village") if scope == "village" else []
    if scope == "township" and not townships:
        raise bad_request("选了按乡镇发送，但没有勾选乡镇。", "请至少勾选一个乡镇。")
    if scope == "village" and not villages:
        raise bad_request("选了按村发送，但没有勾选村。", "请至少勾选一个村。")
    loaded = await run_in_threadpool(load, ctx.config)
    script = loaded.scripts.get(script_id)
    if script is None or not script.approved:
        raise bad_request(f"广播稿「{script_id}」不存在或还没有签发，只能发送已签发的广播稿。",
                          "请在「广播稿」页面先签发，再从「紧急插播」页面的下拉框里选择。")
    broker = load_broker_settings(ctx.config.workspace)
    if broker is None:
        raise PageError(503, "没有配置消息服务器", "服务器没有配置 MQTT 消息服务器（broker），紧急插播发不出去。",
                        "请技术人员在 broker.toml 的 [broker] 里填写 url，或设置 OUTREACH_BROKER_URL，然后重启 outreach serve。")
    targets = await run_in_threadpool(lambda: target_stations(
        ctx.engine, loaded, county=scope == "county", townships=townships, villages=villages))
    out = await run_in_threadpool(lambda: send_alert(ctx.engine, loaded, broker, script_id, targets,
                                                     expires=parse_duration(expires), now=ctx.now()))
    log.info("紧急插播 %s（%s）已由 %s 发给 %d 个村广播站", out["alert_id"], script_id, user.name, len(targets))
    flash(request, f"紧急插播已发出，共 {len(targets)} 个播放盒。下面实时显示收到和播出的情况。")
    return redirect(f"/alerts/{quote(out['alert_id'])}")


def _status(request: Request, alert_id: str) -> dict[str, Any]:
    if not alert_id.isalnum() or len(alert_id) > 32:
        raise not_found("紧急插播", alert_id[:40], "请从「播放盒」页面的最近插播列表点进去。")
    try:
        out = alert_status(ctx_of(request).engine, alert_id)
    except StationError:
        raise not_found("紧急插播", alert_id, "请从「播放盒」页面的最近插播列表点进去。") from None
    now = ctx_of(request).now()
    out["expired"] = datetime.fromisoformat(out["expires_at"]) <= now
    out["counts"] = {"targets": len(out["targets"]), "delivered": len(out["delivered"]), "played": len(out["played"])}
    out["at"] = now.astimezone(TZ).strftime("%H:%M:%S")
    return out


@router.get("/alerts/{alert_id}.json")
def alert_json(request: Request, alert_id: str) -> Response:
    """The alert's delivery as the page's refresh loop reads it."""
    require_user(request)
    return JSONResponse(_status(request, alert_id))


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: str) -> Response:
    user = require_user(request)
    status = _status(request, alert_id)
    scripts, _ = data.script_library(ctx_of(request).config)
    title = next((s.title for s in scripts if s.id == status["script_id"]), status["script_id"])
    return render(request, "alert.html", user=user, alert=status, title=title, refresh_s=REFRESH_S,
                  sent_at=datetime.fromisoformat(status["sent_at"]),
                  expires_at=datetime.fromisoformat(status["expires_at"]))


__all__ = ["router", "EXPIRY", "WARNING"]

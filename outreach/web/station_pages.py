"""The village-station pages: 终端在线率 per township, the station list, and the 紧急插播 send form with live delivery."""

from __future__ import annotations

import functools
import hashlib
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
from outreach.delivery import Channel
from outreach.delivery.health import scheduler_health
from outreach.delivery.live.alerts import split_target
from outreach.delivery.stations.accounts import list_stations
from outreach.delivery.stations.alerts import (
    AlertTargets, alert_status, alert_targets, broker_problem, parse_duration, send_alert,
)
from outreach.delivery.stations.asrun import rejected_events
from outreach.delivery.stations.broker import load_broker_settings
from outreach.errors import OutreachError
from outreach.models import Alert
from outreach.planning.workspace import Loaded, load
from outreach.station.protocol import StationError
from outreach.web import data_coverage, data_places, data_scripts
from outreach.web.page_kit import (
    TZ, ctx_of, flash, not_found, post_form, redirect, render, require_editor, require_user, signed_in,
)

log = logging.getLogger("outreach.web")
router = APIRouter()

WARNING = {"offline": "离线", "low_buffer": "缓存不足", "clock_skew": "时钟偏差"}
# The send form's expiry choices: value -> label (parse_duration reads the value).
EXPIRY = {"10m": "10 分钟", "30m": "30 分钟", "1h": "1 小时", "2h": "2 小时", "6h": "6 小时", "1d": "1 天", "2d": "2 天"}
SCOPES = ("county", "township", "village")
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
    villages = {v.id: v for v in data_places.villages(ctx.engine)}
    towns = data_places.townships(ctx.engine)
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
                 "targets": sum(split_target(t)[0] is not Channel.USB for t in json.loads(r.targets))} for r in rows]


def _today_outcomes(request: Request, stations: list[dict[str, Any]]) -> None:
    """Add to each station how its village's programs went today (`today`: shown status -> programs)."""
    ctx = ctx_of(request)
    villages = {s["village_id"] for s in stations if not s["revoked"]}
    if not villages:
        return
    today = ctx.today()
    found = data_coverage.program_outcomes(ctx.config, ctx.engine, today, today, now=ctx.now(), village_ids=villages)
    by_village: dict[str, Counter[str]] = {}
    for (village, _slot, _day), status in found.items():
        by_village.setdefault(village, Counter())[status] += 1
    for s in stations:
        s["today"] = by_village.get(s["village_id"], Counter())


@router.get("/stations", response_class=HTMLResponse)
def stations_page(request: Request) -> Response:
    user, ctx = signed_in(request)
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


@dataclass
class AlertForm:
    """What the 紧急插播 form holds, kept as typed so a refused or confirmed form comes back filled in."""

    script: str = ""
    scope: str = "township"
    townships: list[str] = field(default_factory=list)
    villages: list[str] = field(default_factory=list)
    expires: str = "2h"
    confirm: str = ""

    @classmethod
    def read(cls, form: Any) -> AlertForm:
        def one(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        def many(name: str) -> list[str]:
            return [v for v in form.getlist(name) if isinstance(v, str) and v]

        return cls(one("script"), one("scope"), many("township"), many("village"), one("expires"), one("confirm"))

    @property
    def token(self) -> str:
        """What the confirmation step confirmed: changing any choice asks again."""
        chosen = [self.script, self.scope, sorted(self.townships), sorted(self.villages), self.expires]
        return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]

    def problem(self) -> str | None:
        """What is missing or wrong in the choices (Chinese), or None."""
        if not self.script:
            return "没有选择广播稿：请选一篇已签发的广播稿。"
        if self.scope not in SCOPES:
            return "没有选择播出范围：请选择全县、按乡镇或按村。"
        if self.expires not in EXPIRY:
            return "有效期不对：请从下拉框里选择有效期。"
        if self.scope == "township" and not self.townships:
            return "选了按乡镇发送，但没有勾选乡镇：请至少勾选一个乡镇。"
        if self.scope == "village" and not self.villages:
            return "选了按村发送，但没有勾选村：请至少勾选一个村。"
        return None

    def targets(self, engine: sa.Engine, loaded: Loaded) -> AlertTargets:
        return alert_targets(engine, loaded, county=self.scope == "county",
                             townships=self.townships if self.scope == "township" else [],
                             villages=self.villages if self.scope == "village" else [])


def _channel_rows(loaded: Loaded, county: AlertTargets) -> list[dict[str, Any]]:
    """The county's targets by channel, a row per township and one for the county: what a 紧急插播 reaches."""
    rows = []
    for tid, t in loaded.registry.townships.items():
        part = county.within({v.id for v in loaded.registry.villages.values() if v.township_id == tid})
        rows.append({"name": t.name, "t": part})
    return [*rows, {"name": "全县", "t": county}]


def _alert_form(request: Request, user: Any, f: AlertForm, *, error: str = "", status: int = 200,
                chosen: AlertTargets | None = None) -> Response:
    """The send form, filled in with `f`: the county's targets by channel, the broker's and scheduler's state
    up front, `error` inline, and for `chosen` targets the confirmation step."""
    ctx = ctx_of(request)
    loaded = load(ctx.config)
    county = alert_targets(ctx.engine, loaded, county=True)
    try:
        broker = load_broker_settings(ctx.config.workspace)
        problem = broker_problem(broker)
    except StationError as exc:  # a broken broker.toml: say so, the networked part still works
        broker, problem = None, str(exc)
    scripts, _ = data_scripts.script_library(ctx.config)
    names = {v.id: v.name for v in loaded.registry.villages.values()}
    kinds = {v: "联网" for v in county.networked} | {v: "U盘" for v in county.usb} | {
        v: "播放盒" for v in [*county.stations.values(), *county.unregistered]}
    return render(request, "alert.html", status, user=user, alert=None, f=f, error=error,
                  scripts=[s for s in scripts if s.approved], townships=loaded.registry.townships,
                  villages=list(loaded.registry.villages.values()), kinds=kinds, names=names, expiry=EXPIRY,
                  channels=_channel_rows(loaded, county), broker=broker, broker_problem=problem,
                  scheduler=scheduler_health(ctx.engine, now=ctx.now()), chosen=chosen,
                  confirm_token=f.token if chosen is not None else "")


@router.get("/alerts/new", response_class=HTMLResponse)
def new_alert(request: Request) -> Response:
    user = require_editor(request, "不能发送紧急插播。")
    return _alert_form(request, user, AlertForm())


@router.post("/alerts")
async def send_alert_form(request: Request) -> Response:
    """Send an approved script to the chosen county / townships / villages, then show its delivery page.

    A mistake shows the same form again, filled in, with the error; the whole county or a township is
    first shown as a confirmation step (who it reaches, by channel) and sent only once confirmed."""
    user, form = await post_form(request, editor=True)
    ctx = ctx_of(request)
    f = AlertForm.read(form)
    again = functools.partial(run_in_threadpool, _alert_form, request, user, f)
    if problem := f.problem():
        return await again(error=problem, status=400)
    loaded = await run_in_threadpool(load, ctx.config)
    script = loaded.scripts.get(f.script)
    if script is None or not script.approved:
        return await again(error=f"广播稿「{f.script}」不存在或还没有签发，只能发送已签发的广播稿："
                                 "请在「广播稿」页面先签发，再从下拉框里选择。", status=400)
    try:
        targets = await run_in_threadpool(f.targets, ctx.engine, loaded)
        if f.scope != "village" and f.confirm != f.token and targets.reachable:
            return await again(chosen=targets)  # a county or a township: confirm first (none reachable: say so)
        broker = load_broker_settings(ctx.config.workspace)
        out = await run_in_threadpool(lambda: send_alert(ctx.engine, loaded, broker, f.script, targets,
                                                         expires=parse_duration(f.expires), now=ctx.now()))
    except OutreachError as exc:
        return await again(error=f"紧急插播没有发出：{exc}", status=400)
    log.info("紧急插播 %s（%s）已由 %s 发出：%d 个播放盒，%d 个联网村", out["alert_id"], f.script, user.name,
             len(out["stations"]), len(out["networked"]))
    flash(request, _sent_message(out))
    if out["station_error"]:
        flash(request, f"播放盒没有收到：{out['station_error']}", "error")
    return redirect(f"/alerts/{quote(out['alert_id'])}")


def _sent_message(out: dict[str, Any]) -> str:
    parts = [f"{len(out['stations'])} 个播放盒"] if out["stations"] else []
    parts += [f"{len(out['networked'])} 个联网村"] if out["networked"] else []
    usb = f"；{len(out['usb'])} 个U盘村无法即时插播" if out["usb"] else ""
    return f"紧急插播已发出：{'、'.join(parts)}{usb}。下面实时显示收到和播出的情况。"


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
    for channel, counts in out["channels"].items():  # data-count="live_played" …, refreshed by alert.js
        out["counts"] |= {f"{channel}_{k}": v for k, v in counts.items()}
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
    ctx = ctx_of(request)
    scripts, _ = data_scripts.script_library(ctx.config)
    title = next((s.title for s in scripts if s.id == status["script_id"]), status["script_id"])
    villages = {v.id: v for v in data_places.villages(ctx.engine)}
    stations = {st["station_id"]: st["village_id"] for st in list_stations(ctx.engine, now=ctx.now())}
    rows = []
    for target in status["targets"]:
        channel, ident = split_target(target)
        vid = ident if channel is Channel.LIVE else stations.get(ident, "")
        rows.append({"id": target, "kind": "联网村" if channel is Channel.LIVE else "播放盒", "station": ident
                     if channel is Channel.STATIONS else "", "village": villages[vid].name if vid in villages else vid})
    usb = [villages[v].name if v in villages else v for v in status["usb"]]
    return render(request, "alert.html", user=user, alert=status, title=title, refresh_s=REFRESH_S, rows=rows, usb=usb,
                  sent_at=datetime.fromisoformat(status["sent_at"]),
                  expires_at=datetime.fromisoformat(status["expires_at"]))


__all__ = ["router", "EXPIRY", "WARNING"]

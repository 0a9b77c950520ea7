"""Confirmations on the web: the village phone page behind a pack's QR code (/c/<token>, no login),
and the 播出确认 page where staff paste the lines villages send back (/records/import)."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from outreach import records
from outreach.db import session
from outreach.errors import RecordError
from outreach.labels import SLOT
from outreach.models import Broadcast, BroadcastStatus, Village
from outreach.records.confirm_links import last_valid_day, token_sha256
from outreach.records.limits import MAX_NAME_CHARS
from outreach.web import data_scripts
from outreach.web.auth import csrf_ok
from outreach.web.page_kit import CSRF_FIELD, ctx_of, flash, post_form, redirect, render, require_user

router = APIRouter()
NAME_KEY = "qr_name"  # the session remembers the name typed on the phone page
RECENT = 30


class PostLimiter:
    """At most `per_minute` posts per key in any 60 seconds, kept in memory (one server process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one post for `key`; False (not counted) when the last minute already holds `per_minute`."""
        at = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) > 10_000:  # forget keys that went quiet
                self._seen = {k: q for k, q in self._seen.items() if q and q[-1] > at - 60}
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= at - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return False
            seen.append(at)
            return True


def _limiter(request: Request) -> PostLimiter:
    state = request.app.state
    limiter = getattr(state, "confirm_limiter", None)
    if limiter is None:
        limiter = state.confirm_limiter = PostLimiter(ctx_of(request).config.web.confirm_posts_per_minute)
    return limiter  # type: ignore[no-any-return]


# --- the phone page ------------------------------------------------------------------------


@dataclass
class _Phone:
    """What the phone page shows of one link: the village and its programs on the stick."""

    village: str
    first_day: date
    last_day: date
    valid_until: date  # the last day the link works
    programs: list[records.LinkProgram]


def _load_link(request: Request, token: str) -> _Phone:
    ctx = ctx_of(request)
    with session(ctx.engine) as s:
        link = records.open_link(s, token, now=ctx.local_now())
        village = s.get(Village, link.village_id)
        return _Phone(village.name if village else link.village_id, link.first_day, link.last_day,
                      last_valid_day(link.expires_at), records.link_programs(s, link))


def _phone(request: Request, token: str, *, status: int = 200, problem: str = "") -> Response:
    ctx = ctx_of(request)
    if problem:
        return render(request, "confirm_phone.html", status=status, problem=problem, link=None, token=token)
    try:
        link = _load_link(request, token)
    except records.LinkError as exc:
        return render(request, "confirm_phone.html", status=exc.status, problem=str(exc), link=None, token=token)
    scripts, _ = data_scripts.script_library(ctx.config)
    titles = {sc.id: sc.title for sc in scripts}
    return render(request, "confirm_phone.html", status=status, problem="", link=link, token=token, titles=titles,
                  now=ctx.local_now(), name=request.session.get(NAME_KEY, ""), max_name=MAX_NAME_CHARS)


@router.get("/c/{token}", response_class=HTMLResponse)
def phone_page(request: Request, token: str) -> Response:
    return _phone(request, token)


def _program(value: str) -> tuple[date, str]:
    """The program a button names: 2026-12-01|morning."""
    day, _, slot = value.partition("|")
    try:
        found = date.fromisoformat(day)
    except ValueError:
        raise RecordError("没有选中节目；请点节目旁边的「已播放」按钮") from None
    if slot not in SLOT:
        raise RecordError("没有选中节目；请点节目旁边的「已播放」按钮")
    return found, slot


@router.post("/c/{token}")
async def phone_confirm(request: Request, token: str) -> Response:
    ctx = ctx_of(request)
    try:
        await run_in_threadpool(_load_link, request, token)
    except records.LinkError as exc:
        return _phone(request, token, status=exc.status, problem=str(exc))
    if not _limiter(request).allow(token_sha256(token)):
        return _phone(request, token, status=429,
                      problem="提交得太频繁了（每分钟最多 "
                              f"{ctx.config.web.confirm_posts_per_minute} 次）；请过一分钟再点。")
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not csrf_ok(request.session, submitted if isinstance(submitted, str) else None):
        flash(request, "页面已过期，没有记录；请再点一次「已播放」。", "error")
        return redirect(f"/c/{token}")
    name = form.get("confirmed_by")
    name = name.strip() if isinstance(name, str) else ""
    program = form.get("program")
    try:
        day, slot = _program(program if isinstance(program, str) else "")
        if not name:
            raise RecordError("请先在上面写上您的名字，再点「已播放」")
        done = await run_in_threadpool(_confirm, request, token, day, slot, name)
    except records.LinkError as exc:
        return _phone(request, token, status=exc.status, problem=str(exc))
    except RecordError as exc:
        flash(request, f"没有记录：{exc}", "error")
        return redirect(f"/c/{token}")
    request.session[NAME_KEY] = name
    what = f"{day.month}月{day.day}日 {SLOT[slot]}"
    flash(request, f"已记录：{what}的节目已播放（{name}）。谢谢！" if done else f"{what}的节目已经确认过了。")
    return redirect(f"/c/{token}")


def _confirm(request: Request, token: str, day: date, slot: str, name: str) -> bool:
    ctx = ctx_of(request)
    with session(ctx.engine) as s:
        return records.confirm_by_link(s, token, day=day, slot=slot, confirmed_by=name, now=ctx.local_now())


# --- the paste box -------------------------------------------------------------------------


def _recent(request: Request) -> list[dict[str, object]]:
    """The latest confirmations, one per program: who said so, who entered it, when it aired, when it was entered."""
    ctx = ctx_of(request)
    with session(ctx.engine) as s:
        found = s.execute(
            sa.select(Broadcast.village_id, Village.name, Broadcast.date, Broadcast.slot, Broadcast.confirmed_by,
                      Broadcast.entered_by, sa.func.min(sa.func.coalesce(Broadcast.aired_at, Broadcast.scheduled_at)),
                      sa.func.max(Broadcast.confirmed_at))
            .join(Village, Village.id == Broadcast.village_id, isouter=True)
            .where(Broadcast.status == BroadcastStatus.CONFIRMED)
            .group_by(Broadcast.village_id, Village.name, Broadcast.date, Broadcast.slot, Broadcast.confirmed_by,
                      Broadcast.entered_by)
            .order_by(sa.func.max(Broadcast.confirmed_at).desc()).limit(RECENT)).all()
    return [{"village_id": r[0], "village": r[1] or r[0], "date": r[2], "slot": r[3], "confirmed_by": r[4] or "",
             "entered_by": r[5] or "", "aired_at": r[6], "confirmed_at": r[7]} for r in found]


def _import_page(request: Request, *, status: int = 200, text: str = "", report: records.ImportReport | None = None,
                 problem: str = "") -> Response:
    user = require_user(request)
    lines = re.split(r"\r\n|\r|\n", text)  # numbered as the import numbers them
    return render(request, "records_import.html", status=status, user=user, text=text, report=report,
                  problem=problem, lines=lines, recent=_recent(request))


@router.get("/records/import", response_class=HTMLResponse)
def import_page(request: Request) -> Response:
    return _import_page(request)


@router.post("/records/import")
async def import_pasted(request: Request) -> Response:
    user, form = await post_form(request)
    ctx = ctx_of(request)
    text = form.get("lines")
    text = text if isinstance(text, str) else ""
    if not text.strip():
        return _import_page(request, status=400, problem="没有粘贴任何内容；请把村里发来的回报行粘贴到框里")

    def run() -> records.ImportReport:
        with session(ctx.engine) as s:
            return records.import_confirmations(s, records.Pasted(text), now=ctx.local_now(), entered_by=user.name)

    try:
        report = await run_in_threadpool(run)
    except RecordError as exc:
        return _import_page(request, status=400, text=text, problem=str(exc))
    return _import_page(request, text="" if not report.errors else text, report=report)

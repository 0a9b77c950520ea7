"""Signing in and out, and the home page that sends a signed-in user on."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from outreach.web.auth import csrf_ok
from outreach.web.page_kit import (
    CSRF_FIELD, PageError, csrf_error, ctx_of, redirect, render, require_user, safe_next, session_user, start_session,
)
from outreach.web.params import form_text, query_value

log = logging.getLogger("outreach.web")
router = APIRouter()


# --- login ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    target = safe_next(query_value(request, "next"))
    if session_user(request) is not None:
        return redirect(target)
    no_users = not ctx_of(request).users.users()
    return render(request, "login.html", next=target, name="", error="", no_users=no_users)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not csrf_ok(request.session, token if isinstance(token, str) else None):
        raise csrf_error()
    name = form.get("name")
    password = form.get("password")
    name = name.strip()[:200] if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    target = safe_next(form_text(form.get("next")))
    address = request.client.host if request.client else "unknown"
    # Counted as a failure before the (slow) password check, atomically: parallel
    # guesses cannot all slip past the limit while the first ones are still hashing.
    attempt = ctx.limiter.attempt(name, address, ctx.now())
    refused = attempt.refusal
    if refused:
        wait = refused.retry_after_s
        log.warning("已拒绝 %r 从 %s 登录：超过%s的失败次数上限（还要等 %d 秒）", name, address,
                    "账号" if refused.scope == "account" else "这个地址", wait)
        minutes = (wait + 59) // 60
        who = (f"账号「{name}」连续登录失败 {refused.limit} 次，已暂时锁定。" if refused.scope == "account"
               else f"这台电脑登录失败的次数太多（{refused.limit} 次），已暂时不能登录任何账号。")
        raise PageError(429, "登录尝试太多", who, f"请 {minutes} 分钟后再试；忘记密码请联系管理员重设。",
                        headers={"Retry-After": str(wait)})
    user = await run_in_threadpool(ctx.users.authenticate, name, password) if name and password else None
    if user is None:
        return render(request, "login.html", status=401, next=target, name=name,
                      error="用户名或密码不对，请重新输入。", no_users=False)
    ctx.limiter.succeeded(name, address, attempt.ticket)
    log.info("登录：%s（%s），来自 %s", user.name, user.role, address)
    start_session(request, user)
    return redirect(target)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not csrf_ok(request.session, token if isinstance(token, str) else None):
        raise csrf_error()
    user = session_user(request)
    request.session.clear()
    if user is not None:
        # Ends this cookie on the server too (and the user's other sessions): a copy kept elsewhere is dead.
        await run_in_threadpool(ctx_of(request).users.end_sessions, user.name)
        log.info("退出登录：%s", user.name)
    return redirect("/login")


@router.get("/")
def home(request: Request) -> Response:
    require_user(request)
    return redirect("/today")

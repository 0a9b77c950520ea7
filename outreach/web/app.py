"""The dashboard app factory: sessions, security headers, the Origin check and error pages."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from outreach import labels
from outreach.audio.recordings import MAX_RECORDING_BYTES
from outreach.config import Config
from outreach.db import open_migrated
from outreach.errors import OutreachError
from outreach.web import (
    calendar_pages,
    confirm_pages,
    county_pages,
    editing_pages,
    login_pages,
    metrics_api,
    review_pages,
    sheet_pages,
    station_api,
    station_pages,
    today_pages,
    village_import_pages,
)
from outreach.web.auth import USERS_FILE, LoginLimiter, UserStore, load_secret
from outreach.web.page_kit import (
    TZ, Context, LoginRequired, PageError, cross_site_error, ctx_of, redirect, render, same_origin,
)

log = logging.getLogger("outreach.web")

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "outreach_session"
SESSION_MAX_AGE_S = 12 * 3600
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
       "media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HSTS = "max-age=31536000"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _error_page(request: Request, status: int, title: str, message: str, fix: str = "",
                headers: dict[str, str] | None = None, *, stateless: bool = False) -> Response:
    try:
        response = render(request, "error.html", status=status, stateless=stateless, title=title, message=message,
                          fix=fix)
    except Exception:  # the error page itself must never fail
        log.exception("错误页面本身出错了")
        response = HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{status}</title><p>{status}",
                                status_code=status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


_HTTP_TITLES = {
    400: ("请求有误", "请求的内容不完整或格式不对。", "请返回上一页检查后重试。"),
    401: ("请先登录", "这个操作需要先登录。", "请登录后重试。"),
    403: ("没有权限", "您没有权限进行这个操作。", "请联系管理员。"),
    404: ("页面不存在", "没有这个页面。", "请从上方菜单进入需要的页面。"),
    405: ("操作方式不对", "这个地址不支持这种操作。", "请从页面上的按钮或链接进入。"),
    413: ("内容太大", "提交的内容太大。", "请缩短后重试。"),
}


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"/login?next={quote(target, safe='')}")
        return _error_page(request, 401, "请先登录", "登录已过期或尚未登录，操作没有执行。", "请重新登录后再提交。")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return _error_page(request, exc.status, exc.title, exc.message, exc.fix, exc.headers)

    @app.exception_handler(OutreachError)
    async def _outreach_error(request: Request, exc: OutreachError) -> Response:
        log.info("已拒绝 %s %s：%s", request.method, request.url.path, exc)
        return _error_page(request, 400, "无法完成", "系统检查发现问题，操作没有执行：", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title, message, fix = _HTTP_TITLES.get(exc.status_code, ("出错了", "请求没有完成。", "请返回重试。"))
        return _error_page(request, exc.status_code, title, message, fix, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error_page(request, 400, "请求有误", "请求参数的格式不对。", "请从页面上的链接或表单重新进入。")

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # Date arithmetic past year 1 or 9999 on a value the user gave: their input, not our fault.
        log.info("%s %s 的日期或数字超出范围：%s", request.method, request.url.path, exc)
        return _error_page(request, 400, "请求有误", "日期或数字超出了能处理的范围。", "请改用 2000 年到 2099 年之间的日期。")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("处理 %s %s 时出现意外错误", request.method, request.url.path, exc_info=exc)
        return _error_page(request, 500, "系统内部错误",
                           "服务器处理这个请求时出了错，已记录在日志里。数据没有被修改。",
                           "请稍后重试；如果一直出现，请把出错的时间和页面告诉技术人员。")


def _security_headers(app: FastAPI, *, https_only: bool) -> None:
    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if https_only:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _origin_check(app: FastAPI) -> None:
    # Runs inside the session middleware (added before it), so the refusal page can render.
    @app.middleware("http")
    async def _origin(request: Request, call_next: Callable[[Request], Any]) -> Response:
        # /api/ is for village stations, which send bearer tokens, not cookies: nothing to forge there.
        if (request.method not in _SAFE_METHODS and not request.url.path.startswith("/api/")
                and not same_origin(request, https_only=ctx_of(request).https_only)):
            log.warning("已拒绝来自别的网站的 %s %s（Origin %r，Host %r）", request.method, request.url.path,
                        request.headers.get("origin"), request.headers.get("host"))
            # Stateless: a cross-site POST arrives without the (SameSite=Lax) cookie, and a
            # fresh session set here would log the user out.
            exc = cross_site_error()
            return _error_page(request, exc.status, exc.title, exc.message, exc.fix, stateless=True)
        response: Response = await call_next(request)
        return response


MAX_FORM_BYTES = 1_000_000  # every dashboard form is a few KB; more is a mistake or an attack
# The upload forms that take files, by path, and their larger caps (the file and a little form around it).
UPLOAD_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"/scripts/[a-z0-9-]+/recording"), MAX_RECORDING_BYTES + 100_000),
)


def body_cap(path: str) -> int:
    """The largest body a dashboard POST to `path` may carry."""
    return next((cap for pattern, cap in UPLOAD_LIMITS if pattern.fullmatch(path)), MAX_FORM_BYTES)


class FormBodyLimit:
    """Pure ASGI: refuse (413) a dashboard request body over its cap (`body_cap`), by Content-Length or while read.

    The station API (/api/) caps its own bodies with per-endpoint limits and JSON replies.
    A body without a length is read up to the cap here and replayed to the app.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > cap:
                await self._refuse(send, cap)
                return
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > cap:
                await self._refuse(send, cap)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send: Callable[..., Any], cap: int = MAX_FORM_BYTES) -> None:
        body = f"内容太大：提交的内容超过 {cap // 1000} KB，没有保存。请删减后重新提交。\n".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters["local"] = lambda value, fmt="%Y-%m-%d %H:%M": (
        value.astimezone(TZ).strftime(fmt) if isinstance(value, datetime) else ("" if value is None else value))
    env.filters["weekday"] = lambda d: f"周{labels.WEEKDAY[d.weekday()]}"
    env.filters["minutes"] = lambda s: f"{int(round(s)) // 60}分{int(round(s)) % 60:02d}秒"
    env.filters["number"] = lambda n: f"{int(n or 0):,}"
    return templates


def shanghai_now() -> datetime:
    """The real clock, in Asia/Shanghai time (the default for create_app)."""
    return datetime.now(TZ)


def _https_only_setting(config: Config) -> bool:
    web = getattr(config, "web", None)  # [web] https_only in outreach.toml
    return bool(getattr(web, "https_only", False))


def create_app(config: Config, *, now: Callable[[], datetime] | None = None,
               engine: Engine | None = None, https_only: bool | None = None,
               slot_starts: Path | None = None) -> FastAPI:
    """The dashboard for one workspace.

    `now` is the clock (timezone-aware; default: Asia/Shanghai wall time). The
    database is opened (and migrated to the newest schema) here; pass `engine`
    to reuse one. `https_only` (default: `[web] https_only` in outreach.toml)
    marks the session cookie Secure and sends HSTS, for a dashboard behind HTTPS.
    `slot_starts` is a rehearsal file moving chosen station slots (outreach.stations.read_slot_starts).
    Raises OutreachError if the database or secret cannot be set up.
    """
    if engine is None:
        engine = open_migrated(config.resolved_database_url())
    secure = _https_only_setting(config) if https_only is None else https_only
    ctx = Context(
        config=config, engine=engine, users=UserStore(config.workspace / USERS_FILE),
        limiter=LoginLimiter(), templates=_templates(), now=now or shanghai_now, https_only=secure,
        slot_starts=slot_starts,
    )
    app = FastAPI(title="outreach", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    _install_handlers(app)
    _origin_check(app)
    _security_headers(app, https_only=secure)
    app.add_middleware(SessionMiddleware, secret_key=load_secret(config.workspace), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=secure)
    app.add_middleware(FormBodyLimit)  # outermost: nothing reads an oversized body
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # Order matters where paths overlap: editing_pages' /campaigns/new before county_pages' /campaigns/{id}.
    for module in (login_pages, today_pages, review_pages, calendar_pages, editing_pages, county_pages,
                   station_pages, station_api, confirm_pages, metrics_api, sheet_pages,
                   village_import_pages):
        app.include_router(module.router)
    return app

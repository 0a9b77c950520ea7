"""The dashboard app factory: sessions, security headers, error pages and shared request helpers."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from outreach.config import TIMEZONE, Config
from outreach.errors import OutreachError
from outreach.web import labels
from outreach.web.auth import USERS_FILE, LoginLimiter, User, UserStore, csrf_ok, load_secret, new_csrf_token

log = logging.getLogger("outreach.web")

HERE = Path(__file__).resolve().parent
TZ = ZoneInfo(TIMEZONE)
SESSION_COOKIE = "outreach_session"
SESSION_MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf_token"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class PageError(Exception):
    """A request the dashboard refuses, shown as a Chinese error page with `status`."""

    def __init__(self, status: int, title: str, message: str, fix: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {title}: {message}")
        self.status, self.title, self.message, self.fix = status, title, message, fix
        self.headers = headers or {}


class LoginRequired(Exception):
    """The request needs a logged-in user and has none."""


def bad_request(message: str, fix: str) -> PageError:
    """A 400 page: what was wrong with the input and how to fix it."""
    return PageError(400, "请求有误", message, fix)


def not_found(what: str, value: str, fix: str) -> PageError:
    """A 404 page for an unknown campaign, village, market, script or file."""
    return PageError(404, "找不到", f"没有{what}「{value}」。", fix)


@dataclass
class Context:
    """What every route needs, kept on app.state."""

    config: Config
    engine: Engine
    users: UserStore
    limiter: LoginLimiter
    templates: Jinja2Templates
    now: Callable[[], datetime]

    def local_now(self) -> datetime:
        """The injected clock, in Asia/Shanghai time."""
        now = self.now()
        if now.tzinfo is None:
            raise ValueError("the web clock must return timezone-aware datetimes")
        return now.astimezone(TZ)

    def today(self) -> date:
        return self.local_now().date()


def ctx_of(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = new_csrf_token()
        request.session["csrf"] = token
    return token


def session_user(request: Request) -> User | None:
    """The logged-in user, re-checked against users.json on every request."""
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    user = ctx_of(request).users.get(name)
    # A changed password (or a removed and re-added user) ends old sessions.
    if user is None or request.session.get("pw") != password_stamp(user):
        request.session.pop("user", None)
        return None
    return user


def password_stamp(user: User) -> str:
    """A short fingerprint of the user's hash, kept in the session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def require_user(request: Request) -> User:
    """The logged-in user; raises LoginRequired (redirect to the login page) if there is none."""
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def post_form(request: Request, *, editor: bool) -> tuple[User, FormData]:
    """The user and form of a POST: logged in, CSRF token valid and, if `editor`, an editor.

    Raises LoginRequired, or PageError 403 for a missing/wrong token or a viewer.
    """
    user = require_user(request)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not csrf_ok(request.session, token if isinstance(token, str) else None):
        raise csrf_error()
    if editor and not user.can_edit:
        raise PageError(403, "没有权限",
                        f"您的账号「{user.name}」是查看员，只能查看，不能确认广播、登记发放或批准广播稿。",
                        "如需修改数据，请联系管理员用 outreach user add 为您开通编辑员账号。")
    return user, form


def csrf_error() -> PageError:
    return PageError(403, "表单已失效",
                     "表单缺少安全校验码，或校验码已过期（例如重新登录后仍使用旧页面）。",
                     "请返回上一页，刷新后重新提交。")


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render a zh-CN template with the user, CSRF token, flash messages and labels filled in."""
    ctx = ctx_of(request)
    has_session = "session" in request.scope  # not for errors caught outside the session middleware
    user = values.pop("user", None) or (session_user(request) if has_session else None)
    flashes = request.session.pop("flash", []) if has_session and "flash" in request.session else []
    response = ctx.templates.TemplateResponse(request, template, {
        "user": user, "csrf": csrf_token(request) if has_session else "", "flashes": flashes,
        "today": ctx.today(), "L": labels, **values,
    }, status_code=status)
    return response  # type: ignore[no-any-return]


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """Show `message` once on the next page rendered for this session."""
    request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": message}][-5:]


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, schemes) becomes '/'."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 32 for ch in target):
        return "/"
    return target


def _error_page(request: Request, status: int, title: str, message: str, fix: str = "",
                headers: dict[str, str] | None = None) -> Response:
    try:
        response = render(request, "error.html", status=status, title=title, message=message, fix=fix)
    except Exception:  # the error page itself must never fail
        log.exception("error page failed")
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
        log.info("refused %s %s: %s", request.method, request.url.path, exc)
        return _error_page(request, 400, "无法完成", "系统检查发现问题，操作没有执行：", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title, message, fix = _HTTP_TITLES.get(exc.status_code, ("出错了", "请求没有完成。", "请返回重试。"))
        return _error_page(request, exc.status_code, title, message, fix, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error_page(request, 400, "请求有误", "请求参数的格式不对。", "请从页面上的链接或表单重新进入。")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error_page(request, 500, "系统内部错误",
                           "服务器处理这个请求时出了错，已记录在日志里。数据没有被修改。",
                           "请稍后重试；如果一直出现，请把出错的时间和页面告诉技术人员。")


def _security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


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


def create_app(config: Config, *, now: Callable[[], datetime] | None = None,
               engine: Engine | None = None) -> FastAPI:
    """The dashboard for one workspace.

    `now` is the clock (timezone-aware; default: Asia/Shanghai wall time). The
    database is opened (and migrated to the newest schema) here; pass `engine`
    to reuse one. Raises OutreachError if the database or secret cannot be set up.
    """
    from outreach.db import make_engine, upgrade
    from outreach.web import routes

    if engine is None:
        engine = make_engine(config.resolved_database_url())
        upgrade(engine)
    ctx = Context(
        config=config, engine=engine, users=UserStore(config.workspace / USERS_FILE),
        limiter=LoginLimiter(), templates=_templates(), now=now or shanghai_now,
    )
    app = FastAPI(title="outreach", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    _install_handlers(app)
    _security_headers(app)
    app.add_middleware(SessionMiddleware, secret_key=load_secret(config.workspace), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=False)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(routes.router)
    return app

"""Page helpers shared by the app factory, the routes and the parameter checks: errors, the session user, CSRF, flash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.datastructures import FormData

from outreach import labels
from outreach.authoring.review import diff
from outreach.config import TZ, Config
from outreach.web.auth import LoginLimiter, User, UserStore, csrf_ok, new_csrf_token
from outreach.web.permissions import ACTION_LABEL, Action, action_of, roles_for

CSRF_FIELD = "csrf_token"


class PageError(Exception):
    """A request the dashboard refuses, shown as a Chinese error page with `status`."""

    def __init__(self, status: int, title: str, message: str, fix: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {title}: {message}")
        self.status, self.title, self.message, self.fix = status, title, message, fix
        self.headers = headers or {}


class LoginRequired(Exception):
    """The request needs a logged-in user and has none."""


def stale_diff(opened: str, now: str) -> str:
    """How a file (or one entry of it) changed since a form was opened: the script editor's unified diff,
    shown by the `stale_diff` macro of templates/_diff.html. Empty when nothing differs."""
    def norm(text: str) -> str:
        text = text.replace("\r\n", "\n")
        return text if not text or text.endswith("\n") else text + "\n"

    return diff(norm(opened), norm(now), "您打开时", "现在的文件")


def bad_request(message: str, fix: str) -> PageError:
    """A 400 page: what was wrong with the input and how to fix it."""
    return PageError(400, "请求有误", message, fix)


def not_found(what: str, value: str, fix: str) -> PageError:
    """A 404 page for an unknown campaign, village, market, script or file."""
    return PageError(404, "找不到", f"没有{what}「{value}」。", fix)


T = TypeVar("T")


def found(value: T | None, what: str, key: str, fix: str) -> T:
    """`value`, or a 404 page saying which `what` (`key`) does not exist and `fix`."""
    if value is None:
        raise not_found(what, key, fix)
    return value


@dataclass
class Context:
    """What every route needs, kept on app.state."""

    config: Config
    engine: Engine
    users: UserStore
    limiter: LoginLimiter
    templates: Jinja2Templates
    now: Callable[[], datetime]
    https_only: bool = False
    slot_starts: Path | None = None  # a rehearsal's moved slot starts for village stations (serve --slot-starts)

    def local_now(self) -> datetime:
        """The injected clock, in Asia/Shanghai time."""
        now = self.now()
        if now.tzinfo is None:
            raise ValueError("网页的时钟必须返回带时区的时间（timezone-aware datetime）")
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
    """The logged-in user, re-checked against users.json on every request.

    The session holds the user's password stamp and session version; a changed
    password, a logout (which bumps the version) or a removed user ends it at once,
    whatever the cookie says.
    """
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    user = ctx_of(request).users.get(name)
    if (user is None or request.session.get("pw") != password_stamp(user)
            or request.session.get("sv") != user.session_version):
        request.session.pop("user", None)
        return None
    return user


def start_session(request: Request, user: User) -> None:
    """Log `user` in: a new session, so nothing from before (a planted token, say) carries over."""
    request.session.clear()
    request.session.update({"user": user.name, "pw": password_stamp(user), "sv": user.session_version,
                            "csrf": new_csrf_token()})


def password_stamp(user: User) -> str:
    """A short fingerprint of the user's hash, kept in the session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def require_user(request: Request) -> User:
    """The logged-in user; raises LoginRequired (redirect to the login page) if there is none."""
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    return user


def signed_in(request: Request) -> tuple[User, Context]:
    """How a page starts: the logged-in user (else LoginRequired) and the request's context."""
    return require_user(request), ctx_of(request)


def refusal(user: User, action: Action, cannot: str = "", fix: str = "") -> PageError:
    """The 403 page for `user`, whose role may not do `action`: their role, and who may."""
    roles = [labels.ROLE[r.value] for r in roles_for(action)]
    who = "、".join(roles[:-1]) + "或" + roles[-1] if len(roles) > 1 else "".join(roles)
    what = cannot or (f"{ACTION_LABEL[action]}只有{who}能做。" if roles else f"{ACTION_LABEL[action]}不对任何角色开放。")
    return PageError(403, "没有权限", f"您的账号「{user.name}」是{labels.label(labels.ROLE, user.role)}，{what}",
                     fix or "请联系管理员调整账号角色。")


def require_role(request: Request, action: Action, cannot: str = "", fix: str = "") -> User:
    """The logged-in user if their role may do `action` (permissions.ALLOWED); else PageError 403.

    `cannot` words the refusal for this page ("不能发送紧急插播。"); by default it says who may.
    """
    user = require_user(request)
    if not user.may(action):
        raise refusal(user, action, cannot, fix)
    return user


def require_editor(request: Request, cannot: str, fix: str = "请联系管理员开通编辑员账号。") -> User:
    """The logged-in user if their role may do the editor's work (drafting); else PageError 403 with what they `cannot` do."""
    return require_role(request, Action.DRAFT_SCRIPT, cannot, fix)


async def post_form(request: Request, *, editor: bool = True) -> tuple[User, FormData]:
    """The user and form of a POST: logged in, CSRF token valid, and the role allowed the route's action.

    The action is the route's entry in permissions.FORM_ROUTES; a route not listed there is refused
    for everyone. `editor` is ignored (kept for older call sites): the table decides.
    Raises LoginRequired, or PageError 403 for a missing/wrong token or a role not allowed.
    """
    del editor
    user = require_user(request)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not csrf_ok(request.session, token if isinstance(token, str) else None):
        raise csrf_error()
    route = getattr(request.scope.get("route"), "path", "")
    action = action_of(route)
    if action is None:
        raise PageError(403, "没有权限", f"操作 {route or request.url.path} 没有登记在权限表里，系统不执行它。",
                        "请把这个情况告诉技术人员：要在 outreach/web/permissions.py 的 FORM_ROUTES 里登记。")
    if not user.may(action):
        fix = ("如需修改数据，请联系管理员用 outreach user add 为您开通编辑员账号。" if not user.can_edit
               else "请联系管理员调整账号角色。")
        raise refusal(user, action, fix=fix)
    return user, form


def csrf_error() -> PageError:
    return PageError(403, "表单已失效",
                     "表单缺少安全校验码，或校验码已过期（例如重新登录后仍使用旧页面）。",
                     "请返回上一页，刷新后重新提交。")


def render(request: Request, template: str, status: int = 200, *, stateless: bool = False,
           **values: Any) -> HTMLResponse:
    """Render a zh-CN template with the user, CSRF token, flash messages and labels filled in.

    `stateless` leaves the session alone (no new CSRF token, no flash consumed), so
    the response sets no cookie: for refusing requests that came from another site.
    """
    ctx = ctx_of(request)
    # Not for errors caught outside the session middleware.
    has_session = "session" in request.scope and not stateless
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




def _origin_parts(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None if `netloc` is not a valid host[:port]."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def same_origin(request: Request, *, https_only: bool) -> bool:
    """True when a state-changing request comes from the dashboard's own pages.

    Browsers send Origin with every POST; it must name this server (the Host the
    browser asked for, over https when `https_only`). Without Origin, Sec-Fetch-Site
    must not say another site. The CSRF token is still checked after this.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    host = request.headers.get("host", "")
    scheme = "https" if https_only else request.url.scheme
    theirs = urlsplit(origin)
    if theirs.scheme not in ("http", "https") or theirs.path or theirs.query:
        return False  # includes the opaque origin "null"
    mine = _origin_parts(scheme, host)
    return mine is not None and _origin_parts(theirs.scheme, theirs.netloc) == mine


def cross_site_error() -> PageError:
    return PageError(403, "请求来源不对",
                     "这个提交来自别的网站，不是本系统的页面，操作没有执行。",
                     "请直接打开本系统的网址，从页面上的按钮提交；如果系统放在反向代理后面，代理要把原来的 Host 传过来。")


def attachment(filename: str, fallback: str) -> dict[str, str]:
    """The Content-Disposition header of a download named `filename` (Chinese is fine).

    RFC 6266/5987: `filename*` carries the UTF-8 name; `fallback` (ASCII letters, digits, `._-`)
    is for a client that cannot read it.
    """
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in fallback) or "download"
    return {"Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"}

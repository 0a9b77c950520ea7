"""Who may do what on the dashboard: the roles, the actions, one table between them, and each form route's action.

Every guard reads this table: `User.may` (and `can_edit`/`can_review`/`can_admin`, which the
templates use), `pages.require_role` for pages and `pages.post_form` for every POST, which looks
the route up in FORM_ROUTES. A POST route missing from FORM_ROUTES is refused for everyone
(fail closed), and tests/test_security_roles.py fails until it has an entry. GET pages each call
require_user; the few GET routes without a login session (station API, QR phone page, /metrics) are in
OPEN_GET_ROUTES with what guards them instead, and tests/web/test_status_pages.py fails for any other.

What no role may do in the browser: define a player command. Commands live in outreach.toml
(`[deliver] player`, `[players]`), which no form writes; the village form only picks a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = ["Role", "Action", "ALLOWED", "FORM_ROUTES", "OPEN_ROUTES", "OPEN_GET_ROUTES", "ACTION_LABEL", "allows",
           "roles_for", "action_of"]


class Role(StrEnum):
    """What a dashboard user may do: viewers read; editors draft and record; reviewers also approve; admins also manage users."""

    VIEWER = "viewer"
    EDITOR = "editor"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Action(StrEnum):
    """Something a dashboard user does."""

    VIEW = "view"  # every page, report, plan, a pack's files
    EXPORT_PACK = "export_pack"  # a pack ZIP: logged as exported, with a fresh QR confirmation link
    CONFIRM_BROADCAST = "confirm_broadcast"  # confirm an exported program aired
    LOG_HANDOUT = "log_handout"  # log leaflets handed out at a market
    DRAFT_SCRIPT = "draft_script"  # draft, edit and try-listen to a script
    REVIEW_SCRIPT = "review_script"  # approve or reject a script (never one's own)
    EDIT_CAMPAIGN = "edit_campaign"  # create and edit campaigns (campaigns.yaml)
    EDIT_VILLAGE = "edit_village"  # a village's slot times, speaker kind and *named* player (county.yaml)
    SEND_ALERT = "send_alert"  # send an approved script to village stations at once
    MANAGE_USERS = "manage_users"  # add and remove users, change roles
    IMPORT_VILLAGES = "import_villages"  # the county's village list from Excel into county.yaml (adds townships too)


_EVERYONE = frozenset(Role)
_EDITORS = frozenset({Role.EDITOR, Role.REVIEWER, Role.ADMIN})
_REVIEWERS = frozenset({Role.REVIEWER, Role.ADMIN})
_ADMINS = frozenset({Role.ADMIN})

ALLOWED: Mapping[Action, frozenset[Role]] = MappingProxyType({
    Action.VIEW: _EVERYONE,
    Action.EXPORT_PACK: _EDITORS,
    Action.CONFIRM_BROADCAST: _EDITORS,
    Action.LOG_HANDOUT: _EDITORS,
    Action.DRAFT_SCRIPT: _EDITORS,
    Action.REVIEW_SCRIPT: _REVIEWERS,
    Action.EDIT_CAMPAIGN: _EDITORS,
    Action.EDIT_VILLAGE: _EDITORS,
    Action.SEND_ALERT: _EDITORS,
    Action.MANAGE_USERS: _ADMINS,
    Action.IMPORT_VILLAGES: _ADMINS,
})
"""Action -> the roles allowed to do it. The one place a role's rights are written."""

ACTION_LABEL: Mapping[Action, str] = MappingProxyType({
    Action.VIEW: "查看",
    Action.EXPORT_PACK: "打包下载节目包（记为已导出，并生成扫码确认链接）",
    Action.CONFIRM_BROADCAST: "确认广播",
    Action.LOG_HANDOUT: "登记发放",
    Action.DRAFT_SCRIPT: "拟稿、修改和试听广播稿",
    Action.REVIEW_SCRIPT: "签发或退回广播稿",
    Action.EDIT_CAMPAIGN: "修改宣传活动",
    Action.EDIT_VILLAGE: "修改村庄设置",
    Action.SEND_ALERT: "发送紧急插播",
    Action.MANAGE_USERS: "管理用户",
    Action.IMPORT_VILLAGES: "导入村庄名单",
})

FORM_ROUTES: Mapping[str, Action] = MappingProxyType({
    "/villages/{village_id}/confirm": Action.CONFIRM_BROADCAST,
    "/records/import": Action.CONFIRM_BROADCAST,
    "/markets/{market_id}/handouts": Action.LOG_HANDOUT,
    "/scripts/save": Action.DRAFT_SCRIPT,
    "/scripts/{script_id}/preview": Action.DRAFT_SCRIPT,
    "/scripts/{script_id}/recording": Action.DRAFT_SCRIPT,
    "/scripts/{script_id}/approve": Action.REVIEW_SCRIPT,
    "/scripts/{script_id}/reject": Action.REVIEW_SCRIPT,
    "/campaigns/save": Action.EDIT_CAMPAIGN,
    "/villages/{village_id}/edit": Action.EDIT_VILLAGE,
    "/alerts": Action.SEND_ALERT,
    "/users": Action.MANAGE_USERS,
    "/import/villages": Action.IMPORT_VILLAGES,
    "/import/villages/confirm": Action.IMPORT_VILLAGES,
})
"""Each POST route of the dashboard (its path template) -> the action it does; post_form checks it."""

OPEN_ROUTES: Mapping[str, str] = MappingProxyType({
    "/login": "登录本身：表单校验码和登录次数限制",
    "/logout": "只结束自己的会话：表单校验码",
    "/api/station/events": "村广播站上传播出记录：每个播放盒自己的令牌，不用登录会话",
    "/c/{token}": "村里用手机扫U盘包的二维码确认播出：令牌（库里只存哈希）只对应这个村导出的节目和日期，"
                  "会过期、可停用（outreach confirm-link revoke），每个令牌每分钟限次；表单校验码",
})
"""POST routes no role guards, and what guards them instead."""

OPEN_GET_ROUTES: Mapping[str, str] = MappingProxyType({
    "/login": "登录页本身",
    "/c/{token}": "村里用手机扫码确认播出：令牌只对应这个村导出的节目和日期，会过期、可停用",
    "/api/station/manifest": "村广播站下载节目单：每个播放盒自己的令牌，不用登录会话",
    "/api/station/blobs/{sha256}": "村广播站下载节目录音：每个播放盒自己的令牌，不用登录会话",
    "/api/station/time": "村广播站对时：只有服务器时间，不含任何数据",
    "/metrics": "Prometheus 监控指标：outreach.toml 的 [web] metrics_token 令牌（请求头 `Authorization: Bearer`），"
                "没设置令牌时回答 404",
})
"""GET routes that need no login session, and what guards them instead. Every other GET route is a page
that calls pages.require_user first (tests/web/test_status_pages.py walks them all)."""


def allows(role: Role | str, action: Action) -> bool:
    """Whether `role` may do `action` (unknown roles may do nothing)."""
    return role in ALLOWED.get(action, frozenset())


def roles_for(action: Action) -> list[Role]:
    """The roles allowed to do `action`, in Role order (for messages)."""
    return [r for r in Role if r in ALLOWED.get(action, frozenset())]


def action_of(route_path: str) -> Action | None:
    """The action of a POST route (its path template, e.g. /villages/{village_id}/edit); None if not listed."""
    return FORM_ROUTES.get(route_path)

"""CLI: `serve` (the web dashboard) and `user add/list/remove` (its accounts)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from outreach.cli.base import Workspace, cli, echo_json, warn, with_workspace
from outreach.cli.passwords import PASSWORD_STDIN_HELP, read_password
from outreach.config import TIMEZONE

# The roles of outreach.web.auth.Role, spelled out so the CLI starts without loading the web app
# (tests/test_cli_language.py checks they match).
ROLE_NAMES = ("viewer", "editor", "reviewer", "admin")


def _store(ws: Workspace):  # type: ignore[no-untyped-def]
    from outreach.web.auth import USERS_FILE, UserStore

    return UserStore(ws.config.workspace / USERS_FILE)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="监听地址；0.0.0.0 可让局域网里的其他电脑访问。")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP 端口。")
@click.option("--https-only/--no-https-only", default=None,
              help="在 HTTPS 反向代理后面时使用：Secure 会话 Cookie 和 HSTS（默认：outreach.toml 的 [web] https_only）。")
@click.option("--slot-starts", type=click.Path(dir_okay=False, path_type=Path), hidden=True,
              help="演练用：JSON 文件，把某些村某天某时段的开播时间改到文件里写的时刻（村广播站的节目单随之改变）。")
@with_workspace
def serve(host: str, port: int, https_only: bool | None, slot_starts: Path | None, ws: Workspace) -> None:
    """为本工作区运行网页管理后台（中文）。"""
    import uvicorn

    from outreach.errors import OutreachError
    from outreach.planning.workspace import load, open_database
    from outreach.web import create_app

    config = ws.config
    try:
        engine = open_database(load(config))  # migrate, and mirror the registry into the database
    except OutreachError as exc:
        warn(f"村镇名录没有载入数据库（{exc}）；页面只显示数据库里已有的内容")
        engine = None
    app = create_app(config, engine=engine, https_only=https_only, slot_starts=slot_starts)
    if not _store(ws).users():
        warn("还没有用户，谁都无法登录；请先添加一个：\n"
             f"  outreach user add 姓名 --role admin -w {config.workspace}")
    secure = app.state.ctx.https_only
    click.echo(f"管理后台：http://{host}:{port}/（按 Ctrl+C 停止）"
               + ("；Cookie 为 Secure，请通过 HTTPS 代理打开" if secure else ""), err=True)
    # uvicorn speaks English at info level (start-up lines, access log); ours is the Chinese line above.
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


@cli.group("user")
def user() -> None:
    """管理后台账号（保存在 users.json，密码用 argon2 加密存储）。"""


@user.command("add")
@click.argument("name", metavar="姓名")
@click.option("--role", type=click.Choice(ROLE_NAMES), required=True,
              help="viewer：只读；editor：还能拟稿、确认播出、登记发放；reviewer：还能审核批准稿件；"
                   "admin：还能管理用户。")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
@with_workspace
def user_add(name: str, role: str, password_stdin: bool, ws: Workspace) -> None:
    """添加后台用户（姓名）；不加 --password-stdin 时会要求输入两次密码。"""
    from zoneinfo import ZoneInfo

    password = read_password(from_stdin=password_stdin, confirm=True, prompt="密码",
                             example=f"outreach user add {name} --role {role} --password-stdin < 密码文件")
    added = _store(ws).add(name, role, password, now=datetime.now(ZoneInfo(TIMEZONE)))
    click.echo(f"已添加：{added.name}（{added.role}）")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出，而不是表格。")
@with_workspace
def user_list(as_json: bool, ws: Workspace) -> None:
    """列出后台用户和角色（从不显示密码哈希）。"""
    users = _store(ws).users()
    rows = [{"name": u.name, "role": str(u.role), "created": u.created} for u in users]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("还没有用户；请用 `outreach user add 姓名 --role admin` 添加", err=True)
    for r in rows:
        click.echo(f"{r['name']}\t{r['role']}\t{r['created']}")


@user.command("remove")
@click.argument("name", metavar="姓名")
@with_workspace
def user_remove(name: str, ws: Workspace) -> None:
    """删除这个后台用户；其已登录的会话在下次点击时失效。"""
    _store(ws).remove(name)
    click.echo(f"已删除：{name}")

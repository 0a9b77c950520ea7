"""CLI: `serve` (the web dashboard) and `user add/list/remove` (its accounts)."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace
from outreach.config import TIMEZONE


def _store(ws: Workspace):  # type: ignore[no-untyped-def]
    from outreach.web.auth import USERS_FILE, UserStore

    return UserStore(ws.config.workspace / USERS_FILE)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets other PCs on the LAN connect.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@with_workspace
def serve(host: str, port: int, ws: Workspace) -> None:
    """Run the web dashboard (zh-CN) for this workspace."""
    import uvicorn

    from outreach.errors import OutreachError
    from outreach.web import create_app
    from outreach.workspace import load, open_database

    config = ws.config
    try:
        engine = open_database(load(config))  # migrate, and mirror the registry into the database
    except OutreachError as exc:
        click.echo(f"warning: the registry was not loaded into the database ({exc}); "
                   "pages show what the database already holds", err=True)
        engine = None
    app = create_app(config, engine=engine)
    if not _store(ws).users():
        click.echo("warning: no users yet, so nobody can log in; create one with:\n"
                   f"  outreach user add NAME --role editor -w {config.workspace}", err=True)
    click.echo(f"dashboard: http://{host}:{port}/  (Ctrl+C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


@cli.group("user")
def user() -> None:
    """Manage dashboard accounts (stored in users.json, passwords hashed with argon2)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor"]), required=True,
              help="viewer: read only; editor: also confirm broadcasts, log handouts, approve scripts.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_workspace
def user_add(name: str, role: str, password_stdin: bool, ws: Workspace) -> None:
    """Add the dashboard user NAME; the password is asked for twice unless --password-stdin."""
    from zoneinfo import ZoneInfo

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    added = _store(ws).add(name, role, password, now=datetime.now(ZoneInfo(TIMEZONE)))
    click.echo(f"added: {added.name} ({added.role})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_workspace
def user_list(as_json: bool, ws: Workspace) -> None:
    """List dashboard users and their roles (never the password hashes)."""
    users = _store(ws).users()
    rows = [{"name": u.name, "role": str(u.role), "created": u.created} for u in users]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no users; add one with `outreach user add NAME --role editor`", err=True)
    for r in rows:
        click.echo(f"{r['name']}\t{r['role']}\t{r['created']}")


@user.command("remove")
@click.argument("name")
@with_workspace
def user_remove(name: str, ws: Workspace) -> None:
    """Remove the dashboard user NAME; their open sessions end at their next click."""
    _store(ws).remove(name)
    click.echo(f"removed: {name}")

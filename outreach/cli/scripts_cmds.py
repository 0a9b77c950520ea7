"""`outreach scripts`: check, list and approve the loudspeaker script library."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace
from outreach.config import TIMEZONE
from outreach.scripts import approve_script, check_library, script_path


@cli.group("scripts")
def scripts() -> None:
    """Check, list and approve the scripts in audio_scripts/."""


@scripts.command("check")
@with_workspace
def check(ws: Workspace) -> None:
    """Validate every script; list every problem and exit 1 if there is any."""
    found, problems = check_library(ws.config.scripts_dir, max_chars=ws.config.render.max_chars)
    if problems:
        for problem in problems:
            click.echo(str(problem))
        files = len({p.path for p in problems})
        click.echo(f"error: {len(problems)} problem(s) in {files} file(s); fix them and run again", err=True)
        raise SystemExit(1)
    approved = sum(s.approved for s in found)
    click.echo(f"ok: {len(found)} scripts ({approved} approved, {len(found) - approved} draft)")


@scripts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@with_workspace
def list_scripts(ws: Workspace, as_json: bool) -> None:
    """List the valid scripts: id, topic, status and title."""
    found, problems = check_library(ws.config.scripts_dir, max_chars=ws.config.render.max_chars)
    rows = [{"id": s.id, "topic": s.topic, "status": s.status, "title": s.title} for s in found]
    if as_json:
        echo_json(rows)
    else:
        width = max((len(r["id"]) for r in rows), default=2)
        for r in rows:
            click.echo(f"{r['id']:<{width}}  {r['topic']:<10}  {r['status']:<8}  {r['title']}")
    if problems:
        click.echo(f"warning: {len(problems)} problem(s) left some files out; run `outreach scripts check`", err=True)


@scripts.command("approve")
@click.argument("script_id", metavar="ID")
@click.option("--by", "by", required=True, help="Name of the reviewer who approves the text.")
@click.option("--on", "on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Approval date, YYYY-MM-DD.  [default: today in Asia/Shanghai]")
@with_workspace
def approve(ws: Workspace, script_id: str, by: str, on: datetime | None) -> None:
    """Mark the draft script ID approved for air."""
    day = on.date() if on is not None else datetime.now(ZoneInfo(TIMEZONE)).date()
    script = approve_script(script_path(ws.config.scripts_dir, script_id), by=by, on=day)
    click.echo(f"approved: {script.id} by {script.approved_by} on {script.approved_on}")

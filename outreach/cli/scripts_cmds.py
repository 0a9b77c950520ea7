"""`outreach scripts`: check, list and approve the loudspeaker script library."""

from __future__ import annotations

import difflib
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from outreach.cli.base import ERROR, Workspace, cli, cli_date, county_today, echo_json, warn, with_workspace
from outreach.config import TIMEZONE
from outreach.content.scripts import approve_script, check_library, script_lock, script_path
from outreach.content.textnorm import load_lexicon
from outreach.errors import ScriptError, TextNormError
from outreach.labels import SCRIPT_STATUS, TOPIC, label

APPROVER_ROLES = ("reviewer", "admin")


def _pad(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns (a Hanzi takes two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


@cli.group("scripts")
def scripts() -> None:
    """检查、列出和批准 audio_scripts/ 里的稿件。"""


@scripts.command("check")
@with_workspace
def check(ws: Workspace) -> None:
    """检查每个稿件；列出所有问题，有问题时以 1 退出。"""
    found, problems = check_library(ws.config.scripts_dir, max_chars=ws.config.render.max_chars)
    for script in found:
        if script.review_note:
            click.echo(f"{script.path.relative_to(ws.path) if script.path.is_relative_to(ws.path) else script.path}: "
                       f"{script.review_note}")
    lines = [str(problem) for problem in problems]
    files = {p.path for p in problems}
    try:  # the lexicon is read at every render: a broken line there stops them all
        load_lexicon(ws.config.lexicon_path)
    except TextNormError as exc:
        lines.append(str(exc))
        files.add(ws.config.lexicon_path)
    if lines:
        for line in lines:
            click.echo(line)
        click.echo(f"{ERROR}{len(files)} 个文件里有 {len(lines)} 个问题；改好后再运行", err=True)
        raise SystemExit(1)
    approved = sum(s.approved for s in found)
    edited = sum(s.edited_after_approval for s in found)
    click.echo(f"通过：共 {len(found)} 个稿件（已批准 {approved} 个，草稿 {len(found) - approved} 个"
               + (f"，其中 {edited} 个批准后被修改" if edited else "") + "）")


@scripts.command("list")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出，而不是表格。")
@with_workspace
def list_scripts(ws: Workspace, as_json: bool) -> None:
    """列出有效的稿件：编号、主题、状态和标题。"""
    found, problems = check_library(ws.config.scripts_dir, max_chars=ws.config.render.max_chars)
    rows = [{"id": s.id, "topic": s.topic, "status": "edited" if s.edited_after_approval else s.status,
             "title": s.title} for s in found]
    if as_json:
        echo_json(rows)
    else:
        width = max((len(r["id"]) for r in rows), default=2)
        for r in rows:
            status = _pad(label(SCRIPT_STATUS, r["status"]), 12)
            click.echo(f"{r['id']:<{width}}  {_pad(label(TOPIC, r['topic']), 8)}  {status}  {r['title']}")
    if problems:
        warn(f"有 {len(problems)} 个问题，部分文件没有列出；请运行 `outreach scripts check`")


def find_script(scripts_dir: Path, script_id: str) -> Path:
    """The file of `script_id`; an unknown id gets "您是不是要找：…" with the closest ids."""
    try:
        return script_path(scripts_dir, script_id)
    except ScriptError:
        known = sorted(p.stem for p in Path(scripts_dir).glob("*.md"))
        close = difflib.get_close_matches(script_id.strip(), known, n=3, cutoff=0.5)
        hint = f"您是不是要找：{'、'.join(close)}？" if close else ""
        raise ScriptError(f"没有编号为“{script_id}”的稿件；{hint}"
                          "运行 `outreach scripts list` 查看全部编号") from None


def check_approver(ws: Workspace, by: str) -> str:
    """`--by` must name a user of users.json with the reviewer or admin role; returns the stored name."""
    from outreach.web.auth import USERS_FILE, UserStore

    hint = f"outreach user add 姓名 --role reviewer -w {ws.path}"
    store = UserStore(ws.config.workspace / USERS_FILE)
    users = store.users() if (ws.config.workspace / USERS_FILE).exists() else []
    if not users:
        raise ScriptError(f"还没有审核人账号，无法确认“{by}”的身份；先运行 `{hint}`，再用 --by 姓名 批准")
    user = store.get(by)
    reviewers = [u.name for u in users if str(u.role) in APPROVER_ROLES]
    if user is None:
        close = difflib.get_close_matches(by, reviewers, n=3, cutoff=0.3)
        named = f"您是不是要找：{'、'.join(close)}？" if close else (
            f"审核人有：{'、'.join(reviewers)}；" if reviewers else "")
        raise ScriptError(f"“{by}”不是已登记的用户；{named}新审核人请用 `{hint}` 添加")
    if str(user.role) not in APPROVER_ROLES:
        who = f"审核人有：{'、'.join(reviewers)}" if reviewers else f"先用 `{hint}` 添加审核人"
        raise ScriptError(f"“{user.name}”的角色是 {user.role}，不能批准稿件；只有 reviewer 或 admin 可以批准；{who}")
    return user.name


@scripts.command("approve")
@click.argument("script_id", metavar="ID")
@click.option("--by", "by", required=True, metavar="姓名",
              help="批准人：users.json 里角色为 reviewer 或 admin 的用户（用 outreach user add 添加）。")
@click.option("--on", "on_text", default=None, metavar="日期",
              help="批准日期，如 2026-12-01、2026/12/01 或 12月1日。  [默认：北京时间今天]")
@click.option("--hash", "expect", default=None, metavar="版本",
              help="只在稿件仍是这个版本（16 位批准校验值，网页审核记录里的「版本」）时批准；不是就不批准。")
@with_workspace
def approve(ws: Workspace, script_id: str, by: str, on_text: str | None, expect: str | None) -> None:
    """批准草稿 ID 可以播出；--by 必须是已登记的审核人。"""
    from outreach.authoring import review
    from outreach.db import open_migrated
    from outreach.records import check_name

    by = check_approver(ws, check_name(by, "--by"))
    day = cli_date(on_text, "--on") if on_text is not None else county_today()
    path = find_script(ws.config.scripts_dir, script_id)
    engine = open_migrated(ws.config.resolved_database_url())  # it holds the review trail
    try:
        # The same lock as the browser's save and approval: who last edited it and what is sealed
        # are read and written as one step.
        with script_lock(path):
            # The browser's rule: whoever drafted or last edited a script may not approve it.
            review.refuse_own(engine, path.stem, by, "批准")
            script = approve_script(path, by=by, on=day, expect=expect.strip().lower() if expect else None)
            review.record(engine, script.id, "approved", by, datetime.now(ZoneInfo(TIMEZONE)),
                          content_hash=script.content_hash)
    finally:
        engine.dispose()
    click.echo(f"已批准：{script.id}，批准人 {script.approved_by}，日期 {script.approved_on}")

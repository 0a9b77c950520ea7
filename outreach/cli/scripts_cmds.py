"""`outreach scripts`: check, list and approve the loudspeaker script library; give a script a recording."""

from __future__ import annotations

import difflib
import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from outreach.cli.base import ERROR, Workspace, cli, cli_date, county_today, echo_json, warn, with_workspace
from outreach.cli.passwords import PASSWORD_STDIN_HELP, read_password
from outreach.config import TIMEZONE
from outreach.content.scripts import check_library, script_path
from outreach.content.textnorm import load_lexicon
from outreach.errors import ScriptError, TextNormError
from outreach.labels import SCRIPT_STATUS, TOPIC, label


def _pad(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns (a Hanzi takes two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


@cli.group("scripts")
def scripts() -> None:
    """检查、列出和批准 audio_scripts/ 里的稿件，或为稿件添加真人录音。"""


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


@scripts.command("approve")
@click.argument("script_id", metavar="稿件")
@click.option("--by", "by", required=True, metavar="姓名",
              help="批准人：users.json 里角色为 reviewer 或 admin 的用户（用 outreach user add 添加）；要输入其登录密码。")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
@click.option("--heard", is_flag=True,
              help="声明您已用别的方式听过这个版本（没有在管理后台试听时必须加；记入审核记录）。")
@click.option("--on", "on_text", default=None, metavar="日期",
              help="批准日期，如 2026-12-01、2026/12/01 或 12月1日。  [默认：北京时间今天]")
@click.option("--hash", "expect", default=None, metavar="版本",
              help="只在稿件仍是这个版本（16 位批准校验值，网页审核记录里的「版本」）时批准；不是就不批准。")
@with_workspace
def approve(ws: Workspace, script_id: str, by: str, password_stdin: bool, heard: bool, on_text: str | None,
            expect: str | None) -> None:
    """批准一篇草稿（稿件写它的编号）可以播出：--by 是已登记的审核人并输入密码，现在的版本要试听过（或加 --heard）。"""
    from outreach.authoring import review
    from outreach.authoring.accounts import USERS_FILE, approver, check_password
    from outreach.db import open_migrated
    from outreach.records import check_name

    # Who first (a missing reviewer account names its fix before anything else), then what, then the password.
    account = approver(ws.config.workspace / USERS_FILE, check_name(by, "--by"),
                       f"outreach user add 姓名 --role reviewer -w {ws.path}")
    day = cli_date(on_text, "--on") if on_text is not None else county_today()
    path = find_script(ws.config.scripts_dir, script_id)
    check_password(account, read_password(
        from_stdin=password_stdin, confirm=False, prompt=f"{account.name} 的密码",
        example=f"outreach scripts approve {script_id} --by {account.name} --password-stdin < 密码文件"))
    by = account.name
    engine = open_migrated(ws.config.resolved_database_url())  # it holds the review trail
    try:
        # The same lock and rules as the browser's 签发: not one's own script, only the version heard.
        script = review.approve_from_cli(engine, ws.config, path, reviewer=by, heard=heard, today=day,
                                         now=datetime.now(ZoneInfo(TIMEZONE)),
                                         expect=expect.strip().lower() if expect else None)
    finally:
        engine.dispose()
    click.echo(f"已批准：{script.id}，批准人 {script.approved_by}，日期 {script.approved_on}")


@scripts.command("add-recording")
@click.argument("script_id", metavar="稿件")
@click.argument("file", metavar="文件", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "by", default="命令行", show_default=True, metavar="姓名",
              help="谁录的、谁添加的（记入审核记录；此人不能再批准这篇稿件）。")
@with_workspace
def add_recording(ws: Workspace, script_id: str, file: Path, by: str) -> None:
    """用真人录音（MP3、WAV 或 M4A）代替语音合成播出一篇稿件（稿件写它的编号）；正文保留供审核对照，原来的批准作废。"""
    from outreach.authoring.recordings import add_recording as add
    from outreach.db import open_migrated
    from outreach.records import check_name

    by = check_name(by, "--by")
    path = find_script(ws.config.scripts_dir, script_id)
    engine = open_migrated(ws.config.resolved_database_url())  # it holds the review trail
    try:
        added = add(engine, path, file, file.name, actor=by, now=datetime.now(ZoneInfo(TIMEZONE)))
    finally:
        engine.dispose()
    click.echo(f"已添加录音：{added.script.id}（{added.seconds:.0f} 秒），文件 {added.script.recording}")
    if added.voided:
        click.echo(f"原来的批准已作废；审核员试听后重新批准才会播出："
                   f"outreach scripts approve {added.script.id} --by 姓名")

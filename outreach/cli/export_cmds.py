"""CLI: `init`, `export` (USB packs) and the end-to-end `demo`."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath

import click

from outreach.cli.base import ALERT, Workspace, cli, cli_date, echo_json, warn, with_workspace
from outreach.errors import OutputError, PlanError
from outreach.labels import SLOT, label

SAMPLE_ROOT = Path(__file__).resolve().parents[2]
MAX_EXPORT_DAYS = 31
STALE_LINES = 10  # stale packs listed one per line after an export; the rest as a count


def _now() -> datetime:
    from outreach.config import TZ

    return datetime.now(TZ)


@cli.command()
@click.argument("directory", metavar="文件夹", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """用自带的示例县在这个文件夹里新建一个工作区。"""
    if directory.is_symlink() and not directory.exists():
        raise OutputError(f"{directory}：是一个指向不存在位置的链接；请为工作区选一个新文件夹")
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}：已经是一个文件，不是文件夹；请为工作区选一个新文件夹")
    try:
        if directory.exists() and any(directory.iterdir()):
            raise OutputError(f"{directory}：文件夹不是空的；请为工作区选一个新文件夹")
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}：不能在这里建工作区（{exc.strerror}）；请选一个自己有写权限的新文件夹") from exc
    for name in ("audio_scripts", "schedules", "samples"):
        shutil.copytree(SAMPLE_ROOT / name, directory / name)
    shutil.copy2(SAMPLE_ROOT / "outreach.toml", directory / "outreach.toml")
    click.echo(f"工作区已建在 {directory}；下一步：outreach registry -w {directory}（查看全县），"
               f"再运行 outreach demo -w {directory}（完整演示）")


@cli.command("export")
@click.option("--date", "start_text", metavar="日期",
              help="导出的第一天，如 明天、12月1日、2026-12-01（默认：明天；用 --stale 时不写）。")
@click.option("--to", "end_text", metavar="日期", help="最后一天（默认：与 --date 相同）。")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="节目包文件夹（U盘上的文件夹，必须已经存在）。")
@click.option("--mkdir", "make_dir", is_flag=True, help="--out 文件夹不存在时新建它（不是U盘时才用）。")
@click.option("--past", is_flag=True, help="允许导出已经过去的日期（补一份以前送出的包）。")
@click.option("--stale", is_flag=True, help="只重新导出节目包已过期的村（排播在导出后变了），日期按U盘上已有的。")
@click.option("--village", "village_ids", multiple=True, metavar="村", help="只导出这些村，编号或名称（可重复）。")
@click.option("--all", "all_villages", is_flag=True, help="所有村，联网的村也导出（备用包）。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出写入的文件。")
@with_workspace
def export_cmd(start_text: str | None, end_text: str | None, out_dir: Path, make_dir: bool, past: bool, stale: bool,
               village_ids: tuple[str, ...], all_villages: bool, as_json: bool, ws: Workspace) -> None:
    """先生成需要的音频，再按乡镇和村写出 MP3 节目包。

    每个村的文件夹里按播出顺序放节目（2026-12-01_0630_早间.mp3），
    以及 playlist.m3u 和 播放说明.txt；更早日期的节目会被删除。默认只为
    用U盘的村（离线的村；deliver.mode 为 "export" 时为所有村）导出。
    --out 文件夹必须已经存在（U盘已插好）；不在U盘上时会警告。

    不写 --date 时导出明天的：U盘一般在播出前一天带到村里，和 outreach run
    每晚自动导出的一样。
    """
    from outreach.dates import check_range
    from outreach.delivery.usb.export import check_not_past, export_days
    from outreach.planning.registry import resolve_village
    from outreach.planning.workspace import load, open_database

    now = _now()
    if stale:
        if start_text or end_text or all_villages:
            raise PlanError("--stale 按U盘上已有的日期重新导出过期的节目包；请不要同时写 --date、--to 或 --all")
    else:
        if start_text:
            start = cli_date(start_text, "--date", today=now.date())
        else:  # the stick goes out the day before: tomorrow's programs, as the nightly export writes
            start = now.date() + timedelta(days=1)
            click.echo(f"没写 --date：导出明天（{start.isoformat()}）的节目包；要导出别的日子请写 --date", err=True)
        end = cli_date(end_text, "--to", today=now.date()) if end_text else start
        check_range(start, end, max_days=MAX_EXPORT_DAYS, what="--date/--to")
        check_not_past(start, today=now.date(), past=past)
    loaded = load(ws.config)
    village_ids = tuple(dict.fromkeys(resolve_village(loaded.registry, v) for v in village_ids))
    engine = open_database(loaded)
    if stale:
        report = _export_stale(loaded, engine, out_dir, make_dir, ws, now, list(village_ids) or None, as_json)
        if report is None:
            if as_json:
                echo_json([])
            return
    else:
        _check_out(out_dir, make_dir, ws)
        chosen = list(village_ids) or (sorted(loaded.registry.villages) if all_villages else None)
        report = export_days(loaded, engine, start, end, out_dir, now=now, village_ids=chosen,
                             progress=sys.stderr.isatty())
    if as_json:
        echo_json([vars(f) for f in report.files])
    else:
        click.echo(f"{out_dir}：写入 {len(report.written)} 个文件，未变 {len(report.unchanged)} 个，"
                   f"删除旧节目 {len(report.removed)} 个，失败 {len(report.failures)} 个"
                   + (f"（新生成音频 {report.rendered} 条）" if report.rendered else ""))
    echo_report_details(report)
    echo_stale(loaded, engine, now)
    if report.failures:
        sys.exit(1)


def _check_out(out_dir: Path, make_dir: bool, ws: Workspace) -> None:
    """Refuse a missing --out (no stick) unless --mkdir; warn when it is not on a stick."""
    from outreach.delivery.usb.export import check_out_dir

    for line in check_out_dir(out_dir, workspace=ws.path, mkdir=make_dir):
        warn(line)


def _export_stale(loaded, engine, out_dir: Path, make_dir: bool,  # type: ignore[no-untyped-def]
                  ws: Workspace, now: datetime, village_ids: list[str] | None, as_json: bool):
    """`export --stale`: the stale villages exported again, each for its days; None when nothing is stale."""
    from outreach.delivery.usb.export import export_stale
    from outreach.delivery.usb.stale import refresh_stale

    found = [p for p in refresh_stale(loaded, engine, now=now) if village_ids is None or p.village_id in village_ids]
    if not found:
        click.echo("没有过期的节目包：U盘上的节目和现在的排播一致", err=as_json)
        return None
    _check_out(out_dir, make_dir, ws)
    done = export_stale(loaded, engine, out_dir, now=now, stale=found, progress=sys.stderr.isatty())
    for (first, last), villages in done.ranges.items():
        names = "、".join(loaded.registry.villages[v].name for v in villages)
        click.echo(f"重新导出 {names}：{first.isoformat()} 至 {last.isoformat()}", err=True)
    return done.report


def echo_stale(loaded, engine, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """One warning per stale pack still left (节目包已过期, what changed) and the command that fixes it."""
    from outreach.delivery.usb.export import stale_now
    from outreach.delivery.usb.stale import STALE

    packs = stale_now(engine, now=now)
    for p in packs[:STALE_LINES]:
        village = loaded.registry.villages.get(p.village_id)
        warn(f"{STALE}：{village.name if village else p.village_id} {p.day.month}月{p.day.day}日 "
             f"{label(SLOT, p.slot)}：{p.reason}")
    if len(packs) > STALE_LINES:
        warn(f"{STALE}：还有 {len(packs) - STALE_LINES} 个节目，见 `outreach export --stale`")
    if packs:
        warn("请插好这些村的U盘，运行 `outreach export --stale --out U盘文件夹` 重新导出")


def check_stale(loaded, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    """After `plan`: compare exported packs with the plan now and warn about stale ones (needs a database)."""
    import sqlalchemy as sa

    from outreach.delivery.usb.stale import refresh_stale
    from outreach.planning.workspace import open_database

    url = ws.config.resolved_database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return  # nothing was ever exported from this workspace
    now = _now()
    try:
        engine = open_database(loaded)
        refresh_stale(loaded, engine, now=now)
    except sa.exc.SQLAlchemyError as exc:
        warn(f"没能检查U盘节目包是否过期（数据库：{exc.__class__.__name__}）")
        return
    echo_stale(loaded, engine, now)
    engine.dispose()


def echo_report_details(report) -> None:
    """What was removed, left out and failed: one line per village, script or distinct failure."""
    removed: dict[str, list[str]] = {}
    for rel in report.removed:
        path = PurePosixPath(rel)
        removed.setdefault(str(path.parent), []).append(path.name)
    same: dict[tuple[str, ...], list[str]] = {}  # villages that lost the same days: one line
    for folder, names in sorted(removed.items()):
        same.setdefault(tuple(sorted(names)), []).append(PurePosixPath(folder).name)
    for names, folders in same.items():
        where = "、".join(folders[:5]) + (f" 等 {len(folders)} 个村" if len(folders) > 5 else "")
        click.echo(f"已从 {where} 删除更早日期的节目：{'、'.join(names)}", err=True)
    left_out = Counter((sid, why) for _rel, sid, why in report.blocked)
    for (sid, why), n in sorted(left_out.items()):
        warn(f"“{sid}”没有放进 {n} 个节目（{why}）；请用 "
             f"`outreach scripts approve {sid} --by 审核人` 重新批准后再导出")
    for alert in report.alerts:
        click.echo(f"{ALERT}{alert}", err=True)
    distinct: dict[str, list[str]] = {}
    for rel, message in report.failures:
        distinct.setdefault(message, []).append(rel)
    for message, rels in distinct.items():
        more = f" 等 {len(rels)} 个文件" if len(rels) > 1 else ""
        click.echo(f"失败：{rels[0]}{more}：{message}", err=True)


def _summary_lines(s, loaded, start, end) -> list[str]:
    """Per campaign: villages reached of those targeted, packs exported, slots missed and failed."""
    from outreach.coverage import village_coverage

    rows = village_coverage(s, start=start, end=end)
    lines = []
    for campaign in loaded.campaigns:
        mine = [r for r in rows if r.campaign_id == campaign.id]
        targeted = len(campaign.target_villages(loaded.registry))
        reached = sum(r.reached > 0 for r in mine)
        unproven = sum(r.unproven for r in mine)
        note = f"（其中 {unproven} 次无证据：空播放器没有出声，不算覆盖）" if unproven else ""
        lines.append(f"{campaign.name}（{campaign.id}）：已覆盖 {reached}/{targeted} 个村，"
                     f"播出 {sum(r.played for r in mine)} 次{note}，U盘待确认 {sum(r.exported for r in mine)} 次，"
                     f"漏播 {sum(r.missed for r in mine)} 次，失败 {sum(r.failed for r in mine)} 次")
    lines.append(f"漏播时段合计：{sum(r.missed for r in rows)}，失败合计：{sum(r.failed for r in rows)}")
    return lines


DEMO_DIR = "demo"


def demo_sandbox(config) -> tuple[Path, str, Path]:
    """A fresh sandbox under build/demo/: its folder, its own SQLite URL and its pack folder."""
    root = config.build_path / DEMO_DIR
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root, f"sqlite:///{root / 'demo.db'}", root / "packs"


@cli.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 31), help="从今天起排播的天数。")
@click.option("--date", "day_text", metavar="日期", help="播这一天，而不是今天（北京时间）。")
@with_workspace
def demo(days: int, day_text: str | None, ws: Workspace) -> None:
    """在沙盒里演示全流程：生成音频、排播一周、导出明天、播今天（空播放器）、汇总。

    演示用自己的数据库和节目包，放在 build/demo/（每次重建），从不写入工作区
    的播出记录，所以运行两次汇总相同。
    """
    from outreach.audio.render import render_library
    from outreach.db import session
    from outreach.delivery import Channel, served_by
    from outreach.delivery.live.play import null_player, play_program
    from outreach.delivery.usb.export import export_days
    from outreach.planning.workspace import load, open_database, plan_days
    from outreach.records import broadcast_plans, record_planned

    now = _now()
    today: date = cli_date(day_text, "--date", today=now.date()) if day_text else now.date()
    if day_text:
        from outreach.config import TZ
        now = datetime.combine(today, datetime.min.time(), tzinfo=TZ) + timedelta(hours=23, minutes=59)
    config = ws.config
    root, url, out_dir = demo_sandbox(config)
    click.echo(f"演示沙盒：{root}（数据库 {root / 'demo.db'}，U盘包 {out_dir}）；不写入工作区的播出记录")
    loaded = load(config)
    report = render_library(config, loaded.library, progress=sys.stderr.isatty())
    click.echo(f"[1/5] 音频：{len(report.results)} 条已批准稿件的音频就绪，失败 {len(report.failures)}")
    for script_id, message in report.failures:
        click.echo(f"      失败 {script_id}：{message}", err=True)

    engine = open_database(loaded, url)
    last = today + timedelta(days=days - 1)
    week = plan_days(loaded, today, last)
    with session(engine) as s:
        record_planned(s, broadcast_plans(week.programs), now=now)
    click.echo(f"[2/5] 排播 {today} 至 {last}：{len(week.programs)} 个节目")
    for alert in week.alerts:
        click.echo(f"{ALERT}{alert}", err=True)

    tomorrow = today + timedelta(days=1)
    exported = export_days(loaded, engine, tomorrow, tomorrow, out_dir, now=now)
    click.echo(f"[3/5] 导出明天（{tomorrow}）U盘包：写入 {len(exported.written) + len(exported.unchanged)} 个文件，"
               f"失败 {len(exported.failures)}")
    echo_report_details(exported)

    outcomes = []
    for village in served_by(loaded.registry, Channel.LIVE):
        for slot in loaded.registry.village_slots(village.id):
            outcomes.append(play_program(loaded, engine, village.id, slot.name, today, now=now,
                                         player=null_player(), timeout_s=config.deliver.player_timeout_s,
                                         min_fraction=0.0))  # a simulated play: logged with no evidence
    counts = {k: sum(o.status == k for o in outcomes) for k in ("played", "skipped", "failed", "silent")}
    click.echo(f"[4/5] 今天（{today}）联网喇叭播出（空播放器）：播出 {counts['played']}，已播跳过 {counts['skipped']}，"
               f"失败 {counts['failed']}，静默 {counts['silent']}")
    click.echo("[5/5] 覆盖情况（演示数据库）")
    with session(engine) as s:
        for line in _summary_lines(s, loaded, today, last):
            click.echo(f"      {line}")
    engine.dispose()
    if report.failures or exported.failures or counts["failed"]:
        sys.exit(1)

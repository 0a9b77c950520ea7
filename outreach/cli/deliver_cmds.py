"""CLI: `init`, `export`, `run`, `jobs` and the end-to-end `demo`."""

from __future__ import annotations

import logging
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace
from outreach.errors import OutputError

SAMPLE_ROOT = Path(__file__).resolve().parents[2]
MAX_EXPORT_DAYS = 31


def _now() -> datetime:
    from outreach.plan import TZ

    return datetime.now(TZ)


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
def init(directory: Path) -> None:
    """Create a new workspace in DIRECTORY from the bundled sample county."""
    if directory.exists() and any(directory.iterdir()):
        raise OutputError(f"{directory}: folder is not empty; choose a new folder for the workspace")
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("audio_scripts", "schedules"):
        shutil.copytree(SAMPLE_ROOT / name, directory / name)
    shutil.copy2(SAMPLE_ROOT / "outreach.toml", directory / "outreach.toml")
    click.echo(f"workspace created in {directory}; next: outreach -w {directory} ... or cd there and run `outreach demo`")


@cli.command("export")
@click.option("--date", "start_text", required=True, metavar="YYYY-MM-DD", help="First day to export.")
@click.option("--to", "end_text", metavar="YYYY-MM-DD", help="Last day (default: --date).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Pack folder (e.g. a USB stick).")
@click.option("--village", "village_ids", multiple=True, metavar="ID", help="Only these villages (repeatable).")
@click.option("--all", "all_villages", is_flag=True, help="Every village, networked ones too (spare packs).")
@click.option("--json", "as_json", is_flag=True, help="Print the files as JSON.")
@with_workspace
def export_cmd(start_text: str, end_text: str | None, out_dir: Path, village_ids: tuple[str, ...],
               all_villages: bool, as_json: bool, ws: Workspace) -> None:
    """Write MP3 packs per township and village, with playlists and manifest.json.

    By default the packs are for villages fed by USB stick: the offline ones,
    or every village when deliver.mode is "export".
    """
    from outreach.dates import check_range, parse_date
    from outreach.deliver import export_days
    from outreach.workspace import load, open_database

    start = parse_date(start_text, "--date")
    end = parse_date(end_text, "--to") if end_text else start
    check_range(start, end, max_days=MAX_EXPORT_DAYS, what="--date/--to")
    loaded = load(ws.config)
    engine = open_database(loaded)
    chosen = list(village_ids) or (sorted(loaded.registry.villages) if all_villages else None)
    report = export_days(loaded, engine, start, end, out_dir, now=_now(), village_ids=chosen)
    if as_json:
        echo_json([vars(f) for f in report.files])
    else:
        click.echo(f"{out_dir}: 写入 {len(report.written)} 个文件，未变 {len(report.unchanged)} 个")
    if report.failures:
        for path, message in report.failures:
            click.echo(f"failed: {path}: {message}", err=True)
        sys.exit(1)


@cli.command("run")
@click.option("--mode", type=click.Choice(["play", "export"]), help="Override deliver.mode from outreach.toml.")
@with_workspace
def run_cmd(mode: str | None, ws: Workspace) -> None:
    """Run the slot scheduler (Asia/Shanghai time) until SIGTERM or Ctrl-C."""
    from outreach.scheduler import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    counts = run(ws.config, mode or ws.config.deliver.mode)
    click.echo(f"scheduler stopped cleanly ({counts})", err=True)


@cli.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@with_workspace
def jobs_cmd(as_json: bool, ws: Workspace) -> None:
    """List the scheduler's stored jobs and their next run times."""
    from outreach.scheduler import list_jobs

    jobs = list_jobs(ws.config)
    if as_json:
        echo_json(jobs)
        return
    for job in jobs:
        click.echo(f"{job['id']:32} {job['next_run_time']}")
    click.echo(f"共 {len(jobs)} 个任务", err=True)


def _summary_lines(s, loaded, start, end) -> list[str]:
    """Per campaign: villages reached of those targeted, packs exported, slots missed."""
    from outreach.coverage import village_coverage

    rows = village_coverage(s, start=start, end=end)
    lines = []
    for campaign in loaded.campaigns:
        mine = [r for r in rows if r.campaign_id == campaign.id]
        targeted = len(campaign.target_villages(loaded.registry))
        reached = sum(r.reached > 0 for r in mine)
        lines.append(f"{campaign.name}（{campaign.id}）：已覆盖 {reached}/{targeted} 个村，"
                     f"播出 {sum(r.played for r in mine)} 次，U盘待确认 {sum(r.exported for r in mine)} 次，"
                     f"漏播 {sum(r.missed for r in mine)} 次")
    missed = sum(r.missed for r in rows)
    lines.append(f"漏播时段合计：{missed}")
    return lines


@cli.command()
@click.option("--days", default=7, show_default=True, help="Days to plan from today.")
@with_workspace
def demo(days: int, ws: Workspace) -> None:
    """Render, plan a week, export tomorrow, play today (null player), summarise."""
    from outreach.deliver import export_days, null_player, play_program
    from outreach.db import session
    from outreach.records import record_planned
    from outreach.render import render_library
    from outreach.workspace import broadcast_plans, load, open_database, plan

    now = _now()
    today = now.date()
    config = ws.config
    loaded = load(config)
    click.echo(f"[1/5] 生成音频：{len(loaded.library)} 条稿件")
    report = render_library(config, loaded.library, progress=sys.stderr.isatty())
    made = sum(not r.cached for r in report.results)
    click.echo(f"      {len(report.results)} 条音频（新生成 {made}，缓存 {len(report.results) - made}）")
    for script_id, message in report.failures:
        click.echo(f"      失败 {script_id}: {message}", err=True)

    engine = open_database(loaded)
    week = plan(loaded, today, today + timedelta(days=days - 1))
    with session(engine) as s:
        record_planned(s, broadcast_plans(week.programs), now=now)
    click.echo(f"[2/5] 排播 {today} 至 {today + timedelta(days=days - 1)}：{len(week.programs)} 个节目")

    out_dir = config.workspace / config.deliver.export_dir
    tomorrow = today + timedelta(days=1)
    exported = export_days(loaded, engine, tomorrow, tomorrow, out_dir, now=now)
    click.echo(f"[3/5] 导出明天（{tomorrow}）U盘包到 {out_dir}：写入 {len(exported.written)}，"
               f"未变 {len(exported.unchanged)}，失败 {len(exported.failures)}")

    outcomes = []
    for village in loaded.registry.villages.values():
        if village.speaker != "networked":
            continue
        for slot in loaded.registry.village_slots(village.id):
            outcomes.append(play_program(loaded, engine, village.id, slot.name, today, now=now,
                                         player=null_player(), timeout_s=config.deliver.player_timeout_s))
    counts = {k: sum(o.status == k for o in outcomes) for k in ("played", "skipped", "failed", "silent")}
    click.echo(f"[4/5] 今天（{today}）联网喇叭播出（空播放器）：播出 {counts['played']}，已播跳过 {counts['skipped']}，"
               f"失败 {counts['failed']}，静默 {counts['silent']}")
    click.echo("[5/5] 覆盖情况")
    with session(engine) as s:
        for line in _summary_lines(s, loaded, today, today + timedelta(days=days - 1)):
            click.echo(f"      {line}")
    if report.failures or exported.failures or counts["failed"]:
        sys.exit(1)

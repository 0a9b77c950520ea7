"""Commands for field records: `confirm` (village committee CSVs) and `handout` (market-day leaflets)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from outreach import db, records
from outreach.cli.base import Workspace, cli, cli_date, warn, with_workspace
from outreach.config import TIMEZONE
from outreach.planning.registry import Registry


@contextlib.contextmanager
def _open(ws: Workspace) -> Iterator[tuple[Session, Registry | None]]:
    """The database, with the registry mirrored in when the workspace loads (else as it is, with a warning)."""
    from outreach.errors import OutreachError
    from outreach.planning.workspace import load, open_database

    loaded = None
    if (ws.config.schedules_dir / "county.yaml").is_file():
        try:
            loaded = load(ws.config)
        except OutreachError as exc:
            warn(exc)
            warn("使用数据库里已有的村镇名录；不检查是否为集市日")
    if loaded is not None:
        engine = open_database(loaded)
    else:
        engine = db.open_migrated(ws.config.resolved_database_url())
    try:
        with db.session(engine) as s:
            yield s, loaded.registry if loaded is not None else None
    finally:
        engine.dispose()


def _report(path: Path, report: records.ImportReport, noun: str) -> None:
    """Print an import's counts, its warnings and its bad rows; exit 1 if any row was bad."""
    click.echo(f"{path}：{noun} {report.rows_ok} 行，已有记录 {report.rows_skipped} 行，有错 {len(report.errors)} 行")
    for line, message in sorted(report.warnings + report.errors):
        prefix = "警告：" if (line, message) in report.warnings else ""
        click.echo(f"{path} 第 {line} 行：{prefix}{message}", err=True)
    if report.errors:
        raise SystemExit(1)


def _market_days(registry: Registry | None) -> records.MarketDays | None:
    """is_market_day by the markets' rules in schedules/markets.yaml; None (no check) without a registry."""
    if registry is None:
        return None

    def is_market_day(market_id: str, day: date) -> bool | None:
        from outreach.errors import OutreachError

        market = registry.markets.get(market_id)
        try:
            return None if market is None else market.rule.matches(day)
        except OutreachError:  # a day outside the lunar calendar's range
            return None
    return is_market_day


@cli.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "entered_by", required=True, metavar="姓名",
              help="录入这些确认的工作人员（与表里的 confirmed_by 分开记录）。")
@with_workspace
def confirm(ws: Workspace, csv_file: Path, entered_by: str) -> None:
    """导入村委会对U盘节目的播出确认。

    CSV_FILE 为 UTF-8（Excel 的“CSV UTF-8”即可），表头为
    village_id,date,slot,confirmed_by[,note]；slot 为 morning 或 evening
    （也可写 早上/晚上）；confirmed_by 是村里确认已播的人。还没开播的节目
    会被拒绝。正确的行会保存；有错的行按“文件 第 N 行：说明”列出，命令以 1 退出。
    同一文件再导入一次（改过或没改）只会加入还没记录的行。
    """
    entered_by = records.check_name(entered_by, "--by")
    with _open(ws) as (s, _):
        report = records.import_confirmations(s, csv_file, now=datetime.now(timezone.utc), entered_by=entered_by)
    _report(csv_file, report, "已确认")


@cli.command()
@click.option("--market", "market_id", metavar="集市", help="集市编号或名称（见 schedules/markets.yaml）。")
@click.option("--date", "day_text", metavar="日期", help="集市日（默认：县里的今天）。")
@click.option("--leaflets", type=int, help=f"发放的传单数（0 到 {records.MAX_LEAFLETS:,}）。")
@click.option("--people", type=int, help=f"交谈的人数（0 到 {records.MAX_PEOPLE:,}）。")
@click.option("--topics", help="主题，用逗号分隔：traffic、anti_fraud（也可写 交通、反诈）。")
@click.option("--staff", default="", help="发放人。")
@click.option("--note", default="", help="备注。")
@click.option("--csv", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="改为从 CSV 文件导入多条记录。")
@with_workspace
def handout(ws: Workspace, market_id: str | None, day_text: str | None, leaflets: int | None, people: int | None,
            topics: str | None, staff: str, note: str, csv_file: Path | None) -> None:
    """记录在集市上发放的宣传单：一条记录，或一个 CSV 文件的多条。

    \b
    一条记录：outreach handout --market 大庄集 --date 2024-05-03 --leaflets 200 --people 150 --topics 交通,反诈
    CSV 文件：outreach handout --csv FILE.csv

    CSV 为 UTF-8，表头为 market_id,date,leaflets,people,topics,staff[,note]；
    主题之间用 ; 或 、 分隔。已记录的行会跳过，所以同一文件可以再导入；
    有错的行按“文件 第 N 行：说明”列出，命令以 1 退出。未来的日期会被拒绝；
    不是该集市集日的日期照样保存，并给出警告。
    """
    now = datetime.now(timezone.utc)
    county_day = now.astimezone(ZoneInfo(TIMEZONE)).date()
    if csv_file is not None:
        if any(v is not None for v in (market_id, day_text, leaflets, people, topics)):
            raise click.UsageError("--csv 用来导入文件；不要再同时给 --market/--date/--leaflets 等选项")
        with _open(ws) as (s, registry):
            report = records.import_handouts(s, csv_file, now=now, is_market_day=_market_days(registry))
        _report(csv_file, report, "已记录")
        return
    missing = [name for name, v in (("--market", market_id), ("--leaflets", leaflets), ("--people", people),
                                    ("--topics", topics)) if v is None]
    if missing:
        raise click.UsageError(f"缺少 {'、'.join(missing)}（或改用 --csv 文件）")
    assert market_id is not None and leaflets is not None and people is not None and topics is not None
    when: date = cli_date(day_text, "--date", today=county_day) if day_text else county_day
    with _open(ws) as (s, registry):
        if registry is not None:
            from outreach.planning.registry import resolve_market

            market_id = resolve_market(registry, market_id)
        h = records.record_handout(s, market_id=market_id, day=when, leaflets=leaflets, people=people,
                                   topics=[topics], staff=staff, note=note, now=now)
    click.echo(f"已记录发放 #{h.id}：{h.market_id} {h.date}，传单 {h.leaflets} 份，"
               f"交谈 {h.people} 人，主题 {h.topics}")
    warning = records.market_day_warning(_market_days(registry), h.market_id, h.date)
    if warning:
        warn(warning)

"""Commands for field records: `confirm` (village committee CSVs), `confirm-link` (QR links) and `handout`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from outreach import db, records
from outreach.cli.base import Workspace, cli, cli_date, echo_json, warn, with_workspace
from outreach.config import TIMEZONE
from outreach.labels import TOPIC
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
@click.argument("csv_file", metavar="文件", type=click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True))
@click.option("--by", "entered_by", required=True, metavar="姓名",
              help="录入这些确认的工作人员（与表里的 confirmed_by 分开记录）。")
@with_workspace
def confirm(ws: Workspace, csv_file: Path, entered_by: str) -> None:
    """导入村委会对U盘节目的播出确认。

    \b
    文件为 UTF-8 编码的 CSV（Excel 的“CSV UTF-8”即可），可以就是村里按 播放说明.txt
    发回的行，不用表头，每行：村,日期,时段,姓名[,备注]，例如
      dazhuang-07,2026-12-01,早间,王支书
      西岗村,12月1日,晚间,王支书
    也可以第一行写表头 village_id,date,slot,confirmed_by[,note]。文件写 - 时
    从标准输入读（可直接粘贴）。村写编号或村名；日期写 2026-12-01、2026年12月1日
    或 12月1日（取离今天最近的那一天）；时段写 morning/evening 或 早间/晚间。

    \b
    确认只算U盘上真有的：导出之后才排进节目的活动不算，会给出提醒；没有导出
    也没有播出的节目、还没开播的节目会被拒绝。播出时间记为节目的开始时间，
    录入时间另外记下。正确的行会保存；有错的行按“文件 第 N 行：说明”列出，
    命令以 1 退出。同一文件再导入一次（改过或没改）只会加入还没记录的行。
    """
    entered_by = records.check_name(entered_by, "--by")
    source: Path | records.Pasted = csv_file
    if str(csv_file) == "-":
        from outreach.errors import RecordError

        try:
            source = records.Pasted(sys.stdin.buffer.read().decode("utf-8-sig"), "标准输入")
        except UnicodeDecodeError as exc:
            raise RecordError("标准输入不是 UTF-8 文本；请把文件另存为 UTF-8 后再导入") from exc
    with _open(ws) as (s, _):
        report = records.import_confirmations(s, source, now=datetime.now(timezone.utc), entered_by=entered_by)
    _report(report.path, report, "已确认")


@cli.group("confirm-link")
def confirm_link() -> None:
    """U盘包里的扫码确认二维码：查看和停用。

    \b
    每次导出都会给用U盘的村各放一个二维码（扫码确认.png、扫码确认.html，
    节目包最上层的 扫码确认单.html 可打印），手机扫码后不用登录就能确认本村U盘里
    的节目。需要在 outreach.toml 的 [web] 下设置 public_url。
    """


def _link_state(expires_at: datetime, revoked_at: datetime | None, now: datetime) -> str:
    if revoked_at is not None:
        return "已停用"
    return "已过期" if expires_at <= now else "有效"


@confirm_link.command("list")
@click.option("--village", "village", metavar="村", help="只看这个村（编号或名称）。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@with_workspace
def confirm_link_list(ws: Workspace, village: str | None, as_json: bool) -> None:
    """列出扫码确认链接：村、节目日期、生成时间、有效期和状态（令牌本身不保存，不能再显示）。"""
    now = datetime.now(timezone.utc)
    with _open(ws) as (s, _):
        village_id = _village_id(s, village) if village else None
        links = records.list_links(s, village_id=village_id)
    rows = [{"village_id": k.village_id, "first_day": k.first_day, "last_day": k.last_day,
             "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at,
             "state": _link_state(k.expires_at, k.revoked_at, now)} for k in links]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("还没有扫码确认链接；导出U盘包时会生成（需要设置 [web] public_url）")
    tz = ZoneInfo(TIMEZONE)
    for r in rows:
        click.echo(f"{r['village_id']}  {r['first_day']} 至 {r['last_day']}  生成于 "
                   f"{r['created_at'].astimezone(tz):%Y-%m-%d %H:%M}  有效期到 "
                   f"{r['expires_at'].astimezone(tz):%Y-%m-%d %H:%M}  {r['state']}")


@confirm_link.command("revoke")
@click.argument("village", metavar="村")
@with_workspace
def confirm_link_revoke(ws: Workspace, village: str) -> None:
    """停用一个村（编号或名称）的所有扫码确认链接，例如U盘丢了；重新导出这个村会生成新的二维码。"""
    with _open(ws) as (s, _):
        village_id = _village_id(s, village)
        count = records.revoke_links(s, village_id, now=datetime.now(timezone.utc))
    click.echo(f"已停用 {village_id} 的 {count} 个扫码确认链接；这些二维码打开后会显示“已停用”。"
               "要给村里新的二维码，请重新导出这个村的U盘包")


def _village_id(s: Session, text: str) -> str:
    """A village id from an id or a name, by the villages in the database."""
    import sqlalchemy as sa

    from outreach.models import Village
    from outreach.records.confirmations import resolve_village

    return resolve_village(text, {v.id: v for v in s.scalars(sa.select(Village))})


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
    CSV 文件：outreach handout --csv 发放记录.csv

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
    market = registry.markets.get(h.market_id) if registry is not None else None
    topic_names = "、".join(TOPIC.get(t.strip(), t.strip()) for t in h.topics.split(",") if t.strip())
    click.echo(f"已记录发放 #{h.id}：{market.name if market else h.market_id} {h.date}，传单 {h.leaflets} 份，"
               f"交谈 {h.people} 人，主题 {topic_names}")
    warning = records.market_day_warning(_market_days(registry), h.market_id, h.date)
    if warning:
        warn(warning)

"""CLI: `log`, the as-run log one broadcast a row (table, CSV, JSON or XLSX), as the web's Excel download."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from outreach.cli.base import Workspace, cli, cli_date, county_today, sheet_options, warn, with_workspace

if TYPE_CHECKING:
    from outreach.coverage import ReadTime
    from outreach.planning.workspace import Loaded

# What the terminal shows of a row (LOG_HEADERS minus the times, notes and ids); CSV and XLSX have them all.
TERMINAL_COLUMNS = ("日期", "时段", "乡镇", "村", "活动名称", "状态", "证据", "播出时间")


@cli.command("log")
@sheet_options
@click.option("--village", "village_text", metavar="村", help="只看这个村（编号或名称）。")
@with_workspace
def log_cmd(campaign_text: str | None, start_text: str | None, end_text: str | None, township_text: str | None,
            fmt: str, out: Path | None, village_text: str | None, ws: Workspace) -> None:
    """逐条列出播出记录：每个村、每天、每个时段、每个活动一行。

    每行有乡镇、村、日期、时段、状态、证据、稿件标题、活动名称、计划时间和
    播出时间；csv 和 xlsx 的最后几列是编号，json 保留编号。状态按现在读：
    到点后过了宽限时间仍没有结果的时段算漏播，排了计划却没有任何记录的
    节目也列出（没有记录编号）。网页上「下载Excel」给出同样的行。
    """
    from outreach import coverage as cov
    from outreach.coverage.aslog import broadcast_log
    from outreach.db import session
    from outreach.errors import CoverageError

    if fmt == "xlsx" and out is None:
        raise CoverageError("--format xlsx 要写入文件；请加上 --output 播出记录.xlsx")
    today, now = county_today(), _now()
    end = cli_date(end_text, "--to", today=today) if end_text else today
    start = cli_date(start_text, "--from", today=today) if start_text else end.replace(day=1)
    cov.check_period(start, end, what="--from/--to")
    loaded = _load(ws)
    campaign_id, township_id, village_id = _filters(loaded, campaign_text, township_text, village_text)
    engine = _engine(ws, loaded)
    try:
        with session(engine) as s:
            rows = broadcast_log(s, start=start, end=end, read=_read(ws, loaded, start, end, today, now, campaign_id),
                                 campaign_id=campaign_id, township_id=township_id, village_id=village_id)
    finally:
        engine.dispose()
    titles = {s.id: s.title for s in loaded.library} if loaded is not None else {}
    _write(fmt, out, rows, titles)
    click.echo(f"{start} 至 {end}：{len(rows)} 条播出记录", err=True)


def _now() -> datetime:
    from outreach.config import TZ

    return datetime.now(TZ)


def _load(ws: Workspace) -> Loaded | None:
    """The workspace, or None (with a warning) when its files do not load: the database still answers."""
    from outreach.errors import OutreachError
    from outreach.planning.workspace import load

    try:
        return load(ws.config)
    except OutreachError as exc:
        warn(exc)
        warn("只用数据库里的记录：稿件显示编号，没有任何记录的计划节目不会列出")
        return None


def _filters(loaded: Loaded | None, campaign: str | None, township: str | None,
             village: str | None) -> tuple[str | None, str | None, str | None]:
    """--campaign, --township and --village as ids (names accepted); taken as typed without a workspace."""
    from outreach.content.names import resolve
    from outreach.errors import CampaignError
    from outreach.planning.registry import resolve_township, resolve_village

    if loaded is None:
        return campaign, township, village
    names = {c.id: c.name for c in loaded.campaigns}
    return (resolve("宣传活动", names, campaign, "运行 `outreach plan --help` 或查看 campaigns.yaml", CampaignError)
            if campaign else None,
            resolve_township(loaded.registry, township) if township else None,
            resolve_village(loaded.registry, village) if village else None)


def _engine(ws: Workspace, loaded: Loaded | None) -> Any:
    from outreach import db
    from outreach.planning.workspace import open_database

    return open_database(loaded) if loaded is not None else db.open_migrated(ws.config.resolved_database_url())


def _read(ws: Workspace, loaded: Loaded | None, start: date, end: date, today: date, now: datetime,
          campaign_id: str | None) -> ReadTime:
    """Statuses as of now: the grace, and the plan's programs of the last days (those nothing logged count too)."""
    from outreach import coverage as cov
    from outreach.errors import OutreachError

    expected: tuple[Any, ...] = ()
    if loaded is not None:
        try:
            expected = cov.expected_plans(loaded, start, end, today=today, campaign_id=campaign_id)
        except OutreachError as exc:
            warn(exc)
    return cov.ReadTime(now=now, grace_s=ws.config.deliver.grace_s, expected=expected)


def _write(fmt: str, output: Path | None, rows: Any, titles: dict[str, str]) -> None:
    from outreach.coverage.aslog import log_json, log_table
    from outreach.coverage.sheets import Table, csv_text, text_table, xlsx_bytes
    from outreach.files import write_bytes_atomic, write_text_atomic

    table = log_table(rows, titles)
    if fmt == "xlsx":
        assert output is not None
        write_bytes_atomic(output, xlsx_bytes(table))
    else:
        if fmt == "json":
            text = json.dumps(log_json(rows, titles), ensure_ascii=False, indent=2) + "\n"
        elif fmt == "csv":
            text = csv_text(table)
        else:
            keep = [table.headers.index(name) for name in TERMINAL_COLUMNS]
            text = text_table(Table(table.title, TERMINAL_COLUMNS, [tuple(r[i] for i in keep) for r in table.rows]))
        if output is None:
            click.echo(text, nl=False)
            return
        write_text_atomic(output, text)
    click.echo(f"已写入 {output}", err=True)

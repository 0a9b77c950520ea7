"""CLI: `coverage`, `gaps` and `report` (who has heard a campaign, who has not, and the HTML report)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from outreach.cli.base import Workspace, cli, echo_json, with_workspace
from outreach.config import TIMEZONE

COVERAGE_HEADERS = ("村编号", "村", "乡镇", "活动编号", "活动", "计划", "播出", "确认", "待确认", "漏播", "失败",
                    "最近覆盖", "人口", "估计听众")
TABLE_HEADERS = ("村", "乡镇", "活动", "播出", "确认", "漏播", "最近覆盖", "待确认", "估计听众")
GAP_HEADERS = ("类型", "乡镇", "村编号", "村", "稿件", "日期", "数量")


@dataclass
class _Context:
    """An open database session plus what the workspace YAML says about one campaign."""

    session: Session
    targets: list[str]
    scripts: list[str]
    county: str


def _today(text: str | None) -> dt.date:
    """`--today` if given, else today's date in the county (Asia/Shanghai)."""
    from outreach.dates import parse_date
    from outreach.errors import CoverageError, OutreachError

    if text:
        try:
            return parse_date(text, "--today")
        except OutreachError as exc:
            raise CoverageError(str(exc)) from exc
    return dt.datetime.now(ZoneInfo(TIMEZONE)).date()


@contextlib.contextmanager
def _open(ws: Workspace, campaign_id: str | None) -> Iterator[_Context]:
    """Open the database; with a readable workspace, mirror the registry and read the campaign's targets.

    Coverage lives in the database, so a workspace whose YAML cannot be loaded
    still gets answers, with a warning that never-planned villages and
    unaired scripts cannot be listed.
    """
    from outreach import db
    from outreach.errors import OutreachError
    from outreach.workspace import load, open_database

    config = ws.config
    try:
        loaded = load(config)
    except OutreachError as exc:
        click.echo(f"warning: {exc}", err=True)
        click.echo("warning: using the database only; villages never planned and unaired scripts are not listed",
                   err=True)
        loaded = None
    if loaded is not None:
        engine = open_database(loaded)
    else:
        engine = db.make_engine(config.resolved_database_url())
        db.upgrade(engine)
    targets: list[str] = []
    scripts: list[str] = []
    if loaded is not None and campaign_id is not None:
        campaign = loaded.campaign(campaign_id)
        if campaign is not None:
            targets = sorted(campaign.target_villages(loaded.registry))
            scripts = list(campaign.scripts)
    try:
        with db.session(engine) as s:
            yield _Context(s, targets, scripts, loaded.registry.county if loaded else "")
    finally:
        engine.dispose()


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return "\ufeff" + buf.getvalue()  # BOM: Excel then reads the file as UTF-8


def _xlsx(rows: Sequence[Sequence[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = title
    for r in rows:
        sheet.append(list(r))
    for col in sheet.columns:
        sheet.column_dimensions[col[0].column_letter].width = max(8, *(_width(str(c.value or "")) + 2 for c in col))
    sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _emit(text: str, out: Path | None) -> None:
    from outreach.files import write_text_atomic

    if out is None:
        click.echo(text, nl=False)
        return
    write_text_atomic(out, text)
    click.echo(f"wrote {out}", err=True)


def _date(d: dt.date | None) -> str:
    return d.isoformat() if d else ""


# --- coverage -----------------------------------------------------------------------


@cli.command("coverage")
@click.option("--campaign", "campaign_id", metavar="ID", help="Only this campaign (default: every campaign).")
@click.option("--from", "start_text", metavar="YYYY-MM-DD", help="First day (default: 1st of the --to month).")
@click.option("--to", "end_text", metavar="YYYY-MM-DD", help="Last day, inclusive (default: today).")
@click.option("--township", "township_id", metavar="ID", help="Only villages of this township.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "xlsx"]), default="table",
              show_default=True, help="Output format; csv is UTF-8 with BOM for Excel; xlsx needs --out.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--today", "today_text", metavar="YYYY-MM-DD", help="Treat this day as today (default: county date).")
@with_workspace
def coverage_cmd(campaign_id: str | None, start_text: str | None, end_text: str | None, township_id: str | None,
                 fmt: str, out: Path | None, today_text: str | None, ws: Workspace) -> None:
    """Per village and campaign: slots played, confirmed, missed, and the last day reached.

    Without --from/--to this is the current month so far. With --campaign,
    villages the campaign targets (schedules/campaigns.yaml) show even if
    nothing was planned for them.
    """
    from outreach import coverage as cov
    from outreach.errors import CoverageError

    if fmt == "xlsx" and out is None:
        raise CoverageError("--format xlsx writes a file; add --out coverage.xlsx")
    start, end = cov.parse_period(start_text, end_text, today=_today(today_text))
    with _open(ws, campaign_id) as ctx:
        rows = cov.village_coverage(ctx.session, start=start, end=end, campaign_id=campaign_id,
                                    township_id=township_id, target_village_ids=ctx.targets)
    if fmt == "json":
        text = json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2) + "\n"
        _emit(text, out)
        return
    if fmt == "table":
        table = [TABLE_HEADERS, *(
            (r.village_name, r.township_name, r.campaign_name, r.played, r.confirmed, r.missed,
             _date(r.last_reached) or "—", r.exported, r.listeners) for r in rows
        )]
        _emit(_table(table) + "\n", out)
        click.echo(f"{start} 至 {end}：共 {len(rows)} 行，已覆盖 {sum(1 for r in rows if r.reached)} 行", err=True)
        return
    data = [COVERAGE_HEADERS, *(
        (r.village_id, r.village_name, r.township_name, r.campaign_id, r.campaign_name, r.planned, r.played,
         r.confirmed, r.exported, r.missed, r.failed, _date(r.last_reached), r.population, r.listeners)
        for r in rows
    )]
    if fmt == "csv":
        _emit(_csv(data), out)
        return
    from outreach.files import write_bytes_atomic

    assert out is not None
    write_bytes_atomic(out, _xlsx(data, "覆盖"))
    click.echo(f"wrote {out}", err=True)


# --- gaps ---------------------------------------------------------------------------


@cli.command("gaps")
@click.option("--campaign", "campaign_id", required=True, metavar="ID", help="The campaign to check.")
@click.option("--days", type=int, default=7, show_default=True, help="Silent for this many days (today included).")
@click.option("--township", "township_id", metavar="ID", help="Only villages of this township.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format; csv is UTF-8 with BOM for Excel.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--today", "today_text", metavar="YYYY-MM-DD", help="Treat this day as today (default: county date).")
@with_workspace
def gaps_cmd(campaign_id: str, days: int, township_id: str | None, fmt: str, out: Path | None,
             today_text: str | None, ws: Workspace) -> None:
    """Where a campaign has not been heard: silent villages, unaired scripts, unconfirmed USB exports.

    A village is silent if nothing of the campaign was played (or confirmed)
    in the last --days days, or never. Exports count as unconfirmed once they
    are more than 2 days old.
    """
    from outreach import coverage as cov

    today = _today(today_text)
    with _open(ws, campaign_id) as ctx:
        s = ctx.session
        villages = cov.village_gaps(s, campaign_id=campaign_id, today=today, days=days,
                                    target_village_ids=ctx.targets, township_id=township_id)
        scripts = cov.script_gaps(s, campaign_id=campaign_id, script_ids=ctx.scripts,
                                  target_village_ids=ctx.targets, end=today)
        if township_id is not None:
            scripts = [g for g in scripts if g.township_id == township_id]
        exports = cov.unconfirmed_exports(s, today=today, campaign_id=campaign_id, township_id=township_id)
    if fmt == "json":
        echo_data = {
            "campaign_id": campaign_id, "as_of": today.isoformat(), "days": days,
            "villages": [{"village_id": g.village_id, "village_name": g.village_name, "township_id": g.township_id,
                          "last_reached": _date(g.last_reached) or None, "days_silent": g.days_silent}
                         for g in villages],
            "scripts": [{"township_id": g.township_id, "script_id": g.script_id} for g in scripts],
            "unconfirmed_exports": [{"village_id": u.village_id, "village_name": u.village_name,
                                     "township_id": u.township_id, "slots": u.slots,
                                     "first_date": u.first_date.isoformat(), "last_date": u.last_date.isoformat()}
                                    for u in exports],
        }
        if out is None:
            echo_json(echo_data)
        else:
            _emit(json.dumps(echo_data, ensure_ascii=False, indent=2) + "\n", out)
        return
    if fmt == "csv":
        rows: list[Sequence[Any]] = [GAP_HEADERS]
        rows += [("未覆盖村", g.township_name, g.village_id, g.village_name, "", _date(g.last_reached),
                  "" if g.days_silent is None else g.days_silent) for g in villages]
        rows += [("未播稿件", g.township_name, "", "", g.script_id, "", "") for g in scripts]
        rows += [("未确认导出", u.township_id, u.village_id, u.village_name, "", _date(u.first_date), u.slots)
                 for u in exports]
        _emit(_csv(rows), out)
        return
    parts = [f"未覆盖村（近 {days} 天未播出，截至 {today}）：{len(villages)} 个"]
    if villages:
        parts.append(_table([("乡镇", "村", "最近覆盖", "沉默天数"), *(
            (g.township_name, g.village_name, _date(g.last_reached) or "从未",
             "—" if g.days_silent is None else g.days_silent) for g in villages)]))
    parts.append(f"\n未播出的稿件：{len(scripts)} 个")
    if scripts:
        parts.append(_table([("乡镇", "稿件"), *((g.township_name, g.script_id) for g in scripts)]))
    parts.append(f"\n未确认的U盘导出（超过 {cov.EXPORT_GRACE_DAYS} 天）：{len(exports)} 个村")
    if exports:
        parts.append(_table([("村", "乡镇", "节目数", "最早", "最近"), *(
            (u.village_name, u.township_id, u.slots, _date(u.first_date), _date(u.last_date)) for u in exports)]))
    _emit("\n".join(parts) + "\n", out)


# --- report -------------------------------------------------------------------------


@cli.command("report")
@click.option("--campaign", "campaign_id", required=True, metavar="ID", help="The campaign to report on.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.option("--from", "start_text", metavar="YYYY-MM-DD", help="First day (default: 1st of the --to month).")
@click.option("--to", "end_text", metavar="YYYY-MM-DD", help="Last day, inclusive (default: today).")
@click.option("--days", type=int, default=7, show_default=True, help="Gap window: silent for this many days.")
@click.option("--today", "today_text", metavar="YYYY-MM-DD", help="Treat this day as today (default: county date).")
@with_workspace
def report_cmd(campaign_id: str, out: Path, start_text: str | None, end_text: str | None, days: int,
               today_text: str | None, ws: Workspace) -> None:
    """Write one self-contained HTML page (zh-CN) on a campaign: heatmap, townships, gaps, markets.

    Charts are embedded as images, so the file opens offline and can be
    copied or mailed as it is.
    """
    from outreach import coverage as cov
    from outreach import report

    today = _today(today_text)
    start, end = cov.parse_period(start_text, end_text, today=today)
    with _open(ws, campaign_id) as ctx:
        data = report.collect(ctx.session, campaign_id=campaign_id, start=start, end=end, today=today,
                              gap_days=days, target_village_ids=ctx.targets, script_ids=ctx.scripts,
                              county_name=ctx.county)
    font = report.cjk_font()
    if font is None:
        click.echo("warning: no Chinese font found (fc-list :lang=zh); charts label villages by id. "
                   "Install fonts-noto-cjk or fonts-wqy-zenhei", err=True)
    now = dt.datetime.now(ZoneInfo(TIMEZONE)).strftime("%Y-%m-%d %H:%M")
    report.write_report(out, report.render_html(data, generated_at=now, font=font))
    click.echo(f"wrote {out}: {len(data.villages)} villages, {len(data.village_gaps)} silent for {days}+ days",
               err=True)

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
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import Session

from outreach.cli.base import Workspace, cli, cli_date, echo_json, existing_folder, sheet_options, warn, with_workspace
from outreach.config import TIMEZONE, TZ
from outreach.labels import EVIDENCE

if TYPE_CHECKING:
    from outreach.coverage import ReadTime
    from outreach.planning.workspace import Loaded

TABLE_HEADERS = ("村", "乡镇", "活动", *(EVIDENCE[level] for level in ("confirmed", "heard", "player", "exported")),
                 "漏播", "失败", "上次成功播出", "估计听众")
FAILED_NOTE = "失败含播放中断（程序崩溃时正在播放的节目）"
GAP_HEADERS = ("类型", "乡镇", "村编号", "村", "稿件编号", "稿件", "日期", "数量", "漏播")


@dataclass
class _Context:
    """An open database session plus what the workspace YAML says about one campaign."""

    session: Session
    targets: list[str]
    scripts: list[str]
    county: str
    windows: dict[str, tuple[dt.date | None, dt.date | None]]  # script id -> (valid_from, valid_until)
    loaded: Loaded | None = None  # the workspace, when its YAML loads (for the plan's expected programs)
    campaign_id: str | None = None  # --campaign as an id, when it was typed as a name

    @property
    def titles(self) -> dict[str, str]:
        """Script id → title, from the workspace's library (empty without one)."""
        return {s.id: s.title for s in self.loaded.library} if self.loaded else {}


def _today(text: str | None) -> dt.date:
    """`--today` if given, else today's date in the county (Asia/Shanghai)."""
    from outreach.errors import CoverageError, OutreachError

    now = dt.datetime.now(ZoneInfo(TIMEZONE)).date()
    if text:
        try:
            return cli_date(text, "--today", today=now)
        except OutreachError as exc:
            raise CoverageError(str(exc)) from exc
    return now


def _now(today: dt.date) -> dt.datetime:
    """The moment coverage is read at: now, or the end of `--today` when that day is already over.

    A slot counts as 漏播 once its start plus grace has passed by this moment (coverage.ReadTime).
    """
    end_of_day = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=TZ)
    return min(dt.datetime.now(TZ), end_of_day)


def _read(ws: Workspace, ctx: _Context, start: dt.date, end: dt.date, today: dt.date,
          campaign_id: str | None) -> ReadTime:
    """The ReadTime of a command: now, the workspace's grace, and the plan's programs of the last days."""
    from outreach import coverage as cov
    from outreach.errors import OutreachError

    expected: tuple[Any, ...] = ()
    if ctx.loaded is not None:
        try:
            expected = cov.expected_plans(ctx.loaded, start, end, today=today, campaign_id=campaign_id)
        except OutreachError as exc:
            warn(exc)
            warn("排不出计划，没有任何记录的时段不会算作漏播")
    return cov.ReadTime(now=_now(today), grace_s=ws.config.deliver.grace_s, expected=expected)


def _aired(when: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An air time in Beijing time, or empty."""
    return when.astimezone(TZ).strftime(fmt) if when else ""


def _last_aired_cell(row: Any) -> str:
    """The table's 上次成功播出: the latest air time with the evidence it rests on, e.g. `11-28 06:30 已确认`."""
    found = [(t, level) for level, t in row.last_aired.items() if t is not None]
    if not found:
        return "—"
    when, level = max(found)
    return f"{_aired(when, '%m-%d %H:%M')} {EVIDENCE[level]}"


def _iso(text: str | None, field: str, today: dt.date) -> str | None:
    """A --from/--to as typed, read forgivingly and handed on as YYYY-MM-DD."""
    from outreach.errors import CoverageError, OutreachError

    if not text:
        return None
    try:
        return cli_date(text, field, today=today).isoformat()
    except OutreachError as exc:
        raise CoverageError(str(exc)) from exc


def _township(ws: Workspace, text: str | None) -> str | None:
    """--township as an id or a name; taken as it is when the registry cannot be read."""
    from outreach.errors import OutreachError
    from outreach.planning.registry import load_registry, resolve_township

    if text is None:
        return None
    try:
        registry = load_registry(ws.config.schedules_dir)
    except OutreachError:
        return text
    return resolve_township(registry, text)


@contextlib.contextmanager
def _open(ws: Workspace, campaign_id: str | None) -> Iterator[_Context]:
    """Open the database; with a readable workspace, mirror the registry and read the campaign's targets.

    Coverage lives in the database, so a workspace whose YAML cannot be loaded
    still gets answers, with a warning that never-planned villages and
    unaired scripts cannot be listed.
    """
    from outreach import db
    from outreach.errors import OutreachError
    from outreach.planning.workspace import load, open_database

    config = ws.config
    try:
        loaded = load(config)
    except OutreachError as exc:
        warn(exc)
        warn("只用数据库里的记录；从未排播的村和从未播出的稿件不会列出")
        loaded = None
    if loaded is not None:
        engine = open_database(loaded)
    else:
        engine = db.open_migrated(config.resolved_database_url())
    if campaign_id is not None:  # a name such as 冬季道路交通安全宣传 is taken too
        from outreach.coverage import campaign_by_name

        with db.session(engine) as s:
            campaign_id = campaign_by_name(s, campaign_id)
    targets: list[str] = []
    scripts: list[str] = []
    windows: dict[str, tuple[dt.date | None, dt.date | None]] = {}
    if loaded is not None and campaign_id is not None:
        campaign = loaded.campaign(campaign_id)
        if campaign is not None:
            targets = sorted(campaign.target_villages(loaded.registry))
            scripts = list(campaign.scripts)
            windows = {sid: (loaded.scripts[sid].valid_from, loaded.scripts[sid].valid_until)
                       for sid in scripts if sid in loaded.scripts}
    try:
        with db.session(engine) as s:
            yield _Context(s, targets, scripts, loaded.registry.county if loaded else "", windows, loaded,
                           campaign_id)
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


def _emit(text: str, out: Path | None) -> None:
    from outreach.files import write_text_atomic

    if out is None:
        click.echo(text, nl=False)
        return
    write_text_atomic(out, text)
    click.echo(f"已写入 {out}", err=True)


def _date(d: dt.date | None) -> str:
    return d.isoformat() if d else ""


# --- coverage -----------------------------------------------------------------------


@cli.command("coverage")
@sheet_options
@click.option("--today", "today_text", metavar="日期", help="把这一天当作今天（默认：县里的今天）。")
@with_workspace
def coverage_cmd(campaign_text: str | None, start_text: str | None, end_text: str | None,
                 township_text: str | None, fmt: str, out: Path | None, today_text: str | None, ws: Workspace) -> None:
    """按村和活动统计：有证据的播出（已确认、已监听、仅有播放记录）、待确认、漏播，以及上次成功播出的时间。

    不给 --from/--to 时统计本月至今。给了 --campaign 时，活动覆盖的村
    （schedules/campaigns.yaml）即使从未排播也会列出。到点后过了宽限时间
    仍没有结果的时段算漏播，没有留下任何记录的计划节目也算。日期可写成
    2026-12-01、2026/12/01 或 12月1日。
    """
    from outreach import coverage as cov
    from outreach.errors import CoverageError

    if fmt == "xlsx" and out is None:
        raise CoverageError("--format xlsx 要写入文件；请加上 --out coverage.xlsx")
    today = _today(today_text)
    start, end = cov.parse_period(_iso(start_text, "--from", today), _iso(end_text, "--to", today), today=today)
    township_id = _township(ws, township_text)
    with _open(ws, campaign_text) as ctx:
        campaign_id = ctx.campaign_id or campaign_text
        read = _read(ws, ctx, start, end, today, campaign_id)
        rows = cov.village_coverage(ctx.session, start=start, end=end, campaign_id=campaign_id,
                                    township_id=township_id, target_village_ids=ctx.targets, read=read)
    if fmt == "json":
        text = json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2) + "\n"
        _emit(text, out)
        return
    if fmt == "table":
        table = [TABLE_HEADERS, *(
            (r.village_name, r.township_name, r.campaign_name, r.reached_confirmed, r.reached_heard,
             r.reached_player, r.exported, r.missed, r.failed, _last_aired_cell(r), r.listeners) for r in rows
        )]
        _emit(_table(table) + "\n", out)
        _coverage_notes(rows, start, end)
        return
    from outreach.coverage.sheets import coverage_table, csv_text, xlsx_bytes

    table = coverage_table(rows)  # the same rows as the web's Excel download
    if fmt == "csv":
        _emit(csv_text(table), out)
        return
    from outreach.files import write_bytes_atomic

    assert out is not None
    write_bytes_atomic(out, xlsx_bytes(table))
    click.echo(f"已写入 {out}", err=True)


def _coverage_notes(rows: Sequence[Any], start: dt.date, end: dt.date) -> None:
    """The lines under the coverage table: what was reached, and what is not counted and why."""
    click.echo(f"{start} 至 {end}：共 {len(rows)} 行，已覆盖 {sum(1 for r in rows if r.reached)} 行；"
               f"{FAILED_NOTE}", err=True)
    if unproven := sum(r.unproven for r in rows):
        click.echo(f"另有 {unproven} 次记为已播但没有证据（{EVIDENCE['none']}：播放程序没有放完或没留下证明），"
                   "不算覆盖", err=True)
    if unrecorded := sum(r.unrecorded for r in rows):
        click.echo(f"漏播中有 {unrecorded} 次没有任何播出记录：当时调度器可能没有运行（outreach run）", err=True)


# --- gaps ---------------------------------------------------------------------------


@cli.command("gaps")
@click.option("--campaign", "campaign_id", required=True, metavar="活动", help="要检查的活动，编号或名称。")
@click.option("--days", type=int, default=7, show_default=True, help="连续这么多天没播出算沉默（含今天）。")
@click.option("--township", "township_id", metavar="乡镇", help="只看这个乡镇的村（编号或名称）。")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="输出格式；csv 带 BOM，Excel 可直接打开。")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), callback=existing_folder,
              help="写入这个文件，而不是打印到屏幕。")
@click.option("--today", "today_text", metavar="日期", help="把这一天当作今天（默认：县里的今天）。")
@with_workspace
def gaps_cmd(campaign_id: str, days: int, township_id: str | None, fmt: str, out: Path | None,
             today_text: str | None, ws: Workspace) -> None:
    """活动没覆盖到的地方：沉默的村、没播出的稿件、没确认的U盘导出。

    最近 --days 天（或从来）没有有证据地播出（也没确认）这个活动的村算沉默，
    并列出窗口内的漏播次数。导出超过 2 天仍未确认的，算未确认。
    """
    from outreach import coverage as cov

    today = _today(today_text)
    township_id = _township(ws, township_id)
    cov.check_days(days)
    with _open(ws, campaign_id) as ctx:
        campaign_id = ctx.campaign_id or campaign_id
        s = ctx.session
        read = _read(ws, ctx, today - dt.timedelta(days=days - 1), today, today, campaign_id)
        villages = cov.village_gaps(s, campaign_id=campaign_id, today=today, days=days,
                                    target_village_ids=ctx.targets, township_id=township_id, read=read)
        scripts = cov.script_gaps(s, campaign_id=campaign_id, script_ids=ctx.scripts,
                                  target_village_ids=ctx.targets, end=today, valid=ctx.windows, titles=ctx.titles)
        if township_id is not None:
            scripts = [g for g in scripts if g.township_id == township_id]
        exports = cov.unconfirmed_exports(s, today=today, campaign_id=campaign_id, township_id=township_id)
    if fmt == "json":
        echo_data = _gaps_json(campaign_id, today, days, villages, scripts, exports)
        if out is None:
            echo_json(echo_data)
        else:
            _emit(json.dumps(echo_data, ensure_ascii=False, indent=2) + "\n", out)
        return
    if fmt == "csv":
        rows: list[Sequence[Any]] = [GAP_HEADERS]
        rows += [("未覆盖村", g.township_name, g.village_id, g.village_name, "", "", _date(g.last_reached),
                  "" if g.days_silent is None else g.days_silent, g.missed) for g in villages]
        rows += [("未播稿件", g.township_name, "", "", g.script_id, g.script_name, "", "", "") for g in scripts]
        rows += [("未确认导出", u.township_name or u.township_id, u.village_id, u.village_name, "", "",
                  _date(u.first_date), u.slots, "") for u in exports]
        _emit(_csv(rows), out)
        return
    parts = [f"未覆盖村（近 {days} 天未播出，截至 {today}）：{len(villages)} 个"]
    if villages:
        parts.append(_table([("乡镇", "村", "最近覆盖", "沉默天数", "漏播"), *(
            (g.township_name, g.village_name, _date(g.last_reached) or "从未",
             "—" if g.days_silent is None else g.days_silent, g.missed) for g in villages)]))
    parts.append(f"\n未播出的稿件：{len(scripts)} 个")
    if scripts:
        parts.append(_table([("乡镇", "稿件"), *((g.township_name, g.script_name) for g in scripts)]))
    parts.append(f"\n未确认的U盘导出（超过 {cov.EXPORT_GRACE_DAYS} 天）：{len(exports)} 个村")
    if exports:
        parts.append(_table([("村", "乡镇", "节目数", "最早", "最近"), *(
            (u.village_name, u.township_name or u.township_id, u.slots, _date(u.first_date), _date(u.last_date))
            for u in exports)]))
    _emit("\n".join(parts) + "\n", out)


def _gaps_json(campaign_id: str, today: dt.date, days: int, villages: Sequence[Any], scripts: Sequence[Any],
               exports: Sequence[Any]) -> dict[str, Any]:
    """`gaps --format json`: silent villages (with their 漏播 in the window), unaired scripts, unconfirmed exports."""
    return {
        "campaign_id": campaign_id, "as_of": today.isoformat(), "days": days,
        "villages": [{"village_id": g.village_id, "village_name": g.village_name, "township_id": g.township_id,
                      "last_reached": _date(g.last_reached) or None, "days_silent": g.days_silent,
                      "missed": g.missed}
                     for g in villages],
        "scripts": [{"township_id": g.township_id, "township_name": g.township_name, "script_id": g.script_id,
                     "script_title": g.script_name} for g in scripts],
        "unconfirmed_exports": [{"village_id": u.village_id, "village_name": u.village_name,
                                 "township_id": u.township_id, "township_name": u.township_name, "slots": u.slots,
                                 "first_date": u.first_date.isoformat(), "last_date": u.last_date.isoformat()}
                                for u in exports],
    }


# --- report -------------------------------------------------------------------------


@cli.command("report")
@click.option("--campaign", "campaign_id", required=True, metavar="活动", help="要出报告的活动，编号或名称。")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), callback=existing_folder,
              help="要写入的 HTML 文件。")
@click.option("--from", "start_text", metavar="日期", help="第一天（默认：--to 所在月的 1 日）。")
@click.option("--to", "end_text", metavar="日期", help="最后一天，含当天（默认：今天）。")
@click.option("--days", type=int, default=7, show_default=True, help="盲区窗口：连续这么多天没播出算沉默。")
@click.option("--today", "today_text", metavar="日期", help="把这一天当作今天（默认：县里的今天）。")
@with_workspace
def report_cmd(campaign_id: str, out: Path, start_text: str | None, end_text: str | None, days: int,
               today_text: str | None, ws: Workspace) -> None:
    """为一个活动写一页独立的 HTML 报告：热力图、各乡镇、盲区、集市。

    图表以图片嵌在页面里，文件离线可打开，可直接拷贝或发送。
    """
    from outreach import coverage as cov
    from outreach.coverage import report

    today = _today(today_text)
    start, end = cov.parse_period(_iso(start_text, "--from", today), _iso(end_text, "--to", today), today=today)
    with _open(ws, campaign_id) as ctx:
        campaign_id = ctx.campaign_id or campaign_id
        read = _read(ws, ctx, start, end, today, campaign_id)
        data = report.collect(ctx.session, campaign_id=campaign_id, start=start, end=end, today=today,
                              gap_days=days, target_village_ids=ctx.targets, script_ids=ctx.scripts,
                              county_name=ctx.county, script_windows=ctx.windows, read=read,
                              script_titles=ctx.titles)
    font = report.cjk_font()
    if font is None:
        warn("没有找到中文字体（fc-list :lang=zh），图表里用编号标注村；"
             "请安装 fonts-noto-cjk 或 fonts-wqy-zenhei")
    now = dt.datetime.now(ZoneInfo(TIMEZONE)).strftime("%Y-%m-%d %H:%M")
    report.write_report(out, report.render_html(data, generated_at=now, font=font))
    click.echo(f"已写入 {out}：{len(data.villages)} 个村，其中 {len(data.village_gaps)} 个村已沉默 {days} 天以上",
               err=True)

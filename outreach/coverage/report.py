"""The campaign coverage report: one self-contained HTML page (zh-CN) with matplotlib charts.

`collect` runs the coverage queries; `render_html` is pure given the data and
turns it into a page whose charts are inline base64 PNGs and whose CSS is
inline, so the file can be mailed or copied to a USB stick and opened offline.
The page reads on a phone (tables become cards, charts drawn for its width,
see coverage.charts) and prints on A4.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from sqlmodel import Session

from outreach import coverage as cov
from outreach.coverage.charts import (
    CJK_FAMILIES, LAYOUTS, LEGEND, MAX_LABELLED_VILLAGES, MISSED_CELL, NOTHING_CELL, OFTEN_CELL, ONCE_CELL,
    PENDING_CELL, Chart, Layout, cjk_font, heatmap_grid, heatmap_png, timeline_png, township_bars_png,
)
from outreach.files import write_text_atomic
from outreach.labels import EVIDENCE

__all__ = [
    "CJK_FAMILIES", "MAX_LABELLED_VILLAGES", "MISSED_CELL", "NOTHING_CELL", "OFTEN_CELL", "ONCE_CELL",
    "PENDING_CELL", "Column", "ReportData", "Table", "cjk_font", "collect", "heatmap_grid", "render_html", "tables",
    "write_report",
]


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, already aggregated by the coverage queries."""

    campaign_id: str
    campaign_name: str
    start: dt.date
    end: dt.date
    as_of: dt.date
    gap_days: int
    villages: list[cov.VillageCoverage]
    townships: list[cov.TownshipCoverage]
    village_gaps: list[cov.VillageGap]
    script_gaps: list[cov.ScriptGap]
    unconfirmed: list[cov.UnconfirmedExport]
    markets: list[cov.MarketCoverage]
    timeline: list[cov.HandoutDay]
    heatmap: cov.Heatmap
    county_name: str = ""
    notes: list[str] = field(default_factory=list)


def collect(
    session: Session,
    *,
    campaign_id: str,
    start: dt.date,
    end: dt.date,
    today: dt.date,
    gap_days: int = 7,
    target_village_ids: Iterable[str] = (),
    script_ids: Sequence[str] = (),
    county_name: str = "",
    script_windows: Mapping[str, cov.ValidWindow] | None = None,
    read: cov.ReadTime | None = None,
    script_titles: Mapping[str, str] | None = None,
) -> ReportData:
    """Run every coverage query the report needs. Gaps are as of min(end, today).

    `script_titles` (id -> title) names the scripts in the page's lists; an unknown id shows as itself.

    With `read` (the moment, grace and plan; see coverage.readtime) silence past its slot
    counts as 漏播 in the tables, the gaps and the heatmap.

    Raises CoverageError for an unknown campaign or a bad range.
    """
    cov.check_period(start, end)
    name = cov.check_campaign(session, campaign_id)
    targets = sorted(set(target_village_ids))
    as_of = min(end, today)
    villages = cov.village_coverage(session, start=start, end=end, campaign_id=campaign_id,
                                    target_village_ids=targets, read=read)
    notes = []
    if not targets:
        notes.append("未读取到活动的目标村（schedules/campaigns.yaml），表中只列出有播出安排的村。")
    if not script_ids:
        notes.append("未读取到活动的稿件清单，无法列出未播出的稿件。")
    return ReportData(
        campaign_id=campaign_id, campaign_name=name, start=start, end=end, as_of=as_of, gap_days=gap_days,
        villages=villages, townships=cov.township_rollup(villages),
        village_gaps=cov.village_gaps(session, campaign_id=campaign_id, today=as_of, days=gap_days,
                                      target_village_ids=targets, read=read),
        script_gaps=cov.script_gaps(session, campaign_id=campaign_id, script_ids=list(script_ids),
                                    target_village_ids=targets, end=as_of, valid=script_windows, titles=script_titles),
        unconfirmed=cov.unconfirmed_exports(session, today=as_of, campaign_id=campaign_id),
        markets=cov.market_coverage(session, start=start, end=end),
        timeline=cov.handout_timeline(session, start=start, end=end),
        heatmap=cov.village_day_matrix(session, campaign_id=campaign_id, start=start, end=end,
                                       target_village_ids=targets, read=read),
        county_name=county_name, notes=notes,
    )


# --- page -------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    """The page's template, templates/report.html, loaded from the package."""
    return jinja2.Environment(loader=jinja2.PackageLoader("outreach.coverage", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def _totals(data: ReportData) -> dict[str, Any]:
    """The figures of the cards at the top of the page."""
    population = sum(v.population for v in data.villages)
    listeners = sum(v.listeners for v in data.villages)
    total: dict[str, Any] = {
        name: sum(getattr(v, name) for v in data.villages)
        for name in ("missed", "failed", "interrupted", "exported", "unproven", "unrecorded",
                     "reached_confirmed", "reached_heard", "reached_player")
    }
    return total | {
        "targeted": len(data.villages),
        "reached": sum(1 for v in data.villages if v.reached),
        "slots": sum(v.reached for v in data.villages),
        "listeners": listeners,
        "share": f"{listeners / population:.0%}" if population else "—",
        "leaflets": sum(m.leaflets for m in data.markets),
    }


@dataclass(frozen=True)
class Column:
    """A table column: its label, and its kind (the CSS class of its cells)."""

    label: str
    kind: str = "t"  # t: short text; w: long text, a whole line of a phone card; n: a number, right-aligned


@dataclass(frozen=True)
class Table:
    """One table of the page: columns, rows (texts, and whether the row is all zero), its text when empty.

    On a phone each row is a card: its first `title` cells joined as the card's heading, then
    every other cell as label and value (which is why each cell carries its column's label).
    """

    columns: list[Column]
    rows: list[tuple[list[str], bool]]
    empty: str
    title: int = 1


def _columns(*labels: str) -> list[Column]:
    """Columns from labels, a kind given after a colon: `"人口:n"`, `"上次成功播出:w"`."""
    return [Column(*label.rsplit(":", 1)) if ":" in label else Column(label) for label in labels]


def _cells(*values: object) -> list[str]:
    return ["—" if v is None else str(v) for v in values]


def _reach_tables(data: ReportData) -> tuple[Table, Table]:
    """The 乡镇汇总 and 各村明细 tables: reach by evidence, misses and listeners."""
    ev = {key: f"{label}:n" for key, label in EVIDENCE.items()}
    towns = Table(
        _columns("乡镇", "目标村:n", "已覆盖村:n", ev["confirmed"], ev["heard"], ev["player"], ev["exported"],
                 "漏播:n", "失败:n", "人口:n", "估计听众:n", "上次成功播出:w"),
        [(_cells(t.township_name, t.villages_targeted, t.villages_reached, t.reached_confirmed, t.reached_heard,
                 t.reached_player, t.exported, t.missed, t.failed, t.population, t.listeners,
                 t.last_aired_text or "从未"), not t.villages_reached) for t in data.townships],
        "无数据")
    villages = Table(
        _columns("乡镇", "村", "待播:n", ev["confirmed"], ev["heard"], ev["player"], ev["exported"], ev["none"],
                 "漏播:n", "失败:n", "估计听众:n", "上次成功播出:w"),
        [(_cells(v.township_name, v.village_name, v.planned, v.reached_confirmed, v.reached_heard, v.reached_player,
                 v.exported, v.unproven, v.missed, v.failed, v.listeners, v.last_aired_text or None),
          not v.reached) for v in data.villages],
        "无数据", title=2)
    return towns, villages


def _unaired(data: ReportData) -> list[tuple[list[str], bool]]:
    """未播出的稿件 as one row per township: how many, and their titles."""
    by_town: dict[str, list[str]] = {}
    for g in data.script_gaps:
        by_town.setdefault(g.township_name, []).append(g.script_name)
    return [(_cells(town, len(titles), "、".join(f"「{t}」" for t in titles)), False)
            for town, titles in by_town.items()]


def _gap_tables(data: ReportData) -> tuple[Table, Table, Table]:
    """未覆盖村庄, 未播出的稿件 (by title) and 未确认的U盘导出."""
    days = data.gap_days
    silent = Table(
        _columns("乡镇", "村", "最近覆盖", "已沉默天数:n", f"近 {days} 天漏播:n"),
        [(_cells(g.township_name, g.village_name, g.last_reached or "从未", g.days_silent, g.missed), False)
         for g in data.village_gaps],
        f"所有村近 {days} 天内都已覆盖。", title=2)
    scripts = Table(_columns("乡镇", "稿件数:n", "未播出的稿件:w"), _unaired(data), "无")
    exports = Table(
        _columns("村", "乡镇", "节目数:n", "最早日期", "最近日期"),
        [(_cells(u.village_name, u.township_name or u.township_id, u.slots, u.first_date, u.last_date),
          False) for u in data.unconfirmed],
        "无")
    return silent, scripts, exports


def tables(data: ReportData) -> dict[str, Table]:
    """Every table of the page, by name."""
    towns, villages = _reach_tables(data)
    silent, scripts, exports = _gap_tables(data)
    markets = Table(
        _columns("集市", "发放天数:n", "传单（份）:n", "接触人数:n", "最近发放"),
        [(_cells(m.market_name, m.days, m.leaflets, m.people, m.last_date), not m.days) for m in data.markets],
        "无")
    return {"townships": towns, "villages": villages, "silent": silent, "scripts": scripts, "exports": exports,
            "markets": markets}


def _drawn(draw: Callable[[Layout], Chart | None]) -> list[Chart]:
    """A chart for each layout (none when there is nothing to draw)."""
    return [chart for layout in LAYOUTS if (chart := draw(layout)) is not None]


def render_html(data: ReportData, *, generated_at: str, font: str | None = None) -> str:
    """The report page for `data`; charts use `font` for Chinese labels (ids instead when None)."""
    charts = {
        "heatmap": _drawn(lambda layout: heatmap_png(data.heatmap, font, layout)),
        "townships": _drawn(lambda layout: township_bars_png(data.townships, font, layout)),
        "timeline": _drawn(lambda layout: timeline_png(data.timeline, data.markets, data.start, data.end, font,
                                                       layout)),
    }
    notes = list(data.notes)
    if font is None:
        notes.append("本机未安装中文字体，图中以编号代替中文名称（安装 fonts-noto-cjk 或 fonts-wqy-zenhei 后重新生成）。")
    title = f"{data.county_name}「{data.campaign_name}」宣传覆盖报告"
    return _environment().get_template("report.html").render(
        title=title, d=data, total=_totals(data), charts=charts, tables=tables(data), legend=LEGEND,
        generated_at=generated_at, share_pct=round(cov.LISTEN_SHARE * 100), grace=cov.EXPORT_GRACE_DAYS,
        notes=notes, evidence=EVIDENCE,
    )


def write_report(path: Path, html: str) -> None:
    """Write the page atomically: a reader never sees half a report."""
    write_text_atomic(Path(path), html)

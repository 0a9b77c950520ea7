"""The campaign coverage report: one self-contained HTML page (zh-CN) with matplotlib charts.

`collect` runs the coverage queries; `render_html` is pure given the data and
turns it into a page whose charts are inline base64 PNGs and whose CSS is
inline, so the file can be mailed or copied to a USB stick and opened offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from sqlmodel import Session

from outreach import coverage as cov
from outreach.files import write_text_atomic
from outreach.labels import EVIDENCE

__all__ = ["ReportData", "cjk_font", "collect", "heatmap_grid", "render_html", "write_report"]

CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC",
)
"""Fonts with Simplified Chinese glyphs, best first (Debian: fonts-noto-cjk or fonts-wqy-zenhei)."""

MAX_LABELLED_VILLAGES = 60
"""Above this many villages the heatmap labels townships instead of villages."""

# nothing planned, missed/failed, still pending (planned, exported or without evidence), reached once, twice or more
_COLOURS = ["#e9ecef", "#d9534f", "#f2c94c", "#9fd49a", "#2e7d32"]
_LEGEND = ["无安排", "漏播/失败", "待播/待确认", "播出1次", "播出2次及以上"]
NOTHING_CELL, MISSED_CELL, PENDING_CELL, ONCE_CELL, OFTEN_CELL = range(5)
"""The heatmap's cell categories, indexes into _COLOURS and _LEGEND."""


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
) -> ReportData:
    """Run every coverage query the report needs. Gaps are as of min(end, today).

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
                                    target_village_ids=targets, end=as_of, valid=script_windows),
        unconfirmed=cov.unconfirmed_exports(session, today=as_of, campaign_id=campaign_id),
        markets=cov.market_coverage(session, start=start, end=end),
        timeline=cov.handout_timeline(session, start=start, end=end),
        heatmap=cov.village_day_matrix(session, campaign_id=campaign_id, start=start, end=end,
                                       target_village_ids=targets, read=read),
        county_name=county_name, notes=notes,
    )


# --- fonts and charts -------------------------------------------------------------


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, or None.

    Looks in matplotlib's font list first, then asks fontconfig (`fc-list
    :lang=zh`) so that a font installed after matplotlib built its cache is
    still found.
    """
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((n for n in CJK_FAMILIES if n in names), None)

    found = known()
    if found or not shutil.which("fc-list"):
        return found
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True,
                                 timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        path = line.split(":")[0].strip()
        if path:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
    return known()


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rc(font: str | None) -> dict[str, Any]:
    rc: dict[str, Any] = {"axes.unicode_minus": False, "font.size": 9}
    if font:
        from matplotlib import font_manager

        # WenQuanYi ships only a "medium" (500) face; asking for 400 logs a warning per draw.
        weights = [f.weight for f in font_manager.fontManager.ttflist if f.name == font]
        rc.update({"font.family": "sans-serif", "font.sans-serif": [font, "DejaVu Sans"]})
        if weights and "normal" not in weights and 400 not in weights:
            for key in ("font.weight", "axes.labelweight", "axes.titleweight", "figure.titleweight",
                        "figure.labelweight"):
                rc[key] = weights[0]
    return rc


def _date_ticks(ax: Any, dates: Sequence[dt.date], width_in: float) -> None:
    fit = max(4, int(width_in * 1.4))  # labels like "12/31" need about 0.7 inch each
    step = -(-len(dates) // fit)
    positions = list(range(0, len(dates), step))
    ax.set_xticks(positions, [f"{dates[i].month}/{dates[i].day}" for i in positions])


def _category(reached: int, pending: int, missed: int, scheduled: int) -> int:
    """One village-day's colour: reached with evidence, else any silence is 漏播, else still to come."""
    if reached:
        return ONCE_CELL if reached == 1 else OFTEN_CELL
    if missed:
        return MISSED_CELL
    if pending:
        return PENDING_CELL
    return MISSED_CELL if scheduled else NOTHING_CELL


def heatmap_grid(hm: cov.Heatmap) -> list[list[int]]:
    """The category (NOTHING_CELL … OFTEN_CELL) of every village-day of the heatmap, row by row."""
    return [[_category(*cell) for cell in zip(row.reached, row.pending, row.missed, row.scheduled, strict=True)]
            for row in hm.rows]


def heatmap_png(hm: cov.Heatmap, font: str | None) -> str | None:
    """Village x day heatmap of reached slots, as a PNG data URI (None if there are no villages)."""
    if not hm.rows or not hm.dates:
        return None
    import matplotlib
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    grid = np.array(heatmap_grid(hm))
    n_rows = len(hm.rows)
    height = min(16.0, 1.6 + 0.2 * min(n_rows, MAX_LABELLED_VILLAGES) + 0.012 * max(0, n_rows - MAX_LABELLED_VILLAGES))
    width = min(16.0, max(6.0, 2.5 + 0.22 * len(hm.dates)))
    with matplotlib.rc_context(_rc(font)):
        fig = _figure(width, height)
        ax = fig.add_subplot()
        ax.imshow(grid, aspect="auto", interpolation="nearest",
                  cmap=ListedColormap(_COLOURS), norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5, 4.5], 5))
        _date_ticks(ax, hm.dates, width)
        if n_rows <= MAX_LABELLED_VILLAGES:
            labels = [row.village_name if font else row.village_id for row in hm.rows]
            ax.set_yticks(range(n_rows), labels)
        else:
            starts = [i for i, row in enumerate(hm.rows) if i == 0 or row.township_id != hm.rows[i - 1].township_id]
            ends = [*starts[1:], n_rows]
            ax.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)],
                          [hm.rows[a].township_name if font else hm.rows[a].township_id for a in starts])
            for a in starts[1:]:
                ax.axhline(a - 0.5, color="white", linewidth=1.5)
        if font:
            fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(_COLOURS, _LEGEND, strict=True)],
                       loc="outside upper center", ncols=5, frameon=False)
        return _png(fig)


def township_bars_png(townships: Sequence[cov.TownshipCoverage], font: str | None) -> str | None:
    """Bars per township: villages targeted and villages reached, as a PNG data URI."""
    if not townships:
        return None
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(_rc(font)):
        fig = _figure(8, 1.2 + 0.45 * len(townships))
        ax = fig.add_subplot()
        ys = list(range(len(townships)))
        ax.barh(ys, [t.villages_targeted for t in townships], color="#dee2e6",
                label="目标村" if font else None)
        ax.barh(ys, [t.villages_reached for t in townships], color="#2e7d32", height=0.5,
                label="已覆盖村" if font else None)
        for y, t in zip(ys, townships, strict=True):
            ax.text(t.villages_targeted, y, f" {t.villages_reached}/{t.villages_targeted}", va="center")
        ax.set_yticks(ys, [t.township_name if font else t.township_id for t in townships])
        ax.invert_yaxis()
        ax.set_xlim(0, max(t.villages_targeted for t in townships) * 1.15 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines[["top", "right"]].set_visible(False)
        if font:
            ax.set_xlabel("村数")
            ax.legend(loc="lower right", frameon=False)
        return _png(fig)


def timeline_png(timeline: Sequence[cov.HandoutDay], markets: Sequence[cov.MarketCoverage],
                 start: dt.date, end: dt.date, font: str | None) -> str | None:
    """Leaflets per market-day over the period, one colour per market, as a PNG data URI."""
    if not timeline:
        return None
    import matplotlib
    from matplotlib.dates import AutoDateLocator, DateFormatter

    names = {m.market_id: m.market_name for m in markets}
    by_market: dict[str, list[cov.HandoutDay]] = {}
    for h in timeline:
        by_market.setdefault(h.market_id, []).append(h)
    with matplotlib.rc_context(_rc(font)):
        fig = _figure(10, 3.2)
        ax = fig.add_subplot()
        palette = matplotlib.colormaps["tab10"].colors
        for i, (mid, days) in enumerate(sorted(by_market.items())):
            colour = palette[i % len(palette)]
            label = names.get(mid, mid) if font else mid
            ax.vlines([d.date for d in days], 0, [d.leaflets for d in days], colors=[colour], linewidth=2, alpha=0.5)
            ax.scatter([d.date for d in days], [d.leaflets for d in days], color=colour,
                       s=[max(12.0, d.people / 3) for d in days], label=label, zorder=3)
        ax.set_xlim(start - dt.timedelta(days=1), end + dt.timedelta(days=1))
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(AutoDateLocator(maxticks=16))
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
        ax.spines[["top", "right"]].set_visible(False)
        if font:
            ax.set_ylabel("发放传单（份）")
        fig.legend(loc="outside right upper", frameon=False)
        return _png(fig)


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


def render_html(data: ReportData, *, generated_at: str, font: str | None = None) -> str:
    """The report page for `data`; charts use `font` for Chinese labels (ids instead when None)."""
    total = _totals(data)
    charts = {
        "heatmap": heatmap_png(data.heatmap, font),
        "townships": township_bars_png(data.townships, font),
        "timeline": timeline_png(data.timeline, data.markets, data.start, data.end, font),
    }
    notes = list(data.notes)
    if font is None:
        notes.append("本机未安装中文字体，图中以编号代替中文名称（安装 fonts-noto-cjk 或 fonts-wqy-zenhei 后重新生成）。")
    title = f"{data.county_name}「{data.campaign_name}」宣传覆盖报告"
    return _environment().get_template("report.html").render(
        title=title, d=data, total=total, charts=charts, generated_at=generated_at,
        share_pct=round(cov.LISTEN_SHARE * 100), grace=cov.EXPORT_GRACE_DAYS, notes=notes,
        evidence=EVIDENCE,
    )


def write_report(path: Path, html: str) -> None:
    """Write the page atomically: a reader never sees half a report."""
    write_text_atomic(Path(path), html)

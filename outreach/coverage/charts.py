"""The report's matplotlib charts, each drawn for a desktop or printed page and for a phone.

A chart scaled down to fit a screen shrinks its text with it, so none is scaled: each is drawn
at the width it is shown at (`WIDE` for a desktop column and an A4 page, `NARROW` for a phone),
with every text at `FONT_PT`, which is 12.5 CSS px at that width. Images carry `DENSITY` image
pixels per CSS pixel, so they stay sharp on a phone and on paper.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from outreach.coverage.heatmap import Heatmap
from outreach.coverage.markets import HandoutDay, MarketCoverage
from outreach.coverage.reach import TownshipCoverage

__all__ = [
    "CJK_FAMILIES", "FONT_PT", "LAYOUTS", "LEGEND", "MAX_LABELLED_VILLAGES", "NARROW", "WIDE", "Chart", "Layout",
    "cjk_font", "heatmap_grid", "heatmap_png", "timeline_png", "township_bars_png",
]

CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "Microsoft YaHei", "PingFang SC",
)
"""Fonts with Simplified Chinese glyphs, best first (Debian: fonts-noto-cjk or fonts-wqy-zenhei)."""

MAX_LABELLED_VILLAGES = 60
"""Above this many villages the heatmap labels townships instead of villages."""

CSS_PX_PER_INCH = 100
"""A figure inch is shown as this many CSS pixels."""
DENSITY = 2
"""Image pixels per CSS pixel."""
FONT_PT = 9.0
"""Every text in a chart: 9 pt at 100 CSS px per inch is 12.5 CSS px, over the 11 px a phone needs."""

# nothing planned, missed/failed, still pending (planned, exported or without evidence), reached once, twice or more
_COLOURS = ["#e9ecef", "#d9534f", "#f2c94c", "#9fd49a", "#2e7d32"]
_LEGEND = ["无安排", "漏播/失败", "待播/待确认", "播出1次", "播出2次及以上"]
LEGEND = list(zip(_COLOURS, _LEGEND, strict=True))
"""The heatmap's (colour, label) pairs; the page shows them as text beside the chart."""
NOTHING_CELL, MISSED_CELL, PENDING_CELL, ONCE_CELL, OFTEN_CELL = range(5)
"""The heatmap's cell categories, indexes into LEGEND."""


@dataclass(frozen=True)
class Layout:
    """Where a chart is shown: its name (the CSS class) and its width in figure inches."""

    name: str
    width_in: float


WIDE = Layout("wide", 7.0)
"""700 CSS px: the desktop column, and an A4 page less 10 mm margins (718 px), unscaled."""
NARROW = Layout("narrow", 3.4)
"""340 CSS px: a 390 px phone less the page's margins."""
LAYOUTS = (WIDE, NARROW)


@dataclass(frozen=True)
class Chart:
    """One chart drawn for one layout: a PNG data URI, its CSS size, and its smallest text in image pixels."""

    layout: str
    src: str
    width: int
    height: int
    text_px: float


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

    return Figure(figsize=(width, height), dpi=CSS_PX_PER_INCH, layout="constrained")


def _chart(fig: Any, layout: Layout) -> Chart:
    """The figure as a PNG at DENSITY image pixels per CSS pixel."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=CSS_PX_PER_INCH * DENSITY, metadata={"Software": None})
    width, height = fig.get_size_inches()
    return Chart(layout.name, "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
                 round(width * CSS_PX_PER_INCH), round(height * CSS_PX_PER_INCH),
                 FONT_PT / 72 * CSS_PX_PER_INCH * DENSITY)


def _rc(font: str | None) -> dict[str, Any]:
    rc: dict[str, Any] = {"axes.unicode_minus": False, "font.size": FONT_PT}
    rc.update({key: FONT_PT for key in ("axes.labelsize", "axes.titlesize", "xtick.labelsize", "ytick.labelsize",
                                         "legend.fontsize", "figure.titlesize")})
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
    fit = max(3, int(width_in * 1.2))  # labels like "12/31" need about 0.8 inch each at FONT_PT
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


def heatmap_grid(hm: Heatmap) -> list[list[int]]:
    """The category (NOTHING_CELL … OFTEN_CELL) of every village-day of the heatmap, row by row."""
    return [[_category(*cell) for cell in zip(row.reached, row.pending, row.missed, row.scheduled, strict=True)]
            for row in hm.rows]


def _row_labels(ax: Any, hm: Heatmap, font: str | None) -> None:
    """Villages down the side, or townships (with a white rule between them) when the villages are too many."""
    n_rows = len(hm.rows)
    if n_rows <= MAX_LABELLED_VILLAGES:
        ax.set_yticks(range(n_rows), [row.village_name if font else row.village_id for row in hm.rows])
        return
    starts = [i for i, row in enumerate(hm.rows) if i == 0 or row.township_id != hm.rows[i - 1].township_id]
    ends = [*starts[1:], n_rows]
    ax.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)],
                  [hm.rows[a].township_name if font else hm.rows[a].township_id for a in starts])
    for a in starts[1:]:
        ax.axhline(a - 0.5, color="white", linewidth=1.5)


def heatmap_png(hm: Heatmap, font: str | None, layout: Layout = WIDE) -> Chart | None:
    """Village x day heatmap of reached slots (None if there are no villages); its legend is the page's LEGEND."""
    if not hm.rows or not hm.dates:
        return None
    import matplotlib
    import numpy as np
    from matplotlib.colors import BoundaryNorm, ListedColormap

    n_rows = len(hm.rows)
    height = min(16.0, 0.8 + 0.2 * min(n_rows, MAX_LABELLED_VILLAGES) + 0.012 * max(0, n_rows - MAX_LABELLED_VILLAGES))
    with matplotlib.rc_context(_rc(font)):
        fig = _figure(layout.width_in, height)
        ax = fig.add_subplot()
        ax.imshow(np.array(heatmap_grid(hm)), aspect="auto", interpolation="nearest",
                  cmap=ListedColormap(_COLOURS), norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5, 3.5, 4.5], 5))
        _date_ticks(ax, hm.dates, layout.width_in)
        _row_labels(ax, hm, font)
        return _chart(fig, layout)


def township_bars_png(townships: Sequence[TownshipCoverage], font: str | None,
                      layout: Layout = WIDE) -> Chart | None:
    """Bars per township: villages targeted and villages reached."""
    if not townships:
        return None
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(_rc(font)):
        fig = _figure(layout.width_in, 1.3 + 0.4 * len(townships))
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
        ax.set_xlim(0, max(t.villages_targeted for t in townships) * 1.25 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4 if layout is NARROW else "auto"))
        ax.spines[["top", "right"]].set_visible(False)
        if font:
            ax.set_xlabel("村数")
            fig.legend(loc="outside upper center", ncols=2, frameon=False)
        return _chart(fig, layout)


def timeline_png(timeline: Sequence[HandoutDay], markets: Sequence[MarketCoverage],
                 start: dt.date, end: dt.date, font: str | None, layout: Layout = WIDE) -> Chart | None:
    """Leaflets per market-day over the period, one colour per market."""
    if not timeline:
        return None
    import matplotlib
    from matplotlib.dates import AutoDateLocator, DateFormatter

    names = {m.market_id: m.market_name for m in markets}
    by_market: dict[str, list[HandoutDay]] = {}
    for h in timeline:
        by_market.setdefault(h.market_id, []).append(h)
    legend_rows = -(-len(by_market) // 2) if layout is NARROW else 0
    with matplotlib.rc_context(_rc(font)):
        fig = _figure(layout.width_in, 2.6 + 0.25 * legend_rows if layout is NARROW else 3.2)
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
        ax.xaxis.set_major_locator(AutoDateLocator(maxticks=max(3, int(layout.width_in * 1.2))))
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d"))
        ax.spines[["top", "right"]].set_visible(False)
        if font:
            ax.set_ylabel("发放传单（份）")
        if layout is NARROW:
            fig.legend(loc="outside lower center", ncols=2, frameon=False)
        else:
            fig.legend(loc="outside right upper", frameon=False)
        return _chart(fig, layout)

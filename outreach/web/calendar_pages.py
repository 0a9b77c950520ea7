"""The schedule calendar: a week or a month per township or village, with programs, campaigns, market days
(集) and blackouts on each day, coloured by how the day's programs went (a planned day without air is
漏播, never 无安排); a day links to its programs on the plan page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from outreach.errors import OutreachError
from outreach.labels import SLOT
from outreach.models import PROBLEMS, REACHED
from outreach.planning.market_days import lunar_label
from outreach.planning.plan import Program
from outreach.planning.registry import Registry
from outreach.planning.workspace import load, plan_days
from outreach.web import data_coverage
from outreach.web.page_kit import bad_request, not_found, render, signed_in
from outreach.web.params import parse_day

router = APIRouter()
VIEWS = ("month", "week")


DAY_STATES = {"none": "无安排", "untracked": "无记录", "planned": "待播", "waiting": "待确认", "aired": "已播",
              "partial": "部分漏播", "missed": "漏播"}
"""How a day went, as the calendar colours it: 无安排 only when nothing was planned or logged that day;
无记录 for planned days before the database's first record (the county was not using outreach yet)."""
_REACHED = {s.value for s in REACHED}
_PROBLEMS = {s.value for s in PROBLEMS}
Key = tuple[str, str, date]


@dataclass
class Day:
    """One calendar day as the page shows it."""

    date: date
    in_period: bool
    programs: int = 0
    campaigns: Counter[str] = field(default_factory=Counter)  # campaign id -> programs carrying it
    markets: list[str] = field(default_factory=list)  # market names held that day for the chosen villages
    blackouts: list[str] = field(default_factory=list)  # reasons
    listing: list[Program] = field(default_factory=list)  # a single village's programs
    lunar: str = ""
    outcomes: Counter[str] = field(default_factory=Counter)  # shown status -> programs (planned or logged)
    statuses: dict[str, str] = field(default_factory=dict)  # a single village's programs: slot -> shown status
    trouble: Counter[str] = field(default_factory=Counter)  # township id -> its programs that did not air
    tracked: bool = True  # on or after the database's first record

    @property
    def state(self) -> str:
        """The day's colour (DAY_STATES): a day with programs where nothing aired is 漏播, never 无安排."""
        o = self.outcomes
        if not sum(o.values()):
            return "untracked" if self.programs and not self.tracked else "none"
        reached = sum(n for st, n in o.items() if st in _REACHED)
        problems = sum(n for st, n in o.items() if st in _PROBLEMS)
        if problems:
            return "partial" if reached else "missed"
        if o["planned"]:
            return "planned"
        return "waiting" if o["exported"] else "aired"


def period(view: str, anchor: date) -> tuple[date, date, date, date]:
    """(grid start, grid end, period start, period end): whole Monday-to-Sunday weeks around the period."""
    if view == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return start, start + timedelta(days=6), start, start + timedelta(days=6)
    first = anchor.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return (first - timedelta(days=first.weekday()), last + timedelta(days=6 - last.weekday()), first, last)


def summarize(registry: Registry, programs: Sequence[Program], grid: tuple[date, date, date, date],
              village_ids: Collection[str], *, single: bool, outcomes: Mapping[Key, str] | None = None,
              tracked_from: date | None = None) -> list[Day]:
    """Per day of the grid: programs, campaigns, market days and blackouts that touch `village_ids`, and how
    the programs went (`outcomes`: (village, slot, day) -> shown status, planned and logged ones; days before
    `tracked_from` have no records to tell). Pure."""
    start, end, first, last = grid
    chosen = set(village_ids)
    townships = {registry.villages[v].township_id for v in chosen}
    reach = {m.id: registry.market_villages(m.id) & chosen for m in registry.markets.values()}
    days = {start + timedelta(days=i): Day(start + timedelta(days=i), first <= start + timedelta(days=i) <= last)
            for i in range((end - start).days + 1)}
    for p in programs:
        if p.village_id in chosen and p.date in days:
            d = days[p.date]
            d.programs += 1
            d.campaigns.update(p.campaign_ids)
            if single:
                d.listing.append(p)
    for (village, slot, day), status in (outcomes or {}).items():
        if village in chosen and day in days:
            days[day].outcomes[status] += 1
            if single:
                days[day].statuses[slot] = status
            elif status in _PROBLEMS:
                days[day].trouble[registry.villages[village].township_id] += 1
    for d in days.values():
        d.tracked = tracked_from is None or d.date >= tracked_from
        d.markets = [m.name for m in registry.markets.values() if reach[m.id] and m.rule.matches(d.date)]
        for b in registry.blackouts:
            if d.date in b.dates and (chosen & set(b.village_ids) or townships & set(b.township_ids)):
                only = "、".join(SLOT[s] for s in b.slots)
                d.blackouts.append(f"{only}静音：{b.reason}" if only else f"静音：{b.reason}")
        try:
            d.lunar = lunar_label(d.date)
        except OutreachError:
            d.lunar = ""
    return list(days.values())


def _query(**values: str) -> str:
    return urlencode({k: v for k, v in values.items() if v})


@router.get("/calendar", response_class=HTMLResponse)
def calendar_page(request: Request) -> Response:
    user, ctx = signed_in(request)
    q = request.query_params
    view = q.get("view") or "month"
    if view not in VIEWS:
        raise bad_request(f"没有「{view}」这种视图。", "请选「按月」或「按周」。")
    anchor = parse_day(q.get("date"), "日期", ctx.today(), today=ctx.today())
    township = (q.get("township") or "").strip()
    village = (q.get("village") or "").strip()
    loaded = load(ctx.config)
    reg = loaded.registry
    if township and township not in reg.townships:
        raise not_found("乡镇", township, "请在下拉框里选择乡镇，或留空查看全县。")
    if village and village not in reg.villages:
        raise not_found("村庄", village, "请在下拉框里选择村庄，或留空查看全部村庄。")
    if village:
        chosen = [village]
        township = reg.villages[village].township_id
    else:
        chosen = sorted(v.id for v in reg.villages.values() if not township or v.township_id == township)
    grid = period(view, anchor)
    result = plan_days(loaded, grid[0], grid[1], village_ids=chosen)
    since = data_coverage.first_record_day(ctx.engine, ctx.now())
    outcomes = data_coverage.program_outcomes(ctx.config, ctx.engine, grid[0], grid[1], now=ctx.now(), since=since,
                                     programs=result.programs,
                                     village_ids=None if len(chosen) == len(reg.villages) else chosen)
    days = summarize(reg, result.programs, grid, chosen, single=bool(village), outcomes=outcomes, tracked_from=since)
    step = timedelta(days=7) if view == "week" else timedelta(days=1)
    prev_day = grid[2] - step if view == "week" else (grid[2] - step).replace(day=1)
    next_day = grid[3] + timedelta(days=1)
    scope = dict(township=township, village=village)
    return render(
        request, "calendar.html", user=user, view=view, days=days, grid=grid, anchor=anchor, township=township,
        village=village, registry=reg, campaign_names={c.id: c.name for c in loaded.campaigns},
        script_titles={s.id: s.title for s in loaded.library},
        prev_q=_query(view=view, date=prev_day.isoformat(), **scope),
        next_q=_query(view=view, date=next_day.isoformat(), **scope),
        week_q=_query(view="week", date=anchor.isoformat(), **scope),
        month_q=_query(view="month", date=anchor.isoformat(), **scope),
        day_q=lambda d: _query(**{"from": d.isoformat(), "days": "1", **scope}),
        villages_shown=len(chosen), DAY_STATES=DAY_STATES,
    )

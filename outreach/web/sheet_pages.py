"""Excel downloads of what the coverage pages show: coverage per village, and the as-run log one broadcast a row.

Both take the pages' filters (campaign, from/to or the last `days`, township, village) and give the same
rows as `outreach coverage --format xlsx` and `outreach log --format xlsx`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from outreach.coverage.common import MAX_DAYS
from outreach.coverage.sheets import XLSX_TYPE, Table, xlsx_bytes
from outreach.web import data_coverage, data_places
from outreach.web.page_kit import Context, attachment, ctx_of, require_user
from outreach.web.params import check_range, days_back, parse_day, parse_int, query_value

router = APIRouter()


@dataclass(frozen=True)
class Filters:
    """A download's filters as the page's link carries them; None: all."""

    start: date
    end: date
    campaign_id: str | None
    township_id: str | None
    village_id: str | None


def _filters(request: Request, today: date) -> Filters:
    """from/to (or the last `days` up to today; default: this month so far), campaign, township, village."""
    end = parse_day(query_value(request, "to"), "结束日期", today, today=today)
    days = query_value(request, "days")
    default_start = days_back(end, parse_int(days, "天数", None, 1, MAX_DAYS, " 天")) if days else end.replace(day=1)
    start = parse_day(query_value(request, "from"), "开始日期", default_start, today=today)
    check_range(start, end, MAX_DAYS, "下载的日期范围")

    def one(name: str) -> str | None:
        return (query_value(request, name) or "").strip()[:64] or None

    return Filters(start, end, one("campaign"), one("township"), one("village"))


def _download(request: Request, table: Table, what: str, f: Filters, fallback: str) -> Response:
    """The workbook as a download named 播出记录_冬季道路交通安全宣传_2026-12-01至2026-12-10.xlsx."""
    campaign = data_places.campaign(ctx_of(request).engine, f.campaign_id) if f.campaign_id else None
    name = f"{what}_{campaign.name if campaign else '全部活动'}_{f.start.isoformat()}至{f.end.isoformat()}.xlsx"
    return Response(xlsx_bytes(table), media_type=XLSX_TYPE,
                    headers=attachment(name.replace("/", "_").replace("\\", "_"), fallback))


async def _send(request: Request, what: str, fallback: str, build: Callable[[Context, Filters], Table]) -> Response:
    """The workbook `build` makes for the request's filters, as a download (any logged-in user)."""
    require_user(request)
    ctx = ctx_of(request)
    f = _filters(request, ctx.today())
    table = await run_in_threadpool(build, ctx, f)
    return _download(request, table, what, f, fallback)


@router.get("/downloads/coverage.xlsx")
async def coverage_download(request: Request) -> Response:
    """覆盖情况 per village and campaign, as the campaign and gaps pages show it."""
    return await _send(request, "覆盖情况", "coverage.xlsx", lambda ctx, f: data_coverage.coverage_sheet(
        ctx.config, ctx.engine, start=f.start, end=f.end, campaign_id=f.campaign_id, township_id=f.township_id,
        now=ctx.local_now()))


@router.get("/downloads/log.xlsx")
async def log_download(request: Request) -> Response:
    """播出记录: one row per broadcast, statuses as of now (read-time 漏播)."""
    return await _send(request, "播出记录", "log.xlsx", lambda ctx, f: data_coverage.log_sheet(
        ctx.config, ctx.engine, start=f.start, end=f.end, campaign_id=f.campaign_id, township_id=f.township_id,
        village_id=f.village_id, now=ctx.local_now()))

"""Prometheus metrics at GET /metrics: a custom collector that reads the database when scraped.

The values are true whichever process runs the scheduler, because nothing is counted in this one:
each scrape asks the database (and today's plan) through delivery.health, as `outreach status` does.
The route needs no login session; it is guarded by a bearer token instead (`[web] metrics_token`
in outreach.toml, sent as `Authorization: Bearer <token>`), and answers 404 while none is set.

Metrics (all gauges but the histogram):
- outreach_scheduler_up, outreach_scheduler_heartbeat_age_seconds (absent before any scheduler ran);
- outreach_programs_today{status}: today's village programs by the status people see (as on 今天);
- outreach_stations_online, outreach_stations_total (registered, not revoked);
- outreach_alert_latency_seconds: histogram of 紧急插播 from sending (Alert.sent_at) to playing
  (AlertDelivery.played_at) on each station;
- outreach_export_age_seconds (absent before any export), outreach_usb_villages;
- outreach_plan_ok: 0 when today's plan cannot be computed from the workspace files.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from outreach.config import Config
from outreach.db import session
from outreach.delivery.health import county_status
from outreach.errors import OutreachError
from outreach.models import STATUS_PROGRESS, Alert, AlertDelivery
from outreach.planning.workspace import Loaded, load
from outreach.web.page_kit import ctx_of

__all__ = ["router", "OutreachCollector", "LATENCY_BUCKETS", "PATH"]

log = logging.getLogger("outreach.web")
router = APIRouter()
PATH = "/metrics"
LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Seconds from sending an alert to a station playing it: a few seconds online, minutes through a reconnect."""
_TEXT = "text/plain; charset=utf-8"


def _stamp(config: Config) -> tuple[float, ...]:
    """When the workspace files a plan reads last changed (a new stamp loads the workspace again)."""
    paths = [config.workspace / "outreach.toml", *config.schedules_dir.glob("*.yaml"), config.scripts_dir,
             *config.scripts_dir.glob("*")]
    return tuple(sorted(p.stat().st_mtime for p in paths if p.exists()))


class OutreachCollector(Collector):
    """Collects every outreach metric from the database at scrape time (prometheus_client custom collector)."""

    def __init__(self, config: Config, engine: Engine, now: Callable[[], datetime]) -> None:
        self.config, self.engine, self.now = config, engine, now
        self._loaded: tuple[tuple[float, ...], Loaded] | None = None

    def _workspace(self) -> Loaded | None:
        """The workspace, loaded again only when one of its files changed; None if it cannot be loaded."""
        stamp = _stamp(self.config)
        if self._loaded is None or self._loaded[0] != stamp:
            try:
                self._loaded = (stamp, load(self.config))
            except OutreachError:
                return None
        return self._loaded[1]

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        loaded = self._workspace()
        status = county_status(self.config, self.engine, now=now, loaded=loaded)  # None: it says why the plan failed
        sched = status.scheduler
        yield _gauge("outreach_scheduler_up", "主调度器在运行：1（心跳不到 120 秒），0 没有运行",
                     float(sched.up))
        if sched.age_s is not None:
            yield _gauge("outreach_scheduler_heartbeat_age_seconds",
                         "距主调度器（或最后一个调度器）最后一次心跳的秒数", sched.age_s)
        programs = GaugeMetricFamily("outreach_programs_today",
                                     "今天各村节目按状态计数（开播加宽限时间后仍待播的算漏播）",
                                     labels=["status"])
        for st in STATUS_PROGRESS:
            programs.add_metric([st.value], float(status.programs[st.value]))
        yield programs
        yield _gauge("outreach_plan_ok", "今天的安排能否由工作区文件算出：1 能，0 不能",
                     float(not status.plan_problem))
        yield _gauge("outreach_stations_online", "在线的村广播站播放盒（已登记、未注销）",
                     float(status.stations_online))
        yield _gauge("outreach_stations_total", "已登记、未注销的村广播站播放盒",
                     float(status.stations_total))
        yield _gauge("outreach_usb_villages", "靠 U 盘节目包的村", float(status.usb_villages))
        if status.export_age_s is not None:
            yield _gauge("outreach_export_age_seconds", "距最近一次导出 U 盘节目包的秒数（播出记录里的 exported_at）",
                         status.export_age_s)
        yield self._alert_latency()

    def _alert_latency(self) -> HistogramMetricFamily:
        with session(self.engine) as s:
            rows = s.execute(sa.select(Alert.sent_at, AlertDelivery.played_at)
                             .join(AlertDelivery, AlertDelivery.alert_id == Alert.id)
                             .where(AlertDelivery.played_at.is_not(None))).all()
        latencies = [max(0.0, (played - sent).total_seconds()) for sent, played in rows]
        buckets = [(_le(b), float(sum(1 for x in latencies if x <= b))) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", float(len(latencies))))
        return HistogramMetricFamily("outreach_alert_latency_seconds",
                                     "紧急插播从发出到播放盒播出的秒数",
                                     buckets=buckets, sum_value=math.fsum(latencies))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _le(bound: float) -> str:
    return str(int(bound)) if bound.is_integer() else str(bound)


def _registry(request: Request) -> CollectorRegistry:
    """This app's registry (one per app, never the process-wide default, so test apps do not collide)."""
    state = request.app.state
    found: CollectorRegistry | None = getattr(state, "metrics_registry", None)
    if found is None:
        ctx = ctx_of(request)
        found = CollectorRegistry(auto_describe=False)
        found.register(OutreachCollector(ctx.config, ctx.engine, ctx.now))
        state.metrics_registry = found
    return found


def _token_ok(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get(PATH)
def metrics(request: Request) -> Response:
    """The Prometheus text format, for a scraper holding `[web] metrics_token` (no login session)."""
    token = ctx_of(request).config.web.metrics_token
    if not token:
        return Response("没有启用监控指标：请在 outreach.toml 的 [web] 里设置 metrics_token，然后重启 outreach serve。\n",
                        status_code=404, media_type=_TEXT)
    if not _token_ok(request, token):
        log.warning("已拒绝 %s 读取 /metrics：令牌不对或没有带令牌",
                    request.client.host if request.client else "unknown")
        return Response("需要令牌：请在请求头里带 `Authorization: Bearer <metrics_token>`（见 outreach.toml 的 [web]）。\n",
                        status_code=401, media_type=_TEXT, headers={"WWW-Authenticate": 'Bearer realm="outreach"'})
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_LATEST)


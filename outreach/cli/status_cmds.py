"""CLI: `status` (the county at a glance, for a clerk and for monitoring; exit 2 while the scheduler is down)."""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace

SCHEDULER_DOWN = 2
"""Exit status while no scheduler runs (1 stays what every command exits with on an error)."""
_ORDER = ("missed", "failed", "interrupted", "planned", "exported", "played", "confirmed")


def _local(iso: str | None, fmt: str = "%m-%d %H:%M") -> str:
    from outreach.config import TZ

    return datetime.fromisoformat(iso).astimezone(TZ).strftime(fmt) if iso else "从未"


def _lines(data: dict[str, Any]) -> list[str]:
    """`outreach status` as lines of text: the scheduler first, then today, stations, exports, what to do."""
    from outreach.delivery.health import ago
    from outreach.labels import STATUS, WEEKDAY

    s = data["scheduler"]
    if s["up"]:
        lines = [f"调度器在运行（主调度器 {s['owner']}，最后一次心跳 {ago(s['heartbeat_age_s'])}前）"]
    else:
        lines = [s["message"], f"  {s['fix']}"]
    today = data["today"]
    day = date.fromisoformat(today["date"])
    lines.append(f"今天 {day} 周{WEEKDAY[day.weekday()]}（北京时间 {_local(data['at'], '%H:%M')}）：{today['programs']} 个节目")
    lines.append("  " + "  ".join(f"{STATUS[k]} {today['by_status'][k]}" for k in _ORDER))
    st = data["stations"]
    if st["total"]:
        rate = round(100 * st["online_rate"])
        offline = "；离线：" + "、".join(f"{o['station_id']}（最后联系 {_local(o['last_seen'])}）"
                                      for o in st["offline"][:5]) if st["offline"] else ""
        lines.append(f"村广播站播放盒：在线 {st['online']} / 共 {st['total']}（{rate}%）{offline}")
    else:
        lines.append("村广播站播放盒：没有登记")
    ex = data["export"]
    if ex["usb_villages"] or ex["newest_at"]:
        when = f"{_local(ex['newest_at'], '%Y-%m-%d %H:%M')}（{ago(ex['age_s'])}前）" if ex["newest_at"] else "还没有"
        lines.append(f"U 盘节目包：{ex['usb_villages']} 个村靠 U 盘；最近一次导出：{when}")
    rest = data["problems"][0 if s["up"] else 1:]  # the scheduler's line is already the first
    if rest:
        lines.append("需要处理：")
        lines += [f"  - {p}" for p in rest]
    elif s["up"]:
        lines.append("一切正常。")
    return lines


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出（给监控程序读）。")
@with_workspace
def status_cmd(as_json: bool, ws: Workspace) -> None:
    """一眼看全县：调度器在不在运行、今天的节目各是什么状态、播放盒在线多少、最近一次导出。

    第一行是调度器：超过 2 分钟没有心跳就是「调度器没有运行」，这时退出码为 2（给监控程序用）；
    正常为 0，出错为 1。时间都是北京时间。
    """
    from outreach.config import TZ
    from outreach.db import open_migrated
    from outreach.delivery.health import county_status

    engine = open_migrated(ws.config.resolved_database_url())
    try:
        data = county_status(ws.config, engine, now=datetime.now(TZ)).as_dict()
    finally:
        engine.dispose()
    if as_json:
        echo_json(data)
    else:
        for line in _lines(data):
            click.echo(line)
    sys.exit(0 if data["scheduler"]["up"] else SCHEDULER_DOWN)

"""CLI: `station add|revoke|run`, `stations`, `alert send|status` (village stations and emergency inserts)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from urllib.parse import urlsplit

import click

from outreach.cli.base import Workspace, cli, echo_json, warn, with_workspace
from outreach.config import TZ
from outreach.errors import ConfigError

_WARNING = {"offline": "离线", "low_buffer": "缓存不足", "clock_skew": "时钟偏差"}


def _now() -> datetime:
    return datetime.now(TZ)


def _open(ws: Workspace):  # type: ignore[no-untyped-def]
    from outreach.delivery.stations.broker import load_broker_settings
    from outreach.planning.workspace import load, open_database

    loaded = load(ws.config)
    return loaded, open_database(loaded), load_broker_settings(ws.config.workspace)


@cli.group("station")
def station() -> None:
    """登记、吊销和运行村广播站（村委会广播室的播放盒）。"""


@station.command("add")
@click.argument("village_id", metavar="村")
@click.option("--server-url", metavar="网址",
              help="播放盒访问县服务器用的网址，如 http://192.168.1.10:8000（默认：outreach.toml 里 [web] 的 public_url）。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@with_workspace
def station_add(village_id: str, server_url: str | None, as_json: bool, ws: Workspace) -> None:
    """为一个村（编号或名称）登记广播站；打印站点编号和令牌（令牌只显示这一次）。"""
    from outreach.delivery.stations.accounts import add_station
    from outreach.planning.registry import resolve_village

    server_url = _server_url(server_url, ws)
    loaded, engine, broker = _open(ws)
    village_id = resolve_village(loaded.registry, village_id)
    out = add_station(engine, loaded, village_id, now=_now(), server_url=server_url, broker=broker)
    if as_json:
        echo_json(out)
    else:
        click.echo(f"广播站 {out['station_id']}（{village_id}）\n令牌（请立即保存）：{out['token']}\n"
                   f"在播放盒上运行：{out['command']}")


def _server_url(given: str | None, ws: Workspace) -> str:
    """--server-url, else [web] public_url; refused when neither says where the box finds the server."""
    url = given or ws.config.web.public_url
    if not url:
        raise ConfigError("不知道播放盒该用哪个网址访问县服务器：请加 --server-url 网址（村里的播放盒能打开的本系统地址，"
                          "例如 http://192.168.1.10:8000），或在 outreach.toml 的 [web] 里写上 public_url")
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        warn(f"{url} 只有县服务器本机能打开，村里的播放盒连不上；请改用局域网或公网地址（--server-url）")
    return url


@station.command("revoke")
@click.argument("station_id", metavar="广播站编号")
@with_workspace
def station_revoke(station_id: str, ws: Workspace) -> None:
    """吊销这个广播站的令牌（HTTP 立即生效；消息服务器（Mosquitto）重新加载密码文件后也生效），并把它的在线状态发布为离线。"""
    from outreach.delivery.stations.accounts import revoke_station

    _loaded, engine, broker = _open(ws)
    problem = revoke_station(engine, station_id, now=_now(), broker=broker)
    if problem:
        warn(problem)
    click.echo(f"已吊销：{station_id}")


@station.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def station_run(ctx: click.Context) -> None:
    """运行广播站：--server 网址 --station-id 编号 --token-file 文件 --data 目录 [--output|--player]。

    本进程会换成 `python -m outreach.station`，播放盒上不加载排播用的库。
    """
    argv = [sys.executable, "-m", "outreach.station", "run", *ctx.args]
    os.execv(sys.executable, argv)


@cli.command("stations")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@with_workspace
def stations_list(as_json: bool, ws: Workspace) -> None:
    """列出广播站：是否在线、最后联系时间、缓存到哪天、时钟偏差、版本和警告。"""
    from outreach.db import open_migrated
    from outreach.delivery.stations.accounts import list_stations

    engine = open_migrated(ws.config.resolved_database_url())
    rows = list_stations(engine, now=_now())
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("还没有登记广播站；用 outreach station add 村 登记一个", err=True)
        return
    click.echo("站点编号\t村\t状态\t最后联系\t缓存到\t警告")
    for r in rows:
        state = "在线" if r["online"] else ("已吊销" if r["revoked"] else "离线")
        click.echo(f"{r['station_id']}\t{r['village_id']}\t{state}\t{r['last_seen'] or '-'}\t"
                   f"{r['buffered_until'] or '-'}\t{'、'.join(_WARNING.get(w, w) for w in r['warnings'])}")


@cli.group("alert")
def alert() -> None:
    """紧急插播：立即发给村广播站的播放盒和联网村（U盘村无法即时插播）。"""


@alert.command("send")
@click.option("--script", "script_id", required=True, metavar="稿件", help="已批准的广播稿编号。")
@click.option("--county", is_flag=True, help="全县所有的村。")
@click.option("--township", "townships", multiple=True, metavar="乡镇", help="这个乡镇的村，编号或名称（可重复）。")
@click.option("--village", "villages", multiple=True, metavar="村", help="这个村，编号或名称（可重复）。")
@click.option("--expires", default="2h", show_default=True,
              help="离线的播放盒或停着的调度器在多长时间内仍可补播：90s、30m、2h。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@with_workspace
def alert_send(script_id: str, county: bool, townships: tuple[str, ...], villages: tuple[str, ...], expires: str,
               as_json: bool, ws: Workspace) -> None:
    """立即插播一份已批准的广播稿：播放盒和联网村打断正在播的节目，插播后接着播（联网村从头重播）。"""
    from outreach.delivery.stations.alerts import alert_targets, parse_duration, send_alert
    from outreach.planning.registry import resolve_township, resolve_village

    loaded, engine, broker = _open(ws)
    townships = tuple(resolve_township(loaded.registry, t) for t in townships)
    villages = tuple(resolve_village(loaded.registry, v) for v in villages)
    targets = alert_targets(engine, loaded, county=county, townships=townships, villages=villages)
    out = send_alert(engine, loaded, broker, script_id, targets, expires=parse_duration(expires), now=_now())
    if as_json:
        echo_json(out)
        return
    click.echo(f"紧急插播 {out['alert_id']} 已发给 {len(out['stations'])} 个播放盒、{len(out['networked'])} 个联网村")
    if out["station_error"]:
        warn(f"播放盒没有收到：{out['station_error']}")
    if out["usb"]:
        names = "、".join(loaded.registry.villages[v].name for v in out["usb"])
        warn(f"{len(out['usb'])} 个村无法即时插播（U盘村）：{names}")


@alert.command("status")
@click.argument("alert_id", metavar="插播编号")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出。")
@with_workspace
def alert_status_cmd(alert_id: str, as_json: bool, ws: Workspace) -> None:
    """这次紧急插播（alert send 打印的编号）哪些播放盒和联网村收到并播出了，用了多长时间。"""
    from outreach.db import open_migrated
    from outreach.delivery.stations.alerts import alert_status

    engine = open_migrated(ws.config.resolved_database_url())
    out = alert_status(engine, alert_id)
    if as_json:
        echo_json(out)
    else:
        box, live, lat = out["channels"]["stations"], out["channels"]["live"], out["latency_s"]
        click.echo(f"紧急插播 {alert_id}：已播出 {len(out['played'])}/{len(out['targets'])}，"
                   f"已送达 {len(out['delivered'])}（播放盒 {box['played']}/{box['targets']}，"
                   f"联网村 {live['played']}/{live['targets']}）；延迟中位数 {lat['p50'] if lat['p50'] is not None else '—'} 秒"
                   + (f"；{len(out['usb'])} 个U盘村无法即时插播" if out["usb"] else ""))

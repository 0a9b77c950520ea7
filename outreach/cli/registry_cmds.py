"""CLI: `markets` (market days for a rule or the workspace's markets) and `registry` (the county at a glance)."""

from __future__ import annotations

import unicodedata

import click

from outreach.cli.base import Workspace, check_workspace, cli, cli_date, echo_json, with_workspace

MAX_MARKET_DAYS = 366
WEEKDAYS = "一二三四五六日"
SPEAKERS = {"networked": "联网", "station": "广播站", "offline": "U盘"}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as columns aligned for CJK text (the last column is not padded)."""
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c + " " * (widths[i] - _width(c)) for i, c in enumerate(r[:-1])]
        click.echo("  ".join([*cells, r[-1]]).rstrip())


@cli.command("markets")
@click.option("--rule", metavar="规则",
              help="集日规则，如 逢农历三、八；不给时列出工作区里的所有集市（给了则不需要工作区）。")
@click.option("--from", "start_text", required=True, metavar="日期", help="第一天（含）。")
@click.option("--to", "end_text", required=True, metavar="日期", help="最后一天（含）。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出，而不是表格。")
@with_workspace(required=False)
def markets_cmd(rule: str | None, start_text: str, end_text: str, as_json: bool, ws: Workspace) -> None:
    """列出一条集日规则的集市日，或 schedules/markets.yaml 里每个集市的集市日。"""
    from outreach.dates import check_range
    from outreach.planning.market_days import has_lunar_date, lunar_label, parse_rule
    from outreach.planning.registry import load_registry

    start, end = cli_date(start_text, "--from"), cli_date(end_text, "--to")
    check_range(start, end, max_days=MAX_MARKET_DAYS, what="--from/--to")
    if rule is not None:
        found = parse_rule(rule).dates(start, end)
        if as_json:
            echo_json([d.isoformat() for d in found])
            return
        for d in found:
            lunar = f"  农历{lunar_label(d)}" if has_lunar_date(d) else ""  # a Gregorian rule may leave its range
            click.echo(f"{d.isoformat()}  周{WEEKDAYS[d.weekday()]}{lunar}")
        click.echo(f"共 {len(found)} 天", err=True)
        return

    check_workspace(ws.path)
    registry = load_registry(ws.config.schedules_dir)
    listing = [(m, registry.market_dates(m.id, start, end)) for m in registry.markets.values()]
    if as_json:
        echo_json([
            {"market_id": m.id, "name": m.name, "dates": [d.isoformat() for d in found]}
            for m, found in listing
        ])
        return
    rows: list[tuple[str, ...]] = [("集市", "规则", "日期")]
    for m, found in listing:
        shown = "、".join(f"{d.month}/{d.day}" for d in found) or "（无）"
        rows.append((f"{m.name}({m.id})", m.rule.text, shown))
    _table(rows)


@cli.command("registry")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出，而不是表格。")
@with_workspace
def registry_cmd(as_json: bool, ws: Workspace) -> None:
    """检查 schedules/，列出全县的村、播出时段和集市。"""
    from outreach.planning.registry import load_registry

    registry = load_registry(ws.config.schedules_dir, players=ws.config.player_names)
    if as_json:
        echo_json({
            "county": registry.county,
            "townships": [t.model_dump() for t in registry.townships.values()],
            "villages": [v.model_dump(mode="json") for v in registry.villages.values()],
            "markets": [m.model_dump(mode="json") for m in registry.markets.values()],
            "slots": [s.model_dump(mode="json") for s in registry.slots.values()],
            "blackouts": [b.model_dump(mode="json") for b in registry.blackouts],
        })
        return
    click.echo(f"{registry.county}：{len(registry.townships)} 个乡镇，{len(registry.villages)} 个村，"
               f"{len(registry.markets)} 个集市")
    rows: list[tuple[str, ...]] = [("村", "乡镇", "人口", "喇叭", "时段")]
    for v in registry.villages.values():
        slots = " ".join(f"{s.start:%H:%M}" for s in registry.village_slots(v.id))
        rows.append((f"{v.name}({v.id})", registry.townships[v.township_id].name, str(v.population),
                     SPEAKERS[v.speaker], slots))
    _table(rows)

"""CLI: `plan` (which clips each village's loudspeaker plays, slot by slot)."""

from __future__ import annotations

import unicodedata

import click

from outreach.cli.base import ALERT, Workspace, cli, cli_date, echo_json, warn, with_workspace

MAX_PLAN_DAYS = 92
SLOT_LABELS = {"morning": "早", "evening": "晚"}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


@cli.command("plan")
@click.option("--from", "start_text", required=True, metavar="日期", help="第一天（含）。")
@click.option("--to", "end_text", required=True, metavar="日期", help="最后一天（含）。")
@click.option("--village", "village_ids", multiple=True, metavar="村", help="只看这个村，编号或名称（可重复）。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 列表输出节目。")
@with_workspace
def plan_cmd(start_text: str, end_text: str, village_ids: tuple[str, ...], as_json: bool, ws: Workspace) -> None:
    """按时段列出一段日期内每个村的大喇叭节目。

    日期可写成 2026-12-01、2026/12/01 或 12月1日（离今天最近的那一天）。
    """
    from outreach.cli.export_cmds import check_stale
    from outreach.dates import check_range
    from outreach.planning.registry import resolve_village
    from outreach.planning.workspace import load, plan_days

    start, end = cli_date(start_text, "--from"), cli_date(end_text, "--to")
    check_range(start, end, max_days=MAX_PLAN_DAYS, what="--from/--to")
    loaded = load(ws.config)
    registry = loaded.registry
    village_ids = tuple(dict.fromkeys(resolve_village(registry, v) for v in village_ids))
    result = plan_days(loaded, start, end, village_ids=village_ids or None)
    for warning in result.warnings:
        warn(warning)
    for alert in result.alerts:  # last, so it is what stays on screen
        click.echo(f"{ALERT}{alert}", err=True)
    if as_json:
        check_stale(loaded, ws)  # warnings on stderr; stdout stays the JSON list
        echo_json([
            {
                "date": p.date.isoformat(),
                "slot": p.slot,
                "village_id": p.village_id,
                "script_ids": [i.script_id for i in p.airable_items],
                "blocked": [{"script_id": i.script_id, "campaign_id": i.campaign_id, "reason": i.blocked}
                            for i in p.blocked_items],
                "duration_s": round(p.duration_s, 1),
                "campaign_ids": list(p.campaign_ids),
            }
            for p in result.programs
        ])
        return
    # Names, not ids: the village with its township (two townships may each have a 王庄村), scripts by title.
    titles = {s.id: s.title for s in loaded.library}
    rows = [("日期", "时段", "村", "节目")]
    for p in result.programs:
        village = registry.villages[p.village_id]
        township = registry.townships.get(village.township_id)
        rows.append((
            p.date.isoformat(), SLOT_LABELS.get(p.slot, p.slot), f"{township.name if township else ''}{village.name}",
            f"{'；'.join(titles.get(i.script_id, i.script_id) for i in p.airable_items)}（{round(p.duration_s)}秒）"
            + "".join(f" 不播「{titles.get(i.script_id, i.script_id)}」（批准后被修改）" for i in p.blocked_items),
        ))
    widths = [max(_width(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join([*(_pad(r[i], widths[i]) for i in range(3)), r[3]]))
    click.echo(f"共 {len(result.programs)} 个节目", err=True)
    check_stale(loaded, ws)

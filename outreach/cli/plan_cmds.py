"""CLI: `plan` (which clips each village's loudspeaker plays, slot by slot)."""

from __future__ import annotations

import unicodedata

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace

MAX_PLAN_DAYS = 92
SLOT_LABELS = {"morning": "早", "evening": "晚"}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


@cli.command("plan")
@click.option("--from", "start_text", required=True, metavar="YYYY-MM-DD", help="First day (inclusive).")
@click.option("--to", "end_text", required=True, metavar="YYYY-MM-DD", help="Last day (inclusive).")
@click.option("--village", "village_ids", multiple=True, metavar="ID", help="Only this village (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of programs.")
@with_workspace
def plan_cmd(start_text: str, end_text: str, village_ids: tuple[str, ...], as_json: bool, ws: Workspace) -> None:
    """Show each village's loudspeaker programs, slot by slot, for a date range."""
    from outreach.dates import check_range, parse_date
    from outreach.errors import PlanError
    from outreach.workspace import load, plan

    start, end = parse_date(start_text, "--from"), parse_date(end_text, "--to")
    check_range(start, end, max_days=MAX_PLAN_DAYS, what="--from/--to")
    loaded = load(ws.config)
    registry = loaded.registry
    unknown = [v for v in village_ids if v not in registry.villages]
    if unknown:
        raise PlanError(f"--village: unknown village {', '.join(repr(v) for v in unknown)}; "
                        "run `outreach registry` to list the village ids")
    result = plan(loaded, start, end, village_ids=village_ids or None)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json([
            {
                "date": p.date.isoformat(),
                "slot": p.slot,
                "village_id": p.village_id,
                "script_ids": list(p.script_ids),
                "duration_s": round(p.duration_s, 1),
                "campaign_ids": list(p.campaign_ids),
            }
            for p in result.programs
        ])
        return
    rows = [("日期", "时段", "村", "节目")]
    for p in result.programs:
        village = registry.villages[p.village_id]
        rows.append((
            p.date.isoformat(), SLOT_LABELS.get(p.slot, p.slot), f"{village.name}({p.village_id})",
            f"{'、'.join(p.script_ids)}（{round(p.duration_s)}秒）",
        ))
    widths = [max(_width(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join([*(_pad(r[i], widths[i]) for i in range(3)), r[3]]))
    click.echo(f"共 {len(result.programs)} 个节目", err=True)

"""CLI: `render`, `voices` and `tn` (spoken-form text)."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from outreach.cli.base import Workspace, cli, echo_json, with_workspace


@cli.command()
@click.argument("text")
@with_workspace
def tn(text: str, ws: Workspace) -> None:
    """Print exactly what the TTS engine will speak for TEXT."""
    from outreach.textnorm import load_lexicon, normalize

    click.echo(normalize(text, load_lexicon(ws.config.lexicon_path)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@with_workspace
def voices(as_json: bool, ws: Workspace) -> None:
    """List the voices of every TTS engine."""
    from outreach.tts import list_voices

    found = list_voices()
    if as_json:
        echo_json([asdict(v) for v in found])
        return
    default = {"offline": ws.config.render.offline_voice, "edge": ws.config.render.edge_voice}
    for v in found:
        mark = "*" if default.get(v.engine) == v.name else " "
        click.echo(f"{mark} {v.engine:8} {v.name:32} {v.gender:7} {v.description}")


@cli.command()
@click.option("--engine", type=click.Choice(["offline", "edge"]), help="Override the engine for this run.")
@click.option("--script", "script_ids", multiple=True, help="Render only these script ids (repeatable).")
@click.option("--force", is_flag=True, help="Re-render even when a cached clip matches.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of clips.")
@with_workspace
def render(engine: str | None, script_ids: tuple[str, ...], force: bool, as_json: bool, ws: Workspace) -> None:
    """Render approved scripts into mastered, horn-ready MP3 clips."""
    from outreach.render import render_library, require_approved
    from outreach.scripts import load_library

    config = ws.config
    scripts = load_library(config.scripts_dir, max_chars=config.render.max_chars)
    if script_ids:
        scripts = require_approved(scripts, list(script_ids))
    report = render_library(config, scripts, engine_override=engine, force=force, progress=sys.stderr.isatty())
    if as_json:
        echo_json([asdict(r) for r in report.results])
    else:
        for r in report.results:
            state = "缓存" if r.cached else "新生成"
            click.echo(f"{r.script_id:28} {r.engine:8} {r.lufs:6.1f} LUFS {r.true_peak_db:5.1f} dBTP "
                       f"{r.duration_s:6.1f} s  {state}")
        made = sum(not r.cached for r in report.results)
        click.echo(f"{len(report.results)} clips ({made} rendered, {len(report.results) - made} cached)")
    if report.failures:
        click.echo(f"{len(report.failures)} script(s) failed:", err=True)
        for script_id, message in report.failures:
            click.echo(f"  {script_id}: {message}", err=True)
        sys.exit(1)

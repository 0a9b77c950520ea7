"""CLI: `render`, `voices` and `tn` (spoken-form text)."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from outreach.cli.base import Workspace, cli, echo_json, warn, with_workspace
from outreach.config import ENGINE_CHOICES

# The voices table's words for the catalogue's genders (JSON keeps "Female"/"Male").
GENDER = {"Female": "女声", "Male": "男声"}


@cli.command()
@click.argument("text", metavar="文字")
@with_workspace
def tn(text: str, ws: Workspace) -> None:
    """打印语音引擎实际会把这段文字念成什么（口语化文本）。"""
    from outreach.content.textnorm import load_lexicon, normalize

    click.echo(normalize(text, load_lexicon(ws.config.lexicon_path)))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="以 JSON 列表输出。")
@with_workspace
def voices(as_json: bool, ws: Workspace) -> None:
    """列出每个语音引擎的音色，每行一个；* 表示该引擎的默认音色。"""
    from outreach.tts import list_voices

    found = list_voices()
    if as_json:
        echo_json([asdict(v) for v in found])
        return
    r = ws.config.render
    for v in found:
        mark = "*" if r.default_voice(v.engine) == v.name else " "
        click.echo(f"{mark} {v.engine:7} {v.name:30} {GENDER.get(v.gender, v.gender)}  {v.description}")
    click.echo(f"默认引擎：{r.resolve_engine(r.engine)}；离线引擎：{r.offline_engine}；语速 {r.rate} 字/秒")


@cli.command()
@click.option("--engine", type=click.Choice(ENGINE_CHOICES),
              help="本次改用这个引擎（offline 即 render.offline_engine）。")
@click.option("--script", "script_ids", multiple=True, help="只生成这些稿件编号（可重复）。")
@click.option("--force", is_flag=True, help="即使缓存里有相同的音频也重新生成。")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 列表输出音频。")
@with_workspace
def render(engine: str | None, script_ids: tuple[str, ...], force: bool, as_json: bool, ws: Workspace) -> None:
    """把已批准的稿件生成适合大喇叭的 MP3 音频（已做响度处理）。"""
    from outreach.audio.render import render_library, require_approved
    from outreach.content.scripts import load_library

    config = ws.config
    scripts = load_library(config.scripts_dir, max_chars=config.render.max_chars)
    if script_ids:
        scripts = require_approved(scripts, list(script_ids))
    from outreach.errors import RegistryError
    from outreach.planning.registry import load_registry, village_voice

    # Townships or villages with their own (dialect) voice air their own clip of each script too.
    try:
        registry = load_registry(config.schedules_dir)
        voices = {v for v in (village_voice(registry, vid) for vid in registry.villages) if v}
    except RegistryError as exc:
        warn(f"县名录有误，只生成默认音色的录音：{exc}")
        voices = set()
    report = render_library(config, scripts, engine_override=engine, force=force, progress=sys.stderr.isatty(),
                            voices=voices)
    if as_json:
        echo_json([asdict(r) for r in report.results])
    else:
        titles = {s.id: s.title for s in scripts}
        for r in report.results:
            state = "缓存" if r.cached else "新生成"
            click.echo(f"{r.script_id:28} {r.engine:9} {r.lufs:6.1f} LUFS {r.true_peak_db:5.1f} dBTP "
                       f"{r.duration_s:6.1f} 秒  {state:3}  {titles.get(r.script_id, '')}")
        made = sum(not r.cached for r in report.results)
        click.echo(f"共 {len(report.results)} 条音频（新生成 {made} 条，缓存 {len(report.results) - made} 条）")
    if report.failures:
        titles_of = {s.id: s.title for s in scripts}
        click.echo(f"{len(report.failures)} 个稿件失败：", err=True)
        for script_id, message in report.failures:
            click.echo(f"  {script_id}（{titles_of.get(script_id, '')}）：{message}", err=True)
        sys.exit(1)

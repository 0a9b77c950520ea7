"""USB export: render what the packs need, write village packs for a date range, log what was exported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from outreach.audio.programs import program_audio
from outreach.audio.render import render_library, verified_clip, voice_label
from outreach.db import session
from outreach.delivery.prepare import program_engines
from outreach.delivery.usb.packs import ExportReport, PackItem, export_pack, pack_rel_path, slot_label, village_folder
from outreach.errors import OutreachError
from outreach.models import BroadcastStatus
from outreach.planning.plan import PlanResult, Program
from outreach.planning.workspace import GAP_S, Loaded, plan
from outreach.records import broadcast_plans, mark_program, record_exported, record_planned


def usb_villages(loaded: Loaded) -> list[str]:
    """Villages fed by USB stick: offline ones, or every village when the county runs in export mode."""
    everyone = loaded.config.deliver.mode == "export"
    return sorted(v.id for v in loaded.registry.villages.values() if everyone or v.speaker == "offline")


def render_needed(loaded: Loaded, programs: Sequence[Program], *, progress: bool = False) -> tuple[int, dict[str, str]]:
    """Render the clips of every script that airs in `programs` (cached ones are reused).

    Returns how many clips were newly made and the failures by script id.
    """
    needed = sorted({i.script_id for p in programs for i in p.airable_items})
    voices = {p.voice for p in programs if p.voice}
    report = render_library(loaded.config, [loaded.scripts[s] for s in needed], progress=progress, voices=voices)
    return sum(not r.cached for r in report.results), dict(report.failures)


def _clips(loaded: Loaded, program: Program, render_failures: dict[str, str]) -> tuple[list[Path], list[str]]:
    """The verified clip of each airable item, and one message per script that has none."""
    clips, problems = [], []
    for item in program.airable_items:
        try:
            clips.append(verified_clip(loaded.config, loaded.scripts[item.script_id], voice=program.voice))
        except OutreachError as exc:
            why = render_failures.get(voice_label(item.script_id, program.voice), str(exc))
            problems.append(f"广播稿 '{item.script_id}' 没有可用的录音：{why}")
    return clips, problems


def _item(loaded: Loaded, p: Program, rel: str, audio: Path) -> PackItem:
    registry = loaded.registry
    village = registry.villages[p.village_id]
    names = [c.name for cid in dict.fromkeys(i.campaign_id for i in p.airable_items)
             if (c := loaded.campaign(cid)) is not None]
    return PackItem(
        rel_path=rel, audio=audio, duration_s=p.duration_s, village_id=village.id, village_name=village.name,
        township_name=registry.townships[village.township_id].name, slot=p.slot, date=p.date,
        start=p.start.timetz().replace(tzinfo=None), title=f"{village.name} {p.date.month}月{p.date.day}日 {slot_label(p.slot)}",
        artist=f"{registry.county}公安局交警大队", album=names[0] if names else "",
        scripts=tuple(loaded.scripts[i.script_id].title for i in p.airable_items))


def export_days(loaded: Loaded, engine: Engine, start: date, end: date, out_dir: Path, *, now: datetime,
                village_ids: Sequence[str] | None = None, progress: bool = False) -> ExportReport:
    """Render what is needed, write USB packs for `start`..`end`, and log USB-fed villages' programs.

    `village_ids` defaults to the USB-fed villages (`usb_villages`). Each chosen
    village's folder ends up holding exactly these days. Identical programs are
    assembled once. Items blocked at plan time (a script edited after approval)
    are left out and listed in the report. A pack for a networked village is a
    spare: its rows stay `planned` until the scheduler plays them.
    """
    usb = set(usb_villages(loaded))
    registry = loaded.registry
    failures: list[tuple[str, str]] = []
    folders: set[str] = set()
    chosen = []
    for vid in sorted(usb) if village_ids is None else sorted(set(village_ids)):
        v = registry.villages[vid]
        try:  # a name that would make a path out of the pack is refused before any work
            folders.add(village_folder(v.township_id, registry.townships[v.township_id].name, v.id, v.name))
            chosen.append(vid)
        except OutreachError as exc:
            failures.append((vid, str(exc)))
    result: PlanResult = plan(loaded, start, end, village_ids=chosen)
    made, render_failures = render_needed(loaded, result.programs, progress=progress)
    if made:  # measured durations replace estimates: plan again so the slots fit
        result = plan(loaded, start, end, village_ids=chosen)
    items: list[PackItem] = []
    by_rel: dict[str, Program] = {}
    silent: list[Program] = []  # every item blocked: nothing to put on the stick
    blocked: list[tuple[str, str, str]] = []
    audio_by_key: dict[tuple[str, ...], Path] = {}
    failed_by_key: dict[tuple[str, ...], list[str]] = {}
    for p in result.programs:
        village = registry.villages[p.village_id]
        rel = pack_rel_path(village.township_id, registry.townships[village.township_id].name, village.id,
                            village.name, p.date, p.start.timetz(), p.slot)
        blocked += [(rel, i.script_id, i.blocked or "") for i in p.blocked_items]
        if not p.airable_items:
            silent.append(p)
            continue
        key = p.content_key
        if key not in audio_by_key and key not in failed_by_key:
            clips, problems = _clips(loaded, p, render_failures)
            if problems:
                failed_by_key[key] = problems
            else:
                try:
                    audio_by_key[key] = program_audio(loaded.config, clips, gap_s=GAP_S)
                except OutreachError as exc:
                    failed_by_key[key] = [str(exc)]
        if key in failed_by_key:
            failures += [(rel, message) for message in failed_by_key[key]]
            continue
        items.append(_item(loaded, p, rel, audio_by_key[key]))
        by_rel[rel] = p
    report = export_pack(items, out_dir, folders=folders, progress=progress)
    report.failures[:0] = failures
    report.blocked, report.alerts, report.rendered = blocked, result.alerts, made
    exported = {f.path: f for f in report.files}
    with session(engine) as s:
        record_planned(s, broadcast_plans(result.programs), now=now)
        for rel, p in by_rel.items():
            if rel in exported and p.village_id in usb:
                record_exported(s, broadcast_plans([p], airable_only=True), program_sha256=exported[rel].sha256,
                                engine=program_engines(loaded, p), at=now)
        for p in silent:
            if p.village_id in usb:
                why = "；".join(f"{i.script_id}：{i.blocked}" for i in p.blocked_items)
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=BroadcastStatus.FAILED,
                             at=now, error=why)
    return report

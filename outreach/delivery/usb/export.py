"""USB export: render what the packs need, write village packs for a date range, log what was exported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from outreach.audio.render import voice_label
from outreach.db import session
from outreach.delivery import Channel, channel_of
from outreach.delivery.prepare import Prepared, prepare_programs, render_needed
from outreach.delivery.usb.packs import ExportReport, PackItem, export_pack, pack_rel_path, slot_label, village_folder
from outreach.errors import OutreachError
from outreach.models import BroadcastStatus
from outreach.planning.plan import PlanResult, Program
from outreach.planning.workspace import Loaded, plan_days
from outreach.records import broadcast_plans, mark_program, record_exported_many, record_planned


def usb_villages(loaded: Loaded) -> list[str]:
    """Villages fed by USB stick: offline ones, or every village when the county runs in export mode."""
    everyone = loaded.config.deliver.mode == "export"
    return sorted(v.id for v in loaded.registry.villages.values() if everyone or channel_of(v) is Channel.USB)


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


def _chosen(loaded: Loaded, village_ids: Sequence[str] | None, usb: set[str]
            ) -> tuple[list[str], set[str], list[tuple[str, str]]]:
    """The villages to export, their pack folders, and each village refused for its name."""
    registry = loaded.registry
    chosen, folders, failures = [], set(), []
    for vid in sorted(usb) if village_ids is None else sorted(set(village_ids)):
        v = registry.villages[vid]
        try:  # a name that would make a path out of the pack is refused before any work
            folders.add(village_folder(v.township_id, registry.townships[v.township_id].name, v.id, v.name))
            chosen.append(vid)
        except OutreachError as exc:
            failures.append((vid, str(exc)))
    return chosen, folders, failures


@dataclass
class _Packing:
    """The pack items of an export's programs, and what is left off the stick and why."""

    items: list[PackItem] = field(default_factory=list)
    by_rel: dict[str, Prepared] = field(default_factory=dict)
    silent: list[Program] = field(default_factory=list)  # every item blocked: nothing to put on the stick
    blocked: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _packing(loaded: Loaded, programs: Sequence[Program], render_failures: dict[str, str]) -> _Packing:
    """Resolve the programs once (`prepare_programs`) into pack items; a program missing a clip is not packed."""
    registry = loaded.registry
    out = _Packing()
    prepared = prepare_programs(loaded, [p for p in programs if p.airable_items])
    for p in programs:
        village = registry.villages[p.village_id]
        rel = pack_rel_path(village.township_id, registry.townships[village.township_id].name, village.id,
                            village.name, p.date, p.start.timetz(), p.slot)
        out.blocked += [(rel, i.script_id, i.blocked or "") for i in p.blocked_items]
        if not p.airable_items:
            out.silent.append(p)
            continue
        prep = prepared[(p.village_id, p.slot, p.date)]
        if prep.clip_problems:
            out.failures += [(rel, f"广播稿 '{i.script_id}' 没有可用的录音："
                                   f"{render_failures.get(voice_label(i.script_id, p.voice), why)}")
                             for i, why in prep.clip_problems]
        elif prep.audio is None:
            out.failures.append((rel, prep.join_error or ""))
        else:
            out.items.append(_item(loaded, p, rel, prep.audio))
            out.by_rel[rel] = prep
    return out


def _log_export(engine: Engine, result: PlanResult, packing: _Packing, report: ExportReport, usb: set[str],
                now: datetime) -> None:
    """Log the plan, then what the packs really carry (one batch), and USB programs with nothing to carry."""
    exported = {f.path: f for f in report.files}
    with session(engine) as s:
        record_planned(s, broadcast_plans(result.programs), now=now)
        record_exported_many(s, [(broadcast_plans([prep.program], airable_only=True), exported[rel].sha256,
                                  prep.engine) for rel, prep in packing.by_rel.items()
                                 if rel in exported and prep.program.village_id in usb], at=now)
        for p in packing.silent:
            if p.village_id in usb:
                why = "；".join(f"{i.script_id}：{i.blocked}" for i in p.blocked_items)
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=BroadcastStatus.FAILED,
                             at=now, error=why)


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
    chosen, folders, failures = _chosen(loaded, village_ids, usb)
    result: PlanResult = plan_days(loaded, start, end, village_ids=chosen)
    made, render_failures = render_needed(loaded, result.programs, progress=progress)
    if made:  # measured durations replace estimates: plan again so the slots fit
        result = plan_days(loaded, start, end, village_ids=chosen)
    packing = _packing(loaded, result.programs, render_failures)
    report = export_pack(packing.items, out_dir, folders=folders, progress=progress)
    report.failures[:0] = failures + packing.failures
    report.blocked, report.alerts, report.rendered = packing.blocked, result.alerts, made
    _log_export(engine, result, packing, report, usb, now)
    return report

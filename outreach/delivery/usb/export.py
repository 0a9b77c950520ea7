"""USB export: check the stick and dates, render what the packs need, write village packs, log what was exported."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.audio.render import voice_label
from outreach.config import TZ
from outreach.db import session
from outreach.delivery import Channel, channel_of
from outreach.delivery.prepare import Key, Prepared, prepare_programs, render_needed
from outreach.delivery.usb.confirm_sheets import write_confirm_sheets
from outreach.delivery.usb.packs import ExportReport, PackItem, export_pack, pack_rel_path, slot_label, village_folder
from outreach.delivery.usb.stale import StalePack, refresh_stale, stale_packs, stale_ranges
from outreach.errors import OutputError, OutreachError, PlanError
from outreach.files import describe_os_error
from outreach.models import Broadcast, BroadcastScript, BroadcastStatus
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


def _drop_unplanned(s: Any, villages: Sequence[str], start: date, end: date, keep: set[Key]) -> int:
    """Delete the exported rows of programs in start..end that the plan no longer airs: their files left the stick."""
    found = s.execute(sa.select(Broadcast.id, Broadcast.village_id, Broadcast.slot, Broadcast.date).where(
        Broadcast.status == BroadcastStatus.EXPORTED, Broadcast.village_id.in_(sorted(villages)),
        Broadcast.date >= start, Broadcast.date <= end)).all()
    ids = [r.id for r in found if (r.village_id, r.slot, r.date) not in keep]
    if ids:
        s.execute(sa.delete(BroadcastScript).where(BroadcastScript.broadcast_id.in_(ids)))
        s.execute(sa.delete(Broadcast).where(Broadcast.id.in_(ids)))
    return len(ids)


def _log_export(engine: Engine, result: PlanResult, packing: _Packing, report: ExportReport, usb: set[str],
                now: datetime, chosen: Sequence[str], span: tuple[date, date]) -> set[Key]:
    """Log the plan, then what the packs really carry (one batch), and USB programs with nothing to carry.

    Exported rows of `chosen` villages in `span` whose program no longer airs are deleted first.
    Returns the USB programs whose files this export wrote (or found unchanged) and logged.
    """
    exported = {f.path: f for f in report.files}
    airing = {(p.village_id, p.slot, p.date) for p in result.programs if p.airable_items}
    written = {rel: prep for rel, prep in packing.by_rel.items()
               if rel in exported and prep.program.village_id in usb}
    with session(engine) as s:
        _drop_unplanned(s, [v for v in chosen if v in usb], *span, airing)
        record_planned(s, broadcast_plans(result.programs), now=now)
        record_exported_many(s, [(broadcast_plans([prep.program], airable_only=True),
                                  exported[rel].sha256, prep.engine) for rel, prep in written.items()], at=now)
        for p in packing.silent:
            if p.village_id in usb:
                why = "；".join(f"{i.script_id}：{i.blocked}" for i in p.blocked_items)
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=BroadcastStatus.FAILED,
                             at=now, error=why)
    return {prep.key for prep in written.values()}


def export_days(loaded: Loaded, engine: Engine, start: date, end: date, out_dir: Path, *, now: datetime,
                village_ids: Sequence[str] | None = None, progress: bool = False) -> ExportReport:
    """Render what is needed, write USB packs for `start`..`end`, and log USB-fed villages' programs.

    `village_ids` defaults to the USB-fed villages (`usb_villages`). Each chosen
    village's folder ends up holding exactly these days. Identical programs are
    assembled once. Items blocked at plan time (a script edited after approval)
    are left out and listed in the report. A pack for a networked village is a
    spare: its rows stay `planned` until the scheduler plays them. Exported rows
    of programs the plan no longer airs in the range are deleted (their files
    left the stick); then every exported program from today on is checked for
    a stale pack (`stale.refresh_stale`). The caller checks the folder and the
    dates first (`check_out_dir`, `check_not_past`).
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
    logged = _log_export(engine, result, packing, report, usb, now, chosen, (start, end))
    refresh_stale(loaded, engine, now=now, fresh=logged)
    write_confirm_sheets(loaded, engine, out_dir, report, village_ids=chosen, usb=usb, first_day=start, last_day=end,
                         now=now)  # QR pages and links, bound to what was just logged
    return report


# --- the stick and the dates, checked before anything is written ------------------------------


def check_out_dir(out_dir: Path, *, workspace: Path, mkdir: bool) -> list[str]:
    """Refuse a pack folder that does not exist unless `mkdir`; warnings when it is probably not a stick.

    A stick that is not inserted leaves no folder at its mount point: writing there would fill the
    system disk and the secretary gets nothing. A folder on the workspace's or the root file system
    (same `st_dev`) is allowed with a warning. Raises OutputError for a missing folder without
    `mkdir`, a file in its place, or a folder that cannot be made.
    """
    if not out_dir.is_dir():
        if out_dir.exists():
            raise OutputError(f"{out_dir}：这是一个文件，不是文件夹；请用U盘上的文件夹作为 --out")
        if not mkdir:
            raise OutputError(f"{out_dir}：文件夹不存在，U盘可能没有插好或没有挂载；请插好U盘后再导出，"
                              "或加 --mkdir 新建这个文件夹")
        try:
            out_dir.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(describe_os_error(out_dir, exc)) from exc
    here = os.stat(out_dir).st_dev
    disks = [what for what, path in (("工作区所在的磁盘", workspace), ("系统盘（/）", Path("/")))
             if os.stat(path).st_dev == here]
    if not disks:
        return []
    return [f"{out_dir} 在{'，也是'.join(disks)}上，不像是U盘；要拷给村里的话，请插好U盘，导出到U盘上的文件夹"]


def check_not_past(start: date, *, today: date, past: bool) -> None:
    """Refuse an export that starts before `today` (the county's date) unless `past` says it is on purpose.

    Raises PlanError naming the date and the option.
    """
    if start < today and not past:
        raise PlanError(f"--date {start.isoformat()}：这一天已经过去了（今天是 {today.isoformat()}，北京时间），"
                        "U盘包是给村里以后播的；要补一份以前送出的包，请加 --past")


# --- exporting stale packs again ---------------------------------------------------------------


@dataclass
class StaleExport:
    """An `export --stale`: the stale packs found, the villages exported again by day range, the merged report."""

    stale: list[StalePack]
    ranges: dict[tuple[date, date], list[str]]
    report: ExportReport


def _merge(into: ExportReport, part: ExportReport) -> None:
    for name in ("written", "unchanged", "failures", "removed", "blocked", "alerts"):
        getattr(into, name).extend(getattr(part, name))
    into.rendered += part.rendered


def export_stale(loaded: Loaded, engine: Engine, out_dir: Path, *, now: datetime,
                 village_ids: Sequence[str] | None = None, stale: Sequence[StalePack] | None = None,
                 progress: bool = False) -> StaleExport:
    """Export again the villages whose packs are stale, each for the days its stick holds.

    `stale` is what a `refresh_stale` just found (checked afresh when None); `village_ids` narrows
    the villages. A village's folder holds exactly its exported days, so the whole range is written
    again, not only the changed programs. Raises OutreachError when the workspace cannot be planned.
    """
    stale = list(stale) if stale is not None else refresh_stale(loaded, engine, now=now)
    if village_ids is not None:
        stale = [p for p in stale if p.village_id in set(village_ids)]
    ranges = stale_ranges(engine, stale, today=now.astimezone(TZ).date())
    return StaleExport(stale, ranges, export_ranges(loaded, engine, ranges, out_dir, now=now, progress=progress))


def export_ranges(loaded: Loaded, engine: Engine, ranges: Mapping[tuple[date, date], Sequence[str]], out_dir: Path,
                  *, now: datetime, progress: bool = False) -> ExportReport:
    """`export_days` for each (first day, last day) and its villages, into one folder; one merged report."""
    report = ExportReport()
    for (first, last), villages in ranges.items():
        _merge(report, export_days(loaded, engine, first, last, out_dir, now=now, village_ids=villages,
                                   progress=progress))
    return report


def stale_now(engine: Engine, *, now: datetime) -> list[StalePack]:
    """The stale packs the last check found (exported programs from today on), without planning again."""
    return stale_packs(engine, today=now.astimezone(TZ).date())

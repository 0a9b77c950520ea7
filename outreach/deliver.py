"""Delivery at slot time: play a village's program, export USB packs, log both.

The domain functions here take `now`; only the APScheduler job functions at
the bottom read the clock. Jobs are module-level functions that take ids
(workspace path, village id, slot), so the SQLAlchemy job store can persist
them across restarts. The as-run log makes playing idempotent: a program
already played is never played again.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from outreach.db import session
from outreach.errors import DeliveryError, OutreachError
from outreach.media import ffmpeg_exe
from outreach.models import Broadcast, BroadcastStatus
from outreach.plan import TZ, Program, ProgramItem
from outreach.files import sha256_file
from outreach.programs import ExportReport, PackItem, export_pack, pack_rel_path, program_audio
from outreach.records import mark_program, program_status, record_planned
from outreach.render import clip_durations, clip_engine, verified_clip
from outreach.workspace import GAP_S, Loaded, broadcast_plans, plan

log = logging.getLogger("outreach.deliver")

DONE = (BroadcastStatus.PLAYED, BroadcastStatus.CONFIRMED)


def null_player() -> list[str]:
    """A player that decodes the whole program and discards it (demo, tests)."""
    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", "{file}", "-f", "null", "-"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one village's slot."""

    village_id: str
    slot: str
    day: date
    status: str  # played | failed | skipped | missed | silent
    detail: str = ""


def slot_day(slot_start: time, now: datetime) -> date:
    """The day of the latest occurrence of a slot starting at `slot_start`, at or before `now`."""
    local = now.astimezone(TZ)
    return local.date() if local.time() >= slot_start else local.date() - timedelta(days=1)


def program_for(loaded: Loaded, village_id: str, slot: str, day: date) -> Program | None:
    """The planned program of one village slot; None on a blackout or an empty slot."""
    result = plan(loaded, day, day, village_ids=[village_id])
    return next((p for p in result.programs if p.slot == slot), None)


def _previous_slot(loaded: Loaded, village_id: str, slot: str, day: date) -> tuple[date, str]:
    names = [s.name for s in loaded.registry.village_slots(village_id)]
    i = names.index(slot)
    return (day, names[i - 1]) if i > 0 else (day - timedelta(days=1), names[-1])


def urgent_carry(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date) -> list[ProgramItem]:
    """Urgent items of the village's previous slot if it was missed: they move to this slot."""
    prev_day, prev_slot = _previous_slot(loaded, village_id, slot, day)
    with session(engine) as s:
        rows = s.exec(select(Broadcast).where(
            Broadcast.date == prev_day, Broadcast.slot == prev_slot, Broadcast.village_id == village_id,
            Broadcast.status == BroadcastStatus.MISSED)).all()
    items = []
    for row in rows:
        campaign = loaded.campaign(row.campaign_id)
        if campaign and campaign.urgent:
            items += [ProgramItem(sid, row.campaign_id, urgent=True) for sid in row.script_ids.split(",") if sid]
    return items


def with_carry(program: Program, carry: Sequence[ProgramItem], durations: dict[str, float]) -> Program:
    """`program` with carried urgent items in front (each script once)."""
    present = set(program.script_ids)
    extra = [i for i in carry if i.script_id not in present]
    if not extra:
        return program
    added = sum(durations.get(i.script_id, 0.0) + GAP_S for i in extra)
    return dataclasses.replace(program, items=(*extra, *program.items), duration_s=program.duration_s + added)


def program_clips(loaded: Loaded, program: Program) -> tuple[list[Path], list[str]]:
    """The clip file of every item; a missing or corrupt clip is left out and reported."""
    clips, problems = [], []
    for script_id in program.script_ids:
        try:
            clips.append(verified_clip(loaded.config, loaded.scripts[script_id]))
        except (OutreachError, KeyError) as exc:
            problems.append(f"{script_id}: {exc}")
    return clips, problems


def run_player(player: Sequence[str], audio: Path, timeout_s: float) -> None:
    """Run the player command on `audio`; raise DeliveryError if it fails or hangs."""
    cmd = [arg.replace("{file}", str(audio)) for arg in player]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise DeliveryError(f"player '{cmd[0]}' not found; set deliver.player in outreach.toml") from exc
    except subprocess.TimeoutExpired as exc:
        raise DeliveryError(f"player '{cmd[0]}' still running after {timeout_s:.0f} s; it was stopped "
                            "(raise deliver.player_timeout_s if programs are longer)") from exc
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        raise DeliveryError(f"player '{cmd[0]}' exited with {proc.returncode}: {tail}")


def play_program(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date, *, now: datetime,
                 player: Sequence[str], timeout_s: float) -> Outcome:
    """Play one village slot once, and log it; failures are logged, never raised."""
    program = program_for(loaded, village_id, slot, day)
    if program is None:
        return Outcome(village_id, slot, day, "silent", "blackout or nothing planned")
    with session(engine) as s:
        if program_status(s, day=day, slot=slot, village_id=village_id) in DONE:
            return Outcome(village_id, slot, day, "skipped", "already played")
    carry = urgent_carry(loaded, engine, village_id, slot, day)
    if carry:
        program = with_carry(program, carry, clip_durations(loaded.config, loaded.library))
    with session(engine) as s:
        record_planned(s, broadcast_plans([program]), now=now)
    clips, problems = program_clips(loaded, program)
    status, detail, sha = BroadcastStatus.PLAYED, "; ".join(problems), None
    try:
        audio = program_audio(loaded.config, clips, gap_s=GAP_S)
        sha = sha256_file(audio)
        run_player(player, audio, timeout_s)
    except OutreachError as exc:
        status, detail = BroadcastStatus.FAILED, "; ".join([*problems, str(exc)])
    with session(engine) as s:
        mark_program(s, day=day, slot=slot, village_id=village_id, status=status, at=now,
                     program_sha256=sha, engine=_engines(loaded, program), error=detail or None)
    if status is BroadcastStatus.FAILED:
        log.error("%s %s %s failed: %s", village_id, day, slot, detail)
    return Outcome(village_id, slot, day, status.value, detail)


def _engines(loaded: Loaded, program: Program) -> str:
    """Which TTS engines made the clips of a program, from their sidecars."""
    found = {clip_engine(loaded.config, loaded.scripts[sid]) for sid in program.script_ids if sid in loaded.scripts}
    return ",".join(sorted(e for e in found if e)) or "unknown"


def mark_missed(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date, *, now: datetime) -> int:
    """Log a slot that was not played within its grace time as missed."""
    program = program_for(loaded, village_id, slot, day)
    if program is None:
        return 0
    with session(engine) as s:
        record_planned(s, broadcast_plans([program]), now=now)
        return mark_program(s, day=day, slot=slot, village_id=village_id, status=BroadcastStatus.MISSED, at=now,
                            error="missed: not played within the grace time")


def usb_villages(loaded: Loaded) -> list[str]:
    """Villages fed by USB stick: offline ones, or every village when the county runs in export mode."""
    everyone = loaded.config.deliver.mode == "export"
    return sorted(v.id for v in loaded.registry.villages.values() if everyone or v.speaker == "offline")


def export_days(loaded: Loaded, engine: Engine, start: date, end: date, out_dir: Path, *, now: datetime,
                village_ids: Sequence[str] | None = None) -> ExportReport:
    """Write USB packs for `start`..`end` and log the USB-fed villages' programs as exported.

    `village_ids` defaults to the USB-fed villages (`usb_villages`). Identical
    programs are assembled once. A pack for a networked village is a spare: its
    rows stay `planned` until the scheduler plays them.
    """
    usb = set(usb_villages(loaded))
    result = plan(loaded, start, end, village_ids=sorted(usb) if village_ids is None else village_ids)
    registry = loaded.registry
    items: list[PackItem] = []
    by_rel: dict[str, Program] = {}
    failures: list[tuple[str, str]] = []
    # Many villages and days air the same clips: assemble, and look up engines, once per content.
    audio_by_key: dict[tuple[str, ...], Path] = {}
    engines_by_key: dict[tuple[str, ...], str] = {}
    failed_by_key: dict[tuple[str, ...], str] = {}
    for p in result.programs:
        village = registry.villages[p.village_id]
        township = registry.townships[village.township_id]
        rel = pack_rel_path(township.id, township.name, village.id, village.name, p.date.isoformat(), p.slot)
        key = p.content_key
        if key not in audio_by_key and key not in failed_by_key:
            try:
                clips, problems = program_clips(loaded, p)
                if problems:
                    raise DeliveryError("; ".join(problems))
                audio_by_key[key] = program_audio(loaded.config, clips, gap_s=GAP_S)
                engines_by_key[key] = _engines(loaded, p)
            except OutreachError as exc:
                failed_by_key[key] = str(exc)
        if key in failed_by_key:
            failures.append((rel, failed_by_key[key]))
            continue
        audio = audio_by_key[key]
        items.append(PackItem(rel, audio, p.duration_s, p.village_id, p.slot, p.date.isoformat()))
        by_rel[rel] = p
    report = export_pack(items, out_dir)
    report.failures.extend(failures)
    exported = {f.path: f for f in report.files}
    with session(engine) as s:
        record_planned(s, broadcast_plans(result.programs), now=now)
        for rel, p in by_rel.items():
            if rel in exported and p.village_id in usb:
                mark_program(s, day=p.date, slot=p.slot, village_id=p.village_id, status=BroadcastStatus.EXPORTED,
                             at=now, program_sha256=exported[rel].sha256, engine=engines_by_key[p.content_key])
    return report

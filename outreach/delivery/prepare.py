"""The one resolver: planned programs become what can air, with each item that cannot and its reason.

A program is resolved once (`prepare_programs`) into the audio that can air and the items that
cannot (a draft after edit, a clip that is missing), with the clips' engines. Central play, USB
export and station manifests consume it. Functions take `now`; only job functions read the clock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from outreach.audio.programs import program_audio
from outreach.audio.render import clip_engine, verified_clip
from outreach.config import TZ
from outreach.db import session
from outreach.errors import OutreachError
from outreach.files import sha256_file
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.plan import Program, ProgramItem
from outreach.planning.workspace import GAP_S, Loaded, plan

log = logging.getLogger("outreach.deliver")

S = BroadcastStatus
# One village program: (village id, slot, day). Claims, plays and the resolver all key by it.
Key = tuple[str, str, date]


def slot_day(slot_start: time, now: datetime) -> date:
    """The day of the latest occurrence of a slot starting at `slot_start`, at or before `now`."""
    local = now.astimezone(TZ)
    return local.date() if local.time() >= slot_start else local.date() - timedelta(days=1)


def program_for(loaded: Loaded, village_id: str, slot: str, day: date) -> Program | None:
    """The planned program of one village slot; None on a blackout or an empty slot."""
    return plan_programs(loaded, [(village_id, slot, day)]).get((village_id, slot, day))


def plan_programs(loaded: Loaded, keys: Iterable[Key]) -> dict[Key, Program]:
    """The planned programs of many village slots, planning each day once."""
    by_day: dict[date, set[str]] = {}
    wanted = set(keys)
    for v, _s, d in wanted:
        by_day.setdefault(d, set()).add(v)
    out: dict[Key, Program] = {}
    for day, villages in sorted(by_day.items()):
        for p in plan(loaded, day, day, village_ids=sorted(villages)).programs:
            if (p.village_id, p.slot, p.date) in wanted:
                out[(p.village_id, p.slot, p.date)] = p
    return out


def _previous_slot(loaded: Loaded, village_id: str, slot: str, day: date) -> tuple[date, str]:
    names = [s.name for s in loaded.registry.village_slots(village_id)]
    i = names.index(slot)
    return (day, names[i - 1]) if i > 0 else (day - timedelta(days=1), names[-1])


def urgent_carries(loaded: Loaded, engine: Engine, keys: Iterable[Key]) -> dict[Key, list[ProgramItem]]:
    """For each key whose previous slot was missed: that slot's urgent items (they move to this slot)."""
    prev = {k: _previous_slot(loaded, *k) for k in keys}
    if not prev:
        return {}
    with session(engine) as s:
        rows = s.exec(select(Broadcast).where(
            Broadcast.status == S.MISSED, Broadcast.date.in_({d for d, _ in prev.values()}),
            Broadcast.village_id.in_({v for v, _, _ in prev}))).all()
    missed: dict[tuple[str, str, date], list[Broadcast]] = {}
    for row in rows:
        missed.setdefault((row.village_id, row.slot, row.date), []).append(row)
    out: dict[Key, list[ProgramItem]] = {}
    for key, (pday, pslot) in prev.items():
        items = []
        for row in missed.get((key[0], pslot, pday), []):
            campaign = loaded.campaign(row.campaign_id)
            if campaign and campaign.urgent:
                items += [ProgramItem(sid, row.campaign_id, urgent=True) for sid in row.script_ids.split(",") if sid]
        if items:
            out[key] = items
    return out


def urgent_carry(loaded: Loaded, engine: Engine, village_id: str, slot: str, day: date) -> list[ProgramItem]:
    """Urgent items of the village's previous slot if it was missed: they move to this slot."""
    return urgent_carries(loaded, engine, [(village_id, slot, day)]).get((village_id, slot, day), [])


def with_carry(program: Program, carry: Sequence[ProgramItem], durations: Mapping[str, float]) -> Program:
    """`program` with carried urgent items in front (each script once)."""
    present = set(program.script_ids)
    extra = [i for i in carry if i.script_id not in present]
    if not extra:
        return program
    added = sum(durations.get(i.script_id, 0.0) + GAP_S for i in extra)
    return dataclasses.replace(program, items=(*extra, *program.items), duration_s=program.duration_s + added)


def program_clips(loaded: Loaded, program: Program) -> tuple[list[Path], list[str]]:
    """The clip file of every airable item; a blocked item, a missing or corrupt clip is left out and reported."""
    clips, problems = [], []
    for item in program.items:
        if item.blocked:
            problems.append(f"{item.script_id}：{item.blocked}")
            continue
        try:
            clips.append(verified_clip(loaded.config, loaded.scripts[item.script_id], voice=program.voice))
        except (OutreachError, KeyError) as exc:
            problems.append(f"{item.script_id}：{exc}")
    return clips, problems


def program_engines(loaded: Loaded, program: Program) -> str:
    """Which TTS engines made the clips of a program, from their sidecars."""
    found = {clip_engine(loaded.config, loaded.scripts[sid], voice=program.voice)
             for sid in program.script_ids if sid in loaded.scripts}
    return ",".join(sorted(e for e in found if e)) or "unknown"


# --- resolving programs for air ---------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A program resolved for air: its audio, the items that air, and those that cannot with why."""

    program: Program
    audio: Path | None
    sha256: str | None
    engine: str
    aired: tuple[ProgramItem, ...]
    not_aired: tuple[tuple[ProgramItem, str], ...]

    @property
    def key(self) -> Key:
        return (self.program.village_id, self.program.slot, self.program.date)

    def problems(self) -> str:
        return "；".join(f"{i.script_id}：{why}" for i, why in self.not_aired)


def prepare_programs(loaded: Loaded, programs: Iterable[Program]) -> dict[Key, Prepared]:
    """Resolve programs for air: check each clip once, join each distinct program once."""
    # Keyed by (script, voice): a village with its own voice airs its own clips.
    clip_of: dict[tuple[str, str | None], Path | str] = {}
    engine_of: dict[tuple[str, str | None], str | None] = {}
    audio_of: dict[tuple[str, ...], tuple[Path, str] | str] = {}
    out: dict[Key, Prepared] = {}
    for p in programs:
        aired: list[ProgramItem] = []
        not_aired: list[tuple[ProgramItem, str]] = []
        for item in p.items:
            if item.blocked:
                not_aired.append((item, item.blocked))
                continue
            ck = (item.script_id, p.voice)
            if ck not in clip_of:
                try:
                    script = loaded.scripts[item.script_id]
                    clip_of[ck] = verified_clip(loaded.config, script, voice=p.voice)
                    engine_of[ck] = clip_engine(loaded.config, script, voice=p.voice)
                except KeyError:
                    clip_of[ck] = "广播稿已不在 audio_scripts/ 里"
                except OutreachError as exc:
                    clip_of[ck] = str(exc)
            found = clip_of[ck]
            (aired.append(item) if isinstance(found, Path) else not_aired.append((item, found)))
        content = tuple(i.script_id for i in aired)
        joined_key = content if p.voice is None else (*content, f"@{p.voice}")
        audio = sha = None
        if content:
            if joined_key not in audio_of:
                try:
                    parts = [clip_of[(s, p.voice)] for s in content]
                    joined = program_audio(loaded.config, parts, gap_s=GAP_S)  # type: ignore[arg-type]
                    audio_of[joined_key] = (joined, sha256_file(joined))
                except OutreachError as exc:
                    audio_of[joined_key] = str(exc)
            made = audio_of[joined_key]
            if isinstance(made, tuple):
                audio, sha = made
            else:
                not_aired += [(i, made) for i in aired]
                aired = []
        engines = sorted({e for s in content if (e := engine_of.get((s, p.voice)))})
        out[(p.village_id, p.slot, p.date)] = Prepared(p, audio, sha, ",".join(engines) or "unknown",
                                                       tuple(aired), tuple(not_aired))
    return out


# --- the as-run log ------------------------------------------------------------------------

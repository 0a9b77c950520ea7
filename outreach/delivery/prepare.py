"""The one resolver: planned programs become what can air, with each item that cannot and its reason.

A program is resolved once (`prepare_programs`) into the audio that can air and the items that
cannot (a draft after edit, a clip that is missing), with the clips' engines. Central play, USB
export and station manifests consume it. Functions take `now`; only job functions read the clock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from outreach.audio.programs import program_audio
from outreach.audio.render import render_library, render_workers, verified_clip_engine
from outreach.config import TZ
from outreach.content.textnorm import Lexicon, load_lexicon
from outreach.db import session
from outreach.errors import OutreachError
from outreach.files import sha256_file
from outreach.models import Broadcast, BroadcastStatus
from outreach.planning.plan import Program, ProgramItem, audio_key
from outreach.planning.workspace import GAP_S, Loaded, plan_days

log = logging.getLogger("outreach.deliver")

# One village program: (village id, slot, day). Claims, plays and the resolver all key by it.
Key = tuple[str, str, date]


def slot_day(slot_start: time, now: datetime) -> date:
    """The day of the latest occurrence of a slot starting at `slot_start`, at or before `now`."""
    local = now.astimezone(TZ)
    return local.date() if local.time() >= slot_start else local.date() - timedelta(days=1)


def program_for(loaded: Loaded, village_id: str, slot: str, day: date) -> Program | None:
    """The planned program of one village slot; None on a blackout or an empty slot."""
    return plan_programs(loaded, [(village_id, slot, day)]).get((village_id, slot, day))


def render_needed(loaded: Loaded, programs: Sequence[Program], *, progress: bool = False) -> tuple[int, dict[str, str]]:
    """Render the clips of every script that airs in `programs`, in each village's voice (cached ones are reused).

    Returns how many clips were newly made and the failures by script id.
    """
    needed = sorted({i.script_id for p in programs for i in p.airable_items if i.script_id in loaded.scripts})
    voices = {p.voice for p in programs if p.voice}
    report = render_library(loaded.config, [loaded.scripts[s] for s in needed], progress=progress, voices=voices)
    return sum(not r.cached for r in report.results), dict(report.failures)


def plan_programs(loaded: Loaded, keys: Iterable[Key]) -> dict[Key, Program]:
    """The planned programs of many village slots, planning each day once."""
    by_day: dict[date, set[str]] = {}
    wanted = set(keys)
    for v, _s, d in wanted:
        by_day.setdefault(d, set()).add(v)
    out: dict[Key, Program] = {}
    for day, villages in sorted(by_day.items()):
        for p in plan_days(loaded, day, day, village_ids=sorted(villages)).programs:
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
            Broadcast.status == BroadcastStatus.MISSED, Broadcast.date.in_({d for d, _ in prev.values()}),
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
    r, clips, problems = Resolved(), [], []
    for item in program.items:
        found = item.blocked or _clip(loaded, r, item.script_id, program.voice)
        if isinstance(found, tuple):
            clips.append(found[0])
        else:
            problems.append(f"{item.script_id}：{found}")
    return clips, problems


# --- resolving programs for air ---------------------------------------------------------

# A clip is checked once per (script, voice): a village with its own voice airs its own clips.
ClipKey = tuple[str, str | None]


@dataclass
class Resolved:
    """What a resolver has checked and joined so far, by clip and by distinct program.

    Pass the same one to `prepare_programs` again to reuse it: the live runtime keeps the
    pre-flight's, so a program changed at slot time (urgent items carried in) neither
    re-plans nor re-verifies a clip the pre-flight already checked.
    """

    clips: dict[ClipKey, tuple[Path, str | None] | str] = field(default_factory=dict)
    audio: dict[tuple[str, ...], tuple[Path, str] | str] = field(default_factory=dict)
    lexicon: Lexicon | None = None


@dataclass(frozen=True)
class Prepared:
    """A program resolved for air: its audio, the items that air, and those that cannot with why."""

    program: Program
    audio: Path | None
    sha256: str | None
    engine: str
    aired: tuple[ProgramItem, ...]
    not_aired: tuple[tuple[ProgramItem, str], ...]
    # Of `not_aired`: the items whose clip is missing or corrupt (a pack is not written without them).
    clip_problems: tuple[tuple[ProgramItem, str], ...] = ()
    join_error: str | None = None  # why the aired clips could not be joined into one program

    @property
    def key(self) -> Key:
        return (self.program.village_id, self.program.slot, self.program.date)

    def problems(self) -> str:
        return "；".join(f"{i.script_id}：{why}" for i, why in self.not_aired)


def _clip(loaded: Loaded, r: Resolved, script_id: str, voice: str | None) -> tuple[Path, str | None] | str:
    """The checked clip of one script in one voice and its engine, or why it cannot air (checked once)."""
    ck = (script_id, voice)
    if ck not in r.clips:
        if r.lexicon is None:
            r.lexicon = load_lexicon(loaded.config.lexicon_path)
        try:
            r.clips[ck] = verified_clip_engine(loaded.config, loaded.scripts[script_id], voice, r.lexicon)
        except KeyError:
            r.clips[ck] = "广播稿已不在 audio_scripts/ 里"
        except OutreachError as exc:
            r.clips[ck] = str(exc)
    return r.clips[ck]


def _join(loaded: Loaded, clips: list[Path]) -> tuple[Path, str] | str:
    try:
        joined = program_audio(loaded.config, clips, gap_s=GAP_S)
        return joined, sha256_file(joined)
    except OutreachError as exc:
        return str(exc)


def _join_distinct(loaded: Loaded, r: Resolved, wanted: Mapping[tuple[str, ...], list[Path]]) -> None:
    """Join every distinct program not joined yet; ffmpeg runs in parallel, one per core."""
    todo = [k for k in wanted if k not in r.audio]
    if len(todo) < 2:
        r.audio |= {k: _join(loaded, wanted[k]) for k in todo}
        return
    with ThreadPoolExecutor(render_workers(len(todo))) as pool:
        r.audio |= dict(zip(todo, pool.map(lambda k: _join(loaded, wanted[k]), todo)))


def prepare_programs(loaded: Loaded, programs: Iterable[Program], *,
                     resolved: Resolved | None = None) -> dict[Key, Prepared]:
    """Resolve programs for air: check each clip once, join each distinct program once.

    `resolved` carries clips checked and programs joined by an earlier call (see Resolved).
    """
    r = resolved if resolved is not None else Resolved()
    split: list[tuple[Program, list[ProgramItem], list[tuple[ProgramItem, str]], int]] = []
    wanted: dict[tuple[str, ...], list[Path]] = {}
    for p in programs:
        aired: list[ProgramItem] = []
        not_aired: list[tuple[ProgramItem, str]] = []
        for item in p.items:
            found = item.blocked or _clip(loaded, r, item.script_id, p.voice)
            (aired.append(item) if isinstance(found, tuple) else not_aired.append((item, found)))
        if aired:
            wanted[audio_key((i.script_id for i in aired), p.voice)] = [
                r.clips[(i.script_id, p.voice)][0] for i in aired]  # type: ignore[index]
        split.append((p, aired, not_aired, len(not_aired)))
    _join_distinct(loaded, r, wanted)
    out: dict[Key, Prepared] = {}
    for p, aired, not_aired, n_clip in split:
        content = tuple(i.script_id for i in aired)
        audio = sha = join_error = None
        if content:
            made = r.audio[audio_key(content, p.voice)]
            if isinstance(made, tuple):
                audio, sha = made
            else:
                join_error = made
                not_aired += [(i, made) for i in aired]
                aired = []
        engines = sorted({e for s in content if (e := r.clips[(s, p.voice)][1])})  # type: ignore[misc]
        clip_problems = tuple((i, why) for i, why in not_aired[:n_clip] if i.blocked is None)
        out[(p.village_id, p.slot, p.date)] = Prepared(p, audio, sha, ",".join(engines) or "unknown",
                                                       tuple(aired), tuple(not_aired), clip_problems, join_error)
    return out

"""Station manifests and the blob store: each station's next days, each distinct program stored once.

The server plans as for central play, resolves each distinct program once (`prepare_programs`),
stores its MP3 once under its sha256 (hard links where the file system allows) and hands each
station the manifest of its own next days, with the `default` campaign as an always-on fallback.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from outreach.audio.render import clip_durations
from outreach.config import TZ
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery.prepare import Prepared, Resolved, prepare_programs
from outreach.planning.plan import Program, ProgramItem
from outreach.planning.registry import village_voice
from outreach.planning.workspace import Loaded, plan_days
from outreach.records import broadcast_plans, record_planned
from outreach.station.protocol import CampaignPart, Manifest, ManifestEntry, StationError, entry_id

log = logging.getLogger("outreach.stations")
DEFAULT_DAYS = 7


def blob_dir(loaded: Loaded) -> Path:
    return loaded.config.build_path / "blobs"


def store_blob(store: Path, audio: Path, sha256: str) -> Path:
    """`audio` in the content-addressed store as `<sha256>.mp3`: a hard link, or a copy where links fail."""
    target = store / f"{sha256}.mp3"
    if target.is_file():
        return target
    store.mkdir(parents=True, exist_ok=True)
    tmp = store / f".{sha256}.{os.getpid()}.part"
    tmp.unlink(missing_ok=True)
    try:
        os.link(audio, tmp)
    except OSError:  # another file system, or FAT: copy
        shutil.copyfile(audio, tmp)
    os.replace(tmp, target)
    return target


def blob_path(loaded: Loaded, sha256: str) -> Path | None:
    path = blob_dir(loaded) / f"{sha256}.mp3"
    return path if path.is_file() else None


SlotStarts = Mapping[tuple[str, str, str], datetime]


def read_slot_starts(path: Path | None) -> dict[tuple[str, str, str], datetime]:
    """Slot starts moved for a rehearsal (`serve --slot-starts FILE`): {(village_id, date, slot): start}.

    FILE holds [{"village_id", "date", "slot", "start"}, ...], start an ISO instant with its offset.
    It is read on every manifest request, so a drill can move slots while the server runs.
    """
    if path is None or not path.is_file():
        return {}
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        found = {(o["village_id"], o["date"], o["slot"]): datetime.fromisoformat(o["start"]) for o in items}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise StationError(f"{path}：无法读取演练用的开播时间（{exc}）；请写成 JSON 列表，每项含 village_id、date、"
                           "slot 和带时区的 start") from None
    if any(start.tzinfo is None for start in found.values()):
        raise StationError(f"{path}：start 必须带时区，如 2026-12-01T06:30:00+08:00")
    return found


def _entry(prep: Prepared, start: datetime, store: Path, sizes: dict[str, int], *,
           fallback: bool = False) -> ManifestEntry | None:
    """One manifest entry; `sizes` holds the blobs stored so far (each distinct program is stored once)."""
    if prep.audio is None or prep.sha256 is None:
        return None
    if prep.sha256 not in sizes:
        sizes[prep.sha256] = store_blob(store, prep.audio, prep.sha256).stat().st_size
    p = prep.program
    parts = tuple(CampaignPart(c, tuple(i.script_id for i in prep.aired if i.campaign_id == c))
                  for c in dict.fromkeys(i.campaign_id for i in prep.aired))
    eid = entry_id(p.date, p.slot)
    return ManifestEntry(f"fallback/{eid}" if fallback else eid, p.date.isoformat(), p.slot,
                         json_time(start), prep.sha256, sizes[prep.sha256],
                         round(p.duration_s, 3), prep.engine, parts)


def _default_durations(loaded: Loaded) -> dict[str, float]:
    """Seconds per clip of the default campaign's scripts ({} without a default campaign)."""
    default = next((c for c in loaded.campaigns if c.default), None)
    if default is None:
        return {}
    return clip_durations(loaded.config, [loaded.scripts[s] for s in default.scripts if s in loaded.scripts])


def _fallback_program(loaded: Loaded, village_id: str, day: date,
                      durations: Mapping[str, float] | None = None) -> Program | None:
    """The always-on program: the default campaign's approved scripts that fit the shortest slot.

    `durations` (`_default_durations`, computed once for many villages) saves reading the clips again.
    """
    default = next((c for c in loaded.campaigns if c.default), None)
    if default is None:
        return None
    slots = loaded.registry.village_slots(village_id)
    limit = min(s.max_minutes for s in slots) * 60 if slots else 600
    items, total = [], 0.0
    durations = _default_durations(loaded) if durations is None else durations
    for sid in default.scripts:
        d = durations.get(sid)
        if d is None or total + d > limit:
            continue
        items.append(ProgramItem(sid, default.id))
        total += d + 1.0
    if not items:
        return None
    village = loaded.registry.villages[village_id]
    start = datetime.combine(day, slots[0].start.replace(tzinfo=None), tzinfo=TZ)
    return Program(day, slots[0].name, village_id, village.township_id, start, tuple(items), total,
                   voice=village_voice(loaded.registry, village_id))


@dataclass(frozen=True)
class ManifestBuild:
    """Manifests per station, and how many distinct programs (blobs) they share."""

    manifests: dict[str, Manifest]
    programs: int
    distinct: int


def build_manifests(loaded: Loaded, stations: Sequence[tuple[str, str]], *, now: datetime,
                    days: int = DEFAULT_DAYS, engine: Engine | None = None, broker_url: str = "",
                    slot_starts: SlotStarts | None = None) -> ManifestBuild:
    """The manifests of `(station_id, village_id)` stations for today and the next `days - 1` days.

    Plans all their villages at once and joins each distinct program once. With
    `engine`, the programs are also logged `planned`, so gaps and coverage see them.
    `slot_starts` moves chosen slots to another instant (a rehearsal; see read_slot_starts).
    """
    if not 1 <= days <= 31:
        raise StationError(f"days 须在 1 到 31 之间，而不是 {days}")
    today = now.astimezone(TZ).date()
    end = today + timedelta(days=days - 1)
    villages = sorted({v for _, v in stations})
    result = plan_days(loaded, today, end, village_ids=villages)
    overrides = slot_starts or {}
    store = blob_dir(loaded)
    resolved = Resolved()  # the fallbacks' clips are checked once with the programs'
    prepared = prepare_programs(loaded, result.programs, resolved=resolved)
    durations = _default_durations(loaded)
    fallbacks = prepare_programs(loaded, [f for v in villages if (f := _fallback_program(loaded, v, today, durations))],
                                 resolved=resolved)
    sizes: dict[str, int] = {}
    by_village: dict[str, list[ManifestEntry]] = {v: [] for v in villages}
    for key, prep in prepared.items():
        p = prep.program
        start = overrides.get((p.village_id, p.date.isoformat(), p.slot), p.start)
        entry = _entry(prep, start, store, sizes)
        if entry is not None:
            by_village[p.village_id].append(entry)
    fallback_of = {k[0]: _entry(prep, prep.program.start, store, sizes, fallback=True) for k, prep in fallbacks.items()}
    if engine is not None:

        with session(engine) as s:
            record_planned(s, broadcast_plans(result.programs), now=now)
    stamp = json_time(now)
    manifests = {}
    for sid, vid in stations:
        slots = {s.name: s.start.strftime("%H:%M") for s in loaded.registry.village_slots(vid)}
        entries = tuple(sorted(by_village.get(vid, []), key=lambda e: e.start))
        manifests[sid] = Manifest(sid, vid, stamp, stamp, end.isoformat(), slots, entries, fallback_of.get(vid),
                                  loaded.config.deliver.grace_s, broker_url)
    distinct = len({e.sha256 for m in manifests.values() for e in m.entries})
    return ManifestBuild(manifests, sum(len(m.entries) for m in manifests.values()), distinct)

"""Village stations on the server side: registration, hashed tokens, manifests, the blob store, as-run ingest, presence.

A station is a small box in a village broadcast room that plays its own buffer.
The server plans as for central play, resolves each distinct program once
(`deliver.prepare_programs`), stores its MP3 once under its sha256 (hard links
where the file system allows) and hands each station the manifest of its own
next days. Station events land in the same `broadcast` rows as central plays;
each event id is ingested once, so a repeated upload changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.broker import BrokerSettings, mosquitto_hash, reload_broker, write_auth_files
from outreach.db import session
from outreach.deliver import Prepared, prepare_programs
from outreach.files import sha256_file
from outreach.models import Broadcast, BroadcastStatus, Station, StationEvent
from outreach.plan import TZ, Program, ProgramItem
from outreach.records import BroadcastPlan, mark_program, record_planned
from outreach.registry import village_voice
from outreach.station.protocol import (
    AsRunEvent, CampaignPart, EventKind, Manifest, ManifestEntry, StationError, entry_id, new_event_id,
)
from outreach.workspace import Loaded, plan

DEFAULT_DAYS = 7
CLOCK_SKEW_S = 30.0
LOW_BUFFER_DAYS = 2
_EVENT_STATUS = {EventKind.PLAYED: BroadcastStatus.PLAYED, EventKind.MISSED: BroadcastStatus.MISSED,
                 EventKind.FAILED: BroadcastStatus.FAILED, EventKind.INTERRUPTED: BroadcastStatus.INTERRUPTED}


def hash_token(token: str) -> str:
    """The stored form of a station token (tokens are 256-bit random, so one SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- registration --------------------------------------------------------------------------


def add_station(engine: Engine, loaded: Loaded, village_id: str, *, now: datetime, server_url: str,
                broker: BrokerSettings | None) -> dict[str, str]:
    """Register a station for `village_id`; returns {station_id, village_id, token, command}.

    The token is shown once: only its hashes are kept (SHA-256 for HTTP, PBKDF2 for the broker).
    """
    village = loaded.registry.villages.get(village_id)
    if village is None:
        raise StationError(f"未知的村编号 {village_id!r}；请使用 schedules/county.yaml 里的编号")
    if village.speaker != "station":
        raise StationError(f"村 {village_id} 的设置是 `speaker: {village.speaker}`；请先在 schedules/county.yaml 里改为 "
                           "`speaker: station`（县里集中播放和村广播站不能同时播这个村）")
    station_id = f"{village_id}-{secrets.token_hex(3)}"
    token = secrets.token_urlsafe(32)
    with session(engine) as s:
        s.add(Station(id=station_id, village_id=village_id, token_sha256=hash_token(token),
                      broker_hash=mosquitto_hash(token), created_at=now))
    if broker is not None:
        sync_broker(engine, broker)
    command = (f"outreach station run --server {server_url} --station-id {station_id} "
               "--token-file /etc/outreach/station.token --data /var/lib/outreach-station")
    return {"station_id": station_id, "village_id": village_id, "token": token, "command": command}


def revoke_station(engine: Engine, station_id: str, *, now: datetime, broker: BrokerSettings | None) -> None:
    """Revoke a station's token: HTTP refuses it at once, the broker after its reload."""
    with session(engine) as s:
        station = s.get(Station, station_id)
        if station is None:
            raise StationError(f"没有村广播站 {station_id!r}；用 `outreach stations --json` 查看已登记的广播站")
        if station.revoked_at is None:
            station.revoked_at = now
            station.online = False
            s.add(station)
    if broker is not None:
        sync_broker(engine, broker)


def sync_broker(engine: Engine, broker: BrokerSettings) -> bool:
    """Rewrite the broker's password and ACL files from the active stations and make it reload them."""
    with session(engine) as s:
        rows = s.execute(sa.select(Station.id, Station.broker_hash).where(Station.revoked_at.is_(None))).all()
    if not write_auth_files(broker, [(r[0], r[1]) for r in rows], server_hash=mosquitto_hash(broker.password)):
        return False
    return reload_broker(broker)


def authenticate(engine: Engine, token: str) -> Station | None:
    """The active station holding `token`, or None."""
    if not token or len(token) > 200:
        return None
    with session(engine) as s:
        station = s.scalars(sa.select(Station).where(Station.token_sha256 == hash_token(token))).first()
        if station is None or station.revoked_at is not None:
            return None
        s.expunge(station)
        return station


def list_stations(engine: Engine, *, now: datetime) -> list[dict[str, Any]]:
    """Every station with its presence: {station_id, village_id, online, last_seen, buffered_until, ...}."""
    with session(engine) as s:
        rows = s.scalars(sa.select(Station).order_by(Station.village_id, Station.id)).all()
        out = []
        for st in rows:
            warnings = []
            if st.revoked_at is None and not st.online:
                warnings.append("offline")
            if st.buffered_until is not None and (st.buffered_until - now.astimezone(TZ).date()).days < LOW_BUFFER_DAYS:
                warnings.append("low_buffer")
            if st.clock_offset_s is not None and abs(st.clock_offset_s) > CLOCK_SKEW_S:
                warnings.append("clock_skew")
            out.append({"station_id": st.id, "village_id": st.village_id, "online": bool(st.online),
                        "last_seen": st.last_seen.isoformat() if st.last_seen else None,
                        "buffered_until": st.buffered_until.isoformat() if st.buffered_until else None,
                        "clock_offset_s": st.clock_offset_s, "version": st.version, "free_disk_mb": st.free_disk_mb,
                        "last_play": st.last_play, "revoked": st.revoked_at is not None, "warnings": warnings})
        return out


# --- the blob store and manifests ----------------------------------------------------------


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


def _entry(prep: Prepared, start: datetime, store: Path, *, fallback: bool = False) -> ManifestEntry | None:
    if prep.audio is None or prep.sha256 is None:
        return None
    store_blob(store, prep.audio, prep.sha256)
    p = prep.program
    parts = tuple(CampaignPart(c, tuple(i.script_id for i in prep.aired if i.campaign_id == c))
                  for c in dict.fromkeys(i.campaign_id for i in prep.aired))
    eid = entry_id(p.date, p.slot)
    return ManifestEntry(f"fallback/{eid}" if fallback else eid, p.date.isoformat(), p.slot,
                         start.astimezone(TZ).isoformat(), prep.sha256, prep.audio.stat().st_size,
                         round(p.duration_s, 3), prep.engine, parts)


def _fallback_program(loaded: Loaded, village_id: str, day: date) -> Program | None:
    """The always-on program: the default campaign's approved scripts that fit the shortest slot."""
    default = next((c for c in loaded.campaigns if c.default), None)
    if default is None:
        return None
    slots = loaded.registry.village_slots(village_id)
    limit = min(s.max_minutes for s in slots) * 60 if slots else 600
    items, total = [], 0.0
    from outreach.render import clip_durations

    durations = clip_durations(loaded.config, [loaded.scripts[s] for s in default.scripts if s in loaded.scripts])
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
    result = plan(loaded, today, end, village_ids=villages)
    overrides = slot_starts or {}
    store = blob_dir(loaded)
    prepared = prepare_programs(loaded, result.programs)
    fallbacks = prepare_programs(loaded, [f for v in villages if (f := _fallback_program(loaded, v, today))])
    by_village: dict[str, list[ManifestEntry]] = {v: [] for v in villages}
    for key, prep in prepared.items():
        p = prep.program
        start = overrides.get((p.village_id, p.date.isoformat(), p.slot), p.start)
        entry = _entry(prep, start, store)
        if entry is not None:
            by_village[p.village_id].append(entry)
    fallback_of = {k[0]: _entry(prep, prep.program.start, store, fallback=True) for k, prep in fallbacks.items()}
    if engine is not None:
        from outreach.workspace import broadcast_plans

        with session(engine) as s:
            record_planned(s, broadcast_plans(result.programs), now=now)
    stamp = now.astimezone(TZ).isoformat()
    manifests = {}
    for sid, vid in stations:
        slots = {s.name: s.start.strftime("%H:%M") for s in loaded.registry.village_slots(vid)}
        entries = tuple(sorted(by_village.get(vid, []), key=lambda e: e.start))
        manifests[sid] = Manifest(sid, vid, stamp, stamp, end.isoformat(), slots, entries, fallback_of.get(vid),
                                  loaded.config.deliver.grace_s, broker_url)
    distinct = len({e.sha256 for m in manifests.values() for e in m.entries})
    return ManifestBuild(manifests, sum(len(m.entries) for m in manifests.values()), distinct)


# --- as-run ingest and presence ------------------------------------------------------------------


def ingest_events(engine: Engine, station: Station, events: Iterable[AsRunEvent], *, now: datetime) -> list[str]:
    """Apply a batch of station events to the broadcast rows; returns the ids now held (new or seen before).

    Each event id is stored in the same transaction as its effect, so an upload
    repeated after a lost reply changes nothing. Events for another village cannot
    exist: the village comes from the station's token, never from the payload.
    """
    from outreach.alerts import record_alert_play

    accepted: list[str] = []
    with session(engine) as s:
        for ev in events:
            if s.get(StationEvent, ev.event_id) is not None:
                accepted.append(ev.event_id)
                continue
            at = datetime.fromisoformat(ev.at)
            if at.tzinfo is None:
                raise StationError(f"播出记录 {ev.event_id}：'at' 须带时区偏移（如 +08:00）")
            s.add(StationEvent(event_id=ev.event_id, station_id=station.id, kind=ev.kind.value, at=at, received_at=now))
            if ev.kind is EventKind.ALERT_PLAYED:
                record_alert_play(s, ev.alert_id, station.id, at)
            else:
                _apply(s, station, ev, at)
            accepted.append(ev.event_id)
            s.flush()
    return accepted


def _apply(s: Any, station: Station, ev: AsRunEvent, at: datetime) -> None:
    day = date.fromisoformat(ev.date)
    scheduled = datetime.fromisoformat(ev.scheduled_at) if ev.scheduled_at else at
    township = s.scalar(sa.text("SELECT township_id FROM village WHERE id = :v"), {"v": station.village_id}) or ""
    plans = [BroadcastPlan(day, ev.slot, station.village_id, township, c.campaign_id, c.script_ids, scheduled)
             for c in ev.campaigns]
    record_planned(s, plans, now=at)
    detail = f"村广播站 {station.id}：{ev.detail}" if ev.detail else None
    status = _EVENT_STATUS[ev.kind]
    if status is BroadcastStatus.PLAYED:
        mark_program(s, day=day, slot=ev.slot, village_id=station.village_id, status=status, at=at,
                     program_sha256=ev.sha256 or None, engine=ev.engine or None, note=detail)
    else:
        mark_program(s, day=day, slot=ev.slot, village_id=station.village_id, status=status, at=at, error=detail)


def record_presence(engine: Engine, station_id: str, *, now: datetime, online: bool | None = None,
                    heartbeat: dict[str, Any] | None = None) -> bool:
    """Store a status or heartbeat message from a station; False for an unknown or revoked station."""
    values: dict[str, Any] = {"last_seen": now}
    if online is not None:
        values["online"] = online
    if heartbeat is not None:
        values["online"] = True
        try:
            if heartbeat.get("buffered_until"):
                values["buffered_until"] = date.fromisoformat(str(heartbeat["buffered_until"]))
            if heartbeat.get("clock_offset_s") is not None:
                values["clock_offset_s"] = float(heartbeat["clock_offset_s"])
            if heartbeat.get("free_disk_mb") is not None:
                values["free_disk_mb"] = int(heartbeat["free_disk_mb"])
            values["version"] = str(heartbeat.get("version", ""))[:32] or None
            values["last_play"] = str(heartbeat.get("last_play") or "")[:200] or None
        except (TypeError, ValueError):
            pass  # a malformed heartbeat still proves the station is alive
    with session(engine) as s:
        n = s.execute(sa.update(Station).where(Station.id == station_id, Station.revoked_at.is_(None))
                      .values(values)).rowcount
    return bool(n)


def event_counts(engine: Engine, village_id: str) -> dict[str, int]:
    """Broadcast rows of a village by status (tests and `stations --json` checks)."""
    with session(engine) as s:
        return {str(k): int(v) for k, v in s.execute(sa.select(Broadcast.status, sa.func.count()).where(
            Broadcast.village_id == village_id).group_by(Broadcast.status)).all()}


__all__ = ["add_station", "authenticate", "blob_path", "build_manifests", "ingest_events", "list_stations",
           "read_slot_starts", "new_event_id", "record_presence", "revoke_station", "store_blob", "sync_broker", "sha256_file"]

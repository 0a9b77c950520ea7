"""Station accounts on the county side: registration, hashed tokens, revocation, the broker's auth files, presence.

A station is a small box in a village broadcast room that plays its own buffer. It logs in over
HTTP with a bearer token (stored only as its SHA-256) and over MQTT with the same secret; the
broker's password file and ACL are rewritten from the station table on every change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import TZ
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery import Channel, channel_of
from outreach.delivery.stations.broker import (
    BrokerSettings, mosquitto_hash, publish_retained, reload_broker, write_auth_files,
)
from outreach.models import Broadcast, Station
from outreach.planning.workspace import Loaded
from outreach.station.protocol import Leaf, StationError, topic

log = logging.getLogger("outreach.stations")
CLOCK_SKEW_S = 30.0
LOW_BUFFER_DAYS = 2


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
    if channel_of(village) is not Channel.STATIONS:
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


def revoke_station(engine: Engine, station_id: str, *, now: datetime, broker: BrokerSettings | None) -> str | None:
    """Revoke a station's token: HTTP refuses it at once, the broker after its reload; its status reads offline.

    The broker drops a revoked box without its last will, so its retained status would still say
    online: the server publishes the retained offline status itself, after the reload. Returns a
    warning (Chinese) when that status could not be published; the revocation stands either way.
    """
    with session(engine) as s:
        station = s.get(Station, station_id)
        if station is None:
            raise StationError(f"没有村广播站 {station_id!r}；用 `outreach stations --json` 查看已登记的广播站")
        if station.revoked_at is None:
            station.revoked_at = now
            station.online = False
            s.add(station)
    if broker is None:
        return None
    sync_broker(engine, broker)
    try:
        publish_retained(broker, topic(station_id, Leaf.STATUS), revoked_status(now))
    except StationError as exc:
        return f"已吊销，但没能把 {station_id} 的在线状态改为离线：{exc}"
    return None


def revoked_status(now: datetime) -> str:
    """The retained status of a revoked box: offline, and why (JSON, as the box's own status messages)."""
    return json.dumps({"online": False, "revoked": True, "at": json_time(now)})


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
                        "last_seen": json_time(st.last_seen),
                        "buffered_until": st.buffered_until.isoformat() if st.buffered_until else None,
                        "clock_offset_s": st.clock_offset_s, "version": st.version, "free_disk_mb": st.free_disk_mb,
                        "last_play": st.last_play, "revoked": st.revoked_at is not None, "warnings": warnings})
        return out



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

"""What the county server and its village stations exchange: manifest entries, as-run events, MQTT topics.

Standard library only: the station imports this on a small box without the
planner's dependencies, and the server imports it too, so both sides agree.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from outreach.errors import OutreachError

TZ = ZoneInfo("Asia/Shanghai")
PROTOCOL_VERSION = 1
TOPIC_ROOT = "outreach/station"
SHA256_HEX = 64


class StationError(OutreachError):
    """A village station, its registration, manifest, content or broker went wrong."""


class Leaf(StrEnum):
    """The last level of a station's MQTT topics: `outreach/station/<station_id>/<leaf>`."""

    STATUS = "status"  # station -> server, retained; the last will says offline
    HEARTBEAT = "heartbeat"  # station -> server
    ACK = "ack"  # station -> server: alert delivered / played
    ALERT = "alert"  # server -> station, QoS 1, kept for an offline persistent session
    CMD = "cmd"  # server -> station: "sync" now


STATION_WRITES = (Leaf.STATUS, Leaf.HEARTBEAT, Leaf.ACK)
STATION_READS = (Leaf.ALERT, Leaf.CMD)


def topic(station_id: str, leaf: Leaf | str) -> str:
    """The MQTT topic of one station's `leaf`."""
    return f"{TOPIC_ROOT}/{station_id}/{Leaf(leaf).value}"


def parse_topic(name: str) -> tuple[str, Leaf] | None:
    """(station_id, leaf) of a station topic, or None for anything else."""
    parts = name.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_ROOT:
        return None
    try:
        return parts[2], Leaf(parts[3])
    except ValueError:
        return None


class EventKind(StrEnum):
    """What happened to a manifest entry or an alert on a station."""

    PLAYED = "played"
    MISSED = "missed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the station stopped during the play; never replayed (no double play)
    ALERT_PLAYED = "alert_played"


@dataclass(frozen=True)
class CampaignPart:
    """One campaign's scripts inside a program (one as-run row on the server)."""

    campaign_id: str
    script_ids: tuple[str, ...]


@dataclass(frozen=True)
class ManifestEntry:
    """One program a station must play: when, which blob, and what it carries."""

    entry_id: str  # "<date>/<slot>", or "fallback/<date>/<slot>" for a fallback play
    date: str  # ISO date, Beijing
    slot: str
    start: str  # ISO datetime with offset
    sha256: str
    size: int
    duration_s: float
    engine: str
    campaigns: tuple[CampaignPart, ...]

    @property
    def start_at(self) -> datetime:
        return datetime.fromisoformat(self.start)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ManifestEntry:
        parts = tuple(CampaignPart(c["campaign_id"], tuple(c["script_ids"])) for c in d.get("campaigns", []))
        return ManifestEntry(str(d["entry_id"]), str(d["date"]), str(d["slot"]), str(d["start"]),
                             check_sha(d["sha256"]), int(d["size"]), float(d["duration_s"]), str(d.get("engine", "")),
                             parts)


@dataclass(frozen=True)
class Manifest:
    """A station's next days of programs, its slot times and its always-on fallback program."""

    station_id: str
    village_id: str
    generated_at: str
    server_time: str
    buffered_until: str  # last day covered
    slots: dict[str, str]  # slot name -> HH:MM, for fallback plays past the buffer
    entries: tuple[ManifestEntry, ...]
    fallback: ManifestEntry | None = None
    grace_s: int = 900
    broker_url: str = ""
    version: int = PROTOCOL_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Manifest:
        d = json.loads(text)
        fb = d.get("fallback")
        return Manifest(str(d["station_id"]), str(d["village_id"]), str(d["generated_at"]), str(d["server_time"]),
                        str(d["buffered_until"]), dict(d["slots"]),
                        tuple(ManifestEntry.from_dict(e) for e in d["entries"]),
                        ManifestEntry.from_dict(fb) if fb else None, int(d.get("grace_s", 900)),
                        str(d.get("broker_url", "")), int(d.get("version", PROTOCOL_VERSION)))

    def blobs(self) -> set[str]:
        return {e.sha256 for e in self.entries} | ({self.fallback.sha256} if self.fallback else set())


@dataclass(frozen=True)
class AsRunEvent:
    """One play, miss or failure on a station, stored there first and uploaded later (idempotent by id)."""

    event_id: str
    kind: EventKind
    at: str  # ISO datetime with offset: when it happened (start of the play)
    entry_id: str = ""
    date: str = ""
    slot: str = ""
    scheduled_at: str = ""
    sha256: str = ""
    engine: str = ""
    campaigns: tuple[CampaignPart, ...] = ()
    alert_id: str = ""
    detail: str = ""
    # Proof of air (`--monitor`): what a microphone beside the horn made of the play; None without one.
    proof_heard: bool | None = None
    proof_score: float | None = None
    proof_delay_s: float | None = None
    proof_snr_db: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def proof(self) -> dict[str, float | None]:
        """The proof-of-air figures as broadcast columns (empty when the play was not monitored)."""
        if self.proof_heard is None:
            return {}
        return {"proof_score": self.proof_score, "proof_delay_s": self.proof_delay_s,
                "proof_snr_db": self.proof_snr_db}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AsRunEvent:
        parts = tuple(CampaignPart(str(c["campaign_id"]), tuple(map(str, c["script_ids"])))
                      for c in d.get("campaigns", []))
        event_id = str(d["event_id"])
        if not 8 <= len(event_id) <= 64:
            raise StationError(f"event_id {event_id!r}：长度须为 8 到 64 个字符")
        problem = proof_problem(d)
        if problem:
            raise StationError(problem)
        return AsRunEvent(event_id, EventKind(d["kind"]), str(d["at"]), str(d.get("entry_id", "")),
                          str(d.get("date", "")), str(d.get("slot", "")), str(d.get("scheduled_at", "")),
                          str(d.get("sha256", "")), str(d.get("engine", "")), parts, str(d.get("alert_id", "")),
                          str(d.get("detail", ""))[:2000], d.get("proof_heard"),
                          *(None if d.get(k) is None else float(d[k]) for k in PROOF_RANGES))


PROOF_RANGES = {"proof_score": (0.0, 1.0), "proof_delay_s": (-1.0, 10.0), "proof_snr_db": (-100.0, 100.0)}
"""The proof-of-air figures an as-run event may carry, and the range each must lie in."""
HEARD_SCORE = 0.5
"""A proof score at or above this is `heard` (outreach/audio/proof.py scales its scores so)."""


def proof_problem(d: dict[str, Any]) -> str:
    """Why the proof-of-air figures of event `d` cannot be taken, in Chinese; "" when they can (or are absent)."""
    heard = d.get("proof_heard")
    if heard is not None and not isinstance(heard, bool):
        return "proof_heard 必须是 true、false 或 null"
    for key, (lo, hi) in PROOF_RANGES.items():
        value = d.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or not lo <= value <= hi):
            return f"{key} 必须是 {lo:g} 到 {hi:g} 之间的数（或 null），收到的是 {str(value)[:40]!r}"
    if heard is None:
        given = [k for k in PROOF_RANGES if d.get(k) is not None]
        return f"有监听数值 {given[0]} 却没有 proof_heard" if given else ""
    if d.get("proof_score") is None:
        return "proof_heard 须与 proof_score 一同给出"
    if heard != (d["proof_score"] >= HEARD_SCORE):
        return f"proof_heard 与 proof_score 不符：分数不低于 {HEARD_SCORE} 才算听到"
    if d.get("kind") != EventKind.PLAYED.value:
        return f"只有 played 的播出记录才带监听数值，这条是 {str(d.get('kind'))[:20]!r}"
    return ""


def new_event_id() -> str:
    """A unique event id, made on the station before the play starts."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AlertMessage:
    """An emergency insert (紧急插播) as published on a station's alert topic."""

    alert_id: str
    script_id: str
    title: str
    sha256: str
    size: int
    duration_s: float
    sent_at: str
    expires_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @staticmethod
    def from_json(payload: bytes | str) -> AlertMessage:
        d = json.loads(payload)
        return AlertMessage(str(d["alert_id"]), str(d["script_id"]), str(d.get("title", "")), check_sha(d["sha256"]),
                            int(d["size"]), float(d["duration_s"]), str(d["sent_at"]), str(d["expires_at"]),
                            dict(d.get("extra", {})))


def check_sha(value: Any) -> str:
    """`value` if it is a lowercase sha256 hex digest; StationError otherwise (it becomes a file name)."""
    s = str(value)
    if len(s) != SHA256_HEX or any(c not in "0123456789abcdef" for c in s):
        raise StationError(f"{s!r} 不是 sha256 十六进制摘要")
    return s


def entry_id(day: date | str, slot: str) -> str:
    return f"{day if isinstance(day, str) else day.isoformat()}/{slot}"

"""Station as-run ingest: events checked one by one against what the server sent, then logged once.

Station events land in the same `broadcast` rows as central plays, but only after each is checked
against what the server sent that station (its village, a slot and campaign of its manifest, scripts
of that program, a time within the slot, an alert sent to it); refused events are kept apart with
their reason. Each (station, event id) is ingested once, so a repeated upload changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from outreach.config import TZ
from outreach.dates import json_time
from outreach.db import session
from outreach.delivery.stations.alerts import alert_sent_to, record_alert_play
from outreach.delivery.stations.manifests import SlotStarts
from outreach.models import Alert, Broadcast, BroadcastStatus, Evidence, Station, StationEvent, StationEventRejected
from outreach.planning.workspace import Loaded, plan_days
from outreach.records import BroadcastPlan, mark_program, record_planned
from outreach.station.protocol import AsRunEvent, EventKind, StationError, check_sha, entry_id

log = logging.getLogger("outreach.stations")
_EVENT_STATUS = {EventKind.PLAYED: BroadcastStatus.PLAYED, EventKind.MISSED: BroadcastStatus.MISSED,
                 EventKind.FAILED: BroadcastStatus.FAILED, EventKind.INTERRUPTED: BroadcastStatus.INTERRUPTED}


MAX_EVENT_AGE_DAYS = 60  # older events are refused (and bound what one upload makes the server plan)
EARLY_S = 120.0  # a play may begin this much before its slot (station clock drift)
FUTURE_S = 120.0  # and be reported this much ahead of the server's clock
PAYLOAD_KEEP = 2000  # characters of a refused event kept for the dashboard
MAX_REJECTED_PER_STATION = 1000
MAX_PARTS, MAX_SCRIPTS = 20, 100


@dataclass(frozen=True)
class EventResult:
    """What became of one uploaded event: 200 (held), or 400/403/409/422 and a reason in Chinese."""

    index: int  # its place in the uploaded list
    event_id: str
    status: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "status": self.status, "reason": self.reason}


class _Refused(Exception):
    """One event refused (internal: caught per event, never leaves ingest_batch)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class _Slot:
    """What the server sent (or would send) a village for one date and slot: starts, length, campaign scripts."""

    starts: list[datetime]
    length_s: float
    parts: dict[str, set[str]]


class _Expected:
    """The village's planned programs for the dates of one upload, planned once per request."""

    def __init__(self, s: Any, loaded: Loaded, station: Station, now: datetime, slot_starts: SlotStarts) -> None:
        self.s, self.loaded, self.station, self.now, self.overrides = s, loaded, station, now, slot_starts
        self.grace_s = float(loaded.config.deliver.grace_s)
        village = station.village_id
        self.known_village = village in loaded.registry.villages
        self.slot_specs = {sp.name: sp for sp in loaded.registry.village_slots(village)} if self.known_village else {}
        default = next((c for c in loaded.campaigns if c.default), None)
        self.fallback: dict[str, set[str]] = {default.id: set(default.scripts)} if default is not None else {}
        self._days: dict[date, dict[str, _Slot]] = {}

    def load(self, days: set[date]) -> None:
        """Plan every day of `days` not planned yet, in one call (cost: one plan of one village per request)."""
        todo = sorted(d for d in days if d not in self._days)
        if not todo or not self.known_village:
            return
        village = self.station.village_id
        for d in todo:
            self._days[d] = {}
        for p in plan_days(self.loaded, todo[0], todo[-1], village_ids=[village]).programs:
            if p.village_id != village or p.date not in self._days or p.slot not in self.slot_specs:
                continue
            slot = self._slot(p.date, p.slot)
            slot.starts.append(p.start)
            slot.length_s = max(slot.length_s, p.duration_s)
            for item in p.items:
                slot.parts.setdefault(item.campaign_id, set()).add(item.script_id)
        # What the manifest endpoint logged as planned: a program sent before a schedule edit still counts.
        rows = self.s.execute(sa.select(Broadcast.date, Broadcast.slot, Broadcast.campaign_id, Broadcast.script_ids,
                                        Broadcast.scheduled_at).where(
            Broadcast.village_id == village, Broadcast.date >= todo[0], Broadcast.date <= todo[-1])).all()
        for day, slot_name, campaign, scripts, scheduled in rows:
            if day in self._days and slot_name in self.slot_specs:
                slot = self._slot(day, slot_name)
                slot.starts.append(scheduled)
                slot.parts.setdefault(campaign, set()).update(x for x in scripts.split(",") if x)

    def _slot(self, day: date, name: str) -> _Slot:
        found = self._days[day].get(name)
        if found is None:
            spec = self.slot_specs[name]
            starts = [datetime.combine(day, spec.start.replace(tzinfo=None), tzinfo=TZ)]
            moved = self.overrides.get((self.station.village_id, day.isoformat(), name))
            if moved is not None:
                starts.append(moved)
            found = self._days[day][name] = _Slot(starts, spec.max_minutes * 60.0, {})
        return found

    def slot(self, day: date, name: str) -> _Slot:
        self.load({day})
        if name not in self.slot_specs:
            raise _Refused(422, f"本村没有时段 {name[:40]!r}；节目单里的时段是：{'、'.join(self.slot_specs) or '无'}")
        return self._slot(day, name)


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise _Refused(400, f"字段 {key} 必须是字符串")
    return value


def _parse_event(raw: Any) -> AsRunEvent:
    """An AsRunEvent from one uploaded item, or _Refused(400) saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise _Refused(400, f"每条播出记录必须是 JSON 对象，收到的是 {type(raw).__name__}")
    for key in ("event_id", "kind", "at"):
        if key not in raw:
            raise _Refused(400, f"播出记录缺少字段 {key}")
        _text(raw, key)
    for key in ("entry_id", "date", "slot", "scheduled_at", "sha256", "engine", "alert_id", "detail"):
        _text(raw, key)
    parts = raw.get("campaigns", [])
    if not isinstance(parts, list) or len(parts) > MAX_PARTS:
        raise _Refused(400, f"campaigns 必须是列表，最多 {MAX_PARTS} 项")
    for c in parts:
        if not isinstance(c, dict) or not isinstance(c.get("campaign_id"), str) \
                or not isinstance(c.get("script_ids"), list) or len(c["script_ids"]) > MAX_SCRIPTS \
                or not all(isinstance(x, str) for x in c["script_ids"]):
            raise _Refused(400, f"campaigns 的每项须含 campaign_id（字符串）和 script_ids（最多 {MAX_SCRIPTS} 个字符串）")
    try:
        return AsRunEvent.from_dict(raw)
    except StationError as exc:
        raise _Refused(400, str(exc)) from None
    except (KeyError, TypeError, ValueError):
        raise _Refused(400, f"kind {str(raw.get('kind'))[:40]!r} 不是已知的事件类型："
                            f"{'、'.join(k.value for k in EventKind)}") from None


def _instant(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Refused(400, f"{what} {text[:40]!r} 不是 ISO 时间（如 2026-12-06T12:00:00+08:00）") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Refused(400, f"{what} 须带时区偏移（如 +08:00）")
    try:
        return value.astimezone(TZ)
    except OverflowError:
        raise _Refused(400, f"{what} {text[:40]!r} 超出可处理的时间范围") from None


def _check_program(ev: AsRunEvent, at: datetime, expected: _Expected, now: datetime) -> datetime:
    """Refuse a program event that is not what the server sent this station; returns the slot start to log."""
    if not expected.known_village:
        raise _Refused(422, f"本广播站的村 {expected.station.village_id} 已不在登记册里")
    try:
        day = date.fromisoformat(ev.date)
    except ValueError:
        raise _Refused(400, f"date {ev.date[:40]!r} 不是 ISO 日期（如 2026-12-06）") from None
    if not _accepted_day(day, now):
        raise _Refused(422, f"日期 {day} 不在可接受的范围内（{MAX_EVENT_AGE_DAYS} 天前到明天）")
    slot = expected.slot(day, ev.slot)
    fallback_entry = ev.entry_id.startswith("fallback/")
    if ev.entry_id and ev.entry_id not in (entry_id(day, ev.slot), f"fallback/{entry_id(day, ev.slot)}"):
        raise _Refused(422, f"节目编号 {ev.entry_id[:60]!r} 与日期 {day}、时段 {ev.slot} 不符")
    if not ev.campaigns:
        raise _Refused(422, "播出记录没有节目内容（campaigns 为空）")
    for part in ev.campaigns:
        allowed = expected.fallback.get(part.campaign_id)
        if not fallback_entry and part.campaign_id in slot.parts:
            allowed = slot.parts[part.campaign_id] | (allowed or set())
        if allowed is None:
            raise _Refused(422, f"{day} {ev.slot} 的节目单里没有宣传活动 {part.campaign_id[:64]!r}")
        extra = [x for x in part.script_ids if x not in allowed]
        if extra:
            raise _Refused(422, f"宣传活动 {part.campaign_id} 在 {day} {ev.slot} 的节目里没有广播稿 {extra[0][:64]!r}")
    if ev.sha256:
        try:
            check_sha(ev.sha256)
        except StationError as exc:
            raise _Refused(400, f"sha256：{exc}") from None
    if len(ev.engine) > 32:
        raise _Refused(400, "engine 最长 32 个字符")
    earliest = min(slot.starts) - timedelta(seconds=EARLY_S)
    if at < earliest:
        raise _Refused(422, f"时间 {at.isoformat()} 早于时段开始 {min(slot.starts).isoformat()}")
    if ev.kind is not EventKind.MISSED:
        window = timedelta(seconds=slot.length_s + expected.grace_s)
        if not any(s - timedelta(seconds=EARLY_S) <= at <= s + window for s in slot.starts):
            raise _Refused(422, f"时间 {at.isoformat()} 不在 {day} {ev.slot} 时段内（开始加时段长度和宽限时间）")
    return max((s for s in slot.starts if s <= at + timedelta(seconds=EARLY_S)), default=min(slot.starts))


def _check_alert(s: Any, ev: AsRunEvent, at: datetime, station: Station) -> None:

    if not ev.alert_id:
        raise _Refused(422, "alert_played 缺少 alert_id")
    if (s.get(Alert, ev.alert_id) if len(ev.alert_id) <= 32 else None) is None:
        raise _Refused(422, f"没有紧急插播 {ev.alert_id[:40]!r}")
    alert = alert_sent_to(s, ev.alert_id, station.id)
    if alert is None:
        raise _Refused(403, f"紧急插播 {ev.alert_id} 没有发给本广播站")
    skew = timedelta(seconds=FUTURE_S)
    if not alert.sent_at - skew <= at <= alert.expires_at + skew:
        raise _Refused(422, f"紧急插播 {ev.alert_id} 的播出时间 {at.isoformat()} 不在发出到过期之间")


def _event_id_of(raw: Any) -> str:
    value = raw.get("event_id") if isinstance(raw, dict) else None
    return value[:64] if isinstance(value, str) else ""


def _keep_payload(raw: Any) -> str:
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(raw))
    return text[:PAYLOAD_KEEP]


def _accepted_day(day: date, now: datetime) -> bool:
    """Whether a program date is one the server takes events for: MAX_EVENT_AGE_DAYS back to tomorrow."""
    today = now.astimezone(TZ).date()
    return today - timedelta(days=MAX_EVENT_AGE_DAYS) <= day <= today + timedelta(days=1)


def _batch_days(parsed: Sequence[AsRunEvent | _Refused], now: datetime) -> set[date]:
    """The program dates of a batch's events within the window the server accepts."""
    days = set()
    for ev in parsed:
        if isinstance(ev, AsRunEvent) and ev.kind is not EventKind.ALERT_PLAYED:
            with contextlib.suppress(ValueError):
                d = date.fromisoformat(ev.date)
                if _accepted_day(d, now):
                    days.add(d)
    return days


def _checked_time(raw: Any, ev: AsRunEvent, station: Station, now: datetime) -> datetime:
    """The event's instant, refused when it names another village, lies ahead of the server or is too old."""
    if isinstance(raw, dict) and "village_id" in raw and raw["village_id"] != station.village_id:
        raise _Refused(403, f"本广播站属于村 {station.village_id}，不能上报别的村的播出")
    at = _instant(ev.at, "at")
    if at > now + timedelta(seconds=FUTURE_S):
        raise _Refused(422, f"时间 {at.isoformat()} 晚于县服务器的当前时间；请校准广播站的时钟（NTP）")
    if at < now - timedelta(days=MAX_EVENT_AGE_DAYS + 1):
        raise _Refused(422, f"时间 {at.isoformat()} 是 {MAX_EVENT_AGE_DAYS} 天以前，不再接收")
    return at


def ingest_batch(engine: Engine, loaded: Loaded, station: Station, raw_events: Sequence[Any], *, now: datetime,
                 slot_starts: SlotStarts | None = None) -> list[EventResult]:
    """Check each uploaded event against what the server sent this station, apply the good ones, keep the rest.

    An event is held (status 200) when it is new and valid, or when this station
    sent its id before: a repeated upload changes nothing. An invalid event is
    refused on its own (400 malformed, 403 not this station's, 409 repeated in
    the batch, 422 not in the station's manifest or at an impossible time), stored
    in station_event_rejected for the dashboard, and never blocks the others.
    The village always comes from the station's token, never from the payload.
    """

    results: list[EventResult] = []
    with session(engine) as s:
        expected = _Expected(s, loaded, station, now, slot_starts or {})
        parsed: list[AsRunEvent | _Refused] = []
        for raw in raw_events:
            try:
                parsed.append(_parse_event(raw))
            except _Refused as exc:
                parsed.append(exc)
        expected.load(_batch_days(parsed, now))  # plan the batch's dates in one go
        seen: set[str] = set()
        for index, (raw, ev) in enumerate(zip(raw_events, parsed)):
            event_id = ev.event_id if isinstance(ev, AsRunEvent) else _event_id_of(raw)
            try:
                if isinstance(ev, _Refused):
                    raise ev
                if ev.event_id in seen:
                    raise _Refused(409, "同一批次里重复的事件编号")
                seen.add(ev.event_id)
                if s.get(StationEvent, (ev.event_id, station.id)) is not None:
                    results.append(EventResult(index, event_id, 200))
                    continue
                at = _checked_time(raw, ev, station, now)
                if ev.kind is EventKind.ALERT_PLAYED:
                    _check_alert(s, ev, at, station)
                    scheduled = at
                else:
                    scheduled = _check_program(ev, at, expected, now)
                with s.begin_nested():
                    s.add(StationEvent(event_id=ev.event_id, station_id=station.id, kind=ev.kind.value, at=at,
                                       received_at=now))
                    if ev.kind is EventKind.ALERT_PLAYED:
                        record_alert_play(s, ev.alert_id, station.id, at)
                    else:
                        _apply(s, station, ev, at, scheduled)
                    s.flush()
                results.append(EventResult(index, event_id, 200))
            except sa.exc.SQLAlchemyError:  # not the station's fault: it keeps the event and sends it again
                log.exception("村广播站 %s 的播出记录 %s 未能保存", station.id, event_id)
                results.append(EventResult(index, event_id, 503, "县服务器暂时无法保存这条记录；稍后会重新上传"))
            except _Refused as exc:
                results.append(EventResult(index, event_id, exc.status, exc.reason))
                _store_refused(s, station.id, event_id, exc, raw, now)
        _prune_refused(s, station.id)
    return results


def _store_refused(s: Any, station_id: str, event_id: str, exc: _Refused, raw: Any, now: datetime) -> None:
    if event_id and s.scalar(sa.select(StationEventRejected.id).where(
            StationEventRejected.station_id == station_id, StationEventRejected.event_id == event_id).limit(1)):
        return  # refused before: the station sent it again, one row is enough
    s.add(StationEventRejected(station_id=station_id, event_id=event_id, status=exc.status, reason=exc.reason[:1000],
                               received_at=now, payload=_keep_payload(raw)))
    s.flush()


def _prune_refused(s: Any, station_id: str) -> None:
    """Keep the newest MAX_REJECTED_PER_STATION refused events of a station (a hostile box cannot fill the disk)."""
    ids = s.scalars(sa.select(StationEventRejected.id).where(StationEventRejected.station_id == station_id)
                    .order_by(StationEventRejected.id.desc()).offset(MAX_REJECTED_PER_STATION).limit(5000)).all()
    if ids:
        s.execute(sa.delete(StationEventRejected).where(StationEventRejected.id.in_(ids)))


def rejected_events(engine: Engine, *, limit: int = 5) -> dict[str, Any]:
    """Refused station events for the dashboard: {total, per_station: {id: n}, latest: [{...}]}."""
    with session(engine) as s:
        per = {str(k): int(v) for k, v in s.execute(sa.select(StationEventRejected.station_id, sa.func.count())
                                                     .group_by(StationEventRejected.station_id)).all()}
        rows = s.scalars(sa.select(StationEventRejected).order_by(StationEventRejected.received_at.desc(),
                                                                 StationEventRejected.id.desc()).limit(limit)).all()
        latest = [{"station_id": r.station_id, "event_id": r.event_id, "status": r.status, "reason": r.reason,
                   "received_at": json_time(r.received_at)} for r in rows]
    return {"total": sum(per.values()), "per_station": per, "latest": latest}


def _apply(s: Any, station: Station, ev: AsRunEvent, at: datetime, scheduled: datetime) -> None:
    day = date.fromisoformat(ev.date)
    township = s.scalar(sa.text("SELECT township_id FROM village WHERE id = :v"), {"v": station.village_id}) or ""
    plans = [BroadcastPlan(day, ev.slot, station.village_id, township, c.campaign_id, c.script_ids, scheduled)
             for c in ev.campaigns]
    record_planned(s, plans, now=at)
    detail = f"村广播站 {station.id}：{ev.detail}" if ev.detail else None
    status = _EVENT_STATUS[ev.kind]
    # late_evidence: a buffered report may still replace the `missed` the scheduler's sweep logged (delivery.sweep).
    if status is BroadcastStatus.PLAYED:
        # The station's player ran the program through; a microphone beside the horn (--monitor) may have heard it.
        mark_program(s, day=day, slot=ev.slot, village_id=station.village_id, status=status, at=at,
                     program_sha256=ev.sha256 or None, engine=ev.engine or None, note=detail, late_evidence=True,
                     evidence=Evidence.HEARD if ev.proof_heard else Evidence.PLAYER, aired_at=at, proof=ev.proof)
    else:
        mark_program(s, day=day, slot=ev.slot, village_id=station.village_id, status=status, at=at, error=detail,
                     late_evidence=True)
